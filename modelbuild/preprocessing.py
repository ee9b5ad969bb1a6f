"""Pre-processing that travels inside the ONNX graph: log1p for heavy tails, scaling, one-hot encoding.

`Log1pTransformer` is ours, so it comes with its own skl2onnx converter (Max(x, 0) -> Add 1 -> Log),
registered once by `register_log1p_converter()`.
"""

import numpy as np
from onnx import TensorProto
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelbuild.features import FeatureSet


class Log1pTransformer(TransformerMixin, BaseEstimator):
    """log(1 + max(x, 0)): compresses heavy-tailed amounts and counts; negatives (invalid) map to 0."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.log1p(np.maximum(np.asarray(X, dtype=np.float64), 0.0))

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features if input_features is not None else [], dtype=object)


def _log1p_shape(operator) -> None:
    operator.outputs[0].type = operator.inputs[0].type.__class__(operator.inputs[0].type.shape)


def _log1p_convert(scope, operator, container) -> None:
    zero = scope.get_unique_variable_name("log1p_zero")
    one = scope.get_unique_variable_name("log1p_one")
    container.add_initializer(zero, TensorProto.FLOAT, [], [0.0])
    container.add_initializer(one, TensorProto.FLOAT, [], [1.0])
    clipped = scope.get_unique_variable_name("log1p_clipped")
    shifted = scope.get_unique_variable_name("log1p_shifted")
    container.add_node(
        "Max", [operator.inputs[0].full_name, zero], clipped, name=scope.get_unique_operator_name("Log1pMax")
    )
    container.add_node("Add", [clipped, one], shifted, name=scope.get_unique_operator_name("Log1pAdd"))
    container.add_node(
        "Log", [shifted], operator.outputs[0].full_name, name=scope.get_unique_operator_name("Log1p")
    )


def register_log1p_converter() -> None:
    """Teach skl2onnx to convert Log1pTransformer (idempotent)."""
    from skl2onnx import update_registered_converter

    update_registered_converter(Log1pTransformer, "RiskserveLog1p", _log1p_shape, _log1p_convert)


def build_preprocessor(features: FeatureSet, categories: dict[str, list[str]]) -> ColumnTransformer:
    """The ColumnTransformer of one model. `categories` fixes each string column's vocabulary, so the
    one-hot layout (and the list written to config.yaml) does not depend on what the sample held."""
    encoder = OneHotEncoder(
        categories=[categories[name] for name in features.categorical],
        handle_unknown="ignore",
        sparse_output=False,
        dtype=np.float32,
    )
    return ColumnTransformer(
        [
            (
                "log_scaled",
                Pipeline([("log1p", Log1pTransformer()), ("scale", StandardScaler())]),
                list(features.log_scaled),
            ),
            ("scaled", StandardScaler(), list(features.scaled)),
            ("one_hot", encoder, list(features.categorical)),
        ],
        remainder="drop",
    )
