"""`riskserve serve` as a subprocess on free 127.0.0.1 ports, with its RSS sampled from /proc."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT_S = 240.0  # a cold cache quantizes both bundled models (30-60 s on 2 cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` plus its descendants (serving workers, if any), in KiB; 0 once gone."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo.extend(_children(current))
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` plus its live descendants."""
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo.extend(_children(current))
    return total


class RssSampler:
    """Samples rss_kb(pid) every `interval_s` on a thread: peak and the time series."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_kb(self.pid)))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_kb(self) -> int:
        return max((kb for _, kb in self.samples), default=0)


class ServerProcess:
    """One `riskserve serve` on the bundled models; settings given as RISKSERVE_* variables.

    `source_dir`: run the server code (and bundled models) of that source tree, e.g. an exported commit,
    instead of the installed (editable) package."""

    def __init__(
        self, work_dir: Path, cache_dir: Path, settings: dict[str, str], name: str, source_dir: Path | None
    ) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.log_path = work_dir / f"server-{name}.log"
        self.env = {
            **os.environ,
            "RISKSERVE_HOST": "127.0.0.1",
            "RISKSERVE_PORT": str(self.port),
            "RISKSERVE_METRICS_HOST": "127.0.0.1",
            "RISKSERVE_METRICS_PORT": str(self.metrics_port),
            "RISKSERVE_CACHE_DIR": str(cache_dir),
            **{f"RISKSERVE_{k.upper()}": v for k, v in settings.items()},
        }
        self.settings = settings
        self.source_dir = source_dir
        if source_dir is not None:
            self.env["PYTHONPATH"] = str(source_dir)
        self.proc: subprocess.Popen | None = None
        self.start_seconds = 0.0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start and wait until health says SERVING (raises with the log's tail otherwise)."""
        if self.source_dir is None:
            command = [str(Path(sys.executable).parent / "riskserve"), "serve"]
        else:
            command = [sys.executable, "-m", "server.cli.main", "serve"]
        log = self.log_path.open("w")
        began = time.monotonic()
        self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=log, cwd=self.source_dir)
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() - began < START_TIMEOUT_S:
                if self.proc.poll() is not None:
                    break
                try:
                    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        self.start_seconds = time.monotonic() - began
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        tail = self.log_path.read_text()[-2000:]
        self.stop()
        raise RuntimeError(f"riskserve serve did not become SERVING; log tail:\n{tail}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_lines(self, event: str) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if f"event={event}" in line]
