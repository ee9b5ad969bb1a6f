"""Builds the `QuantizationReport` of a cold run from each stage's outcome, or of a disabled model."""

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
from server.quantization.report import (
    REPORT_FORMAT,
    AccuracySection,
    AttemptFigures,
    BatchTimingSection,
    BudgetCheckSection,
    CalibrationSection,
    CpuSection,
    FallbackStepSection,
    GateReport,
    GateSection,
    HoldoutSection,
    InitialGateSection,
    LayersSection,
    ModelSection,
    QuantizationReport,
    SizesSection,
    SpeedSection,
    TuningSection,
    Versions,
)
from server.served_model import GateVerdict, Precision

if TYPE_CHECKING:  # the cold path's modules pull in pandas and scikit-learn; a disabled model needs neither
    from server.quantization.build import BuildOutcome
    from server.quantization.calibration_data import FeatureTable
    from server.quantization.gate import GateResult
    from server.quantization.speed import BatchTiming

DYNAMIC_WARNING = (
    "dynamic quantization computes activation ranges per batch: a row's score depends on the other rows in "
    "its batch, so this model must not be served with batching"
)
SPEED_SESSION = "1 intra-op thread, 1 inter-op thread, sequential, ORT_ENABLE_ALL, no spinning"


def versions() -> Versions:
    return Versions(
        riskserve=riskserve_version(),
        onnxruntime=onnxruntime.__version__,
        onnx=onnx.__version__,
        numpy=np.__version__,
        python=sys.version.split()[0],
        platform=platform.platform(),
    )


def verdict_of(outcome: "BuildOutcome") -> GateVerdict:
    if not outcome.tuning.passed:
        return GateVerdict.FAILED
    return GateVerdict.PASSED_WITH_FALLBACK if outcome.tuning.steps else GateVerdict.PASSED


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
        fp32=_timings(fp32),
        int8=_timings(int8),
        throughput_ratio=speedup(fp32, int8),
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
    q = config.quantization
    graph, final, initial = outcome.graph, outcome.tuning.final, outcome.initial
    verdict = verdict_of(outcome)
    fp32_bytes, int8_bytes = config.onnx_path.stat().st_size, outcome.model_path.stat().st_size
    int8_layers = [name for name in graph.quantizable_layers if name not in final.recipe.fp32_layers]
    warnings = []
    if verdict is GateVerdict.FAILED:
        warnings.append(
            "INT8 model never within the accuracy budget ("
            + "; ".join(final.gate.failures())
            + f"; tuner stopped: {outcome.tuning.stopped_because}): serving FP32"
        )
    if q.mode is QuantizationMode.DYNAMIC:
        warnings.append(DYNAMIC_WARNING)
    return QuantizationReport(
        format=REPORT_FORMAT,
        model=_model_section(config),
        verdict=verdict,
        precision=Precision.FP32 if verdict is GateVerdict.FAILED else Precision.INT8,
        mode=q.mode,
        batch_invariant=q.mode is QuantizationMode.STATIC,
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
            positives=int(holdout.labels.sum()) if holdout.labels is not None else None,
            ignored_columns=list(holdout.ignored_columns),
        ),
        layers=LayersSection(
            quantizable=list(graph.quantizable_layers),
            output_head_kept_fp32=list(graph.output_head) if q.protect_output else [],
            fp32=list(final.recipe.fp32_layers),
            int16=list(final.recipe.int16_layers),
            int8=[n for n in int8_layers if n not in final.recipe.int16_layers],
            float_head_input=final.recipe.float_input_layer is not None,
            unprotected_distinct_score_ratio=outcome.unprotected_distinct_score_ratio,
        ),
        budget=q.budget,
        gate=GateReport(
            initial=InitialGateSection(
                passed=initial.gate.passed,
                checks=_checks(initial.gate),
                figures=AttemptFigures(**initial.figures()),
            ),
            final=GateSection(passed=final.gate.passed, checks=_checks(final.gate)),
        ),
        accuracy=AccuracySection.model_validate(final.comparison, from_attributes=True),
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
