"""Bundled scenarios against the real `riskserve serve`: a met SLA passes, a slow server is caught.

The server serves the bundled models with its own cache; the slow one gets the test-only
`debug_inference_delay_ms` knob, which sleeps inside every ONNX Runtime call.
"""

import json
from pathlib import Path

import pytest
import yaml

from loadtest.cli import BUNDLED_SCENARIOS
from server.cli.main import main
from tests.loadtest.real_server import RiskServeProcess

pytestmark = pytest.mark.timeout(300)

# The scenarios' default generator-lag line is 10 ms at p99, which over 90-300 sends is their 2nd-4th
# slowest: a 10-40 ms stall of this shared machine failed a pass. The tool's pass path is judged here.
SEND_LAG_ALLOWED_MS = 250


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("riskserve-cache")


def short_copy(tmp_path: Path, bundled: str, server: RiskServeProcess, **load: float) -> Path:
    """A bundled scenario pointed at the test server, cut to a few seconds at a small rate."""
    scenario = yaml.safe_load((BUNDLED_SCENARIOS / f"{bundled}.yaml").read_text())
    scenario.update(target=server.target, metrics_url=server.metrics_url)
    scenario["load"].update({"duration_s": 3, "warmup_s": 1, **load})
    path = tmp_path / f"{bundled}.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


@pytest.fixture(scope="module")
def server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with RiskServeProcess(cache_dir, tmp_path_factory.mktemp("log") / "server.log") as running:
        yield running


def test_authorization_path_scenario_passes_against_the_real_server(
    tmp_path: Path, server: RiskServeProcess, capsys: pytest.CaptureFixture
) -> None:
    path = short_copy(tmp_path, "authorization-path", server, rate=100)
    scenario = yaml.safe_load(path.read_text())
    scenario["sla"]["min_throughput_rps"] = 98
    # The tool's pass path end to end, not this shared machine's speed (that is benchmarks/' job): the
    # latency lines keep their shape with room for a busy CI box; a slow server is caught by the test below.
    scenario["sla"].update(
        {"p50_ms": 100, "p99_ms": 250, "p999_ms": 500, "max_send_lag_ms": SEND_LAG_ALLOWED_MS}
    )
    path.write_text(yaml.safe_dump(scenario))
    code = main(["loadtest", str(path), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert code == 0, printed
    assert report["verdict"] == "PASS"
    assert report["figures"]["codes"] == {"OK": 300}
    # the server's own view is scraped beside the client's, and is the smaller of the two
    (fraud,) = report["server"]
    assert (fraud["model"], fraud["method"]) == ("fraud", "Score")
    # scraped after the 1 s warm-up (100 calls): the measured calls, give or take a late scrape (0.5 s here)
    assert fraud["requests"] == pytest.approx(300, abs=50)
    assert 0 < fraud["run_p99_ms"] < report["figures"]["latency_ms"]["p99"] * 1.2
    assert fraud["window_p99_ms"] > 0
    assert (tmp_path / "out" / "latency.png").stat().st_size > 20_000


def test_the_open_inference_protocol_loads_the_real_server_too(
    tmp_path: Path, server: RiskServeProcess
) -> None:
    path = tmp_path / "oip.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "oip",
                "target": server.target,
                "metrics_url": server.metrics_url,
                "protocol": "oip",
                "mix": [
                    {"call": "oip.infer", "model": "fraud", "weight": 3},
                    {"call": "oip.infer", "model": "credit", "batch_size": 8},
                ],
                "load": {"rate": 60, "duration_s": 1.5, "warmup_s": 0.5},
                "sla": {"max_error_rate": 0, "max_send_lag_ms": SEND_LAG_ALLOWED_MS},
            }
        )
    )
    assert main(["loadtest", str(path), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["figures"]["codes"] == {"OK": 90}
    assert set(report["calls"]) == {"oip.infer:fraud", "oip.infer:credit[8]"}
    assert {(s["model"], s["method"]) for s in report["server"]} == {
        ("fraud", "ModelInfer"),
        ("credit", "ModelInfer"),
    }


def test_an_artificially_slow_server_is_caught(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    with RiskServeProcess(cache_dir, tmp_path / "server.log", debug_delay_ms=25) as server:
        path = short_copy(tmp_path, "authorization-path", server, rate=20)
        code = main(["loadtest", str(path), "--out", str(tmp_path / "out")])
    printed = " ".join(capsys.readouterr().out.split())
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert code == 1
    assert "p99 latency (from intended send)" in report["failed_lines"]
    assert "FAIL: p50 latency (from intended send), p99 latency (from intended send)" in printed
    assert "error rate" not in report["failed_lines"]  # slow, not broken: every call answered
    assert report["figures"]["latency_ms"]["p50"] >= 25
