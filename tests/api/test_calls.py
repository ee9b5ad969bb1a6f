"""Every scoring error carries its own gRPC status and metric reason, looked up one way."""

import grpc
import pytest

from server.api.calls import DrainState, status_of
from server.runtime import errors

EXPECTED = {
    errors.InvalidInputError: (grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument"),
    errors.ModelNotFoundError: (grpc.StatusCode.NOT_FOUND, "not_found"),
    errors.ModelNotReadyError: (grpc.StatusCode.UNAVAILABLE, "not_ready"),
    errors.ModelUnavailableError: (grpc.StatusCode.UNAVAILABLE, "model_unavailable"),
    errors.OverloadedError: (grpc.StatusCode.RESOURCE_EXHAUSTED, "overload"),
    errors.DeadlineExceededError: (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"),
    errors.DrainingError: (grpc.StatusCode.UNAVAILABLE, "draining"),
    errors.InferenceFailedError: (grpc.StatusCode.INTERNAL, "inference_error"),
    errors.BatcherFailedError: (grpc.StatusCode.INTERNAL, "batcher_failed"),
}


def _instance(error_type: type[errors.ScoringError]) -> errors.ScoringError:
    return error_type("field", "problem") if error_type is errors.InvalidInputError else error_type("x")


@pytest.mark.parametrize("error_type", list(EXPECTED))
def test_error_type_knows_its_status_and_reason(error_type):
    error = _instance(error_type)
    assert (status_of(error), error.reason) == EXPECTED[error_type]


def test_every_scoring_error_type_is_covered():
    assert set(errors.ScoringError.__subclasses__()) == set(EXPECTED)


def test_draining_refuses_new_calls_and_counts_the_held_ones():
    drain = DrainState()
    drain.enter()
    drain.refusing = True
    with pytest.raises(errors.DrainingError):
        drain.enter()
    assert drain.inflight == 1
    drain.leave()
    assert drain.inflight == 0
