"""Every service's handlers, as registered: a deserializer that never raises, the call's guard around them.

gRPC parses a request with the method's deserializer before any servicer code runs; a message that does not
parse raised out of gRPC itself: UNKNOWN for the client and a 7-line ERROR traceback in the log per call (a
cheap way to flood the log). Here every handler gets a deserializer that returns a marker instead and
counts large requests in the byte budget (`Calls.parser`), and a behaviour wrapped by server/api/calls.py's
guard, which answers the markers and makes status messages safe. This module only rebuilds handlers at
registration; it runs no code per call.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from server.api.calls import Calls

# The methods registered with gRPC core by name: the scoring calls. grpc.aio's server keeps a request
# outstanding per registered method and re-arms a callback on each of them whenever any call arrives, so
# every registered method costs every call; the others (metadata, health, reflection) are found by the
# generic handler, a dict lookup once per call of theirs.
CORE_REGISTERED_METHODS = frozenset(
    {
        "/riskserve.v1.FraudScoring/Score",
        "/riskserve.v1.FraudScoring/ScoreBatch",
        "/riskserve.v1.FraudScoring/ScoreStream",
        "/riskserve.v1.CreditScoring/Assess",
        "/inference.GRPCInferenceService/ModelInfer",
    }
)


def register_scoring_methods(
    server: grpc.aio.Server, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
) -> None:
    """`server.add_registered_method_handlers` for the CORE_REGISTERED_METHODS among `handlers` only."""
    scoring = {name: h for name, h in handlers.items() if f"/{service}/{name}" in CORE_REGISTERED_METHODS}
    if scoring:
        server.add_registered_method_handlers(service, scoring)


class ScoringMethodsOnly:
    """Stands in for a server while generated `add_*_to_server` functions register (unguarded): every
    handler stays reachable through the generic handler, only the scoring methods are registered by name.
    For servers that compare with riskserve on equal terms (the benchmarks' floors)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        register_scoring_methods(self._server, service, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class RequestGuard:
    """Wraps method handlers; `registrar(server)` is what the generated `add_*_to_server` functions get."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def registrar(self, server: grpc.aio.Server) -> "_Registrar":
        return _Registrar(server, self)

    def guard(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The same handler with a tolerant deserializer and the call's guard around its behaviour."""
        if handler is None:
            return handler
        owner = getattr(handler.request_deserializer, "__self__", None)
        type_name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request")
        parse = self.calls.parser(handler.request_deserializer, type_name)  # None: raw bytes, counted
        serialize = handler.response_serializer
        if handler.request_streaming:
            behavior = handler.stream_stream or handler.stream_unary
            make = (
                grpc.stream_stream_rpc_method_handler
                if handler.response_streaming
                else grpc.stream_unary_rpc_method_handler
            )
            return make(self.calls.guarded_streaming(method, behavior), parse, serialize)
        behavior = handler.unary_stream or handler.unary_unary
        make = (
            grpc.unary_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return make(self.calls.guarded_unary(method, behavior), parse, serialize)


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
        register_scoring_methods(self._server, service, guarded)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)
