"""Every service's handlers, as registered: unparseable requests refused cleanly, status messages made safe.

gRPC parses a request with the method's deserializer before any servicer code runs; a message that does not
parse raised out of gRPC itself: UNKNOWN for the client and a 7-line ERROR traceback in the log per call (a
cheap way to flood the log). Here every handler gets a deserializer that never raises (it returns an
`_Unparseable` marker) and a behaviour that answers the marker with INVALID_ARGUMENT "request: not a valid
<type> message (N bytes)", counted in `riskserve_requests_rejected_total{reason="unparseable"}` and logged
once in a while (first, tenth, every thousandth), never with a traceback. In a request stream the first
unparseable message ends the stream the same way (raised out of the request iterator as an
InvalidInputError, so the servicer ends the stream from its own task).

The behaviour also hands the servicer a context whose `abort` passes the details through
server/runtime/echo.py's `safe_details` (card numbers masked, length capped): one net under every status
message, whichever module wrote it.
"""

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

from server.metrics import ServingMetrics
from server.runtime.echo import safe_details
from server.runtime.errors import InvalidInputError
from server.runtime.repository import UNKNOWN_MODEL_LABEL

log = logging.getLogger(__name__)

REASON = "unparseable"


class _Unparseable:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class UnparseableRequestError(InvalidInputError):
    """A message of a request stream did not parse."""

    def __init__(self, message: str) -> None:
        super().__init__("request", message.removeprefix("request: "))


class _SafeContext:
    """The servicer context, with status details made safe."""

    __slots__ = ("_context",)

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        await self._context.abort(code, safe_details(details), trailing_metadata)

    def set_details(self, details: str) -> None:
        self._context.set_details(safe_details(details))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class RequestGuard:
    """Wraps method handlers; `registrar(server)` is what the generated `add_*_to_server` functions get."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics
        self.refused = 0

    def registrar(self, server: grpc.aio.Server) -> "_Registrar":
        return _Registrar(server, self)

    def _tolerant(self, deserializer: Callable[[bytes], Any], type_name: str) -> Callable[[bytes], Any]:
        def parse(raw: bytes) -> Any:
            try:
                return deserializer(raw)
            except Exception:
                return _Unparseable(f"request: not a valid {type_name} message ({len(raw)} bytes)")

        return parse

    def _count(self, method: str) -> None:
        self.refused += 1
        self.metrics.count_rejected(UNKNOWN_MODEL_LABEL, REASON)
        if self.refused in (1, 10) or self.refused % 1000 == 0:  # a trace, not a flood
            log.warning("event=request_unparseable method=%s refused_total=%d", method, self.refused)

    async def _refuse(self, method: str, request: _Unparseable, context: grpc.aio.ServicerContext) -> None:
        self._count(method)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)

    def guard(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The same handler with a tolerant deserializer and a behaviour that refuses what did not parse."""
        if handler is None or handler.request_deserializer is None:
            return handler
        owner = getattr(handler.request_deserializer, "__self__", None)
        type_name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request")
        parse = self._tolerant(handler.request_deserializer, type_name)
        serialize = handler.response_serializer
        if handler.request_streaming:
            behavior = handler.stream_stream or handler.stream_unary
            make = (
                grpc.stream_stream_rpc_method_handler
                if handler.response_streaming
                else (grpc.stream_unary_rpc_method_handler)
            )
            return make(self._streaming(method, behavior), parse, serialize)
        behavior = handler.unary_stream or handler.unary_unary
        make = (
            grpc.unary_stream_rpc_method_handler
            if handler.response_streaming
            else (grpc.unary_unary_rpc_method_handler)
        )
        return make(self._unary(method, behavior), parse, serialize)

    def _unary(self, method: str, behavior: Callable) -> Callable:
        refuse = self._refuse
        if inspect.isasyncgenfunction(behavior):

            async def answers(request: Any, context: grpc.aio.ServicerContext):
                if request.__class__ is _Unparseable:
                    await refuse(method, request, context)
                async for answer in behavior(request, _SafeContext(context)):
                    yield answer

            return answers

        async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request.__class__ is _Unparseable:
                await refuse(method, request, context)
            return await behavior(request, _SafeContext(context))

        return answer

    def _streaming(self, method: str, behavior: Callable) -> Callable:
        """A request stream: the first unparseable message raises UnparseableRequestError out of the
        iterator (an InvalidInputError: our streaming servicer ends the stream with it from its own task;
        any other servicer's handler lets it out, and the wrapper ends the stream)."""
        guard = self

        async def checked(requests):
            async for request in requests:
                if request.__class__ is _Unparseable:
                    guard._count(method)
                    raise UnparseableRequestError(request.message)
                yield request

        if inspect.isasyncgenfunction(behavior):

            async def answers(requests, context: grpc.aio.ServicerContext):
                try:
                    async for answer in behavior(checked(requests), _SafeContext(context)):
                        yield answer
                except UnparseableRequestError as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

            return answers

        async def answer(requests, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behavior(checked(requests), _SafeContext(context))
            except UnparseableRequestError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        return answer


class _GuardedGenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, guard: RequestGuard) -> None:
        self._inner, self._guard = inner, guard
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        guarded = self._cache.get(method)
        if guarded is None:
            handler = self._inner.service(details)
            if handler is None:  # not one of ours: nothing cached for names a client makes up
                return None
            guarded = self._cache[method] = self._guard.guard(method, handler)
        return guarded


class _Registrar:
    """Stands in for the server while services register: their handlers are guarded on the way in."""

    def __init__(self, server: grpc.aio.Server, guard: RequestGuard) -> None:
        self._server, self._guard = server, guard

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GuardedGenericHandler(h, self._guard) for h in handlers))

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        guarded = {name: self._guard.guard(f"/{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, guarded)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)
