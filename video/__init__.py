"""video experiments."""
