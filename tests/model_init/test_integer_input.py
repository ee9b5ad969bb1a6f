"""A model with an int64 [N, 1] input (the ONNX signature's dtype, written by `models init`) served as task
binary: the Open Inference Protocol is its only door. Today its converters know FP32 and BYTES only."""

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import tritonclient.grpc as triton
from onnx import TensorProto, helper, numpy_helper

from server.config.model_config import load_model_config
from tests.model_init.conftest import run_init


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("int64")
    nodes = [
        helper.make_node("Cast", ["count"], ["count_f"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["count_f", "w"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes,
        "counts",
        [helper.make_tensor_value_info("count", TensorProto.INT64, [None, 1])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(np.array([[0.3]], np.float32), "w")],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), root / "m.onnx"
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"count": rng.poisson(3, 2000) - 3})
    frame["y"] = (rng.random(2000) < 1 / (1 + np.exp(-0.3 * frame["count"]))).astype(np.int64)
    frame.to_parquet(root / "data.parquet")
    code, _, err = run_init(
        root / "models" / "counts",
        *("--onnx", str(root / "m.onnx"), "--data", str(root / "data.parquet"), "--label", "y"),
        *("--task", "binary", "--alert-rates", "0.3,0.1"),
    )
    assert code == 0, err
    return root


def test_init_writes_the_int64_input_with_integer_bounds(repo: Path) -> None:
    (spec,) = load_model_config(repo / "models" / "counts").inputs
    assert (spec.name, spec.dtype, spec.minimum, spec.maximum) == ("count", "int64", -13.0, 17.0)


def test_open_inference_protocol_serves_an_int64_input(repo: Path, serve) -> None:
    server = serve(repo / "models", repo / "cache")
    counts = np.array([[1], [2], [-3]], dtype=np.int64)
    tensor = triton.InferInput("count", list(counts.shape), "INT64")
    tensor.set_data_from_numpy(counts)
    with triton.InferenceServerClient(server.target) as client:
        metadata = client.get_model_metadata("counts")
        answer = client.infer("counts", [tensor], outputs=[triton.InferRequestedOutput("probability")])
    assert [(i.name, i.datatype) for i in metadata.inputs] == [("count", "INT64")]
    assert np.allclose(answer.as_numpy("probability")[:, 0], 1 / (1 + np.exp(-0.3 * counts[:, 0])), atol=0.02)
