"""The gate measures what is served and says why FP32 is served: dynamic INT8 judged one row per call,
no_gain, insufficient_evidence, the split between tuning and gating rows, no-op tuner moves."""

import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from server.config.quantization_config import Objective
from server.quantization import quantizer
from server.quantization.benefit import judge_benefit
from server.quantization.calibration_data import load_feature_table
from server.quantization.evaluation import compare_scores, score_model
from server.quantization.gate import check_budget
from server.quantization.holdout_split import split_holdout
from server.quantization.pipeline import prepare_model
from server.quantization.speed import BatchTiming
from server.quantization.summary import format_summary
from server.served_model import GateVerdict, Precision


def _batch_dependent(path: Path) -> None:
    """Rewrite a dynamic-INT8 model so that its scores shrink by a factor 1 - 0.08 / rows-in-the-call (plus
    a trace of the call's largest `velocity`, clipped to [0, 1]): close to exact in big calls, 8 % low one
    row per call."""
    model = onnx.load(str(path))
    graph = model.graph
    old = next(o for o in graph.output if o.name == "probabilities")
    for node in graph.node:
        node.output[:] = ["probabilities_exact" if o == "probabilities" else o for o in node.output]
        node.input[:] = ["probabilities_exact" if i == "probabilities" else i for i in node.input]
    graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.array([0], np.int64), "zero_index"),
            onnx.numpy_helper.from_array(np.array([[0.0, 0.08]], np.float32), "shift"),
            onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            onnx.numpy_helper.from_array(np.array(0.0, np.float32), "nought"),
            onnx.numpy_helper.from_array(np.array([[0.0, 1e-7]], np.float32), "trace"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Shape", ["velocity"], ["call_shape"]),
            helper.make_node("Gather", ["call_shape", "zero_index"], ["call_rows"]),
            helper.make_node("Cast", ["call_rows"], ["call_rows_float"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["shift", "call_rows_float"], ["per_row_shift"]),
            helper.make_node("ReduceMax", ["velocity"], ["call_max"], keepdims=0),
            helper.make_node("Mul", ["trace", "call_max"], ["content_shift"]),
            helper.make_node("Sub", ["one", "per_row_shift"], ["factor"]),
            helper.make_node("Mul", ["probabilities_exact", "factor"], ["shrunk"]),
            helper.make_node("Add", ["shrunk", "content_shift"], ["shifted"]),
            helper.make_node("Clip", ["shifted", "nought", "one"], ["probabilities"]),
        ]
    )
    del graph.output[:]
    graph.output.extend([old])
    onnx.save(model, str(path))


def test_dynamic_model_passing_on_big_batches_but_not_one_row_per_call_is_not_passed(
    model_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Path] = []
    real = quantizer.quantize_dynamic

    def dynamic_and_batch_dependent(source: str, target: str, **options: object) -> None:
        real(source, target, **options)
        _batch_dependent(Path(target))
        built.append(tmp_path / f"candidate-{len(built)}.onnx")
        shutil.copyfile(target, built[-1])

    monkeypatch.setattr(quantizer, "quantize_dynamic", dynamic_and_batch_dependent)
    config = model_folder("plain", mode="dynamic")
    prepared = prepare_model(config, tmp_path / "cache")
    report = prepared.report
    assert report.serving.int8_chunk_rows == 1  # batch-dependent: gated (and served) one row per call
    assert prepared.facts.gate_verdict is GateVerdict.FAILED and prepared.facts.precision is Precision.FP32
    # The same first candidate judged on big calls, as the gate used to: inside the budget.
    holdout = load_feature_table(
        config.holdout_path, config, min_rows=1, label_column="is_fraud", require_label=True
    )
    gate = split_holdout(holdout, 0.5).gate
    big_calls = compare_scores(
        gate.labels,
        score_model(config.onnx_path, gate, config),
        score_model(built[0], gate, config),  # 4096 rows per call
        config.decision.thresholds(),
    )
    assert check_budget(big_calls, config.quantization.budget).passed
    assert not report.gate.initial.passed  # one row per call: the shift flips decisions


def test_inside_the_budget_but_bigger_than_fp32_is_no_gain(model_folder, tmp_path: Path) -> None:
    config = model_folder("narrow")  # 8-4 hidden units: its Q/DQ metadata outweighs its weights
    prepared = prepare_model(config, tmp_path / "cache")
    report = prepared.report
    assert report.gate.final.passed and report.evidence.sufficient
    assert prepared.facts.gate_verdict is GateVerdict.NO_GAIN and prepared.facts.precision is Precision.FP32
    assert prepared.model_path == config.onnx_path
    assert not report.benefit.pays and report.sizes.int8_over_fp32 > 1
    assert "does not pay (objective size" in report.warnings[0]
    assert "benefit: DOES NOT PAY" in format_summary(report)


def test_benefit_rules_for_each_objective() -> None:
    def timed(ratio: float, spread: float = 0.0) -> dict[int, BatchTiming]:
        rounds = tuple(1.0 / (ratio + spread * (i - 2)) for i in range(5))
        return {size: BatchTiming(size, 50, 1.0 / ratio, size * ratio, rounds) for size in (1, 256)}

    fp32 = {size: BatchTiming(size, 50, 1.0, size, (1.0,) * 5) for size in (1, 256)}
    slower, equal, faster = timed(0.8), timed(0.98), timed(1.5)

    def pays(objective: Objective, int8: dict, size: int = 50) -> bool:
        return judge_benefit(objective, 100, size, fp32, int8, 256, 0.05).pays

    assert not pays(Objective.BALANCED, slower) and pays(Objective.BALANCED, equal)
    assert not pays(Objective.LATENCY, equal) and pays(Objective.LATENCY, faster)
    assert not pays(Objective.THROUGHPUT, equal) and pays(Objective.THROUGHPUT, faster)
    assert pays(Objective.SIZE, slower) and not pays(Objective.SIZE, faster, size=120)
    # Noisy rounds widen the tolerance: a median of 0.9 with a wide spread is not shown to be slower.
    assert pays(Objective.BALANCED, timed(0.9, spread=0.15))
    # No timing: a timed objective is not shown to pay.
    assert not judge_benefit(Objective.BALANCED, 100, 50, None, None, 256, 0.05).pays


def test_a_holdout_too_small_to_show_the_budget_is_insufficient_evidence(
    model_folder, tmp_path: Path
) -> None:
    config = model_folder("plain")
    holdout = pd.read_parquet(config.holdout_path)
    small = pd.concat([holdout[holdout.is_fraud == 1].head(90), holdout[holdout.is_fraud == 0].head(210)])
    small.sample(frac=1, random_state=0).to_parquet(config.holdout_path)  # 300 rows, 90 positives
    prepared = prepare_model(config, tmp_path / "cache")
    report = prepared.report
    assert prepared.facts.gate_verdict is GateVerdict.INSUFFICIENT_EVIDENCE
    assert prepared.facts.precision is Precision.FP32 and prepared.model_path == config.onnx_path
    assert report.evidence.positives == 45 and not report.evidence.sufficient
    assert any("positives in the gate's 150 rows, at least 50 needed" in p for p in report.evidence.problems)
    assert any("wider than the budget" in p for p in report.evidence.problems)
    assert report.evidence.more_holdout_rows_needed > 0
    summary = format_summary(report)
    assert f"add about {report.evidence.more_holdout_rows_needed:,} labelled rows" in summary
    assert "more labelled holdout rows needed" in report.warnings[0]


def test_the_tuner_chooses_on_one_part_and_the_gate_judges_on_the_other(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("sensitive", gate_fraction=0.4), tmp_path / "cache")
    report = prepared.report
    split, holdout = report.split, report.holdout
    assert split.gate_rows + split.tuning_rows == holdout.rows
    assert split.gate_rows == pytest.approx(0.4 * holdout.rows, abs=2)
    assert split.gate_positives == pytest.approx(0.4 * holdout.positives, abs=1)  # stratified
    assert report.accuracy.fp32.rows == split.gate_rows  # the gate's figures are the gate's rows
    assert report.tuning.fallback_layers  # the tuner's moves were judged on the other rows:
    tuned = {c.name: c.value for c in report.gate.tuned.checks}
    final = {c.name: c.value for c in report.gate.final.checks}
    assert tuned != final

    config = model_folder("sensitive")
    table = load_feature_table(
        config.holdout_path, config, min_rows=1, label_column="is_fraud", require_label=True
    )
    parts = split_holdout(table, 0.5)
    rows = {tuple(row) for row in np.hstack([parts.tuning.feeds["amount"], parts.tuning.feeds["velocity"]])}
    gate_rows = {tuple(row) for row in np.hstack([parts.gate.feeds["amount"], parts.gate.feeds["velocity"]])}
    assert not rows & gate_rows and parts.tuning.rows + parts.gate.rows == table.rows
