"""Fold the linear part of a scikit-learn front end into the first dense layer.

- A `Scaler` is y = (x - offset) * scale: feeding W's rows it becomes x @ (scale * W) + (b - (offset *
  scale) @ W), one op fewer and no float pass over the columns.
- A one-hot encoding feeding W's rows selects one of those rows per categorical input: the product is the
  sum of the selected rows. `OneHotEncoder` -> `Concat` -> `Reshape` becomes `LabelEncoder` (category ->
  row of a stacked table, an unknown category -> a zero row, as `zeros=1` gives) -> one `Gather` ->
  `ReduceSum`, added to the numeric part's product. The dense layer then multiplies only numeric columns.

  A gathered row costs H float copies per categorical input, its one-hot columns C x H multiply-adds in
  the layer: the gather pays only for wide encodings (FP32, H 512, batch 256: 0.64x at 32 categories,
  1.72x at 128, 3.2x at 512; INT8 multiply-adds are cheaper still), so it is applied only when the
  encodings average at least GATHER_MIN_CATEGORIES categories, and reported as skipped otherwise.

Folded weights are computed in float64 and stored as float32; canonicalize.py checks every fold's FP32
scores against the original's and drops a fold that moves them.
"""

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper

from server.quantization.rewrites.dense_layer import (
    DenseLayer,
    InputPart,
    dense_layers,
    dense_nodes,
    input_parts,
)
from server.quantization.rewrites.graph_edit import (
    ML_DOMAIN,
    GraphIndex,
    add_initializer,
    attribute,
    fresh_name,
    ml_opset,
    rebuild,
)
from server.quantization.rewrites.records import Change

GATHER_MIN_CATEGORIES = 128  # mean categories per one-hot input from which a row gather beats the columns


def fold_scalers(model: onnx.ModelProto) -> list[Change]:
    """Fold every Scaler that feeds only a dense layer's input (directly or through its Concat)."""
    changes: list[Change] = []
    while (change := _fold_one_scaler_layer(model)) is not None:
        changes.append(change)
    return changes


def onehot_to_gather(model: onnx.ModelProto) -> list[Change]:
    """Replace one-hot encodings feeding a dense layer by a gather of that layer's weight rows."""
    changes: list[Change] = []
    skipped: set[str] = set()
    while (change := _gather_one_layer(model, skipped)) is not None:
        changes.append(change)
        skipped.update(change.nodes if change.skipped else ())
    return changes


def _layers_with_parts(
    index: GraphIndex,
) -> Iterator[tuple[DenseLayer, onnx.NodeProto | None, list[InputPart]]]:
    """(layer, its input Concat, the Concat's parts) for each dense layer fed by a Concat of parts."""
    for layer in dense_layers(index):
        found = input_parts(index, layer)
        if found is not None:
            yield layer, *found


def _fold_one_scaler_layer(model: onnx.ModelProto) -> Change | None:
    index = GraphIndex(model)
    for layer, concat, parts in _layers_with_parts(index):
        weights, bias, folded, tensors, row = layer.weights.copy(), layer.bias.copy(), [], [], 0
        for part in parts:
            scaler = _only_scaler(index, part.tensor)
            source = scaler.input[0] if scaler is not None else ""
            if scaler is not None and index.elem_type(source) == TensorProto.FLOAT:
                offset = np.broadcast_to(
                    np.asarray(attribute(scaler, "offset", [0.0]), np.float64), part.width
                )
                scale = np.broadcast_to(np.asarray(attribute(scaler, "scale", [1.0]), np.float64), part.width)
                block = weights[row : row + part.width]
                bias -= (offset * scale) @ block
                weights[row : row + part.width] = scale[:, None] * block
                tensors.append(source)
                folded.append(scaler.name)
            else:
                tensors.append(part.tensor)
            row += part.width
        if not folded:
            continue
        new_input = _joined(model, concat, tensors)
        rebuild(model, layer.nodes, dense_nodes(model, layer, new_input, weights, bias))
        detail = f"{len(folded)} Scaler(s) folded into the weights and bias of {layer.name}"
        return Change("fold_scaler", tuple(folded), detail)
    return None


def _gather_one_layer(model: onnx.ModelProto, skipped: set[str]) -> Change | None:
    index = GraphIndex(model)
    for layer, concat, parts in _layers_with_parts(index):
        encoders_by_part = [_encoders(index, part) for part in parts]
        encoders = [e for es in encoders_by_part for e in es]
        if not encoders or encoders[0].name in skipped:
            continue
        mean = sum(len(_categories(e)) for e in encoders) / len(encoders)
        names = tuple(e.name for e in encoders)
        if mean < GATHER_MIN_CATEGORIES:
            why = (
                f"{len(encoders)} one-hot encoding(s) of {mean:.1f} categories on average: gathering "
                f"{layer.weights.shape[1]}-wide rows of {layer.name} costs more than their columns in it "
                f"(pays from about {GATHER_MIN_CATEGORIES})"
            )
            return Change("onehot_to_gather", names, f"one-hot encodings feeding {layer.name}", why)
        if not _can_encode(model):
            continue
        tables, indices, added, numeric_rows, tensors, row, offset = [], [], [], [], [], 0, 0
        for part, part_encoders in zip(parts, encoders_by_part, strict=True):
            if not part_encoders:
                numeric_rows.extend(range(row, row + part.width))
                tensors.append(part.tensor)
                row += part.width
                continue
            for encoder in part_encoders:
                categories = _categories(encoder)
                block = layer.weights[row : row + len(categories)]
                tables.append(np.vstack([block, np.zeros((1, block.shape[1]))]))  # last row: unknown
                added.append(_label_encoder(model, encoder, categories, offset))
                indices.append(added[-1].output[0])
                offset += len(categories) + 1
                row += len(categories)
        gather_nodes = _gathered_sum(model, layer.name, np.vstack(tables), indices)
        added.extend(gather_nodes)
        new_input = _joined(model, concat, tensors) if tensors else None
        weights = layer.weights[numeric_rows]
        added.extend(dense_nodes(model, layer, new_input, weights, layer.bias, gather_nodes[-1].output[0]))
        rebuild(model, [*layer.nodes, *encoders], added)
        columns = offset - len(encoders)
        detail = (
            f"{len(encoders)} one-hot encoding(s) ({columns} columns) feeding {layer.name} -> one Gather of "
            f"its weight rows; {layer.name} multiplies the {len(numeric_rows)} numeric columns"
        )
        return Change("onehot_to_gather", names, detail)
    return None


def _only_scaler(index: GraphIndex, tensor: str) -> onnx.NodeProto | None:
    node = index.producer.get(tensor)
    if node is None or node.domain != ML_DOMAIN or node.op_type != "Scaler":
        return None
    return node if index.only_consumer(tensor) is not None else None


def _joined(model: onnx.ModelProto, concat: onnx.NodeProto | None, tensors: list[str]) -> str:
    """The dense input made of `tensors`: the tensor itself, or the original Concat with new inputs."""
    if concat is None or len(tensors) == 1:
        return tensors[0]
    del concat.input[:]
    concat.input.extend(tensors)
    for attr in concat.attribute:
        if attr.name == "axis":
            attr.i = 1
    return concat.output[0]


def _encoders(index: GraphIndex, part: InputPart) -> list[onnx.NodeProto]:
    """The OneHotEncoders (zeros=1, one [N, 1] input each) that make `part`, in column order; [] if other."""
    node = index.producer.get(part.tensor)
    if node is not None and node.op_type == "Reshape" and index.only_consumer(node.output[0]) is not None:
        node = index.producer.get(node.input[0])
    if node is not None and node.op_type == "Concat" and index.only_consumer(node.output[0]) is not None:
        encoders = [index.producer.get(name) for name in node.input]
    else:
        encoders = [node]
    for encoder in encoders:
        if encoder is None or encoder.domain != ML_DOMAIN or encoder.op_type != "OneHotEncoder":
            return []
        dims = index.dims(encoder.input[0])
        one_column = dims is not None and len(dims) == 2 and dims[1] == 1
        if (
            attribute(encoder, "zeros", 1) != 1
            or not one_column
            or index.only_consumer(encoder.output[0]) is None
        ):
            return []
    if sum(len(_categories(e)) for e in encoders) != part.width:  # type: ignore[arg-type]
        return []
    return encoders  # type: ignore[return-value]


def _categories(encoder: onnx.NodeProto) -> list:
    return list(attribute(encoder, "cats_strings", []) or attribute(encoder, "cats_int64s", []))


def _can_encode(model: onnx.ModelProto) -> bool:
    """LabelEncoder with keys and values needs ai.onnx.ml 2; raise the import unless a v1 LabelEncoder is
    already in the graph (its attributes differ)."""
    if ml_opset(model) >= 2:
        return True
    if any(n.domain == ML_DOMAIN and n.op_type == "LabelEncoder" for n in model.graph.node):
        return False
    for opset in model.opset_import:
        if opset.domain == ML_DOMAIN:
            opset.version = 2
    return True


def _label_encoder(
    model: onnx.ModelProto, encoder: onnx.NodeProto, categories: list, offset: int
) -> onnx.NodeProto:
    """A LabelEncoder mapping `encoder`'s categories to rows offset.. of the stacked table ([N, 1] int64)."""
    values = [offset + i for i in range(len(categories))]
    keys = {"keys_strings": [c.decode() if isinstance(c, bytes) else str(c) for c in categories]}
    if attribute(encoder, "cats_int64s", []):
        keys = {"keys_int64s": [int(c) for c in categories]}
    out = fresh_name(model, f"{encoder.output[0]}_row")
    return helper.make_node(
        "LabelEncoder",
        [encoder.input[0]],
        [out],
        name=out,
        domain=ML_DOMAIN,
        values_int64s=values,
        default_int64=offset + len(categories),
        **keys,
    )


def _gathered_sum(
    model: onnx.ModelProto, layer: str, table: np.ndarray, indices: list[str]
) -> list[onnx.NodeProto]:
    """sum over k of table[indices_k]: Concat the [N, 1] indices, one Gather, ReduceSum over the inputs
    (the last node's output is the [N, H] sum)."""
    table_name = add_initializer(model, f"{layer}_embedding_table", table.astype(np.float32))
    joined = fresh_name(model, f"{layer}_embedding_rows")
    gathered = fresh_name(model, f"{layer}_embedding_gathered")
    out = fresh_name(model, f"{layer}_embedding_sum")
    nodes = [
        helper.make_node("Concat", indices, [joined], name=joined, axis=1),
        helper.make_node("Gather", [table_name, joined], [gathered], name=gathered, axis=0),
    ]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= 13:
        axes = add_initializer(model, f"{layer}_embedding_axes", np.array([1], np.int64))
        nodes.append(helper.make_node("ReduceSum", [gathered, axes], [out], name=out, keepdims=0))
    else:
        nodes.append(helper.make_node("ReduceSum", [gathered], [out], name=out, keepdims=0, axes=[1]))
    return nodes
