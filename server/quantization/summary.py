"""The reviewer's summary of a quantization report, printed at startup and by `riskserve quantize`.

Reads top to bottom like a sign-off sheet: what is served and why, the rewrites of the exporter's graph,
the holdout split and serving chunk size, every budget check with its value, 95 % interval, limit and
PASS/FAIL, whether the evidence suffices, the remaining metrics, each layer's precision as it runs and the
reason for it, what INT8 buys against the objective, sizes, speed, and where the evidence is.
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
    RewriteSection,
    SpeedSection,
)
from server.served_model import Precision

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


def _budget_table(report: QuantizationReport) -> Table:
    """Every budget check: the first INT8 attempt and (if the tuner moved layers) the tuned one on the
    tuning rows, the chosen candidate on the gate's rows with its 95 % interval, the limit."""
    assert report.gate is not None and report.split is not None
    initial = {c.name: c for c in report.gate.initial.checks}
    tuned = {c.name: c for c in report.gate.tuned.checks}
    moved = bool(_steps(report))
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
            _check_label(name, report),
            *figures,
            _check_value(name, check.value),
            _interval(name, report),
            _check_limit(check),
            "PASS" if check.passed else "FAIL",
        )
    return table


def _rewrites_table(rewrites: list[RewriteSection], form: str | None) -> Table:
    table = Table(title=f"Rewrites of the exporter's graph (quantized form: {form})", title_justify="left")
    for column in ("rewrite", "nodes", "what", "result"):
        table.add_column(column)
    for r in rewrites:
        nodes = ", ".join(r.nodes) if len(r.nodes) <= 3 else f"{', '.join(r.nodes[:3])} +{len(r.nodes) - 3}"
        table.add_row(r.rewrite, nodes, r.detail, r.reason)
    return table


def _evidence_lines(report: QuantizationReport) -> list[str]:
    assert report.evidence is not None
    e = report.evidence
    auc, pr = e.roc_auc_delta, e.pr_auc_delta
    lines = [
        f"evidence (gate's {e.rows} rows, {e.positives} positives, at least {e.min_positives} needed): "
        f"ROC-AUC delta {auc.estimate:+.5f} [{auc.low:+.5f}, {auc.high:+.5f}] (DeLong), PR-AUC delta "
        f"{pr.estimate:+.5f} [{pr.low:+.5f}, {pr.high:+.5f}] (paired bootstrap), flip rates Wilson 95 %"
    ]
    if e.sufficient:
        lines.append("evidence: sufficient (every interval narrower than the budget allows)")
    else:
        lines += [f"evidence INSUFFICIENT: {problem}" for problem in e.problems]
        lines.append(
            f"evidence: the gate's part needs about {e.gate_rows_needed:,} rows: add about "
            f"{e.more_holdout_rows_needed:,} labelled rows to the holdout file"
        )
    return lines


def _benefit_lines(report: QuantizationReport) -> list[str]:
    b = report.benefit
    if b is None:
        return ["benefit: not judged (INT8 never within the budget)"]
    lines = [f"benefit: {'PAYS' if b.pays else 'DOES NOT PAY'}: {b.reason}"]
    for name, candidate in b.candidates.items():
        lines.append(f"  candidate {name or 'first attempt'}: {candidate.reason}")
    return lines


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


def _fallback_reason(step: FallbackStepSection, failing: list[str]) -> str:
    after = step.sensitivity[step.layer]
    figures = ", ".join(f"{n} {_FIGURE_OF_CHECK[n](after):.4g}" for n in failing if n in _FIGURE_OF_CHECK)
    text = f"tuner: INT8 failed {', '.join(failing) or 'the budget'}"
    moved = f"; {step.precision.value.upper()} here gives {figures}" if figures else ""
    if step.kind == "head_input" and figures:
        moved = f"; head input left float (last INT8 layer outputs float) gives {figures}"
    within = ", within budget" if after.gate_shortfall == 0 else ""
    return f"{text}{moved}{within} (most effective of {len(step.sensitivity)} candidates)"


_RUN_LABELS = {
    "int8": "INT8",
    "int8_dynamic": "INT8 dynamic",
    "int16_activations": "INT16 act., FP32 kernel",
    "int8_simulated": "INT8 weights, FP32 kernel",
    "fp32": "FP32",
}


def _run_label(report: QuantizationReport, name: str) -> str:
    """The layer's precision as ORT runs it, with the kernel, e.g. `INT8 (QGemm)`."""
    assert report.layers is not None
    run = report.layers.runs.get(name)
    if run is None:
        return "?"
    notes = [run.kernel]
    if run.float_output and run.precision.startswith("int8") and run.kernel != "?":
        notes.append("float output")
    if run.precision in ("fp32", "int8_simulated") and run.input_bits < 32:
        notes.append(f"{run.input_bits}-bit input")
    return f"{_RUN_LABELS.get(run.precision, run.precision)} ({', '.join(notes)})"


def _layers_table(report: QuantizationReport) -> Table:
    """Each quantizable layer: the precision it runs in (read from the optimized graph) and why."""
    assert report.layers is not None and report.gate is not None and report.tuning is not None
    layers, q = report.layers, report.config
    head = layers.output_head_kept_fp32
    steps = {step.layer: step for step in report.tuning.fallback_layers}
    failing = [c.name for c in report.gate.initial.checks if not c.passed]
    served = report.precision is Precision.INT8
    title = (
        "Layers, as ONNX Runtime runs them" if served else "Layers of the best INT8 candidate (not served)"
    )
    table = Table(title=title, title_justify="left")
    for column in ("layer", "runs as", "why"):
        table.add_column(column)
    for name in layers.quantizable:
        runs_as = _run_label(report, name)
        if name in steps:
            why = _fallback_reason(steps[name], failing)
        elif head and name == head[0]:
            why = "output head (protect_output): quantized, the score would be 8-bit"
            if layers.unprotected_distinct_score_ratio is not None:
                why += f" (distinct-score ratio {layers.unprotected_distinct_score_ratio:.3f})"
        elif name in q.exclude_layers:
            why = "exclude_layers in the model's config"
        elif name in q.int16_layers:
            why = "int16_layers in the model's config"
        elif served:
            why = "within budget"
        else:
            why = f"in the candidate not served (tuner: {report.tuning.stopped_because})"
        table.add_row(name, runs_as, why)
    for step in report.tuning.fallback_layers:
        if step.kind == "head_input":
            table.add_row(step.layer, "float input", _fallback_reason(step, failing))
    return table


def _speed_table(speed: SpeedSection) -> Table:
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
    if report.accuracy is None:  # quantization disabled or nothing to quantize: nothing was measured
        for line in _evidence(report):
            console.print(line)
        return console.file.getvalue()
    assert report.calibration and report.holdout and report.cpu and report.tuning and report.sizes
    assert report.split and report.serving and report.rewrites is not None
    q, cpu, calibration, holdout = report.config, report.cpu, report.calibration, report.holdout
    split, serving = report.split, report.serving
    console.print(
        f"data: calibration {calibration.rows_used} of {calibration.rows_in_file} "
        f"rows ({q.calibration_method.value}), holdout {holdout.rows} rows "
        f"({holdout.positives} positives): tuning {split.tuning_rows} ({split.tuning_positives}), gate "
        f"{split.gate_rows} ({split.gate_positives}), stratified"
    )
    console.print(
        f"settings: mode {q.mode.value}, per_channel {q.per_channel}, activations {q.activation_type.value}, "
        f"weights {q.weight_type.value}, reduce_range {cpu.reduce_range} ({cpu.reduce_range_reason})"
    )
    console.print(
        f"served with: {serving.chunk_rows or 'any number of'} rows per call (INT8 "
        f"{serving.int8_chunk_rows or 'any batch'}, FP32 {serving.fp32_chunk_rows or 'any batch'}: each "
        "scored and timed that way)"
    )
    if report.rewrites:
        console.print(_rewrites_table(report.rewrites, report.canonical_form))
    console.print(_budget_table(report))
    for line in _evidence_lines(report):
        console.print(line)
    console.print(_metrics_table(report.accuracy))
    console.print(_layers_table(report))
    for line in _benefit_lines(report):
        console.print(line)
    if report.tuning.fallback_layers or report.precision is Precision.FP32:
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
