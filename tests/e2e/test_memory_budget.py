"""A burst of large messages stays under the container's memory limit.

48 concurrent 16 MiB `Score` calls once took a fresh server from 227 MiB to a 1.19 GiB peak (the
Deployment's limit is 1 GiB). Now gRPC core refuses a message over `max_message_bytes` (4 MiB) from its
length prefix, before holding it; a large request (64 KiB or more) holds its bytes in a budget
(`max_request_bytes_in_flight`) from before it is parsed until its call ends, the excess refused
RESOURCE_EXHAUSTED unparsed; freed large buffers go back to the OS (server/app/malloc_tuning.py).
Measured on `riskserve serve` subprocesses, RSS from /proc every 5 ms.
"""

import grpc
import pytest

from benchmarks.reliability.large_messages import CALLS, OVER_LIMIT_BYTES, UNDER_LIMIT_BYTES, burst
from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.requests import transaction
from tests.metrics.conftest import one_value, scrape

CONTAINER_LIMIT_MIB = 1024  # deploy/kubernetes/deployment.yaml


def _burst(server, message_bytes: int) -> tuple[float, float, dict[str, int]]:
    """(RSS before, peak RSS, MiB; outcomes by status code) of CALLS concurrent Score calls."""
    measured = burst(server.target, server.pid, message_bytes, base=transaction())
    return measured.rss_mib_before, measured.rss_mib_peak, measured.outcomes


def _still_answers(server) -> None:
    with grpc.insecure_channel(server.target) as channel:
        assert (
            scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction("after"), timeout=10).risk_score >= 0
        )


@pytest.mark.timeout(180)
def test_messages_over_the_limit_are_refused_before_they_are_held(model_repo, spawn_server):
    server = spawn_server(model_repo)
    server.wait_serving(60)
    before, peak, outcomes = _burst(server, OVER_LIMIT_BYTES)
    assert outcomes == {"RESOURCE_EXHAUSTED": CALLS}
    assert peak - before < 100, f"RSS {before:.0f} -> {peak:.0f} MiB"  # 48 x 15 MiB = 720 MiB were sent
    _still_answers(server)


@pytest.mark.timeout(180)
def test_a_burst_under_the_limit_stays_under_the_container_limit(model_repo, spawn_server):
    server = spawn_server(model_repo)
    server.wait_serving(60)
    before, peak, outcomes = _burst(server, UNDER_LIMIT_BYTES)
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes
    assert peak < CONTAINER_LIMIT_MIB, f"RSS {before:.0f} -> {peak:.0f} MiB, {outcomes}"
    _still_answers(server)


@pytest.mark.timeout(180)
def test_large_requests_past_the_byte_budget_are_refused_unparsed_and_counted(model_repo, spawn_server):
    # room for two 3.5 MiB calls; each call holds its bytes for the 300 ms its (slowed) inference takes
    server = spawn_server(model_repo, max_request_bytes_in_flight=8 * 2**20, debug_inference_delay_ms=300)
    server.wait_serving(60)
    _, _, outcomes = _burst(server, UNDER_LIMIT_BYTES)
    assert outcomes.get("RESOURCE_EXHAUSTED", 0) > 0 and set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, (
        outcomes
    )
    text = scrape(server.metrics_url)
    refused = one_value(text, "riskserve_requests_rejected_total", model="unknown", reason="memory_budget")
    assert refused == outcomes["RESOURCE_EXHAUSTED"]
    _still_answers(server)  # every byte given back: a large call fits again
    _, _, again = _burst(server, UNDER_LIMIT_BYTES)
    assert again.get("OK", 0) > 0, again
