"""A short human summary of a quantization report, printed at startup and by `riskserve quantize`."""

import io
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: float | None, digits: int = 5) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _accuracy_table(report: dict[str, Any]) -> Table:
    accuracy, budget = report["accuracy"], report["budget"]
    fp32, int8 = accuracy["fp32"], accuracy["int8"]
    table = Table(title="INT8 vs FP32 on the holdout set", title_justify="left")
    for column in ("metric", "FP32", "INT8", "delta / value", "budget"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    table.add_row(
        "ROC-AUC",
        _fmt(fp32["roc_auc"]),
        _fmt(int8["roc_auc"]),
        f"{accuracy['roc_auc_delta']:+.5f}",
        f"ratio {accuracy['roc_auc_ratio']:.5f} >= {budget['min_auc_ratio']}",
    )
    table.add_row(
        "PR-AUC", _fmt(fp32["pr_auc"]), _fmt(int8["pr_auc"]), f"{accuracy['pr_auc_delta']:+.5f}", ""
    )
    table.add_row("KS", _fmt(fp32["ks"]), _fmt(int8["ks"]), f"{accuracy['ks_delta']:+.5f}", "")
    table.add_row("Brier", _fmt(fp32["brier"]), _fmt(int8["brier"]), f"{accuracy['brier_delta']:+.6f}", "")
    for name, rate in accuracy["flip_rates"].items():
        threshold = report["decision_thresholds"][name]
        table.add_row(
            f"decision flips @ {name} {threshold:g}",
            "",
            "",
            f"{rate:.4%}",
            f"<= {budget['max_decision_flip_rate']:.2%}",
        )
    table.add_row(
        "distinct scores",
        str(fp32["distinct_scores"]),
        str(int8["distinct_scores"]),
        f"ratio {accuracy['distinct_score_ratio']:.3f}",
        f">= {budget['min_distinct_score_ratio']}",
    )
    table.add_row(
        "scores exactly 0 or 1",
        f"{fp32['share_scores_exactly_0_or_1']:.2%}",
        f"{int8['share_scores_exactly_0_or_1']:.2%}",
        "",
        "",
    )
    table.add_row(
        "score |diff| mean / max",
        "",
        "",
        f"{accuracy['mean_abs_score_diff']:.2e} / {accuracy['max_abs_score_diff']:.2e}",
        "",
    )
    table.add_row("PSI INT8 vs FP32", "", "", f"{accuracy['psi']:.2e}", "")
    return table


def _speed_table(report: dict[str, Any]) -> Table:
    speed = report["speed"]
    table = Table(title=f"Speed in process ({speed['session']})", title_justify="left")
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


def format_summary(report: dict[str, Any], width: int = 110) -> str:
    """The reviewer's summary: headline, settings, accuracy table, fallback layers, sizes and speed."""
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(headline(report))
    for warning in report.get("warnings", []):
        console.print(f"WARNING: {warning}")
    if "accuracy" not in report:
        return console.file.getvalue()
    q, cpu, layers = report["config"], report["cpu"], report["layers"]
    console.print(
        f"mode {q['mode']}, calibration {q['calibration_method']} on "
        f"{report['calibration']['rows_used']} rows, "
        f"per_channel {q['per_channel']}, activations {q['activation_type']}, weights {q['weight_type']}, "
        f"reduce_range {cpu['reduce_range']} ({cpu['reduce_range_reason']})"
    )
    console.print(
        f"layers: {len(layers['int8'])} INT8 {layers['int8']}, FP32 {layers['fp32']}, INT16 {layers['int16']}"
    )
    if layers.get("unprotected_distinct_score_ratio") is not None:
        console.print(
            f"output head kept FP32 {layers['output_head_kept_fp32']}: distinct-score ratio "
            f"{report['accuracy']['distinct_score_ratio']:.3f} (quantizing it too: "
            f"{layers['unprotected_distinct_score_ratio']:.3f})"
        )
    console.print(_accuracy_table(report))
    for step in report["tuning"]["fallback_layers"]:
        console.print(f"fallback: {step['layer']} -> {step['precision']}: {step['reason']}")
    if report["tuning"]["fallback_layers"] or report["verdict"] == "failed":
        console.print(f"tuner: {report['tuning']['stopped_because']}")
    sizes = report["sizes"]
    console.print(
        f"size: FP32 {sizes['fp32_bytes']:,} B, INT8 {sizes['int8_bytes']:,} B "
        f"({sizes['int8_over_fp32']:.2f}x)"
    )
    if report["speed"]:
        console.print(_speed_table(report))
    return console.file.getvalue()
