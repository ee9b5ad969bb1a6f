"""A model file is checked against its config's integrity record before it is served, and a damaged
quantization cache entry is rebuilt, through real servers on the bundled models (or small test models)."""

import hashlib
import json
import logging
import shutil
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sklearn.metrics import roc_auc_score

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.config.paths import BUNDLED_MODELS_DIR
from server.quantization.cache import MANIFEST
from server.quantization.pipeline import INT8_FILE, REPORT_FILE
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction
from tests.metrics.conftest import samples, scrape

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _scramble(path: Path, count: int = 100, at: float = 0.5) -> None:
    """Overwrite `count` bytes of `path` from `at` (a share of its length) with seeded random bytes."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + count] = np.random.default_rng(0).integers(0, 256, count, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _health(target: str, *services: str) -> dict[str, int]:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {s: stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=5).status for s in services}


def _credit_answer(target: str):
    from server.cli.score_cmd import build_request
    from tests.e2e.test_bundled_models import _args

    with grpc.insecure_channel(target) as channel:
        return scoring_pb2_grpc.CreditScoringStub(channel).Assess(
            build_request(_args("credit", 1), BUNDLED_MODELS_DIR), timeout=10
        )


def _messages(caplog, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"event={event}" in r.getMessage()]


@pytest.fixture(scope="module")
def bundled_copy(tmp_path_factory) -> Path:
    if not all((BUNDLED_MODELS_DIR / m / "config.yaml").is_file() for m in ("fraud", "credit")):
        pytest.skip("bundled models not built")
    root = tmp_path_factory.mktemp("integrity") / "models"
    shutil.copytree(BUNDLED_MODELS_DIR, root)
    _scramble(root / "fraud" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def scrambled(bundled_copy: Path, tmp_path_factory):
    """A server on the bundled models with 100 bytes of fraud's model.onnx scrambled; its cache (credit's
    INT8 entry) is the starting point of the cache-fault tests."""
    cache = tmp_path_factory.mktemp("integrity-cache")
    running = ServerThread(test_settings(bundled_copy, cache)).wait_ready()
    yield running, cache
    running.close()


def test_a_scrambled_model_is_never_served_and_the_other_bundled_model_is(scrambled, bundled_copy) -> None:
    running, cache = scrambled
    assert _health(running.target, "", "model/fraud", "model/credit") == {
        "": NOT_SERVING,  # strict readiness: a configured model is out
        "model/fraud": NOT_SERVING,
        "model/credit": SERVING,
    }
    with grpc.insecure_channel(running.target) as channel, pytest.raises(grpc.RpcError) as refused:
        scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(), timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    details = refused.value.details()
    assert "model 'fraud' is unavailable: integrity:" in details
    assert str(bundled_copy / "fraud" / "model.onnx") in details
    recorded = yaml.safe_load((bundled_copy / "fraud" / "config.yaml").read_text())["integrity"]
    actual = hashlib.sha256((bundled_copy / "fraud" / "model.onnx").read_bytes()).hexdigest()
    assert f"SHA-256 {actual[:12]}… is not the {recorded['model_sha256'][:12]}…" in details
    assert not (cache / "fraud").exists()  # never quantized, so never gated or served in FP32
    text = scrape(f"http://127.0.0.1:{running.server.metrics_port}/metrics")
    assert samples(text, "riskserve_model_unavailable", model="fraud") == [
        ({"model": "fraud", "reason": "integrity"}, 1.0)
    ]
    answer = _credit_answer(running.target)
    assert answer.model.precision == "int8" and answer.model.gate_verdict == "passed"


def _entry(cache: Path, model: str) -> Path:
    (entry,) = [p for p in (cache / model).iterdir() if not p.name.startswith(".")]
    return entry


def _rewrite_manifest(entry: Path, name: str) -> None:
    """The manifest's checksum of `name` made to match the file as it now is."""
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["files"][name] = hashlib.sha256((entry / name).read_bytes()).hexdigest()
    (entry / MANIFEST).write_text(json.dumps(manifest))


def _flipped_int8(entry: Path) -> Path:
    _scramble(entry / INT8_FILE, count=16)
    return entry / INT8_FILE


def _truncated_report(entry: Path) -> Path:
    report = entry / REPORT_FILE
    report.write_bytes(report.read_bytes()[:200])
    return report


def _missing_manifest(entry: Path) -> Path:
    (entry / MANIFEST).unlink()
    return entry / MANIFEST


def _int8_garbage_with_matching_manifest(entry: Path) -> Path:
    _scramble(entry / INT8_FILE, count=64, at=0.0)  # the protobuf's first fields: ONNX Runtime refuses it
    _rewrite_manifest(entry, INT8_FILE)
    return entry / INT8_FILE


def _bogus_verdict_with_matching_manifest(entry: Path) -> Path:
    report = json.loads((entry / REPORT_FILE).read_text())
    (entry / REPORT_FILE).write_text(json.dumps(report | {"verdict": "bogus"}))
    _rewrite_manifest(entry, REPORT_FILE)
    return entry / REPORT_FILE


@pytest.mark.parametrize(
    "damage",
    [
        _flipped_int8,
        _truncated_report,
        _missing_manifest,
        _int8_garbage_with_matching_manifest,
        _bogus_verdict_with_matching_manifest,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_damaged_cache_entry_is_named_rebuilt_and_served(scrambled, bundled_copy, tmp_path, caplog, damage):
    _, warm = scrambled
    cache = tmp_path / "cache"
    shutil.copytree(warm / "credit", cache / "credit")
    entry = _entry(cache, "credit")
    damaged = damage(entry)
    settings = test_settings(bundled_copy, cache, models=("credit",))
    with caplog.at_level(logging.INFO):
        running = ServerThread(settings).wait_ready()
    try:
        answer = _credit_answer(running.target)
    finally:
        running.close()
    assert answer.model.precision == "int8"
    warnings = [m for m in _messages(caplog, "cache_corrupt") if str(entry) in m]
    assert warnings and all("action=rebuild" in m for m in warnings), _messages(caplog, "cache_corrupt")
    assert any(str(damaged) in m or f"{entry}: {damaged.name}" in m for m in warnings), warnings
    assert _messages(caplog, "quantization_ready")  # rebuilt: quantized and gated again
    assert _messages(caplog, "model_verified")
    manifest = json.loads((_entry(cache, "credit") / MANIFEST).read_text())
    for name, checksum in manifest["files"].items():  # the rebuilt entry verifies: the next start hits
        assert hashlib.sha256((_entry(cache, "credit") / name).read_bytes()).hexdigest() == checksum


def _fp32_holdout_auc(folder: Path) -> float:
    """The test model's FP32 ROC-AUC on its holdout file, computed here independently of the server."""
    config = yaml.safe_load((folder / "config.yaml").read_text())
    frame = pd.read_parquet(folder / config["holdout_file"])
    dtypes = {"float32": np.float32, "string": object}
    feeds = {s["name"]: frame[s["name"]].to_numpy(dtypes[s["dtype"]])[:, None] for s in config["inputs"]}
    scores = ort.InferenceSession(folder / "model.onnx").run(["probabilities"], feeds)[0][:, 1]
    return float(roc_auc_score(frame[config["label_column"]], scores))


def _record(folder: Path, **integrity: object) -> None:
    config = yaml.safe_load((folder / "config.yaml").read_text()) | {"name": folder.name}
    (folder / "config.yaml").write_text(yaml.safe_dump(config | {"integrity": integrity}, sort_keys=False))


def test_the_holdout_auc_is_checked_and_a_model_without_a_record_serves_unchecked(tmp_path, caplog) -> None:
    models = tmp_path / "models"
    write_model(models / "fraud", "fraud")  # quantization.mode none: the check makes its own FP32 pass
    write_model(models / "credit", "credit")
    shutil.copytree(models / "fraud", models / "shifted")
    digest = hashlib.sha256((models / "fraud" / "model.onnx").read_bytes()).hexdigest()
    auc = _fp32_holdout_auc(models / "fraud")
    _record(models / "fraud", model_sha256=digest, holdout_roc_auc=round(auc, 4))
    _record(models / "shifted", model_sha256=digest, holdout_roc_auc=round(auc - 0.02, 4))
    with caplog.at_level(logging.INFO):
        running = ServerThread(test_settings(models, tmp_path / "cache")).wait_ready()
    try:
        status = _health(running.target, "model/fraud", "model/shifted", "model/credit")
        with grpc.insecure_channel(running.target) as channel, pytest.raises(grpc.RpcError) as refused:
            scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(model="shifted"), timeout=5)
    finally:
        running.close()
    assert status == {"model/fraud": SERVING, "model/shifted": NOT_SERVING, "model/credit": SERVING}
    details = refused.value.details()
    assert "model 'shifted' is unavailable: integrity:" in details
    assert str(models / "shifted" / "model.onnx") in details
    assert f"FP32 ROC-AUC {auc:.4f} on holdout.parquet, its config records {auc - 0.02:.4f}" in details
    unverified = _messages(caplog, "model_unverified")
    assert len([m for m in unverified if "model=credit" in m]) == 1, unverified
    assert "unchecked=model_sha256,holdout_roc_auc" in unverified[0]
    assert not [m for m in unverified if "model=fraud" in m]


def _mount(*args: str) -> bool:
    import subprocess

    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture()
def read_only_dir(tmp_path: Path):
    """An empty directory on a read-only bind mount (chmod does not stop root); skipped where mounting
    is not allowed."""
    import subprocess

    source, mounted = tmp_path / "ro-source", tmp_path / "ro"
    source.mkdir()
    mounted.mkdir()
    if not _mount("--bind", str(source), str(mounted)):
        pytest.skip("cannot bind-mount here")
    try:
        if not _mount("-o", "remount,bind,ro", str(mounted)):
            pytest.skip("cannot remount read-only here")
        yield mounted
    finally:
        subprocess.run(["umount", str(mounted)], capture_output=True)


def test_a_read_only_cache_serves_with_one_warning_naming_the_directory(read_only_dir, tmp_path, caplog):
    models = tmp_path / "models"
    shutil.copytree(BUNDLED_MODELS_DIR / "credit", models / "credit")
    with caplog.at_level(logging.INFO):
        running = ServerThread(test_settings(models, read_only_dir)).wait_ready()
    try:
        answer = _credit_answer(running.target)
    finally:
        running.close()
    assert answer.model.precision == "int8"
    warnings = _messages(caplog, "cache_unwritable")
    assert len(warnings) == 1 and f"directory={read_only_dir} " in warnings[0], warnings
    assert "Read-only file system" in warnings[0] and "action=serve_uncached" in warnings[0]
    assert list(read_only_dir.iterdir()) == []
