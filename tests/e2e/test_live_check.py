"""INT8 watched against FP32 on live traffic, through a real server: the exported live-check figures equal an
offline recomputation on the rows the test sent; sampling never changes an answer; a full queue drops and
counts; `on_live_drift: serve_fp32` switches the model to FP32 and says so everywhere."""

import argparse
import logging
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.batch_invariance import chunked
from server.cli.score_cmd import build_request
from server.config.model_config import ModelConfig, load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.metrics.snapshot import read_snapshots
from server.model_data import DataKind, feeds_from_frame, input_frame
from server.ort_session import create_session
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import INT8_HIDDEN, INT8_SERVED, fraud_frame, write_model
from tests.e2e.requests import transaction
from tests.metrics.conftest import samples, scrape


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("live-models")
    write_model(root / "fraud", "fraud", quantization=INT8_SERVED, hidden=INT8_HIDDEN)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("live-cache")


def _serve(repo: Path, cache: Path, **settings) -> ServerThread:
    return ServerThread(test_settings(repo, cache, **settings)).wait_ready()


@pytest.fixture()
def servers(repo, cache):
    started: list[ServerThread] = []

    def start(**settings) -> ServerThread:
        started.append(_serve(repo, cache, **settings))
        return started[-1]

    yield start
    for running in started:
        running.close()


def _scores(
    model_path: Path, config: ModelConfig, frame: pd.DataFrame, chunk_rows: int | None = 1
) -> np.ndarray:
    """Positive-class probability of each row; by default one ORT call per row (no batch effect to argue
    about), else in 4096-row blocks with the runtime's chunk size (the served scores)."""
    session = create_session(model_path)
    run = chunked(lambda feeds: session.run([config.output_name], feeds)[0], chunk_rows)
    feeds = feeds_from_frame(config, frame)
    step = 1 if chunk_rows == 1 else 4096
    blocks = [run({k: v[i : i + step] for k, v in feeds.items()}) for i in range(0, len(frame), step)]
    return np.concatenate(blocks)[:, -1].astype(np.float64)


def _infer_inputs(config: ModelConfig, frame: pd.DataFrame) -> list[triton.InferInput]:
    inputs = []
    for spec in config.inputs:
        string = spec.dtype == "string"
        values = frame[spec.name].to_numpy(dtype=object if string else np.float32).reshape(-1, 1)
        tensor = triton.InferInput(spec.name, list(values.shape), "BYTES" if string else "FP32")
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def _send(
    server, config: ModelConfig, frame: pd.DataFrame, sizes=(1, 7, 32), channel_args=None
) -> list[dict]:
    """`frame`'s rows through ModelInfer in calls of the given sizes, in turn; each answer's parameters and
    probabilities."""
    answers, start, turn = [], 0, 0
    with triton.InferenceServerClient(server.target, channel_args=channel_args) as client:
        while start < len(frame):
            part = frame.iloc[start : start + sizes[turn % len(sizes)]]
            result = client.infer(config.name, _infer_inputs(config, part))
            parameters = result.get_response().parameters
            answers += [
                {"p": float(p), "precision": parameters["precision"].string_param,
                 "verdict": parameters["gate_verdict"].string_param}
                for p in result.as_numpy("probabilities")[:, -1]
            ]  # fmt: skip
            start, turn = start + len(part), turn + 1
    return answers


def _metric(server: ServerThread, name: str, **labels: str) -> list[tuple[dict, float]]:
    return samples(scrape(f"http://127.0.0.1:{server.server.metrics_port}/metrics"), name, **labels)


def _value(server: ServerThread, name: str, **labels: str) -> float | None:
    found = _metric(server, name, **labels)
    assert len(found) <= 1, found
    return found[0][1] if found else None


def _wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _psi(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    e = expected_counts / expected_counts.sum() + 1e-6
    a = actual_counts / actual_counts.sum() + 1e-6
    return float(np.sum((a - e) * np.log(a / e)))


def _expected_figures(
    config: ModelConfig, int8_path: Path, chunk_rows: int | None, frame: pd.DataFrame
) -> dict:
    """The live-check figures recomputed offline: both models on the sent rows, PSI in ten bins at the
    quantiles of the served model's scores on the holdout file (scored with the runtime's `chunk_rows`)."""
    int8, fp32 = _scores(int8_path, config, frame), _scores(config.onnx_path, config, frame)
    holdout = _scores(int8_path, config, input_frame(config, DataKind.HOLDOUT).dropna(), chunk_rows)
    quantiles = np.unique(np.quantile(holdout, np.linspace(0, 1, 11)))
    edges = np.concatenate([[-np.inf], quantiles[1:-1], [np.inf]])
    counts = {name: np.histogram(s, edges)[0] for name, s in (("int8", int8), ("fp32", fp32))}
    holdout_counts = np.histogram(holdout, edges)[0]
    return {
        "int8": int8,
        "fp32": fp32,
        "flips": {
            n: int(np.sum((int8 >= t) != (fp32 >= t))) for n, t in config.decision.thresholds().items()
        },
        "mean": float(np.mean(np.abs(int8 - fp32))),
        "max": float(np.max(np.abs(int8 - fp32))),
        "psi": _psi(counts["fp32"], counts["int8"]),
        "drift_psi": _psi(holdout_counts, counts["int8"]),
    }


def _flipping_rows(config: ModelConfig, int8_path: Path, wanted: int) -> pd.DataFrame:
    """Rows of fresh traffic whose review decision INT8 and FP32 disagree on."""
    pool = fraud_frame(6000, seed=11)[config.feature_names]
    int8, fp32 = _scores(int8_path, config, pool), _scores(config.onnx_path, config, pool)
    review = config.decision.review
    flipping = pool[(int8 >= review) != (fp32 >= review)]
    assert len(flipping) >= wanted, f"only {len(flipping)} flipping rows in the pool"
    return flipping.head(wanted)


def _check_live_figures(server: ServerThread, name: str, frame: pd.DataFrame) -> None:
    """The server's exported live-check figures for `name` equal the offline recomputation on `frame`."""
    runtime = server.server.repository.get(name)
    config, version = runtime.config, runtime.facts.version
    assert runtime.facts.precision.value == "int8"
    answers = _send(server, config, frame)
    _wait_for(lambda: _value(server, "riskserve_live_check_rows_total", model=name) == len(frame))
    expected = _expected_figures(config, runtime.prepared.model_path, runtime.chunk_rows, frame)
    assert [a["p"] for a in answers] == pytest.approx(expected["int8"].tolist(), abs=0)  # served is INT8
    labels = {"model": name, "version": version}
    for threshold, flips in expected["flips"].items():
        assert _value(server, "riskserve_live_check_flips_total", **labels, threshold=threshold) == flips
    assert _value(server, "riskserve_live_check_window_rows", **labels) == len(frame)
    assert _value(server, "riskserve_live_check_dropped_rows_total", **labels) == 0
    # FP32 scores the sampled rows together; the bundled fraud model's FP32 GEMMs then differ from one row
    # per call in the last float32 bit (6e-8) on a few rows, which the invariance check's 64 rows miss.
    last_bits = 1e-7
    mean, largest = (
        _value(server, f"riskserve_live_check_{s}_abs_score_diff", **labels) for s in ("mean", "max")
    )
    assert mean == pytest.approx(expected["mean"], abs=last_bits)
    assert largest == pytest.approx(expected["max"], abs=last_bits)
    assert _value(server, "riskserve_live_check_psi", **labels) == pytest.approx(expected["psi"])
    assert _value(server, "riskserve_live_score_drift_psi", **labels) == pytest.approx(expected["drift_psi"])
    budget = config.quantization.budget.max_decision_flip_rate
    assert _value(server, "riskserve_live_check_flip_budget", **labels) == budget
    assert _value(server, "riskserve_model_score_count", **labels) == len(frame)  # per version, live


def test_live_figures_equal_an_offline_recomputation_of_the_sent_rows(servers, repo):
    server = servers(live_check_sample_rate=1.0)
    config = load_model_config(repo / "fraud")
    int8_path = server.server.repository.get("fraud").prepared.model_path
    frame = pd.concat([_flipping_rows(config, int8_path, 6), fraud_frame(120, seed=5)[config.feature_names]])
    _check_live_figures(server, "fraud", frame.sample(frac=1.0, random_state=0))


def test_sampling_never_changes_an_answer(servers, repo):
    config = load_model_config(repo / "fraud")
    frame = fraud_frame(90, seed=6)[config.feature_names]
    watched, unwatched = servers(live_check_sample_rate=1.0), servers(live_check_sample_rate=0.0)
    assert _send(watched, config, frame) == _send(unwatched, config, frame)
    assert not _metric(unwatched, "riskserve_live_check_rows_total")  # rate 0: no live check at all
    _wait_for(lambda: _value(watched, "riskserve_live_check_rows_total", model="fraud") == len(frame))


def test_a_full_queue_drops_and_counts_the_sampled_rows(servers, repo):
    server = servers(live_check_sample_rate=1.0, live_check_queue_rows=4)
    config = load_model_config(repo / "fraud")
    _send(server, config, fraud_frame(25, seed=8)[config.feature_names], sizes=(5,))  # 5 rows never fit in 4
    _wait_for(lambda: _value(server, "riskserve_live_check_dropped_rows_total", model="fraud") == 25)
    assert _value(server, "riskserve_live_check_rows_total", model="fraud") == 0


def test_serve_fp32_switches_the_model_when_live_flips_exceed_the_budget(servers, repo, caplog):
    server = servers(live_check_sample_rate=1.0, on_live_drift="serve_fp32", live_check_min_rows=8)
    config = load_model_config(repo / "fraud")
    int8_path = server.server.repository.get("fraud").prepared.model_path
    flipping = _flipping_rows(config, int8_path, 12)
    with caplog.at_level(logging.WARNING, logger="server.app.serving"):
        before = _send(server, config, flipping, sizes=(1,))
        _wait_for(lambda: _value(server, "riskserve_model_fp32_fallback", model="fraud") == 1.0)
    assert {(a["precision"], a["verdict"]) for a in before[:3]} == {("int8", "passed")}
    assert "event=live_drift_fallback model=fraud" in caplog.text and "action=serve_fp32" in caplog.text
    after = _send(server, config, flipping)
    assert {(a["precision"], a["verdict"]) for a in after} == {("fp32", "live_drift")}
    assert [a["p"] for a in after] == pytest.approx(_scores(config.onnx_path, config, flipping).tolist())
    info = _metric(server, "riskserve_model_info", model="fraud")
    assert [(labels["precision"], labels["gate_verdict"]) for labels, _ in info] == [("fp32", "live_drift")]
    with grpc.insecure_channel(server.target) as channel:
        answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(), timeout=5)
    assert (answer.model.precision, answer.model.gate_verdict) == ("fp32", "live_drift")


def test_alert_policy_only_reports(servers, repo):
    server = servers(live_check_sample_rate=1.0, live_check_min_rows=8)  # on_live_drift: alert (default)
    config = load_model_config(repo / "fraud")
    flipping = _flipping_rows(config, server.server.repository.get("fraud").prepared.model_path, 12)
    _send(server, config, flipping, sizes=(1,))
    _wait_for(lambda: _value(server, "riskserve_live_check_rows_total", model="fraud") == len(flipping))
    assert _value(server, "riskserve_model_fp32_fallback", model="fraud") == 0.0
    assert {a["precision"] for a in _send(server, config, flipping)} == {"int8"}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    if not all((BUNDLED_MODELS_DIR / m / "config.yaml").is_file() for m in ("fraud", "credit")):
        pytest.skip("bundled models not built")
    settings = test_settings(
        BUNDLED_MODELS_DIR, tmp_path_factory.mktemp("bundled-cache"), live_check_sample_rate=1.0
    )
    running = ServerThread(settings)
    try:
        yield running.wait_ready()
    finally:
        running.close()


@pytest.mark.parametrize("name", ["fraud", "credit"])
def test_bundled_models_live_figures_equal_an_offline_recomputation(bundled, name):
    config = load_model_config(BUNDLED_MODELS_DIR / name)
    frame = input_frame(config, DataKind.CALIBRATION).dropna().sample(150, random_state=3)
    _check_live_figures(bundled, name, frame)


def test_two_workers_export_the_merged_live_figures(spawn_server, repo, tmp_path):
    """Each serving process compares its own sample; the exported counters and window are their sum."""
    process = spawn_server(
        repo, workers=2, metrics_shared_dir=tmp_path / "metrics", live_check_sample_rate=1.0
    )
    _wait_for(lambda: sum("event=live_check_started" in line for line in process.log) == 2, 90)
    config = load_model_config(repo / "fraud")
    frame = fraud_frame(160, seed=9)[config.feature_names]
    for part in np.array_split(np.arange(len(frame)), 16):  # a connection each: both workers get some
        _send(
            process,
            config,
            frame.iloc[part],
            sizes=(5,),
            channel_args=[("grpc.use_local_subchannel_pool", 1)],
        )

    def per_worker() -> list[int]:
        key = ("fraud", config.version)
        snaps = read_snapshots(tmp_path / "metrics")
        return [s.live_checks[key]["window"]["rows"] for s in snaps if key in s.live_checks]

    _wait_for(lambda: sum(per_worker()) == len(frame))
    assert len(per_worker()) == 2 and min(per_worker()) > 0, per_worker()
    (int8_path,) = (tmp_path / "cache").rglob("model.int8.onnx")
    expected = _expected_figures(config, int8_path, None, frame)
    text = scrape(f"http://127.0.0.1:{process.metrics_port}/metrics")
    labels = {"model": "fraud", "version": config.version}
    value = lambda name, **more: samples(text, name, **labels, **more)[0][1]  # noqa: E731
    assert value("riskserve_live_check_rows_total") == len(frame)
    assert value("riskserve_live_check_window_rows") == len(frame)
    for threshold, flips in expected["flips"].items():
        assert value("riskserve_live_check_flips_total", threshold=threshold) == flips
    assert value("riskserve_live_check_mean_abs_score_diff") == pytest.approx(expected["mean"], abs=1e-7)
    assert value("riskserve_live_check_max_abs_score_diff") == pytest.approx(expected["max"], abs=1e-7)
    assert value("riskserve_live_check_psi") == pytest.approx(expected["psi"])
    assert value("riskserve_live_score_drift_psi") == pytest.approx(expected["drift_psi"])


def test_a_credit_assessment_offers_the_application_not_its_counterfactual_rows(bundled):
    """Assess scores the application with one counterfactual row per feature (reason codes) in one call;
    only the application is live traffic, so only it is compared."""
    labels = {"model": "credit", "version": bundled.server.repository.get("credit").facts.version}
    before = _value(bundled, "riskserve_live_check_rows_total", **labels) or 0
    with grpc.insecure_channel(bundled.target) as channel:
        credit = scoring_pb2_grpc.CreditScoringStub(channel)
        for seed in range(5):
            assert credit.Assess(
                build_request(_holdout_row_args("credit", seed), BUNDLED_MODELS_DIR), timeout=5
            ).reasons
    _wait_for(lambda: _value(bundled, "riskserve_live_check_rows_total", **labels) == before + 5)
    time.sleep(0.3)  # nothing more arrives: 5 rows, not 5 x (features + 1)
    assert _value(bundled, "riskserve_live_check_rows_total", **labels) == before + 5


def _holdout_row_args(task: str, seed: int) -> argparse.Namespace:
    return argparse.Namespace(
        task=task, json_file=None, random_holdout_row=True, field=[], model="", seed=seed
    )
