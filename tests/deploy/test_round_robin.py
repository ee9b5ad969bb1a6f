"""Client-side round-robin over several replicas, as a gRPC client does over a headless Service.

In Kubernetes, `dns:///riskserve.<namespace>.svc.cluster.local:50051` resolves to every ready pod; with
the `round_robin` policy the channel keeps a connection to each and spreads calls per RPC. Here the same
channel machinery gets the addresses from an `ipv4:` target listing three real servers on 127.0.0.1, and
each server's own metrics endpoint says how many calls it answered. With the default `pick_first` one
server takes them all, which is what a ClusterIP Service's single long-lived HTTP/2 connection does.
"""

import json
import re
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction

REPLICAS = 3
CALLS = 60
STARTUP_BUDGET_S = 30.0

ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerThread]]:
    """Three servers of one small fraud model (no quantization) sharing a cache dir, as pods would."""
    models = tmp_path_factory.mktemp("models")
    write_model(models / "fraud", "fraud")
    cache = tmp_path_factory.mktemp("cache")
    started = time.monotonic()
    servers: list[ServerThread] = []
    try:
        for _ in range(REPLICAS):
            servers.append(ServerThread(test_settings(models, cache)))
        for server in servers:
            server.wait_ready()
        assert time.monotonic() - started < STARTUP_BUDGET_S
        yield servers
    finally:
        for server in servers:
            server.close()


def _scored_calls(server: ServerThread) -> int:
    """FraudScoring.Score calls answered OK, from the server's own /metrics."""
    url = f"http://127.0.0.1:{server.server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    pattern = r"^riskserve_request_duration_seconds_count\{([^}]*)\} (\S+)$"
    total = 0.0
    for labels, value in re.findall(pattern, text, flags=re.M):
        if 'model="fraud"' in labels and 'method="Score"' in labels and 'code="OK"' in labels:
            total += float(value)
    return int(total)


def _send(target: str, options: list[tuple[str, str]], calls: int) -> None:
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        for index in range(calls):
            stub.Score(transaction(f"rr-{index}"), timeout=5)


def _calls_per_server(replicas: list[ServerThread], target: str, options: list[tuple[str, str]]) -> list[int]:
    before = [_scored_calls(s) for s in replicas]
    _send(target, options, CALLS)
    return [_scored_calls(s) - b for s, b in zip(replicas, before, strict=True)]


def _target(replicas: list[ServerThread]) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{s.server.port}" for s in replicas)


def test_round_robin_spreads_calls_evenly_over_replicas(replicas: list[ServerThread]) -> None:
    options = [("grpc.service_config", ROUND_ROBIN)]
    counts = _calls_per_server(replicas, _target(replicas), options)
    assert sum(counts) == CALLS
    # round_robin picks the next READY subchannel per call; all are READY after channel_ready, so the
    # shares are exact up to the calls sent while the last subchannels were still connecting.
    assert min(counts) >= CALLS // REPLICAS - 3, counts


def test_lb_policy_name_option_round_robins_too(replicas: list[ServerThread]) -> None:
    counts = _calls_per_server(replicas, _target(replicas), [("grpc.lb_policy_name", "round_robin")])
    assert sum(counts) == CALLS and min(counts) >= CALLS // REPLICAS - 3, counts


def test_default_pick_first_sends_every_call_to_one_replica(replicas: list[ServerThread]) -> None:
    counts = _calls_per_server(replicas, _target(replicas), [])
    assert sorted(counts) == [0, 0, CALLS], counts
