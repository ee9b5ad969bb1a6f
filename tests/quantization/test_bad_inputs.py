"""Every bad model or data file fails early with a typed error naming the problem, and writes nothing."""

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from server.quantization.errors import DataFileError, ModelFileError
from server.quantization.pipeline import prepare_model
from server.served_model import GateVerdict, Precision


def _rewrite_calibration(config, change) -> None:
    frame = pd.read_parquet(config.calibration_path)
    change(frame).to_parquet(config.calibration_path)


def _expect(config, tmp_path: Path, error: type[Exception], *words: str) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(error) as caught:
        prepare_model(config, cache)
    for word in words:
        assert word in str(caught.value)
    assert not cache.exists() or not any(cache.rglob("*.onnx")), "nothing may be written on bad input"


def test_missing_calibration_columns_are_listed(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    _rewrite_calibration(config, lambda f: f.drop(columns=["amount", "channel"]))
    _expect(config, tmp_path, DataFileError, "calibration.parquet", "missing columns: amount, channel")


def test_unexpected_calibration_column_is_named_unless_ignored(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    _rewrite_calibration(config, lambda f: f.assign(card_id="c-1"))
    _expect(config, tmp_path, DataFileError, "unexpected columns: card_id", "ignored_columns")
    config = model_folder(ignored_columns=("card_id",))
    prepared = prepare_model(config, tmp_path / "ok")
    assert prepared.report.calibration.ignored_columns == ["card_id"]


def test_string_in_a_float_column(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    frame = pd.read_parquet(config.calibration_path).drop(columns=[], errors="ignore")
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[3, "amount"] = "12,50"
    frame.to_csv(config.directory / "calibration.csv", index=False)
    config = config.model_copy(update={"calibration_file": "calibration.csv"})
    _expect(config, tmp_path, DataFileError, "column 'amount' must be numeric", "'12,50'")


def test_number_in_a_string_column(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    _rewrite_calibration(config, lambda f: f.assign(channel=np.arange(len(f))))
    _expect(config, tmp_path, DataFileError, "column 'channel' must hold strings")


@pytest.mark.parametrize(("value", "words"), [(np.nan, "missing (NaN/null)"), (np.inf, "infinite")])
def test_nan_and_inf_in_calibration_data(model_folder, tmp_path: Path, value: float, words: str) -> None:
    config = model_folder()

    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[7, "velocity"] = value
        return frame

    _rewrite_calibration(config, spoil)
    _expect(config, tmp_path, DataFileError, "column 'velocity'", words)


def test_too_few_calibration_rows(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    _rewrite_calibration(config, lambda f: f.iloc[:150])
    _expect(config, tmp_path, DataFileError, "150 rows, at least 200 are needed")


def test_corrupt_data_file(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    config.calibration_path.write_bytes(b"PAR1 this is not parquet")
    _expect(config, tmp_path, DataFileError, "cannot read data file", "calibration.parquet")


def test_unreadable_onnx_file(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    config.onnx_path.write_bytes(config.onnx_path.read_bytes()[:200])
    _expect(config, tmp_path, ModelFileError, "cannot read ONNX model", "model.onnx")


def test_model_without_quantizable_ops(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    # A "model" that only rescales one input: valid ONNX, right inputs and output, no MatMul/Gemm.
    inputs = [
        helper.make_tensor_value_info(
            s.name, TensorProto.FLOAT if s.dtype == "float32" else TensorProto.STRING, [None, 1]
        )
        for s in config.inputs
    ]
    nodes = [
        helper.make_node("Sigmoid", ["amount"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "no_matmul",
        inputs,
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), config.onnx_path)
    # Not an error: nothing to quantize is a verdict, FP32 served (tree ensembles: test_exporter_families).
    prepared = prepare_model(config, tmp_path / "cache")
    assert prepared.facts.gate_verdict is GateVerdict.NOT_QUANTIZABLE
    assert prepared.facts.precision is Precision.FP32 and prepared.model_path == config.onnx_path
    assert "no layer with constant weights among MatMul, Gemm" in prepared.report.warnings[0]
    assert not (tmp_path / "cache").exists()


def test_holdout_without_label_column(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    pd.read_parquet(config.holdout_path).drop(columns=["is_fraud"]).to_parquet(config.holdout_path)
    _expect(config, tmp_path, DataFileError, "holdout.parquet", "missing columns: is_fraud")


def test_csv_calibration_file_gives_the_same_result_as_parquet(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    pd.read_parquet(config.calibration_path).to_csv(config.directory / "calibration.csv", index=False)
    from_parquet = prepare_model(config, tmp_path / "a")
    from_csv = prepare_model(
        config.model_copy(update={"calibration_file": "calibration.csv"}), tmp_path / "b"
    )
    assert from_csv.report.accuracy == from_parquet.report.accuracy
