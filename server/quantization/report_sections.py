"""The report's sections: typed parts of `QuantizationReport` (report.py), one per stage's outcome."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from server.config.quantization_config import CalibrationMethod, FallbackPrecision, Objective


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
    fp32_roc_auc: float  # the FP32 model on every row: what the model's card records (integrity)


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
