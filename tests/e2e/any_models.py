"""Models unlike the bundled ones, built with the onnx helper API for end-to-end tests: inputs of every dtype
fed from the domain API's feature maps, one [N, F] input laid out as torch.onnx.export lays out an MLP, an
[N, 1] sigmoid output."""

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import yaml
from onnx import TensorProto, helper, numpy_helper

LABEL = "is_bad"
SEGMENTS = ("retail", "business", "private")


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def mixed_dtype_graph() -> onnx.GraphProto:
    """amount float32, score float64, prior_count int64, vip bool, segment string -> probability [N, 1]."""
    nodes = [
        helper.make_node("Cast", ["score"], ["score_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["prior_count"], ["count_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["vip"], ["vip_f"], to=TensorProto.FLOAT),
        helper.make_node(
            "LabelEncoder",
            ["segment"],
            ["segment_i"],
            domain="ai.onnx.ml",
            keys_strings=list(SEGMENTS),
            values_int64s=list(range(len(SEGMENTS))),
            default_int64=-1,
        ),
        helper.make_node("Cast", ["segment_i"], ["segment_f"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["amount", "score_f", "count_f", "vip_f", "segment_f"], ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["risk"]),
    ]
    weights = np.array([[0.004], [1.5], [-0.3], [-0.8], [0.6]], dtype=np.float32)
    inputs = [
        helper.make_tensor_value_info("amount", TensorProto.FLOAT, ["N", 1]),
        helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["N", 1]),
        helper.make_tensor_value_info("prior_count", TensorProto.INT64, ["N", 1]),
        helper.make_tensor_value_info("vip", TensorProto.BOOL, ["N", 1]),
        helper.make_tensor_value_info("segment", TensorProto.STRING, ["N", 1]),
    ]
    initializers = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array([-1.0], np.float32), "b"),
    ]
    output = helper.make_tensor_value_info("risk", TensorProto.FLOAT, ["N", 1])
    return helper.make_graph(nodes, "mixed", inputs, [output], initializers)


def torch_style_graph(features: int = 3, hidden: int = 8, seed: int = 0) -> onnx.GraphProto:
    """One float input "input" [N, F] -> Gemm -> Relu -> Gemm -> Sigmoid -> "output" [N, 1]."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (hidden, features)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (1, hidden)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"], transB=1),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu/Relu_output_0"]),
        helper.make_node(
            "Gemm", ["/relu/Relu_output_0", "fc2.weight", "fc2.bias"], ["/fc2/Gemm_output_0"], transB=1
        ),
        helper.make_node("Sigmoid", ["/fc2/Gemm_output_0"], ["output"]),
    ]
    initializers = [
        numpy_helper.from_array(w1, "fc1.weight"),
        numpy_helper.from_array(np.zeros(hidden, np.float32), "fc1.bias"),
        numpy_helper.from_array(w2, "fc2.weight"),
        numpy_helper.from_array(np.zeros(1, np.float32), "fc2.bias"),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1])]
    return helper.make_graph(nodes, "torch_jit", inputs, outputs, initializers)


def mixed_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 60.0, rows).round(2),
            "score": rng.normal(0.0, 1.0, rows),
            "prior_count": rng.integers(0, 12, rows),
            "vip": rng.random(rows) < 0.2,
            "segment": rng.choice(SEGMENTS, rows),
        }
    )
    frame[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-(frame["score"] * 1.5 - 1)))).astype(int)
    return frame


def write_folder(folder: Path, name: str, graph: onnx.GraphProto, frame: pd.DataFrame, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _save(graph, folder / "model.onnx")
    frame.drop(columns=[LABEL]).to_parquet(folder / "calibration.parquet")
    frame.to_parquet(folder / "holdout.parquet")
    base = {
        "name": name,
        "version": "1",
        "onnx_file": "model.onnx",
        "label_column": LABEL,
        "decision": {"review": 0.5, "decline": 0.8},
        "quantization": {"mode": "none"},
        "batching": {"max_batch_size": 32, "max_queue_delay_us": 0, "max_queue_size": 512},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump({**base, **config}, sort_keys=False))
    return folder


def write_mixed_model(folder: Path, name: str = "mixed", task: str = "fraud") -> Path:
    """A fraud (or binary) model reading `amount` from the Transaction and the rest from its maps."""
    inputs = [
        {"name": "amount", "dtype": "float32", "minimum": 0},
        {"name": "score", "dtype": "float64", "source": "features.bureau_score"},
        {"name": "prior_count", "dtype": "int64", "minimum": 0, "source": "features.n_prior"},
        {"name": "vip", "dtype": "bool"},
        {"name": "segment", "dtype": "string", "categories": list(SEGMENTS)},
    ]
    config = {"task": task, "output_name": "risk", "inputs": inputs}
    return write_folder(folder, name, mixed_dtype_graph(), mixed_frame(600, 1), config)


def write_torch_style_model(folder: Path, name: str = "torchy") -> Path:
    """A fraud model with one [N, 3] input whose columns come from `features`."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({f"v{i}": rng.normal(0, 1, 600) for i in range(1, 4)})
    frame[LABEL] = (frame["v1"] + rng.normal(0, 1, 600) > 1).astype(int)
    columns = [{"name": f"v{i}", "minimum": -50, "maximum": 50} for i in range(1, 4)]
    config = {
        "task": "fraud",
        "output_name": "output",
        "inputs": [{"name": "input", "dtype": "float32", "columns": columns}],
    }
    return write_folder(folder, name, torch_style_graph(), frame, config)
