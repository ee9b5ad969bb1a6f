"""The reviewer's summary of a quantization report, printed at startup and by `riskserve quantize`.

Reads top to bottom like a sign-off sheet: what is served and why, every budget check with its value, limit
and PASS/FAIL, the remaining metrics, each layer's precision and the reason for it, sizes, speed, and where
the evidence is (cache key, report file).
"""

import io
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from server.quantization.report import (
    AccuracySection,
    AttemptFigures,
    BudgetCheckSection,
    FallbackStepSection,
    QuantizationReport,
    SpeedSection,
)
from server.served_model import GateVerdict, Precision

# budget check -> the figure the tuner records for each candidate layer
_FIGURE_OF_CHECK: dict[str, Callable[[AttemptFigures], float]] = {
    "roc_auc_ratio": lambda figures: figures.roc_auc_ratio,
    "distinct_score_ratio": lambda figures: figures.distinct_score_ratio,
}


def _fmt(value: float | None, digits: int = 5) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _check_label(name: str, report: QuantizationReport) -> str:
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


def _steps(report: QuantizationReport) -> list[FallbackStepSection]:
    return report.tuning.fallback_layers if report.tuning is not None else []


def _budget_table(report: QuantizationReport) -> Table:
    """Every budget check: value of the first INT8 attempt (if the tuner moved layers), final value, limit."""
    assert report.gate is not None
    initial = {c.name: c for c in report.gate.initial.checks}
    tuned = bool(_steps(report))
    candidate = "served INT8" if report.precision is Precision.INT8 else "best INT8 (rejected)"
    table = Table(title="Accuracy budget (INT8 vs FP32 on the holdout set)", title_justify="left")
    columns = ["check", *(["first INT8"] if tuned else []), candidate, "limit", "result"]
    for column in columns:
        table.add_column(column, justify="left" if column == "check" else "right")
    for check in report.gate.final.checks:
        name = check.name
        first = [_check_value(name, initial[name].value)] if tuned and name in initial else []
        table.add_row(
            _check_label(name, report),
            *first,
            _check_value(name, check.value),
            _check_limit(check),
            "PASS" if check.passed else "FAIL",
        )
    return table


def _metrics_table(accuracy: AccuracySection) -> Table:
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


def _fallback_reason(step: FallbackStepSection, failing: list[str]) -> str:
    after = step.sensitivity[step.layer]
    figures = ", ".join(f"{n} {_FIGURE_OF_CHECK[n](after):.4g}" for n in failing if n in _FIGURE_OF_CHECK)
    text = f"tuner: INT8 failed {', '.join(failing) or 'the budget'}"
    moved = f"; {step.precision.value.upper()} here gives {figures}" if figures else ""
    if step.kind == "head_input" and figures:
        moved = f"; head input left float (last INT8 layer outputs float) gives {figures}"
    within = ", within budget" if after.gate_shortfall == 0 else ""
    return f"{text}{moved}{within} (most effective of {len(step.sensitivity)} candidates)"


def _layers_table(report: QuantizationReport) -> Table:
    """Each quantizable layer: the precision it runs in and why."""
    assert report.layers is not None and report.gate is not None and report.tuning is not None
    layers, q = report.layers, report.config
    head = layers.output_head_kept_fp32
    steps = {step.layer: step for step in report.tuning.fallback_layers}
    failing = [c.name for c in report.gate.initial.checks if not c.passed]
    served = report.precision is Precision.INT8
    title = "Layers" if served else "Layers of the best INT8 candidate (not served)"
    table = Table(title=title, title_justify="left")
    for column in ("layer", "precision", "why"):
        table.add_column(column)
    for name in layers.quantizable:
        if name in steps:
            precision, why = steps[name].precision.value.upper(), _fallback_reason(steps[name], failing)
        elif head and name == head[0]:
            precision = "FP32"
            why = "output head (protect_output): quantized, the score would be 8-bit"
            if layers.unprotected_distinct_score_ratio is not None:
                why += f" (distinct-score ratio {layers.unprotected_distinct_score_ratio:.3f})"
        elif name in q.exclude_layers:
            precision, why = "FP32", "exclude_layers in the model's config"
        elif name in layers.int16:
            precision, why = "INT16 act.", "int16_layers in the model's config"
        elif served:
            precision, why = "INT8", "within budget"
        else:
            stopped = report.tuning.stopped_because
            precision, why = "INT8", f"left INT8 in the rejected candidate (tuner: {stopped})"
        table.add_row(name, precision, why)
    for step in report.tuning.fallback_layers:
        if step.kind == "head_input":
            table.add_row(step.layer, "FP32 act.", _fallback_reason(step, failing))
    return table


def _speed_table(speed: SpeedSection) -> Table:
    title = f"Speed in process, measured when built ({speed.session})"
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


def headline(report: QuantizationReport) -> str:
    """One line: the model, the verdict, what is served and where it came from."""
    source = "from cache" if report.from_cache else "built now"
    text = f"{report.model.name} {report.model.version}: verdict {report.verdict.value.upper()}"
    text += f", serving {report.precision.value}"
    if report.accuracy is not None:
        a = report.accuracy
        text += f" (AUC ratio {a.roc_auc_ratio:.5f}, max flip rate {a.max_flip_rate:.4%})"
    return f"{text}, {source}"


def _evidence(report: QuantizationReport) -> list[str]:
    lines = []
    if report.cache_key:
        lines.append(f"cache key: {report.cache_key}")
    if report.served_model:
        lines.append(f"served model: {report.served_model}")
    if report.report_path:
        lines.append(f"report: {report.report_path}")
    return lines


def format_summary(report: QuantizationReport, width: int = 120) -> str:
    """The reviewer's summary: headline, budget checks, metrics, layers, sizes, speed and evidence."""
    console = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=True)
    console.print(headline(report))
    for warning in report.warnings:
        console.print(f"WARNING: {warning}")
    if report.accuracy is None:  # quantization disabled: nothing was measured
        for line in _evidence(report):
            console.print(line)
        return console.file.getvalue()
    assert report.calibration and report.holdout and report.cpu and report.tuning and report.sizes
    q, cpu, calibration, holdout = report.config, report.cpu, report.calibration, report.holdout
    console.print(
        f"data: calibration {calibration.rows_used} of {calibration.rows_in_file} "
        f"rows ({q.calibration_method.value}), holdout {holdout.rows} rows "
        f"({holdout.positives} positives)"
    )
    console.print(
        f"settings: mode {q.mode.value}, per_channel {q.per_channel}, activations {q.activation_type.value}, "
        f"weights {q.weight_type.value}, reduce_range {cpu.reduce_range} ({cpu.reduce_range_reason})"
    )
    console.print(_budget_table(report))
    console.print(_metrics_table(report.accuracy))
    console.print(_layers_table(report))
    if report.tuning.fallback_layers or report.verdict is GateVerdict.FAILED:
        console.print(f"tuner stopped: {report.tuning.stopped_because}")
    sizes = report.sizes
    console.print(
        f"size: FP32 {sizes.fp32_bytes:,} B, INT8 {sizes.int8_bytes:,} B ({sizes.int8_over_fp32:.2f}x)"
    )
    if report.speed is not None:
        console.print(_speed_table(report.speed))
    for line in _evidence(report):
        console.print(line)
    return console.file.getvalue()
