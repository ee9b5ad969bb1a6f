"""The error type for configuration problems."""


class ConfigError(ValueError):
    """A configuration file or value is invalid. The message names the file and the field."""
