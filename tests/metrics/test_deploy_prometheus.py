"""The shipped Prometheus config and rules pass promtool, and the alerts' unit tests pass."""

import subprocess
from pathlib import Path

import pytest
import yaml

from server.metrics.catalogue import ALL_METRICS
from tests.metrics.dashboard_queries import metric_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "riskserve-alerts.yml"),
        ("test", "rules", "riskserve-alerts.test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_accepts(args):
    result = _promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_only_read_metrics_the_server_exports():
    rules = yaml.safe_load((DEPLOY / "riskserve-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    exported = {m.name for m in ALL_METRICS}
    suffixes = ("_bucket", "_count", "_sum")
    for expr in exprs:
        for name in metric_names(expr):
            base = next((name.removesuffix(s) for s in suffixes if name.removesuffix(s) in exported), name)
            assert base in exported, f"{name} in {expr!r} is not a riskserve metric"
    alerts = {rule.get("alert") for group in rules["groups"] for rule in group["rules"]}
    assert {"RiskserveP99AboveSLA", "RiskserveErrorRatioHigh", "RiskserveModelServedAsFP32",
            "RiskserveReplicaNotReady", "RiskserveReplicaDown", "RiskserveLiveFlipRateAboveBudget",
            "RiskserveLiveScoreDrift", "RiskserveChallengerDisagrees"} <= alerts  # fmt: skip


@pytest.mark.parametrize(
    ("rule_text", "broken", "alert"),
    [
        ("p99_rate1m > 0.010", "p99_rate1m > 0.020", "RiskserveP99AboveSLA"),  # a raised SLA
        (  # a budget ten times the gate's: fraud's 2 % live flip rate would pass
            "max by (model, version) (riskserve_live_check_flip_budget)",
            "max by (model, version) (riskserve_live_check_flip_budget) * 10",
            "RiskserveLiveFlipRateAboveBudget",
        ),
        (  # no minimum of compared rows: one flipping row in a quiet model would page
            "(increase(riskserve_live_check_rows_total[30m])) >= 1000",
            "(increase(riskserve_live_check_rows_total[30m])) >= 0",
            "RiskserveLiveFlipRateAboveBudget",
        ),
        (  # no minimum window: the PSI of 40 rows would page
            "riskserve_live_check_window_rows >= 1000",
            "riskserve_live_check_window_rows >= 0",
            "RiskserveLiveScoreDrift",
        ),
        (  # a floor ten points lower: fraud's 90 % agreement would pass
            "(riskserve_challenger_min_agreement)",
            "(riskserve_challenger_min_agreement) - 0.1",
            "RiskserveChallengerDisagrees",
        ),
        (  # no minimum of rows: the one disagreeing row of a quiet model would alert
            "increase(riskserve_challenger_rows_total[30m])) >= 1000",
            "increase(riskserve_challenger_rows_total[30m])) >= 0",
            "RiskserveChallengerDisagrees",
        ),
    ],
    ids=[
        "p99-sla",
        "live-flip-budget",
        "live-flip-min-rows",
        "drift-min-rows",
        "challenger-floor",
        "challenger-min-rows",
    ],
)
def test_promtool_rule_tests_can_fail(tmp_path, rule_text, broken, alert):
    """Guard against a rules test that passes vacuously: each broken rule must fail its alert's test."""
    original = (DEPLOY / "riskserve-alerts.yml").read_text()
    assert rule_text in original
    (tmp_path / "riskserve-alerts.yml").write_text(original.replace(rule_text, broken))
    (tmp_path / "riskserve-alerts.test.yml").write_text((DEPLOY / "riskserve-alerts.test.yml").read_text())
    result = subprocess.run(
        ["promtool", "test", "rules", "riskserve-alerts.test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr
