"""Pre-process and quantize an FP32 graph with ONNX Runtime's tools, per a typed recipe.

Calibration (running the FP32 graph over the calibration data to collect activation ranges) happens once
per pipeline run: the ranges are written to a JSON file and every later re-quantization by the tuner reuses
them. Excluding a layer or widening it to 16 bits does not change the FP32 activations being measured.
"""

import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx
import onnx.numpy_helper
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
from onnxruntime.quantization.shape_inference import quant_pre_process

from server.config.quantization_config import CalibrationMethod as ConfigMethod
from server.config.quantization_config import QuantizationConfig, QuantizationMode
from server.config.quantization_config import QuantType as ConfigQuantType
from server.quantization.calibration_data import FeatureBatchReader
from server.quantization.float_input import keep_input_float
from server.quantization.rewrites.ml_types import type_ml_outputs

log = logging.getLogger(__name__)

_METHODS = {
    ConfigMethod.MINMAX: CalibrationMethod.MinMax,
    ConfigMethod.ENTROPY: CalibrationMethod.Entropy,
    ConfigMethod.PERCENTILE: CalibrationMethod.Percentile,
}
_TYPES = {ConfigQuantType.UINT8: QuantType.QUInt8, ConfigQuantType.INT8: QuantType.QInt8}
ENTROPY_HISTOGRAM_BINS = 2048  # ORT's default for percentile; entropy's search needs more bins than 128
_TYPES_16 = {ConfigQuantType.UINT8: QuantType.QUInt16, ConfigQuantType.INT8: QuantType.QInt16}


@dataclass(frozen=True)
class QuantizationRecipe:
    """Which layers stay FP32 and which get 16-bit activations; everything else of `op_types` is INT8.

    `float_input_layer`: a (FP32) layer whose activation input is left float, without the QuantizeLinear ->
    DequantizeLinear pair in front of it (static only; see float_input.py).
    """

    fp32_layers: tuple[str, ...] = ()
    int16_layers: tuple[str, ...] = ()
    int16_inputs: dict[str, str] = field(default_factory=dict)  # layer -> its activation input tensor
    float_input_layer: str | None = None

    def with_fp32(self, layer: str) -> "QuantizationRecipe":
        return replace(self, fp32_layers=(*self.fp32_layers, layer))

    def with_int16(self, layer: str, activation: str) -> "QuantizationRecipe":
        inputs = {**self.int16_inputs, layer: activation}
        return replace(self, int16_layers=(*self.int16_layers, layer), int16_inputs=inputs)

    def with_float_input(self, layer: str) -> "QuantizationRecipe":
        return replace(self, float_input_layer=layer)


def preprocess(fp32_path: Path, output_path: Path) -> None:
    """ORT's quantization pre-processing (graph optimization, ONNX shape inference), made to see through
    skl2onnx's ai.onnx.ml front end.

    Symbolic shape inference is skipped: it fails ("Incomplete symbolic shape inference") on the
    ai.onnx.ml ops skl2onnx emits (OneHotEncoder, Scaler, ArrayFeatureExtractor) and string inputs. ONNX's
    own shape inference leaves the Scaler's output untyped, and an untyped tensor is silently skipped by the
    quantizer ("failed to infer the type of tensor"): the first layer would get weight-only INT8. So the
    ML ops' outputs are typed (and shaped, for element-wise ones) first. Known 2-D shapes also let ORT's
    optimizer fuse MatMul + Add into Gemm, which quantizes to one QGemm instead of QLinearMatMul + Add.
    """
    model = onnx.load(str(fp32_path))
    type_ml_outputs(model)
    typed_path = output_path.with_name(output_path.stem + ".typed.onnx")
    onnx.save(onnx.shape_inference.infer_shapes(model), str(typed_path))
    quant_pre_process(str(typed_path), str(output_path), skip_symbolic_shape=True)
    typed_path.unlink()
    model = onnx.load(str(output_path))
    retyped = type_ml_outputs(model)
    if _flatten_gemm_biases(model) or retyped:
        onnx.save(onnx.shape_inference.infer_shapes(model), str(output_path))


def _flatten_gemm_biases(model: onnx.ModelProto) -> bool:
    """Give each Gemm a 1-D bias: [1, N] -> [N] (same broadcast result); True if any was changed.

    skl2onnx's intercepts are [1, N], and the fused Gemm keeps that shape. ORT's per-channel weight-scale
    adjustment for int32 biases indexes the bias per output channel and fails on a 2-D one ("truth value
    of an array ... is ambiguous"), so `per_channel: true` would crash without this.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    changed = False
    for node in graph.node:
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in initializers:
            continue
        bias = initializers[node.input[2]]
        if len(bias.dims) == 2 and bias.dims[0] == 1:
            flat = onnx.numpy_helper.to_array(bias).reshape(-1)
            bias.CopyFrom(onnx.numpy_helper.from_array(flat, bias.name))
            changed = True
    return changed


def _calibrate_entropy(
    preprocessed_path: Path, config: QuantizationConfig, reader: FeatureBatchReader, ranges_path: Path
) -> None:
    """Entropy (KL) calibration with a histogram finer than the 8-bit grid, ranges saved to `ranges_path`.

    `quantize_static` builds its entropy calibrator with 128 histogram bins and 128 quantized bins, which
    leaves the KL search a single candidate, the full range: "entropy" would silently equal minmax.
    """
    with tempfile.TemporaryDirectory(prefix="riskserve-entropy-") as scratch:
        calibrator = create_calibrator(
            preprocessed_path,
            list(config.op_types),
            augmented_model_path=str(Path(scratch) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": ENTROPY_HISTOGRAM_BINS, "num_quantized_bins": 128},
        )
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), ranges_path)


def quantize(
    preprocessed_path: Path,
    output_path: Path,
    recipe: QuantizationRecipe,
    config: QuantizationConfig,
    reduce_range: bool,
    ranges_path: Path,
    calibration_reader: FeatureBatchReader | None,
) -> bool:
    """Write the quantized model to `output_path`. Returns True if this call ran calibration.

    Static mode calibrates on the first call (ranges saved to `ranges_path`), later calls reuse the ranges.
    Dynamic mode needs no calibration: activation ranges are computed per batch at run time.
    """
    if config.mode is QuantizationMode.DYNAMIC:
        quantize_dynamic(
            str(preprocessed_path),
            str(output_path),
            op_types_to_quantize=list(config.op_types),
            per_channel=config.per_channel,
            reduce_range=reduce_range,
            weight_type=_TYPES[config.weight_type],
            # quantize_dynamic first rewrites each Gemm as MatMul + Add named `<gemm>_MatMul`: excluding
            # only the Gemm's name would quantize the protected head anyway.
            nodes_to_exclude=[n for name in recipe.fp32_layers for n in (name, f"{name}_MatMul")],
        )
        return False
    calibrates = not ranges_path.is_file()
    if calibrates and calibration_reader is None:
        raise ValueError("static quantization needs calibration data on its first run")
    if calibration_reader is not None:
        calibration_reader.rewind()
    if calibrates and config.calibration_method is ConfigMethod.ENTROPY:
        _calibrate_entropy(preprocessed_path, config, calibration_reader, ranges_path)
        calibration_reader.rewind()
    overrides = {
        tensor: [{"quant_type": _TYPES_16[config.activation_type]}] for tensor in recipe.int16_inputs.values()
    }
    quantize_static(
        str(preprocessed_path),
        str(output_path),
        calibration_reader if calibrates else None,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(config.op_types),
        per_channel=config.per_channel,
        reduce_range=reduce_range,
        activation_type=_TYPES[config.activation_type],
        weight_type=_TYPES[config.weight_type],
        nodes_to_exclude=list(recipe.fp32_layers),
        calibrate_method=_METHODS[config.calibration_method],
        extra_options={"TensorQuantOverrides": overrides} if overrides else None,
        calibration_cache_path=ranges_path,
    )
    if calibrates:
        log.info("event=calibrated method=%s ranges=%s", config.calibration_method.value, ranges_path.name)
    if recipe.float_input_layer is not None:
        model = onnx.load(str(output_path))
        if keep_input_float(model, onnx.load(str(preprocessed_path)), recipe.float_input_layer):
            onnx.save(model, str(output_path))
        else:
            log.info("event=float_input_noop layer=%s reason=input_not_quantized", recipe.float_input_layer)
    return calibrates
