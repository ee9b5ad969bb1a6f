"""`riskserve quantize`: exit status per outcome, the reviewer's summary, the full report as JSON."""

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

from server.cli.main import main
from server.quantization.report import QuantizationReport


def _quantize(models_dir: Path, cache: Path, *args: str) -> int:
    return main(["quantize", *args, "--models-dir", str(models_dir), "--cache-dir", str(cache)])


def test_passing_model_exits_0_with_summary_then_loads_from_cache(model_folder, tmp_path, capsys) -> None:
    model_folder("plain")
    assert _quantize(tmp_path, tmp_path / "cache", "plain") == 0
    out = capsys.readouterr().out
    assert "verdict PASSED, serving int8" in out and "built now" in out and "report: " in out
    assert _quantize(tmp_path, tmp_path / "cache", "plain") == 0
    assert "from cache" in capsys.readouterr().out


def test_failed_gate_exits_3_and_json_says_fp32(model_folder, tmp_path, capsys) -> None:
    config = model_folder("hopeless")
    assert _quantize(tmp_path, tmp_path / "cache", "hopeless", "--json") == 3
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["verdict"] == "failed" and report["precision"] == "fp32"
    assert report["served_model"] == str(config.onnx_path)
    assert report["report_path"].endswith("report.json")
    assert QuantizationReport.model_validate_json(out).verdict == "failed"


def test_json_for_several_models_is_a_list_of_reports(model_folder, tmp_path, capsys) -> None:
    model_folder("plain")
    shutil.copytree(tmp_path / "plain", tmp_path / "same")  # same bytes, same key: a cache hit
    assert _quantize(tmp_path, tmp_path / "cache", "plain", "same", "--json") == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in reports] == ["passed", "passed"]
    assert [r["from_cache"] for r in reports] == [False, True]
    assert [QuantizationReport.model_validate(r).precision for r in reports] == ["int8", "int8"]


def test_bad_data_exits_2_naming_the_problem(model_folder, tmp_path, capsys) -> None:
    config = model_folder("plain")
    frame = pd.read_parquet(config.calibration_path)
    frame.drop(columns=["velocity"]).to_parquet(config.calibration_path)
    assert _quantize(tmp_path, tmp_path / "cache", "plain") == 2
    assert "missing columns: velocity" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_unknown_model_exits_2(tmp_path, capsys) -> None:
    assert _quantize(tmp_path, tmp_path / "cache", "nosuchmodel") == 2
    assert "nosuchmodel" in capsys.readouterr().err


def test_json_stays_valid_when_onnxruntime_prints_during_calibration(model_folder, tmp_path, capfd) -> None:
    model_folder("plain")
    config_file = tmp_path / "plain" / "config.yaml"
    raw = yaml.safe_load(config_file.read_text())
    raw["quantization"]["calibration_method"] = "percentile"  # ORT prints "Collecting tensor data..."
    config_file.write_text(yaml.safe_dump(raw))
    status = _quantize(tmp_path, tmp_path / "cache", "plain", "--json")
    out, err = capfd.readouterr()
    assert status in (0, 3)
    assert json.loads(out)["config"]["calibration_method"] == "percentile"
    assert "Collecting tensor data" in err


def test_every_named_model_is_processed_and_reported_when_one_is_bad(model_folder, tmp_path, capsys) -> None:
    model_folder("plain")
    shutil.copytree(tmp_path / "plain", tmp_path / "broken")
    calibration = tmp_path / "broken" / "calibration.parquet"
    pd.read_parquet(calibration).drop(columns=["velocity"]).to_parquet(calibration)
    assert _quantize(tmp_path, tmp_path / "cache", "broken", "plain", "nosuchmodel") == 2
    captured = capsys.readouterr()
    assert "verdict PASSED, serving int8" in captured.out  # plain, after the broken one
    assert "error: broken: " in captured.err and "missing columns: velocity" in captured.err
    assert "error: nosuchmodel: " in captured.err
    assert "error: 2 of 3 models failed: broken, nosuchmodel" in captured.err
