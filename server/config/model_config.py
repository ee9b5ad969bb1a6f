"""A model's config file (models/<name>/config.yaml): inputs, output, decisions, data files, quantization.

Loading validates everything a later stage relies on, so the server fails at startup with the file and
the field named, never at the first request.
"""

from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from server.config._base import StrictModel
from server.config.errors import ConfigError
from server.config.quantization_config import QuantizationConfig

CONFIG_FILE_NAME = "config.yaml"


class ModelTask(StrEnum):
    FRAUD = "fraud"  # served by FraudScoring: 0-999 risk score, approve / review / decline
    CREDIT = "credit"  # served by CreditScoring: scorecard points, approve / review / decline, reason codes
    BINARY = "binary"  # any other binary risk model (AML alerts, chargebacks, churn): Open Inference Protocol


Dtype = Literal["float32", "float64", "int64", "bool", "string"]
NUMERIC_DTYPES = ("float32", "float64", "int64", "bool")
SOURCE_PREFIXES = ("features.", "categorical_features.", "behaviour.", "derived.")
DERIVED_SOURCES = ("derived.utc_hour",)  # the UTC hour 0-23 of the message's `timestamp`
_NAME = r"^[A-Za-z_][A-Za-z0-9_.:/-]*$"  # feature and ONNX input names as exporters make them


class FeatureSpec(StrictModel):
    """One feature: a value a model reads, where it comes from, its type and what is valid."""

    name: str = Field(pattern=_NAME, description="feature name: the data files' column, the wire's key")
    source: str | None = Field(
        None,
        description="where the domain API takes the value: a message field (`amount`, "
        "`behaviour.txn_count_1h`), `derived.utc_hour`, `features.<key>` or `categorical_features.<key>`; "
        "default: the message field of the same name if there is one, else the map entry of that name",
    )
    dtype: Dtype | None = Field(None, description="float32, float64, int64, bool or string")
    categories: tuple[str, ...] = Field((), description="allowed values of a string feature")
    minimum: float | None = Field(None, description="smallest valid value of a numeric feature")
    maximum: float | None = Field(None, description="largest valid value of a numeric feature")
    description: str = ""

    @field_validator("source")
    @classmethod
    def _source_form(cls, source: str | None) -> str | None:
        if source is None or "." not in source:
            return source  # a top-level message field
        if not source.startswith(SOURCE_PREFIXES) or source.endswith("."):
            raise ValueError(
                f"source '{source}': use a message field, behaviour.<field>, derived.utc_hour, "
                "features.<key> or categorical_features.<key>"
            )
        if source.startswith("derived.") and source not in DERIVED_SOURCES:
            raise ValueError(f"source '{source}': derived values are {', '.join(DERIVED_SOURCES)}")
        return source

    def _check_values(self) -> None:
        if self.dtype == "string" and not self.categories:
            raise ValueError(f"string feature '{self.name}' needs a non-empty categories list")
        if self.dtype != "string" and self.categories:
            raise ValueError(f"{self.dtype} feature '{self.name}' cannot have categories")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"feature '{self.name}': minimum {self.minimum} > maximum {self.maximum}")
        if self.source is not None and self.source.startswith("categorical_features.") != (
            self.dtype == "string"
        ):
            raise ValueError(
                f"feature '{self.name}': {self.dtype} values come from `features.<key>`, strings from "
                "`categorical_features.<key>`"
            )


class InputSpec(FeatureSpec):
    """One ONNX input. `[N, 1]`: the input is itself a feature. `[N, F]` (one float matrix, as PyTorch and
    Keras export it): `columns` names its F features in column order, each with its own source and range."""

    dtype: Dtype = Field(description="float32, float64, int64, bool or string")
    onnx_name: str | None = Field(None, description="the ONNX input's name where it differs from `name`")
    columns: tuple[FeatureSpec, ...] = Field((), description="the features of an [N, F] input, in order")

    @model_validator(mode="after")
    def _consistent(self) -> "InputSpec":
        if not self.columns:
            self._check_values()
            return self
        if self.source or self.categories or self.minimum is not None or self.maximum is not None:
            raise ValueError(f"input '{self.name}' has columns: give source, range and categories per column")
        columns = []
        for column in self.columns:
            if column.dtype not in (None, self.dtype):
                raise ValueError(
                    f"input '{self.name}' is {self.dtype}: column '{column.name}' cannot be {column.dtype}"
                )
            column = column.model_copy(update={"dtype": self.dtype})
            column._check_values()
            columns.append(column)
        object.__setattr__(self, "columns", tuple(columns))
        return self

    @property
    def onnx_input(self) -> str:
        """The ONNX input's name."""
        return self.onnx_name or self.name

    @property
    def width(self) -> int:
        """Columns of the ONNX input: 1 for [N, 1], F for [N, F]."""
        return len(self.columns) or 1

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        return self.columns or (self,)


class DecisionConfig(StrictModel):
    """Probability thresholds: below `review` approve, from `review` review, from `decline` decline."""

    review: float = Field(gt=0.0, lt=1.0)
    decline: float = Field(gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "DecisionConfig":
        if self.review >= self.decline:
            raise ValueError(f"review threshold {self.review} must be below decline threshold {self.decline}")
        return self

    def thresholds(self) -> dict[str, float]:
        return {"review": self.review, "decline": self.decline}


class ScorecardConfig(StrictModel):
    """Credit score scaling: `base_score` points at `base_odds` (good:bad), `points_to_double_odds` PDO."""

    base_score: float = 600.0
    base_odds: float = Field(50.0, gt=0.0)
    points_to_double_odds: float = Field(20.0, gt=0.0)


class BatchingConfig(StrictModel):
    max_batch_size: int = Field(256, ge=1, le=65536)
    max_queue_delay_us: int = Field(200, ge=0, le=1_000_000)
    max_queue_size: int = Field(4096, ge=1, description="queued rows beyond which calls are refused")


class IntegrityConfig(StrictModel):
    """What the model's builder recorded about its file, checked before the model is served."""

    model_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the ONNX file (64 lower-case hex digits)"
    )
    holdout_roc_auc: float | None = Field(
        None, ge=0.0, le=1.0, description="the FP32 model's ROC-AUC on the holdout file, as its card records"
    )
    roc_auc_tolerance: float = Field(
        0.005, ge=0.0, lt=1.0, description="largest absolute difference from `holdout_roc_auc` served"
    )


class ChallengerConfig(StrictModel):
    """Another configured model of the same task, with the same inputs, watched against this one (the
    champion): it scores `shadow_share` of the calls in shadow (never answered) and decides `live_share` of
    the cards or applicants (sticky by a hash of the id)."""

    model: str = Field(
        pattern=r"^[a-z][a-z0-9_-]*$", description="name of the challenger: another model in models_dir"
    )
    shadow_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="share of the champion's calls the challenger also scores, off the "
        "hot path; its answers are never returned",
    )
    live_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of card_id / applicant_id hashes whose calls the challenger "
        "decides (Score and Assess; the answer's model names it)",
    )
    min_agreement: float = Field(
        0.95, ge=0.0, le=1.0, description="agreement rate at a threshold below which the alert fires"
    )


class ModelConfig(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str = Field(min_length=1)
    task: ModelTask
    description: str = ""
    onnx_file: str = "model.onnx"
    output_name: str = Field("probabilities", description="the ONNX output holding the probabilities")
    positive_column: int | None = Field(
        None,
        ge=0,
        description="column of the output that is the positive class's probability; default: the last "
        "(column 1 of an [N, 2] pair, column 0 of an [N, 1] probability)",
    )
    label_column: str = Field(description="column of the holdout file holding the 0/1 outcome")
    calibration_file: str = "calibration.parquet"
    holdout_file: str = "holdout.parquet"
    inputs: tuple[InputSpec, ...] = Field(min_length=1)
    decision: DecisionConfig
    scorecard: ScorecardConfig | None = None
    quantization: QuantizationConfig = QuantizationConfig()
    batching: BatchingConfig = BatchingConfig()
    integrity: IntegrityConfig = IntegrityConfig()
    challenger: ChallengerConfig | None = None

    # Set by load_model_config: the folder the file was read from. Not part of the file.
    directory: Path = Field(Path("."), exclude=True)

    @field_validator("inputs")
    @classmethod
    def _unique_inputs(cls, inputs: tuple[InputSpec, ...]) -> tuple[InputSpec, ...]:
        for kind, names in (
            ("feature", [f.name for i in inputs for f in i.features]),
            ("ONNX input", [i.onnx_input for i in inputs]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} names: {', '.join(duplicates)}")
        return inputs

    @model_validator(mode="after")
    def _credit_needs_scorecard(self) -> "ModelConfig":
        if self.task is ModelTask.CREDIT and self.scorecard is None:
            raise ValueError("a credit model needs a scorecard section")
        return self

    @model_validator(mode="after")
    def _challenger_is_another_model(self) -> "ModelConfig":
        if self.challenger is not None and self.challenger.model == self.name:
            raise ValueError(f"challenger.model: '{self.name}' is this model; name another configured model")
        return self

    @property
    def onnx_path(self) -> Path:
        return self.directory / self.onnx_file

    @property
    def calibration_path(self) -> Path:
        return self.directory / self.calibration_file

    @property
    def holdout_path(self) -> Path:
        return self.directory / self.holdout_file

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """Every feature the model reads, in ONNX input order (an [N, F] input's columns in order)."""
        return tuple(f for spec in self.inputs for f in spec.features)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _describe(error: ValidationError, path: Path) -> str:
    """Every problem of the file at once, each with its field and, where it helps, the value given."""
    lines = [f"invalid model config {path}:"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        value = item.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {str(value)[:60]!r})"
        lines.append(f"  {field}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_model_config(path: Path) -> ModelConfig:
    """Read and validate a model config. `path` is the YAML file or the model's folder.

    Raises ConfigError naming the file and each bad field; checks that the files it names exist.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE_NAME
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"model config not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"model config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"model config {path} must be a mapping of fields, got {type(raw).__name__}")
    try:
        config = ModelConfig.model_validate({**raw, "directory": path.parent})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    for field in ("onnx_file", "calibration_file", "holdout_file"):
        file = path.parent / getattr(config, field)
        if not file.is_file():
            raise ConfigError(f"invalid model config {path}:\n  {field}: file not found: {file}")
    return config


def check_challenger(config: ModelConfig, configured: dict[str, ModelConfig]) -> None:
    """ConfigError naming `challenger.model` unless `config`'s challenger is one of the `configured` models,
    of the same task and with the same ONNX inputs (it scores the champion's feature tensors)."""
    if config.challenger is None:
        return
    name = config.challenger.model
    where = f"invalid model config {config.directory / CONFIG_FILE_NAME}:\n  challenger.model"
    other = configured.get(name)
    if other is None:
        served = ", ".join(sorted(n for n in configured if n != config.name)) or "none"
        raise ConfigError(f"{where}: '{name}' is not a configured model (others configured: {served})")
    if other.task is not config.task:
        raise ConfigError(
            f"{where}: '{name}' is a {other.task.value} model; '{config.name}' is {config.task.value}"
        )

    def signature(c: ModelConfig) -> list[tuple[str, str, int]]:
        return [(i.onnx_input, i.dtype, i.width) for i in c.inputs]

    if signature(other) != signature(config):
        raise ConfigError(
            f"{where}: '{name}' has other inputs (name, dtype, width) than '{config.name}': "
            f"{signature(other)} vs {signature(config)}; a challenger scores the champion's feature tensors"
        )
