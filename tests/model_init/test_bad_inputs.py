"""Every input `riskserve models init` cannot use: exit status 2, one line on stderr naming the problem
(file, flag or columns) and what to do, and no model folder written."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.model_init.conftest import run_init
from tests.model_init.model_factory import (
    ID,
    LABEL,
    NUMBERS,
    TIME,
    labelled_frame,
    sklearn_pipeline_onnx,
    torch_style_mlp_onnx,
    write,
    zipmap_onnx,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-inputs")
    frame = labelled_frame(1500, seed=0)
    numbers = frame.drop(columns=["device_type"])
    matrix, labels = numbers[list(NUMBERS)].to_numpy(np.float32), numbers[LABEL].to_numpy()
    files = {
        "pipeline": write(root / "pipeline.onnx", sklearn_pipeline_onnx(frame)),
        "mlp": write(root / "mlp.onnx", torch_style_mlp_onnx(matrix, labels)),
        "logits": write(root / "logits.onnx", torch_style_mlp_onnx(matrix, labels, sigmoid=False)),
        "zipmap": write(root / "zipmap.onnx", zipmap_onnx(frame)),
        "garbage": write(root / "garbage.onnx", b"not an onnx model"),
        "data": write(root / "data.csv", frame),
        "numbers": write(root / "numbers.parquet", numbers),
        "no_id_column": write(root / "no_id.csv", frame.drop(columns=[ID])),
        "label_012": write(root / "label_012.csv", frame.assign(**{LABEL: np.arange(len(frame)) % 3})),
        "label_text": write(root / "label_text.csv", frame.assign(**{LABEL: "yes"})),
        "label_nan": write(
            root / "label_nan.parquet", frame.assign(**{LABEL: np.where(frame.index == 7, np.nan, 1.0)})
        ),
        "no_positives": write(root / "no_positives.csv", frame.assign(**{LABEL: 0})),
        "missing_input": write(root / "missing_input.csv", frame.drop(columns=["merchant_risk"])),
        "extra_column": write(root / "extra.csv", frame.assign(note="x", score_v0=0.5)),
        "nan_feature": write(
            root / "nan_feature.parquet", frame.assign(merchant_risk=np.where(frame.index == 3, np.nan, 0.5))
        ),
        "text_number": write(root / "text_number.csv", frame.assign(velocity_6h="many")),
        "small": write(root / "small.csv", frame.head(300)),
        "holdout_without_label": write(root / "holdout.csv", frame.drop(columns=[LABEL])),
        "notes": write(root / "notes.txt", b"a,b\n1,2\n"),
    }
    existing = root / "models" / "taken"
    existing.mkdir(parents=True)
    (existing / "config.yaml").write_text("name: taken\n")
    files["taken"] = existing
    return files


def _base(inputs: dict[str, Path], model: str = "pipeline", data: str = "data") -> list[str]:
    return [
        "--onnx",
        str(inputs[model]),
        "--data",
        str(inputs[data]),
        "--label",
        LABEL,
        "--ignore",
        f"{ID},{TIME}",
    ]


CASES = {
    "missing onnx file": (
        lambda f: ["--onnx", "/nonexistent/model.onnx", *_base(f)[2:]],
        ["--onnx", "not found"],
    ),
    "missing data file": (
        lambda f: [*_base(f)[:2], "--data", "/nonexistent/data.csv", *_base(f)[4:]],
        ["--data", "not found"],
    ),
    "missing holdout file": (
        lambda f: [*_base(f), "--holdout", "/nonexistent/holdout.csv"],
        ["--holdout", "not found"],
    ),
    "not an onnx file": (lambda f: _base(f, model="garbage"), ["cannot read ONNX file", "garbage.onnx"]),
    "unsupported data format": (lambda f: _base(f, data="notes"), ["unsupported extension", ".txt"]),
    "label column missing": (
        lambda f: [*_base(f)[:4], "--label", "is_fraud", *_base(f)[6:]],
        ["no label column 'is_fraud'"],
    ),
    "label not 0/1": (lambda f: _base(f, data="label_012"), ["label column", "0 and 1 only", "2"]),
    "label is text": (lambda f: _base(f, data="label_text"), ["label column", "0 and 1 only", "yes"]),
    "label has missing values": (lambda f: _base(f, data="label_nan"), ["label column", "1 missing"]),
    "holdout has no positives": (lambda f: _base(f, data="no_positives"), ["no positive (1) rows"]),
    "an onnx input has no column": (
        lambda f: _base(f, data="missing_input"),
        ["no column for ONNX input(s) merchant_risk"],
    ),
    "a column feeds no input": (
        lambda f: _base(f, data="extra_column"),
        ["columns note, score_v0 feed no ONNX input", "--ignore"],
    ),
    "ids not ignored": (
        lambda f: _base(f)[:6],
        [f"columns {ID}, {TIME} feed no ONNX input", f"--ignore {ID},{TIME}"],
    ),
    "feature with missing values": (
        lambda f: _base(f, data="nan_feature"),
        ["'merchant_risk' has 1 missing values"],
    ),
    "text in a numeric column": (lambda f: _base(f, data="text_number"), ["'velocity_6h'", "float32 input"]),
    "n by f input and too many columns": (
        lambda f: [*_base(f, model="mlp", data="numbers")[:6], "--ignore", ID],
        ["'input' is float32 [N, 4]", "number 5", TIME, "--columns"],
    ),
    "unknown --columns": (
        lambda f: [*_base(f, model="mlp", data="numbers"), "--columns", "a,b,c,d"],
        ["--columns", "no column a, b, c, d"],
    ),
    "--columns for a model without a matrix input": (
        lambda f: [*_base(f), "--columns", "velocity_6h"],
        ["--columns", "has none"],
    ),
    "zipmap output": (lambda f: _base(f, model="zipmap"), ["ZipMap", "zipmap=False"]),
    "logit output": (
        lambda f: [*_base(f, model="logits", data="numbers"), "--time-column", TIME],
        ["not probabilities", "Sigmoid"],
    ),
    "unknown --output": (
        lambda f: [*_base(f), "--output", "scores"],
        ["no output 'scores'", "probabilities"],
    ),
    "--output that is not a probability": (lambda f: [*_base(f), "--output", "label"], ["'label' is int64"]),
    "alert rates in the wrong order": (
        lambda f: [*_base(f), "--alert-rates", "0.005,0.02"],
        ["decline rate < review rate"],
    ),
    "one alert rate": (lambda f: [*_base(f), "--alert-rates", "0.02"], ["two rates"]),
    "alert rate of 0": (lambda f: [*_base(f), "--alert-rates", "0.02,0"], ["0 < decline rate"]),
    "alert rate not a number": (
        lambda f: [*_base(f), "--alert-rates", "high,low"],
        ["two numbers like 0.02,0.005"],
    ),
    "alert rate below one holdout row": (
        lambda f: [*_base(f), "--alert-rates", "0.01,0.001"],
        ["alert rate 0.001 of 450 holdout rows", "less than one row"],
    ),
    "holdout fraction out of range": (
        lambda f: [*_base(f), "--holdout-fraction", "1.5"],
        ["--holdout-fraction", "(0, 1)"],
    ),
    "holdout fraction not a number": (
        lambda f: [*_base(f), "--holdout-fraction", "half"],
        ["--holdout-fraction", "number"],
    ),
    "too few rows": (lambda f: _base(f, data="small"), ["would have 90 rows", "at least 200"]),
    "holdout file without the label": (
        lambda f: [*_base(f), "--holdout", str(f["holdout_without_label"])],
        ["holdout.csv has no label column"],
    ),
    "unknown time column": (
        lambda f: [*_base(f), "--time-column", "when"],
        ["--time-column", "no column 'when'"],
    ),
    "missing required flag": (lambda f: ["--onnx", str(f["pipeline"])], ["required", "--data", "--label"]),
    "unknown task": (lambda f: [*_base(f), "--task", "mortgage"], ["--task", "mortgage"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(inputs, tmp_path: Path, case: str) -> None:
    make_args, words = CASES[case]
    folder = tmp_path / "models" / "mine"
    code, _, err = run_init(folder, *make_args(inputs))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("riskserve models init: error: "), err
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert not folder.exists()
    assert not list(folder.parent.glob(".*init-*")) if folder.parent.exists() else True  # no scratch left


def test_existing_folder_needs_force_and_force_writes_into_it(inputs) -> None:
    folder = inputs["taken"]
    code, _, err = run_init(folder, *_base(inputs))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "exists and is not empty (holds config.yaml)" in err and "--force" in err
    assert (folder / "config.yaml").read_text() == "name: taken\n"
    (folder / "notes.md").write_text("mine")
    code, _, err = run_init(folder, *_base(inputs), "--force")
    assert code == 0, err
    assert "name: taken" in (folder / "config.yaml").read_text()  # the folder's name is the model's
    assert (folder / "notes.md").read_text() == "mine"  # nothing else touched


def test_bad_folder_name_asks_for_name(inputs, tmp_path: Path) -> None:
    code, _, err = run_init(tmp_path / "My Model", *_base(inputs))
    assert code == 2 and "pass --name" in err and not (tmp_path / "My Model").exists()
    code, _, err = run_init(tmp_path / "My Model", *_base(inputs), "--name", "mine")
    assert code == 0, err
    frame = pd.read_parquet(tmp_path / "My Model" / "holdout.parquet")
    assert LABEL in frame.columns
