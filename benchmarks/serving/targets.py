"""The servers under test, each its own process on 127.0.0.1: the echo floor, riskserve (1 or N workers)."""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RISKSERVE = Path(sys.executable).with_name("riskserve")
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A started server: its gRPC target, optional metrics URL, process and log file."""

    label: str
    process: subprocess.Popen
    port: int
    log_path: Path
    metrics_url: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _popen(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log_path.open("w") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})}
        )


def start_echo(work_dir: Path) -> ServerProcess:
    port = free_port()
    log_path = work_dir / "echo.log"
    process = _popen([sys.executable, "-m", "benchmarks.serving.echo_server", str(port)], log_path)
    return ServerProcess("echo floor", process, port, log_path)


def riskserve_supports_workers() -> bool:
    """True once `riskserve serve` has the multi-process `--workers N` option."""
    result = subprocess.run([str(RISKSERVE), "serve", "--help"], capture_output=True, text=True, check=False)
    return "--workers" in result.stdout


def start_riskserve(work_dir: Path, cache_dir: Path, workers: int | None = None) -> ServerProcess:
    """`riskserve serve` for the fraud model, quick drain so stopping it does not stall the benchmark."""
    port, metrics_port = free_port(), free_port()
    label = "riskserve" if workers is None else f"riskserve --workers {workers}"
    command = [
        str(RISKSERVE),
        "serve",
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        "--model",
        "fraud",
        "--cache-dir",
        str(cache_dir),
        "--log-level",
        "INFO",
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    log_path = work_dir / f"riskserve-workers{workers or 1}.log"
    env = {"RISKSERVE_DRAIN_PAUSE_S": "0", "RISKSERVE_GRACE_PERIOD_S": "2"}
    process = _popen(command, log_path, env)
    return ServerProcess(label, process, port, log_path, f"http://127.0.0.1:{metrics_port}/metrics")


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
