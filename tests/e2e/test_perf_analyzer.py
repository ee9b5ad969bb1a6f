"""Triton's perf_analyzer (from the tritonclient 2.41.0 wheel) drives riskserve unchanged."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.requests import transaction


def _perf_analyzer() -> tuple[str, dict]:
    venv_bin = Path(sys.executable).parent
    binary = shutil.which("perf_analyzer", path=str(venv_bin)) or shutil.which("perf_analyzer")
    if binary is None:
        pytest.skip("perf_analyzer binary not found (it ships in the tritonclient==2.41.0 wheel)")
    try:
        import nvidia.cuda_runtime  # pip nvidia-cuda-runtime-cu12: provides libcudart.so.12

        cudart = Path(next(iter(nvidia.cuda_runtime.__path__))) / "lib"
    except ImportError:
        pytest.skip("perf_analyzer needs libcudart.so.12: pip install nvidia-cuda-runtime-cu12")
    env = {**os.environ, "LD_LIBRARY_PATH": f"{cudart}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    probe = subprocess.run([binary, "--help"], env=env, capture_output=True, text=True, timeout=20)
    if "error while loading shared libraries" in probe.stderr:
        pytest.skip(f"perf_analyzer cannot run here: {probe.stderr.strip()}")
    return binary, env


def test_perf_analyzer_reports_throughput_and_latency(server, tmp_path):
    binary, env = _perf_analyzer()
    t = transaction()
    row = {"amount": [t.amount], "hour_of_day": [float((t.timestamp // 3600) % 24)]}
    row |= {f.name: [float(getattr(t.behaviour, f.name))] for f in t.behaviour.DESCRIPTOR.fields}
    row |= {
        name: [getattr(t, name)]
        for name in ("currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode")
    }
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"data": [row]}))
    report = tmp_path / "perf.csv"
    done = subprocess.run(
        [
            binary,
            "-m",
            "fraud",
            "-i",
            "grpc",
            "-u",
            server.target,
            "--input-data",
            str(data),
            "--concurrency-range",
            "1",
            "--measurement-interval",
            "1000",
            "--max-trials",
            "4",
            "--stability-percentage",
            "100",
            "-f",
            str(report),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(report.open()))
    assert rows and float(rows[0]["Inferences/Second"]) > 0
    assert 0 < float(rows[0]["p99 latency"]) < 1_000_000  # microseconds
