"""The Grafana dashboard covers what operators look at (that a real server exports every metric it
queries: tests/e2e/test_served_metrics.py)."""

import json

from tests.metrics.dashboard_queries import DASHBOARD, dashboard_queries, metric_names

REQUIRED_VIEWS = {
    "p50/p99 per model and method": "riskserve_request_duration_seconds_bucket",
    "throughput and errors by code": "riskserve_request_duration_seconds_count",
    "batch sizes": "riskserve_batch_size_rows_bucket",
    "queue depth": "riskserve_queue_depth_rows",
    "model precision and gate verdict": "riskserve_model_info",
    "FP32 fallback": "riskserve_model_fp32_fallback",
    "score distribution per version": "riskserve_model_score_bucket",
    "live flip rate": "riskserve_live_check_flips_total",
    "live flip budget": "riskserve_live_check_flip_budget",
    "shadow agreement": "riskserve_live_check_mean_abs_score_diff",
    "INT8 vs FP32 PSI": "riskserve_live_check_psi",
    "traffic drift": "riskserve_live_score_drift_psi",
    "live-check drops": "riskserve_live_check_dropped_rows_total",
    "challenger agreement": "riskserve_challenger_disagreements_total",
    "challenger agreement floor": "riskserve_challenger_min_agreement",
    "champion-challenger correlation": "riskserve_challenger_score_correlation",
    "champion-challenger PSI": "riskserve_challenger_psi",
    "challenger drops": "riskserve_challenger_dropped_rows_total",
}


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
