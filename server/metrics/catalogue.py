"""Every metric riskserve exports: name, type, labels, buckets and HELP text, in one place."""

from dataclasses import dataclass

from server.metrics.buckets import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S, SCORE_BUCKETS


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # "histogram" | "counter" | "gauge" | "summary" | "info"
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


REQUEST_DURATION = MetricSpec(
    "riskserve_request_duration_seconds",
    "histogram",
    ("model", "method", "code"),
    "Server-side time of one RPC from receipt to response, by model, method and gRPC status code.",
    LATENCY_BUCKETS_S,
)
QUEUE_WAIT = MetricSpec(
    "riskserve_queue_wait_seconds",
    "histogram",
    ("model", "method", "code"),
    "Time a request waited in the micro-batching queue before its ONNX Runtime call started.",
    LATENCY_BUCKETS_S,
)
INFERENCE_DURATION = MetricSpec(
    "riskserve_inference_duration_seconds",
    "histogram",
    ("model", "method", "code"),
    "Duration of the ONNX Runtime call that scored the request (shared by every request in the batch).",
    LATENCY_BUCKETS_S,
)
LATENCY_WINDOW = MetricSpec(
    "riskserve_request_latency_window_seconds",
    "summary",
    ("model", "method"),
    "Quantiles of the server-side request duration over the rolling window (all status codes, all "
    "serving processes merged); _sum and _count are totals since start.",
)
BATCH_SIZE = MetricSpec(
    "riskserve_batch_size_rows",
    "histogram",
    ("model",),
    "Rows per ONNX Runtime call after micro-batching.",
    BATCH_SIZE_BUCKETS,
)
QUEUE_DEPTH = MetricSpec(
    "riskserve_queue_depth_rows",
    "gauge",
    ("model",),
    "Rows waiting in the micro-batching queue, summed over serving processes.",
)
INFLIGHT = MetricSpec(
    "riskserve_inflight_requests",
    "gauge",
    ("model", "method"),
    "RPCs being handled right now, summed over serving processes.",
)
REJECTED = MetricSpec(
    "riskserve_requests_rejected_total",
    "counter",
    ("model", "reason"),
    "Requests refused before scoring (overload, deadline, invalid_argument, draining, ...).",
)
FAILED = MetricSpec(
    "riskserve_requests_failed_total",
    "counter",
    ("model", "reason"),
    "Accepted requests that failed while being scored.",
)
BATCHER_FAILURES = MetricSpec(
    "riskserve_batcher_failures_total",
    "counter",
    ("model", "action"),
    "Micro-batcher workers that ended on a fault: its batch and queue failed INTERNAL, then action=restart "
    "(a new worker) or give_up (the model is unavailable; the log line event=batcher_failed has the error).",
)
MODEL_INFO = MetricSpec(
    "riskserve_model_info",
    "gauge",
    ("model", "version", "precision", "gate_verdict"),
    "Always 1: the model version being served, its precision (int8/fp32) and the quantization gate verdict.",
)
GATE_PASSED = MetricSpec(
    "riskserve_model_gate_passed",
    "gauge",
    ("model",),
    "1 if the INT8 model passed the accuracy gate (passed, passed_with_fallback, no_gain), 0 if it failed or "
    "the holdout could not show it (failed, insufficient_evidence); absent when nothing was gated "
    "(disabled, not_quantizable).",
)
FP32_FALLBACK = MetricSpec(
    "riskserve_model_fp32_fallback",
    "gauge",
    ("model",),
    "1 if the model is served in FP32 because its INT8 version failed the accuracy gate or the holdout could "
    "not show it passed (failed, insufficient_evidence).",
)
METRIC_DELTA = MetricSpec(
    "riskserve_model_quantization_metric_delta",
    "gauge",
    ("model", "metric"),
    "INT8 minus FP32 (or the named comparison) for each gated metric, from the quantization report.",
)
MODEL_UNAVAILABLE = MetricSpec(
    "riskserve_model_unavailable",
    "gauge",
    ("model", "reason"),
    "Serving processes in which the configured model could not be served, by why: config, data, integrity,"
    " model_file, quantization, internal or batcher_failed (the log line event=model_unavailable has the"
    " details).",
)
MODEL_RELOADS = MetricSpec(
    "riskserve_model_reloads_total",
    "counter",
    ("model", "outcome"),
    "Changed or new model versions a reload (repository poll or ModelAdmin.Reload) tried: outcome swapped "
    "(serving now) or kept_out (failed to load or pass its gate; the old version serves on).",
)
VERSION_KEPT_OUT = MetricSpec(
    "riskserve_model_version_kept_out",
    "gauge",
    ("model", "version", "reason"),
    "1 for the last version of a model a reload kept out, by why (config, data, model_file, quantization, "
    "gate_failed, internal); gone once a later version is swapped in. The log line event=model_reload has "
    "the details.",
)
MODEL_SCORE = MetricSpec(
    "riskserve_model_score",
    "histogram",
    ("model", "version"),
    "Distribution of the positive-class probability the model returned (for drift monitoring).",
    SCORE_BUCKETS,
)
LIVE_ROWS = MetricSpec(
    "riskserve_live_check_rows_total",
    "counter",
    ("model", "version"),
    "Rows of sampled live calls to an INT8-served model that its FP32 original also scored, off the hot "
    "path.",
)
LIVE_DROPPED = MetricSpec(
    "riskserve_live_check_dropped_rows_total",
    "counter",
    ("model", "version"),
    "Sampled rows not compared with FP32 because the live-check queue was full (live_check_queue_rows).",
)
LIVE_FLIPS = MetricSpec(
    "riskserve_live_check_flips_total",
    "counter",
    ("model", "version", "threshold"),
    "Compared rows whose decision at the threshold differs between INT8 and FP32; divided by the rate of "
    "riskserve_live_check_rows_total, the live flip rate.",
)
LIVE_FLIP_BUDGET = MetricSpec(
    "riskserve_live_check_flip_budget",
    "gauge",
    ("model", "version"),
    "The accuracy gate's max_decision_flip_rate: what the alert and on_live_drift compare the live flip rate "
    "with.",
)
LIVE_WINDOW_ROWS = MetricSpec(
    "riskserve_live_check_window_rows",
    "gauge",
    ("model", "version"),
    "Compared rows in the rolling window (live_check_window_s) the other live-check gauges are taken over.",
)
LIVE_MEAN_DIFF = MetricSpec(
    "riskserve_live_check_mean_abs_score_diff",
    "gauge",
    ("model", "version"),
    "Mean |INT8 - FP32| positive-class probability over the window's compared rows (NaN without rows).",
)
LIVE_MAX_DIFF = MetricSpec(
    "riskserve_live_check_max_abs_score_diff",
    "gauge",
    ("model", "version"),
    "Largest |INT8 - FP32| positive-class probability among the window's compared rows (NaN without rows).",
)
LIVE_PSI = MetricSpec(
    "riskserve_live_check_psi",
    "gauge",
    ("model", "version"),
    "PSI of the window's INT8 scores against FP32's on the same rows, in the holdout's score-quantile bins.",
)
LIVE_DRIFT_PSI = MetricSpec(
    "riskserve_live_score_drift_psi",
    "gauge",
    ("model", "version"),
    "PSI of the window's live INT8 scores against the served model's scores on the holdout file: drift of "
    "the traffic itself (0.1-0.25 a shift worth a look, above 0.25 a real shift).",
)
CHALLENGER_LABELS = ("model", "version", "challenger", "challenger_version")
CHALLENGER_ROWS = MetricSpec(
    "riskserve_challenger_rows_total",
    "counter",
    CHALLENGER_LABELS,
    "Rows of sampled calls to a champion (model, version) that its challenger also scored in shadow, off the "
    "hot path (challenger.shadow_share).",
)
CHALLENGER_DROPPED = MetricSpec(
    "riskserve_challenger_dropped_rows_total",
    "counter",
    CHALLENGER_LABELS,
    "Sampled rows the challenger did not score because its shadow queue was full (challenger_queue_rows).",
)
CHALLENGER_DISAGREEMENTS = MetricSpec(
    "riskserve_challenger_disagreements_total",
    "counter",
    (*CHALLENGER_LABELS, "threshold"),
    "Shadow-scored rows whose decision at the champion's threshold differs between champion and challenger; "
    "1 - rate(disagreements) / rate(rows) is the agreement rate.",
)
CHALLENGER_WINDOW_ROWS = MetricSpec(
    "riskserve_challenger_window_rows",
    "gauge",
    CHALLENGER_LABELS,
    "Shadow-scored rows in the rolling window (challenger_window_s) the other challenger gauges are taken "
    "over.",
)
CHALLENGER_AGREEMENT = MetricSpec(
    "riskserve_challenger_agreement_rate",
    "gauge",
    (*CHALLENGER_LABELS, "threshold"),
    "Share of the window's rows on the same side of the champion's threshold under both models (NaN without "
    "rows).",
)
CHALLENGER_MIN_AGREEMENT = MetricSpec(
    "riskserve_challenger_min_agreement",
    "gauge",
    CHALLENGER_LABELS,
    "The champion config's challenger.min_agreement: the floor the alert compares the agreement rate with.",
)
CHALLENGER_CORRELATION = MetricSpec(
    "riskserve_challenger_score_correlation",
    "gauge",
    CHALLENGER_LABELS,
    "Pearson correlation of champion and challenger probabilities over the window's rows (NaN below 2 rows "
    "or when one is constant).",
)
CHALLENGER_MEAN_DIFF = MetricSpec(
    "riskserve_challenger_mean_abs_score_diff",
    "gauge",
    CHALLENGER_LABELS,
    "Mean |challenger - champion| probability over the window's rows (NaN without rows).",
)
CHALLENGER_PSI = MetricSpec(
    "riskserve_challenger_psi",
    "gauge",
    CHALLENGER_LABELS,
    "PSI of the window's challenger scores against the champion's on the same rows, in the champion's "
    "holdout score-quantile bins.",
)
SERVER_READY = MetricSpec(
    "riskserve_server_ready",
    "gauge",
    (),
    "1 if every serving process reports SERVING on grpc.health.v1, 0 while starting or draining.",
)

ALL_METRICS: tuple[MetricSpec, ...] = (
    REQUEST_DURATION,
    QUEUE_WAIT,
    INFERENCE_DURATION,
    LATENCY_WINDOW,
    BATCH_SIZE,
    QUEUE_DEPTH,
    INFLIGHT,
    REJECTED,
    FAILED,
    BATCHER_FAILURES,
    MODEL_INFO,
    GATE_PASSED,
    FP32_FALLBACK,
    METRIC_DELTA,
    MODEL_UNAVAILABLE,
    MODEL_RELOADS,
    VERSION_KEPT_OUT,
    MODEL_SCORE,
    LIVE_ROWS,
    LIVE_DROPPED,
    LIVE_FLIPS,
    LIVE_FLIP_BUDGET,
    LIVE_WINDOW_ROWS,
    LIVE_MEAN_DIFF,
    LIVE_MAX_DIFF,
    LIVE_PSI,
    LIVE_DRIFT_PSI,
    CHALLENGER_ROWS,
    CHALLENGER_DROPPED,
    CHALLENGER_DISAGREEMENTS,
    CHALLENGER_WINDOW_ROWS,
    CHALLENGER_AGREEMENT,
    CHALLENGER_MIN_AGREEMENT,
    CHALLENGER_CORRELATION,
    CHALLENGER_MEAN_DIFF,
    CHALLENGER_PSI,
    SERVER_READY,
)
