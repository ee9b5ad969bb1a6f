"""Real riskserve servers on 127.0.0.1 for end-to-end tests.

- `model_repo`: a model repository with small fraud and credit models (the bundled models' inputs), built
  once per session.
- `server`: one in-process server (its own event loop in a thread) shared by the session.
- `start_server(...)`: more in-process servers with other settings (e.g. a slow model for deadlines).
- `spawn_server(...)`: `riskserve serve` as a subprocess (signals, exit codes).
"""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from benchmarks.server_process import RiskServe
from server.app.event_loop import loop_factory
from server.app.serving import RiskServer
from server.config.settings import ServerSettings
from tests.e2e.model_factory import write_model

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerThread:
    """A RiskServer running on its own event loop (of the settings' `event_loop`, as `riskserve serve`
    runs it) in a daemon thread."""

    def __init__(self, settings: ServerSettings) -> None:
        self.loop = loop_factory(settings.event_loop)()
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


@pytest.fixture()
def spawn_server(tmp_path: Path):
    """Factory: `riskserve serve` in a subprocess (benchmarks/server_process.py); returns once it listens
    (models may still be loading). Settings are keyword arguments (RISKSERVE_<NAME>); the server's output
    lines are in `.log`. Any still running after the test is killed."""
    spawned: list[RiskServe] = []

    def spawn(models_dir: Path, **settings) -> RiskServe:
        server = RiskServe(models_dir=models_dir, cache_dir=tmp_path / "cache", settings=settings)
        spawned.append(server)
        return server.start(ready="listening", timeout_s=30)

    yield spawn
    for server in spawned:
        server.kill()


@pytest.fixture()
def servers(cache):
    """Factory: in-process servers on `models_dir` with the requesting module's `cache` fixture, returned
    once ready; every one is closed after the test."""
    started: list[ServerThread] = []

    def start(models_dir: Path, **settings) -> ServerThread:
        started.append(ServerThread(test_settings(models_dir, cache, **settings)).wait_ready())
        return started[-1]

    yield start
    for running in started:
        running.close()
