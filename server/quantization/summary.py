"""The reviewer's summary of a quantization report, printed at startup and by `riskserve quantize`.

Reads top to bottom like a sign-off sheet: what is served and why, every budget check with its value, limit
and PASS/FAIL, the remaining metrics, each layer's precision and the reason for it, sizes, speed, and where
the evidence is (cache key, report file).
"""

import io
from typing import Any

from rich.console import Console
from rich.table import Table

# budget check -> the figure the tuner records for each candidate layer
_FIGURE_OF_CHECK = {"roc_auc_ratio": "roc_auc_ratio", "distinct_score_ratio": "distinct_score_ratio"}


def _fmt(value: float | None, digits: int = 5) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _check_label(name: str, report: dict[str, Any]) -> str:
    if name.startswith("flip_rate_"):
        decision = name.removeprefix("flip_rate_")
        return f"decision flip rate @ {decision} {report['decision_thresholds'][decision]:g}"
    return {
        "roc_auc_ratio": "ROC-AUC ratio INT8 / FP32",
        "distinct_score_ratio": "distinct-score ratio INT8 / FP32",
    }.get(name, name)


def _check_value(name: str, value: float) -> str:
    return f"{value:.4%}" if name.startswith("flip_rate_") else f"{value:.5f}"


def _check_limit(check: dict[str, Any]) -> str:
    sign = ">=" if check["kind"] == "min" else "<="
    limit = check["limit"]
    return f"{sign} {limit:.2%}" if check["name"].startswith("flip_rate_") else f"{sign} {limit:g}"


def _budget_table(report: dict[str, Any]) -> Table:
    """Every budget check: value of the first INT8 attempt (if the tuner moved layers), final value, limit."""
    initial = {c["name"]: c for c in report["gate"]["initial"]["checks"]}
    final = report["gate"]["final"]["checks"]
    tuned = bool(report["tuning"]["fallback_layers"])
    candidate = "served INT8" if report["precision"] == "int8" else "best INT8 (rejected)"
    table = Table(title="Accuracy budget (INT8 vs FP32 on the holdout set)", title_justify="left")
    columns = ["check", *(["first INT8"] if tuned else []), candidate, "limit", "result"]
    for column in columns:
        table.add_column(column, justify="left" if column == "check" else "right")
    for check in final:
        name = check["name"]
        first = [_check_value(name, initial[name]["value"])] if tuned and name in initial else []
        table.add_row(
            _check_label(name, report),
            *first,
            _check_value(name, check["value"]),
            _check_limit(check),
            "PASS" if check["passed"] else "FAIL",
        )
    return table


def _metrics_table(report: dict[str, Any]) -> Table:
    accuracy = report["accuracy"]
    fp32, int8 = accuracy["fp32"], accuracy["int8"]
    table = Table(title="Other metrics (not gated)", title_justify="left")
    for column in ("metric", "FP32", "INT8", "delta / value"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for label, key, digits in (("ROC-AUC", "roc_auc", 5), ("PR-AUC", "pr_auc", 5), ("KS", "ks", 5)):
        table.add_row(label, _fmt(fp32[key]), _fmt(int8[key]), f"{accuracy[key + '_delta']:+.{digits}f}")
    table.add_row("Brier", _fmt(fp32["brier"]), _fmt(int8["brier"]), f"{accuracy['brier_delta']:+.6f}")
    table.add_row("distinct scores", str(fp32["distinct_scores"]), str(int8["distinct_scores"]), "")
    table.add_row(
        "scores exactly 0 or 1",
        f"{fp32['share_scores_exactly_0_or_1']:.2%}",
        f"{int8['share_scores_exactly_0_or_1']:.2%}",
        "",
    )
    table.add_row(
        "score |diff| mean / max",
        "",
        "",
        f"{accuracy['mean_abs_score_diff']:.2e} / {accuracy['max_abs_score_diff']:.2e}",
    )
    table.add_row("PSI INT8 vs FP32", "", "", f"{accuracy['psi']:.2e}")
    return table


def _fallback_reason(step: dict[str, Any], report: dict[str, Any], failing: list[str]) -> str:
    after = step["sensitivity"][step["layer"]]
    figures = ", ".join(f"{n} {after[_FIGURE_OF_CHECK[n]]:.4g}" for n in failing if n in _FIGURE_OF_CHECK)
    text = f"tuner: INT8 failed {', '.join(failing) or 'the budget'}"
    moved = f"; {step['precision'].upper()} here gives {figures}" if figures else ""
    if step.get("kind") == "head_input" and figures:
        moved = f"; head input left float (last INT8 layer outputs float) gives {figures}"
    within = ", within budget" if after["gate_shortfall"] == 0 else ""
    return f"{text}{moved}{within} (most effective of {len(step['sensitivity'])} candidates)"


def _layers_table(report: dict[str, Any]) -> Table:
    """Each quantizable layer: the precision it runs in and why."""
    layers, q = report["layers"], report["config"]
    head = layers["output_head_kept_fp32"]
    steps = {step["layer"]: step for step in report["tuning"]["fallback_layers"]}
    failing = [c["name"] for c in report["gate"]["initial"]["checks"] if not c["passed"]]
    title = "Layers" if report["precision"] == "int8" else "Layers of the best INT8 candidate (not served)"
    table = Table(title=title, title_justify="left")
    for column in ("layer", "precision", "why"):
        table.add_column(column)
    for name in layers["quantizable"]:
        if name in steps:
            precision, why = steps[name]["precision"].upper(), _fallback_reason(steps[name], report, failing)
        elif head and name == head[0]:
            precision = "FP32"
            why = "output head (protect_output): quantized, the score would be 8-bit"
            if layers.get("unprotected_distinct_score_ratio") is not None:
                why += f" (distinct-score ratio {layers['unprotected_distinct_score_ratio']:.3f})"
        elif name in q["exclude_layers"]:
            precision, why = "FP32", "exclude_layers in the model's config"
        elif name in layers["int16"]:
            precision, why = "INT16 act.", "int16_layers in the model's config"
        elif report["precision"] == "int8":
            precision, why = "INT8", "within budget"
        else:
            stopped = report["tuning"]["stopped_because"]
            precision, why = "INT8", f"left INT8 in the rejected candidate (tuner: {stopped})"
        table.add_row(name, precision, why)
    for step in report["tuning"]["fallback_layers"]:
        if step.get("kind") == "head_input":
            table.add_row(step["layer"], "FP32 act.", _fallback_reason(step, report, failing))
    return table


def _speed_table(report: dict[str, Any]) -> Table:
    speed = report["speed"]
    title = f"Speed in process, measured when built ({speed['session']})"
    table = Table(title=title, title_justify="left")
    for column in ("batch", "FP32 ms", "INT8 ms", "FP32 rows/s", "INT8 rows/s", "INT8/FP32 throughput"):
        table.add_column(column, justify="right")
    for size, ratio in speed["throughput_ratio"].items():
        fp32, int8 = speed["fp32"][size], speed["int8"][size]
        table.add_row(
            size,
            f"{fp32['median_latency_ms']:.3f}",
            f"{int8['median_latency_ms']:.3f}",
            f"{fp32['rows_per_second']:,.0f}",
            f"{int8['rows_per_second']:,.0f}",
            f"{ratio:.2f}x",
        )
    return table


def headline(report: dict[str, Any]) -> str:
    """One line: the model, the verdict, what is served and where it came from."""
    model = report["model"]
    source = "from cache" if report.get("from_cache") else "built now"
    text = f"{model['name']} {model['version']}: verdict {report['verdict'].upper()}"
    text += f", serving {report['precision']}"
    if "accuracy" in report:
        a = report["accuracy"]
        text += f" (AUC ratio {a['roc_auc_ratio']:.5f}, max flip rate {a['max_flip_rate']:.4%})"
    return f"{text}, {source}"


def _evidence(report: dict[str, Any]) -> list[str]:
    lines = []
    if report.get("cache_key"):
        lines.append(f"cache key: {report['cache_key']}")
    if report.get("served_model"):
        lines.append(f"served model: {report['served_model']}")
    if report.get("report_path"):
        lines.append(f"report: {report['report_path']}")
    return lines


def format_summary(report: dict[str, Any], width: int = 120) -> str:
    """The reviewer's summary: headline, budget checks, metrics, layers, sizes, speed and evidence."""
    console = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=True)
    console.print(headline(report))
    for warning in report.get("warnings", []):
        console.print(f"WARNING: {warning}")
    if "accuracy" not in report:
        for line in _evidence(report):
            console.print(line)
        return console.file.getvalue()
    q, cpu = report["config"], report["cpu"]
    console.print(
        f"data: calibration {report['calibration']['rows_used']} of {report['calibration']['rows_in_file']} "
        f"rows ({q['calibration_method']}), holdout {report['holdout']['rows']} rows "
        f"({report['holdout']['positives']} positives)"
    )
    console.print(
        f"settings: mode {q['mode']}, per_channel {q['per_channel']}, activations {q['activation_type']}, "
        f"weights {q['weight_type']}, reduce_range {cpu['reduce_range']} ({cpu['reduce_range_reason']})"
    )
    console.print(_budget_table(report))
    console.print(_metrics_table(report))
    console.print(_layers_table(report))
    if report["tuning"]["fallback_layers"] or report["verdict"] == "failed":
        console.print(f"tuner stopped: {report['tuning']['stopped_because']}")
    sizes = report["sizes"]
    console.print(
        f"size: FP32 {sizes['fp32_bytes']:,} B, INT8 {sizes['int8_bytes']:,} B "
        f"({sizes['int8_over_fp32']:.2f}x)"
    )
    if report["speed"]:
        console.print(_speed_table(report))
    for line in _evidence(report):
        console.print(line)
    return console.file.getvalue()
