"""The one error of `riskserve models init`: a bad input, said in one line (the command exits 2)."""


class ModelInitError(ValueError):
    """An input `models init` cannot use: the message names the file, flag or column and what to do."""
