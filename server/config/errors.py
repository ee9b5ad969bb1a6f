"""The error type for configuration problems."""


class ConfigError(ValueError):
    """A configuration file or value is invalid. The message names the file and the field."""


class DataFileError(ConfigError):
    """A model's calibration or holdout file is unreadable or does not fit the model's inputs."""
