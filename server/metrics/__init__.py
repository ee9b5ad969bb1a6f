"""Prometheus metrics for riskserve: latency histograms, rolling-window quantiles, batching, model facts.

See docs/metrics.md. Typical use in a serving process:

    metrics = ServingMetrics(shared_dir=None)          # or a directory shared by all serving processes
    handle = start_metrics_http_server(metrics, "127.0.0.1", 9464)
    metrics.observe_call("fraud", "Score", "OK", total_s=0.0006, queue_s=0.00005, inference_s=0.00003)
"""

from server.metrics.http_server import MetricsHttpServer, MetricsPortError, start_metrics_http_server
from server.metrics.serving_metrics import ServingMetrics
from server.metrics.snapshot import SnapshotError, reset_shared_dir

__all__ = [
    "MetricsHttpServer",
    "MetricsPortError",
    "ServingMetrics",
    "SnapshotError",
    "reset_shared_dir",
    "start_metrics_http_server",
]
