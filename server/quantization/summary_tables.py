"""The tables of the reviewer's summary (summary.py): budget checks with intervals, rewrites, metrics,
speed."""

from rich.table import Table

from server.evaluation.figures import AccuracyComparison
from server.quantization.report import QuantizationReport
from server.quantization.report_sections import (
    BudgetCheckSection,
    FallbackStepSection,
    RewriteSection,
    SpeedSection,
)
from server.served_model import Precision


def _fmt(value: float | None, digits: int = 5) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def check_label(name: str, report: QuantizationReport) -> str:
    if name.startswith("flip_rate_"):
        decision = name.removeprefix("flip_rate_")
        thresholds = report.decision_thresholds or {}
        return f"decision flip rate @ {decision} {thresholds[decision]:g}"
    return {
        "roc_auc_ratio": "ROC-AUC ratio INT8 / FP32",
        "distinct_score_ratio": "distinct-score ratio INT8 / FP32",
    }.get(name, name)


def _check_value(name: str, value: float) -> str:
    return f"{value:.4%}" if name.startswith("flip_rate_") else f"{value:.5f}"


def _check_limit(check: BudgetCheckSection) -> str:
    sign = ">=" if check.kind == "min" else "<="
    return f"{sign} {check.limit:.2%}" if check.name.startswith("flip_rate_") else f"{sign} {check.limit:g}"


def steps(report: QuantizationReport) -> list[FallbackStepSection]:
    return report.tuning.fallback_layers if report.tuning is not None else []


def _interval(name: str, report: QuantizationReport) -> str:
    """The check's 95 % interval on the gate's rows, in the check's own units ("" if it has none)."""
    assert report.evidence is not None and report.accuracy is not None
    evidence = report.evidence
    if name == "roc_auc_ratio":
        fp32 = report.accuracy.fp32.roc_auc
        i = evidence.roc_auc_delta
        return f"[{(fp32 + i.low) / fp32:.5f}, {(fp32 + i.high) / fp32:.5f}]"
    if name.startswith("flip_rate_"):
        i = evidence.flip_rates[name.removeprefix("flip_rate_")]
        return f"[{i.low:.3%}, {i.high:.3%}]"
    return ""


def budget_table(report: QuantizationReport) -> Table:
    """Every budget check: the first INT8 attempt and (if the tuner moved layers) the tuned one on the
    tuning rows, the chosen candidate on the gate's rows with its 95 % interval, the limit."""
    assert report.gate is not None and report.split is not None
    initial = {c.name: c for c in report.gate.initial.checks}
    tuned = {c.name: c for c in report.gate.tuned.checks}
    moved = bool(steps(report))
    candidate = "served INT8" if report.precision is Precision.INT8 else "best INT8 (not served)"
    split = report.split
    title = (
        f"Accuracy budget (INT8 vs FP32): the tuner chose on {split.tuning_rows} holdout rows, the gate "
        f"judges on the other {split.gate_rows}"
    )
    table = Table(title=title, title_justify="left")
    columns = ["check", "first INT8 (tuning)", *(["tuned (tuning)"] if moved else []), f"{candidate} (gate)"]
    for column in [*columns, "95 % interval", "limit", "result"]:
        table.add_column(column, justify="left" if column == "check" else "right")
    for check in report.gate.final.checks:
        name = check.name
        figures = [_check_value(name, initial[name].value)] if name in initial else ["-"]
        if moved:
            figures.append(_check_value(name, tuned[name].value) if name in tuned else "-")
        table.add_row(
            check_label(name, report),
            *figures,
            _check_value(name, check.value),
            _interval(name, report),
            _check_limit(check),
            "PASS" if check.passed else "FAIL",
        )
    return table


def rewrites_table(rewrites: list[RewriteSection], form: str | None) -> Table:
    table = Table(title=f"Rewrites of the exporter's graph (quantized form: {form})", title_justify="left")
    for column in ("rewrite", "nodes", "what", "result"):
        table.add_column(column)
    for r in rewrites:
        nodes = ", ".join(r.nodes) if len(r.nodes) <= 3 else f"{', '.join(r.nodes[:3])} +{len(r.nodes) - 3}"
        table.add_row(r.rewrite, nodes, r.detail, r.reason)
    return table


def metrics_table(accuracy: AccuracyComparison) -> Table:
    fp32, int8 = accuracy.fp32, accuracy.int8
    table = Table(title="Other metrics (not gated)", title_justify="left")
    for column in ("metric", "FP32", "INT8", "delta / value"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for label, fp32_value, int8_value, delta in (
        ("ROC-AUC", fp32.roc_auc, int8.roc_auc, accuracy.roc_auc_delta),
        ("PR-AUC", fp32.pr_auc, int8.pr_auc, accuracy.pr_auc_delta),
        ("KS", fp32.ks, int8.ks, accuracy.ks_delta),
    ):
        table.add_row(label, _fmt(fp32_value), _fmt(int8_value), f"{delta:+.5f}")
    table.add_row("Brier", _fmt(fp32.brier), _fmt(int8.brier), f"{accuracy.brier_delta:+.6f}")
    table.add_row("recall @ 1 % FPR", _fmt(fp32.recall_at_1pct_fpr), _fmt(int8.recall_at_1pct_fpr), "")
    table.add_row("distinct scores", str(fp32.distinct_scores), str(int8.distinct_scores), "")
    table.add_row(
        "scores exactly 0 or 1",
        f"{fp32.share_scores_exactly_0_or_1:.2%}",
        f"{int8.share_scores_exactly_0_or_1:.2%}",
        "",
    )
    table.add_row(
        "score |diff| mean / max",
        "",
        "",
        f"{accuracy.mean_abs_score_diff:.2e} / {accuracy.max_abs_score_diff:.2e}",
    )
    table.add_row("PSI INT8 vs FP32", "", "", f"{accuracy.psi:.2e}")
    return table


def speed_table(speed: SpeedSection) -> Table:
    chunks = ", ".join(f"{name} {rows or 'any batch'}" for name, rows in speed.chunk_rows.items())
    title = f"Speed in process as served (rows per call: {chunks}), measured when built ({speed.session})"
    table = Table(title=title, title_justify="left")
    for column in ("batch", "FP32 ms", "INT8 ms", "FP32 rows/s", "INT8 rows/s", "INT8/FP32 throughput"):
        table.add_column(column, justify="right")
    for size, ratio in speed.throughput_ratio.items():
        fp32, int8 = speed.fp32[size], speed.int8[size]
        table.add_row(
            str(size),
            f"{fp32.median_latency_ms:.3f}",
            f"{int8.median_latency_ms:.3f}",
            f"{fp32.rows_per_second:,.0f}",
            f"{int8.rows_per_second:,.0f}",
            f"{ratio:.2f}x",
        )
    return table
