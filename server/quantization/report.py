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
    Objective,
    QuantizationConfig,
    QuantizationMode,
)
from server.served_model import GateVerdict, Precision

# 2: tuning steps have a kind; layers.float_head_input. 3: the typed schema below (absent sections are null).
# 4: rewrites, layers as run, serving chunk size, holdout split, evidence intervals, benefit, new verdicts.
REPORT_FORMAT = 4
LOCATION_FIELDS = frozenset({"served_model", "report_path"})  # move with the cache: never stored
# Sections every report of a quantized model has (only `mode: none` lacks them; `speed` is optional).
BUILD_SECTIONS = (
    "cpu",
    "decision_thresholds",
    "calibration",
    "holdout",
    "rewrites",
    "split",
    "serving",
    "evidence",
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


class RewriteSection(Section):
    """One change canonicalization made (or considered) to the exporter's graph before quantizing."""

    rewrite: str
    nodes: list[str]  # the exporter's nodes it replaced
    detail: str
    kept: bool
    max_abs_diff: float | None  # FP32 outputs after vs before on the calibration rows
    reason: str


class SplitSection(Section):
    """The holdout's two parts: the tuner chooses on one, the gate judges on the other (stratified)."""

    gate_fraction: float
    seed: int
    tuning_rows: int
    tuning_positives: int
    gate_rows: int
    gate_positives: int


class ServingSection(Section):
    """Rows per ONNX Runtime call as served and gated (None: any batch; server/batch_invariance.py)."""

    chunk_rows: int | None  # of the served model; the runtime starts from it
    int8_chunk_rows: int | None  # of the INT8 candidate, scored and timed with it
    fp32_chunk_rows: int | None  # of the FP32 model, scored and timed with it


class IntervalSection(Section):
    estimate: float
    low: float
    high: float


class EvidenceSection(Section):
    """Paired 95 % intervals of INT8 against FP32 on the gate's rows, and whether they show the budget."""

    rows: int
    positives: int
    min_positives: int
    roc_auc_delta: IntervalSection  # DeLong
    pr_auc_delta: IntervalSection  # paired Poisson bootstrap
    flip_rates: dict[str, IntervalSection]  # Wilson, per decision threshold
    sufficient: bool
    problems: list[str]
    gate_rows_needed: int
    more_holdout_rows_needed: int


class LayerRunSection(Section):
    kernel: str  # the ORT op that runs the layer, read from the optimized graph
    precision: str  # int8, int8_dynamic, int16_activations, int8_simulated, fp32
    float_output: bool
    input_bits: int  # 8 or 16: the kernel reads a quantized activation; 32: a float one


class LayersSection(Section):
    quantizable: list[str]
    output_head_kept_fp32: list[str]
    fp32: list[str]  # float kernels (fp32 or int8_simulated), as run
    int16: list[str]  # float kernels on 16-bit activations, as run
    int8: list[str]  # integer kernels (static or dynamic), as run
    runs: dict[str, LayerRunSection]  # every quantizable layer as ORT runs it
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
    initial: InitialGateSection  # the first INT8 attempt on the tuning rows, before any tuner move
    tuned: GateSection  # the chosen candidate on the tuning rows
    final: GateSection  # the chosen candidate on the gate's rows: what decides


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
    rejected: dict[str, str]  # candidates not considered (no-ops) -> why


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
    round_latency_ms: list[float]  # each alternating round's median


class SpeedSection(Section):
    session: str  # the session options timed under
    chunk_rows: dict[str, int | None]  # fp32 / int8 -> rows per call they were timed with (as served)
    fp32: dict[int, BatchTimingSection]  # batch size -> timing
    int8: dict[int, BatchTimingSection]
    throughput_ratio: dict[int, float]  # batch size -> INT8 rows/s over FP32 rows/s


class SpeedRatioSection(Section):
    batch_size: int
    median: float  # of per-round FP32 latency / INT8 latency (> 1: INT8 faster)
    low: float
    high: float
    noise: float


class BenefitCandidateSection(Section):
    score: float  # the objective's figure (higher is better)
    pays: bool
    reason: str


class BenefitSection(Section):
    """What INT8 buys against the model's `quantization.objective`, measured side by side as served."""

    objective: Objective
    pays: bool
    reason: str
    size_ratio: float
    latency: SpeedRatioSection | None  # batch 1
    throughput: SpeedRatioSection | None  # max_batch_size
    candidates: dict[str, BenefitCandidateSection]  # moves inside the budget the tuner chose among


class NotQuantizableSection(Section):
    op_types: list[str]  # the graph's op types
    looked_for: list[str]  # the configured op types, none of which has constant weights here


class QuantizationReport(Section):
    """The whole report. A model with `mode: none` has only the sections up to `config`, a `not_quantizable`
    one those and `not_quantizable`; the rest is null."""

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
    not_quantizable: NotQuantizableSection | None = None
    rewrites: list[RewriteSection] | None = None
    canonical_form: str | None = None  # base or folded: which form was quantized, and why
    split: SplitSection | None = None
    serving: ServingSection | None = None
    evidence: EvidenceSection | None = None
    benefit: BenefitSection | None = None  # null when the tuner never got inside the budget
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
        if self.verdict is GateVerdict.NOT_QUANTIZABLE and self.not_quantizable is None:
            raise ValueError("verdict not_quantizable but no not_quantizable section")
        missing = [name for name in BUILD_SECTIONS if getattr(self, name) is None]
        if self.verdict not in (GateVerdict.DISABLED, GateVerdict.NOT_QUANTIZABLE) and missing:
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
