"""Error types of the model-build recipe."""


class ModelBuildError(RuntimeError):
    """Building or checking a bundled model failed; the message names the stage and the figure."""


class GeneratorConfigError(ValueError):
    """A synthetic-data generator was given an invalid setting; the message names it and the valid range."""
