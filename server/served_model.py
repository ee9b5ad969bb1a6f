"""What the startup pipeline hands to the serving runtime for one model, and the facts every surface reports.

One type for a served model's facts (`ModelFacts`): the runtime copies them into every answer, the metrics
export them as `riskserve_model_info`, the health and metadata RPCs and the logs say the same. Both the
quantization pipeline and the runtime import this module; neither imports the other's internals.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the report's schema lives with the pipeline that writes it
    from server.quantization.report import QuantizationReport


class Precision(StrEnum):
    INT8 = "int8"
    FP32 = "fp32"


class GateVerdict(StrEnum):
    PASSED = "passed"  # INT8 within the accuracy budget, served as INT8
    PASSED_WITH_FALLBACK = "passed_with_fallback"  # within budget after keeping some layers in FP32/INT16
    FAILED = "failed"  # never within budget: FP32 is served, and everything says so
    DISABLED = "disabled"  # quantization mode `none` in the model's config: FP32 by choice
    NOT_QUANTIZABLE = "not_quantizable"  # nothing to quantize (e.g. a tree ensemble): FP32 by design
    NO_GAIN = "no_gain"  # INT8 within budget but not faster/smaller as the objective asks: FP32 served
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"  # holdout too small to show the budget: FP32 served
    LIVE_DRIFT = "live_drift"  # passed, but live traffic flipped too many decisions (on_live_drift): FP32


@dataclass(frozen=True)
class ModelFacts:
    """What every answer, metadata reply, health check, metric and log line says about a served model."""

    name: str
    version: str
    task: str
    precision: Precision
    gate_verdict: GateVerdict
    from_cache: bool = False
    metric_deltas: Mapping[str, float] = field(default_factory=dict)  # e.g. roc_auc_delta, psi

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "precision": self.precision.value,
            "gate_verdict": self.gate_verdict.value,
            "from_cache": self.from_cache,
            "metric_deltas": {k: v for k, v in self.metric_deltas.items() if math.isfinite(v)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelFacts":
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            task=str(data["task"]),
            precision=Precision(data["precision"]),
            gate_verdict=GateVerdict(data["gate_verdict"]),
            from_cache=bool(data.get("from_cache", False)),
            metric_deltas={str(k): float(v) for k, v in dict(data.get("metric_deltas", {})).items()},
        )


@dataclass(frozen=True)
class PreparedModel:
    """The ONNX file to serve, its facts, and the quantization report that justified them."""

    facts: ModelFacts
    model_path: Path  # the ONNX file to load into the serving session
    report_path: Path | None = None  # the JSON quantization report, when quantization ran or was cached
    report: "QuantizationReport | None" = None
    # Rows per ONNX Runtime call the model was gated with (server/batch_invariance.py): None any batch,
    # else fixed chunks of this many rows. The runtime starts from it and re-verifies it at load.
    chunk_rows: int | None = None
