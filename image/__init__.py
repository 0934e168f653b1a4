"""image experiments."""
