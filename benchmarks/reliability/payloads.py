"""Requests built from the bundled holdout files, and generic (bytes in, message out) gRPC callables."""

import struct

import grpc
import numpy as np
from tritonclient.grpc import service_pb2

from loadtest.request_bodies import applications, read_rows, transactions
from server.api.gen.riskserve.v1 import scoring_pb2
from server.config import load_model_config
from server.config.paths import default_models_dir
from server.runtime.domain_features import transaction_columns, transaction_namer

SCORE = "/riskserve.v1.FraudScoring/Score"
SCORE_BATCH = "/riskserve.v1.FraudScoring/ScoreBatch"
ASSESS = "/riskserve.v1.CreditScoring/Assess"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
RESPONSES = {
    SCORE: scoring_pb2.FraudScore,
    SCORE_BATCH: scoring_pb2.FraudScoreBatch,
    ASSESS: scoring_pb2.CreditAssessment,
    MODEL_INFER: service_pb2.ModelInferResponse,
}


def holdout_transactions(count: int, seed: int) -> list[scoring_pb2.Transaction]:
    """`count` fraud holdout rows drawn at random (seeded), as Transactions with their own ids."""
    path = default_models_dir() / "fraud" / "holdout.parquet"
    frame = read_rows(path)
    picked = np.random.default_rng(seed).choice(len(frame), size=count, replace=False)
    return transactions(frame.iloc[np.sort(picked)].reset_index(drop=True), path, None)


def holdout_applications(count: int) -> list[scoring_pb2.Application]:
    path = default_models_dir() / "credit" / "holdout.parquet"
    return applications(read_rows(path).head(count), path, None)


def infer_request(rows: list[scoring_pb2.Transaction], raw: bool) -> service_pb2.ModelInferRequest:
    """An Open Inference Protocol request for the fraud model: one [N, 1] tensor per input, mapped from the
    Transactions by the server's own domain mapping and typed by the model's config."""
    config = load_model_config(default_models_dir() / "fraud")
    columns = transaction_columns(rows, config.input_names, transaction_namer(None))
    request = service_pb2.ModelInferRequest(model_name="fraud")
    for spec in config.inputs:
        if spec.dtype == "float32":
            values = [float(v) for v in columns[spec.name]]
            tensor = request.inputs.add(name=spec.name, datatype="FP32", shape=[len(rows), 1])
            if raw:
                request.raw_input_contents.append(np.asarray(values, "<f4").tobytes())
            else:
                tensor.contents.fp32_contents.extend(values)
        else:
            encoded = [str(v).encode() for v in columns[spec.name]]
            tensor = request.inputs.add(name=spec.name, datatype="BYTES", shape=[len(rows), 1])
            if raw:
                request.raw_input_contents.append(b"".join(struct.pack("<I", len(v)) + v for v in encoded))
            else:
                tensor.contents.bytes_contents.extend(encoded)
    return request


def unary(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    """A callable sending already-serialized request bytes and parsing the method's response."""
    return channel.unary_unary(
        method, request_serializer=None, response_deserializer=RESPONSES[method].FromString
    )
