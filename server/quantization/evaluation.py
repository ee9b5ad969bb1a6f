"""INT8 against FP32 on the holdout file: the financial metrics a model-risk reviewer signs off on.

Scores are taken as the server will serve them: a batch-invariant model in big calls, a batch-dependent one
in the fixed chunks (or one row per call) that server/batch_invariance.py chooses for it, the same choice
the runtime starts from.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort

from server.batch_invariance import INVARIANCE_CHECK_ROWS, Feeds, Run, choose_chunk_rows, run_in_fixed_chunks
from server.config.model_config import ModelConfig
from server.evaluation.figures import AccuracyComparison
from server.evaluation.risk_metrics import risk_metrics
from server.evaluation.score_comparison import decision_flip_rate, population_stability_index
from server.model_io import SCORING_CHUNK_ROWS, output_positive_column, output_width, probability_column
from server.ort_session import create_session
from server.quantization.calibration_data import FeatureTable


def positive_scores(session: ort.InferenceSession, table: FeatureTable, config: ModelConfig) -> np.ndarray:
    """The positive class's probability (the configured output column, as the server reads it) for every
    row of `table`."""
    chunks = []
    for start in range(0, table.rows, SCORING_CHUNK_ROWS):
        (outputs,) = session.run([config.output_name], table.batch(start, start + SCORING_CHUNK_ROWS))
        outputs = np.asarray(outputs)
        chunks.append(probability_column(outputs, output_positive_column(config, output_width(outputs))))
    return np.concatenate(chunks)


def score_model(model_path: Path, table: FeatureTable, config: ModelConfig) -> np.ndarray:
    return positive_scores(create_session(model_path), table, config)


def model_runner(model_path: Path, output_name: str) -> Run:
    """One ORT call on `model_path` under the serving session options: feeds -> the output."""
    session = create_session(model_path)
    return lambda feeds: np.asarray(session.run([output_name], feeds)[0])


def serving_chunk_rows(model_path: Path, rows: Feeds, output_name: str) -> tuple[int | None, bool]:
    """The rows per call `model_path` is served with (None: any batch) and whether that is invariant."""
    return choose_chunk_rows(model_runner(model_path, output_name), rows)


def invariance_rows(table: FeatureTable) -> Feeds:
    """The rows the invariance check scores alone and together (the table's first ones)."""
    return table.batch(0, INVARIANCE_CHECK_ROWS)


def served_scores(
    model_path: Path, table: FeatureTable, config: ModelConfig, chunk_rows: int | None
) -> np.ndarray:
    """The positive-class probability of every row of `table`, with `chunk_rows` rows per call as served
    (None: calls of SCORING_CHUNK_ROWS, the same scores for a batch-invariant model)."""
    if chunk_rows is None:
        return score_model(model_path, table, config)
    outputs = run_in_fixed_chunks(model_runner(model_path, config.output_name), table.feeds, chunk_rows)
    return probability_column(outputs, output_positive_column(config, output_width(outputs)))


def compare_scores(
    labels: np.ndarray, fp32_scores: np.ndarray, int8_scores: np.ndarray, thresholds: dict[str, float]
) -> AccuracyComparison:
    """Every accuracy figure of the INT8 scores against the FP32 scores of the same holdout rows."""
    fp32, int8 = risk_metrics(labels, fp32_scores), risk_metrics(labels, int8_scores)
    difference = np.abs(int8_scores.astype(np.float64) - fp32_scores.astype(np.float64))
    flip_rates = {
        name: decision_flip_rate(fp32_scores, int8_scores, limit) for name, limit in thresholds.items()
    }
    return AccuracyComparison(
        fp32=fp32,
        int8=int8,
        roc_auc_delta=int8.roc_auc - fp32.roc_auc,
        roc_auc_ratio=int8.roc_auc / fp32.roc_auc,
        pr_auc_delta=int8.pr_auc - fp32.pr_auc,
        ks_delta=int8.ks - fp32.ks,
        brier_delta=int8.brier - fp32.brier,
        mean_abs_score_diff=float(difference.mean()),
        max_abs_score_diff=float(difference.max()),
        psi=population_stability_index(fp32_scores, int8_scores),
        distinct_score_ratio=int8.distinct_scores / fp32.distinct_scores,
        flip_rates=flip_rates,
        max_flip_rate=max(flip_rates.values(), default=0.0),
    )
