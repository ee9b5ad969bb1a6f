"""Errors of the scoring core. Raised where a problem is detected; the gRPC layer maps each type to one
status code in one place (server.api.status)."""


class ScoringError(Exception):
    """Base class: a request could not be scored. The message is safe to send to the client."""


class InvalidInputError(ScoringError):
    """A request field is missing, malformed or out of range. `field` names it, e.g. 'transactions[3].mcc'."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ModelNotFoundError(ScoringError):
    """No served model has that name (or it serves another task)."""


class ModelNotReadyError(ScoringError):
    """The model is still loading, quantizing or warming up."""


class OverloadedError(ScoringError):
    """The model's queue is full: refused at once instead of waiting."""


class DeadlineExceededError(ScoringError):
    """The caller's deadline passed before the work could run; it was not run."""


class DrainingError(ScoringError):
    """The server is shutting down and no longer accepts calls."""


class InferenceFailedError(ScoringError):
    """ONNX Runtime failed on inputs that passed validation (a server-side fault)."""
