"""Where a model's time goes, from ONNX Runtime's own profiler: the scikit-learn front end vs the MLP."""

import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from server.ort_session import latency_session_options


def front_end_nodes(model_path: Path, first_layer_input: str) -> set[str]:
    """Names of the nodes that compute the first layer's input (one-hot encoding, scaling, log1p, concat),
    in `model_path`'s own graph; the first layer's QuantizeLinear/DequantizeLinear are not front end.

    INT8 cannot speed these up: they run on strings and per-feature floats before the first MatMul/Gemm.
    """
    graph = onnx.load(str(model_path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    names, frontier = set(), [first_layer_input]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None or node.name in names:
            continue
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            names.add(node.name)
        frontier.extend(node.input)
    return names


def first_layer_input(model_path: Path) -> str:
    """The activation input of the first MatMul/Gemm with constant weights in `model_path`."""
    graph = onnx.load(str(model_path)).graph
    constants = {init.name for init in graph.initializer}
    dequantized = {
        n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants
    }
    for node in graph.node:
        if (
            node.op_type in ("MatMul", "Gemm")
            and len(node.input) > 1
            and node.input[1] in constants | dequantized
        ):
            return node.input[0]
    raise ValueError(f"{model_path}: no MatMul/Gemm with constant weights")


def profile_model(
    model_path: Path, feeds: dict[str, np.ndarray], output: str, front_end: set[str], runs: int = 200
) -> dict[str, object]:
    """Mean kernel time per run (µs) by op type, and split into front end vs the rest (MLP and head)."""
    with tempfile.TemporaryDirectory() as scratch:
        options = latency_session_options()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "profile")
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run([output], feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter[str] = collections.Counter()
    front, rest = 0.0, 0.0
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        micros = event["dur"] / runs
        by_op[event["args"]["op_name"]] += micros
        if event["name"].removesuffix("_kernel_time") in front_end:
            front += micros
        else:
            rest += micros
    return {
        "front_end_us": front,
        "mlp_and_head_us": rest,
        "total_us": front + rest,
        "by_op_us": dict(by_op.most_common()),
    }
