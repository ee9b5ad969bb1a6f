"""The floor: a bare grpc.aio server with riskserve's transport settings that answers without scoring.

It implements the same two front doors as riskserve (FraudScoring.Score and the Open Inference Protocol's
ModelInfer) with canned answers, so the same client and payloads measure what Python gRPC alone costs here.
Run as a process: `python -m benchmarks.serving.echo_server PORT`.
"""

import asyncio
import sys

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from benchmarks.serving.oip_metadata import MetadataMixin
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.app.request_guard import ScoringMethodsOnly
from server.config.settings import ServerSettings

CANNED_PROBABILITIES = np.array([[0.99, 0.01]], dtype=np.float32).tobytes()


class EchoFraudScoring(scoring_pb2_grpc.FraudScoringServicer):
    async def Score(self, request: scoring_pb2.Transaction, context: grpc.aio.ServicerContext):
        return scoring_pb2.FraudScore(
            transaction_id=request.transaction_id,
            probability=0.01,
            risk_score=10,
            decision=scoring_pb2.APPROVE,
        )


class EchoInference(MetadataMixin, service_pb2_grpc.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request, context):
        response = service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
        output = response.outputs.add(name="probabilities", datatype="FP32")
        output.shape.extend([1, 2])
        response.raw_output_contents.append(CANNED_PROBABILITIES)
        return response


async def serve(port: int) -> None:
    limit = ServerSettings().max_message_bytes
    server = grpc.aio.server(  # riskserve's transport options (server/app/grpc_server.py)
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    registrar = ScoringMethodsOnly(server)  # registered by name as riskserve does
    scoring_pb2_grpc.add_FraudScoringServicer_to_server(EchoFraudScoring(), registrar)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(EchoInference(), registrar)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"echo server listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
