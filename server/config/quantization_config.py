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


class Objective(StrEnum):
    """What INT8 must buy over FP32 to be served (measured side by side, as served)."""

    BALANCED = "balanced"  # latency at batch 1 and throughput at max_batch_size both not worse than FP32
    LATENCY = "latency"  # faster than FP32 at batch 1, beyond measurement noise
    THROUGHPUT = "throughput"  # faster than FP32 at the model's batching.max_batch_size, beyond noise
    SIZE = "size"  # a smaller model file than FP32's (no timing needed)


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
    speed_batch_sizes: tuple[int, ...] = Field(
        (1, 32, 256), description="batch sizes timed in the report (1 and max_batch_size always are)"
    )
    speed_seconds: float = Field(
        0.25,
        ge=0.0,
        description="time spent timing each model at each batch size; 0 skips timing (then only objective "
        "size can be shown to pay)",
    )
    budget: AccuracyBudget = AccuracyBudget()
    objective: Objective = Field(
        Objective.BALANCED,
        description="what INT8 must buy to be served: balanced (latency and throughput not worse than "
        "FP32), latency (faster at batch 1), throughput (faster at max_batch_size) or size (smaller file)",
    )
    speed_tolerance: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="smallest relative speed difference taken as real; the spread of the per-round ratios "
        "widens it when the cores are noisier",
    )
    gate_fraction: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="share of the holdout rows (stratified by label) the gate judges on; the tuner chooses "
        "on the rest",
    )
    min_positives: int = Field(
        50, ge=1, description="fewer positives in the gate's rows is insufficient evidence (FP32 served)"
    )

    @model_validator(mode="after")
    def _int16_needs_static(self) -> "QuantizationConfig":
        if self.int16_layers and self.mode is not QuantizationMode.STATIC:
            raise ValueError("int16_layers needs mode: static")
        return self

    @property
    def required_calibration_rows(self) -> int:
        """Rows a calibration file needs at least (at most calibration_rows are used)."""
        return min(self.min_calibration_rows, self.calibration_rows)
