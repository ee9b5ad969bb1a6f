"""What else moves batch-256 throughput of the served INT8 model, each lever checked against the gate.

    python -m benchmarks.quantization.levers [MODEL] [--rounds 15] [--round-seconds 0.3] [--output F]

Quantization levers (per-channel weights, int8 vs uint8 activations, reduce_range) are built through the
real startup pipeline, so each gets its own gate verdict and tuning; session levers (graph optimization
level, intra-op threads) time the served model and FP32 under the same changed options. Timing alternates
models round by round; a ratio is the median over rounds of FP32's round median over the model's, and the
ratio of the fastest rounds is given as a second, neighbour-resistant figure (the cores are shared).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from server.config import load_model_config
from server.config.model_config import ModelConfig
from server.config.paths import default_models_dir
from server.ort_session import create_session, latency_session_options
from server.quantization.calibration_data import load_feature_table
from server.quantization.model_graph import load_model_graph
from server.quantization.pipeline import prepare_model

BATCH = 256
QUANTIZATION_LEVERS: dict[str, dict[str, object]] = {
    "served (config as is)": {},
    "per_channel weights": {"per_channel": True},
    "int8 activations": {"activation_type": "int8"},
    "int8 activations + per_channel": {"activation_type": "int8", "per_channel": True},
    "reduce_range true": {"reduce_range": True},
}
SESSION_LEVERS = {
    "ORT_ENABLE_ALL, 1 thread (serving)": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 1),
    "ORT_ENABLE_EXTENDED, 1 thread": (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, 1),
    "ORT_ENABLE_BASIC, 1 thread": (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, 1),
    "ORT_ENABLE_ALL, 2 threads": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 2),
}


def interleaved_ratios(
    sessions: dict[str, ort.InferenceSession],
    feeds: dict[str, np.ndarray],
    output: str,
    rounds: int,
    seconds: float,
) -> dict[str, dict[str, float]]:
    """Throughput of each session over `fp32`'s: median of per-round ratios and ratio of fastest rounds."""
    medians: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        for _ in range(3):
            session.run([output], feeds)
    for _ in range(rounds):
        for name, session in sessions.items():
            samples, deadline = [], time.perf_counter() + seconds
            while len(samples) < 3 or time.perf_counter() < deadline:
                start = time.perf_counter()
                session.run([output], feeds)
                samples.append(time.perf_counter() - start)
            medians[name].append(float(np.median(samples)))
    fp32 = np.array(medians["fp32"])
    return {
        name: {
            "median_ratio": float(np.median(fp32 / np.array(values))),
            "fastest_round_ratio": float(fp32.min() / min(values)),
            "fastest_round_ms": min(values) * 1e3,
        }
        for name, values in medians.items()
    }


def run(config: ModelConfig, rounds: int, seconds: float) -> dict[str, Any]:
    q = config.quantization
    load_model_graph(config.onnx_path, q.op_types, config.output_name)
    holdout = load_feature_table(
        config.holdout_path,
        config,
        min_rows=1,
        label_column=config.label_column,
        require_label=True,
        ignored_columns=q.ignored_columns,
    )
    rows = np.arange(BATCH) % holdout.rows
    feeds = {name: values[rows] for name, values in holdout.feeds.items()}
    built: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="riskserve-levers-") as scratch:
        paths = {"fp32": config.onnx_path}
        for label, changes in QUANTIZATION_LEVERS.items():
            # A short timing: the objective (default balanced) is judged on it before INT8 is served.
            changed = type(q).model_validate({**q.model_dump(), "speed_seconds": 0.1, **changes})
            prepared = prepare_model(
                config.model_copy(update={"quantization": changed}), Path(scratch) / label
            )
            r = prepared.report
            assert r is not None and r.tuning and r.sizes and r.accuracy, "levers need a quantized model"
            built[label] = {
                "verdict": r.verdict.value,
                "moves": [f"{s.layer} ({s.kind})" for s in r.tuning.fallback_layers],
                "size_ratio": r.sizes.int8_over_fp32,
                "roc_auc_ratio": r.accuracy.roc_auc_ratio,
                "max_flip_rate": r.accuracy.max_flip_rate,
                "distinct_score_ratio": r.accuracy.distinct_score_ratio,
            }
            paths[label] = prepared.model_path
        sessions = {name: create_session(path) for name, path in paths.items()}
        timing = interleaved_ratios(sessions, feeds, config.output_name, rounds, seconds)
        served = paths["served (config as is)"]
        session_levers = {}
        for label, (level, threads) in SESSION_LEVERS.items():
            options = latency_session_options(threads)
            options.graph_optimization_level = level
            pair = {
                "fp32": create_session(config.onnx_path, options),
                "int8": create_session(served, options),
            }
            session_levers[label] = interleaved_ratios(pair, feeds, config.output_name, rounds, seconds)
    for label in built:
        built[label].update(timing[label])
    return {
        "model": config.name,
        "batch_size": BATCH,
        "rounds": rounds,
        "round_seconds": seconds,
        "fp32_fastest_round_ms": timing["fp32"]["fastest_round_ms"],
        "quantization_levers": built,
        "session_levers": session_levers,
    }


def print_tables(result: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"{result['model']}: quantization levers at batch {BATCH} (built and gated at startup)"
    )
    for column in (
        "lever",
        "verdict",
        "tuner moves",
        "size",
        "thr median",
        "thr fastest",
        "AUC ratio",
        "max flip",
        "distinct",
    ):
        table.add_column(column)
    for label, r in result["quantization_levers"].items():
        table.add_row(
            label,
            r["verdict"],
            ", ".join(r["moves"]) or "-",
            f"{r['size_ratio']:.3f}x",
            f"{r['median_ratio']:.2f}x",
            f"{r['fastest_round_ratio']:.2f}x",
            f"{r['roc_auc_ratio']:.5f}",
            f"{r['max_flip_rate']:.3%}",
            f"{r['distinct_score_ratio']:.3f}",
        )
    console.print(table)
    session = Table(title="Session levers: served INT8 vs FP32 under the same options")
    for column in ("options", "thr median", "thr fastest", "FP32 fastest ms", "INT8 fastest ms"):
        session.add_column(column)
    for label, r in result["session_levers"].items():
        session.add_row(
            label,
            f"{r['int8']['median_ratio']:.2f}x",
            f"{r['int8']['fastest_round_ratio']:.2f}x",
            f"{r['fp32']['fastest_round_ms']:.3f}",
            f"{r['int8']['fastest_round_ms']:.3f}",
        )
    console.print(session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quantization.levers", description=__doc__)
    parser.add_argument("model", nargs="?", default="fraud")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--round-seconds", type=float, default=0.3)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/quantization/levers.json"))
    args = parser.parse_args(argv)
    config = load_model_config((args.models_dir or default_models_dir()) / args.model)
    result = run(config, args.rounds, args.round_seconds)
    print_tables(result, Console(width=170))
    args.output.write_text(json.dumps(result, indent=2))
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
