"""Rewrites of exporter-specific nodes into the standard ops ORT's quantizer and optimizer understand.

- skl2onnx's `FeatureVectorizer` (emitted for a pipeline over many numeric inputs) carries no output shape,
  so ORT never fuses MatMul + Add into Gemm after it and a Q/DQ pair lands on every raw MatMul output. A
  `Concat(axis=1)` of the same columns (non-float inputs cast to float, as FeatureVectorizer does) is the
  same tensor with a known shape.
- `Cast` to the type its input already has (skl2onnx's `cast_input`) is removed.
"""

import onnx
from onnx import TensorProto, helper

from server.quantization.rewrites.graph_edit import ML_DOMAIN, GraphIndex, attribute, fresh_name, rebuild
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
