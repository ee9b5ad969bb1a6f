"""The second floor: a bare grpc.aio server that runs ONNX Runtime inline in the handler, nothing else.

Same transport options as the echo floor and riskserve; the same INT8 file riskserve serves, with the same
session options. `Score` and `ScoreBatch` read the transaction's fields into feeds (no validation, no
metrics, no batching), `ModelInfer` decodes `raw_input_contents` with `np.frombuffer`; every answer carries
the positive-class probability. What riskserve costs beyond this is riskserve's own work.
Run as a process: `python -m benchmarks.serving.ort_floor_server PORT MODEL.onnx [asyncio|uvloop]`: on the
standard library's event loop by default (the floor as defined), or on uvloop, the loop riskserve serves on
by default, so riskserve's own cost can be read against a floor on the same loop.
"""

import sys
from operator import attrgetter

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from benchmarks.serving.oip_metadata import MetadataMixin
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.app import event_loop
from server.app.request_guard import ScoringMethodsOnly
from server.config.settings import EventLoop, ServerSettings
from server.ort_session import create_session, latency_session_options

NUMBERS = ("amount", "hour_of_day")
BEHAVIOUR = (
    "txn_count_1h",
    "txn_count_24h",
    "amount_sum_1h",
    "amount_sum_24h",
    "seconds_since_last_txn",
    "distance_from_home_km",
    "is_new_merchant",
    "is_new_device",
)
STRINGS = ("currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode")
_strings = attrgetter(*STRINGS)
_behaviour = attrgetter(*BEHAVIOUR)


class Floor:
    def __init__(self, model_path: str) -> None:
        self.session = create_session(model_path, latency_session_options(1))
        self.run = self.session._sess.run
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.string_inputs = {i.name for i in self.session.get_inputs() if i.type == "tensor(string)"}

    def score_rows(self, transactions) -> np.ndarray:
        """Positive-class probability per transaction (feeds built column by column)."""
        numbers = np.array(
            [(t.amount, (t.timestamp // 3600) % 24, *_behaviour(t.behaviour)) for t in transactions],
            dtype=np.float32,
        )
        strings = np.array([_strings(t) for t in transactions], dtype=object)
        feeds = {name: numbers[:, i : i + 1] for i, name in enumerate((*NUMBERS, *BEHAVIOUR))}
        feeds.update({name: strings[:, i : i + 1] for i, name in enumerate(STRINGS)})
        return self.run(["probabilities"], feeds, None)[0][:, 1]


class FloorFraudScoring(scoring_pb2_grpc.FraudScoringServicer):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    async def Score(self, request, context):
        p = float(self.floor.score_rows((request,))[0])
        return scoring_pb2.FraudScore(transaction_id=request.transaction_id, probability=p)

    async def ScoreBatch(self, request, context):
        rows = request.transactions
        probabilities = self.floor.score_rows(rows).tolist()
        return scoring_pb2.FraudScoreBatch(
            scores=[
                scoring_pb2.FraudScore(transaction_id=t.transaction_id, probability=p)
                for t, p in zip(rows, probabilities, strict=True)
            ]
        )


class FloorInference(MetadataMixin, service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    async def ModelInfer(self, request, context):
        feeds = {}
        for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
            rows = tensor.shape[0]
            if tensor.name in self.floor.string_inputs:
                values, offset = [], 0
                for _ in range(rows):
                    length = int.from_bytes(raw[offset : offset + 4], "little")
                    values.append(raw[offset + 4 : offset + 4 + length].decode())
                    offset += 4 + length
                feeds[tensor.name] = np.array(values, dtype=object).reshape(rows, 1)
            else:
                feeds[tensor.name] = np.frombuffer(raw, dtype="<f4").reshape(rows, 1)
        outputs = self.floor.run(["probabilities"], feeds, None)[0]
        response = service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
        output = response.outputs.add(name="probabilities", datatype="FP32")
        output.shape.extend(outputs.shape)
        response.raw_output_contents.append(outputs.tobytes())
        return response


async def serve(port: int, model_path: str) -> None:
    limit = ServerSettings().max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    floor = Floor(model_path)
    registrar = ScoringMethodsOnly(server)  # registered by name as riskserve does
    scoring_pb2_grpc.add_FraudScoringServicer_to_server(FloorFraudScoring(floor), registrar)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(FloorInference(floor), registrar)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"ORT-inline floor listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    loop = EventLoop(sys.argv[3]) if len(sys.argv) > 3 else EventLoop.ASYNCIO
    event_loop.run(serve(int(sys.argv[1]), sys.argv[2]), loop)
