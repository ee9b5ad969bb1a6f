"""Errors of the scoring core. Raised where a problem is detected; each type carries its own status.

`code` is the gRPC status code's name (transport-neutral here: server/api/calls.py turns it into a
grpc.StatusCode in one place) and `reason` the label of `riskserve_requests_rejected_total` or, for a
server-side fault (code INTERNAL), of `riskserve_requests_failed_total`.
"""


class ScoringError(Exception):
    """Base class: a request could not be scored. The message is safe to send to the client."""

    code = "INTERNAL"
    reason = "internal"


class InvalidInputError(ScoringError):
    """A request field is missing, malformed or out of range. `field` names it, e.g. 'transactions[3].mcc'."""

    code = "INVALID_ARGUMENT"
    reason = "invalid_argument"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ModelNotFoundError(ScoringError):
    """No served model has that name (or it serves another task)."""

    code = "NOT_FOUND"
    reason = "not_found"


class ModelNotReadyError(ScoringError):
    """The model is still loading, quantizing or warming up."""

    code = "UNAVAILABLE"
    reason = "not_ready"


class ModelUnavailableError(ScoringError):
    """The model is configured but could not be loaded, validated or quantized; the others serve."""

    code = "UNAVAILABLE"
    reason = "model_unavailable"


class OverloadedError(ScoringError):
    """The model's queue is full: refused at once instead of waiting."""

    code = "RESOURCE_EXHAUSTED"
    reason = "overload"


class DeadlineExceededError(ScoringError):
    """The caller's deadline passed before the work could run; it was not run."""

    code = "DEADLINE_EXCEEDED"
    reason = "deadline"


class DrainingError(ScoringError):
    """The server is shutting down and no longer accepts calls."""

    code = "UNAVAILABLE"
    reason = "draining"


class InferenceFailedError(ScoringError):
    """ONNX Runtime failed on inputs that passed validation (a server-side fault)."""

    code = "INTERNAL"
    reason = "inference_error"


class BatcherFailedError(ScoringError):
    """The model's batcher worker failed while this call was queued or running (a server-side fault; the
    worker is restarted: server/runtime/batcher.py, Supervision)."""

    code = "INTERNAL"
    reason = "batcher_failed"
