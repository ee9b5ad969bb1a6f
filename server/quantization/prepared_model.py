"""What the startup pipeline hands to the serving runtime for one model."""

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Precision(StrEnum):
    INT8 = "int8"
    FP32 = "fp32"


class GateVerdict(StrEnum):
    PASSED = "passed"              # INT8 within the accuracy budget, served as INT8
    PASSED_WITH_FALLBACK = "passed_with_fallback"  # within budget after keeping some layers in FP32/INT16
    FAILED = "failed"              # never within budget: FP32 is served, and everything says so
    DISABLED = "disabled"          # quantization mode `none` in the model's config: FP32 by choice


@dataclass(frozen=True)
class PreparedModel:
    """The ONNX file to serve and the facts every surface (log, metrics, health, metadata) must report."""

    name: str
    version: str
    model_path: Path                 # the ONNX file to load into the serving session
    precision: Precision
    verdict: GateVerdict
    report_path: Path | None = None  # the JSON quantization report, when quantization ran or was cached
    from_cache: bool = False
    metric_deltas: dict[str, float] = field(default_factory=dict)  # e.g. roc_auc_delta, flip_rate, psi
    report: dict[str, Any] = field(default_factory=dict)
