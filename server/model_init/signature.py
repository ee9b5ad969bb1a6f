"""What `riskserve models init` reads from an exported ONNX file: its inputs, the probability output, the
vocabularies its encoders know and whether it has anything to quantize. onnx only, no exporter needed."""

from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import numpy_helper

from server.model_init.errors import ModelInitError

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.STRING: "string",
}
_FLOAT_OUTPUTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
_PREFERRED_OUTPUTS = ("probabilities", "probability", "output_probability", "probs", "proba")
# ai.onnx.ml encoders and the attribute holding the string values they know
_VOCABULARY_ATTRIBUTES = {
    "OneHotEncoder": ("cats_strings",),
    "LabelEncoder": ("keys_strings", "keys_tensor"),
    "CategoryMapper": ("cats_strings",),
}
_PASS_THROUGH = ("Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten")
QUANTIZABLE_OPS = ("MatMul", "Gemm")  # the quantizer's weight layers (server/quantization/model_graph.py)

Column = tuple[str, int]  # (graph input, column of it)


@dataclass(frozen=True)
class GraphInput:
    name: str
    dtype: str
    width: int | None  # the fixed second dimension; None when symbolic or absent
    rank: int


@dataclass(frozen=True)
class GraphOutput:
    name: str
    width: int | None  # columns of the [N, C] probability output (None: symbolic)
    others: tuple[str, ...]  # the outputs not chosen, with why, for the report


@dataclass(frozen=True)
class Vocabulary:
    values: tuple[str, ...]
    op_types: tuple[str, ...]  # the encoders it came from


@dataclass(frozen=True)
class Signature:
    path: Path
    model: onnx.ModelProto
    inputs: tuple[GraphInput, ...]
    output: GraphOutput
    vocabularies: dict[Column, Vocabulary] = field(default_factory=dict)
    quantizable_layers: int = 0


def read_signature(path: Path, output_name: str | None = None) -> Signature:
    """Load and check `path`; ModelInitError (one line) for anything `models init` cannot use."""
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except FileNotFoundError as exc:
        raise ModelInitError(f"ONNX file not found: {path}") from exc
    except Exception as exc:  # DecodeError, ValidationError, OSError: not a usable model
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelInitError(f"cannot read ONNX file {path}: {type(exc).__name__}: {detail}") from exc
    inputs = _inputs(model, path)
    output = _probability_output(model, path, output_name)
    return Signature(path, model, inputs, output, _vocabularies(model, inputs), _quantizable_layers(model))


def graph_vocabularies(model: onnx.ModelProto) -> dict[Column, Vocabulary]:
    """The values the graph's encoders know for each string input column (see `_vocabularies`), for any
    model (also one `models init` would refuse for other reasons)."""
    strings = []
    for graph_input in model.graph.input:
        tensor = graph_input.type.tensor_type
        if graph_input.type.HasField("tensor_type") and tensor.elem_type == onnx.TensorProto.STRING:
            dims = tensor.shape.dim
            width = dims[1].dim_value if len(dims) == 2 and dims[1].dim_value > 0 else None
            strings.append(GraphInput(graph_input.name, "string", width, len(dims)))
    return _vocabularies(model, tuple(strings))


def _inputs(model: onnx.ModelProto, path: Path) -> tuple[GraphInput, ...]:
    initializers = {i.name for i in model.graph.initializer}
    inputs = []
    for graph_input in model.graph.input:
        if graph_input.name in initializers:  # IR < 4 lists weights as inputs
            continue
        tensor = graph_input.type.tensor_type
        if not graph_input.type.HasField("tensor_type") or tensor.elem_type not in ONNX_DTYPES:
            kind = (
                onnx.TensorProto.DataType.Name(tensor.elem_type)
                if graph_input.type.HasField("tensor_type")
                else graph_input.type.WhichOneof("value")
            )
            raise ModelInitError(
                f"ONNX file {path}: input '{graph_input.name}' is {kind}; riskserve feeds FLOAT, DOUBLE, "
                "INT64, BOOL or STRING tensors"
            )
        dims = tensor.shape.dim
        if len(dims) != 2:
            raise ModelInitError(
                f"ONNX file {path}: input '{graph_input.name}' has rank {len(dims)}; riskserve feeds [N, 1] "
                "or [N, F] tensors (re-export it with a batch dimension and a feature dimension)"
            )
        width = dims[1].dim_value if dims[1].HasField("dim_value") and dims[1].dim_value > 0 else None
        inputs.append(GraphInput(graph_input.name, ONNX_DTYPES[tensor.elem_type], width, len(dims)))
    if not inputs:
        raise ModelInitError(f"ONNX file {path} has no inputs")
    return tuple(inputs)


def _is_zipmap(value: onnx.ValueInfoProto) -> bool:
    kind = value.type.WhichOneof("value")
    return kind == "sequence_type" and value.type.sequence_type.elem_type.WhichOneof("value") == "map_type"


def _width(value: onnx.ValueInfoProto) -> int | None:
    dims = value.type.tensor_type.shape.dim
    if len(dims) == 1:
        return 1
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value > 0:
        return dims[1].dim_value
    return None


def _probability_output(model: onnx.ModelProto, path: Path, wanted: str | None) -> GraphOutput:
    outputs = list(model.graph.output)
    names = [o.name for o in outputs]
    candidates = [
        o
        for o in outputs
        if o.type.WhichOneof("value") == "tensor_type"
        and o.type.tensor_type.elem_type in _FLOAT_OUTPUTS
        and len(o.type.tensor_type.shape.dim) in (1, 2)
    ]
    if wanted is not None:
        chosen = next((o for o in outputs if o.name == wanted), None)
        if chosen is None:
            raise ModelInitError(f"ONNX file {path} has no output '{wanted}' (outputs: {', '.join(names)})")
        if chosen not in candidates:
            raise ModelInitError(_not_probabilities(path, chosen))
    else:
        if not candidates:
            zipmaps = [o for o in outputs if _is_zipmap(o)]
            if zipmaps:
                raise ModelInitError(
                    f"ONNX file {path}: output '{zipmaps[0].name}' is a ZipMap (a sequence of maps), not a "
                    "probability tensor; convert the model with zipmap=False (skl2onnx: options="
                    "{id(model): {'zipmap': False}}; onnxmltools: zipmap=False)"
                )
            raise ModelInitError(
                f"ONNX file {path} has no float [N, 2] or [N, 1] output to read probabilities from "
                f"(outputs: {', '.join(names)})"
            )
        preferred = [o for o in candidates if o.name.lower() in _PREFERRED_OUTPUTS]
        if len(candidates) == 1 or len(preferred) == 1:
            chosen = candidates[0] if len(candidates) == 1 else preferred[0]
        else:
            raise ModelInitError(
                f"ONNX file {path} has {len(candidates)} float outputs "
                f"({', '.join(o.name for o in candidates)}); name the probabilities with --output"
            )
    width = _width(chosen)
    if width is not None and width > 2:
        raise ModelInitError(
            f"ONNX file {path}: output '{chosen.name}' has {width} columns; riskserve serves binary models "
            "([N, 2] class probabilities or an [N, 1] positive-class probability)"
        )
    others = tuple(f"'{o.name}' ({_describe(o)})" for o in outputs if o.name != chosen.name)
    return GraphOutput(chosen.name, width, others)


def _not_probabilities(path: Path, value: onnx.ValueInfoProto) -> str:
    if _is_zipmap(value):
        return (
            f"ONNX file {path}: output '{value.name}' is a ZipMap (a sequence of maps); convert the model "
            "with zipmap=False"
        )
    return f"ONNX file {path}: output '{value.name}' is {_describe(value)}, not a float probability tensor"


def _describe(value: onnx.ValueInfoProto) -> str:
    if _is_zipmap(value):
        return "ZipMap"
    if value.type.WhichOneof("value") != "tensor_type":
        return str(value.type.WhichOneof("value"))
    tensor = value.type.tensor_type
    dtype = ONNX_DTYPES.get(tensor.elem_type, onnx.TensorProto.DataType.Name(tensor.elem_type).lower())
    dims = ", ".join(str(d.dim_value) if d.HasField("dim_value") else "N" for d in tensor.shape.dim)
    return f"{dtype} [{dims}]"


def _constant_ints(model: onnx.ModelProto, name: str) -> list[int] | None:
    for initializer in model.graph.initializer:
        if initializer.name == name:
            return [int(v) for v in numpy_helper.to_array(initializer).reshape(-1)]
    for node in model.graph.node:
        if node.op_type == "Constant" and name in node.output:
            for attribute in node.attribute:
                if attribute.name == "value":
                    return [int(v) for v in numpy_helper.to_array(attribute.t).reshape(-1)]
    return None


def _vocabularies(model: onnx.ModelProto, inputs: tuple[GraphInput, ...]) -> dict[Column, Vocabulary]:
    """The string values each string input column's encoders know, found by following the column through
    pass-through ops, Concat, ArrayFeatureExtractor and Gather (axis 1) to an ai.onnx.ml OneHotEncoder,
    LabelEncoder or CategoryMapper. A column mixed with others before its encoder is not traced."""
    columns: dict[str, list[Column] | None] = {}  # tensor -> its columns' origins (None: unknown)
    for graph_input in inputs:
        if graph_input.dtype == "string":
            columns[graph_input.name] = [(graph_input.name, i) for i in range(graph_input.width or 1)]
    found: dict[Column, tuple[list[str], list[str]]] = {}
    for node in model.graph.node:  # topologically sorted
        origin = columns.get(node.input[0]) if node.input else None
        if origin is None:
            continue
        if node.op_type in _VOCABULARY_ATTRIBUTES and len(origin) == 1:
            values = _vocabulary(node)
            if values:
                known, ops = found.setdefault(origin[0], ([], []))
                known.extend(v for v in values if v not in known)
                if node.op_type not in ops:
                    ops.append(node.op_type)
        elif node.op_type in _PASS_THROUGH:
            columns[node.output[0]] = origin
        elif node.op_type == "Concat":
            parts = [columns.get(name) for name in node.input]
            if all(part is not None for part in parts):
                columns[node.output[0]] = [c for part in parts for c in part]  # type: ignore[union-attr]
        elif node.op_type in ("ArrayFeatureExtractor", "Gather") and len(node.input) > 1:
            axis = next(
                (a.i for a in node.attribute if a.name == "axis"), 0 if node.op_type == "Gather" else 1
            )
            indices = _constant_ints(model, node.input[1])
            if axis in (1, -1) and indices is not None and all(0 <= i < len(origin) for i in indices):
                columns[node.output[0]] = [origin[i] for i in indices]
    return {column: Vocabulary(tuple(values), tuple(ops)) for column, (values, ops) in found.items()}


def _vocabulary(node: onnx.NodeProto) -> list[str]:
    for attribute in node.attribute:
        if attribute.name not in _VOCABULARY_ATTRIBUTES[node.op_type]:
            continue
        if attribute.name == "keys_tensor":
            if attribute.t.data_type != onnx.TensorProto.STRING:
                return []
            return [v.decode("utf-8") for v in attribute.t.string_data]
        return [v.decode("utf-8") for v in attribute.strings]
    return []


def _quantizable_layers(model: onnx.ModelProto) -> int:
    """MatMul/Gemm nodes with a constant weight: what static INT8 quantization would change."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return sum(
        1
        for node in model.graph.node
        if node.op_type in QUANTIZABLE_OPS and len(node.input) > 1 and node.input[1] in constants
    )
