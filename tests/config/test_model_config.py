"""The model config loader accepts a good file and rejects each kind of bad one, naming the field."""

from pathlib import Path

import pytest
import yaml

from server.config import ConfigError, ModelTask, load_model_config

GOOD = {
    "name": "fraud",
    "version": "1.0.0",
    "task": "fraud",
    "label_column": "is_fraud",
    "inputs": [
        {"name": "amount", "dtype": "float32", "minimum": 0.0},
        {"name": "channel", "dtype": "string", "categories": ["pos", "ecom"]},
    ],
    "decision": {"review": 0.2, "decline": 0.6},
}


def write_model(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "calibration.parquet", "holdout.parquet"):
        (folder / name).write_bytes(b"x")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_model_config(write_model(tmp_path / "fraud", GOOD))
    assert config.task is ModelTask.FRAUD
    assert config.feature_names == ["amount", "channel"]
    assert config.onnx_path == tmp_path / "fraud" / "model.onnx"
    assert config.quantization.budget.min_auc_ratio == 0.999
    assert config.quantization.budget.max_decision_flip_rate == 0.005


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"task": "mortgage"}, "task", "fraud"),
        ({"decision": {"review": 0.7, "decline": 0.6}}, "decision", "below decline"),
        ({"decision": {"review": 0.2, "decline": 1.5}}, "decision.decline", "less than 1"),
        ({"inputs": []}, "inputs", "at least 1"),
        ({"inputs": [{"name": "channel", "dtype": "string"}]}, "inputs.0", "categories"),
        ({"inputs": [{"name": "amount", "dtype": "int32"}]}, "inputs.0.dtype", "float32"),
        ({"inputs": GOOD["inputs"] * 2}, "inputs", "duplicate feature names: amount, channel"),
        (
            {"inputs": [{"name": "amount", "dtype": "float32", "source": "extras.amount"}]},
            "inputs.0.source",
            "features.<key>",
        ),
        (
            {
                "inputs": [
                    {"name": "channel", "dtype": "string", "categories": ["a"], "source": "features.ch"}
                ]
            },
            "inputs.0",
            "strings from `categorical_features.<key>`",
        ),
        (
            {"inputs": [{"name": "x", "dtype": "float32", "columns": [{"name": "a", "dtype": "int64"}]}]},
            "inputs.0",
            "column 'a' cannot be int64",
        ),
        (
            {"inputs": [{"name": "x", "dtype": "float32", "source": "derived.weekday"}]},
            "inputs.0.source",
            "utc_hour",
        ),
        ({"quantization": {"calibration_method": "magic"}}, "quantization.calibration_method", "minmax"),
        ({"quantization": {"budget": {"min_auc_ratio": 1.5}}}, "quantization.budget.min_auc_ratio", "1"),
        ({"batching": {"max_batch_size": 0}}, "batching.max_batch_size", "greater than or equal to 1"),
        ({"unexpected": 1}, "unexpected", "Extra inputs are not permitted"),
        ({"task": "credit"}, "(top level)", "scorecard"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, change: dict, field: str, words: str) -> None:
    folder = write_model(tmp_path / "m", {**GOOD, **change})
    with pytest.raises(ConfigError) as caught:
        load_model_config(folder)
    message = str(caught.value)
    assert str(folder / "config.yaml") in message
    assert f"  {field}: " in message
    assert words in message


def test_missing_field_is_named(tmp_path: Path) -> None:
    config = {k: v for k, v in GOOD.items() if k != "label_column"}
    with pytest.raises(ConfigError, match=r"label_column: Field required"):
        load_model_config(write_model(tmp_path / "m", config))


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", GOOD)
    (folder / "holdout.parquet").unlink()
    with pytest.raises(ConfigError, match=r"holdout_file: file not found: .*holdout.parquet"):
        load_model_config(folder)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", GOOD)
    (folder / "config.yaml").write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_model_config(folder)
    (folder / "config.yaml").write_text("- a list")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_model_config(folder)
    with pytest.raises(ConfigError, match="not found"):
        load_model_config(tmp_path / "nowhere")


def test_every_problem_of_a_config_is_named_at_once_with_the_value_given(tmp_path: Path) -> None:
    bad = {**GOOD, "task": "mortgage", "decision": {"review": 0.2, "decline": 1.5}}
    folder = write_model(tmp_path / "m", bad)
    with pytest.raises(ConfigError) as caught:
        load_model_config(folder)
    lines = str(caught.value).splitlines()
    assert any(line.startswith("  task:") and "(got 'mortgage')" in line for line in lines)
    assert any(line.startswith("  decision.decline:") and "(got '1.5')" in line for line in lines)
