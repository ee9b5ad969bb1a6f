"""Quantization section of a model's config: how to build the INT8 model and what accuracy it must keep."""

from enum import StrEnum

from pydantic import Field, model_validator

from server.config._base import StrictModel


class QuantizationMode(StrEnum):
    STATIC = "static"  # calibrated QDQ: batch-invariant, the only mode allowed for batched serving
    DYNAMIC = "dynamic"  # per-batch activation ranges: a row's score depends on its batch mates
    NONE = "none"  # serve FP32


class CalibrationMethod(StrEnum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class QuantType(StrEnum):
    UINT8 = "uint8"
    INT8 = "int8"


class FallbackPrecision(StrEnum):
    FP32 = "fp32"  # a sensitive layer is not quantized at all
    INT16 = "int16"  # a sensitive layer keeps QDQ but with 16-bit activations (finer, still not FP32)


class AccuracyBudget(StrictModel):
    """What the INT8 model must keep relative to FP32 on the holdout set. Defaults follow MLPerf's 99.9 %."""

    min_auc_ratio: float = Field(0.999, gt=0.0, le=1.0, description="INT8 ROC-AUC / FP32 ROC-AUC, at least")
    max_decision_flip_rate: float = Field(
        0.005, ge=0.0, le=1.0, description="share of holdout rows whose decision changes, at most"
    )
    min_distinct_score_ratio: float = Field(
        0.9, ge=0.0, le=1.0, description="distinct INT8 scores / distinct FP32 scores, at least"
    )


class QuantizationConfig(StrictModel):
    mode: QuantizationMode = QuantizationMode.STATIC
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    calibration_rows: int = Field(2000, ge=100, description="rows of the calibration file used, at most")
    min_calibration_rows: int = Field(200, ge=1, description="fewer usable calibration rows is an error")
    ignored_columns: tuple[str, ...] = Field(
        (), description="data-file columns that are not model inputs and may be present (ids, timestamps)"
    )
    op_types: tuple[str, ...] = Field(
        ("MatMul", "Gemm", "Relu"),
        min_length=1,
        description="ONNX ops to quantize; with Relu the quantizer folds it into the layer before it",
    )
    per_channel: bool = False
    reduce_range: bool | None = Field(None, description="None: chosen from the CPU's flags (VNNI or not)")
    activation_type: QuantType = QuantType.UINT8
    weight_type: QuantType = QuantType.INT8
    protect_output: bool = Field(
        True, description="keep the last Gemm/MatMul and everything after it in FP32 (score resolution)"
    )
    int16_layers: tuple[str, ...] = Field((), description="node names whose activations use 16-bit QDQ")
    exclude_layers: tuple[str, ...] = Field((), description="node names always kept in FP32")
    max_fallback_layers: int = Field(
        8, ge=0, description="tuner moves at most: layers out of INT8, or the head input left float"
    )
    fallback_precision: FallbackPrecision = Field(
        FallbackPrecision.FP32, description="where the tuner moves a sensitive layer"
    )
    speed_batch_sizes: tuple[int, ...] = Field((1, 32, 256), description="batch sizes timed in the report")
    speed_seconds: float = Field(
        0.25, ge=0.0, description="time spent timing each model at each batch size; 0 skips timing"
    )
    budget: AccuracyBudget = AccuracyBudget()

    @model_validator(mode="after")
    def _int16_needs_static(self) -> "QuantizationConfig":
        if self.int16_layers and self.mode is not QuantizationMode.STATIC:
            raise ValueError("int16_layers needs mode: static")
        return self
