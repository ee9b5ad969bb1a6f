"""Startup checks on a model repository, before anything listens."""

import logging
import re
import shutil

import pytest
import yaml

from server.app.startup import discover_models
from server.config.errors import ConfigError
from server.config.paths import BUNDLED_MODELS_DIR
from server.config.settings import ServerSettings


def _copy_fraud(tmp_path, **changes):
    folder = tmp_path / "fraud"
    shutil.copytree(BUNDLED_MODELS_DIR / "fraud", folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    for key, value in changes.items():
        config[key] = value
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return config


def test_a_queue_smaller_than_the_request_limit_is_announced(tmp_path, caplog):
    config = _copy_fraud(tmp_path)
    config["batching"] = {**config.get("batching", {}), "max_queue_size": 100}
    (tmp_path / "fraud" / "config.yaml").write_text(yaml.safe_dump(config))
    with caplog.at_level(logging.WARNING):
        (loaded,), problems = discover_models(ServerSettings(models_dir=tmp_path, max_request_rows=4096))
    assert problems == []
    assert loaded.batching.max_queue_size == 100
    assert any(
        "event=request_limit_lowered model=fraud" in r.getMessage() and "at most 100 rows" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("behaviour.shoe_size", "has no such field"),
        ("shoe_size", "has no such field"),
        ("currency", "is a string field; the feature is float32"),
    ],
)
def test_a_feature_source_the_transaction_lacks_is_named(tmp_path, source, problem):
    config = _copy_fraud(tmp_path)
    config["inputs"][0]["source"] = source  # the `amount` input, float32
    (tmp_path / "fraud" / "config.yaml").write_text(yaml.safe_dump(config))
    expected = f"feature 'amount' (source {source}): riskserve.v1.Transaction {problem}"
    configs, (found,) = discover_models(ServerSettings(models_dir=tmp_path))
    assert configs == [] and (found.name, found.kind) == ("fraud", "config") and expected in found.message
    with pytest.raises(ConfigError, match=re.escape(expected)):
        discover_models(ServerSettings(models_dir=tmp_path, exit_on_model_error=True))


def test_an_empty_repository_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no model folders"):
        discover_models(ServerSettings(models_dir=tmp_path))
