"""Read-only facts about an FP32 ONNX graph: its inputs, the layers that can be quantized, the output head."""

from dataclasses import dataclass
from pathlib import Path

import onnx

from server.quantization.errors import ModelFileError, NoQuantizableOpsError

_ONNX_INPUT_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.STRING: "string",
}


@dataclass(frozen=True)
class ModelGraph:
    path: Path
    model: onnx.ModelProto
    input_dtypes: dict[str, str]  # ONNX input name -> "float32" | "float64" | "int64" | "bool" | "string"
    input_widths: dict[str, int | None]  # ONNX input name -> its fixed second dimension, None if symbolic
    quantizable_layers: tuple[str, ...]  # nodes with constant weights of the configured op types, in order
    output_head: tuple[str, ...]  # last quantizable layer on the path to the output and all after it

    @property
    def input_names(self) -> list[str]:
        return list(self.input_dtypes)


def load_model_graph(
    path: Path, op_types: tuple[str, ...], output_name: str, require_layers: bool = True
) -> ModelGraph:
    """Load and check `path`; raise ModelFileError, or NoQuantizableOpsError naming the file when it has no
    layer to quantize and `require_layers`."""
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except FileNotFoundError as exc:
        raise ModelFileError(f"ONNX model not found: {path}") from exc
    except Exception as exc:  # protobuf DecodeError, ValidationError, OSError: all mean "not a usable model"
        raise ModelFileError(f"cannot read ONNX model {path}: {type(exc).__name__}: {exc}") from exc
    if output_name not in {o.name for o in model.graph.output}:
        names = ", ".join(o.name for o in model.graph.output)
        raise ModelFileError(f"ONNX model {path} has no output '{output_name}' (outputs: {names})")
    input_dtypes, input_widths = {}, {}
    constants = {init.name for init in model.graph.initializer}
    for graph_input in model.graph.input:
        if graph_input.name in constants:  # an initializer listed as an input (tf2onnx, old IRs): a constant
            continue
        elem_type = graph_input.type.tensor_type.elem_type
        if elem_type not in _ONNX_INPUT_DTYPES:
            raise ModelFileError(
                f"ONNX model {path}: input '{graph_input.name}' has element type "
                f"{onnx.TensorProto.DataType.Name(elem_type)}; supported: FLOAT, DOUBLE, INT64, BOOL, STRING"
            )
        input_dtypes[graph_input.name] = _ONNX_INPUT_DTYPES[elem_type]
        dims = graph_input.type.tensor_type.shape.dim
        input_widths[graph_input.name] = dims[1].dim_value if len(dims) == 2 and dims[1].dim_value else None
    layers = _quantizable_layers(model, op_types)
    if not layers and require_layers:
        raise NoQuantizableOpsError(
            f"ONNX model {path} has no layer with constant weights to quantize (looked for "
            f"{', '.join(op_types)}); set quantization.mode: none to serve it in FP32"
        )
    head = _output_head(model, layers, output_name)
    return ModelGraph(path, model, input_dtypes, input_widths, tuple(layers), tuple(head))


def _quantizable_layers(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[str]:
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [
        node.name
        for node in model.graph.node
        if node.op_type in op_types and len(node.input) > 1 and node.input[1] in constants
    ]


def _output_head(model: onnx.ModelProto, layers: list[str], output_name: str) -> list[str]:
    """Names of the last quantizable layer feeding `output_name` and every node downstream of it.

    Keeping these in FP32 keeps the score's resolution (DESIGN.md, "score resolution trap").
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    ancestors: list[str] = []  # nodes feeding the output, nearest first (breadth-first from the output)
    frontier, seen = [output_name], set()
    while frontier:
        tensor = frontier.pop(0)
        node = producer.get(tensor)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        ancestors.append(node.name)
        frontier.extend(node.input)
    last_layer = next((name for name in ancestors if name in layers), None)
    if last_layer is None:
        return []
    downstream, tensors = [last_layer], set()
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.name == last_layer:
            tensors.update(node.output)
        elif tensors.intersection(node.input):
            downstream.append(node.name)
            tensors.update(node.output)
    return downstream
