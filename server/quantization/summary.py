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

from server.quantization.report import QuantizationReport
from server.quantization.report_sections import (
    AttemptFigures,
    FallbackStepSection,
)
from server.quantization.summary_tables import (
    budget_table,
    metrics_table,
    rewrites_table,
    speed_table,
)
from server.served_model import Precision

# budget check -> the figure the tuner records for each candidate layer
_FIGURE_OF_CHECK: dict[str, Callable[[AttemptFigures], float]] = {
    "roc_auc_ratio": lambda figures: figures.roc_auc_ratio,
    "distinct_score_ratio": lambda figures: figures.distinct_score_ratio,
}


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
        console.print(rewrites_table(report.rewrites, report.canonical_form))
    console.print(budget_table(report))
    for line in _evidence_lines(report):
        console.print(line)
    console.print(metrics_table(report.accuracy))
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
        console.print(speed_table(report.speed))
    for line in _evidence(report):
        console.print(line)
    return console.file.getvalue()
