"""The PromQL the shipped Grafana dashboard runs, and the riskserve metric names it reads."""

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "riskserve-dashboard.json"
METRIC_NAME = re.compile(r"(?<![\w:])riskserve_[a-zA-Z0-9_]*[a-zA-Z0-9](?![\w:])")  # not recording-rule names
# What Grafana substitutes before sending a query, for running the queries against a real Prometheus.
GRAFANA_VARIABLES = {"$model": ".*", "$__rate_interval": "1m"}


def panel_queries() -> list[str]:
    """The PromQL of every panel target."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def dashboard_queries() -> list[str]:
    """Panel PromQL plus the template variables' Grafana queries (e.g. label_values(metric, label))."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return panel_queries() + variables


def metric_names(promql: str) -> set[str]:
    return set(METRIC_NAME.findall(promql))


def as_sent_by_grafana(promql: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        promql = promql.replace(variable, value)
    return promql
