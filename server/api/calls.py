"""What every RPC shares: admission (drain), the deadline, metrics, and the ONE error -> status mapping.

Servicers wrap their body in `async with calls.scope(context, model, method) as call:`; any ScoringError
raised inside (where the problem was detected) becomes its gRPC status here and nowhere else.
"""

import asyncio
import logging
import time
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

    def scope(
        self,
        context: grpc.aio.ServicerContext,
        model: str,
        method: str,
        *,
        admit: bool = True,
        abort: bool = True,
    ) -> "_Scope":
        """`async with` it around an RPC's body; yields the CallScope.

        `abort=False` records the outcome but re-raises the error, for work running in a task other than
        the RPC's handler (a streamed message): only the handler may end the RPC (see `end_rpc`)."""
        return _Scope(self, context, model, method, admit, abort)


class _Scope:
    """CallRecorder.scope as a plain async context manager (a generator-based one costs a few µs more per
    call): admission, the in-flight gauge, the error -> status mapping and one observe_call at the end."""

    __slots__ = (
        "_abort",
        "_admit",
        "_call",
        "_code",
        "_context",
        "_entered",
        "_label",
        "_method",
        "_recorder",
    )

    def __init__(
        self,
        recorder: CallRecorder,
        context: grpc.aio.ServicerContext,
        model: str,
        method: str,
        admit: bool,
        abort: bool,
    ) -> None:
        self._recorder, self._context, self._method = recorder, context, method
        self._admit, self._abort = admit, abort
        self._label = model if model in recorder.known_models else UNKNOWN_MODEL_LABEL

    async def __aenter__(self) -> CallScope:
        remaining = self._context.time_remaining()
        deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
        self._call = CallScope(time.perf_counter(), deadline)
        self._code = grpc.StatusCode.OK
        self._entered = False
        try:
            if self._admit:
                self._recorder.admission.enter()
                self._entered = True
            self._recorder.metrics.inflight_add(self._label, self._method, 1)
        except BaseException as exc:
            try:
                await self._outcome(exc)
            finally:
                self._finish()
            raise
        return self._call

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        self._recorder.metrics.inflight_add(self._label, self._method, -1)
        try:
            if exc is None:
                return False
            return await self._outcome(exc)
        finally:
            self._finish()

    async def _outcome(self, exc: BaseException) -> bool:
        """Record `exc`'s status; end the RPC with it (context.abort raises AbortError) when this scope
        ends RPCs. False: let `exc` propagate."""
        recorder, label = self._recorder, self._label
        if isinstance(exc, ScoringError):
            code = self._code = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                recorder.metrics.count_failed(label, "inference_error")
            else:
                recorder.metrics.count_rejected(label, _REJECT_REASON.get(type(exc), "other"))
            if not self._abort:
                return False
            await self._context.abort(code, str(exc))
            return True
        if isinstance(exc, asyncio.CancelledError):
            self._code = grpc.StatusCode.CANCELLED
            return False
        if isinstance(exc, grpc.aio.AbortError):
            self._code = getattr(self._context, "code", lambda: None)() or grpc.StatusCode.UNKNOWN
            return False
        if isinstance(exc, Exception):
            log.error("event=internal_error model=%s method=%s", label, self._method, exc_info=exc)
            self._code = grpc.StatusCode.INTERNAL
            recorder.metrics.count_failed(label, "internal")
            if not self._abort:
                return False
            await self._context.abort(self._code, "internal server error (logged)")
            return True
        return False

    def _finish(self) -> None:
        if self._entered:
            self._recorder.admission.leave()
        call = self._call
        self._recorder.metrics.observe_call(
            self._label,
            self._method,
            self._code.name,
            time.perf_counter() - call.started,
            call.queue_s,
            call.inference_s,
        )


async def end_rpc(context: grpc.aio.ServicerContext, error: Exception) -> None:
    """End the RPC for an error that a helper task raised (see CallRecorder.scope(abort=False))."""
    if isinstance(error, ScoringError):
        await context.abort(status_for(error), str(error))
    await context.abort(grpc.StatusCode.INTERNAL, "internal server error (logged)")
