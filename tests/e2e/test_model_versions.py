"""Model versions and reload without a restart, through real servers on 127.0.0.1: a version swap under
open-loop load fails no call, a version that fails to load or pass its gate is kept out while the old one
serves, clients can pin a version, the admin RPC is off by default and the poll finds new versions."""

import shutil
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.cli.main import main as cli_main
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction

IMPOSSIBLE_GATE = {"budget": {"min_auc_ratio": 1.0, "max_decision_flip_rate": 0.0}, "max_fallback_layers": 0}


def write_version(model_dir: Path, version: str, **model) -> Path:
    """models/fraud/<version>/: a complete fraud model folder whose config says `version`."""
    folder = write_model(model_dir / version, "fraud", name=model_dir.name, **model)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["version"] = version
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def version_one(tmp_path_factory) -> Path:
    """A fraud model at version 1, built once: copied into each test's repository."""
    return write_version(tmp_path_factory.mktemp("v1") / "fraud", "1")


@pytest.fixture()
def repo(tmp_path: Path, version_one: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(version_one, root / "fraud" / "1")
    return root


def add_version(repo: Path, version: str, source: Path, model: str = "fraud") -> Path:
    """A new version folder of `model` with `source`'s files: written aside, then renamed in (as a deploy
    should)."""
    staging = repo / model / f".{version}"
    shutil.copytree(source, staging)
    config = yaml.safe_load((staging / "config.yaml").read_text())
    config["version"] = version
    (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return staging.rename(repo / model / version)


def reload(target: str, model: str = "") -> scoring_pb2.ModelVersions:
    with grpc.insecure_channel(target) as channel:
        return scoring_pb2_grpc.ModelAdminStub(channel).Reload(
            scoring_pb2.ReloadRequest(model=model), timeout=120
        )


def score(target: str, **fields) -> scoring_pb2.FraudScore:
    with grpc.insecure_channel(target) as channel:
        return scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(**fields), timeout=10)


class OpenLoopLoad:
    """Unary Score calls sent at a fixed rate from a thread, whether or not earlier ones have answered:
    each call's send time, answer time and the version that scored it (or its error)."""

    def __init__(self, target: str, rate_per_s: float) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = scoring_pb2_grpc.FraudScoringStub(self.channel)
        self.period_s = 1.0 / rate_per_s
        self.calls: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def _run(self) -> None:
        next_at = time.perf_counter()
        while not self._stop.is_set():
            record = {"sent": time.perf_counter()}
            with self._lock:
                self.calls.append(record)
            future = self.stub.Score.future(transaction(f"t-{len(self.calls)}"), timeout=10)
            future.add_done_callback(lambda f, r=record: self._answered(f, r))
            next_at += self.period_s
            time.sleep(max(0.0, next_at - time.perf_counter()))

    def _answered(self, future, record: dict) -> None:
        record["answered"] = time.perf_counter()
        try:
            record["version"] = future.result().model.version
        except grpc.RpcError as exc:
            record["error"] = f"{exc.code().name}: {exc.details()}"

    def __enter__(self) -> "OpenLoopLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any("answered" not in c for c in self.calls):
            time.sleep(0.01)
        self.channel.close()


def test_the_highest_version_folder_serves(repo, start_server, version_one):
    add_version(repo, "10", version_one)
    add_version(repo, "9", version_one)
    server = start_server(repo).wait_ready()
    assert score(server.target).model.version == "10"  # numbers compare as numbers


def test_a_swap_under_open_loop_load_fails_no_call(repo, start_server, version_one):
    # 1 ms per ORT call: calls queue and overlap, so some are in flight on version 1 as it is replaced
    server = start_server(repo, admin_enabled=True, admin_port=0, debug_inference_delay_ms=1.0).wait_ready()
    admin = f"127.0.0.1:{server.server.admin_port}"
    with OpenLoopLoad(server.target, rate_per_s=300) as load:
        time.sleep(0.5)
        add_version(repo, "2", version_one)
        outcome = reload(admin).models[0]
        reloaded_at = time.perf_counter()
        time.sleep(0.5)
    assert outcome.outcome == "swapped" and outcome.serving.version == "2", outcome
    errors = [c["error"] for c in load.calls if "error" in c]
    assert errors == [] and all("version" in c for c in load.calls), errors[:3]
    versions = [c["version"] for c in sorted(load.calls, key=lambda c: c["sent"])]
    assert versions[0] == "1" and versions[-1] == "2" and len(versions) > 200
    first_new = min(c["answered"] for c in load.calls if c["version"] == "2")
    # once version 2 answered, every call sent later is version 2: the answers switch once, never back
    assert {c["version"] for c in load.calls if c["sent"] > first_new} == {"2"}
    assert {c["version"] for c in load.calls if c["sent"] > reloaded_at} == {"2"}
    # the old version's batcher drained and stopped
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and server.server.reloads._retiring != set():
        time.sleep(0.05)
    assert server.server.reloads._retiring == set()


def _scrape(server) -> str:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=5
    ) as answer:
        return answer.read().decode()


def test_a_version_that_fails_its_gate_is_kept_out_and_the_old_one_serves(repo, start_server, tmp_path):
    server = start_server(repo, admin_enabled=True, admin_port=0).wait_ready()
    admin = f"127.0.0.1:{server.server.admin_port}"
    write_version(tmp_path / "candidate" / "fraud", "2", quantization=IMPOSSIBLE_GATE)
    add_version(repo, "2", tmp_path / "candidate" / "fraud" / "2")
    outcome = reload(admin, "fraud").models[0]
    assert outcome.outcome == "kept_out" and outcome.serving.version == "1", outcome
    assert outcome.kept_out_version == "2" and outcome.kept_out_reason.startswith("gate_failed: verdict ")
    assert score(server.target).model.version == "1"
    with pytest.raises(grpc.RpcError) as pinned:
        score(server.target, model_version="2")
    assert pinned.value.code() is grpc.StatusCode.NOT_FOUND
    assert "(served: 1); version 2 was kept out: gate_failed" in pinned.value.details()
    metrics = _scrape(server)
    assert 'riskserve_model_reloads_total{model="fraud",outcome="kept_out"} 1.0' in metrics
    assert 'riskserve_model_version_kept_out{model="fraud",reason="gate_failed",version="2"} 1.0' in metrics
    assert (
        'riskserve_model_info{gate_verdict="disabled",model="fraud",precision="fp32",version="1"}' in metrics
    )
    with grpc.insecure_channel(admin) as channel:
        listed = scoring_pb2_grpc.ModelAdminStub(channel).ListVersions(scoring_pb2.ListVersionsRequest())
    assert [(m.model, m.serving.version, m.kept_out_version) for m in listed.models] == [("fraud", "1", "2")]
    # unchanged files are not tried again; the next reload says so and keeps the reason visible
    again = reload(admin).models[0]
    assert again.outcome == "unchanged" and again.kept_out_version == "2"


def test_a_scrambled_model_file_is_kept_out(repo, start_server, version_one):
    server = start_server(repo, admin_enabled=True, admin_port=0).wait_ready()
    folder = add_version(repo, "2", version_one)
    (folder / "model.onnx").write_bytes(b"\x08\x07not an onnx graph" * 64)
    outcome = reload(f"127.0.0.1:{server.server.admin_port}").models[0]
    assert outcome.outcome == "kept_out" and "fraud/2/model.onnx" in outcome.kept_out_reason, outcome
    assert score(server.target).model.version == "1"


def test_clients_pin_the_serving_version_and_others_are_not_found(repo, start_server):
    server = start_server(repo).wait_ready()
    assert score(server.target, model_version="1").model.version == "1"
    with pytest.raises(grpc.RpcError) as pinned:
        score(server.target, model_version="7")
    assert pinned.value.code() is grpc.StatusCode.NOT_FOUND
    assert pinned.value.details() == "model 'fraud' version '7' is not served (served: 1)"
    with grpc.insecure_channel(server.target) as channel:
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        batch = scoring_pb2.TransactionBatch(
            transactions=[transaction("a"), transaction("b")], model_version="7"
        )
        with pytest.raises(grpc.RpcError) as batched:
            stub.ScoreBatch(batch, timeout=10)
        assert batched.value.code() is grpc.StatusCode.NOT_FOUND
        streamed = [transaction("s1", model_version="1"), transaction("s2", model_version="7")]
        answers = stub.ScoreStream(iter(streamed), timeout=10)
        assert next(answers).model.version == "1"
        with pytest.raises(grpc.RpcError) as stream_error:
            next(answers)
        assert stream_error.value.code() is grpc.StatusCode.NOT_FOUND


def test_the_admin_rpc_is_off_by_default(repo, start_server):
    server = start_server(repo).wait_ready()
    assert server.server.admin_port is None
    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as refused:
        scoring_pb2_grpc.ModelAdminStub(channel).Reload(scoring_pb2.ReloadRequest(), timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED  # nor on the serving port


def test_the_poll_finds_a_changed_flat_model_and_swaps_it_in(tmp_path, start_server, version_one):
    root = tmp_path / "models"
    shutil.copytree(version_one, root / "fraud")  # today's layout: models/fraud/config.yaml
    server = start_server(root, model_poll_s=0.2).wait_ready()
    config = yaml.safe_load((root / "fraud" / "config.yaml").read_text())
    config["version"] = "1.1"
    (root / "fraud" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and score(server.target).model.version != "1.1":
        time.sleep(0.1)
    assert score(server.target).model.version == "1.1"


def test_models_reload_cli_exit_codes(repo, start_server, version_one, tmp_path, capsys):
    server = start_server(repo, admin_enabled=True, admin_port=0).wait_ready()
    admin = f"127.0.0.1:{server.server.admin_port}"
    assert cli_main(["models", "reload", "--target", admin]) == 0
    assert capsys.readouterr().out == "fraud: unchanged (version 1)\n"
    add_version(repo, "2", version_one)
    assert cli_main(["models", "reload", "fraud", "--target", admin]) == 0
    assert capsys.readouterr().out == "fraud: swapped to version 2 (fp32, gate disabled)\n"
    (add_version(repo, "3", version_one) / "model.onnx").write_bytes(b"scrambled")
    assert cli_main(["models", "reload", "--target", admin]) == 1
    assert capsys.readouterr().out.startswith("fraud: kept version 2 because version 3 was kept out: ")
    assert cli_main(["models", "reload", "nosuch", "--target", admin]) == 2
    assert "NOT_FOUND model 'nosuch' is not configured" in capsys.readouterr().err
    assert cli_main(["models", "reload", "--target", server.target]) == 2  # the serving port has no admin
