"""Every gate verdict maps to riskserve_model_gate_passed / riskserve_model_fp32_fallback as documented in
docs/metrics.md: FP32 by design is no alert, FP32 because accuracy could not be shown is."""

import pytest

from server.metrics.collector import _model_families
from server.served_model import GateVerdict, ModelFacts, Precision

# verdict -> (precision served, gate_passed or None when absent, fp32_fallback)
EXPECTED = {
    GateVerdict.PASSED: (Precision.INT8, 1.0, 0.0),
    GateVerdict.PASSED_WITH_FALLBACK: (Precision.INT8, 1.0, 0.0),
    GateVerdict.FAILED: (Precision.FP32, 0.0, 1.0),
    GateVerdict.INSUFFICIENT_EVIDENCE: (Precision.FP32, 0.0, 1.0),
    GateVerdict.LIVE_DRIFT: (Precision.FP32, 0.0, 1.0),  # switched by on_live_drift: serve_fp32
    GateVerdict.NO_GAIN: (Precision.FP32, 1.0, 0.0),
    GateVerdict.NOT_QUANTIZABLE: (Precision.FP32, None, 0.0),
    GateVerdict.DISABLED: (Precision.FP32, None, 0.0),
}


def test_every_verdict_has_a_documented_mapping() -> None:
    assert set(EXPECTED) == set(GateVerdict)


@pytest.mark.parametrize("verdict", list(GateVerdict))
def test_gate_passed_and_fp32_fallback_per_verdict(verdict: GateVerdict) -> None:
    precision, gate_passed, fallback = EXPECTED[verdict]
    facts = ModelFacts("m", "1", "fraud", precision, verdict)
    families = {family.name: family for family in _model_families({"m": facts})}
    gate = [s.value for s in families["riskserve_model_gate_passed"].samples]
    assert gate == ([] if gate_passed is None else [gate_passed])
    assert [s.value for s in families["riskserve_model_fp32_fallback"].samples] == [fallback]
