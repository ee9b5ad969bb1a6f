"""Every input the server cannot read is INVALID_ARGUMENT naming the field, on both front doors."""

import struct

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from tests.e2e.requests import application, transaction


def _invalid(call, *args) -> str:
    with pytest.raises(grpc.RpcError) as error:
        call(*args, timeout=5)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    return error.value.details()


@pytest.mark.parametrize(
    ("bad", "field", "says"),
    [
        (dict(currency="XYZ"), "currency", "unknown value 'XYZ'"),
        (dict(card_country="ZZ"), "card_country", "unknown value 'ZZ'"),
        (dict(merchant_country=""), "merchant_country", "missing"),
        (dict(mcc=""), "mcc", "missing"),
        (dict(channel="telepathy"), "channel", "unknown value"),
        (dict(amount=float("nan")), "amount", "not a finite number"),
        (dict(amount=float("inf")), "amount", "not a finite number"),
        (dict(amount=-5.0), "amount", "outside the allowed range [0,"),
        (dict(timestamp=0), "timestamp", "missing"),
        (dict(behaviour={"txn_count_1h": float("nan")}), "behaviour.txn_count_1h", "not a finite number"),
        (
            dict(behaviour={"amount_sum_24h": -1.0}),
            "behaviour.amount_sum_24h",
            "outside the allowed range [0,",
        ),
        (dict(behaviour={"distance_from_home_km": -3.0}), "behaviour.distance_from_home_km", "outside"),
    ],
)
def test_bad_transaction_field_is_named(channel, bad, field, says):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    details = _invalid(fraud.Score, transaction(**bad))
    assert details.startswith(f"{field}:") and says in details


def test_missing_behaviour_is_named(channel):
    request = transaction()
    request.ClearField("behaviour")
    assert _invalid(scoring_pb2_grpc.FraudScoringStub(channel).Score, request).startswith(
        "behaviour: missing"
    )


def test_bad_row_of_a_batch_is_named_by_position(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    rows = [transaction(f"b-{i}") for i in range(5)]
    rows[3] = transaction("b-3", currency="XYZ")
    details = _invalid(fraud.ScoreBatch, scoring_pb2.TransactionBatch(transactions=rows))
    assert details.startswith("transactions[3].currency: unknown value 'XYZ'")


def test_oversized_and_empty_batches_are_refused(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    too_many = scoring_pb2.TransactionBatch(transactions=[transaction(f"o-{i}") for i in range(513)])
    assert "at most 512" in _invalid(fraud.ScoreBatch, too_many)
    assert _invalid(fraud.ScoreBatch, scoring_pb2.TransactionBatch()).startswith("transactions: empty")


def test_bad_streamed_transaction_ends_the_stream_naming_it(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    stream = [transaction("ok-0"), transaction("bad-1", amount=float("nan")), transaction("ok-2")]
    with pytest.raises(grpc.RpcError) as error:
        list(fraud.ScoreStream(iter(stream), timeout=5))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "stream message 1 (transaction_id 'bad-1'): amount" in error.value.details()


@pytest.mark.parametrize(
    ("bad", "field", "says"),
    [
        (dict(purpose="yacht"), "purpose", "unknown value 'yacht'"),
        (dict(home_ownership=""), "home_ownership", "missing"),
        (dict(loan_amount=-100.0), "loan_amount", "outside the allowed range [0,"),
        (dict(debt_to_income=9.0), "debt_to_income", "outside the allowed range"),
        (dict(annual_income=float("nan")), "annual_income", "not a finite number"),
    ],
)
def test_bad_application_field_is_named(channel, bad, field, says):
    details = _invalid(scoring_pb2_grpc.CreditScoringStub(channel).Assess, application(**bad))
    assert details.startswith(f"{field}:") and says in details


# ---- Open Inference Protocol ----


def _fraud_request(rows: int = 2) -> service_pb2.ModelInferRequest:
    """A valid typed-contents request for the fraud test model."""
    t = transaction()
    floats = {
        "amount": t.amount,
        "hour_of_day": 14.0,
        **{
            f.name: float(getattr(t.behaviour, f.name))
            for f in scoring_pb2.BehaviourAggregates.DESCRIPTOR.fields
        },
    }
    request = service_pb2.ModelInferRequest(model_name="fraud")
    for name, value in floats.items():
        tensor = request.inputs.add(name=name, datatype="FP32", shape=[rows, 1])
        tensor.contents.fp32_contents.extend([value] * rows)
    for name in ("currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode"):
        tensor = request.inputs.add(name=name, datatype="BYTES", shape=[rows, 1])
        tensor.contents.bytes_contents.extend([getattr(t, name).encode()] * rows)
    return request


def _tensor(request, name):
    return next(t for t in request.inputs if t.name == name)


def _drop(request, name):
    kept = [t for t in request.inputs if t.name != name]
    del request.inputs[:]
    request.inputs.extend(kept)


def test_valid_typed_request_is_answered(channel):
    answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_fraud_request(3), timeout=5)
    assert list(answer.outputs[0].shape) == [3, 2]
    probabilities = np.frombuffer(answer.raw_output_contents[0], dtype="<f4").reshape(3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def _unknown_input(r):
    r.inputs.add(name="amount_usd", datatype="FP32", shape=[2, 1]).contents.fp32_contents.extend([1.0, 2.0])


def _wrong_dtype(r):
    _tensor(r, "amount").datatype = "FP64"


def _wrong_shape(r):
    del _tensor(r, "amount").shape[:]
    _tensor(r, "amount").shape.extend([2, 3])


def _rows_disagree(r):
    t = _tensor(r, "mcc")
    t.shape[0] = 1
    del t.contents.bytes_contents[1:]


def _missing_input(r):
    _drop(r, "channel")


def _short_contents(r):
    del _tensor(r, "amount").contents.fp32_contents[1:]


def _unknown_category(r):
    _tensor(r, "currency").contents.bytes_contents[1] = b"XYZ"


def _nan_value(r):
    _tensor(r, "txn_count_24h").contents.fp32_contents[0] = float("nan")


def _too_many_rows(r):
    r.inputs[0].shape[0] = 513


def _unknown_output(r):
    r.outputs.add(name="logits")


def _raw_wrong_length(r):
    for tensor in r.inputs:
        contents = tensor.contents
        raw = (
            np.asarray(contents.fp32_contents, "<f4").tobytes()
            if tensor.datatype == "FP32"
            else b"".join(struct.pack("<I", len(v)) + v for v in contents.bytes_contents)
        )
        r.raw_input_contents.append(raw[:-1] if tensor.name == "amount" else raw)
        tensor.ClearField("contents")


@pytest.mark.parametrize(
    ("spoil", "field", "says"),
    [
        (_unknown_input, "inputs[amount_usd]", "unknown input"),
        (_wrong_dtype, "inputs[amount].datatype", "expected FP32"),
        (_wrong_shape, "inputs[amount].shape", "expected [N, 1]"),
        (_rows_disagree, "inputs[mcc].shape", "other inputs have 2"),
        (_missing_input, "inputs[channel]", "missing"),
        (_short_contents, "inputs[amount]", "fp32_contents has 1 values"),
        (_unknown_category, "inputs[currency][1]", "unknown value 'XYZ'"),
        (_nan_value, "inputs[txn_count_24h][0]", "not a finite number"),
        (_unknown_output, "outputs[logits]", "unknown output"),
        (_too_many_rows, "inputs[amount].shape", "513 rows, at most 512"),
        (_raw_wrong_length, "inputs[amount]", "raw FP32 contents hold 7 bytes"),
    ],
)
def test_bad_inference_tensor_is_named(channel, spoil, field, says):
    request = _fraud_request(2)
    spoil(request)
    details = _invalid(service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer, request)
    assert details.startswith(f"{field}:") and says in details
