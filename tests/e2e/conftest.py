"""Real riskserve servers on 127.0.0.1 for end-to-end tests.

- `model_repo`: a model repository with small fraud and credit models (the bundled models' inputs), built
  once per session.
- `server`: one in-process server (its own event loop in a thread) shared by the session.
- `start_server(...)`: more in-process servers with other settings (e.g. a slow model for deadlines).
- `spawn_server(...)`: `riskserve serve` as a subprocess (signals, exit codes).
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from server.app.serving import RiskServer
from server.config.settings import ServerSettings
from tests.e2e.model_factory import write_model

REPO_ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"event=listening address=\S+:(\d+) metrics_port=(\d+)")


class ServerThread:
    """A RiskServer running on its own event loop in a daemon thread."""

    def __init__(self, settings: ServerSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = RiskServer(settings)
        self.call(self.server.start())

    def call(self, coroutine, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def wait_ready(self) -> "ServerThread":
        self.call(self.server.wait_ready())
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def close(self) -> None:
        try:
            self.call(self.server.stop(), timeout=10)
            self.server.metrics.close()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def test_settings(models_dir: Path, cache_dir: Path, **overrides) -> ServerSettings:
    defaults = dict(port=0, metrics_port=0, drain_pause_s=0.0, grace_period_s=2.0)
    return ServerSettings(models_dir=models_dir, cache_dir=cache_dir, **(defaults | overrides))


test_settings.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_model(root / "fraud", "fraud")
    write_model(root / "credit", "credit")
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def server(model_repo: Path, cache_dir: Path) -> Iterator[ServerThread]:
    running = ServerThread(test_settings(model_repo, cache_dir, max_request_rows=512)).wait_ready()
    yield running
    running.close()


@pytest.fixture(scope="session")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as open_channel:
        yield open_channel


@pytest.fixture()
def start_server(cache_dir: Path):
    """Factory for extra in-process servers; all are stopped after the test."""
    started: list[ServerThread] = []

    def start(models_dir: Path, **overrides) -> ServerThread:
        running = ServerThread(test_settings(models_dir, cache_dir, **overrides))
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


class ServerProcess:
    def __init__(self, process: subprocess.Popen, port: int, metrics_port: int, log: list[str]) -> None:
        self.process, self.port, self.metrics_port, self.log = process, port, metrics_port, log

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


@pytest.fixture()
def spawn_server(tmp_path: Path):
    """Factory: `riskserve serve` in a subprocess; returns once it listens (models may still be loading)."""
    spawned: list[subprocess.Popen] = []

    def spawn(models_dir: Path, **env_settings) -> ServerProcess:
        env = {**os.environ, "RISKSERVE_CACHE_DIR": str(tmp_path / "cache"), "RISKSERVE_LOG_LEVEL": "INFO"}
        env |= {f"RISKSERVE_{k.upper()}": str(v) for k, v in env_settings.items()}
        command = [
            sys.executable,
            "-m",
            "server.cli.main",
            "serve",
            "--models-dir",
            str(models_dir),
            "--port",
            "0",
            "--metrics-port",
            "0",
        ]
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
        spawned.append(process)
        log: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            log.append(line)
            if match := _LISTENING.search(line):
                threading.Thread(target=lambda: log.extend(process.stderr), daemon=True).start()
                return ServerProcess(process, int(match[1]), int(match[2]), log)
        raise AssertionError("server subprocess did not start:\n" + "".join(log))

    yield spawn
    for process in spawned:
        if process.poll() is None:
            process.kill()
            process.wait(5)
