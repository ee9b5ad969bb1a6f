"""Canonicalize what common exporters emit before quantizing, each rewrite checked on the FP32 scores.

Rewrites run in order, each on the result of the ones kept before it. The exact ones (FeatureVectorizer ->
Concat, identity Casts removed, Normalizer as standard ops: exporter_ops.py) make the base form; the folds
(Scalers into the first dense layer, wide one-hot encodings into a row gather: front_end_fold.py) make a
folded form on top of it.
The folds are exact in FP32 but change what the first layer's 8-bit input quantizes (unscaled columns of
very different spreads share one per-tensor range), so the build quantizes both forms and keeps the folded
one only if its first INT8 attempt is as close to the budget. A rewrite is kept only if the FP32 outputs on
the calibration rows stay within TOLERANCE of the original model's (max absolute difference over every
output value); otherwise it is dropped and the report says so with the difference it caused.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from server.ort_session import latency_session_options
from server.quantization.rewrites.exporter_ops import (
    drop_identity_casts,
    drop_initializer_inputs,
    feature_vectorizer_to_concat,
    normalizer_to_standard_ops,
)
from server.quantization.rewrites.front_end_fold import fold_scalers, onehot_to_gather
from server.quantization.rewrites.records import Change

log = logging.getLogger(__name__)

TOLERANCE = 1e-6
SCORING_CHUNK_ROWS = 4096
Rewrite = Callable[[onnx.ModelProto], list[Change]]
EXACT_REWRITES: tuple[Rewrite, ...] = (
    drop_initializer_inputs,
    feature_vectorizer_to_concat,
    drop_identity_casts,
    normalizer_to_standard_ops,
)
FOLD_REWRITES: tuple[Rewrite, ...] = (fold_scalers, onehot_to_gather)


@dataclass(frozen=True)
class RewriteOutcome:
    """One change a rewrite made (or considered), and whether the canonical model keeps it."""

    change: Change
    kept: bool
    max_abs_diff: float | None  # FP32 outputs after the rewrite vs the original; None when not applied
    reason: str


@dataclass(frozen=True)
class CanonicalForms:
    base: Path  # the exact rewrites kept
    folded: Path | None  # base + the folds kept; None when no fold applies
    outcomes: list[RewriteOutcome]


def canonicalize(
    source: Path, workdir: Path, rows: dict[str, np.ndarray], output_name: str
) -> CanonicalForms:
    """Write the base and (if any fold applies) the folded canonical form of `source` into `workdir`."""
    model = onnx.load(str(source))
    reference = _outputs(model, rows, output_name)
    base, outcomes = _apply(model, EXACT_REWRITES, reference, rows, output_name)
    base_path = workdir / "canonical.onnx"
    onnx.save(base, str(base_path))
    folded, fold_outcomes = _apply(base, FOLD_REWRITES, reference, rows, output_name)
    folded_path = None
    if any(o.kept for o in fold_outcomes):
        folded_path = workdir / "canonical-folded.onnx"
        onnx.save(folded, str(folded_path))
    return CanonicalForms(base_path, folded_path, outcomes + fold_outcomes)


def _apply(
    model: onnx.ModelProto,
    rewrites: tuple[Rewrite, ...],
    reference: np.ndarray,
    rows: dict[str, np.ndarray],
    output_name: str,
) -> tuple[onnx.ModelProto, list[RewriteOutcome]]:
    """`model` with each of `rewrites` whose FP32 outputs stay within TOLERANCE of `reference`."""
    outcomes: list[RewriteOutcome] = []
    for rewrite in rewrites:
        candidate = onnx.ModelProto.FromString(model.SerializeToString())
        try:
            changes = rewrite(candidate)
        except Exception as exc:  # a rewrite that cannot handle this graph leaves it alone, never fails it
            log.warning("event=rewrite_error rewrite=%s error=%r", rewrite.__name__, str(exc))
            continue
        made = [c for c in changes if not c.skipped]
        outcomes += [
            RewriteOutcome(c, False, None, f"not applied: {c.skipped}") for c in changes if c.skipped
        ]
        if not made:
            continue
        difference, problem = _difference(candidate, reference, rows, output_name)
        kept = problem is None and difference <= TOLERANCE
        reason = (
            f"kept: FP32 outputs within {TOLERANCE:g} of the original (max |diff| {difference:.2g})"
            if kept
            else f"dropped: {problem or f'FP32 outputs moved by up to {difference:.3g} (> {TOLERANCE:g})'}"
        )
        outcomes += [RewriteOutcome(c, kept, difference if problem is None else None, reason) for c in made]
        log.info("event=rewrite rewrite=%s kept=%s max_abs_diff=%.3g", rewrite.__name__, kept, difference)
        if kept:
            model = candidate
    return model, outcomes


def _difference(
    candidate: onnx.ModelProto, reference: np.ndarray, rows: dict[str, np.ndarray], output_name: str
) -> tuple[float, str | None]:
    """Max |candidate - reference| over the outputs, or (inf, why) if the candidate does not run."""
    try:
        onnx.checker.check_model(candidate)
        outputs = _outputs(candidate, rows, output_name)
    except Exception as exc:
        return float("inf"), f"the rewritten graph does not run ({type(exc).__name__}: {exc})"
    if outputs.shape != reference.shape:
        return float("inf"), f"output shape {outputs.shape} instead of {reference.shape}"
    return float(np.max(np.abs(outputs.astype(np.float64) - reference.astype(np.float64)))), None


def _outputs(model: onnx.ModelProto, rows: dict[str, np.ndarray], output_name: str) -> np.ndarray:
    """`model`'s `output_name` for `rows`, under the serving session options."""
    session = ort.InferenceSession(
        model.SerializeToString(), latency_session_options(), providers=["CPUExecutionProvider"]
    )
    total = len(next(iter(rows.values())))
    chunks = []
    for start in range(0, total, SCORING_CHUNK_ROWS):
        feeds = {name: values[start : start + SCORING_CHUNK_ROWS] for name, values in rows.items()}
        chunks.append(np.asarray(session.run([output_name], feeds)[0]))
    return np.concatenate(chunks)
