"""The one error type users see for bad configs, paths and data lists."""


class ConfigError(ValueError):
    """A bad setting, caught before any job runs. The message is one line naming the bad value
    and what would be valid."""
