"""What every RPC shares: its handler's guard, the drain state, the deadline, metrics, and the ONE
error -> status mapping.

Every registered handler runs inside `Calls.guarded_*` (registered by server/app/request_guard.py) and reads
its request through `Calls.parser`:
- a request that did not parse reaches the handler as an `Unparseable` marker and is answered
  INVALID_ARGUMENT "request: not a valid <type> message (N bytes)" without a traceback (counted as
  `reason="unparseable"`, logged once in a while);
- a request of LARGE_REQUEST_BYTES or more counts against the byte budget (`max_request_bytes_in_flight`)
  from before it is parsed until its call ends; one that would pass the budget is not parsed at all and is
  answered RESOURCE_EXHAUSTED (`reason="memory_budget"`) (gRPC core itself refuses a message over
  `max_message_bytes` from its length prefix, before holding it);
- the handler's context passes every status message through server/runtime/echo.py's `safe_details` (card
  numbers masked, length capped): one net under every status, whichever module wrote it.

Servicers wrap their body in a scope: `async with calls.unary(context, model, method) as call:` for a
unary RPC (admission at the door happens here: server/app/concurrency_limit.py), `calls.stream(context,
model)` around a streaming RPC and `calls.message(context, model, method)`
around each of its messages. A ScoringError raised inside (where the problem was detected) carries its own
status code and metric reason (server/runtime/errors.py); it becomes the RPC's status here and nowhere
else. Each scope records its call once when it ends: latency, queue wait, inference, the scores.
"""

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from server.app.concurrency_limit import Admission, client_of, worth_logging
from server.metrics import ServingMetrics
from server.runtime.echo import safe_details
from server.runtime.errors import DrainingError, InvalidInputError, OverloadedError, ScoringError
from server.runtime.prediction import Prediction
from server.runtime.repository import UNKNOWN_MODEL_LABEL

log = logging.getLogger(__name__)

_STATUS_BY_NAME = {code.name: code for code in grpc.StatusCode}
INTERNAL_MESSAGE = "internal server error (logged)"
_CODE_NAMES = {code: code.name for code in grpc.StatusCode}


def status_of(error: ScoringError) -> grpc.StatusCode:
    """The gRPC status an error type carries."""
    return _STATUS_BY_NAME[error.code]


class DrainState:
    """Whether this process still accepts calls (a drain refuses them), and how many it holds."""

    def __init__(self) -> None:
        self.refusing = False
        self.inflight = 0
        self.last_arrival = time.monotonic()  # any call reaching a handler, refused or not

    def enter(self) -> None:
        self.last_arrival = time.monotonic()
        if self.refusing:
            raise DrainingError("server is shutting down; retry on another instance")
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1

    async def wait_idle(self, timeout_s: float, poll_s: float = 0.01) -> bool:
        """True if every in-flight call finished within `timeout_s` (polled: nothing per call to signal)."""
        until = time.monotonic() + timeout_s
        while self.inflight:
            if time.monotonic() >= until:
                return False
            await asyncio.sleep(poll_s)
        return True

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


UNPARSEABLE_REASON = "unparseable"


LARGE_REQUEST_BYTES = 64 * 1024  # requests this size or larger count against the byte budget
BUDGET_REASON = "memory_budget"


class Unparseable:
    """What a request that did not parse reaches its handler as (`Calls.parser`)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class OverBudget:
    """A large request left unparsed: the byte budget was full when it arrived."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class Counted:
    """A large request, parsed, whose `size` bytes are held in the budget until its call ends."""

    __slots__ = ("message", "size")

    def __init__(self, message: Any, size: int) -> None:
        self.message, self.size = message, size


_MARKERS = frozenset({Unparseable, OverBudget, Counted})


def _bytes(raw: bytes) -> bytes:
    return raw


class UnparseableRequestError(InvalidInputError):
    """A message of a request stream did not parse."""

    def __init__(self, message: str) -> None:
        super().__init__("request", message.removeprefix("request: "))


class RequestBytesOverBudgetError(OverloadedError):
    """Refused unparsed: large requests in flight already hold `max_request_bytes_in_flight` bytes."""

    reason = BUDGET_REASON


class SafeContext:
    """The servicer context, with status details made safe."""

    __slots__ = ("_context", "time_remaining")

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self.time_remaining = context.time_remaining  # every scoring call asks: no __getattr__ on the way

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        await self._context.abort(code, safe_details(details), trailing_metadata)

    def set_details(self, details: str) -> None:
        self._context.set_details(safe_details(details))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class Calls:
    """Makes the guards and scopes of every RPC: one place for unparseable requests, drain, admission,
    metrics and error statuses."""

    def __init__(
        self, drain: DrainState, metrics: ServingMetrics, admission: Admission | None = None
    ) -> None:
        self.drain = drain
        self.metrics = metrics
        self.admission = admission or Admission()
        self.unparseable = 0

    # ---- guards: what gRPC calls, around each registered handler ------------------------------------

    def count_unparseable(self, method: str) -> None:
        self.unparseable += 1
        self.metrics.count_rejected(UNKNOWN_MODEL_LABEL, UNPARSEABLE_REASON)
        if worth_logging(self.unparseable):
            log.warning("event=request_unparseable method=%s refused_total=%d", method, self.unparseable)

    def parser(self, deserializer: Callable[[bytes], Any] | None, type_name: str) -> Callable[[bytes], Any]:
        """`deserializer` (None: the raw bytes) as gRPC calls it: it never raises (an Unparseable marker
        instead), and a large request is counted in the byte budget (Counted) or left unparsed (OverBudget).
        gRPC runs it on the event loop's thread, as every handler: no lock."""
        parse_raw = deserializer or _bytes
        calls = self

        def parse(raw: bytes) -> Any:
            size = len(raw)
            if size < LARGE_REQUEST_BYTES:
                try:
                    return parse_raw(raw)
                except Exception:
                    return Unparseable(f"request: not a valid {type_name} message ({size} bytes)")
            admission = calls.admission
            if admission.request_bytes + size > admission.max_request_bytes:
                return OverBudget(size)
            admission.request_bytes += size
            try:
                return Counted(parse_raw(raw), size)
            except Exception:
                admission.request_bytes -= size
                return Unparseable(f"request: not a valid {type_name} message ({size} bytes)")

        return parse

    def release_bytes(self, size: int) -> None:
        self.admission.request_bytes -= size

    def over_budget(self, method: str, size: int) -> RequestBytesOverBudgetError:
        """The refusal of a `size`-byte request that found the byte budget full: counted, logged now and
        then."""
        admission = self.admission
        self.metrics.count_rejected(UNKNOWN_MODEL_LABEL, BUDGET_REASON)
        admission.refused_bytes += 1
        if worth_logging(admission.refused_bytes):
            log.warning(
                "event=admission_refused reason=%s method=%s size_bytes=%d in_flight_bytes=%d "
                "refused_total=%d",
                BUDGET_REASON,
                method,
                size,
                admission.request_bytes,
                admission.refused_bytes,
            )
        return RequestBytesOverBudgetError(
            f"server busy: {admission.request_bytes / 2**20:.1f} MiB of large requests in flight, this one "
            f"{size / 2**20:.1f} MiB (max_request_bytes_in_flight {admission.max_request_bytes / 2**20:g} "
            "MiB); retry with backoff"
        )

    async def _refuse(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        """Answer a marker that reached a handler: Unparseable or OverBudget (AbortError out of here)."""
        if request.__class__ is Unparseable:
            self.count_unparseable(method)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(self.over_budget(method, request.size)))

    def guarded_unary(self, method: str, behavior: Callable) -> Callable:
        """`behavior` (one request in) refusing an Unparseable or OverBudget request, with a SafeContext;
        a Counted request's bytes are released when the call ends."""
        refuse, release = self._refuse, self.release_bytes

        if inspect.isasyncgenfunction(behavior):

            async def answers(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                size = 0
                if request.__class__ in _MARKERS:
                    if request.__class__ is not Counted:
                        await refuse(method, request, context)
                    request, size = request.message, request.size
                try:
                    async for answer in behavior(request, SafeContext(context)):
                        yield answer
                finally:
                    if size:
                        release(size)

            return answers

        async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request.__class__ in _MARKERS:
                if request.__class__ is not Counted:
                    await refuse(method, request, context)
                try:
                    return await behavior(request.message, SafeContext(context))
                finally:
                    release(request.size)
            return await behavior(request, SafeContext(context))

        return answer

    def guarded_streaming(self, method: str, behavior: Callable) -> Callable:
        """`behavior` (a request stream in): the first Unparseable message raises UnparseableRequestError
        out of the iterator (an InvalidInputError: our streaming servicer ends the stream with it from its
        own task; any other servicer's handler lets it out, and this wrapper ends the stream); an OverBudget
        message ends it with RESOURCE_EXHAUSTED the same way. A Counted message is held in the budget until
        the servicer asks for the next one."""
        count, release, over_budget = self.count_unparseable, self.release_bytes, self.over_budget

        async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                kind = request.__class__
                if kind is Unparseable:
                    count(method)
                    raise UnparseableRequestError(request.message)
                if kind is OverBudget:
                    raise over_budget(method, request.size)
                if kind is Counted:
                    try:
                        yield request.message
                    finally:
                        release(request.size)
                    continue
                yield request

        ends_stream = (UnparseableRequestError, RequestBytesOverBudgetError)

        if inspect.isasyncgenfunction(behavior):

            async def answers(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext):
                try:
                    async for answer in behavior(checked(requests), SafeContext(context)):
                        yield answer
                except ends_stream as exc:
                    await context.abort(status_of(exc), str(exc))

            return answers

        async def answer(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behavior(checked(requests), SafeContext(context))
            except ends_stream as exc:
                await context.abort(status_of(exc), str(exc))

        return answer

    # ---- scopes: what a servicer's body runs in ----------------------------------------------------------

    def unary(
        self,
        context: grpc.aio.ServicerContext,
        model: str,
        method: str,
        *,
        admit: bool = True,
        batch: bool = False,
    ) -> "CallScope":
        """Around a unary RPC's body: an error ends the RPC with its status. `admit` takes a slot at the door
        (server/app/concurrency_limit.py) and refuses during a drain; `admit=False` (metadata RPCs) answers
        always. `batch`: a ScoreBatch slot too. `model` is the metrics label (repository.ModelSlot.label)."""
        return CallScope(self, context, model, method, admit, batch, True)

    def message(self, context: grpc.aio.ServicerContext, model: str, method: str) -> "CallScope":
        """Around one streamed message: recorded like a call; an error is re-raised for the stream's
        scope to end the RPC with (only the RPC's own handler may end it)."""
        return CallScope(self, context, model, method, False, False, False)

    def stream(self, context: grpc.aio.ServicerContext, model: str) -> "_StreamScope":
        """Around a streaming RPC: admitted once for the whole stream (a stream slot of its client); any
        error ends it with its status."""
        return _StreamScope(self, context, model)


_IDLE, _HOLDING, _WORKING = 0, 1, 2  # what a scope holds at the door


class CallScope:
    """One call's scope, and what its body sees of it: when it started, its deadline, its prediction.

    A plain async context manager (a generator-based one costs a few µs more per call): drain, admission,
    the in-flight gauge, the error -> status mapping and one record at the end. One object per call."""

    __slots__ = (
        "_admit",
        "_batch",
        "_calls",
        "_code",
        "_context",
        "_ends_rpc",
        "_entered",
        "_held",
        "_label",
        "_method",
        "deadline",
        "prediction",
        "started",
    )

    def __init__(
        self,
        calls: Calls,
        context: grpc.aio.ServicerContext,
        model: str,
        method: str,
        admit: bool,
        batch: bool,
        ends_rpc: bool,
    ) -> None:
        self._calls, self._context, self._label, self._method = calls, context, model, method
        self._admit, self._batch, self._ends_rpc = admit, batch, ends_rpc
        self.prediction: Prediction | None = None  # set by the body; recorded when the scope ends

    def latency_us(self) -> int:
        return int((time.perf_counter() - self.started) * 1e6)

    def relabel(self, model: str) -> None:
        """Record this call under another model label from now on (known once the request is parsed)."""
        if model != self._label:
            if self._held:
                self._calls.metrics.inflight_add(self._label, self._method, -1)
                self._calls.metrics.inflight_add(model, self._method, 1)
            self._label = model

    async def __aenter__(self) -> "CallScope":
        self.started = time.perf_counter()
        remaining = self._context.time_remaining()
        now = time.monotonic()  # every deadline's clock (server/app/event_loop.py)
        self.deadline = None if remaining is None else now + remaining  # None: the client set no deadline
        self._code = "OK"  # the status's name, as the metrics label it
        self._entered = False
        self._held = _IDLE
        if self._admit:
            calls = self._calls
            drain, admission = calls.drain, calls.admission
            if (  # the common case inline: a free working slot, nothing waiting, no drain
                not drain.refusing
                and not self._batch
                and admission.held < admission.max_rpcs
                and admission.active < admission.max_active
                and not admission.queue
            ):
                drain.last_arrival = now
                drain.inflight += 1
                admission.held += 1
                admission.active += 1
                self._entered, self._held = True, _WORKING
                calls.metrics.inflight_add(self._label, self._method, 1)
                return self
            try:
                await self._admission()
            except BaseException as exc:
                try:
                    await self._outcome(exc)
                finally:
                    self._finish()
                raise
        return self

    async def _admission(self) -> None:
        calls = self._calls
        calls.drain.enter()
        self._entered = True
        admission = calls.admission
        work_now = admission.take(self._batch)
        self._held = _HOLDING
        calls.metrics.inflight_add(self._label, self._method, 1)
        if not work_now:
            try:
                await admission.wait(self._batch)
            except BaseException:
                self._held = _IDLE  # `wait` gave the slot back
                calls.metrics.inflight_add(self._label, self._method, -1)
                raise
        self._held = _WORKING

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        try:
            if exc is None:
                return False
            return await self._outcome(exc)
        finally:
            self._finish()

    async def _outcome(self, exc: BaseException) -> bool:
        """Record `exc`'s status; end the RPC with it (context.abort raises AbortError) when this scope
        ends RPCs. False: let `exc` propagate."""
        metrics, label = self._calls.metrics, self._label
        if isinstance(exc, ScoringError):
            code = status_of(exc)
            self._code = _CODE_NAMES[code]
            if code is grpc.StatusCode.INTERNAL:
                metrics.count_failed(label, exc.reason)
            else:
                metrics.count_rejected(label, exc.reason)
            if not self._ends_rpc:
                return False
            await self._context.abort(code, str(exc))
            return True
        if isinstance(exc, asyncio.CancelledError):
            self._code = "CANCELLED"
            return False
        if isinstance(exc, grpc.aio.AbortError):
            code = getattr(self._context, "code", lambda: None)() or grpc.StatusCode.UNKNOWN
            self._code = _CODE_NAMES[code]
            return False
        if isinstance(exc, Exception):
            log.error("event=internal_error model=%s method=%s", label, self._method, exc_info=exc)
            self._code = "INTERNAL"
            metrics.count_failed(label, "internal")
            if not self._ends_rpc:
                return False
            await self._context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
            return True
        return False

    def _finish(self) -> None:
        calls = self._calls
        held = self._held == _WORKING
        if held:
            admission = calls.admission
            if self._batch or admission.queue:
                admission.release(self._batch)
            else:  # nothing waits for the slot: give it back inline
                admission.held -= 1
                admission.active -= 1
        if self._entered:
            calls.drain.inflight -= 1
        calls.metrics.observe_prediction(
            self._label,
            self._method,
            self._code,
            time.perf_counter() - self.started,
            self.prediction,
            held,
        )


class _StreamScope:
    """A streaming RPC: drain and a stream slot once, and the status of whatever error ends the stream (the
    per-message scopes have recorded and logged it already)."""

    __slots__ = ("_calls", "_client", "_context", "_entered", "_label")

    def __init__(self, calls: Calls, context: grpc.aio.ServicerContext, model: str) -> None:
        self._calls, self._context, self._label = calls, context, model
        self._entered = False
        self._client: str | None = None

    async def __aenter__(self) -> None:
        calls = self._calls
        try:
            calls.drain.enter()
            self._entered = True
            client = client_of(self._context.peer() or "")
            calls.admission.open_stream(client)
            self._client = client
        except ScoringError as exc:
            if self._entered:
                calls.drain.leave()
            calls.metrics.count_rejected(self._label, exc.reason)
            await self._context.abort(status_of(exc), str(exc))
        calls.metrics.inflight_add(self._label, "ScoreStream", 1)

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        calls = self._calls
        if self._client is not None:
            calls.admission.close_stream(self._client)
            calls.metrics.inflight_add(self._label, "ScoreStream", -1)
        if self._entered:
            calls.drain.leave()
        if isinstance(exc, ScoringError):
            await self._context.abort(status_of(exc), str(exc))
        if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
            await self._context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        return False
