"""Measurement against a peer that stalls, slows down or refuses on demand (see peer_server.py)."""

from pathlib import Path

import grpc
import pytest

from loadtest.figures import compute_figures
from loadtest.runner import RunResult, run_scenario
from loadtest.scenario import parse_scenario
from loadtest.sla import evaluate
from tests.loadtest.peer_server import PeerBehaviour, PeerServer

pytestmark = pytest.mark.timeout(60)

# The machine is shared with other test runs: the generator's own lag is judged loosely here. A run of 50
# to 200 sends takes its p99 lag from its 1st-3rd slowest, so 50 ms failed on a ~50-70 ms stall. 150 ms
# still tells a generator that charged the server's 600 ms stall to itself (p99 lag ~570 ms) from one that
# did not.
SEND_LAG_ALLOWED_MS = 150
STALL_MS = 600


def run(
    target: str, data_file: Path, load: dict, sla: dict | None = None, mix: list | None = None
) -> RunResult:
    scenario = parse_scenario(
        {
            "name": "peer-test",
            "target": target,
            "mix": mix or [{"call": "fraud.score", "data_file": str(data_file)}],
            "load": {"warmup_s": 0.3, "workers": 1, **load},
            "sla": {"max_send_lag_ms": SEND_LAG_ALLOWED_MS, **(sla or {})},
        }
    )
    return run_scenario(scenario)


def test_a_stall_shows_from_intended_send_and_hides_from_actual_send_and_closed_loop(
    fraud_file: Path,
) -> None:
    # 600 ms, not 300: the max-latency checks' slack above the stall is a quarter of it, and 75 ms was
    # eaten by one stall of the loaded machine while the backlog drained (394 ms seen under CPU stress)
    stall = PeerBehaviour(stall_ms=STALL_MS, stall_after_s=0.8)
    # A generator allowed one request in flight (like one connection of wrk2): during the stall its sends
    # wait, so timing from the actual send misses the wait; timing from the intended send does not.
    with PeerServer(stall) as peer:
        open_loop = run(peer.target, fraud_file, {"rate": 100, "duration_s": 2, "max_in_flight": 1})
    with PeerServer(PeerBehaviour(stall_ms=STALL_MS, stall_after_s=0.8)) as peer:
        closed_loop = run(peer.target, fraud_file, {"mode": "closed", "concurrency": 1, "duration_s": 2})
    corrected = compute_figures(open_loop)
    closed = compute_figures(closed_loop)
    assert corrected.codes == {"OK": 200}
    # ~60 of 200 intended sends fall in the 600 ms stall and wait 0-600 ms: p99 sees it
    assert corrected.latency_ms["p99"] > 150
    assert corrected.uncorrected_latency_ms["p99"] < 50
    assert corrected.latency_ms["p99"] > 5 * corrected.uncorrected_latency_ms["p99"]
    assert corrected.max_latency_ms == pytest.approx(STALL_MS, rel=0.25)
    assert corrected.slot_waits > 10
    # the generator itself kept the schedule: the lateness came from the server, and is charged to it
    assert evaluate(open_loop.scenario.sla, corrected).fell_behind is False
    # closed loop: one caller waits through the stall once, then carries on; p99 stays low
    assert closed.requests > 200
    assert closed.latency_ms["p99"] < 50
    assert closed.max_latency_ms == pytest.approx(STALL_MS, rel=0.25)


def test_a_server_stall_reaches_both_views_when_sends_are_not_held_back(fraud_file: Path) -> None:
    with PeerServer(PeerBehaviour(stall_ms=300, stall_after_s=0.8)) as peer:
        result = run(peer.target, fraud_file, {"rate": 100, "duration_s": 2})
    figures = compute_figures(result)
    assert figures.slot_waits == 0
    assert figures.latency_ms["p99"] > 150, figures
    assert figures.uncorrected_latency_ms["p99"] > 150, figures


def test_refusals_with_resource_exhausted_pass_the_overload_sla(fraud_file: Path) -> None:
    sla = {"expect_codes": ["RESOURCE_EXHAUSTED"], "max_timeout_rate": 0.0}
    with PeerServer(PeerBehaviour(delay_ms=50, max_in_flight=2)) as peer:
        result = run(peer.target, fraud_file, {"rate": 200, "duration_s": 1, "timeout_ms": 300}, sla)
    figures = compute_figures(result)
    verdict = evaluate(result.scenario.sla, figures)
    assert figures.codes["RESOURCE_EXHAUSTED"] > figures.codes["OK"] > 0
    assert verdict.passed, verdict.lines


def test_fast_deadline_refusals_are_errors_but_not_timeouts_or_latencies(fraud_file: Path) -> None:
    behaviour = PeerBehaviour(delay_ms=50, max_in_flight=2, refusal=grpc.StatusCode.DEADLINE_EXCEEDED)
    with PeerServer(behaviour) as peer:
        result = run(
            peer.target,
            fraud_file,
            {"rate": 200, "duration_s": 1, "timeout_ms": 500},
            {"max_timeout_rate": 0.0, "max_error_rate": 0.01},
        )
    figures = compute_figures(result)
    verdict = evaluate(result.scenario.sla, figures)
    assert figures.codes["DEADLINE_EXCEEDED"] > figures.codes["OK"] > 0
    assert figures.timeouts == 0
    assert result.recording.corrected.get_total_count() == figures.codes["OK"]  # answers only
    assert figures.latency_ms["p50"] >= 50  # the answered calls' 50 ms, not the instant refusals
    assert verdict.failed_lines == ["error rate"]


def test_timeouts_instead_of_refusals_fail_the_overload_sla(fraud_file: Path) -> None:
    sla = {
        "expect_codes": ["RESOURCE_EXHAUSTED"],
        "max_timeout_rate": 0.0,
        "max_code_rate": {"DEADLINE_EXCEEDED": 0.0},
    }
    with PeerServer(PeerBehaviour(delay_ms=400)) as peer:
        result = run(peer.target, fraud_file, {"rate": 50, "duration_s": 1, "timeout_ms": 200}, sla)
    figures = compute_figures(result)
    verdict = evaluate(result.scenario.sla, figures)
    assert figures.codes == {"DEADLINE_EXCEEDED": 50}
    assert figures.timeouts == 50
    assert verdict.failed_lines == [
        "RESOURCE_EXHAUSTED seen",
        "timeouts (caller waited out the deadline)",
        "DEADLINE_EXCEEDED rate",
    ]
    # timed-out calls count in latency at what the caller waited: the deadline
    assert figures.latency_ms["p50"] == pytest.approx(200, rel=0.15)


def test_a_generator_that_cannot_keep_up_fails_its_line_instead_of_sending_less(fraud_file: Path) -> None:
    with PeerServer() as peer:
        result = run(peer.target, fraud_file, {"rate": 40_000, "duration_s": 1, "warmup_s": 0})
    figures = compute_figures(result)
    verdict = evaluate(result.scenario.sla, figures)
    assert verdict.fell_behind
    assert "generator kept schedule" in verdict.failed_lines
    assert figures.sent < figures.scheduled or figures.send_lag_p99_ms > SEND_LAG_ALLOWED_MS
    assert figures.scheduled == 40_000


def test_mixed_calls_stream_batch_and_credit_are_all_answered(fraud_file: Path, credit_file: Path) -> None:
    mix = [
        {"call": "fraud.score", "data_file": str(fraud_file), "weight": 2},
        {"call": "fraud.score_batch", "batch_size": 16, "data_file": str(fraud_file)},
        {"call": "fraud.score_stream", "data_file": str(fraud_file)},
        {"call": "credit.assess", "data_file": str(credit_file)},
    ]
    with PeerServer() as peer:
        result = run(peer.target, fraud_file, {"arrival": "poisson", "rate": 200, "duration_s": 1}, mix=mix)
        received = list(peer.state.received)
    figures = compute_figures(result)
    calls = result.recording.calls
    assert set(calls) == {"fraud.score", "fraud.score_batch[16]", "fraud.score_stream", "credit.assess"}
    assert figures.codes == {"OK": sum(calls.values())}
    assert result.recording.rows_ok == sum(calls.values()) + 15 * calls["fraud.score_batch[16]"]
    kinds = {type(message).__name__ for message in received}
    assert kinds == {"Transaction", "TransactionBatch", "Application"}


def test_streams_the_server_ends_lose_no_message_and_report_why(fraud_file: Path) -> None:
    mix = [{"call": "fraud.score_stream", "data_file": str(fraud_file)}]
    with PeerServer(PeerBehaviour(end_stream_after=25)) as peer:
        result = run(peer.target, fraud_file, {"rate": 150, "duration_s": 1, "warmup_s": 0}, mix=mix)
    figures = compute_figures(result)
    # every scheduled message is accounted for: answered, or failed with the status that ended its stream
    assert figures.requests == figures.scheduled == 150
    assert figures.codes["OK"] >= 100
    assert figures.codes["INVALID_ARGUMENT"] >= 1
    assert "bad amount" in result.recording.error_details["INVALID_ARGUMENT"]


def test_stream_answers_later_than_the_timeout_count_as_deadline_exceeded(fraud_file: Path) -> None:
    mix = [{"call": "fraud.score_stream", "data_file": str(fraud_file)}]
    with PeerServer(PeerBehaviour(delay_ms=60)) as peer:  # one message at a time: the backlog grows
        result = run(peer.target, fraud_file, {"rate": 50, "duration_s": 1, "timeout_ms": 300}, mix=mix)
    figures = compute_figures(result)
    assert figures.requests == figures.scheduled == 50
    assert figures.codes["DEADLINE_EXCEEDED"] > 10
    # the caller gives up at the deadline, as with a unary call: latency is bounded by the timeout
    assert figures.uncorrected_latency_ms["p999"] == pytest.approx(300, rel=0.01)
    # from the intended send: the 300 ms deadline plus the generator's own lag (a stall), ~1.1 s if unbounded
    assert figures.max_latency_ms < 600, figures.max_latency_ms
