"""FP32 vs INT8 for each bundled model, side by side in one run.

    python -m benchmarks.quantization [MODEL ...] [--models-dir D] [--seconds S] [--repeats N] [--output F]

For each model: a cold start through the real startup pipeline (empty cache) and a warm start (cache hit),
then FP32, the served INT8 model and the variants of benchmarks/quantization/variants.py (each checked
against the model's gate) timed in alternating rounds at batch 1, 32 and 256 under the serving session
options, `--repeats` times (ratios are the median over repeats), plus an ORT profile of where the time
goes at batch 256. Prints the tables and writes everything as JSON.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.quantization import variants
from benchmarks.quantization.op_profile import first_layer_input, front_end_nodes, profile_model
from server.config import load_model_config
from server.config.model_config import ModelConfig
from server.config.paths import default_models_dir
from server.quantization.calibration_data import load_feature_table
from server.quantization.evaluation import score_model
from server.quantization.model_graph import load_model_graph
from server.quantization.pipeline import prepare_model
from server.quantization.quantizer import preprocess
from server.quantization.speed import BatchTiming, speedup, time_models

BATCH_SIZES = (1, 32, 256)
PROFILE_ROUNDS = 3
GOALS = {"size_ratio_max": 0.3, "throughput_ratio_at_256_min": 2.5}


def _preprocessed(config: ModelConfig, scratch: Path) -> Path:
    path = scratch / "fp32-preprocessed.onnx"
    preprocess(config.onnx_path, path)
    return path


def _quietest_profiles(models: dict[str, Path], feeds, output: str) -> dict[str, Any]:
    """Profile each model in PROFILE_ROUNDS alternating rounds and keep each one's fastest round: the cores
    are shared, and the least-disturbed round is the closest to the model's own cost. The front end is
    each model's own (the folded INT8 model has no Scaler left)."""
    best: dict[str, Any] = {}
    front_ends = {name: front_end_nodes(path, first_layer_input(path)) for name, path in models.items()}
    for _ in range(PROFILE_ROUNDS):
        for name, path in models.items():
            profile = profile_model(path, feeds, output, front_ends[name])
            if name not in best or profile["total_us"] < best[name]["total_us"]:
                best[name] = profile
    return best


def _median_ratios(runs: list[dict[str, dict[int, BatchTiming]]], name: str) -> dict[str, Any]:
    """Per batch size: the median over repeats of `name`'s throughput over FP32's, and every repeat's."""
    per_run = [speedup(run["fp32"], run[name]) for run in runs]
    return {
        str(size): {
            "median": float(np.median([r[size] for r in per_run])),
            "runs": [round(r[size], 3) for r in per_run],
        }
        for size in BATCH_SIZES
    }


def benchmark_model(config: ModelConfig, seconds: float, repeats: int) -> dict[str, Any]:
    q = config.quantization
    with tempfile.TemporaryDirectory(prefix="riskserve-bench-") as scratch_name:
        scratch = Path(scratch_name)
        started = time.perf_counter()
        cold = prepare_model(config, scratch / "cache")
        cold_seconds = time.perf_counter() - started
        started = time.perf_counter()
        warm = prepare_model(config, scratch / "cache")
        warm_seconds = time.perf_counter() - started
        assert warm.facts.from_cache

        tables = {
            name: load_feature_table(
                path,
                config,
                min_rows=1,
                max_rows=q.calibration_rows if name == "calibration" else None,
                label_column=config.label_column,
                require_label=name == "holdout",
                ignored_columns=q.ignored_columns,
            )
            for name, path in (("calibration", config.calibration_path), ("holdout", config.holdout_path))
        }
        holdout = tables["holdout"]
        report = cold.report
        assert report is not None and report.layers is not None and report.cpu is not None, "not quantized"
        head = tuple(report.layers.output_head_kept_fp32)
        preprocessed = _preprocessed(config, scratch)
        graph_pre = load_model_graph(preprocessed, q.op_types, config.output_name)
        reduce_range = report.cpu.reduce_range
        ungated = variants.ungated_int8(
            config, preprocessed, head, reduce_range, tables["calibration"], scratch
        )
        models = {
            "fp32": config.onnx_path,
            "int8": cold.model_path,
            # FP32 after our pre-processing (typed front end, MatMul+Add fused into Gemm): the fairest FP32.
            "fp32_preprocessed": preprocessed,
            "int8_ungated": ungated,
            "head_input_relu": variants.head_input_relu(ungated, head[0], scratch),
            "last_hidden_fp32": variants.last_hidden_fp32(
                config, preprocessed, head, graph_pre.quantizable_layers, reduce_range, scratch
            ),
            "dynamic": variants.dynamic_int8(config, preprocessed, head, scratch),
            "served_unfolded": variants.served_unfolded(
                config, preprocessed, head, reduce_range, tables["calibration"], scratch
            ),
        }
        fp32_scores = score_model(config.onnx_path, holdout, config)
        gates = {
            name: variants.gate_figures(config, path, holdout, fp32_scores)
            for name, path in models.items()
            if name not in ("fp32", "fp32_preprocessed")
        }
        runs = [
            time_models(models, holdout, config.output_name, BATCH_SIZES, seconds) for _ in range(repeats)
        ]
        two_threads = [
            time_models(
                {"fp32": models["fp32"], "int8": models["int8"]},
                holdout,
                config.output_name,
                (256,),
                seconds,
                2,
            )
            for _ in range(repeats)
        ]
        feeds256 = {name: values[:256] for name, values in holdout.feeds.items()}
        profile = _quietest_profiles(models, feeds256, config.output_name)
        sizes = {name: path.stat().st_size for name, path in models.items()}
    return {
        "model": config.name,
        "verdict": cold.facts.gate_verdict.value,
        "precision": cold.facts.precision.value,
        "fallback_layers": [s.layer for s in report.tuning.fallback_layers] if report.tuning else [],
        "cold_start_seconds": cold_seconds,
        "warm_start_seconds": warm_seconds,
        "sizes_bytes": sizes,
        "size_ratio": {name: size / sizes["fp32"] for name, size in sizes.items()},
        "repeats": repeats,
        "timings_last_repeat": {
            name: {str(k): v.as_dict() for k, v in t.items()} for name, t in runs[-1].items()
        },
        "throughput_ratio": {name: _median_ratios(runs, name) for name in models if name != "fp32"},
        "two_threads_throughput_ratio_256": float(
            np.median([speedup(r["fp32"], r["int8"])[256] for r in two_threads])
        ),
        "gate": gates,
        "profile_batch_256_us": profile,
        "accuracy": report.metric_deltas(),
        # As served (the report's own timing): FP32 in its serving chunks (fraud: 8 rows per call, as the
        # runtime serves it), INT8 in whole batches; the table above times both in whole batches.
        "as_served": {
            "chunk_rows": report.speed.chunk_rows if report.speed else None,
            "throughput_ratio": report.speed.throughput_ratio if report.speed else None,
            "benefit": report.benefit.reason if report.benefit else None,
        },
        "evidence": report.evidence.model_dump() if report.evidence else None,
        "rewrites": [f"{r.rewrite}: {r.reason}" for r in report.rewrites or []],
        "canonical_form": report.canonical_form,
        "reduce_range": reduce_range,
    }


def _as_served_256(result: dict[str, Any]) -> str:
    """The report's own batch-256 ratio: each model timed as the runtime serves it (FP32 in chunks)."""
    ratios = result["as_served"]["throughput_ratio"] or {}
    return "-" if 256 not in ratios else f"{ratios[256]:.2f}x"


def print_table(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(
        title="FP32 vs served INT8 (static QDQ), same process, alternating rounds, median of repeats"
    )
    columns = (
        "model",
        "verdict",
        "size",
        "thr@1",
        "thr@32",
        "thr@256",
        "2 thr@256",
        "AUC delta",
        "PR-AUC delta",
    )
    columns += ("max flip", "PSI", "|diff| max", "as served @256", "cold s", "warm s")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "verdict") else "right")
    for r in results:
        t, a = r["throughput_ratio"]["int8"], r["accuracy"]
        table.add_row(
            r["model"],
            r["verdict"],
            f"{r['size_ratio']['int8']:.2f}x",
            *(f"{t[size]['median']:.2f}x" for size in ("1", "32", "256")),
            f"{r['two_threads_throughput_ratio_256']:.2f}x",
            f"{a['roc_auc_delta']:+.5f}",
            f"{a['pr_auc_delta']:+.5f}",
            f"{a['max_flip_rate']:.3%}",
            f"{a['psi']:.1e}",
            f"{a['max_abs_score_diff']:.3f}",
            _as_served_256(r),
            f"{r['cold_start_seconds']:.1f}",
            f"{r['warm_start_seconds']:.2f}",
        )
    console.print(table)
    options = Table(title="Every variant vs FP32 (same rounds): size, throughput, and the model's own gate")
    for column in ("model", "variant", "size", "thr@1", "thr@32", "thr@256", "gate", "distinct ratio"):
        options.add_column(column, justify="left" if column in ("model", "variant", "gate") else "right")
    for r in results:
        for name, ratios in r["throughput_ratio"].items():
            gate = r["gate"].get(name)
            options.add_row(
                r["model"],
                name,
                f"{r['size_ratio'][name]:.2f}x",
                *(f"{ratios[size]['median']:.2f}x" for size in ("1", "32", "256")),
                "-"
                if gate is None
                else ("PASS" if gate["passed"] else "FAIL " + "; ".join(gate["failures"])),
                "-" if gate is None else f"{gate['distinct_score_ratio']:.3f}",
            )
    console.print(options)
    profile = Table(title="Where the time goes at batch 256 (ORT profiler, kernel µs per run, quietest of 3)")
    for column in ("model", "variant", "front end", "MLP + head", "total", "top ops (µs)"):
        profile.add_column(
            column, justify="left" if column in ("model", "variant", "top ops (µs)") else "right"
        )
    for r in results:
        for name, s in r["profile_batch_256_us"].items():
            top = ", ".join(f"{op} {us:.0f}" for op, us in list(s["by_op_us"].items())[:4])
            profile.add_row(
                r["model"],
                name,
                f"{s['front_end_us']:.0f}",
                f"{s['mlp_and_head_us']:.0f}",
                f"{s['total_us']:.0f}",
                top,
            )
    console.print(profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quantization",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="*", default=["fraud", "credit"])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per model and batch size")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats; ratios are their median")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/quantization/results.json"))
    args = parser.parse_args(argv)
    models_dir = args.models_dir or default_models_dir()
    results = [
        benchmark_model(load_model_config(models_dir / name), args.seconds, args.repeats)
        for name in args.models
    ]
    print_table(results, Console(width=170))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"goals_fraud": GOALS, "batch_sizes": BATCH_SIZES, "results": results}, indent=2)
    )
    print(f"written: {args.output}")
    return 0
