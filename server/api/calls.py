"""What every RPC shares: admission (drain), the deadline, metrics, and the ONE error -> status mapping.

Servicers wrap their body in `async with calls.scope(context, model, method) as call:`; any ScoringError
raised inside (where the problem was detected) becomes its gRPC status here and nowhere else.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from server.metrics import ServingMetrics
from server.runtime.errors import (
    DeadlineExceededError,
    DrainingError,
    InferenceFailedError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
    ScoringError,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[ScoringError], grpc.StatusCode] = {
    InvalidInputError: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    ModelNotReadyError: grpc.StatusCode.UNAVAILABLE,
    OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    DrainingError: grpc.StatusCode.UNAVAILABLE,
    InferenceFailedError: grpc.StatusCode.INTERNAL,
}
_REJECT_REASON = {
    InvalidInputError: "invalid_argument",
    ModelNotFoundError: "not_found",
    ModelNotReadyError: "not_ready",
    OverloadedError: "overload",
    DeadlineExceededError: "deadline",
    DrainingError: "draining",
}
UNKNOWN_MODEL_LABEL = "unknown"  # metrics label for names we don't serve: clients can't explode cardinality


def status_for(error: ScoringError) -> grpc.StatusCode:
    for error_type in type(error).__mro__:
        if error_type in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[error_type]
    return grpc.StatusCode.INTERNAL


class Admission:
    """Server-wide drain state and in-flight count."""

    def __init__(self) -> None:
        self.refusing = False
        self.inflight = 0
        self.last_arrival = time.monotonic()  # any call reaching a handler, refused or not
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.last_arrival = time.monotonic()
        if self.refusing:
            raise DrainingError("server is shutting down; retry on another instance")
        self.inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """True if every in-flight call finished within `timeout_s`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def wait_quiet(self, quiet_s: float, timeout_s: float) -> bool:
        """Until no call has arrived for `quiet_s` (True), or `timeout_s` passed (False).

        Calls gRPC accepted but the event loop has not yet handed to a handler are invisible to
        `inflight`; while they keep arriving, the server must stay up to refuse them with UNAVAILABLE
        (which clients retry elsewhere) rather than stop and have gRPC cancel them."""
        until = time.monotonic() + timeout_s
        while time.monotonic() - self.last_arrival < quiet_s:
            if time.monotonic() >= until:
                return False
            await asyncio.sleep(min(quiet_s / 4, 0.05))
        return True


@dataclass
class CallScope:
    started: float
    deadline: float | None  # event-loop time, or None when the client set no deadline
    queue_s: float | None = None
    inference_s: float | None = None

    def latency_us(self) -> int:
        return int((time.perf_counter() - self.started) * 1e6)


class CallRecorder:
    def __init__(self, admission: Admission, metrics: ServingMetrics, known_models: set[str]) -> None:
        self.admission = admission
        self.metrics = metrics
        self.known_models = known_models

    @asynccontextmanager
    async def scope(
        self,
        context: grpc.aio.ServicerContext,
        model: str,
        method: str,
        *,
        admit: bool = True,
        abort: bool = True,
    ) -> AsyncIterator[CallScope]:
        """`abort=False` records the outcome but re-raises the error, for work running in a task other than
        the RPC's handler (a streamed message): only the handler may end the RPC (see `end_rpc`)."""
        label = model if model in self.known_models else UNKNOWN_MODEL_LABEL
        remaining = context.time_remaining()
        deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
        call = CallScope(time.perf_counter(), deadline)
        code = grpc.StatusCode.OK
        entered = False
        try:
            if admit:
                self.admission.enter()
                entered = True
            with self.metrics.inflight(label, method):
                yield call
        except ScoringError as exc:
            code = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                self.metrics.count_failed(label, "inference_error")
            else:
                self.metrics.count_rejected(label, _REJECT_REASON.get(type(exc), "other"))
            if not abort:
                raise
            await context.abort(code, str(exc))
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = getattr(context, "code", lambda: None)() or grpc.StatusCode.UNKNOWN
            raise
        except Exception:
            log.exception("event=internal_error model=%s method=%s", label, method)
            code = grpc.StatusCode.INTERNAL
            self.metrics.count_failed(label, "internal")
            if not abort:
                raise
            await context.abort(code, "internal server error (logged)")
        finally:
            if entered:
                self.admission.leave()
            self.metrics.observe_call(
                label, method, code.name, time.perf_counter() - call.started, call.queue_s, call.inference_s
            )


async def end_rpc(context: grpc.aio.ServicerContext, error: Exception) -> None:
    """End the RPC for an error that a helper task raised (see CallRecorder.scope(abort=False))."""
    if isinstance(error, ScoringError):
        await context.abort(status_for(error), str(error))
    await context.abort(grpc.StatusCode.INTERNAL, "internal server error (logged)")
