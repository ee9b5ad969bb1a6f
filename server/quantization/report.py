"""The quantization report's schema: one JSON document a model-risk reviewer can audit.

`QuantizationReport` is what the pipeline builds (report_builder.py), caches as report.json, and what the
summary, `riskserve quantize --json`, the metrics and the benchmarks read. A report.json that does not
validate against it, or carries another `format`, is a stale or corrupt cache entry, never a crash.
"""

from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from server.config.quantization_config import (
    AccuracyBudget,
    QuantizationConfig,
    QuantizationMode,
)
from server.evaluation.figures import AccuracyComparison
from server.quantization.report_sections import (
    BenefitSection,
    CalibrationSection,
    CpuSection,
    EvidenceSection,
    GateReport,
    HoldoutSection,
    LayersSection,
    ModelSection,
    NotQuantizableSection,
    RewriteSection,
    Section,
    ServingSection,
    SizesSection,
    SpeedSection,
    SplitSection,
    TuningSection,
    Versions,
)
from server.served_model import GateVerdict, Precision

# 2: tuning steps have a kind; layers.float_head_input. 3: the typed schema below (absent sections are null).
# 4: rewrites, layers as run, serving chunk size, holdout split, evidence intervals, benefit, new verdicts.
# 5: holdout.fp32_roc_auc.
REPORT_FORMAT = 5
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
    accuracy: AccuracyComparison | None = None
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
