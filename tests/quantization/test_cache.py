"""The cache serves an unchanged model without recalibrating, rebuilds on any change, survives corruption."""

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from server.quantization.cache import MANIFEST
from server.quantization.pipeline import REPORT_FILE, prepare_model

CALIBRATED = "event=calibrated"


# A cold build calibrates each canonical form it quantizes: the base graph and the scaler-folded one.
CALIBRATIONS_PER_BUILD = 2


def _calibrations(caplog) -> int:
    return sum(CALIBRATED in record.getMessage() for record in caplog.records)


def test_second_start_loads_from_cache_without_calibrating(model_folder, tmp_path: Path, caplog) -> None:
    config = model_folder()
    with caplog.at_level(logging.INFO, logger="server.quantization"):
        cold = prepare_model(config, tmp_path)
        assert _calibrations(caplog) == CALIBRATIONS_PER_BUILD and not cold.facts.from_cache
        caplog.clear()
        warm = prepare_model(config, tmp_path)
    assert _calibrations(caplog) == 0
    assert warm.facts.from_cache and warm.report.from_cache is True
    assert warm.model_path == cold.model_path and warm.facts.gate_verdict is cold.facts.gate_verdict
    assert warm.report.accuracy == cold.report.accuracy
    assert any("event=cache_hit" in r.getMessage() for r in caplog.records)


def test_changed_calibration_data_misses_the_cache(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    first = prepare_model(config, tmp_path)
    frame = pd.read_parquet(config.calibration_path)
    frame.iloc[: len(frame) // 2].to_parquet(config.calibration_path)
    second = prepare_model(config, tmp_path)
    assert not second.facts.from_cache
    assert second.report.cache_key != first.report.cache_key
    assert second.report.calibration.rows_used == len(frame) // 2


def test_changed_quantization_config_misses_the_cache(model_folder, tmp_path: Path) -> None:
    prepare_model(model_folder(), tmp_path)
    changed = prepare_model(model_folder(calibration_method="percentile"), tmp_path)
    assert not changed.facts.from_cache
    assert changed.report.config.calibration_method == "percentile"


def test_corrupted_artifact_is_detected_and_rebuilt(model_folder, tmp_path: Path, caplog) -> None:
    config = model_folder()
    cold = prepare_model(config, tmp_path)
    artifact = cold.model_path.read_bytes()
    cold.model_path.write_bytes(artifact[:-10] + b"0123456789")
    with caplog.at_level(logging.INFO, logger="server.quantization"):
        rebuilt = prepare_model(config, tmp_path)
    assert not rebuilt.facts.from_cache
    assert any(
        "event=cache_corrupt" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    assert _calibrations(caplog) == CALIBRATIONS_PER_BUILD
    assert rebuilt.model_path.read_bytes() == artifact
    assert prepare_model(config, tmp_path).facts.from_cache


def test_corrupted_report_is_detected_and_rebuilt(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    cold = prepare_model(config, tmp_path)
    cold.report_path.write_text("{")
    rebuilt = prepare_model(config, tmp_path)
    assert not rebuilt.facts.from_cache and rebuilt.report.verdict == cold.report.verdict


def test_force_rebuilds_and_no_staging_folders_remain(model_folder, tmp_path: Path) -> None:
    config = model_folder()
    prepare_model(config, tmp_path)
    forced = prepare_model(config, tmp_path, force=True)
    assert not forced.facts.from_cache
    leftovers = [p.name for p in (tmp_path / config.name).iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_changed_model_file_misses_the_cache(model_folder, tmp_path: Path) -> None:
    import onnx

    config = model_folder()
    first = prepare_model(config, tmp_path)
    model = onnx.load(str(config.onnx_path))
    model.doc_string = "retrained"  # any byte change of the FP32 model is a new key
    onnx.save(model, str(config.onnx_path))
    second = prepare_model(config, tmp_path)
    assert not second.facts.from_cache and second.report.cache_key != first.report.cache_key


def _replace_report(report_path: Path, change) -> None:
    """Rewrite a cached report.json and its manifest checksum: the entry verifies, its report does not."""
    text = change(report_path.read_text())
    report_path.write_text(text)
    manifest_path = report_path.parent / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][REPORT_FILE] = hashlib.sha256(text.encode()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


_DROP = object()  # for _edit: remove the key


def _edit(**changes: object):
    """A change of report.json's top-level keys."""

    def change(text: str) -> str:
        report = json.loads(text)
        for key, value in changes.items():
            if value is _DROP:
                del report[key]
            else:
                report[key] = value
        return json.dumps(report)

    return change


@pytest.mark.parametrize(
    "change",
    [
        lambda text: text[: len(text) // 2],  # not JSON
        _edit(verdict="bogus"),
        _edit(format=2),  # a report of an older format
        _edit(accuracy=_DROP),  # a passed model's report without its accuracy section
    ],
    ids=["invalid-json", "bogus-verdict", "old-format", "missing-section"],
)
def test_invalid_cached_report_is_rebuilt_with_a_warning_naming_the_file(
    model_folder, tmp_path: Path, caplog, change
) -> None:
    config = model_folder()
    cold = prepare_model(config, tmp_path)
    _replace_report(cold.report_path, change)
    with caplog.at_level(logging.INFO, logger="server.quantization"):
        rebuilt = prepare_model(config, tmp_path)
    assert not rebuilt.facts.from_cache and _calibrations(caplog) == CALIBRATIONS_PER_BUILD
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("event=cache_corrupt" in m and str(cold.report_path) in m for m in warnings), warnings
    assert rebuilt.report.verdict is cold.report.verdict
    assert prepare_model(config, tmp_path).facts.from_cache


def test_a_missing_manifest_is_named_and_rebuilt(model_folder, tmp_path: Path, caplog) -> None:
    config = model_folder()
    cold = prepare_model(config, tmp_path)
    (cold.report_path.parent / MANIFEST).unlink()
    with caplog.at_level(logging.INFO, logger="server.quantization"):
        rebuilt = prepare_model(config, tmp_path)
    assert not rebuilt.facts.from_cache and _calibrations(caplog) == CALIBRATIONS_PER_BUILD
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("event=cache_corrupt" in m and "unreadable manifest" in m for m in warnings), warnings
    assert prepare_model(config, tmp_path).facts.from_cache


def _assert_served_uncached(config, cache_dir: Path, caplog, says: str) -> None:
    with caplog.at_level(logging.INFO, logger="server.quantization"):
        prepared = prepare_model(config, cache_dir)
    warnings = [r.getMessage() for r in caplog.records if "event=cache_unwritable" in r.getMessage()]
    assert len(warnings) == 1 and f"directory={cache_dir} " in warnings[0] and says in warnings[0], warnings
    assert prepared.report_path.is_file() and not prepared.report_path.is_relative_to(cache_dir)
    assert prepared.report.verdict is not None and not prepared.facts.from_cache


def test_a_cache_path_under_a_regular_file_serves_uncached_with_a_warning(model_folder, tmp_path, caplog):
    (tmp_path / "not-a-dir").write_text("")
    _assert_served_uncached(model_folder(), tmp_path / "not-a-dir" / "cache", caplog, "Not a directory")


@pytest.fixture()
def full_dir(tmp_path: Path):
    """A 4 KiB tmpfs: room for folders, not for a report (ENOSPC); skipped where mounting is not allowed."""
    import subprocess

    mounted = tmp_path / "full"
    mounted.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mounted)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mounted
    finally:
        subprocess.run(["umount", str(mounted)], capture_output=True)


def test_a_full_cache_serves_uncached_with_a_warning(model_folder, full_dir: Path, caplog) -> None:
    _assert_served_uncached(model_folder(), full_dir, caplog, "No space left on device")
    assert [p for p in full_dir.rglob("*") if p.is_file()] == []  # no half-written entry left
