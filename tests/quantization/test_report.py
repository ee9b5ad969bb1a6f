"""The typed report: JSON out and back in gives the same report; the cache stores it without its paths."""

import json
from pathlib import Path

from server.quantization.pipeline import prepare_model
from server.quantization.report import LOCATION_FIELDS, REPORT_FORMAT, QuantizationReport, read_report
from server.served_model import GateVerdict


def test_a_real_report_survives_a_json_round_trip(model_folder, tmp_path: Path) -> None:
    # The sensitive model has tuner steps with every candidate's figures; a short timing fills `speed`.
    config = model_folder("sensitive", speed_seconds=0.01, speed_batch_sizes=(1, 8))
    prepared = prepare_model(config, tmp_path / "cache")
    report = prepared.report
    assert report is not None and report.tuning is not None and report.speed is not None
    # Batch 1 and the model's max_batch_size are always timed: the objective is judged on them.
    assert report.tuning.fallback_layers and set(report.speed.throughput_ratio) == {1, 8, 256}
    assert QuantizationReport.model_validate_json(report.model_dump_json()) == report
    assert QuantizationReport.model_validate_json(report.model_dump_json(indent=2)) == report


def test_the_cached_report_has_no_paths_and_reads_back_as_the_same_report(
    model_folder, tmp_path: Path
) -> None:
    prepared = prepare_model(model_folder(), tmp_path / "cache")
    assert prepared.report is not None and prepared.report_path is not None
    stored = json.loads(prepared.report_path.read_text())
    assert stored["format"] == REPORT_FORMAT and not LOCATION_FIELDS & set(stored)
    assert prepared.report.served_model == prepared.model_path
    assert prepared.report.report_path == prepared.report_path
    assert read_report(prepared.report_path) == prepared.report.model_copy(
        update=dict.fromkeys(LOCATION_FIELDS)
    )


def test_metric_deltas_come_from_the_typed_accuracy_section(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder(), tmp_path / "cache")
    accuracy = prepared.report.accuracy
    deltas = prepared.facts.metric_deltas
    assert deltas["psi"] == accuracy.psi and deltas["max_flip_rate"] == accuracy.max_flip_rate
    assert deltas["flip_rate_review"] == accuracy.flip_rates["review"]
    assert "fp32" not in deltas and "flip_rates" not in deltas


def test_a_disabled_report_round_trips_and_has_no_build_sections(model_folder, tmp_path: Path) -> None:
    report = prepare_model(model_folder(mode="none"), tmp_path / "cache").report
    assert report is not None and report.verdict is GateVerdict.DISABLED
    assert report.accuracy is None and report.gate is None and report.metric_deltas() == {}
    assert QuantizationReport.model_validate_json(report.model_dump_json()) == report
