"""Each layer's precision as ONNX Runtime actually runs it, read from the quantized graph, not the plan.

ORT's optimizer (serving options) turns a DequantizeLinear -> Gemm -> QuantizeLinear group into one integer
kernel (QGemm, QLinearMatMul) only when the group fits its patterns; a 16-bit activation, a raw MatMul
without a fused bias or a stray Q/DQ leaves a float kernel on dequantized values. So the optimized graph is
saved once per candidate and each layer is found in it by its weight initializer:

- `int8`: an integer kernel with 8-bit activations (QGemm, QLinearMatMul, MatMulIntegerToFloat);
- `int8_dynamic`: per-call activation ranges (DynamicQuantizeMatMul, MatMulInteger);
- `int16_activations`: a float kernel reading 16-bit quantized activations (what INT16 is on CPU);
- `int8_simulated`: a float kernel on dequantized 8-bit weights (fake quantization: accuracy cost, no speed);
- `fp32`: a float kernel on FP32 weights (`input_bits` says whether its input was rounded to 8 bits first,
  as the protected output head's is unless the tuner left it float).
"""

import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import onnx
import onnxruntime as ort

from server.ort_session import latency_session_options

INTEGER_KERNELS = {"QGemm", "QLinearMatMul", "QLinearConv", "MatMulIntegerToFloat"}
DYNAMIC_KERNELS = {"DynamicQuantizeMatMul", "MatMulInteger", "DynamicQuantizeLinear"}
_BITS = {
    onnx.TensorProto.UINT8: 8,
    onnx.TensorProto.INT8: 8,
    onnx.TensorProto.UINT16: 16,
    onnx.TensorProto.INT16: 16,
}


class LayerPrecision(StrEnum):
    INT8 = "int8"
    INT8_DYNAMIC = "int8_dynamic"
    INT16_ACTIVATIONS = "int16_activations"
    INT8_SIMULATED = "int8_simulated"
    FP32 = "fp32"


@dataclass(frozen=True)
class LayerRun:
    layer: str
    kernel: str  # the ORT op that runs it, e.g. QGemm, FusedGemm; "?" if not found
    precision: LayerPrecision
    float_output: bool  # an integer kernel writing float (the tuner's head-input move), or a float kernel
    input_bits: int = 32  # the activation as the kernel reads it: 8 or 16 when quantized, 32 when float


def layer_precisions(
    quantized: Path, preprocessed: onnx.ModelProto, layers: tuple[str, ...]
) -> dict[str, LayerRun]:
    """How each of `layers` (names in the pre-processed graph) runs in `quantized`."""
    weights = {n.name: n.input[1] for n in preprocessed.graph.node if n.name in layers and len(n.input) > 1}
    qdq = onnx.load(str(quantized))
    optimized = _optimized(quantized)
    runs = {}
    for layer in layers:
        weight = weights.get(layer, "")
        node = _find(optimized, layer, weight)
        runs[layer] = _classify(layer, node, _find(qdq, layer, weight), qdq)
    return runs


def _optimized(path: Path) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="riskserve-optimized-") as scratch:
        options = latency_session_options()
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def _find(model: onnx.ModelProto, layer: str, weight: str) -> onnx.NodeProto | None:
    """The node computing `layer`: by name (ORT keeps it, or prefixes "fused "), else by its weight."""
    names = {layer, f"fused {layer}"}
    weight_names = {weight, f"{weight}_quantized"} - {""}
    readers = weight_names | {
        n.output[0]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in weight_names
    }
    for node in model.graph.node:
        if node.name in names:
            return node
    for node in model.graph.node:
        if node.op_type not in ("DequantizeLinear", "QuantizeLinear") and readers & set(node.input):
            return node
    return None


def _classify(
    layer: str, node: onnx.NodeProto | None, qdq_node: onnx.NodeProto | None, qdq: onnx.ModelProto
) -> LayerRun:
    if node is None:
        return LayerRun(layer, "?", LayerPrecision.FP32, True)
    if node.op_type in DYNAMIC_KERNELS:
        return LayerRun(layer, node.op_type, LayerPrecision.INT8_DYNAMIC, True, 8)
    if node.op_type in INTEGER_KERNELS:
        float_output = node.op_type == "QGemm" and len(node.input) < 8  # no y_scale: float output
        return LayerRun(layer, node.op_type, LayerPrecision.INT8, float_output, 8)
    input_bits = _bits(qdq_node.input[0], qdq) if qdq_node is not None else None
    weight_bits = _bits(qdq_node.input[1], qdq) if qdq_node is not None and len(qdq_node.input) > 1 else None
    if input_bits == 16:
        precision = LayerPrecision.INT16_ACTIVATIONS
    elif weight_bits is not None:
        precision = LayerPrecision.INT8_SIMULATED
    else:
        precision = LayerPrecision.FP32
    return LayerRun(layer, node.op_type, precision, True, input_bits or 32)


def _bits(tensor: str, model: onnx.ModelProto) -> int | None:
    """Bits of the quantized value behind `tensor` in the QDQ graph (None: it is not a DequantizeLinear's)."""
    producer = {out: n for n in model.graph.node for out in n.output}
    dq = producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
        return None
    zero_points = {init.name: init.data_type for init in model.graph.initializer}
    return _BITS.get(zero_points.get(dq.input[2], 0))
