"""The verdict of a cold build, and why, in the order a reviewer reads it:

1. `failed`: the tuner never got INT8 inside the budget on the tuning rows;
2. `insufficient_evidence`: the gate's rows cannot show the budget (too few positives, or an interval wider
   than the budget allows), whatever the point estimates say;
3. `failed`: inside on the tuning rows, outside on the gate's rows;
4. `no_gain`: inside the budget, but INT8 does not buy what the objective asks;
5. `passed` (no tuner move) or `passed_with_fallback`.

Every verdict but the last two serves FP32.
"""

from typing import TYPE_CHECKING

from server.served_model import GateVerdict

if TYPE_CHECKING:
    from server.quantization.build import BuildOutcome


def decide(outcome: "BuildOutcome") -> tuple[GateVerdict, str | None]:
    """The verdict and, unless INT8 is served, the one-line reason FP32 is served instead."""
    tuning, evidence = outcome.tuning, outcome.evidence
    if not tuning.passed:
        failures = "; ".join(tuning.final.gate.failures())
        return GateVerdict.FAILED, (
            f"INT8 never within the accuracy budget on the tuning rows ({failures}; tuner stopped: "
            f"{tuning.stopped_because}): serving FP32"
        )
    if not evidence.sufficient:
        more, problems = evidence.more_holdout_rows_needed, "; ".join(evidence.problems)
        return GateVerdict.INSUFFICIENT_EVIDENCE, (
            f"the gate's {evidence.rows} holdout rows cannot show the budget ({problems}): about {more:,} "
            "more labelled holdout rows needed (at this positive rate and split): serving FP32"
        )
    if not outcome.gate.passed:
        return GateVerdict.FAILED, (
            "INT8 within the budget on the tuning rows but not on the gate's rows ("
            + "; ".join(outcome.gate.failures())
            + "): serving FP32"
        )
    benefit = outcome.benefit
    if benefit is not None and not benefit.pays:
        return (
            GateVerdict.NO_GAIN,
            f"INT8 within the budget but does not pay ({benefit.reason}): serving FP32",
        )
    return (GateVerdict.PASSED_WITH_FALLBACK if tuning.steps else GateVerdict.PASSED), None
