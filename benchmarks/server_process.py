"""Servers as subprocesses on 127.0.0.1, for the tests and the benchmarks alike: one way to start them.

`RiskServe` is `riskserve serve` (`python -m server.cli.main serve`, this checkout's code or an exported
tree's): ports 0 unless given (the real ones are read from its documented `event=listening` log line, so
no port can be taken between choosing and binding it), settings as `RISKSERVE_*` variables, stdout and
stderr captured line by line (kept in `log`, copied to `log_path` when given). `start()` returns once it
listens or once `grpc.health.v1` says SERVING; `stop()` sends SIGTERM, waits, and returns the exit status.
`ServerProcess` is the same for any other server command (the benchmarks' echo floor, MLServer).

Only the CLI, its log lines, the gRPC health service and the metrics endpoint are relied on, never the
server's internals. No pytest here: the benchmarks import this module, and the tests do too (tests/e2e's
`spawn_server`, tests/loadtest/real_server.py), since the tests may use the repository's tools while the
benchmarks must not depend on the test suite.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, Self

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
START_TIMEOUT_S = 240.0  # a cold cache quantizes and gates both bundled models first (30-60 s on 2 cores)
STOP_TIMEOUT_S = 30.0
LISTENING = re.compile(r"event=listening address=\S+:(\d+) metrics_port=(\d+)")


class ServerStartError(RuntimeError):
    """The server exited, or did not reach the wanted state in time; the message ends with its log."""


def free_port() -> int:
    """A port free on 127.0.0.1 now (for servers that cannot be told to pick one themselves)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server command as a subprocess: its output captured, stopped with SIGTERM."""

    def __init__(
        self,
        label: str,
        command: Sequence[str],
        port: int,
        *,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.label, self.command, self.port = label, list(command), port
        self.log_path, self.env, self.cwd = log_path, {**os.environ, **(env or {})}, cwd
        self.log: list[str] = []  # every line of output so far, newline included
        self._process: subprocess.Popen | None = None
        self._changed = threading.Condition()
        self._ended = False

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def process(self) -> subprocess.Popen:
        if self._process is None:
            raise RuntimeError(f"{self.label} was not started")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def launch(self) -> None:
        """Start the command; its output is read on a thread so the server never blocks writing it."""
        self._process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._read_output, name=f"{self.label} output", daemon=True).start()

    def _read_output(self) -> None:
        sink = self.log_path.open("w") if self.log_path is not None else None
        try:
            for line in self.process.stdout:
                with self._changed:
                    self.log.append(line)
                    self._changed.notify_all()
                if sink is not None:
                    sink.write(line)
                    sink.flush()
        finally:
            if sink is not None:
                sink.close()
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def wait_for_line(self, pattern: re.Pattern, timeout_s: float) -> re.Match | None:
        """The first match of `pattern` in the output; None if the output ended or time ran out first."""
        deadline, seen = time.monotonic() + timeout_s, 0
        with self._changed:
            while True:
                for line in self.log[seen:]:
                    if found := pattern.search(line):
                        return found
                seen = len(self.log)
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    return None
                self._changed.wait(left)

    def log_text(self) -> str:
        return "".join(self.log)

    def log_lines(self, event: str) -> list[str]:
        """The output lines of one `event=...`."""
        return [line.rstrip("\n") for line in self.log if f"event={event}" in line]

    def failed(self, what: str) -> ServerStartError:
        """Kill the server and describe why it is not usable, with the tail of its output."""
        self.kill()
        status, tail = self.process.returncode, self.log_text()[-3000:]
        return ServerStartError(f"{self.label} {what} (exit status {status}); output:\n{tail}")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def terminate(self) -> None:
        """SIGTERM, without waiting (the server drains and exits on its own)."""
        self.signal(signal.SIGTERM)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM and wait; SIGKILL if it has not exited after `timeout_s`. The exit status (None if never
        started): 0 after a clean drain, negative for a signal."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._process.returncode

    def kill(self) -> None:
        """SIGKILL at once if still running, and reap it."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        if self._process is not None:
            self._process.wait(10)

    def __enter__(self) -> Self:
        self.launch()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class RiskServe(ServerProcess):
    """`riskserve serve` on 127.0.0.1. `settings` become RISKSERVE_<NAME> variables (e.g. workers=2,
    models="fraud", drain_pause_s=0); `source_dir` runs that tree's server code and bundled models (an
    exported commit) instead of this checkout's. The log level is INFO unless settings say otherwise
    (the `event=listening` line, which gives the ports, is logged at INFO)."""

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        cache_dir: Path | None = None,
        settings: Mapping[str, object] | None = None,
        log_path: Path | None = None,
        source_dir: Path | None = None,
        label: str = "riskserve",
        port: int = 0,
        metrics_port: int = 0,
    ) -> None:
        command = [sys.executable, "-m", "server.cli.main", "serve", "--host", HOST, "--port", str(port)]
        command += ["--metrics-host", HOST, "--metrics-port", str(metrics_port)]
        if models_dir is not None:
            command += ["--models-dir", str(models_dir)]
        if cache_dir is not None:
            command += ["--cache-dir", str(cache_dir)]
        env = {"RISKSERVE_LOG_LEVEL": "INFO"}
        env |= {f"RISKSERVE_{name.upper()}": str(value) for name, value in (settings or {}).items()}
        if source_dir is not None:
            env["PYTHONPATH"] = str(source_dir)
        super().__init__(label, command, port, log_path=log_path, env=env, cwd=source_dir or REPO)
        self.settings = dict(settings or {})
        self.metrics_port = metrics_port
        self.start_seconds = 0.0  # from launch to the wanted state

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def start(
        self, ready: Literal["listening", "serving"] = "serving", timeout_s: float = START_TIMEOUT_S
    ) -> Self:
        """Launch; return once it listens (models may still be loading) or, by default, once health says
        SERVING. Raises ServerStartError (the server killed) if it exits or `timeout_s` runs out first."""
        began = time.monotonic()
        self.launch()
        listening = self.wait_for_line(LISTENING, timeout_s)
        if listening is None:
            raise self.failed("did not log event=listening" if self.alive() else "exited before listening")
        self.port, self.metrics_port = int(listening[1]), int(listening[2])
        if ready == "serving":
            self.wait_serving(max(0.0, began + timeout_s - time.monotonic()))
        self.start_seconds = time.monotonic() - began
        return self

    def wait_serving(self, timeout_s: float, service: str = "") -> None:
        """Poll grpc.health.v1 Check until `service` ("": the whole server) is SERVING."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if not self.alive():
                    raise self.failed("exited before SERVING")
                try:
                    answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise self.failed("not SERVING in time")

    def __enter__(self) -> Self:
        return self.start()
