"""The quantization report: one JSON document a model-risk reviewer can audit, built from each stage."""

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime

from server.config.model_config import ModelConfig
from server.config.quantization_config import QuantizationMode
from server.quantization.cpu_features import CpuProfile
from server.served_model import GateVerdict, Precision

if TYPE_CHECKING:  # the cold path's modules pull in pandas and scikit-learn; a warm start needs neither
    from server.quantization.build import BuildOutcome
    from server.quantization.calibration_data import FeatureTable
    from server.quantization.model_graph import ModelGraph

REPORT_FORMAT = 2  # 2: tuning steps have a kind; layers.float_head_input
DYNAMIC_WARNING = (
    "dynamic quantization computes activation ranges per batch: a row's score depends on the other rows in "
    "its batch, so this model must not be served with batching"
)


def versions() -> dict[str, str]:
    try:
        riskserve = metadata.version("riskserve")
    except metadata.PackageNotFoundError:
        riskserve = "unknown"
    return {
        "riskserve": riskserve,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def verdict_of(config: ModelConfig, outcome: "BuildOutcome") -> GateVerdict:
    if not outcome.tuning.passed:
        return GateVerdict.FAILED
    return GateVerdict.PASSED_WITH_FALLBACK if outcome.tuning.steps else GateVerdict.PASSED


def build_report(
    config: ModelConfig,
    graph: "ModelGraph",
    cpu: CpuProfile,
    reduce_range: tuple[bool, str],
    calibration: "FeatureTable",
    holdout: "FeatureTable",
    outcome: "BuildOutcome",
    cache_key: str,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The full JSON report of a cold run."""
    from server.quantization.speed import speedup

    q = config.quantization
    graph = outcome.graph
    verdict = verdict_of(config, outcome)
    final = outcome.tuning.final
    fp32_bytes, int8_bytes = config.onnx_path.stat().st_size, outcome.model_path.stat().st_size
    int8_layers = [name for name in graph.quantizable_layers if name not in final.recipe.fp32_layers]
    warnings = []
    if verdict is GateVerdict.FAILED:
        warnings.append(
            "INT8 model never within the accuracy budget ("
            + "; ".join(final.gate.failures())
            + f"; tuner stopped: {outcome.tuning.stopped_because}): serving FP32"
        )
    if q.mode is QuantizationMode.DYNAMIC:
        warnings.append(DYNAMIC_WARNING)
    speed: dict[str, Any] = {}
    if outcome.timings:
        speed = {
            "session": "1 intra-op thread, 1 inter-op thread, sequential, ORT_ENABLE_ALL, no spinning",
            "fp32": {str(k): v.as_dict() for k, v in outcome.timings["fp32"].items()},
            "int8": {str(k): v.as_dict() for k, v in outcome.timings["int8"].items()},
            "throughput_ratio": {
                str(k): v for k, v in speedup(outcome.timings["fp32"], outcome.timings["int8"]).items()
            },
        }
    return {
        "format": REPORT_FORMAT,
        "model": {
            "name": config.name,
            "version": config.version,
            "task": config.task.value,
            "onnx_file": str(config.onnx_path),
            "output": config.output_name,
        },
        "verdict": verdict.value,
        "precision": (Precision.FP32 if verdict is GateVerdict.FAILED else Precision.INT8).value,
        "mode": q.mode.value,
        "batch_invariant": q.mode is QuantizationMode.STATIC,
        "from_cache": False,
        "cache_key": cache_key,
        "warnings": warnings,
        "versions": versions(),
        "cpu": {**cpu.as_dict(), "reduce_range": reduce_range[0], "reduce_range_reason": reduce_range[1]},
        "config": q.model_dump(mode="json"),
        "decision_thresholds": config.decision.thresholds(),
        "calibration": {
            "file": str(calibration.path),
            "rows_used": outcome.calibration_rows,
            "rows_in_file": calibration.rows_in_file,
            "ignored_columns": list(calibration.ignored_columns),
            "method": q.calibration_method.value,
            "runs": outcome.calibration_runs,
        },
        "holdout": {
            "file": str(holdout.path),
            "rows": holdout.rows,
            "positives": int(holdout.labels.sum()) if holdout.labels is not None else None,
            "ignored_columns": list(holdout.ignored_columns),
        },
        "layers": {
            "quantizable": list(graph.quantizable_layers),
            "output_head_kept_fp32": list(graph.output_head) if q.protect_output else [],
            "fp32": list(final.recipe.fp32_layers),
            "int16": list(final.recipe.int16_layers),
            "int8": [n for n in int8_layers if n not in final.recipe.int16_layers],
            "float_head_input": final.recipe.float_input_layer is not None,
            "unprotected_distinct_score_ratio": outcome.unprotected_distinct_score_ratio,
        },
        "budget": q.budget.model_dump(mode="json"),
        "gate": {
            "initial": {**outcome.initial.gate.as_dict(), "figures": outcome.initial.figures()},
            "final": final.gate.as_dict(),
        },
        "accuracy": final.comparison.as_dict(),
        "tuning": {
            "fallback_layers": [step.as_dict() for step in outcome.tuning.steps],
            "stopped_because": outcome.tuning.stopped_because,
        },
        "sizes": {
            "fp32_bytes": fp32_bytes,
            "int8_bytes": int8_bytes,
            "int8_over_fp32": int8_bytes / fp32_bytes,
        },
        "speed": speed,
        "seconds": {**outcome.seconds, **seconds},
    }


def disabled_report(config: ModelConfig) -> dict[str, Any]:
    """Report for `mode: none`: nothing was quantized, FP32 is served by choice."""
    return {
        "format": REPORT_FORMAT,
        "model": {
            "name": config.name,
            "version": config.version,
            "task": config.task.value,
            "onnx_file": str(config.onnx_path),
            "output": config.output_name,
        },
        "verdict": GateVerdict.DISABLED.value,
        "precision": Precision.FP32.value,
        "mode": QuantizationMode.NONE.value,
        "batch_invariant": True,
        "from_cache": False,
        "warnings": [],
        "versions": versions(),
        "config": config.quantization.model_dump(mode="json"),
    }


def relative_to(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
