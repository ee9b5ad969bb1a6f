"""Quantizes one recipe at a time inside a scratch folder and scores it as served on the holdout's parts.

`Fp32Reference` is computed once per build: the original FP32 model's serving chunk size, its scores on
the tuning and the gate rows, as served, and its ROC-AUC on all of them. A workbench is set up per
canonical form of the graph (rewrites/canonicalize.py): ORT's pre-processing and the graph facts. Each
attempt: quantize, read how its layers run, decide its serving chunk size, score the tuning rows with it,
check the budget.
"""

from pathlib import Path

import numpy as np
import onnx
from sklearn.metrics import roc_auc_score

from server.config.model_config import ModelConfig
from server.quantization.calibration_data import FeatureBatchReader, FeatureTable
from server.quantization.errors import ModelFileError
from server.quantization.evaluation import (
    AccuracyComparison,
    compare_scores,
    invariance_rows,
    served_scores,
    serving_chunk_rows,
)
from server.quantization.gate import GateResult, check_budget
from server.quantization.holdout_split import HoldoutSplit
from server.quantization.layer_precision import layer_precisions
from server.quantization.model_graph import ModelGraph, load_model_graph
from server.quantization.quantizer import QuantizationRecipe, preprocess, quantize
from server.quantization.tuner import Attempt


class Fp32Reference:
    """The original FP32 model as served: its chunk size and its scores on both parts of the holdout."""

    def __init__(self, config: ModelConfig, calibration: FeatureTable, split: HoldoutSplit) -> None:
        self.invariance = invariance_rows(calibration)
        self.chunk_rows, _ = serving_chunk_rows(config.onnx_path, self.invariance, config.output_name)
        self.tuning = served_scores(config.onnx_path, split.tuning, config, self.chunk_rows)
        self.gate = served_scores(config.onnx_path, split.gate, config, self.chunk_rows)
        assert split.tuning.labels is not None and split.gate.labels is not None
        # On every holdout row: what the model's card records (server/model_integrity.py checks it).
        labels = np.concatenate([split.tuning.labels, split.gate.labels])
        self.holdout_roc_auc = float(roc_auc_score(labels, np.concatenate([self.tuning, self.gate])))
        low = min(self.tuning.min(), self.gate.min())
        high = max(self.tuning.max(), self.gate.max())
        if low < 0.0 or high > 1.0:  # e.g. a torch export that ends in logits, without its Sigmoid
            raise ModelFileError(
                f"ONNX model {config.onnx_path}: output '{config.output_name}' holds values in [{low:.4g}, "
                f"{high:.4g}] on the holdout rows, not probabilities in [0, 1]; riskserve decides on "
                "probabilities: export the model with its final Sigmoid (or Softmax)"
            )


class QuantizationWorkbench:
    """Everything an attempt on one canonical form needs, computed once; `attempt` builds and scores one
    recipe."""

    def __init__(
        self,
        config: ModelConfig,
        source: Path,
        reduce_range: bool,
        workdir: Path,
        calibration: FeatureTable,
        split: HoldoutSplit,
        fp32: Fp32Reference,
    ) -> None:
        self.config, self.reduce_range, self.workdir, self.split = config, reduce_range, workdir, split
        self.fp32 = fp32
        workdir.mkdir(parents=True, exist_ok=True)
        self.reader = FeatureBatchReader(calibration)
        self.preprocessed = workdir / "preprocessed.onnx"
        self.ranges = workdir / "calibration_ranges.json"
        self.calibration_runs = 0
        self._count = 0
        preprocess(source, self.preprocessed)
        q = config.quantization
        self.graph: ModelGraph = load_model_graph(self.preprocessed, q.op_types, config.output_name)
        self._preprocessed_model = onnx.load(str(self.preprocessed))
        self.layer_weights = _layer_weights(self.graph)

    def attempt(self, recipe: QuantizationRecipe) -> Attempt:
        """Quantize `recipe`, read how it runs, score the tuning rows as it will be served."""
        self._count += 1
        path = self.workdir / f"candidate-{self._count}.onnx"
        q = self.config.quantization
        if quantize(self.preprocessed, path, recipe, q, self.reduce_range, self.ranges, self.reader):
            self.calibration_runs += 1
        layers = layer_precisions(path, self._preprocessed_model, self.graph.quantizable_layers)
        chunk_rows, _ = serving_chunk_rows(path, self.fp32.invariance, self.config.output_name)
        scores = served_scores(path, self.split.tuning, self.config, chunk_rows)
        comparison = self._compare(self.split.tuning, self.fp32.tuning, scores)
        gate = check_budget(comparison, q.budget)
        fp32_weights = sum(self.layer_weights.get(name, 0) for name in recipe.fp32_layers)
        size = path.stat().st_size
        return Attempt(recipe, comparison, gate, size, fp32_weights, scores, layers, chunk_rows, path)

    def judge(self, attempt: Attempt) -> tuple[np.ndarray, AccuracyComparison, GateResult]:
        """`attempt` on the gate's rows, served as it will be: its scores, the comparison, the budget."""
        assert attempt.path is not None
        scores = served_scores(attempt.path, self.split.gate, self.config, attempt.chunk_rows)
        comparison = self._compare(self.split.gate, self.fp32.gate, scores)
        return scores, comparison, check_budget(comparison, self.config.quantization.budget)

    def _compare(self, table: FeatureTable, fp32: np.ndarray, scores: np.ndarray) -> AccuracyComparison:
        assert table.labels is not None
        return compare_scores(table.labels, fp32, scores, self.config.decision.thresholds())


def activation_inputs(graph: ModelGraph) -> dict[str, str]:
    """Each quantizable layer's activation input tensor (input 0), for 16-bit overrides."""
    return {n.name: n.input[0] for n in graph.model.graph.node if n.name in graph.quantizable_layers}


def _layer_weights(graph: ModelGraph) -> dict[str, int]:
    """Each quantizable layer's constant parameters (weights and bias), counted in elements."""
    sizes = {init.name: int(np.prod(init.dims)) for init in graph.model.graph.initializer}
    return {
        n.name: sum(sizes.get(name, 0) for name in n.input[1:])
        for n in graph.model.graph.node
        if n.name in graph.quantizable_layers
    }
