"""The command line: verdict table, exit codes, JSON report and picture; --find-max."""

import json
from pathlib import Path

import pytest

from loadtest.find_max import find_max_rate
from loadtest.request_bodies import build_pool
from loadtest.scenario import parse_scenario
from server.cli.main import main
from tests.loadtest.conftest import write_scenario
from tests.loadtest.peer_server import PeerBehaviour, PeerServer

pytestmark = pytest.mark.timeout(90)

# The verdict's other lines are what these tests judge: the generator's own lag line must not fail them on
# a stalled machine (50 ms over ~100 sends failed on a ~55 ms stall). 500 ms stays below the 1 s timeout.
SEND_LAG_ALLOWED_MS = 500


def scenario_for(target: str, data_file: Path, sla: dict) -> dict:
    return {
        "name": "cli-test",
        "target": target,
        "metrics_url": "http://127.0.0.1:9/metrics",
        "mix": [{"call": "fraud.score", "data_file": str(data_file)}],
        "load": {"rate": 100, "duration_s": 1, "warmup_s": 0.3},
        "sla": {"max_send_lag_ms": SEND_LAG_ALLOWED_MS, **sla},
    }


def test_an_sla_that_cannot_be_met_exits_1_naming_the_line_and_writes_reports(
    tmp_path: Path, fraud_file: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    with PeerServer(PeerBehaviour(delay_ms=15)) as peer:
        path = write_scenario(tmp_path, scenario_for(peer.target, fraud_file, {"p50_ms": 100, "p99_ms": 5}))
        code = main(["loadtest", str(path), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAIL: p99 latency (from intended send)" in printed
    assert "p99 so far" in printed  # the live line
    assert "CPU the generator uses is CPU the server did not get" in " ".join(printed.split())
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "FAIL"
    assert report["failed_lines"] == ["p99 latency (from intended send)"]
    lines = {line["name"]: line for line in report["sla"]}
    assert lines["p50 latency (from intended send)"]["passed"] is True
    assert report["figures"]["latency_ms"]["p99"] > 15
    assert report["figures"]["codes"] == {"OK": 100}
    assert report["server_metrics_scraped"] is False
    assert len(report["latency_over_time"]) >= 8
    png = (out / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_overrides_from_the_command_line_reach_the_run(tmp_path: Path, fraud_file: Path) -> None:
    out = tmp_path / "out"
    with PeerServer() as peer:
        # a peer that answers at once: p99 of the 60 calls is the second slowest, so only a wide line is safe
        path = write_scenario(tmp_path, scenario_for("127.0.0.1:1", fraud_file, {"p99_ms": 500}))
        code = main(
            [
                "loadtest",
                str(path),
                "--out",
                str(out),
                "--target",
                peer.target,
                "--rate",
                "60",
                "--duration",
                "1",
                "--warmup",
                "0",
            ]
        )
    report = json.loads((out / "report.json").read_text())
    assert code == 0 and report["verdict"] == "PASS"
    assert report["figures"]["requests"] == 60


def test_an_unreachable_target_is_reported_not_judged(
    tmp_path: Path, fraud_file: Path, capsys: pytest.CaptureFixture
) -> None:
    scenario = scenario_for("127.0.0.1:9", fraud_file, {"p99_ms": 50})
    scenario["load"]["connect_timeout_s"] = 1
    path = write_scenario(tmp_path, scenario)
    assert main(["loadtest", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "cannot connect to 127.0.0.1:9 within 1 s" in capsys.readouterr().err


def test_find_max_brackets_the_rate_where_the_sla_breaks(fraud_file: Path) -> None:
    # ten requests at a time, 50 ms each: up to 200 req/s fit; beyond, calls are refused. At 80 req/s
    # about 4 are in flight, so only a stall of ~75 ms (a noisy shared machine) could refuse one there
    with PeerServer(PeerBehaviour(delay_ms=50, max_in_flight=10)) as peer:
        scenario = parse_scenario(
            {
                "name": "find-max",
                "target": peer.target,
                "mix": [{"call": "fraud.score", "data_file": str(fraud_file)}],
                "load": {"rate": 40, "duration_s": 1, "workers": 1},
                # the generator's own lag judged loosely (default 10 ms: one 10 ms stall in the 32 sends of
                # the 40 req/s trial failed it): this test is about the peer's refusals, not the machine
                "sla": {"max_error_rate": 0.02, "max_send_lag_ms": 200},
            }
        )
        pools = tuple(build_pool(entry) for entry in scenario.mix)
        found = find_max_rate(scenario, pools, trial_s=0.8, warmup_s=0.1, precision=0.3, max_trials=5)
    rates = [(t.rate_rps, t.passed) for t in found.trials]
    assert rates[:2] == [(40, True), (80, True)]
    assert found.max_rate_rps is not None and 80 <= found.max_rate_rps < 320
    assert any(not passed and rate > found.max_rate_rps for rate, passed in rates)
    assert found.best_run is not None and not found.limited_by_generator


def test_a_run_where_every_call_is_refused_still_reports_and_says_why(
    tmp_path: Path, fraud_file: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    with PeerServer(PeerBehaviour(max_in_flight=0)) as peer:
        path = write_scenario(
            tmp_path, scenario_for(peer.target, fraud_file, {"p99_ms": 10, "max_error_rate": 0})
        )
        code = main(["loadtest", str(path), "--out", str(out)])
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert code == 1
    assert report["figures"]["codes"] == {"RESOURCE_EXHAUSTED": 100}
    assert report["error_details"] == {"RESOURCE_EXHAUSTED": "queue full"}
    assert "first RESOURCE_EXHAUSTED: queue full" in printed
    lines = {line["name"]: line for line in report["sla"]}
    assert lines["p99 latency (from intended send)"]["measured"] == "no answers"
    assert (out / "latency.png").read_bytes().startswith(b"\x89PNG")
