"""The cold path for one model: pre-process, calibrate, quantize, evaluate against FP32, tune, time.

Everything is written inside a scratch folder; the pipeline copies the result into the cache afterwards.
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from server.config.model_config import ModelConfig
from server.config.quantization_config import FallbackPrecision, QuantizationMode
from server.quantization.calibration_data import FeatureBatchReader, FeatureTable
from server.quantization.errors import QuantizationError
from server.quantization.evaluation import AccuracyComparison, compare_scores, score_model
from server.quantization.gate import check_budget
from server.quantization.model_graph import ModelGraph, load_model_graph
from server.quantization.quantizer import QuantizationRecipe, preprocess, quantize
from server.quantization.speed import BatchTiming, time_models
from server.quantization.tuner import Attempt, TuningResult, tune

log = logging.getLogger(__name__)


@dataclass
class BuildOutcome:
    graph: ModelGraph  # the pre-processed graph whose layer names the report uses
    tuning: TuningResult
    initial: Attempt
    model_path: Path  # the best quantized model found (served only if the gate passed)
    calibration_runs: int
    calibration_rows: int  # rows the calibrator saw (equal batches, see FeatureBatchReader)
    unprotected_distinct_score_ratio: float | None
    timings: dict[str, dict[int, BatchTiming]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class QuantizationWorkbench:
    """Quantizes one recipe at a time inside `workdir` and scores it on the holdout set."""

    def __init__(
        self,
        config: ModelConfig,
        graph: ModelGraph,
        reduce_range: bool,
        workdir: Path,
        calibration: FeatureTable,
        holdout: FeatureTable,
    ) -> None:
        self.config, self.graph, self.reduce_range, self.workdir = config, graph, reduce_range, workdir
        self.holdout = holdout
        self.reader = FeatureBatchReader(calibration)
        self.preprocessed = workdir / "preprocessed.onnx"
        self.ranges = workdir / "calibration_ranges.json"
        self.calibration_runs = 0
        self._count = 0
        preprocess(config.onnx_path, self.preprocessed)
        self.layer_weights: dict[str, int] = {}  # set by build() once the pre-processed graph is loaded
        self.fp32_scores = score_model(config.onnx_path, holdout, config)

    def attempt(self, recipe: QuantizationRecipe) -> tuple[Attempt, Path]:
        self._count += 1
        path = self.workdir / f"candidate-{self._count}.onnx"
        q = self.config.quantization
        if quantize(self.preprocessed, path, recipe, q, self.reduce_range, self.ranges, self.reader):
            self.calibration_runs += 1
        scores = score_model(path, self.holdout, self.config)
        comparison = self.compare(scores)
        gate = check_budget(comparison, q.budget)
        fp32_weights = sum(self.layer_weights.get(name, 0) for name in recipe.fp32_layers)
        return Attempt(recipe, comparison, gate, path.stat().st_size, fp32_weights), path

    def compare(self, scores: np.ndarray) -> AccuracyComparison:
        assert self.holdout.labels is not None
        return compare_scores(
            self.holdout.labels, self.fp32_scores, scores, self.config.decision.thresholds()
        )


def activation_inputs(graph: ModelGraph) -> dict[str, str]:
    """Each quantizable layer's activation input tensor (input 0), for 16-bit overrides."""
    return {n.name: n.input[0] for n in graph.model.graph.node if n.name in graph.quantizable_layers}


def layer_weights(graph: ModelGraph) -> dict[str, int]:
    """Each quantizable layer's constant parameters (weights and bias), counted in elements."""
    sizes = {init.name: int(np.prod(init.dims)) for init in graph.model.graph.initializer}
    return {
        n.name: sum(sizes.get(name, 0) for name in n.input[1:])
        for n in graph.model.graph.node
        if n.name in graph.quantizable_layers
    }


def build(
    config: ModelConfig,
    graph: ModelGraph,
    reduce_range: bool,
    workdir: Path,
    calibration: FeatureTable,
    holdout: FeatureTable,
) -> BuildOutcome:
    """Quantize per config, tune until within budget (or give up), and time FP32 against the result.

    Layer names are those of the pre-processed graph (pre-processing may fuse or drop nodes).
    """
    q = config.quantization
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    bench = QuantizationWorkbench(config, graph, reduce_range, workdir, calibration, holdout)
    graph = load_model_graph(bench.preprocessed, q.op_types, config.output_name)
    bench.layer_weights = layer_weights(graph)
    _check_configured_layers(config, graph)
    seconds["preprocess_and_fp32_scoring"] = time.perf_counter() - started

    head = graph.output_head if q.protect_output else ()
    fp32_layers = tuple(dict.fromkeys((*head, *q.exclude_layers)))
    inputs = activation_inputs(graph)
    base = QuantizationRecipe(fp32_layers, q.int16_layers, {name: inputs[name] for name in q.int16_layers})
    started = time.perf_counter()
    paths: dict[int, Path] = {}

    def try_recipe(recipe: QuantizationRecipe) -> Attempt:
        attempt, path = bench.attempt(recipe)
        paths[id(attempt)] = path
        return attempt

    initial = try_recipe(base)
    seconds["calibrate_quantize_evaluate"] = time.perf_counter() - started
    started = time.perf_counter()
    quantized = tuple(name for name in graph.quantizable_layers if name not in fp32_layers)
    precision = q.fallback_precision
    if q.mode is QuantizationMode.DYNAMIC and precision is FallbackPrecision.INT16:
        precision = FallbackPrecision.FP32  # 16-bit activations exist only in static QDQ
    # The FP32 head's input may be left float (static QDQ only: dynamic quantizes at the consumer's input).
    float_head = head[0] if head and q.mode is QuantizationMode.STATIC else None
    tuning = tune(initial, quantized, try_recipe, q.max_fallback_layers, precision, inputs, float_head)
    seconds["tune"] = time.perf_counter() - started

    unprotected = None
    if q.protect_output and head and q.mode is QuantizationMode.STATIC:
        # Evidence for the report: the same model with its output head quantized too.
        evidence, _ = bench.attempt(QuantizationRecipe(tuple(q.exclude_layers)))
        unprotected = evidence.comparison.distinct_score_ratio
    best_path = paths[id(tuning.final)]

    started = time.perf_counter()
    timings = {}
    if q.speed_seconds > 0:
        timings = time_models(
            {"fp32": config.onnx_path, "int8": best_path},
            holdout,
            config.output_name,
            q.speed_batch_sizes,
            q.speed_seconds,
        )
    seconds["speed"] = time.perf_counter() - started
    return BuildOutcome(
        graph,
        tuning,
        initial,
        best_path,
        bench.calibration_runs,
        bench.reader.rows,
        unprotected,
        timings,
        seconds,
    )


def _check_configured_layers(config: ModelConfig, graph: ModelGraph) -> None:
    q = config.quantization
    unknown = sorted((set(q.exclude_layers) | set(q.int16_layers)) - set(graph.quantizable_layers))
    if unknown:
        raise QuantizationError(
            f"model {config.name}: quantization.exclude_layers/int16_layers name unknown layers {unknown}; "
            f"quantizable layers are {list(graph.quantizable_layers)}"
        )
