"""Scenario files: bundled ones load; bad ones fail with exit code 2 and a message naming the field."""

from pathlib import Path

import pytest

from loadtest.cli import BUNDLED_SCENARIOS
from loadtest.errors import ScenarioError
from loadtest.scenario import LoadMode, load_scenario, with_overrides
from server.cli.main import main
from tests.loadtest.conftest import write_scenario

GOOD = {
    "name": "ok",
    "mix": [{"call": "fraud.score"}],
    "load": {"rate": 100, "duration_s": 5},
    "sla": {"p99_ms": 10},
}


def test_every_bundled_scenario_loads_with_short_defaults() -> None:
    paths = sorted(BUNDLED_SCENARIOS.glob("*.yaml"))
    assert {p.stem for p in paths} >= {
        "authorization-path",
        "mixed-fraud-credit",
        "batch-rescoring",
        "overload-step",
    }
    for path in paths:
        scenario = load_scenario(path)
        assert scenario.target == "127.0.0.1:50051"
        assert scenario.metrics_url == "http://127.0.0.1:9100/metrics"
        assert scenario.load.warmup_s + scenario.load.measured_s <= 20


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"protocol": "http"}, "protocol", "riskserve"),
        ({"load": {"rate": -5, "duration_s": 5}}, "load.rate", "greater than 0"),
        ({"load": {"rate": 100}}, "load", "duration_s"),
        ({"load": {"rate": 100, "duration_s": 5, "concurency": 3}}, "load.concurency", "unknown field"),
        ({"mix": [{"call": "fraud.score", "batch_size": 8}]}, "mix.0", "batch_size"),
        ({"mix": [{"call": "fraud.scor"}]}, "mix.0.call", "fraud.score"),
        ({"mix": []}, "mix", "at least 1"),
        ({"sla": {"expect_codes": ["RESOURCE_EXHAUSTD"]}}, "sla.expect_codes", "RESOURCE_EXHAUSTED"),
        ({"sla": {"p99_ms": "fast"}}, "sla.p99_ms", "number"),
        ({"target": "localhost"}, "target", "pattern"),
        ({"protocol": "oip"}, "mix.0.call", "cannot be sent with protocol oip"),
        ({"load": {"mode": "closed", "duration_s": 5}}, "load", "concurrency"),
    ],
)
def test_bad_scenario_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, change: dict, field: str, words: str
) -> None:
    path = write_scenario(tmp_path, {**GOOD, **change})
    assert main(["loadtest", str(path), "--out", str(tmp_path / "out")]) == 2
    output = capsys.readouterr().err
    assert f"  {field}:" in output
    assert words in output
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_yaml_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["loadtest", str(tmp_path / "absent.yaml")]) == 2
    assert "scenario file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert main(["loadtest", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, GOOD))
    assert with_overrides(scenario, rate=250).load.rate == 250
    with pytest.raises(ScenarioError, match="target"):
        with_overrides(scenario, target="no-port")
    closed = load_scenario(
        write_scenario(
            tmp_path, {**GOOD, "load": {"mode": "closed", "concurrency": 2, "duration_s": 3}}, "closed.yaml"
        )
    )
    assert closed.load.mode is LoadMode.CLOSED
    with pytest.raises(ScenarioError, match="--rate applies to open-loop"):
        with_overrides(closed, rate=10)


def test_step_schedule_keeps_its_shape_under_a_duration_override(tmp_path: Path) -> None:
    stages = {"stages": [{"rate": 10, "duration_s": 2}, {"rate": 40, "duration_s": 6}]}
    scenario = load_scenario(write_scenario(tmp_path, {**GOOD, "load": stages}))
    stretched = with_overrides(scenario, duration_s=4)
    assert [(s.rate, s.duration_s) for s in stretched.load.schedule] == [(10, 1.0), (40, 3.0)]
