"""The integrity record of a quantized model: the FP32 holdout ROC-AUC the gate measured is checked against
the recorded one, from a cold build and from the cache alike; the digest before anything reads the file."""

import hashlib
import logging
from pathlib import Path

import pytest

from server.quantization.errors import ModelIntegrityError
from server.quantization.pipeline import prepare_model


def _recorded(config, **integrity):
    return config.model_copy(update={"integrity": type(config.integrity).model_validate(integrity)})


def test_the_gates_fp32_auc_is_checked_cold_and_cached(model_folder, tmp_path: Path, caplog) -> None:
    config = model_folder()
    digest = hashlib.sha256(config.onnx_path.read_bytes()).hexdigest()
    measured = prepare_model(config, tmp_path).report.holdout.fp32_roc_auc
    assert 0.5 < measured <= 1.0
    with caplog.at_level(logging.INFO, logger="server"):
        recorded = _recorded(config, model_sha256=digest, holdout_roc_auc=measured + 0.004)
        cached = prepare_model(recorded, tmp_path)
    assert cached.facts.from_cache
    assert any("event=model_verified" in r.getMessage() for r in caplog.records)
    with pytest.raises(ModelIntegrityError) as error:
        prepare_model(_recorded(config, holdout_roc_auc=measured - 0.01), tmp_path)
    assert f"{config.onnx_path}: FP32 ROC-AUC {measured:.4f} on holdout.parquet" in str(error.value)
    assert f"its config records {measured - 0.01:.4f}" in str(error.value)
    loose = _recorded(config, holdout_roc_auc=measured - 0.01, roc_auc_tolerance=0.02)
    assert prepare_model(loose, tmp_path).facts.from_cache


def test_a_wrong_digest_stops_before_the_cache_is_read(model_folder, tmp_path: Path) -> None:
    config = _recorded(model_folder(), model_sha256="0" * 64)
    says = rf"{config.onnx_path}: SHA-256 \w{{12}}… is not the 0{{12}}…"
    with pytest.raises(ModelIntegrityError, match=says):
        prepare_model(config, tmp_path)
    assert not (tmp_path / config.name).exists()
