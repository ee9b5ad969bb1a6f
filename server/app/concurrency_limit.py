"""The concurrency limit at the door, before a request is even parsed: RESOURCE_EXHAUSTED at once when this
process already holds `max_concurrent_rpcs` scoring RPCs, or `max_concurrent_batch_rpcs` ScoreBatch RPCs.

Why (measured with the overload-step load test, docs/server.md "Admission control"): when ScoreBatch calls
arrive faster than the process scores them, the excess waits inside gRPC core, unrequested, before Python
(and our batchers' bounded row queues) ever sees it, until its deadline passes. Holding only a few
ScoreBatch calls at a time keeps gRPC's aio server accepting (and refusing) new calls quickly, so the excess
is answered RESOURCE_EXHAUSTED in milliseconds instead of timing out. gRPC's own `maximum_concurrent_rpcs`
cannot tell us about its refusals (nor tell methods apart); here they are counted in
`riskserve_requests_rejected_total{model="unknown", reason="concurrency_limit"}` and by code.

An RPC holds its slot from the moment gRPC hands it to Python until its task ends (like grpc's limiter).
Health checks and reflection are never refused: a busy process must still answer its probes.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from server.metrics import ServingMetrics
from server.runtime.repository import UNKNOWN_MODEL_LABEL

log = logging.getLogger(__name__)

REASON = "concurrency_limit"
BATCH_METHOD_SUFFIX = "/ScoreBatch"
_EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class ConcurrencyLimiter(grpc.aio.ServerInterceptor):
    """Refuse non-exempt RPCs beyond `max_rpcs` held, and ScoreBatch RPCs beyond `max_batch_rpcs` held
    (0: no limit)."""

    def __init__(self, max_rpcs: int, max_batch_rpcs: int, metrics: ServingMetrics) -> None:
        self.max_rpcs = max_rpcs or None
        self.max_batch_rpcs = max_batch_rpcs or None
        self.active = 0
        self.active_batch = 0
        self.refused = 0
        self._metrics = metrics

    @property
    def enabled(self) -> bool:
        return self.max_rpcs is not None or self.max_batch_rpcs is not None

    def _release(self, _task: asyncio.Task) -> None:
        self.active -= 1

    def _release_batch(self, _task: asyncio.Task) -> None:
        self.active -= 1
        self.active_batch -= 1

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_EXEMPT_PREFIXES):
            return handler
        batch = method.endswith(BATCH_METHOD_SUFFIX)
        if self.max_rpcs is not None and self.active >= self.max_rpcs:
            return self._refuse(handler, method, f"{self.active} calls in progress (max_concurrent_rpcs)")
        if batch and self.max_batch_rpcs is not None and self.active_batch >= self.max_batch_rpcs:
            return self._refuse(
                handler,
                method,
                f"{self.active_batch} ScoreBatch calls in progress (max_concurrent_batch_rpcs)",
            )
        task = asyncio.current_task()
        if task is not None:  # the RPC's own task: it ends when the RPC does
            self.active += 1
            if batch:
                self.active_batch += 1
            task.add_done_callback(self._release_batch if batch else self._release)
        return handler

    def _refuse(self, handler: grpc.RpcMethodHandler, method: str, why: str) -> grpc.RpcMethodHandler:
        started = time.perf_counter()
        self.refused += 1
        self._metrics.count_rejected(UNKNOWN_MODEL_LABEL, REASON)
        if self.refused in (1, 10) or self.refused % 1000 == 0:  # a trace, not a flood
            log.warning("event=admission_refused reason=%s refused_total=%d", REASON, self.refused)
        message = f"server busy: {why}; retry with backoff"
        label = method.rsplit("/", 1)[-1]

        async def refuse(_request_or_iterator: object, context: grpc.aio.ServicerContext) -> None:
            self._metrics.observe_call(
                UNKNOWN_MODEL_LABEL, label, "RESOURCE_EXHAUSTED", time.perf_counter() - started
            )
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

        # Same shape as the real method, but without a deserializer: the request is never parsed.
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(refuse)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)
