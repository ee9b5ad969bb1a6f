"""Build one bundled model end to end: generate, split, fit, export, check, evaluate, write.

Each stage reports to a `progress(stage, seconds, detail)` callback so the CLI can print timings.
"""

import hashlib
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from modelbuild.artifacts import model_config_document, write_model_folder
from modelbuild.errors import ModelBuildError
from modelbuild.model_card import write_model_card
from modelbuild.onnx_export import export_onnx, onnx_positive_scores, onnx_session
from modelbuild.recipe import MODEL_VERSION, ModelRecipe
from modelbuild.splits import decision_shares
from modelbuild.training import fit_pipeline, parameter_count, positive_scores
from server.evaluation.risk_metrics import risk_metrics

log = logging.getLogger(__name__)
Progress = Callable[[str, str, float, str], None]
MAX_SATURATED_SHARE = 0.01  # scores exactly 0 or 1 in float32: the over-confidence trap (docs/models.md)
MAX_AUC_GAP = 1e-4  # ONNX vs sklearn ROC-AUC
MAX_PROBABILITY_GAP = 1e-5  # ONNX vs sklearn, per row
MIN_HOLDOUT_POSITIVES = 200  # below this, recall at 0.5 % alert rates moves by whole percent per case
PACKAGES = ("numpy", "pandas", "scikit-learn", "skl2onnx", "onnx", "onnxruntime")


@dataclass(frozen=True)
class BuildResult:
    name: str
    directory: Path
    metrics: dict[str, Any]
    seconds: float


def build_model(
    recipe: ModelRecipe, directory: Path, command: str, progress: Progress | None = None
) -> BuildResult:
    """Rebuild `directory` from `recipe`; raise ModelBuildError if the export disagrees with sklearn."""
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def stage(name: str, begin: float, detail: str) -> None:
        timings[name] = round(time.perf_counter() - begin, 2)
        if progress:
            progress(recipe.name, name, timings[name], detail)

    t = time.perf_counter()
    data = recipe.generate()
    stage("generate", t, f"{len(data):,} rows, positive rate {data[recipe.features.label].mean():.2%}")
    t = time.perf_counter()
    split = recipe.split(data)
    holdout_positives = int(split.holdout[recipe.features.label].sum())
    thin = holdout_positives < MIN_HOLDOUT_POSITIVES
    stage(
        "split",
        t,
        f"train {len(split.train):,} / calibration {len(split.calibration):,} / "
        f"holdout {len(split.holdout):,} ({holdout_positives} positives"
        + (f"; WARNING: fewer than {MIN_HOLDOUT_POSITIVES}, metrics will be noisy)" if thin else ")"),
    )
    if thin:
        log.warning(
            "thin holdout model=%s positives=%d minimum=%d",
            recipe.name,
            holdout_positives,
            MIN_HOLDOUT_POSITIVES,
        )
    t = time.perf_counter()
    pipeline = fit_pipeline(split.train, recipe.features, recipe.vocabulary, recipe.mlp, recipe.seed)
    epochs = int(pipeline.named_steps["mlp"].n_iter_)
    stage(
        "train",
        t,
        f"MLP {recipe.mlp.hidden_layers}, {parameter_count(pipeline):,} parameters, {epochs} epochs",
    )
    t = time.perf_counter()
    model = export_onnx(pipeline, recipe.features, recipe.name, MODEL_VERSION)
    stage("export", t, f"opset {model.opset_import[0].version}, {len(model.graph.input)} inputs")

    t = time.perf_counter()
    labels = split.holdout[recipe.features.label].to_numpy()
    reference = positive_scores(pipeline, split.holdout, recipe.features)
    scores = onnx_positive_scores(onnx_session(model), split.holdout, recipe.features)
    onnx_metrics = risk_metrics(labels, scores)
    sklearn_metrics = risk_metrics(labels, reference)
    gap = float(np.max(np.abs(scores - reference)))
    _check_export(
        recipe.name,
        onnx_metrics.roc_auc,
        sklearn_metrics.roc_auc,
        gap,
        onnx_metrics.share_scores_exactly_0_or_1,
    )
    review, decline = recipe.thresholds(scores)
    stage(
        "evaluate",
        t,
        f"ROC-AUC {onnx_metrics.roc_auc:.4f} (sklearn {sklearn_metrics.roc_auc:.4f}), "
        f"max |ONNX - sklearn| {gap:.1e}",
    )

    t = time.perf_counter()
    model_bytes = model.SerializeToString()
    metrics: dict[str, Any] = {
        "name": recipe.name,
        "version": MODEL_VERSION,
        "task": recipe.task,
        "seed": recipe.seed,
        "command": command,
        "holdout_metrics": onnx_metrics.as_dict(),
        "sklearn_holdout_metrics": sklearn_metrics.as_dict(),
        "onnx_vs_sklearn": {
            "roc_auc_onnx": onnx_metrics.roc_auc,
            "roc_auc_sklearn": sklearn_metrics.roc_auc,
            "max_abs_probability_difference": gap,
        },
        "decision": {
            "review": review,
            "decline": decline,
            "rule": recipe.threshold_rule,
            "holdout_shares": decision_shares(scores, review, decline),
            "holdout_positive_capture": _capture(labels, scores, review, decline),
        },
        "model": {
            "architecture": _architecture(pipeline),
            "hidden_layers": list(recipe.mlp.hidden_layers),
            "parameters": parameter_count(pipeline),
            "alpha": recipe.mlp.alpha,
            "epochs": epochs,
            "schedule": "early stopping on a validation split"
            if recipe.mlp.early_stopping
            else f"fixed schedule of at most {recipe.mlp.max_iter} epochs",
            "onnx_inputs": len(model.graph.input),
            "onnx_opset": model.opset_import[0].version,
            "onnx_sha256": hashlib.sha256(model_bytes).hexdigest(),
            "onnx_bytes": len(model_bytes),
        },
        "data": {
            "generator": recipe.generator_settings,
            "rows": {
                "generated": len(data),
                "train": len(split.train),
                "calibration": len(split.calibration),
                "holdout": len(split.holdout),
            },
            "positive_rate": {
                "generated": float(data[recipe.features.label].mean()),
                "train": float(split.train[recipe.features.label].mean()),
                "holdout": float(labels.mean()),
            },
        },
        "versions": {"python": platform.python_version(), **{p: package_version(p) for p in PACKAGES}},
    }
    if "fraud_scenario" in split.holdout:
        metrics["scenario_recall"] = _scenario_recall(split.holdout, scores, review, decline)
        metrics["data"]["scenario_rows"] = data["fraud_scenario"].value_counts().to_dict()
    config = model_config_document(recipe, MODEL_VERSION, review, decline)
    metrics["build_seconds"] = timings
    write_model_folder(directory, recipe, config, model, split.calibration, split.holdout, metrics)
    write_model_card(directory, recipe, metrics)
    stage("write", t, f"{directory}")
    return BuildResult(recipe.name, directory, metrics, round(time.perf_counter() - started, 2))


def _check_export(name: str, onnx_auc: float, sklearn_auc: float, gap: float, saturated: float) -> None:
    if gap > MAX_PROBABILITY_GAP:
        raise ModelBuildError(
            f"{name}: ONNX probabilities differ from sklearn by {gap:.2e} > {MAX_PROBABILITY_GAP}"
        )
    if abs(onnx_auc - sklearn_auc) > MAX_AUC_GAP:
        raise ModelBuildError(
            f"{name}: ONNX ROC-AUC {onnx_auc:.5f} vs sklearn {sklearn_auc:.5f}: saturated scores?"
            " raise the MLP's alpha"
        )
    if saturated > MAX_SATURATED_SHARE:
        raise ModelBuildError(
            f"{name}: {saturated:.2%} of holdout scores are exactly 0 or 1 (over-confident MLP);"
            " raise the MLP's alpha"
        )


def _capture(labels: np.ndarray, scores: np.ndarray, review: float, decline: float) -> dict[str, float]:
    positives = labels == 1
    return {
        "review_or_decline": float(np.mean(scores[positives] >= review)),
        "decline": float(np.mean(scores[positives] >= decline)),
    }


def _scenario_recall(
    holdout, scores: np.ndarray, review: float, decline: float
) -> dict[str, dict[str, float]]:
    result = {}
    for scenario, rows in holdout.groupby("fraud_scenario").indices.items():
        result[str(scenario)] = {
            "rows": int(rows.size),
            "flagged": float(np.mean(scores[rows] >= review)),
            "declined": float(np.mean(scores[rows] >= decline)),
        }
    return result


def _architecture(pipeline) -> str:
    mlp = pipeline.named_steps["mlp"]
    widths = [mlp.coefs_[0].shape[0], *(w.shape[1] for w in mlp.coefs_)]
    return "-".join(str(w) for w in widths) + f" ({mlp.activation}, sigmoid output)"
