"""audio experiments."""
