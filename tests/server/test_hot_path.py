"""The unary fast paths (one row in plain Python) give exactly what the general, vectorized paths give."""

import asyncio

import numpy as np
import pandas as pd
import pytest

from server.api.domain_api import TRANSACTION, MessageColumns
from server.config.model_config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.config.settings import ServerSettings
from server.runtime.errors import InvalidInputError
from server.runtime.features import FeatureSchema, plain_namer
from server.runtime.model_runtime import ModelRuntime
from server.runtime.prediction import (
    _RISK_SCORE_FLOORS,
    decide,
    decide_one,
    fraud_risk_score_one,
    fraud_risk_scores,
)
from server.served_model import GateVerdict, ModelFacts, Precision, PreparedModel
from tests.e2e.requests import TIMESTAMP_14H, risky_transaction, transaction

FRAUD_DIR = BUNDLED_MODELS_DIR / "fraud"
pytestmark = pytest.mark.skipif(not (FRAUD_DIR / "config.yaml").is_file(), reason="fraud model not built")


@pytest.fixture(scope="module")
def config():
    return load_model_config(FRAUD_DIR)


@pytest.fixture(scope="module")
def schema(config) -> FeatureSchema:
    return FeatureSchema.from_config(config)


def test_one_row_tensors_equal_the_general_path_on_holdout_rows(config, schema):
    holdout = pd.read_parquet(config.holdout_path, columns=config.feature_names).head(300)
    columns = {c: holdout[c].tolist() for c in config.feature_names}
    together = schema.validate(columns, len(holdout))  # general path
    for row in range(len(holdout)):
        one = {c: [values[row]] for c, values in columns.items()}
        assert schema._validate_one_row(one) is not None  # the fast path is taken
        tensors = schema.validate(one, 1)
        assert list(tensors) == list(together)
        for name, tensor in tensors.items():
            expected = together[name][row : row + 1]
            assert tensor.shape == (1, 1) and tensor.dtype == expected.dtype and tensor.flags["C_CONTIGUOUS"]
            assert tensor.tolist() == expected.tolist()
            assert tensor.dtype == object or tensor.tobytes() == expected.tobytes()


def test_one_transaction_columns_equal_the_batch_path(config, schema):
    reader = MessageColumns(config, TRANSACTION)
    namer = reader.namer
    transactions = [
        transaction(),
        risky_transaction(),
        transaction(timestamp=TIMESTAMP_14H + 9 * 3600 + 59),
        transaction(amount=0.0, behaviour={"txn_count_1h": 0}),
    ]
    pair = reader.columns([*transactions, transactions[0]], namer)  # general path
    for row, message in enumerate(transactions):
        one = reader.columns([message], namer)
        assert {k: [v[0]] for k, v in one.items()} == {k: [v[row]] for k, v in pair.items()}
        general = schema.validate({k: [v[row]] * 2 for k, v in pair.items()}, 2)
        for name, tensor in schema.validate(one, 1, namer).items():
            assert tensor.tolist() == general[name][:1].tolist()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"amount": float("nan")}, "amount[0]: not a finite number (nan)"),
        ({"amount": float("inf")}, "amount[0]: not a finite number (inf)"),
        ({"amount": -0.5}, "amount[0]: value -0.5 outside the allowed range [0, inf]"),
        ({"amount": 1e39}, "amount[0]: value 1e+39 outside the allowed range"),
        ({"hour_of_day": 24}, "hour_of_day[0]: value 24 outside the allowed range [0, 23]"),
        ({"hour_of_day": 2**60}, "hour_of_day[0]: value 1.15292e+18 outside the allowed range [0, 23]"),
        ({"currency": "XXX"}, "currency[0]: unknown value 'XXX'"),
        ({"currency": ""}, "currency[0]: missing"),
        ({"amount": None}, "amount: missing"),
    ],
)
def test_one_bad_row_reports_like_the_general_path(config, schema, overrides, message):
    row = {
        c: [v.ravel()[0].item() if v.dtype != object else v.ravel()[0]] for c, v in _reference(config).items()
    }
    for name, value in overrides.items():
        if value is None:
            del row[name]
        else:
            row[name] = [value]
    with pytest.raises(InvalidInputError) as caught:
        schema.validate(row, 1)
    assert str(caught.value).startswith(message)


def test_numpy_scalars_and_bools_validate_like_plain_numbers(config, schema):
    plain = {
        c: [v.ravel()[0].item() if v.dtype != object else v.ravel()[0]] for c, v in _reference(config).items()
    }
    mixed = dict(plain, amount=[np.float32(plain["amount"][0])], is_new_device=[True])
    mixed["hour_of_day"] = [np.int64(plain["hour_of_day"][0])]
    expected = schema.validate({k: v * 2 for k, v in mixed.items()}, 2)
    for name, tensor in schema.validate(mixed, 1).items():
        assert tensor.tolist() == expected[name][:1].tolist()


def test_risk_score_of_one_probability_matches_the_vectorized_mapping():
    rng = np.random.default_rng(7)
    floors = np.array(_RISK_SCORE_FLOORS)
    p = np.concatenate(
        [
            rng.random(20_000),
            10 ** rng.uniform(-7, 0, 20_000),
            rng.random(20_000).astype(np.float32).astype(np.float64),
            floors,
            np.nextafter(floors, 0),
            np.nextafter(floors, 2),
            [0.0, -0.0, 1.0, 1e-6, 1e-7, -1.0, 2.0],
        ]
    )
    expected = fraud_risk_scores(p).tolist()
    assert [fraud_risk_score_one(x) for x in p.tolist()] == expected


def test_decision_of_one_probability_matches_decide(config):
    thresholds = config.decision
    p = [
        0.0,
        thresholds.review,
        np.nextafter(thresholds.review, 0),
        thresholds.decline,
        0.5,
        1.0,
        float("nan"),
    ]
    assert [decide_one(x, thresholds) for x in p] == decide(np.array(p), thresholds).tolist()


def _reference(config) -> dict[str, np.ndarray]:
    holdout = pd.read_parquet(config.holdout_path, columns=config.feature_names).head(1)
    return {c: holdout[c].to_numpy().reshape(1, 1) for c in config.feature_names}


def test_unary_scores_equal_plain_session_run_and_vectorized_mapping(config):
    """ModelRuntime.predict on a real runtime (inline, one row at a time) vs the runtime's inference on the
    general path's tensors."""
    facts = ModelFacts(config.name, config.version, config.task.value, Precision.FP32, GateVerdict.DISABLED)
    prepared = PreparedModel(facts, config.onnx_path)
    runtime = ModelRuntime.load(config, prepared, ServerSettings())
    holdout = pd.read_parquet(config.holdout_path, columns=config.feature_names).head(64)
    columns = {c: holdout[c].tolist() for c in config.feature_names}
    tensors = runtime.schema.validate(columns, len(holdout))  # the general path
    expected = np.concatenate(
        [
            runtime.run_batch({k: v[i : i + 1] for k, v in tensors.items()})
            for i in range(len(holdout))  # the runtime's own inference (fixed chunks for this FP32 model)
        ]
    )[:, 1].astype(np.float64)

    async def score_each() -> list:
        runtime.start()
        try:
            rows = [{c: [v[i]] for c, v in columns.items()} for i in range(len(holdout))]
            return [await runtime.predict(row, 1, plain_namer, None) for row in rows]
        finally:
            await runtime.stop()

    answers = asyncio.run(score_each())
    assert [a.probabilities[0] for a in answers] == expected.tolist()
    assert [a.scores[0] for a in answers] == fraud_risk_scores(expected).tolist()
    assert [a.decisions[0] for a in answers] == decide(expected, config.decision).tolist()


def test_raw_model_infer_columns_equal_the_general_path(config):
    """ModelInfer's raw fast path (server/api/inference_converters.py) decodes what the general path
    decodes, one row and 256 rows; anything unusual is left to the general path."""
    from tritonclient.grpc import service_pb2

    from loadtest.request_bodies import build_pool
    from loadtest.scenario import CallKind, MixEntry
    from server.api.inference_converters import TensorLayout, _raw_columns, general_columns

    layout = TensorLayout.of(config)
    for rows in (1, 256):
        pool = build_pool(MixEntry(call=CallKind.OIP_INFER, model="fraud", batch_size=rows))
        for body in pool.bodies[:20]:
            request = service_pb2.ModelInferRequest.FromString(body)
            fast = _raw_columns(request, layout, 4096)
            assert fast is not None
            general = general_columns(request, layout, 4096, config)
            assert fast[1] == general[1] == rows and list(fast[0]) == list(general[0])
            for name, values in fast[0].items():
                assert np.asarray(values).tolist() == np.asarray(general[0][name]).tolist()
                assert np.asarray(values).dtype == np.asarray(general[0][name]).dtype
    request = service_pb2.ModelInferRequest.FromString(pool.bodies[0])
    request.outputs.add(name="decision")
    assert _raw_columns(request, layout, 4096) is None  # named outputs: general path
    request = service_pb2.ModelInferRequest.FromString(pool.bodies[0])
    request.inputs[3].shape[:] = [256]
    assert _raw_columns(request, layout, 4096) is None  # [N]: general path
    request = service_pb2.ModelInferRequest.FromString(pool.bodies[0])
    request.inputs[1].name = request.inputs[0].name
    assert _raw_columns(request, layout, 4096) is None  # given twice: general path reports it


def test_model_infer_answer_from_the_template_equals_the_general_answer(config):
    from tritonclient.grpc import service_pb2

    from server.api.inference_converters import DECISION_OUTPUT, infer_response
    from server.runtime.prediction import Prediction

    predictions = [
        Prediction(np.array([[0.9, 0.1], [0.2, 0.8]], "f4"), [0.1, 0.8], [832, 967], [3, 3], None, 0, 0),
        # one row (its template holds the shapes): [1, 2] float32, [1, 1] float64, [1]
        Prediction(np.array([[0.9, 0.1]], np.float32), [0.1], [832], [2], None, 0.0, 0.0),
        Prediction(np.array([[0.25]], np.float64), [0.25], [900], [3], None, 0.0, 0.0),
        Prediction(np.array([0.75], np.float32), [0.75], [990], [1], None, 0.0, 0.0),
    ]
    plain = service_pb2.ModelInferRequest(id="r1")
    named = service_pb2.ModelInferRequest(id="r1")
    named.outputs.add(name=config.output_name)
    named.outputs.add(name=DECISION_OUTPUT)
    for _ in range(2):  # the second answers come from the cached templates
        for prediction in predictions:
            fast = infer_response(plain, config, "int8", "passed", prediction, 77)
            general = infer_response(named, config, "int8", "passed", prediction, 77)
            assert fast == general
            assert service_pb2.ModelInferResponse.FromString(fast.SerializeToString()) == general


def test_fraud_answers_added_in_place_equal_the_copied_answers(config):
    from server.api.domain_api import fraud_scores, model_ref
    from server.api.gen.riskserve.v1 import scoring_pb2
    from server.runtime.prediction import Prediction

    facts = ModelFacts(config.name, config.version, config.task.value, Precision.INT8, GateVerdict.PASSED)
    template = scoring_pb2.FraudScore(model=model_ref(facts))
    transactions = [transaction(f"t-{i}") for i in range(5)]
    probabilities, scores, decisions = [0.0, 0.1, 0.5, 1e-7, 1.0], [0, 832, 949, 0, 999], [1, 3, 3, 1, 3]
    prediction = Prediction(np.zeros((5, 2)), probabilities, scores, decisions, None, 0.0, 0.0)
    expected = []
    for t, p, r, d in zip(transactions, probabilities, scores, decisions, strict=True):
        answer = scoring_pb2.FraudScore()
        answer.CopyFrom(template)
        answer.transaction_id, answer.probability, answer.risk_score = t.transaction_id, p, r
        answer.decision, answer.server_latency_us = d, 12
        expected.append(answer)
    batch = scoring_pb2.FraudScoreBatch()
    fraud_scores(transactions, prediction, template, 12, batch.scores)
    assert batch.SerializeToString() == scoring_pb2.FraudScoreBatch(scores=expected).SerializeToString()
    assert list(fraud_scores(transactions, prediction, template, 12)) == expected


@pytest.mark.parametrize(
    "strings",
    [
        ["USD", "EUR", "GBP"],
        ["ab", "cd", "é"],  # "é" is two bytes: one length
        ["card_present", "ecommerce", "contactless"],
        ["AB", "C\x00", "DE"],
        ["", "", ""],
        ["x"],
    ],
)
def test_bytes_tensor_decoding_equals_the_loop(strings):
    from server.api import inference_converters as ic

    buffer = b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in strings)
    assert ic._decode_bytes(buffer, len(strings), "f") == strings
    with pytest.raises(InvalidInputError, match="malformed BYTES"):
        ic._decode_bytes(b"\x02\x00\x00\x00\xff\xfe\x02\x00\x00\x00ab", 2, "f")


def test_one_row_reader_and_feeds_equal_the_general_path(config, schema):
    """Score's hot path (MessageColumns.one_row -> FeatureSchema.one_row_feeds) makes the general path's
    tensors, and falls back (None) for anything the general path has to judge."""
    reader = MessageColumns(config, TRANSACTION)
    assert reader.one_row is not None
    messages = [
        transaction(),
        risky_transaction(),
        transaction(timestamp=TIMESTAMP_14H + 9 * 3600 + 59),
        transaction(amount=0.0, behaviour={"txn_count_1h": 0}),
        transaction(amount=3.4e38),
    ]
    for message in messages:
        feeds = schema.one_row_feeds(*reader.one_row(message))
        assert feeds is not None
        general = schema.assemble(schema.check(reader.columns([message, message], reader.namer), 2))
        assert list(feeds) == list(general)
        for name, tensor in feeds.items():
            expected = general[name][:1]
            assert tensor.shape == (1, 1) and tensor.dtype == expected.dtype and tensor.flags["C_CONTIGUOUS"]
            assert tensor.tolist() == expected.tolist()
            assert tensor.dtype == object or tensor.tobytes() == expected.tobytes()
    for bad in (
        transaction(amount=float("nan")),
        transaction(amount=float("inf")),
        transaction(amount=-1.0),
        transaction(amount=3.5e38),
        transaction(currency="XXX"),
        transaction(currency=""),
    ):
        row = reader.one_row(bad)
        assert row is None or schema.one_row_feeds(*row) is None
    assert reader.one_row(transaction(timestamp=0)) is None
    without = transaction()
    without.ClearField("behaviour")
    assert reader.one_row(without) is None
