"""The bundled models pass their accuracy gate as INT8 through the startup pipeline, with intervals that show
the budget and a (short) side-by-side timing that shows INT8 pays for their default objective."""

from pathlib import Path

import pytest

from server.config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.quantization.pipeline import prepare_model
from server.served_model import GateVerdict, Precision


@pytest.mark.parametrize("name", ["fraud", "credit"])
def test_bundled_model_is_served_int8_within_its_budget(name: str, tmp_path: Path) -> None:
    if not (BUNDLED_MODELS_DIR / name / "config.yaml").is_file():
        pytest.skip("bundled models not built")
    config = load_model_config(BUNDLED_MODELS_DIR / name)
    q = config.quantization.model_copy(update={"speed_seconds": 0.1, "speed_batch_sizes": (1,)})
    prepared = prepare_model(config.model_copy(update={"quantization": q}), tmp_path)
    report = prepared.report
    assert prepared.facts.precision is Precision.INT8
    assert prepared.facts.gate_verdict in (GateVerdict.PASSED, GateVerdict.PASSED_WITH_FALLBACK)
    assert all(check.passed for check in report.gate.final.checks)
    assert report.accuracy.roc_auc_ratio >= 0.999
    assert report.accuracy.max_flip_rate <= 0.005
    assert report.sizes.int8_over_fp32 < 1.0
    assert report.evidence.sufficient and report.benefit.pays
    assert report.serving.int8_chunk_rows is None  # static INT8: batch-invariant, served in any batch
    assert report.split.gate_rows + report.split.tuning_rows == report.holdout.rows
