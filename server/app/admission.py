"""Concurrency limit at the door: past `max_concurrent_rpcs` scoring RPCs held by this process, a new one
is answered RESOURCE_EXHAUSTED at once, before its request is even parsed.

Why: when the event loop is saturated (e.g. ScoreBatch arriving faster than the process can parse it),
accepted calls wait in gRPC's task queue before any handler (and our batchers' bounded queues) sees
them, until their deadline passes. Bounding the RPCs held bounds that wait. grpc's own
`maximum_concurrent_rpcs` does the same but cannot tell us about its refusals; this interceptor counts them
in `riskserve_requests_rejected_total{reason="concurrency_limit"}` and by code.

An RPC holds its slot from the moment gRPC hands it to Python until its task ends (like grpc's limiter).
Health checks and reflection are never limited: a saturated process must still answer its probes.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from server.api.calls import UNKNOWN_MODEL_LABEL
from server.metrics import ServingMetrics

log = logging.getLogger(__name__)

REASON = "concurrency_limit"
_EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class ConcurrencyLimit(grpc.aio.ServerInterceptor):
    """Admit at most `limit` concurrent (non-exempt) RPCs; refuse the rest with RESOURCE_EXHAUSTED."""

    def __init__(self, limit: int, metrics: ServingMetrics) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0
        self._metrics = metrics
        self._message = (
            f"server busy: {limit} calls in progress (max_concurrent_rpcs); retry with backoff"
        )

    def _release(self, _task: asyncio.Task) -> None:
        self.active -= 1

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_EXEMPT_PREFIXES):
            return handler
        if self.active < self.limit:
            task = asyncio.current_task()
            if task is not None:  # the RPC's own task: it ends when the RPC does
                self.active += 1
                task.add_done_callback(self._release)
            return handler
        started = time.perf_counter()
        self.refused += 1
        method = details.method.rsplit("/", 1)[-1]
        self._metrics.count_rejected(UNKNOWN_MODEL_LABEL, REASON)
        if self.refused == 1 or self.refused % 1000 == 0:  # a log line, not a log flood
            log.warning("event=concurrency_limit limit=%d refused_total=%d", self.limit, self.refused)
        return self._refusal(handler, method, started)

    def _refusal(self, handler: grpc.RpcMethodHandler, method: str, started: float) -> grpc.RpcMethodHandler:
        async def refuse(_request_or_iterator: object, context: grpc.aio.ServicerContext) -> None:
            self._metrics.observe_call(
                UNKNOWN_MODEL_LABEL, method, "RESOURCE_EXHAUSTED", time.perf_counter() - started
            )
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._message)

        # Same shape as the real method, but without a deserializer: the request is never parsed.
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(refuse)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)
