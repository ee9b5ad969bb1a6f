"""The Open Inference Protocol through Triton's own client, unchanged."""

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.requests import TIMESTAMP_14H, risky_transaction, transaction

FLOAT_INPUTS = (
    "amount",
    "hour_of_day",
    "txn_count_1h",
    "txn_count_24h",
    "amount_sum_1h",
    "amount_sum_24h",
    "seconds_since_last_txn",
    "distance_from_home_km",
    "is_new_merchant",
    "is_new_device",
)
STRING_INPUTS = ("currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode")


@pytest.fixture()
def client(server):
    with triton.InferenceServerClient(server.target) as open_client:
        yield open_client


def _row(t) -> dict:
    row = {"amount": t.amount, "hour_of_day": (t.timestamp // 3600) % 24}
    row |= {name: float(getattr(t.behaviour, name)) for name in FLOAT_INPUTS[2:]}
    return row | {name: getattr(t, name) for name in STRING_INPUTS}


def _infer_inputs(rows: list[dict]) -> list[triton.InferInput]:
    inputs = []
    for name in FLOAT_INPUTS:
        tensor = triton.InferInput(name, [len(rows), 1], "FP32")
        tensor.set_data_from_numpy(np.array([[r[name]] for r in rows], dtype=np.float32))
        inputs.append(tensor)
    for name in STRING_INPUTS:
        tensor = triton.InferInput(name, [len(rows), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[r[name]] for r in rows], dtype=object))
        inputs.append(tensor)
    return inputs


def test_server_and_model_state(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("fraud") and client.is_model_ready("credit")
    assert not client.is_model_ready("no-such-model")
    metadata = client.get_server_metadata()
    assert metadata.name == "riskserve" and "model_configuration" in metadata.extensions


def test_model_metadata_and_config_describe_every_input(client):
    metadata = client.get_model_metadata("fraud")
    assert metadata.platform == "onnxruntime_onnx" and list(metadata.versions) == ["1.0.0-test"]
    types = {t.name: t.datatype for t in metadata.inputs}
    assert types == {**dict.fromkeys(FLOAT_INPUTS, "FP32"), **dict.fromkeys(STRING_INPUTS, "BYTES")}
    outputs = [(o.name, o.datatype, list(o.shape)) for o in metadata.outputs]
    assert outputs == [("probabilities", "FP32", [-1, 2]), ("decision", "INT32", [-1, 1])]
    config = client.get_model_config("fraud").config
    assert config.max_batch_size == 64
    assert {i.name: (i.data_type, list(i.dims)) for i in config.input}["currency"] == (13, [1])  # TYPE_STRING
    assert [(o.name, list(o.dims)) for o in config.output] == [("probabilities", [2]), ("decision", [1])]


def test_model_infer_with_raw_contents_matches_the_domain_api(client, channel):
    transactions = [transaction("r-0"), risky_transaction("r-1"), transaction("r-2", amount=300.0)]
    assert all(t.timestamp == TIMESTAMP_14H for t in transactions)
    result = client.infer(
        "fraud",
        _infer_inputs([_row(t) for t in transactions]),
        outputs=[triton.InferRequestedOutput("probabilities")],
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 2)
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    domain = [fraud.Score(t, timeout=5).probability for t in transactions]
    assert probabilities[:, 1].tolist() == domain  # bit for bit: same model, other batch
    response = result.get_response()
    assert response.model_name == "fraud" and response.model_version == "1.0.0-test"
    assert response.parameters["precision"].string_param == "fp32"
    assert response.parameters["gate_verdict"].string_param == "disabled"
    assert response.parameters["server_latency_us"].int64_param > 0
    assert [o.name for o in response.outputs] == ["probabilities"]  # only what was asked for


def test_model_infer_answers_the_decision_with_the_domain_apis_thresholds(client, channel):
    transactions = [transaction("d-0"), risky_transaction("d-1"), transaction("d-2", amount=300.0)]
    result = client.infer("fraud", _infer_inputs([_row(t) for t in transactions]))  # no outputs named: all
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    domain = [fraud.Score(t, timeout=5) for t in transactions]
    assert result.as_numpy("decision").ravel().tolist() == [answer.decision for answer in domain]
    assert result.as_numpy("probabilities")[:, 1].tolist() == [answer.probability for answer in domain]


def test_unknown_model_and_version_are_not_found(client):
    inputs = _infer_inputs([_row(transaction())])
    with pytest.raises(InferenceServerException) as error:
        client.infer("no-such-model", inputs)
    assert error.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as error:
        client.infer("fraud", inputs, model_version="9.9")
    assert error.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as error:
        client.get_model_metadata("no-such-model")
    assert error.value.status() == "StatusCode.NOT_FOUND"


def test_other_triton_extensions_answer_unimplemented(channel):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as error:
        stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), timeout=5)
    assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED and "Triton extension" in error.value.details()


def _infer_request(rows: list[dict], typed: bool = False) -> service_pb2.ModelInferRequest:
    """A ModelInferRequest of `rows`, each value in `raw_input_contents` or in its tensor's typed contents."""
    request = service_pb2.ModelInferRequest(model_name="fraud")
    for name in FLOAT_INPUTS + STRING_INPUTS:
        values = [r[name] for r in rows]
        tensor = request.inputs.add(name=name, shape=[len(rows), 1])
        tensor.datatype = "FP32" if name in FLOAT_INPUTS else "BYTES"
        if name in FLOAT_INPUTS and typed:
            tensor.contents.fp32_contents.extend(values)
        elif name in FLOAT_INPUTS:
            request.raw_input_contents.append(np.array(values, "<f4").tobytes())
        elif typed:
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
        else:
            request.raw_input_contents.append(
                b"".join(len(v).to_bytes(4, "little") + v.encode() for v in values)
            )
    return request


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_one_row_model_infer_answers_as_a_row_of_a_batch_and_as_score(channel, typed):
    """One-row requests take the one-row path, more rows the general path: the same answers, bit for bit."""
    transactions = [transaction("o-0"), risky_transaction("o-1"), transaction("o-2", amount=300.0)]
    infer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
    batch = infer(_infer_request([_row(t) for t in transactions], typed), timeout=5)
    batch_probabilities = np.frombuffer(batch.raw_output_contents[0], "<f4").reshape(-1, 2)
    batch_decisions = np.frombuffer(batch.raw_output_contents[1], "<i4")
    score = scoring_pb2_grpc.FraudScoringStub(channel).Score
    for i, t in enumerate(transactions):
        answer = infer(_infer_request([_row(t)], typed), timeout=5)
        assert [(o.name, o.datatype, list(o.shape)) for o in answer.outputs] == [
            ("probabilities", "FP32", [1, 2]),
            ("decision", "INT32", [1, 1]),
        ]
        assert answer.raw_output_contents[0] == batch_probabilities[i : i + 1].tobytes()
        assert answer.raw_output_contents[1] == batch_decisions[i : i + 1].tobytes()
        domain = score(t, timeout=5)
        assert np.frombuffer(answer.raw_output_contents[0], "<f4")[1] == domain.probability
        assert batch_decisions[i] == domain.decision


def _rename_first(request):
    request.inputs[0].name = "amount_usd"


def _retype_first(request):
    request.inputs[0].datatype = "FP64"


def _drop_last(request):
    del request.inputs[-1]
    if request.raw_input_contents:
        del request.raw_input_contents[-1]


BAD_VALUES = {
    "NaN": {"amount": float("nan")},
    "infinite": {"seconds_since_last_txn": float("inf")},
    "below the minimum": {"amount": -1.0},
    "above the maximum": {"hour_of_day": 24.0},
    "unknown category": {"currency": "XXX"},
    "empty category": {"mcc": ""},
}


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_one_row_model_infer_errors_are_the_general_paths(channel, typed):
    """A bad value, datatype or tensor in a one-row request: the same status and message as in row 0 of a
    two-row request (which only the general path decodes)."""
    infer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
    good = _row(transaction("e-1"))

    def error(rows, change=None) -> tuple:
        request = _infer_request(rows, typed)
        if change is not None:
            change(request)
        with pytest.raises(grpc.RpcError) as raised:
            infer(request, timeout=5)
        return raised.value.code(), raised.value.details()

    for label, values in BAD_VALUES.items():
        bad = good | values
        one, two = error([bad]), error([bad, good])
        assert one == two and one[0] is grpc.StatusCode.INVALID_ARGUMENT, label
    for change in (_rename_first, _retype_first, _drop_last):
        one, two = error([good], change), error([good, good], change)
        assert one == two and one[0] is grpc.StatusCode.INVALID_ARGUMENT, change.__name__
