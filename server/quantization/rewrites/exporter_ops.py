"""Rewrites of exporter-specific nodes into the standard ops ORT's quantizer and optimizer understand.

- skl2onnx's `FeatureVectorizer` (emitted for a pipeline over many numeric inputs) carries no output shape,
  so ORT never fuses MatMul + Add into Gemm after it and a Q/DQ pair lands on every raw MatMul output. A
  `Concat(axis=1)` of the same columns (non-float inputs cast to float, as FeatureVectorizer does) is the
  same tensor with a known shape.
- `Cast` to the type its input already has (skl2onnx's `cast_input`) is removed.
- Initializers that tf2onnx also lists as graph inputs (overridable constants) become plain initializers.
- skl2onnx's `Normalizer` (row-wise L1, L2 or max norm) becomes the standard ops computing it
  (ReduceL1/ReduceL2/ReduceMax, Div): ORT's calibrator recorded a wrong range for the ml op's output
  (its minimum as 3e-6 where the values reach -0.86), which made every INT8 attempt of such a model fail.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper

from server.quantization.rewrites.graph_edit import (
    ML_DOMAIN,
    GraphIndex,
    add_initializer,
    attribute,
    fresh_name,
    rebuild,
)
from server.quantization.rewrites.records import Change


def feature_vectorizer_to_concat(model: onnx.ModelProto) -> list[Change]:
    """Replace each FeatureVectorizer whose inputs have the declared widths by Concat(axis=1)."""
    index = GraphIndex(model)
    changes, removed, added = [], [], []
    for node in model.graph.node:
        if node.domain != ML_DOMAIN or node.op_type != "FeatureVectorizer":
            continue
        widths = list(attribute(node, "inputdimensions", []))
        actual = [index.width(name) for name in node.input]
        if len(widths) != len(node.input) or actual != widths:
            continue  # FeatureVectorizer pads or truncates inputs of another width: not a plain Concat
        inputs = []
        for name in node.input:
            if index.elem_type(name) == TensorProto.FLOAT:
                inputs.append(name)
                continue
            cast = fresh_name(model, f"{name}_as_float")
            added.append(helper.make_node("Cast", [name], [cast], name=cast, to=TensorProto.FLOAT))
            inputs.append(cast)
        added.append(helper.make_node("Concat", inputs, list(node.output), name=node.name, axis=1))
        removed.append(node)
        changes.append(
            Change(
                "feature_vectorizer_to_concat",
                (node.name,),
                f"FeatureVectorizer over {len(widths)} inputs ({sum(widths)} columns) -> Concat(axis=1)",
            )
        )
    if changes:
        rebuild(model, removed, added)
    return changes


def drop_identity_casts(model: onnx.ModelProto) -> list[Change]:
    """Remove each Cast whose input already has the target type (its readers read the input instead)."""
    index = GraphIndex(model)
    changes, removed = [], []
    for node in model.graph.node:
        if node.op_type != "Cast" or node.domain not in ("", "ai.onnx"):
            continue
        source, target = node.input[0], node.output[0]
        if index.elem_type(source) != attribute(node, "to") or target in index.outputs:
            continue
        for reader in index.consumers.get(target, []):
            for position, name in enumerate(reader.input):
                if name == target:
                    reader.input[position] = source
        removed.append(node)
        type_name = TensorProto.DataType.Name(attribute(node, "to"))
        changes.append(Change("drop_identity_cast", (node.name,), f"Cast to {type_name} of a {type_name}"))
    if changes:
        rebuild(model, removed, [])
    return changes


_NORMS = {"L1": "ReduceL1", "L2": "ReduceL2", "MAX": "ReduceMax"}


def normalizer_to_standard_ops(model: onnx.ModelProto) -> list[Change]:
    """Replace each ai.onnx.ml Normalizer by y = x / max(norm(x), tiny) per row (a zero row stays zero)."""
    index = GraphIndex(model)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    changes, removed, added = [], [], []
    for node in model.graph.node:
        if node.domain != ML_DOMAIN or node.op_type != "Normalizer" or index.elem_type(node.input[0]) != 1:
            continue
        norm = attribute(node, "norm", b"MAX")
        norm = norm.decode() if isinstance(norm, bytes) else str(norm)
        if norm not in _NORMS:
            continue
        source, out = node.input[0], node.output[0]
        tiny = add_initializer(model, f"{node.name}_tiny", np.array(np.finfo(np.float32).tiny, np.float32))
        reduced, safe = fresh_name(model, f"{out}_norm"), fresh_name(model, f"{out}_safe_norm")
        if opset >= 18:  # Reduce* take their axes as an input from opset 18 on
            axes = add_initializer(model, f"{node.name}_axes", np.array([1], np.int64))
            reduce = helper.make_node(_NORMS[norm], [source, axes], [reduced], name=reduced, keepdims=1)
        else:
            reduce = helper.make_node(_NORMS[norm], [source], [reduced], name=reduced, keepdims=1, axes=[1])
        added += [
            reduce,
            helper.make_node("Max", [reduced, tiny], [safe], name=safe),
            helper.make_node("Div", [source, safe], [out], name=node.name),
        ]
        removed.append(node)
        changes.append(
            Change("normalizer_to_standard_ops", (node.name,), f"Normalizer ({norm}) -> {_NORMS[norm]}, Div")
        )
    if changes:
        rebuild(model, removed, added)
    return changes


def drop_initializer_inputs(model: onnx.ModelProto) -> list[Change]:
    """Remove graph inputs that are initializers: constants, not inputs the server feeds."""
    constants = {init.name for init in model.graph.initializer}
    listed = [i for i in model.graph.input if i.name in constants]
    if not listed:
        return []
    kept = [i for i in model.graph.input if i.name not in constants]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    names = tuple(i.name for i in listed)
    return [Change("drop_initializer_inputs", names, f"{len(names)} initializer(s) listed as graph inputs")]
