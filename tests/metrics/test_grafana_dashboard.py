"""Every metric the Grafana dashboard queries exists in the exporter's real output."""

import json

import numpy as np

from tests.metrics.conftest import scrape
from tests.metrics.dashboard_queries import DASHBOARD, dashboard_queries, metric_names

REQUIRED_VIEWS = {
    "p50/p99 per model and method": "riskserve_request_duration_seconds_bucket",
    "throughput and errors by code": "riskserve_request_duration_seconds_count",
    "batch sizes": "riskserve_batch_size_rows_bucket",
    "queue depth": "riskserve_queue_depth_rows",
    "model precision and gate verdict": "riskserve_model_info",
    "FP32 fallback": "riskserve_model_fp32_fallback",
}


def _exported_sample_names(metrics, exporter) -> set[str]:
    metrics.observe_call("fraud", "Score", "OK", 6e-4, 5e-5, 3e-5)
    metrics.observe_batch("fraud", 4)
    metrics.observe_scores("fraud", np.array([0.01, 0.7]))
    metrics.set_queue_depth("fraud", 1)
    metrics.count_rejected("fraud", "overload")
    metrics.count_failed("fraud", "inference_error")
    metrics.set_model_info("fraud", "1", "int8", "passed", {"roc_auc_delta": -1e-4})
    metrics.set_ready(True)
    with metrics.inflight("fraud", "Score"):
        text = scrape(exporter.url)
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def test_every_metric_the_dashboard_queries_is_exported(metrics, exporter):
    queried = set().union(*(metric_names(q) for q in dashboard_queries()))
    exported = _exported_sample_names(metrics, exporter)
    assert queried - exported == set(), "dashboard queries metrics the server does not export"
    assert len(queried) >= 12


def test_dashboard_covers_what_operators_look_at():
    queried = set().union(*(metric_names(q) for q in dashboard_queries()))
    missing = {view: name for view, name in REQUIRED_VIEWS.items() if name not in queried}
    assert not missing
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert all(
        t["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] for t in p.get("targets", [])
    )
