"""A model's ONNX file checked against what its builder recorded (the config's `integrity` section).

- `model_sha256`: the file's SHA-256, checked before anything reads the file. Another digest (scrambled,
  truncated or swapped bytes) keeps the model out: it is never served, in FP32 or INT8.
- `holdout_roc_auc`: the FP32 model's ROC-AUC on the holdout file. The pipeline measures it on every holdout
  row with the FP32 scores the gate already has (a model with nothing to quantize: one FP32 pass); more than
  `roc_auc_tolerance` away keeps the model out.

A model with no record (a user's model before `riskserve models init` recorded one) is served as before; one
log line says what was not checked.
"""

import hashlib
import logging
from pathlib import Path

from server.config.model_config import ModelConfig
from server.quantization.errors import ModelIntegrityError

log = logging.getLogger(__name__)

SHOWN_DIGITS = 12  # of a SHA-256 in messages


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_model_digest(config: ModelConfig) -> None:
    """ModelIntegrityError naming the file and both digests if it is not the recorded one; one log line
    if nothing is recorded."""
    integrity = config.integrity
    unchecked = [key for key in ("model_sha256", "holdout_roc_auc") if getattr(integrity, key) is None]
    if unchecked:
        log.warning(
            "event=model_unverified model=%s unchecked=%s detail=%r",
            config.name,
            ",".join(unchecked),
            f"{config.directory / 'config.yaml'} records no integrity.{' or integrity.'.join(unchecked)}: "
            "served without that check (riskserve models init records both)",
        )
    if integrity.model_sha256 is None:
        return
    actual = file_sha256(config.onnx_path)
    if actual != integrity.model_sha256:
        raise ModelIntegrityError(
            f"ONNX model {config.onnx_path}: SHA-256 {actual[:SHOWN_DIGITS]}… is not the "
            f"{integrity.model_sha256[:SHOWN_DIGITS]}… its config records (integrity.model_sha256): the file "
            "is corrupted or was replaced; restore it, or record the new file's digest and holdout ROC-AUC"
        )


def check_holdout_auc(config: ModelConfig, measured: float | None) -> None:
    """ModelIntegrityError naming the file and both ROC-AUCs if `measured` (the FP32 model's on the holdout
    file) is further than the tolerance from the recorded one."""
    integrity = config.integrity
    if integrity.holdout_roc_auc is None:
        return
    if measured is None:
        measured = measure_holdout_auc(config)
    off = abs(measured - integrity.holdout_roc_auc)
    if off > integrity.roc_auc_tolerance:
        raise ModelIntegrityError(
            f"ONNX model {config.onnx_path}: FP32 ROC-AUC {measured:.4f} on {config.holdout_path.name}, "
            f"its config records {integrity.holdout_roc_auc:.4f} (integrity.holdout_roc_auc; off by "
            f"{off:.4f}, tolerance {integrity.roc_auc_tolerance:g}): the model or its holdout file is not "
            "the one measured"
        )
    log.info(
        "event=model_verified model=%s sha256=%s holdout_roc_auc=%.6f recorded_roc_auc=%.6f",
        config.name,
        (integrity.model_sha256 or "unchecked")[:SHOWN_DIGITS],
        measured,
        integrity.holdout_roc_auc,
    )


def measure_holdout_auc(config: ModelConfig) -> float:
    """The FP32 model's ROC-AUC on every holdout row (for models the gate never scores)."""
    from sklearn.metrics import roc_auc_score

    from server.quantization.calibration_data import load_holdout_table
    from server.quantization.evaluation import served_scores

    holdout = load_holdout_table(config)
    return float(roc_auc_score(holdout.labels, served_scores(config.onnx_path, holdout, config, None)))
