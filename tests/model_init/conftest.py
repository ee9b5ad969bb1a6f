"""Shared helpers: `riskserve models init` run in-process (output captured), in-process servers."""

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.cli.main import main
from tests.e2e.conftest import ServerThread, test_settings


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def run_init(directory: Path, *args: str) -> tuple[int, str, str]:
    """`riskserve models init DIRECTORY ARGS...` -> (exit status, stdout, stderr). Flag errors exit too."""
    with _captured() as (out, err):
        try:
            code = main(["models", "init", str(directory), *args])
        except SystemExit as exc:  # argparse's own exit for a malformed command line
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def run_cli(*args: str) -> tuple[int, str, str]:
    with _captured() as (out, err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def serve(tmp_path_factory: pytest.TempPathFactory):
    """Factory: an in-process server on a model repository (stopped after the test)."""
    started: list[ServerThread] = []

    def start(models_dir: Path, cache_dir: Path) -> ServerThread:
        running = ServerThread(test_settings(models_dir, cache_dir))
        started.append(running)
        return running.wait_ready()

    yield start
    for running in started:
        running.close()
