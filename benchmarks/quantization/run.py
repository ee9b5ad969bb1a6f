"""FP32 vs INT8 for each bundled model, side by side in one run.

    python -m benchmarks.quantization [MODEL ...] [--models-dir DIR] [--seconds S] [--output FILE]

For each model: a cold start through the real startup pipeline (empty cache) and a warm start (cache hit),
then FP32 and the served model timed in alternating rounds at batch 1, 32 and 256 under the serving
session options, an ORT profile of where the time goes at batch 256, and the same model quantized in
dynamic mode for comparison. Prints a table and writes everything as JSON.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.quantization.op_profile import front_end_nodes, profile_model
from server.config import load_model_config
from server.config.model_config import ModelConfig
from server.config.paths import default_models_dir
from server.config.quantization_config import QuantizationConfig, QuantizationMode
from server.quantization.calibration_data import load_feature_table
from server.quantization.model_graph import load_model_graph
from server.quantization.pipeline import prepare_model
from server.quantization.quantizer import QuantizationRecipe, preprocess, quantize
from server.quantization.speed import speedup, time_models

BATCH_SIZES = (1, 32, 256)
PROFILE_ROUNDS = 3
GOALS = {"size_ratio_max": 0.3, "throughput_ratio_at_256_min": 2.5}


def _with_quantization(config: ModelConfig, **changes: Any) -> ModelConfig:
    q = QuantizationConfig.model_validate({**config.quantization.model_dump(), **changes})
    return config.model_copy(update={"quantization": q})


def _preprocessed(config: ModelConfig, scratch: Path) -> Path:
    path = scratch / "fp32-preprocessed.onnx"
    preprocess(config.onnx_path, path)
    return path


def _dynamic_model(config: ModelConfig, head: tuple[str, ...], scratch: Path) -> Path:
    """The same model quantized in dynamic mode (output head kept FP32), whatever its gate says."""
    pre, out = scratch / "fp32-preprocessed.onnx", scratch / "dynamic.onnx"
    q = _with_quantization(config, mode=QuantizationMode.DYNAMIC).quantization
    quantize(pre, out, QuantizationRecipe(head), q, False, scratch / "unused.json", None)
    return out


def _quietest_profiles(models: dict[str, Path], feeds, output: str, front_end: set[str]) -> dict[str, Any]:
    """Profile each model in PROFILE_ROUNDS alternating rounds and keep each one's fastest round: the cores
    are shared, and the least-disturbed round is the closest to the model's own cost."""
    best: dict[str, Any] = {}
    for _ in range(PROFILE_ROUNDS):
        for name, path in models.items():
            profile = profile_model(path, feeds, output, front_end)
            if name not in best or profile["total_us"] < best[name]["total_us"]:
                best[name] = profile
    return best


def benchmark_model(config: ModelConfig, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="riskserve-bench-") as scratch_name:
        scratch = Path(scratch_name)
        started = time.perf_counter()
        cold = prepare_model(config, scratch / "cache")
        cold_seconds = time.perf_counter() - started
        started = time.perf_counter()
        warm = prepare_model(config, scratch / "cache")
        warm_seconds = time.perf_counter() - started
        assert warm.from_cache

        graph = load_model_graph(config.onnx_path, config.quantization.op_types, config.output_name)
        holdout = load_feature_table(
            config.holdout_path,
            graph.input_dtypes,
            min_rows=1,
            label_column=config.label_column,
            ignored_columns=config.quantization.ignored_columns,
        )
        head = tuple(cold.report["layers"]["output_head_kept_fp32"])
        models = {
            "fp32": config.onnx_path,
            "int8": cold.model_path,
            # FP32 after our pre-processing (typed front end, MatMul+Add fused into Gemm): the fairest FP32.
            "fp32_preprocessed": _preprocessed(config, scratch),
            "dynamic": _dynamic_model(config, head, scratch),
        }
        timings = time_models(models, holdout, config.output_name, BATCH_SIZES, seconds)
        two_threads = time_models(
            {"fp32": models["fp32"], "int8": models["int8"]}, holdout, config.output_name, (256,), seconds, 2
        )
        feeds256 = {name: values[:256] for name, values in holdout.feeds.items()}
        first_layer = next(n for n in graph.model.graph.node if n.name == graph.quantizable_layers[0])
        front_end = front_end_nodes(config.onnx_path, first_layer.input[0])
        profile = _quietest_profiles(models, feeds256, config.output_name, front_end)
        sizes = {name: path.stat().st_size for name, path in models.items()}
    accuracy = cold.report.get("accuracy", {})
    return {
        "model": config.name,
        "verdict": cold.verdict.value,
        "precision": cold.precision.value,
        "fallback_layers": [s["layer"] for s in cold.report.get("tuning", {}).get("fallback_layers", [])],
        "cold_start_seconds": cold_seconds,
        "warm_start_seconds": warm_seconds,
        "sizes_bytes": sizes,
        "size_ratio": sizes["int8"] / sizes["fp32"],
        "timings": {name: {str(k): v.as_dict() for k, v in t.items()} for name, t in timings.items()},
        "throughput_ratio": {str(k): v for k, v in speedup(timings["fp32"], timings["int8"]).items()},
        "throughput_ratio_vs_preprocessed_fp32": {
            str(k): v for k, v in speedup(timings["fp32_preprocessed"], timings["int8"]).items()
        },
        "two_intra_op_threads_batch_256": {name: t[256].as_dict() for name, t in two_threads.items()},
        "two_threads_throughput_ratio_256": speedup(two_threads["fp32"], two_threads["int8"])[256],
        "dynamic_throughput_ratio": {
            str(k): v for k, v in speedup(timings["fp32"], timings["dynamic"]).items()
        },
        "profile_batch_256_us": profile,
        "accuracy": {
            k: accuracy.get(k)
            for k in (
                "roc_auc_delta",
                "roc_auc_ratio",
                "pr_auc_delta",
                "ks_delta",
                "brier_delta",
                "max_flip_rate",
                "psi",
                "distinct_score_ratio",
            )
        },
        "reduce_range": cold.report.get("cpu", {}).get("reduce_range"),
    }


def print_table(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="FP32 vs INT8 (static QDQ), same process, alternating rounds, medians")
    for column in (
        "model",
        "verdict",
        "size",
        "thr@1",
        "thr@32",
        "thr@256",
        "vs Gemm FP32@256",
        "dyn@256",
        "2 threads@256",
        "AUC delta",
        "max flip",
        "PSI",
        "cold s",
        "warm s",
    ):
        table.add_column(column, justify="left" if column in ("model", "verdict") else "right")
    for r in results:
        t, a = r["throughput_ratio"], r["accuracy"]
        table.add_row(
            r["model"],
            r["verdict"],
            f"{r['size_ratio']:.2f}x",
            f"{t['1']:.2f}x",
            f"{t['32']:.2f}x",
            f"{t['256']:.2f}x",
            f"{r['throughput_ratio_vs_preprocessed_fp32']['256']:.2f}x",
            f"{r['dynamic_throughput_ratio']['256']:.2f}x",
            f"{r['two_threads_throughput_ratio_256']:.2f}x",
            f"{a['roc_auc_delta']:+.5f}",
            f"{a['max_flip_rate']:.3%}",
            f"{a['psi']:.1e}",
            f"{r['cold_start_seconds']:.1f}",
            f"{r['warm_start_seconds']:.2f}",
        )
    console.print(table)
    profile = Table(title="Where the time goes at batch 256 (ORT profiler, kernel µs per run)")
    for column in ("model", "precision", "front end", "MLP + head", "total", "ceiling if MLP took 0"):
        profile.add_column(column, justify="left" if column in ("model", "precision") else "right")
    for r in results:
        fp32 = r["profile_batch_256_us"]["fp32"]
        ceiling = fp32["total_us"] / fp32["front_end_us"]  # the best any MLP speed-up could do (Amdahl)
        for name in ("fp32", "fp32_preprocessed", "int8", "dynamic"):
            s = r["profile_batch_256_us"][name]
            profile.add_row(
                r["model"],
                name,
                f"{s['front_end_us']:.1f}",
                f"{s['mlp_and_head_us']:.1f}",
                f"{s['total_us']:.1f}",
                f"{ceiling:.2f}x" if name == "fp32" else "",
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
    parser.add_argument("--output", type=Path, default=Path("benchmarks/quantization/results.json"))
    args = parser.parse_args(argv)
    models_dir = args.models_dir or default_models_dir()
    results = [benchmark_model(load_model_config(models_dir / name), args.seconds) for name in args.models]
    print_table(results, Console(width=150))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"goals_fraud": GOALS, "batch_sizes": BATCH_SIZES, "results": results}, indent=2)
    )
    print(f"written: {args.output}")
    return 0
