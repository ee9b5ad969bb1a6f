"""The rules behind `models init`'s decisions, on small inputs: where categories come from in a graph
(OneHotEncoder, LabelEncoder, CategoryMapper, through Concat and ArrayFeatureExtractor), the inferred
ranges, thresholds at alert rates with tied scores, and the probability output among several."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from server.model_init.errors import ModelInitError
from server.model_init.features import inferred_range
from server.model_init.signature import read_signature
from server.model_init.thresholds import thresholds_at

REPO = Path(__file__).resolve().parents[2]
ML = "ai.onnx.ml"


def _save(path: Path, nodes, inputs, outputs, initializers=()) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 3)], ir_version=8
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _string(name: str, width: int = 1):
    return helper.make_tensor_value_info(name, TensorProto.STRING, [None, width])


def _probabilities(name: str = "probabilities", width: int = 2):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width])


def test_vocabularies_of_label_encoder_category_mapper_and_a_concatenated_one_hot(tmp_path: Path) -> None:
    nodes = [
        helper.make_node(
            "LabelEncoder",
            ["country"],
            ["country_id"],
            domain=ML,
            keys_strings=["US", "DE"],
            values_int64s=[0, 1],
            default_int64=-1,
        ),
        helper.make_node(
            "CategoryMapper",
            ["channel"],
            ["channel_id"],
            domain=ML,
            cats_strings=["pos", "ecom"],
            cats_int64s=[0, 1],
        ),
        helper.make_node("Concat", ["mcc", "entry"], ["both"], axis=1),
        helper.make_node("ArrayFeatureExtractor", ["both", "one"], ["entry_only"], domain=ML),
        helper.make_node("Cast", ["entry_only"], ["entry_cast"], to=TensorProto.STRING),
        helper.make_node(
            "OneHotEncoder", ["entry_cast"], ["entry_hot"], domain=ML, cats_strings=["chip", "swipe"], zeros=1
        ),
        helper.make_node("Cast", ["country_id"], ["country_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["channel_id"], ["channel_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["entry_hot", "shape"], ["entry_flat"]),
        helper.make_node("Concat", ["country_f", "channel_f", "entry_flat"], ["x"], axis=1),
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("ReduceMean", ["s"], ["probability"], axes=[1], keepdims=1),
    ]
    path = _save(
        tmp_path / "m.onnx",
        nodes,
        [_string("country"), _string("channel"), _string("mcc"), _string("entry")],
        [_probabilities("probability", 1)],
        [
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([-1, 2], np.int64), "shape"),
        ],
    )
    vocabularies = read_signature(path).vocabularies
    assert vocabularies[("country", 0)].values == ("US", "DE")
    assert vocabularies[("country", 0)].op_types == ("LabelEncoder",)
    assert vocabularies[("channel", 0)].values == ("pos", "ecom")
    assert vocabularies[("entry", 0)].values == ("chip", "swipe")  # column 1 of the Concat is `entry`
    assert ("mcc", 0) not in vocabularies  # never encoded: its categories will come from the data


def test_the_probability_output_is_chosen_or_must_be_named(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["probabilities"]),
        helper.make_node("Sigmoid", ["x"], ["other"]),
        helper.make_node("Cast", ["x"], ["label"], to=TensorProto.INT64),
    ]
    one = _save(tmp_path / "one.onnx", nodes[:1] + nodes[2:], [x], [label, _probabilities(width=1)])
    assert read_signature(one).output.name == "probabilities"
    two = _save(tmp_path / "two.onnx", nodes, [x], [_probabilities(width=1), _probabilities("other", 1)])
    assert read_signature(two).output.name == "probabilities"  # the conventional name wins
    assert read_signature(two, "other").output.name == "other"
    renamed = [helper.make_node("Sigmoid", ["x"], ["p1"]), helper.make_node("Sigmoid", ["x"], ["p2"])]
    ambiguous = _save(tmp_path / "amb.onnx", renamed, [x], [_probabilities("p1", 1), _probabilities("p2", 1)])
    with pytest.raises(ModelInitError, match="name the probabilities with --output"):
        read_signature(ambiguous)


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([0, 1, 1, 0], "float32", (0.0, 1.0, "0/1")),
        ([0.5, 3.0, 25_000.0], "float32", (0.0, 50_000.0, "never negative")),
        ([0.0, 2.5, 10.0], "float64", (0.0, 20.0, "never negative")),  # zero is not negative
        ([-4.2, 0.0, 5.1], "float32", (-13.5, 14.4, "widened")),
        ([3, 7, 12], "int64", (0.0, 21.0, "never negative")),
        ([2.0, 2.0], "float32", (0.0, 4.0, "never negative")),  # a constant: widened by its own size
        ([0, 1], "bool", (None, None, "bool")),
    ],
)
def test_inferred_ranges(values, dtype, expected) -> None:
    found = inferred_range(pd.Series(values, dtype=float), dtype)
    assert (found.minimum, found.maximum, found.rule) == expected
    if found.maximum is not None:
        assert found.minimum <= min(values) and found.maximum >= max(values)


def test_thresholds_alert_at_most_the_rate_and_skip_ties() -> None:
    scores = np.array([0.1] * 90 + [0.5] * 5 + [0.6, 0.7, 0.8, 0.9, 0.95])
    review, decline = thresholds_at(scores, [0.08, 0.02])
    # 8 % of 100 rows: the five tied 0.5s would make 10 alerts, so the threshold stays above them
    assert (review.alerted, decline.alerted) == (5, 2)
    assert 0.5 < review.value <= 0.6 and 0.8 < decline.value <= 0.9
    assert np.mean(scores >= review.value) == 0.05 and np.mean(scores >= decline.value) == 0.02
    assert len(repr(review.value)) <= 4  # the shortest decimal between the two scores (0.6 here: ≤ "0.55")
    with pytest.raises(ModelInitError, match="too coarse"):
        thresholds_at(np.array([0.0] * 50 + [1.0] * 50), [0.02, 0.01])


def test_the_console_command_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli.main",
            "models",
            "init",
            str(tmp_path / "m"),
            "--onnx",
            "nope.onnx",
            "--data",
            "nope.csv",
            "--label",
            "y",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "riskserve models init: error: --onnx: file not found: nope.onnx"
    ]


def test_init_needs_no_exporter(tmp_path: Path) -> None:
    """ONNX files come exported: init runs with skl2onnx, onnxmltools and lightgbm unimportable."""
    from tests.model_init.model_factory import (
        ID,
        LABEL,
        NUMBERS,
        TIME,
        labelled_frame,
        torch_style_mlp_onnx,
        write,
    )

    frame = labelled_frame(1500, seed=0).drop(columns=["device_type"])
    model = write(
        tmp_path / "mlp.onnx",
        torch_style_mlp_onnx(frame[list(NUMBERS)].to_numpy(np.float32), frame[LABEL].to_numpy()),
    )
    data = write(tmp_path / "data.parquet", frame)
    blocked = (
        "import sys\nfor name in ('skl2onnx', 'onnxmltools', 'lightgbm'):\n    sys.modules[name] = None\n"
    )
    args = [
        str(tmp_path / "models" / "mlp"),
        "--onnx",
        str(model),
        "--data",
        str(data),
        "--label",
        LABEL,
        "--ignore",
        f"{ID},{TIME}",
        "--task",
        "binary",
    ]
    code = blocked + f"from server.cli.main import main\nsys.exit(main(['models', 'init', *{args!r}]))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "mlp" / "config.yaml").is_file()
