"""`riskserve serve` on a port that is taken: one line on stderr naming the address, exit 1, no traceback."""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT


@pytest.fixture()
def busy_port() -> Iterator[int]:
    """A port another process would hold: bound and listening on 127.0.0.1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _serve(models_dir: Path, cache_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RISKSERVE_CACHE_DIR": str(cache_dir), "RISKSERVE_LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "server.cli.main", "serve", "--models-dir", str(models_dir), *flags]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def _assert_one_line_error(result: subprocess.CompletedProcess, port: int, flag: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use (another riskserve?); "
        f"choose another {flag} or stop the process using it"
    ], result.stderr


def test_busy_grpc_port_is_one_line_and_exit_1(model_repo, cache_dir, busy_port) -> None:
    result = _serve(model_repo, cache_dir, "--port", str(busy_port), "--metrics-port", "0")
    _assert_one_line_error(result, busy_port, "--port")
    assert "Failed to bind" not in result.stderr  # gRPC's own message is not shown


def test_busy_metrics_port_is_one_line_and_exit_1(model_repo, cache_dir, busy_port) -> None:
    result = _serve(model_repo, cache_dir, "--port", "0", "--metrics-port", str(busy_port))
    _assert_one_line_error(result, busy_port, "--metrics-port")


def test_busy_grpc_port_with_workers_says_the_same(model_repo, cache_dir, busy_port) -> None:
    flags = ("--port", str(busy_port), "--metrics-port", "0", "--workers", "2", "--model", "fraud")
    _assert_one_line_error(_serve(model_repo, cache_dir, *flags), busy_port, "--port")
