"""Builds the `QuantizationReport` of a cold run from each stage's outcome, or of a disabled or
not-quantizable model."""

import platform
import sys
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime

from server.config.model_config import ModelConfig
from server.config.quantization_config import QuantizationMode
from server.quantization.code_version import riskserve_version
from server.quantization.cpu_features import CpuProfile
from server.quantization.layer_precision import LayerPrecision
from server.quantization.report import REPORT_FORMAT, QuantizationReport
from server.quantization.report_sections import (
    AttemptFigures,
    BatchTimingSection,
    BenefitCandidateSection,
    BenefitSection,
    BudgetCheckSection,
    CalibrationSection,
    CpuSection,
    EvidenceSection,
    FallbackStepSection,
    GateReport,
    GateSection,
    HoldoutSection,
    InitialGateSection,
    IntervalSection,
    LayerRunSection,
    LayersSection,
    ModelSection,
    NotQuantizableSection,
    RewriteSection,
    ServingSection,
    SizesSection,
    SpeedRatioSection,
    SpeedSection,
    SplitSection,
    TuningSection,
    Versions,
)
from server.quantization.verdict import decide
from server.served_model import GateVerdict, Precision

if TYPE_CHECKING:  # the cold path's modules pull in pandas and scikit-learn; a disabled model needs neither
    from server.evaluation.paired_intervals import Interval
    from server.quantization.build import BuildOutcome
    from server.quantization.calibration_data import FeatureTable
    from server.quantization.gate import GateResult
    from server.quantization.speed import BatchTiming, SpeedRatio

DYNAMIC_WARNING = (
    "dynamic quantization computes activation ranges per call: a row's score depends on the other rows in "
    "its call, so the INT8 model is gated and served with serving.int8_chunk_rows rows per call"
)
SPEED_SESSION = "1 intra-op thread, 1 inter-op thread, sequential, ORT_ENABLE_ALL, no spinning"
INT8_KERNELS = (LayerPrecision.INT8, LayerPrecision.INT8_DYNAMIC)


def versions() -> Versions:
    return Versions(
        riskserve=riskserve_version(),
        onnxruntime=onnxruntime.__version__,
        onnx=onnx.__version__,
        numpy=np.__version__,
        python=sys.version.split()[0],
        platform=platform.platform(),
    )


def _model_section(config: ModelConfig) -> ModelSection:
    return ModelSection(
        name=config.name,
        version=config.version,
        task=config.task.value,
        onnx_file=str(config.onnx_path),
        output=config.output_name,
    )


def _checks(gate: "GateResult") -> list[BudgetCheckSection]:
    return [BudgetCheckSection.model_validate(check, from_attributes=True) for check in gate.checks]


def _timings(timings: "dict[int, BatchTiming]") -> dict[int, BatchTimingSection]:
    return {size: BatchTimingSection.model_validate(t, from_attributes=True) for size, t in timings.items()}


def _speed(outcome: "BuildOutcome") -> SpeedSection | None:
    from server.quantization.speed import speedup

    if not outcome.timings:
        return None
    fp32, int8 = outcome.timings["fp32"], outcome.timings["int8"]
    return SpeedSection(
        session=SPEED_SESSION,
        chunk_rows={"fp32": outcome.fp32_chunk_rows, "int8": outcome.tuning.final.chunk_rows},
        fp32=_timings(fp32),
        int8=_timings(int8),
        throughput_ratio=speedup(fp32, int8),
    )


def _benefit(outcome: "BuildOutcome") -> BenefitSection | None:
    benefit = outcome.benefit
    if benefit is None:
        return None

    def ratio(r: "SpeedRatio | None") -> SpeedRatioSection | None:
        return None if r is None else SpeedRatioSection.model_validate(r, from_attributes=True)

    return BenefitSection(
        objective=benefit.objective,
        pays=benefit.pays,
        reason=benefit.reason,
        size_ratio=benefit.size_ratio,
        latency=ratio(benefit.latency),
        throughput=ratio(benefit.throughput),
        candidates={
            name: BenefitCandidateSection(score=b.score, pays=b.pays, reason=b.reason)
            for name, b in outcome.candidates.items()
        },
    )


def _layers(config: ModelConfig, outcome: "BuildOutcome") -> LayersSection:
    graph, final = outcome.graph, outcome.tuning.final
    runs = final.layers
    head = list(graph.output_head) if config.quantization.protect_output else []
    return LayersSection(
        quantizable=list(graph.quantizable_layers),
        output_head_kept_fp32=head,
        fp32=[
            n for n, r in runs.items() if r.precision in (LayerPrecision.FP32, LayerPrecision.INT8_SIMULATED)
        ],
        int16=[n for n, r in runs.items() if r.precision is LayerPrecision.INT16_ACTIVATIONS],
        int8=[n for n, r in runs.items() if r.precision in INT8_KERNELS],
        runs={
            n: LayerRunSection(
                kernel=r.kernel,
                precision=r.precision.value,
                float_output=r.float_output,
                input_bits=r.input_bits,
            )
            for n, r in runs.items()
        },
        float_head_input=final.recipe.float_input_layer is not None,
        unprotected_distinct_score_ratio=outcome.unprotected_distinct_score_ratio,
    )


def _evidence(config: ModelConfig, outcome: "BuildOutcome") -> EvidenceSection:
    e = outcome.evidence

    def interval(i: "Interval") -> IntervalSection:
        return IntervalSection(estimate=i.estimate, low=i.low, high=i.high)

    return EvidenceSection(
        rows=e.rows,
        positives=e.positives,
        min_positives=config.quantization.min_positives,
        roc_auc_delta=interval(e.roc_auc_delta),
        pr_auc_delta=interval(e.pr_auc_delta),
        flip_rates={name: interval(i) for name, i in e.flip_rates.items()},
        sufficient=e.sufficient,
        problems=list(e.problems),
        gate_rows_needed=e.gate_rows_needed,
        more_holdout_rows_needed=e.more_holdout_rows_needed,
    )


def build_report(
    config: ModelConfig,
    cpu: CpuProfile,
    reduce_range: tuple[bool, str],
    calibration: "FeatureTable",
    holdout: "FeatureTable",
    outcome: "BuildOutcome",
    cache_key: str,
    seconds: dict[str, float],
) -> QuantizationReport:
    """The full report of a cold run; layer names are those of the pre-processed graph (`outcome.graph`)."""
    from server.quantization.holdout_split import SPLIT_SEED

    q = config.quantization
    final, initial, split = outcome.tuning.final, outcome.initial, outcome.split
    verdict, reason = decide(outcome)
    served_int8 = verdict in (GateVerdict.PASSED, GateVerdict.PASSED_WITH_FALLBACK)
    fp32_bytes, int8_bytes = config.onnx_path.stat().st_size, outcome.model_path.stat().st_size
    warnings = [reason] if reason else []
    warnings += [
        f"rewrite {r.change.rewrite} of {', '.join(r.change.nodes)} {r.reason}"
        for r in outcome.rewrites
        if r.reason.startswith("dropped")
    ]
    if q.mode is QuantizationMode.DYNAMIC:
        warnings.append(DYNAMIC_WARNING)
    served_chunk = final.chunk_rows if served_int8 else outcome.fp32_chunk_rows
    return QuantizationReport(
        format=REPORT_FORMAT,
        model=_model_section(config),
        verdict=verdict,
        precision=Precision.INT8 if served_int8 else Precision.FP32,
        mode=q.mode,
        batch_invariant=served_chunk is None,
        cache_key=cache_key,
        warnings=warnings,
        versions=versions(),
        cpu=CpuSection(
            model_name=cpu.model_name,
            vnni=cpu.vnni,
            vnni_flags=list(cpu.flags),
            reduce_range=reduce_range[0],
            reduce_range_reason=reduce_range[1],
        ),
        config=q,
        decision_thresholds=config.decision.thresholds(),
        calibration=CalibrationSection(
            file=str(calibration.path),
            rows_used=outcome.calibration_rows,
            rows_in_file=calibration.rows_in_file,
            ignored_columns=list(calibration.ignored_columns),
            method=q.calibration_method,
            runs=outcome.calibration_runs,
        ),
        holdout=HoldoutSection(
            file=str(holdout.path),
            rows=holdout.rows,
            positives=holdout.positives,
            ignored_columns=list(holdout.ignored_columns),
            fp32_roc_auc=outcome.fp32_holdout_roc_auc,
        ),
        rewrites=[
            RewriteSection(
                rewrite=r.change.rewrite,
                nodes=list(r.change.nodes),
                detail=r.change.detail,
                kept=r.kept,
                max_abs_diff=r.max_abs_diff,
                reason=r.reason,
            )
            for r in outcome.rewrites
        ],
        canonical_form=outcome.canonical_form,
        split=SplitSection(
            gate_fraction=split.gate_fraction,
            seed=SPLIT_SEED,
            tuning_rows=split.tuning.rows,
            tuning_positives=split.tuning.positives or 0,
            gate_rows=split.gate.rows,
            gate_positives=split.gate.positives or 0,
        ),
        serving=ServingSection(
            chunk_rows=served_chunk, int8_chunk_rows=final.chunk_rows, fp32_chunk_rows=outcome.fp32_chunk_rows
        ),
        evidence=_evidence(config, outcome),
        benefit=_benefit(outcome),
        layers=_layers(config, outcome),
        budget=q.budget,
        gate=GateReport(
            initial=InitialGateSection(
                passed=initial.gate.passed,
                checks=_checks(initial.gate),
                figures=AttemptFigures(**initial.figures()),
            ),
            tuned=GateSection(passed=final.gate.passed, checks=_checks(final.gate)),
            final=GateSection(passed=outcome.gate.passed, checks=_checks(outcome.gate)),
        ),
        accuracy=outcome.gate_comparison,
        tuning=TuningSection(
            fallback_layers=[
                FallbackStepSection.model_validate(s, from_attributes=True) for s in outcome.tuning.steps
            ],
            stopped_because=outcome.tuning.stopped_because,
        ),
        sizes=SizesSection(
            fp32_bytes=fp32_bytes, int8_bytes=int8_bytes, int8_over_fp32=int8_bytes / fp32_bytes
        ),
        speed=_speed(outcome),
        seconds={**outcome.seconds, **seconds},
    )


def disabled_report(config: ModelConfig) -> QuantizationReport:
    """Report for `mode: none`: nothing was quantized, FP32 is served by choice."""
    return QuantizationReport(
        format=REPORT_FORMAT,
        model=_model_section(config),
        verdict=GateVerdict.DISABLED,
        precision=Precision.FP32,
        mode=QuantizationMode.NONE,
        batch_invariant=True,
        versions=versions(),
        config=config.quantization,
    )


def not_quantizable_report(config: ModelConfig, op_types: list[str]) -> QuantizationReport:
    """Report for a graph with nothing to quantize (e.g. a tree ensemble): FP32 served by design."""
    looked_for = list(config.quantization.op_types)
    reason = (
        f"no layer with constant weights among {', '.join(looked_for)} (the graph has "
        f"{', '.join(op_types)}): nothing to quantize, serving FP32"
    )
    return QuantizationReport(
        format=REPORT_FORMAT,
        model=_model_section(config),
        verdict=GateVerdict.NOT_QUANTIZABLE,
        precision=Precision.FP32,
        mode=config.quantization.mode,
        batch_invariant=True,
        warnings=[reason],
        versions=versions(),
        config=config.quantization,
        not_quantizable=NotQuantizableSection(op_types=op_types, looked_for=looked_for),
    )
