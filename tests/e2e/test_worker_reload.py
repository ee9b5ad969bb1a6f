"""A new model version with `workers` > 1: each serving process polls the repository on its own
(`model_poll_s`), so every worker swaps it in within about one poll, with no admin RPC needed (the admin
port is served only by a single-process server). Through a real supervisor and two real workers."""

import re
from pathlib import Path

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.requests import transaction
from tests.e2e.test_model_versions import add_version, write_version
from tests.e2e.test_workers import SEPARATE_CONNECTION, _wait_for

CONNECTIONS = 16  # new connections land on either worker (SO_REUSEPORT)


def _versions_answering(target: str) -> set[str]:
    """The model versions that score, over CONNECTIONS separate connections."""
    versions = set()
    for i in range(CONNECTIONS):
        with grpc.insecure_channel(target, options=SEPARATE_CONNECTION) as channel:
            answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(f"t-{i}"), timeout=10)
            versions.add(answer.model.version)
    return versions


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_version(root / "fraud", "1")
    return root


def test_every_worker_polls_and_swaps_in_a_new_version(spawn_server, repo):
    process = spawn_server(repo, workers=2, model_poll_s=0.3)
    _wait_for(lambda: sum("event=serving" in line for line in process.log) == 2, 90, "both workers serving")
    assert _versions_answering(process.target) == {"1"}

    add_version(repo, "2", repo / "fraud" / "1")
    swapped = re.compile(r"event=model_reload model=fraud outcome=swapped version=2 ")
    _wait_for(lambda: sum(bool(swapped.search(line)) for line in process.log) == 2, 60, "both workers swap")
    assert _versions_answering(process.target) == {"2"}
