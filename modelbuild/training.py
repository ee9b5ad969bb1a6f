"""Fit one model: the in-graph pre-processing and an MLP, as a single sklearn Pipeline."""

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from modelbuild.features import FeatureSet
from modelbuild.preprocessing import build_preprocessor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MlpSettings:
    hidden_layers: tuple[int, ...]
    alpha: float  # L2 penalty: keeps logits moderate, so float32 sigmoids do not saturate
    learning_rate_init: float = 1e-3
    batch_size: int = 512
    max_iter: int = 60
    early_stopping: bool = True
    validation_fraction: float = 0.15
    n_iter_no_change: int = 6


def training_inputs(frame: pd.DataFrame, features: FeatureSet) -> pd.DataFrame:
    """The feature columns as the ONNX graph sees them: float32 numbers, strings as str."""
    columns = {name: frame[name].to_numpy(np.float32) for name in features.floats}
    columns |= {name: frame[name].astype(str).to_numpy(dtype=object) for name in features.categorical}
    return pd.DataFrame(columns)[list(features.inputs)]


def fit_pipeline(
    train: pd.DataFrame, features: FeatureSet, categories: dict[str, list[str]], mlp: MlpSettings, seed: int
) -> Pipeline:
    """Fit pre-processing and MLP on `train` (deterministic for a given seed)."""
    classifier = MLPClassifier(
        hidden_layer_sizes=mlp.hidden_layers,
        alpha=mlp.alpha,
        learning_rate_init=mlp.learning_rate_init,
        batch_size=mlp.batch_size,
        max_iter=mlp.max_iter,
        early_stopping=mlp.early_stopping,
        validation_fraction=mlp.validation_fraction,
        n_iter_no_change=mlp.n_iter_no_change,
        random_state=seed,
    )
    pipeline = Pipeline([("preprocess", build_preprocessor(features, categories)), ("mlp", classifier)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(training_inputs(train, features), train[features.label].to_numpy())
    log.info("mlp fitted layers=%s epochs=%d", mlp.hidden_layers, classifier.n_iter_)
    return pipeline


def positive_scores(pipeline: Pipeline, frame: pd.DataFrame, features: FeatureSet) -> np.ndarray:
    """Probability of the positive class from the sklearn pipeline (the reference for the ONNX export)."""
    return pipeline.predict_proba(training_inputs(frame, features))[:, 1]


def parameter_count(pipeline: Pipeline) -> int:
    """Trainable weights and biases of the MLP."""
    classifier = pipeline.named_steps["mlp"]
    return int(sum(w.size for w in classifier.coefs_) + sum(b.size for b in classifier.intercepts_))
