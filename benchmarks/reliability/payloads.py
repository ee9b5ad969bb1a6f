"""Requests built from the bundled models' holdout rows, and generic (bytes in, message out) gRPC callables.

The rows are read through server/model_data.py (the file each model's config names) and encoded by the load
tester's request encoders (loadtest/request_bodies.py): Transactions, Applications and Open Inference
Protocol requests are the bytes the load generator sends.
"""

import functools
from collections.abc import Sequence

import grpc
import numpy as np
import pandas as pd
from tritonclient.grpc import service_pb2

from loadtest.request_bodies import METHOD_PATHS, applications, infer_requests, transactions
from loadtest.scenario import CallKind, MixEntry
from server.api.gen.riskserve.v1 import scoring_pb2
from server.config import load_model_config
from server.config.model_config import ModelConfig
from server.config.paths import default_models_dir
from server.model_data import DataKind, data_path, read_model_data

SCORE = METHOD_PATHS[CallKind.FRAUD_SCORE]
SCORE_BATCH = METHOD_PATHS[CallKind.FRAUD_SCORE_BATCH]
ASSESS = METHOD_PATHS[CallKind.CREDIT_ASSESS]
MODEL_INFER = METHOD_PATHS[CallKind.OIP_INFER]
RESPONSES = {
    SCORE: scoring_pb2.FraudScore,
    SCORE_BATCH: scoring_pb2.FraudScoreBatch,
    ASSESS: scoring_pb2.CreditAssessment,
    MODEL_INFER: service_pb2.ModelInferResponse,
}
# Read beside the model inputs: the encoders take ids and the event time from the holdout when present.
ID_COLUMNS = {
    "fraud": ("transaction_id", "card_id", "merchant_id", "timestamp"),
    "credit": ("application_id",),
}


@functools.cache
def _config(model: str) -> ModelConfig:
    return load_model_config(default_models_dir() / model)


@functools.cache
def _holdout(model: str) -> pd.DataFrame:
    config = _config(model)
    return read_model_data(config, DataKind.HOLDOUT, (*ID_COLUMNS[model], *config.feature_names))


def _encoded(model: str, frame: pd.DataFrame, encoder) -> list:
    return encoder(frame.reset_index(drop=True), data_path(_config(model), DataKind.HOLDOUT), None)


def holdout_transactions(count: int, seed: int) -> list[scoring_pb2.Transaction]:
    """`count` fraud holdout rows drawn at random (seeded), as Transactions with their own ids."""
    frame = _holdout("fraud")
    picked = np.random.default_rng(seed).choice(len(frame), size=count, replace=False)
    return _encoded("fraud", frame.iloc[np.sort(picked)], transactions)


def holdout_applications(count: int) -> list[scoring_pb2.Application]:
    return _encoded("credit", _holdout("credit").head(count), applications)


def batch_bodies(rows: Sequence[scoring_pb2.Transaction], size: int) -> list[bytes]:
    """Serialized ScoreBatch requests of `size` consecutive rows (a short last batch left out)."""
    return [
        scoring_pb2.TransactionBatch(transactions=rows[i : i + size]).SerializeToString()
        for i in range(0, len(rows) - size + 1, size)
    ]


def infer_request(rows: Sequence[scoring_pb2.Transaction], raw: bool) -> service_pb2.ModelInferRequest:
    """An Open Inference Protocol request for the fraud model carrying the holdout rows these Transactions
    were made from: one [N, 1] tensor per model input, as the load tester encodes it (raw contents), or
    with typed contents when not `raw`."""
    holdout = _holdout("fraud").set_index("transaction_id", drop=False)
    frame = holdout.loc[[t.transaction_id for t in rows]]
    entry = MixEntry(call=CallKind.OIP_INFER, model="fraud", batch_size=len(rows))
    path = data_path(_config("fraud"), DataKind.HOLDOUT)
    (body,) = infer_requests(entry, frame.reset_index(drop=True), path, _config("fraud"))
    request = service_pb2.ModelInferRequest.FromString(body)
    return request if raw else _typed(request)


def _typed(request: service_pb2.ModelInferRequest) -> service_pb2.ModelInferRequest:
    """The same request with each tensor's values in its typed `contents` instead of `raw_input_contents`."""
    typed = service_pb2.ModelInferRequest()
    typed.CopyFrom(request)
    del typed.raw_input_contents[:]
    for tensor, raw in zip(typed.inputs, request.raw_input_contents, strict=True):
        if tensor.datatype == "FP32":
            tensor.contents.fp32_contents.extend(np.frombuffer(raw, "<f4").tolist())
            continue
        values, at = [], 0  # BYTES: each element a 4-byte little-endian length, then the bytes
        while at < len(raw):
            size = int.from_bytes(raw[at : at + 4], "little")
            values.append(raw[at + 4 : at + 4 + size])
            at += 4 + size
        tensor.contents.bytes_contents.extend(values)
    return typed


def unary(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    """A callable sending already-serialized request bytes and parsing the method's response."""
    return channel.unary_unary(
        method, request_serializer=None, response_deserializer=RESPONSES[method].FromString
    )
