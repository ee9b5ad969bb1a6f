"""Triton's perf_analyzer against every Open Inference Protocol target: its capacity, the highest
throughput at a concurrency whose p99 stays under the limit, over a concurrency sweep.

perf_analyzer stops at the first failed request, so a server that sheds (or whose gRPC core cancels calls)
below its knee shows a low capacity here; that is the point of running it. Needs `.venv/bin/perf_analyzer`
(`./run.sh test` installs it); skipped with a note otherwise.
"""

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tritonclient.grpc import service_pb2

from benchmarks.serving.payloads import MODEL


@dataclass
class PerfAnalyzerRun:
    target: str
    points: list[dict] = field(default_factory=list)  # concurrency, inferences/s, p99 µs, ok
    error: str | None = None

    def capacity(self, p99_limit_ms: float) -> float | None:
        fits = [p["inferences_per_s"] for p in self.points if p["ok"] and p["p99_us"] < p99_limit_ms * 1e3]
        return max(fits) if fits else None

    def as_dict(self) -> dict:
        return asdict(self)


def binary() -> str | None:
    return shutil.which("perf_analyzer", path=str(Path(sys.executable).parent)) or shutil.which(
        "perf_analyzer"
    )


def input_data(infer_body: bytes, path: Path) -> Path:
    """perf_analyzer's --input-data from one of the benchmark's own ModelInfer requests (same values)."""
    request = service_pb2.ModelInferRequest.FromString(infer_body)
    row = {}
    for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
        if tensor.datatype == "BYTES":
            row[tensor.name] = [raw[4:].decode()]
        else:
            row[tensor.name] = [float(np.frombuffer(raw, dtype="<f4")[0])]
    path.write_text(json.dumps({"data": [row]}))
    return path


def sweep(
    target_name: str, target: str, data: Path, concurrencies: list[int], interval_ms: int, work: Path
) -> PerfAnalyzerRun:
    """One perf_analyzer run per concurrency (a failed request ends that run: later ones still run)."""
    run = PerfAnalyzerRun(target_name)
    exe = binary()
    if exe is None:
        run.error = "perf_analyzer not installed (./run.sh test installs it)"
        return run
    for concurrency in concurrencies:
        report = work / f"perf-{target_name.replace(' ', '_')}-{concurrency}.csv"
        report.unlink(missing_ok=True)
        command = [
            exe,
            "-m",
            MODEL,
            "-i",
            "grpc",
            "-u",
            target,
            "--input-data",
            str(data),
            "--concurrency-range",
            str(concurrency),
            "--measurement-interval",
            str(interval_ms),
            "--max-trials",
            "3",
            "--stability-percentage",
            "100",
            "-f",
            str(report),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        rows = list(csv.DictReader(report.open())) if report.exists() else []
        if done.returncode != 0 or not rows:
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            run.points.append(
                {"concurrency": concurrency, "inferences_per_s": 0.0, "p99_us": None, "ok": False}
            )
            run.error = f"concurrency {concurrency}: {tail[0][:200]}"
            continue
        row = rows[0]
        run.points.append(
            {
                "concurrency": concurrency,
                "inferences_per_s": float(row["Inferences/Second"]),
                "p99_us": float(row["p99 latency"]),
                "ok": True,
            }
        )
    return run
