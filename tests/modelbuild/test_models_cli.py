"""`riskserve models build|list` end to end in a temporary repository, with small sizes."""

import json

import pytest

from server.cli.main import main
from server.config import load_model_config


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    flags = ["--models-dir", str(models_dir), "--quick", "--rows", "20000", "--seed", "5"]
    code = main(["models", "build", *flags])
    return code, models_dir


def test_build_writes_loadable_model_folders(built, capsys):
    code, models_dir = built
    assert code == 0
    for name in ("fraud", "credit"):
        config = load_model_config(models_dir / name)
        assert config.name == name
        metrics = json.loads((models_dir / name / "metrics.json").read_text())
        assert metrics["seed"] == 5
        assert "--seed 5" in metrics["command"] and "--quick" in metrics["command"]
        assert (models_dir / name / "MODEL_CARD.md").read_text().count(metrics["command"]) == 1


def test_list_shows_both_models(built, capsys):
    _, models_dir = built
    capsys.readouterr()
    assert main(["models", "list", "--models-dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "fraud" in out and "credit" in out and "6/6" in out


def test_only_rebuilds_one_model(tmp_path, capsys):
    assert main(["models", "build", "--models-dir", str(tmp_path), "--only", "credit", "--quick"]) == 0
    assert (tmp_path / "credit" / "model.onnx").is_file()
    assert not (tmp_path / "fraud").exists()
    assert "[credit] train" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fraud-rate", "0.7"], "--fraud-rate must be in (0, 0.5), got 0.7"),
        (["--fraud-rate", "0"], "--fraud-rate must be in (0, 0.5)"),
        (["--rows", "100"], "--rows must be at least 5000"),
    ],
)
def test_bad_flags_are_rejected_with_a_clear_message(tmp_path, capsys, flags, message):
    assert main(["models", "build", "--models-dir", str(tmp_path), "--quick", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
