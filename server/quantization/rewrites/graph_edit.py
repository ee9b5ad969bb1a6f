"""Small read/write helpers over an ONNX graph for the rewrites: who produces and consumes a tensor, static
widths, initializers as arrays, fresh names."""

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

from server.quantization.rewrites.ml_types import type_ml_outputs

ML_DOMAIN = "ai.onnx.ml"


class GraphIndex:
    """Producer and consumers of every tensor, the initializers and the statically known shapes of `model`.

    Built once per rewrite; a rewrite that edits the graph builds a new index afterwards.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        graph = model.graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = {init.name: init for init in graph.initializer}
        self.outputs = {o.name for o in graph.output}
        inferred = onnx.ModelProto.FromString(model.SerializeToString())
        type_ml_outputs(inferred)
        infos = (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)
        self.types = {v.name: v.type.tensor_type for v in infos if v.type.HasField("tensor_type")}

    def array(self, name: str) -> np.ndarray | None:
        """The constant value of `name` (an initializer or a Constant node's output), None otherwise."""
        if name in self.initializers:
            return onnx.numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.name == "value":
                return onnx.numpy_helper.to_array(attr.t)
        return None

    def dims(self, name: str) -> list[int | None] | None:
        """The tensor's dimensions (None for a symbolic one), or None if its rank is unknown."""
        tensor_type = self.types.get(name)
        if tensor_type is None or not tensor_type.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]

    def width(self, name: str) -> int | None:
        """The fixed last dimension of a 2-D tensor [N, F], None if not statically known."""
        dims = self.dims(name)
        return dims[1] if dims is not None and len(dims) == 2 else None

    def elem_type(self, name: str) -> int | None:
        tensor_type = self.types.get(name)
        return tensor_type.elem_type if tensor_type is not None and tensor_type.elem_type else None

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        """The single node reading `name`, if exactly one does and `name` is not a graph output."""
        readers = self.consumers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.outputs else None


def attribute(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def fresh_name(model: onnx.ModelProto, base: str) -> str:
    """`base`, or `base_<n>`, unused by any tensor, initializer or node of `model`."""
    graph = model.graph
    taken = {init.name for init in graph.initializer} | {n.name for n in graph.node}
    taken |= {name for n in graph.node for name in (*n.input, *n.output)}
    taken |= {v.name for v in (*graph.input, *graph.output)}
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def add_initializer(model: onnx.ModelProto, base: str, array: np.ndarray) -> str:
    name = fresh_name(model, base)
    model.graph.initializer.append(onnx.numpy_helper.from_array(array, name))
    return name


def replace_initializer(model: onnx.ModelProto, name: str, array: np.ndarray) -> None:
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(onnx.numpy_helper.from_array(array, name))
            return
    raise KeyError(name)


def ml_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain == ML_DOMAIN), 0)


def rebuild(model: onnx.ModelProto, removed: list[onnx.NodeProto], added: list[onnx.NodeProto]) -> None:
    """Replace the graph's nodes: drop `removed` (matched by their outputs), add `added`, sort, and drop
    what no longer feeds an output. References to the old nodes are stale afterwards."""
    gone = {tuple(node.output) for node in removed}
    kept = [
        onnx.NodeProto.FromString(n.SerializeToString())
        for n in model.graph.node
        if tuple(n.output) not in gone
    ]
    del model.graph.node[:]
    model.graph.node.extend([*kept, *added])
    remove_unused(model)
    topological_sort(model)


def remove_unused(model: onnx.ModelProto) -> None:
    """Drop nodes whose outputs nobody reads (repeatedly), then unused initializers and value_info."""
    graph = model.graph
    while True:
        used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(out in used for out in n.output)]
        if not dead:
            break
        dead_outputs = {tuple(n.output) for n in dead}
        kept = [n for n in graph.node if tuple(n.output) not in dead_outputs]
        _replace_all(model, kept)
    used = {name for n in graph.node for name in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    produced = {out for n in graph.node for out in n.output}
    for info in [v for v in graph.value_info if v.name not in produced]:
        graph.value_info.remove(info)


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder the nodes so that every node comes after the producers of its inputs (stable otherwise)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("graph has a cycle or an input that nothing produces")
        pending = waiting
    _replace_all(model, ordered)


def _replace_all(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
    del model.graph.node[:]
    model.graph.node.extend(copies)
