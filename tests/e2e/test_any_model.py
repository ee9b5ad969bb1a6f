"""A user's own models, not ours: features from the domain API's maps and typed fields, inputs of every
dtype, one [N, F] input, an [N, 1] output, a generic binary task, and a broken model beside good ones."""

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from tests.e2e.any_models import write_mixed_model, write_torch_style_model
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import write_model
from tests.metrics.conftest import samples, scrape

MIXED_MAPS = {"bureau_score": 0.7, "n_prior": 3.0, "vip": 1.0}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> ServerThread:
    root = tmp_path_factory.mktemp("any-model")
    write_mixed_model(root / "models" / "mixed")
    write_mixed_model(root / "models" / "aml", name="aml", task="binary")
    write_torch_style_model(root / "models" / "torchy")
    (root / "models" / "broken").mkdir()
    (root / "models" / "broken" / "config.yaml").write_text("name: broken\nversion: 1\ntask: fraud\n")
    running = ServerThread(test_settings(root / "models", root / "cache")).wait_ready()
    yield running
    running.close()


def _mixed_transaction(model: str = "mixed", **maps) -> scoring_pb2.Transaction:
    values = {**MIXED_MAPS, **maps}
    return scoring_pb2.Transaction(
        transaction_id="t-1",
        amount=120.0,
        model=model,
        features={k: v for k, v in values.items() if v is not None},
        categorical_features={"segment": "business", "channel": "ecommerce"},  # a superset: extra ignored
    )


def _mixed_inputs(rows: int = 1) -> list[triton.InferInput]:
    arrays = {
        "amount": np.full((rows, 1), 120.0, np.float32),
        "score": np.full((rows, 1), 0.7, np.float64),
        "prior_count": np.full((rows, 1), 3, np.int64),
        "vip": np.full((rows, 1), True),
        "segment": np.full((rows, 1), b"business", dtype=object),
    }
    wire = {"amount": "FP32", "score": "FP64", "prior_count": "INT64", "vip": "BOOL", "segment": "BYTES"}
    inputs = []
    for name, array in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), wire[name])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def _invalid(call, request) -> str:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=5)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    return error.value.details()


def test_feature_maps_and_typed_fields_score_as_the_open_inference_protocol_does(served):
    with grpc.insecure_channel(served.target) as channel:
        answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(_mixed_transaction(), timeout=5)
    client = triton.InferenceServerClient(served.target)
    result = client.infer("mixed", _mixed_inputs(2))
    risk = result.as_numpy("risk")
    assert risk.shape == (2, 1)
    assert answer.probability == float(risk[0, 0])  # bit for bit, an [N, 1] output read at column 0
    assert 0 <= answer.risk_score <= 999 and answer.model.name == "mixed"
    assert result.as_numpy("decision").ravel().tolist() == [answer.decision] * 2


@pytest.mark.parametrize(
    ("maps", "field", "says"),
    [
        ({"bureau_score": None}, "features[bureau_score]", "missing"),
        ({"n_prior": 2.5}, "features[n_prior]", "not an integer"),
        ({"vip": 2.0}, "features[vip]", "outside the allowed range [0, 1]"),
        ({"n_prior": -1.0}, "features[n_prior]", "outside the allowed range [0, inf]"),
    ],
)
def test_bad_map_entries_are_invalid_naming_the_key(served, maps, field, says):
    with grpc.insecure_channel(served.target) as channel:
        details = _invalid(scoring_pb2_grpc.FraudScoringStub(channel).Score, _mixed_transaction(**maps))
    assert details.startswith(f"{field}:") and says in details


def test_a_string_feature_in_the_number_map_or_an_unknown_category_is_named(served):
    transaction = _mixed_transaction()
    del transaction.categorical_features["segment"]
    transaction.features["segment"] = 1.0
    with grpc.insecure_channel(served.target) as channel:
        score = scoring_pb2_grpc.FraudScoringStub(channel).Score
        details = _invalid(score, transaction)
        assert details.startswith("categorical_features[segment]: missing; features[segment] holds a number")
        unknown = _mixed_transaction()
        unknown.categorical_features["segment"] = "martian"
        assert _invalid(score, unknown).startswith("categorical_features[segment]: unknown value 'martian'")
        batch = scoring_pb2.TransactionBatch(
            model="mixed", transactions=[_mixed_transaction(), _mixed_transaction(vip=None)]
        )
        assert _invalid(scoring_pb2_grpc.FraudScoringStub(channel).ScoreBatch, batch).startswith(
            "transactions[1].features[vip]: missing"
        )


def test_an_n_by_f_input_takes_its_columns_from_features_or_one_tensor(served):
    rows = np.array([[0.3, -1.2, 2.0], [1.5, 0.0, -0.4]], np.float32)
    client = triton.InferenceServerClient(served.target)
    tensor = triton.InferInput("input", [2, 3], "FP32")
    tensor.set_data_from_numpy(rows)
    output = client.infer("torchy", [tensor]).as_numpy("output")
    with grpc.insecure_channel(served.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        for row, expected in zip(rows, output[:, 0], strict=True):
            features = {f"v{i + 1}": float(v) for i, v in enumerate(row)}
            answer = fraud.Score(scoring_pb2.Transaction(model="torchy", features=features), timeout=5)
            assert answer.probability == float(expected)
        with pytest.raises(grpc.RpcError) as error:
            fraud.Score(
                scoring_pb2.Transaction(model="torchy", features={"v1": 1.0, "v2": 99.0, "v3": 0}), timeout=5
            )
    assert "features[v2]: value 99 outside the allowed range [-50, 50]" in error.value.details()
    bad = triton.InferInput("input", [2, 2], "FP32")
    bad.set_data_from_numpy(rows[:, :2].copy())
    with pytest.raises(
        triton.InferenceServerException, match=r"inputs\[input\]\.shape: \[2, 2\]: expected \[N, 3\]"
    ):
        client.infer("torchy", [bad])


def test_a_binary_model_serves_through_the_open_inference_protocol_only(served):
    client = triton.InferenceServerClient(served.target)
    result = client.infer("aml", _mixed_inputs(1))
    assert result.as_numpy("decision").shape == (1, 1)
    with grpc.insecure_channel(served.target) as channel, pytest.raises(grpc.RpcError) as error:
        scoring_pb2_grpc.FraudScoringStub(channel).Score(_mixed_transaction(model="aml"), timeout=5)
    assert (
        error.value.code() is grpc.StatusCode.NOT_FOUND
        and "is a binary model, not fraud" in error.value.details()
    )


def test_a_broken_model_is_unavailable_with_its_reason_and_the_others_serve(served):
    client = triton.InferenceServerClient(served.target)
    assert client.is_model_ready("mixed") and not client.is_model_ready("broken")
    with pytest.raises(triton.InferenceServerException) as error:
        client.infer("broken", _mixed_inputs(1))
    assert error.value.status() == "StatusCode.UNAVAILABLE"
    assert "model 'broken' is unavailable: config:" in error.value.message()
    with grpc.insecure_channel(served.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = {
            service: health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            for service in ("", "model/mixed", "model/broken")
        }
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert status == {
        "": not_serving,
        "model/mixed": serving,
        "model/broken": not_serving,
    }  # strict readiness
    text = scrape(f"http://127.0.0.1:{served.server.metrics_port}/metrics")
    assert samples(text, "riskserve_model_unavailable", model="broken") == [
        ({"model": "broken", "reason": "config"}, 1.0)
    ]


def test_without_strict_readiness_the_server_is_ready_beside_a_broken_model(tmp_path):
    write_model(tmp_path / "models" / "fraud", "fraud")
    (tmp_path / "models" / "broken").mkdir()
    (tmp_path / "models" / "broken" / "config.yaml").write_text("name: [\n")
    running = ServerThread(
        test_settings(tmp_path / "models", tmp_path / "cache", strict_readiness=False)
    ).wait_ready()
    try:
        with grpc.insecure_channel(running.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            overall = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert overall == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.close()


def test_exit_on_model_error_keeps_the_strict_behaviour(tmp_path):
    write_model(tmp_path / "models" / "fraud", "fraud")
    (tmp_path / "models" / "broken").mkdir()
    (tmp_path / "models" / "broken" / "config.yaml").write_text("name: broken\n")
    import asyncio

    from server.app.serving import RiskServer
    from server.config.errors import ConfigError

    async def start() -> None:
        await RiskServer(
            test_settings(tmp_path / "models", tmp_path / "cache", exit_on_model_error=True)
        ).start()

    with pytest.raises(ConfigError, match="invalid model config"):
        asyncio.run(start())
