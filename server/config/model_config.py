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
    FRAUD = "fraud"    # served by FraudScoring: 0-999 risk score, approve / review / decline
    CREDIT = "credit"  # served by CreditScoring: scorecard points, approve / review / decline, reason codes


class InputSpec(StrictModel):
    """One ONNX input: a raw named feature, shape [batch, 1]."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    dtype: Literal["float32", "string"]
    categories: tuple[str, ...] = Field((), description="allowed values of a string input")
    minimum: float | None = Field(None, description="smallest valid value of a float input")
    maximum: float | None = Field(None, description="largest valid value of a float input")
    description: str = ""

    @model_validator(mode="after")
    def _categories_only_for_strings(self) -> "InputSpec":
        if self.dtype == "string" and not self.categories:
            raise ValueError(f"string input '{self.name}' needs a non-empty categories list")
        if self.dtype == "float32" and self.categories:
            raise ValueError(f"float32 input '{self.name}' cannot have categories")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"input '{self.name}': minimum {self.minimum} > maximum {self.maximum}")
        return self


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


class ModelConfig(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str = Field(min_length=1)
    task: ModelTask
    description: str = ""
    onnx_file: str = "model.onnx"
    output_name: str = Field("probabilities", description="ONNX output; column 1 is the positive class")
    label_column: str = Field(description="column of the holdout file holding the 0/1 outcome")
    calibration_file: str = "calibration.parquet"
    holdout_file: str = "holdout.parquet"
    inputs: tuple[InputSpec, ...] = Field(min_length=1)
    decision: DecisionConfig
    scorecard: ScorecardConfig | None = None
    quantization: QuantizationConfig = QuantizationConfig()
    batching: BatchingConfig = BatchingConfig()

    # Set by load_model_config: the folder the file was read from. Not part of the file.
    directory: Path = Field(Path("."), exclude=True)

    @field_validator("inputs")
    @classmethod
    def _unique_inputs(cls, inputs: tuple[InputSpec, ...]) -> tuple[InputSpec, ...]:
        names = [i.name for i in inputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate input names: {', '.join(duplicates)}")
        return inputs

    @model_validator(mode="after")
    def _credit_needs_scorecard(self) -> "ModelConfig":
        if self.task is ModelTask.CREDIT and self.scorecard is None:
            raise ValueError("a credit model needs a scorecard section")
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
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"invalid model config {path}:"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  {field}: {item['msg']}")
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
