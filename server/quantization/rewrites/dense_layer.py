"""A dense layer (MatMul [+ Add] or Gemm with constant weights) seen as y = x @ W + b, its input split into
the parts a Concat joined, and a way to write it back with other weights, bias and input."""

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from server.quantization.rewrites.graph_edit import (
    ML_DOMAIN,
    GraphIndex,
    add_initializer,
    attribute,
    fresh_name,
)


@dataclass
class DenseLayer:
    nodes: list[onnx.NodeProto]  # the MatMul and its bias Add, or the Gemm
    name: str  # the MatMul's or Gemm's node name (kept, so configured layer names stay valid)
    input: str
    output: str  # the Add's or Gemm's output
    weights: np.ndarray  # [K, H], float64
    bias: np.ndarray  # [H], float64


@dataclass(frozen=True)
class InputPart:
    tensor: str  # one input of the Concat feeding the layer (or the layer's input itself)
    width: int  # its columns: the rows of W it multiplies


def dense_layers(index: GraphIndex) -> list[DenseLayer]:
    """Every MatMul (with its bias Add if it has one) and Gemm whose weights and bias are constants."""
    layers = []
    for node in index.model.graph.node:
        if node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        weights = index.array(node.input[1])
        if weights is None or weights.ndim != 2:
            continue
        if node.op_type == "MatMul":
            layers.append(_matmul_layer(index, node, weights.astype(np.float64)))
        elif node.op_type == "Gemm" and not attribute(node, "transA", 0):
            layer = _gemm_layer(index, node, weights.astype(np.float64))
            if layer is not None:
                layers.append(layer)
    return layers


def _matmul_layer(index: GraphIndex, node: onnx.NodeProto, weights: np.ndarray) -> DenseLayer:
    add = index.only_consumer(node.output[0])
    if add is not None and add.op_type == "Add":
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        bias = index.array(other)
        if bias is not None and bias.size == weights.shape[1]:
            flat = bias.astype(np.float64).reshape(-1)
            return DenseLayer([node, add], node.name, node.input[0], add.output[0], weights, flat)
    zero = np.zeros(weights.shape[1])
    return DenseLayer([node], node.name, node.input[0], node.output[0], weights, zero)


def _gemm_layer(index: GraphIndex, node: onnx.NodeProto, weights: np.ndarray) -> DenseLayer | None:
    if attribute(node, "transB", 0):
        weights = weights.T
    weights = weights * float(attribute(node, "alpha", 1.0))
    bias = np.zeros(weights.shape[1])
    if len(node.input) > 2 and node.input[2]:
        constant = index.array(node.input[2])
        if constant is None or constant.size not in (1, weights.shape[1]):
            return None
        bias = np.broadcast_to(constant.astype(np.float64).reshape(-1), bias.shape) * float(
            attribute(node, "beta", 1.0)
        )
    return DenseLayer([node], node.name, node.input[0], node.output[0], weights, bias)


def input_parts(index: GraphIndex, layer: DenseLayer) -> tuple[onnx.NodeProto | None, list[InputPart]] | None:
    """The Concat(axis=1) feeding `layer` (None if it reads one tensor) and its parts with their widths;
    None when a width is unknown or they do not add up to W's rows."""
    concat = index.producer.get(layer.input)
    axis = attribute(concat, "axis") if concat is not None and concat.op_type == "Concat" else None
    if axis in (1, -1) and index.only_consumer(layer.input) is layer.nodes[0]:
        tensors = list(concat.input)
    else:
        concat, tensors = None, [layer.input]
    widths = [part_width(index, tensor) for tensor in tensors]
    if None in widths or sum(widths) != layer.weights.shape[0]:  # type: ignore[arg-type]
        return None
    return concat, [InputPart(t, w) for t, w in zip(tensors, widths, strict=True)]  # type: ignore[arg-type]


def part_width(index: GraphIndex, tensor: str) -> int | None:
    """Columns of a 2-D tensor: from shape inference, else from the exporter op that made it."""
    width = index.width(tensor)
    if width:
        return width
    node = index.producer.get(tensor)
    if node is None:
        return None
    if node.domain == ML_DOMAIN and node.op_type in ("Scaler", "Normalizer", "Imputer", "Binarizer"):
        return part_width(index, node.input[0])
    if node.domain == ML_DOMAIN and node.op_type == "OneHotEncoder":
        return len(attribute(node, "cats_strings", []) or attribute(node, "cats_int64s", []))
    if node.op_type == "Reshape":
        shape = index.array(node.input[1])
        return int(shape[-1]) if shape is not None and len(shape) == 2 and shape[-1] > 0 else None
    if node.op_type == "Concat" and attribute(node, "axis") in (1, 2, -1):
        widths = [part_width(index, name) for name in node.input]
        return None if None in widths else sum(widths)  # type: ignore[arg-type]
    return None


def dense_nodes(
    model: onnx.ModelProto,
    layer: DenseLayer,
    new_input: str | None,
    weights: np.ndarray,
    bias: np.ndarray,
    extra: str | None = None,
) -> list[onnx.NodeProto]:
    """The nodes computing y = new_input @ weights + bias (+ extra) into `layer`'s output tensor, under the
    layer's name (configured layer names stay valid). `new_input` None: no dense part is left, y = extra + b.
    The caller swaps them for `layer.nodes` (graph_edit.rebuild)."""
    bias_name = add_initializer(model, f"{layer.name}_folded_bias", bias.astype(np.float32))
    out = layer.output
    if new_input is None:
        return [helper.make_node("Add", [extra, bias_name], [out], name=f"{layer.name}_bias")]
    nodes = []
    dense_out = fresh_name(model, f"{out}_dense") if extra is not None else out
    weights_name = add_initializer(model, f"{layer.name}_folded_weights", weights.astype(np.float32))
    if layer.nodes[0].op_type == "Gemm":
        nodes.append(
            helper.make_node("Gemm", [new_input, weights_name, bias_name], [dense_out], name=layer.name)
        )
    else:
        product = fresh_name(model, f"{out}_product")
        add_name = layer.nodes[1].name if len(layer.nodes) > 1 else f"{layer.name}_bias"
        nodes.append(helper.make_node("MatMul", [new_input, weights_name], [product], name=layer.name))
        nodes.append(helper.make_node("Add", [product, bias_name], [dense_out], name=add_name))
    if extra is not None:
        nodes.append(helper.make_node("Add", [dense_out, extra], [out], name=f"{layer.name}_embeddings"))
    return nodes
