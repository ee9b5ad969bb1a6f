"""Start the real `riskserve serve` as a subprocess on 127.0.0.1 (free ports, bundled models, own cache)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

STARTUP_TIMEOUT_S = 240.0  # a cold cache quantizes and gates both bundled models first


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RiskServeProcess:
    """`riskserve serve` in a subprocess; `target` and `metrics_url` once it reports SERVING."""

    def __init__(
        self, cache_dir: Path, log_file: Path, debug_delay_ms: float = 0.0, models_dir: Path | None = None
    ) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self._cache_dir, self._log_file, self._delay = cache_dir, log_file, debug_delay_ms
        self._models_dir = models_dir
        self._process: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def __enter__(self) -> "RiskServeProcess":
        env = {
            **os.environ,
            "RISKSERVE_DEBUG_INFERENCE_DELAY_MS": str(self._delay),
            "RISKSERVE_DRAIN_PAUSE_S": "0",
            "RISKSERVE_GRACE_PERIOD_S": "1",
        }
        command = [
            sys.executable,
            "-m",
            "server.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--cache-dir",
            str(self._cache_dir),
        ]
        if self._models_dir is not None:
            command += ["--models-dir", str(self._models_dir)]
        self._log = self._log_file.open("wb")
        self._process = subprocess.Popen(
            command,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            self._wait_serving()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"riskserve exited with {self._process.returncode}: "
                        f"{self._log_file.read_text()[-3000:]}"
                    )
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.5)
        raise TimeoutError(
            f"riskserve not SERVING after {STARTUP_TIMEOUT_S:.0f} s: {self._log_file.read_text()[-3000:]}"
        )

    def __exit__(self, *exc_info) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
