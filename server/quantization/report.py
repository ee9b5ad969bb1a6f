"""The quantization report's schema: one JSON document a model-risk reviewer can audit.

`QuantizationReport` is what the pipeline builds (report_builder.py), caches as report.json, and what the
summary, `riskserve quantize --json`, the metrics and the benchmarks read. A report.json that does not
validate against it, or carries another `format`, is a stale or corrupt cache entry, never a crash.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from server.config.quantization_config import (
    AccuracyBudget,
    CalibrationMethod,
    FallbackPrecision,
    QuantizationConfig,
    QuantizationMode,
)
from server.served_model import GateVerdict, Precision

# 2: tuning steps have a kind; layers.float_head_input. 3: the typed schema below (absent sections are null)
REPORT_FORMAT = 3
LOCATION_FIELDS = frozenset({"served_model", "report_path"})  # move with the cache: never stored
# Sections every report of a quantized model has (only `mode: none` lacks them; `speed` is optional).
BUILD_SECTIONS = (
    "cpu",
    "decision_thresholds",
    "calibration",
    "holdout",
    "layers",
    "budget",
    "gate",
    "accuracy",
    "tuning",
    "sizes",
    "seconds",
)


class Section(BaseModel):
    """A part of the report: unknown keys are errors, non-finite floats stay NaN/Infinity in the JSON."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, protected_namespaces=(), ser_json_inf_nan="constants"
    )


class ModelSection(Section):
    name: str
    version: str
    task: str
    onnx_file: str
    output: str


class Versions(Section):
    riskserve: str
    onnxruntime: str
    onnx: str
    numpy: str
    python: str
    platform: str


class CpuSection(Section):
    model_name: str
    vnni: bool
    vnni_flags: list[str]
    reduce_range: bool
    reduce_range_reason: str


class CalibrationSection(Section):
    file: str
    rows_used: int  # rows the calibrator saw (equal batches)
    rows_in_file: int
    ignored_columns: list[str]
    method: CalibrationMethod
    runs: int  # calibrations in this build


class HoldoutSection(Section):
    file: str
    rows: int
    positives: int | None
    ignored_columns: list[str]


class LayersSection(Section):
    quantizable: list[str]
    output_head_kept_fp32: list[str]
    fp32: list[str]
    int16: list[str]
    int8: list[str]
    float_head_input: bool  # the tuner's head-input move was taken
    unprotected_distinct_score_ratio: float | None  # the same model with its output head quantized too


class BudgetCheckSection(Section):
    name: str
    value: float
    limit: float
    kind: Literal["min", "max"]
    passed: bool


class GateSection(Section):
    passed: bool
    checks: list[BudgetCheckSection]


class AttemptFigures(Section):
    """One quantization attempt's figures, as the tuner ranks candidates by them."""

    gate_shortfall: float
    model_bytes: int
    fp32_weights: int
    roc_auc_ratio: float
    max_flip_rate: float
    distinct_score_ratio: float
    mean_abs_score_diff: float
    psi: float


class InitialGateSection(GateSection):
    figures: AttemptFigures


class GateReport(Section):
    initial: InitialGateSection  # the first INT8 attempt, before any tuner move
    final: GateSection


class RiskMetricsSection(Section):
    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    ks: float
    brier: float
    recall_at_1pct_fpr: float
    distinct_scores: int
    share_scores_exactly_0_or_1: float


class AccuracySection(Section):
    """The served (or best rejected) INT8 model against FP32 on the holdout set."""

    fp32: RiskMetricsSection
    int8: RiskMetricsSection
    roc_auc_delta: float  # INT8 - FP32
    roc_auc_ratio: float  # INT8 / FP32
    pr_auc_delta: float
    ks_delta: float
    brier_delta: float
    mean_abs_score_diff: float
    max_abs_score_diff: float
    psi: float
    distinct_score_ratio: float
    flip_rates: dict[str, float]  # decision threshold name -> share of rows whose decision changes
    max_flip_rate: float

    def metric_deltas(self) -> dict[str, float]:
        """The flat figures exported as metrics and metadata: every scalar here, a flip rate per threshold."""
        figures = self.model_dump(exclude={"fp32", "int8", "flip_rates"})
        return {**figures, **{f"flip_rate_{name}": rate for name, rate in self.flip_rates.items()}}


class FallbackStepSection(Section):
    layer: str  # a layer name, or `input of <head>` for the head-input move
    kind: Literal["layer", "head_input"]
    precision: FallbackPrecision
    reason: str
    sensitivity: dict[str, AttemptFigures]  # every candidate of the round -> figures with it applied


class TuningSection(Section):
    fallback_layers: list[FallbackStepSection]
    stopped_because: str


class SizesSection(Section):
    fp32_bytes: int
    int8_bytes: int
    int8_over_fp32: float


class BatchTimingSection(Section):
    batch_size: int
    repeats: int
    median_latency_ms: float
    rows_per_second: float


class SpeedSection(Section):
    session: str  # the session options timed under
    fp32: dict[int, BatchTimingSection]  # batch size -> timing
    int8: dict[int, BatchTimingSection]
    throughput_ratio: dict[int, float]  # batch size -> INT8 rows/s over FP32 rows/s


class QuantizationReport(Section):
    """The whole report. A model with `mode: none` has only the sections up to `config`; the rest is null."""

    format: int
    model: ModelSection
    verdict: GateVerdict
    precision: Precision
    mode: QuantizationMode
    batch_invariant: bool
    from_cache: bool = False  # set when loaded from the cache
    cache_key: str | None = None
    warnings: list[str] = Field(default_factory=list)
    versions: Versions
    cpu: CpuSection | None = None
    config: QuantizationConfig
    decision_thresholds: dict[str, float] | None = None
    calibration: CalibrationSection | None = None
    holdout: HoldoutSection | None = None
    layers: LayersSection | None = None
    budget: AccuracyBudget | None = None
    gate: GateReport | None = None
    accuracy: AccuracySection | None = None
    tuning: TuningSection | None = None
    sizes: SizesSection | None = None
    speed: SpeedSection | None = None  # null when timing was skipped (speed_seconds 0)
    seconds: dict[str, float] | None = None  # time per stage and total_cold
    # Where the evidence is, for the summary and --json; set after building or loading, never cached.
    served_model: Path | None = None
    report_path: Path | None = None

    @field_validator("format")
    @classmethod
    def _current_format(cls, value: int) -> int:
        if value != REPORT_FORMAT:
            raise ValueError(f"report format {value}, this riskserve reads format {REPORT_FORMAT}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> "QuantizationReport":
        missing = [name for name in BUILD_SECTIONS if getattr(self, name) is None]
        if self.verdict is not GateVerdict.DISABLED and missing:
            raise ValueError(f"verdict {self.verdict.value} but no {', '.join(missing)}")
        return self

    def metric_deltas(self) -> dict[str, float]:
        return self.accuracy.metric_deltas() if self.accuracy is not None else {}

    def located(self, served_model: Path, report_path: Path | None) -> "QuantizationReport":
        """This report with the paths of the served model and of its report.json."""
        return self.model_copy(update={"served_model": served_model, "report_path": report_path})

    def cache_json(self) -> str:
        """The JSON stored in the cache: everything but the paths, which move with the cache."""
        return self.model_dump_json(indent=2, exclude=set(LOCATION_FIELDS))


class ReportFileError(ValueError):
    """A report.json that is not a valid report of the current format."""


def read_report(path: Path) -> QuantizationReport:
    """Parse and validate `path`; ReportFileError naming the file and the first problem otherwise."""
    try:
        return QuantizationReport.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        problem = f"{exc.error_count()} error(s); {where}: {first['msg']}"
        raise ReportFileError(f"{path}: not a format-{REPORT_FORMAT} report ({problem})") from exc
