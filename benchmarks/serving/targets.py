"""The servers under test, each its own process on 127.0.0.1: the echo floor, riskserve (1 or N workers).

Started through benchmarks/server_process.py, like every server the tests and benchmarks run.
"""

import sys
import time
from pathlib import Path

from benchmarks.server_process import RiskServe, ServerProcess, free_port
from benchmarks.serving.payloads import MODEL

RISKSERVE_START_TIMEOUT_S = 300.0


def start_echo(work_dir: Path) -> ServerProcess:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.serving.echo_server", str(port)]
    echo = ServerProcess("echo floor", command, port, log_path=work_dir / "echo.log")
    echo.launch()
    return echo


def start_ort_floor(work_dir: Path, model_path: Path, loop: str = "asyncio") -> ServerProcess:
    """The grpc.aio + ONNX Runtime inline floor (benchmarks/serving/ort_floor_server.py) on `model_path`,
    on the standard event loop (the floor as defined) or, `loop="uvloop"`, on riskserve's default loop."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.serving.ort_floor_server", str(port), str(model_path), loop]
    label = "ORT-inline floor" if loop == "asyncio" else f"ORT-inline floor on {loop}"
    floor = ServerProcess(label, command, port, log_path=work_dir / f"ort-floor-{loop}.log")
    floor.launch()
    return floor


def start_listening_ort_floor(work_dir: Path, cache_dir: Path, loop: str = "asyncio") -> ServerProcess:
    """The ORT-inline floor (on `loop`) on riskserve's gated INT8 file from `cache_dir` (byte for byte what
    riskserve serves), once it accepts connections; SystemExit (the process stopped) when it does not."""
    floor = start_ort_floor(work_dir, quantized_model(cache_dir, MODEL), loop)
    if not wait_listening(floor):
        floor.stop()
        raise SystemExit(f"the ORT-inline floor did not start; see {floor.log_path}")
    return floor


def start_riskserve(
    work_dir: Path, cache_dir: Path, workers: int | None = None, extra: dict | None = None
) -> RiskServe:
    """`riskserve serve` for the fraud model, quick drain so stopping it does not stall the benchmark;
    returns once SERVING (raises ServerStartError, the server stopped, otherwise). `extra`: more settings."""
    settings: dict[str, object] = {"models": MODEL, "drain_pause_s": 0, "grace_period_s": 2}
    if workers is not None:
        settings["workers"] = workers
    settings |= extra or {}
    server = RiskServe(
        cache_dir=cache_dir,
        settings=settings,
        log_path=work_dir / f"riskserve-workers{workers or 1}.log",
        label="riskserve" if workers is None else f"riskserve --workers {workers}",
    )
    return server.start(timeout_s=RISKSERVE_START_TIMEOUT_S)


def wait_model_ready(server: ServerProcess, model: str, timeout_s: float = 120.0) -> bool:
    """Poll the Open Inference Protocol's ModelReady; False when the process died or time ran out."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(server.target)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not server.alive():
                return False
            try:
                if client.is_model_ready(model):
                    return True
            except Exception:  # not listening yet
                pass
            time.sleep(0.3)
        return False
    finally:
        client.close()


def quantized_model(cache_dir: Path, model: str = "fraud") -> Path:
    """The INT8 ONNX file riskserve built (and gated) into its quantization cache, newest entry."""
    candidates = sorted(
        (cache_dir / model).glob("*/model.int8.onnx"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    if not candidates:
        raise FileNotFoundError(f"no INT8 model in {cache_dir / model}: riskserve did not quantize it")
    return candidates[0]


def wait_listening(server: ServerProcess, timeout_s: float = 30.0) -> bool:
    """Wait until the port accepts a gRPC connection (for the echo server, which has no ModelReady)."""
    import grpc

    with grpc.insecure_channel(server.target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
            return server.alive()
        except grpc.FutureTimeoutError:
            return False
