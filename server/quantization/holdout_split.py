"""The holdout split: the tuner chooses on one part, the gate judges on the other, so the rows that pick
the layers never also pass them. Stratified by label with a fixed seed: the same file always splits the
same way, and both parts keep the file's positive rate."""

from dataclasses import dataclass

import numpy as np

from server.quantization.calibration_data import FeatureTable

SPLIT_SEED = 7


@dataclass(frozen=True)
class HoldoutSplit:
    tuning: FeatureTable
    gate: FeatureTable
    gate_fraction: float


def split_holdout(holdout: FeatureTable, gate_fraction: float, seed: int = SPLIT_SEED) -> HoldoutSplit:
    """`gate_fraction` of each label's rows (rounded) to the gate, the rest to the tuner."""
    assert holdout.labels is not None, "the holdout table has labels"
    rng = np.random.default_rng(seed)
    gate_rows, tuning_rows = [], []
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(holdout.labels == label))
        cut = round(gate_fraction * rows.size)
        gate_rows.append(rows[:cut])
        tuning_rows.append(rows[cut:])
    gate = np.sort(np.concatenate(gate_rows))
    tuning = np.sort(np.concatenate(tuning_rows))
    return HoldoutSplit(holdout.subset(tuning), holdout.subset(gate), gate_fraction)
