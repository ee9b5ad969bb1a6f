"""A tiny grpc.aio peer speaking riskserve's domain API and the Open Inference Protocol, for the load tester.

The load tester is a protocol-level client; this peer lets tests create conditions a real server does not
produce on demand: a fixed delay, one whole-process stall (the event loop blocked, like a GC pause), and
refusing calls with RESOURCE_EXHAUSTED above an in-flight limit. It answers with well-formed messages.
"""

import asyncio
import threading
import time
from dataclasses import dataclass

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc


@dataclass
class PeerBehaviour:
    delay_ms: float = 0.0  # added to every answer (awaited: other calls proceed)
    stall_ms: float = 0.0  # one blocking stall of the whole server...
    stall_after_s: float = 0.0  # ...this long after the first call arrived
    max_in_flight: int | None = None  # above it, calls are refused at once with `refusal`
    refusal: grpc.StatusCode = grpc.StatusCode.RESOURCE_EXHAUSTED
    end_stream_after: int | None = None  # a ScoreStream ends with INVALID_ARGUMENT after this many messages


class _State:
    def __init__(self, behaviour: PeerBehaviour) -> None:
        self.behaviour = behaviour
        self.first_call: float | None = None
        self.stalled = False
        self.in_flight = 0
        self.calls = 0
        self.received: list = []  # the first requests, to check what the load tester sent

    async def serve_one(self, context: grpc.aio.ServicerContext, request=None) -> None:
        now = time.monotonic()
        self.calls += 1
        if len(self.received) < 100:
            self.received.append(request)
        if self.first_call is None:
            self.first_call = now
        b = self.behaviour
        if b.stall_ms and not self.stalled and now - self.first_call >= b.stall_after_s:
            self.stalled = True
            time.sleep(b.stall_ms / 1000)  # blocks the event loop on purpose: every call waits
        if b.max_in_flight is not None and self.in_flight >= b.max_in_flight:
            await context.abort(b.refusal, "queue full")
        self.in_flight += 1
        try:
            if b.delay_ms:
                await asyncio.sleep(b.delay_ms / 1000)
        finally:
            self.in_flight -= 1


def _fraud_score(transaction: scoring_pb2.Transaction) -> scoring_pb2.FraudScore:
    probability = min(1.0, transaction.amount / 10_000)
    return scoring_pb2.FraudScore(
        transaction_id=transaction.transaction_id,
        probability=probability,
        risk_score=int(probability * 999),
        decision=scoring_pb2.APPROVE,
    )


class _Fraud(scoring_pb2_grpc.FraudScoringServicer):
    def __init__(self, state: _State) -> None:
        self.state = state

    async def Score(self, request, context):
        await self.state.serve_one(context, request)
        return _fraud_score(request)

    async def ScoreBatch(self, request, context):
        await self.state.serve_one(context, request)
        return scoring_pb2.FraudScoreBatch(scores=[_fraud_score(t) for t in request.transactions])

    async def ScoreStream(self, request_iterator, context):
        limit = self.state.behaviour.end_stream_after
        count = 0
        async for transaction in request_iterator:
            count += 1
            if limit is not None and count > limit:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"stream message {count}: bad amount")
            await self.state.serve_one(context, transaction)
            yield _fraud_score(transaction)


class _Credit(scoring_pb2_grpc.CreditScoringServicer):
    def __init__(self, state: _State) -> None:
        self.state = state

    async def Assess(self, request, context):
        await self.state.serve_one(context, request)
        return scoring_pb2.CreditAssessment(
            application_id=request.application_id,
            probability_of_default=0.1,
            score=650,
            decision=scoring_pb2.APPROVE,
        )


class _Inference(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, state: _State) -> None:
        self.state = state

    async def ModelInfer(self, request, context):
        await self.state.serve_one(context, request)
        rows = request.inputs[0].shape[0] if request.inputs else 0
        response = service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
        response.outputs.add(name="probabilities", datatype="FP32", shape=[rows, 2])
        response.raw_output_contents.append(b"\0" * (8 * rows))
        return response


class PeerServer:
    """Runs the peer on 127.0.0.1 (free port) in a background thread with its own event loop."""

    def __init__(self, behaviour: PeerBehaviour | None = None) -> None:
        self.state = _State(behaviour or PeerBehaviour())
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "PeerServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("peer server did not start")
        return self

    def __exit__(self, *exc_info) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        server = grpc.aio.server()
        scoring_pb2_grpc.add_FraudScoringServicer_to_server(_Fraud(self.state), server)
        scoring_pb2_grpc.add_CreditScoringServicer_to_server(_Credit(self.state), server)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_Inference(self.state), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await server.stop(0.5)
