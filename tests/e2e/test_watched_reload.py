"""A reloaded version is watched like a started one, through real servers on 127.0.0.1 (issue 16): the new
INT8 version has its own FP32 live check from its first call and the old one's stops; a reloaded champion
keeps its challenger shadow; a reloaded challenger is the one the champion's shadow scores with; after
on_live_drift serve_fp32 the FP32 runtime keeps the challenger shadow."""

import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from server.config.model_config import ModelConfig
from tests.e2e.conftest import ServerThread
from tests.e2e.model_factory import INT8_HIDDEN, INT8_SERVED, fraud_frame
from tests.e2e.shadow_traffic import flipping_rows, metric_value, send_rows, wait_for
from tests.e2e.test_model_versions import add_version, reload, score, write_version

SHADOW_ALL = {"model": "fraud_v2", "shadow_share": 1.0}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Version 1 of an INT8-served fraud model, of an FP32 one and of fraud_v2 (a challenger): built once."""
    root = tmp_path_factory.mktemp("watched-models")
    write_version(root / "int8" / "fraud", "1", quantization=INT8_SERVED, hidden=INT8_HIDDEN)
    write_version(root / "fp32" / "fraud", "1")
    write_version(root / "challenger" / "fraud_v2", "1", hidden=(8,))
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("watched-cache")


def repository(built: Path, target: Path, fraud: str, challenger: dict | None = None) -> Path:
    """models/fraud/1 (`fraud`: "int8" or "fp32"), with `challenger` as its config section, and
    models/fraud_v2/1 when it names one."""
    shutil.copytree(built / fraud / "fraud", target / "fraud")
    if challenger is not None:
        shutil.copytree(built / "challenger" / "fraud_v2", target / "fraud_v2")
        config_file = target / "fraud" / "1" / "config.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["challenger"] = challenger
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


ADMIN = dict(admin_enabled=True, admin_port=0)  # reloads are asked for over the admin RPC


def _reload(server: ServerThread, model: str, version: str) -> None:
    outcome = reload(f"127.0.0.1:{server.server.admin_port}", model).models[0]
    assert (outcome.outcome, outcome.serving.version) == ("swapped", version), outcome


def _retired(server: ServerThread) -> None:
    """Until every swapped-out version drained and its watches stopped."""
    wait_for(lambda: server.server.reloads._retiring == set())


def _rows(config: ModelConfig, count: int, seed: int):
    return fraud_frame(count, seed=seed)[config.feature_names]


def _live_threads() -> int:
    return sum(t.name == "riskserve-live-fraud" and t.is_alive() for t in threading.enumerate())


def test_a_reloaded_int8_version_has_its_own_live_check_and_the_old_one_stops(servers, built, tmp_path):
    repo = repository(built, tmp_path / "models", "int8")
    server = servers(repo, **ADMIN, live_check_sample_rate=1.0)
    config = server.server.repository.get("fraud").config
    rows = "riskserve_live_check_rows_total"
    send_rows(server, config, _rows(config, 20, seed=1))
    wait_for(lambda: metric_value(server, rows, model="fraud", version="1") == 20)
    assert _live_threads() == 1
    add_version(repo, "2", repo / "fraud" / "1")
    _reload(server, "fraud", "2")
    assert server.server.repository.get("fraud").facts.precision.value == "int8"
    send_rows(server, config, _rows(config, 30, seed=2))
    wait_for(lambda: metric_value(server, rows, model="fraud", version="2") == 30)
    assert metric_value(server, "riskserve_live_check_window_rows", model="fraud", version="2") == 30
    _retired(server)
    assert _live_threads() == 1  # version 1's FP32 thread ended with it
    send_rows(server, config, _rows(config, 10, seed=3))
    wait_for(lambda: metric_value(server, rows, model="fraud", version="2") == 40)
    assert metric_value(server, rows, model="fraud", version="1") == 20  # stopped changing, still exported


def _challenger_rows(server: ServerThread, version: str, challenger_version: str) -> float | None:
    return metric_value(
        server,
        "riskserve_challenger_rows_total",
        model="fraud",
        version=version,
        challenger="fraud_v2",
        challenger_version=challenger_version,
    )


def test_a_reloaded_champion_keeps_its_challenger_shadow(servers, built, tmp_path):
    repo = repository(built, tmp_path / "models", "fp32", SHADOW_ALL)
    server = servers(repo, **ADMIN)
    config = server.server.repository.get("fraud").config
    add_version(repo, "2", repo / "fraud" / "1")
    _reload(server, "fraud", "2")
    send_rows(server, config, _rows(config, 25, seed=4))
    wait_for(lambda: _challenger_rows(server, "2", "1") == 25)
    labels = dict(model="fraud", version="2", challenger="fraud_v2", challenger_version="1")
    assert metric_value(server, "riskserve_challenger_window_rows", **labels) == 25
    for threshold in config.decision.thresholds():
        agreement = metric_value(server, "riskserve_challenger_agreement_rate", **labels, threshold=threshold)
        assert 0.0 <= agreement <= 1.0
    assert _challenger_rows(server, "1", "1") == 0  # version 1 was never called


def test_a_reloaded_challenger_is_the_one_the_champion_is_shadowed_with(servers, built, tmp_path):
    repo = repository(built, tmp_path / "models", "fp32", SHADOW_ALL)
    server = servers(repo, **ADMIN)
    config = server.server.repository.get("fraud").config
    send_rows(server, config, _rows(config, 15, seed=5))
    wait_for(lambda: _challenger_rows(server, "1", "1") == 15)
    add_version(repo, "2", repo / "fraud_v2" / "1", model="fraud_v2")
    _reload(server, "fraud_v2", "2")
    send_rows(server, config, _rows(config, 20, seed=6))
    wait_for(lambda: _challenger_rows(server, "1", "2") == 20)
    time.sleep(0.2)
    assert _challenger_rows(server, "1", "1") == 15  # the old pairing stopped counting


def test_after_serve_fp32_the_challenger_shadow_still_counts_rows(servers, built, tmp_path):
    repo = repository(built, tmp_path / "models", "int8", SHADOW_ALL)
    server = servers(
        repo, **ADMIN, live_check_sample_rate=1.0, on_live_drift="serve_fp32", live_check_min_rows=8
    )
    int8 = server.server.repository.get("fraud")
    config = int8.config
    flipping = flipping_rows(config, int8.prepared.model_path, 12)
    send_rows(server, config, flipping, sizes=(1,))
    wait_for(lambda: metric_value(server, "riskserve_model_fp32_fallback", model="fraud") == 1.0)
    assert server.server.repository.get("fraud").facts.precision.value == "fp32"
    wait_for(lambda: _challenger_rows(server, "1", "1") == 12)
    answers = send_rows(server, config, _rows(config, 20, seed=7))
    assert {a["precision"] for a in answers} == {"fp32"}
    wait_for(lambda: _challenger_rows(server, "1", "1") == 32)


def test_a_reloaded_challenger_section_is_checked_as_at_startup(servers, built, tmp_path):
    repo = repository(built, tmp_path / "models", "fp32", SHADOW_ALL)
    server = servers(repo, **ADMIN)
    folder = add_version(repo, "2", repo / "fraud" / "1")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["challenger"] = {"model": "nosuch", "shadow_share": 1.0}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    outcome = reload(f"127.0.0.1:{server.server.admin_port}", "fraud").models[0]
    assert (outcome.outcome, outcome.serving.version) == ("kept_out", "1"), outcome
    assert outcome.kept_out_reason.startswith("config: ") and "challenger.model" in outcome.kept_out_reason
    assert "'nosuch' is not a configured model" in outcome.kept_out_reason


def test_a_reload_without_the_challenger_section_rolls_the_split_back(servers, built, tmp_path):
    repo = repository(built, tmp_path / "models", "fp32", {"model": "fraud_v2", "live_share": 1.0})
    server = servers(repo, **ADMIN)
    assert score(server.target, card_id="card-1").model.name == "fraud_v2"
    folder = add_version(repo, "2", repo / "fraud" / "1")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    del config["challenger"]
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _reload(server, "fraud", "2")
    assert score(server.target, card_id="card-1").model.name == "fraud"
