"""max_connection_age_s: the server closes old client connections gracefully (GOAWAY); the client's calls
keep succeeding over the new connection it opens (and, with DNS, the re-resolution that finds new pods)."""

import threading
import time

import grpc

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.app.grpc_server import server_options
from tests.e2e.conftest import test_settings
from tests.e2e.requests import transaction


def test_settings_reach_the_grpc_options(model_repo, cache_dir) -> None:
    options = dict(server_options(test_settings(model_repo, cache_dir, max_connection_age_s=300)))
    assert options["grpc.max_connection_age_ms"] == 300_000
    assert options["grpc.max_connection_age_grace_ms"] == 30_000
    off = dict(server_options(test_settings(model_repo, cache_dir)))
    assert "grpc.max_connection_age_ms" not in off, "default 0: connections are never recycled"


def test_calls_keep_succeeding_while_the_connection_is_recycled(start_server, model_repo) -> None:
    aged = start_server(model_repo, max_connection_age_s=1, max_connection_age_grace_s=1).wait_ready()
    states: list[grpc.ChannelConnectivity] = []
    lock = threading.Lock()

    def record(state: grpc.ChannelConnectivity) -> None:
        with lock:
            states.append(state)

    with grpc.insecure_channel(aged.target) as channel:
        channel.subscribe(record, try_to_connect=True)
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        answered = 0
        ends = time.monotonic() + 3.2
        while time.monotonic() < ends:
            assert fraud.Score(transaction(f"age-{answered}"), timeout=5).transaction_id == f"age-{answered}"
            answered += 1
            time.sleep(0.05)
        channel.unsubscribe(record)
    with lock:
        ready = states.count(grpc.ChannelConnectivity.READY)
    assert answered > 20
    assert ready >= 2, f"the server never closed the connection: {states}"
