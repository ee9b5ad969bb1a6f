"""The cold path for one model: canonicalize, pre-process, calibrate, quantize, tune on the tuning rows,
choose among the candidates inside the budget by the objective, judge the choice on the gate's rows.

Everything is written inside a scratch folder; the pipeline copies the result into the cache afterwards.
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from server.config.model_config import ModelConfig
from server.config.quantization_config import FallbackPrecision, Objective, QuantizationMode
from server.quantization.benefit import Benefit, judge_benefit
from server.quantization.calibration_data import FeatureTable
from server.quantization.errors import QuantizationError
from server.quantization.evaluation import AccuracyComparison
from server.quantization.evidence import Evidence, weigh_evidence
from server.quantization.gate import GateResult
from server.quantization.holdout_split import HoldoutSplit
from server.quantization.model_graph import ModelGraph
from server.quantization.quantizer import QuantizationRecipe
from server.quantization.rewrites.canonicalize import RewriteOutcome, canonicalize
from server.quantization.speed import BatchTiming, time_models
from server.quantization.tuner import Attempt, TuningResult, tune, tuner_rank
from server.quantization.workbench import Fp32Reference, QuantizationWorkbench, activation_inputs

log = logging.getLogger(__name__)


@dataclass
class BuildOutcome:
    graph: ModelGraph  # the pre-processed graph whose layer names the report uses
    rewrites: list[RewriteOutcome]
    canonical_form: str  # which canonical form was quantized, and why
    split: HoldoutSplit
    tuning: TuningResult
    initial: Attempt
    gate_comparison: AccuracyComparison  # the chosen candidate against FP32 on the gate's rows
    gate: GateResult
    evidence: Evidence
    benefit: Benefit | None  # None when the tuner never got inside the budget
    candidates: dict[str, Benefit]  # moves inside the budget in the tuner's last round, compared by objective
    fp32_chunk_rows: int | None
    fp32_holdout_roc_auc: float  # on every holdout row (tuning and gate)
    calibration_runs: int
    calibration_rows: int  # rows the calibrator saw (equal batches, see FeatureBatchReader)
    unprotected_distinct_score_ratio: float | None
    timings: dict[str, dict[int, BatchTiming]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        """The best quantized model found (served only if the verdict allows)."""
        assert self.tuning.final.path is not None
        return self.tuning.final.path


def build(
    config: ModelConfig, reduce_range: bool, workdir: Path, calibration: FeatureTable, split: HoldoutSplit
) -> BuildOutcome:
    """Quantize per config, tune until within budget on the tuning rows (or give up), choose by the
    objective, and judge the result on the gate's rows. Layer names are those of the pre-processed graph."""
    q = config.quantization
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    forms = canonicalize(config.onnx_path, workdir, calibration.feeds, config.output_name)
    fp32 = Fp32Reference(config, calibration, split)
    seconds["canonicalize_and_fp32_scoring"] = time.perf_counter() - started

    started = time.perf_counter()
    sources = {"base": forms.base, **({"folded": forms.folded} if forms.folded is not None else {})}
    benches, initials = {}, {}
    for name, source in sources.items():
        benches[name] = QuantizationWorkbench(
            config, source, reduce_range, workdir / name, calibration, split, fp32
        )
        _check_configured_layers(config, benches[name].graph)
        initials[name] = benches[name].attempt(_base_recipe(config, benches[name].graph))
    # The folded form only if its first INT8 attempt is at least as close to the budget (see canonicalize).
    form = "folded" if "folded" in initials and _closer(initials["folded"], initials["base"]) else "base"
    bench, initial = benches[form], initials[form]
    graph = bench.graph
    head = graph.output_head if q.protect_output else ()
    fp32_layers = initial.recipe.fp32_layers
    inputs = activation_inputs(graph)
    seconds["calibrate_quantize_evaluate"] = time.perf_counter() - started
    started = time.perf_counter()
    quantized = tuple(name for name in graph.quantizable_layers if name not in fp32_layers)
    precision = q.fallback_precision
    if q.mode is QuantizationMode.DYNAMIC and precision is FallbackPrecision.INT16:
        precision = FallbackPrecision.FP32  # 16-bit activations exist only in static QDQ
    # The FP32 head's input may be left float (static QDQ only: dynamic quantizes at the consumer's input).
    float_head = head[0] if head and q.mode is QuantizationMode.STATIC else None
    compared: dict[str, Benefit] = {}

    def choose(passing: dict[str, Attempt]) -> tuple[str, str]:
        compared.update(_compare_by_objective(config, bench, passing))
        chosen = _best_for_objective(passing, compared)
        figures = ", ".join(f"{name} {b.score:.3g}" for name, b in compared.items())
        top = max(compared, key=lambda name: compared[name].score)
        tie = "" if chosen == top else "; within the noise of the best, the tuner's order decides"
        return (
            chosen,
            f"{len(passing)} moves inside the budget, objective {q.objective.value}: {figures}{tie}",
        )

    tuning = tune(
        initial, quantized, bench.attempt, q.max_fallback_layers, precision, inputs, float_head, choose
    )
    seconds["tune"] = time.perf_counter() - started

    unprotected = None
    if q.protect_output and head and q.mode is QuantizationMode.STATIC:
        # Evidence for the report: the same model with its output head quantized too.
        unprotected = bench.attempt(
            QuantizationRecipe(tuple(q.exclude_layers))
        ).comparison.distinct_score_ratio

    started = time.perf_counter()
    final = tuning.final
    gate_scores, gate_comparison, gate = bench.judge(final)
    assert split.gate.labels is not None
    evidence = weigh_evidence(
        split.gate.labels,
        fp32.gate,
        gate_scores,
        config.decision.thresholds(),
        q.budget,
        q.min_positives,
        split.tuning.rows + split.gate.rows,
        split.gate_fraction,
    )
    seconds["gate_and_evidence"] = time.perf_counter() - started

    started = time.perf_counter()
    timings: dict[str, dict[int, BatchTiming]] = {}
    benefit = None
    if tuning.passed:
        if q.speed_seconds > 0:
            sizes = tuple(sorted({*q.speed_batch_sizes, 1, config.batching.max_batch_size}))
            timings = _time(config, bench, {"int8": final}, sizes)
        benefit = _benefit(config, final, timings.get("fp32"), timings.get("int8"))
    seconds["speed"] = time.perf_counter() - started
    return BuildOutcome(
        graph,
        forms.outcomes,
        _form_choice(initials, form),
        split,
        tuning,
        initial,
        gate_comparison,
        gate,
        evidence,
        benefit,
        compared,
        fp32.chunk_rows,
        fp32.holdout_roc_auc,
        sum(b.calibration_runs for b in benches.values()),
        bench.reader.rows,
        unprotected,
        timings,
        seconds,
    )


def _time(
    config: ModelConfig, bench: QuantizationWorkbench, attempts: dict[str, Attempt], sizes: tuple[int, ...]
) -> dict[str, dict[int, BatchTiming]]:
    """FP32 and `attempts` side by side, each served with its own chunk size."""
    models = {"fp32": config.onnx_path, **{name: a.path for name, a in attempts.items()}}
    chunks = {"fp32": bench.fp32.chunk_rows, **{name: a.chunk_rows for name, a in attempts.items()}}
    q = config.quantization
    return time_models(
        models, bench.split.tuning, config.output_name, sizes, q.speed_seconds, chunk_rows=chunks
    )  # type: ignore[arg-type]


def _benefit(
    config: ModelConfig,
    attempt: Attempt,
    fp32: dict[int, BatchTiming] | None,
    int8: dict[int, BatchTiming] | None,
) -> Benefit:
    q = config.quantization
    return judge_benefit(
        q.objective,
        config.onnx_path.stat().st_size,
        attempt.model_bytes,
        fp32,
        int8,
        config.batching.max_batch_size,
        q.speed_tolerance,
    )


def _best_for_objective(passing: dict[str, Attempt], benefits: dict[str, Benefit]) -> str:
    """The move with the best objective figure; a move earlier in the tuner's order (shortfall, FP32
    weights, score change) within the noise of it wins, so timing noise never decides."""
    order = sorted(passing, key=lambda name: tuner_rank(passing[name]))
    best = max(order, key=lambda name: benefits[name].score)
    margin = benefits[best].noise
    return next(name for name in order if benefits[name].score >= benefits[best].score - margin)


def _compare_by_objective(
    config: ModelConfig, bench: QuantizationWorkbench, passing: dict[str, Attempt]
) -> dict[str, Benefit]:
    """Each passing move's benefit (timed side by side at batch 1 and max_batch_size unless the objective
    is size or timing is off)."""
    q = config.quantization
    timings: dict[str, dict[int, BatchTiming]] = {}
    if q.objective is not Objective.SIZE and q.speed_seconds > 0:
        sizes = tuple(sorted({1, config.batching.max_batch_size}))
        timings = _time(config, bench, passing, sizes)
    return {
        name: _benefit(config, attempt, timings.get("fp32"), timings.get(name))
        for name, attempt in passing.items()
    }


def _base_recipe(config: ModelConfig, graph: ModelGraph) -> QuantizationRecipe:
    """The first attempt: the output head and `exclude_layers` FP32, `int16_layers` 16-bit, the rest INT8."""
    q = config.quantization
    head = graph.output_head if q.protect_output else ()
    fp32_layers = tuple(dict.fromkeys((*head, *q.exclude_layers)))
    inputs = activation_inputs(graph)
    return QuantizationRecipe(fp32_layers, q.int16_layers, {name: inputs[name] for name in q.int16_layers})


def _closer(folded: Attempt, base: Attempt) -> bool:
    return folded.gate.shortfall <= base.gate.shortfall


def _form_choice(initials: dict[str, Attempt], form: str) -> str:
    """Why this canonical form was quantized, for the report."""
    if len(initials) == 1:
        return "base (no fold applies)"
    shortfalls = ", ".join(f"{name} {a.gate.shortfall:.3g}" for name, a in initials.items())
    return f"{form}: first INT8 attempt's gate shortfall {shortfalls} (the folded form unless it is further)"


def _check_configured_layers(config: ModelConfig, graph: ModelGraph) -> None:
    q = config.quantization
    unknown = sorted((set(q.exclude_layers) | set(q.int16_layers)) - set(graph.quantizable_layers))
    if unknown:
        raise QuantizationError(
            f"model {config.name}: quantization.exclude_layers/int16_layers name unknown layers {unknown}; "
            f"quantizable layers are {list(graph.quantizable_layers)}"
        )
