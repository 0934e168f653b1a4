"""The two error types users see: a config mistake, or a fault in the data. Both carry one line
naming the bad value and what would be valid."""


class ConfigError(ValueError):
    """A bad setting (a value, a path, a checkpoint that does not fit), caught before any job runs
    where it can be."""


class DataError(ValueError):
    """A fault found in the data or in the model's input at run time (an unreadable or invalid file,
    a malformed data list, an input of the wrong shape, scores that are not finite): the settings
    may be right, the data is not."""
