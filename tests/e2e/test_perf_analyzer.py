"""Triton's perf_analyzer (PyPI perf-analyzer, which `./run.sh test` installs) drives riskserve unchanged."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.requests import transaction


def _perf_analyzer() -> str:
    """$PERF_ANALYZER, else the venv's perf_analyzer (the wrapper run.sh writes), else one on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    binary = (
        os.environ.get("PERF_ANALYZER")
        or shutil.which("perf_analyzer", path=venv_bin)
        or shutil.which("perf_analyzer")
    )
    if binary is None:
        pytest.skip("perf_analyzer not found: ./run.sh test installs it (PyPI perf-analyzer, see run.sh)")
    probe = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20)
    if probe.returncode != 0 or "Perf Analyzer" not in probe.stdout + probe.stderr:
        pytest.skip(f"perf_analyzer cannot run here: {(probe.stdout + probe.stderr).strip()}")
    return binary


def test_perf_analyzer_reports_throughput_and_latency(server, tmp_path):
    binary = _perf_analyzer()
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
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(report.open()))
    assert rows and float(rows[0]["Inferences/Second"]) > 0
    assert 0 < float(rows[0]["p99 latency"]) < 1_000_000  # microseconds
