"""How many of riskserve's modules one unary call passes through, traced over real calls.

The README's "One request's path" draws a unary `Score` as 7 modules, each once; this test keeps it so:
a new layer on the path (a wrapper, a lookup helper in another module, a per-call hook) fails here.
Traced with `sys.setprofile` on the server's event loop thread over real gRPC calls to a warmed server.
"""

import sys
import threading
from pathlib import Path

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.requests import transaction

SERVER_ROOT = Path(__file__).resolve().parents[2] / "server"
# runs on garbage collections, not calls (the GC pause monitor's gc.callbacks entry)
NOT_PER_CALL = {"server/app/gc_tuning.py"}
# Timers on the loop thread, not calls: when one fires during the traced calls, its work (and whatever it
# calls, in any module) is left out. A CI run once saw the watchdog's round in the window.
TIMERS = {
    ("server/app/watchdog.py", "_watch_models"),  # its periodic round of check_models
    ("server/app/watchdog.py", "_beat"),  # the loop-stall heartbeat, scheduled from its thread
    ("server/app/model_reload.py", "_poll_forever"),  # model_poll_s > 0
}
SCORE_PATH = [  # in order of first entry
    "server/api/calls.py",  # the guard around the handler, then the call scope
    "server/api/domain_api.py",  # the servicer: slot, scope, message -> tensors
    "server/metrics/serving_metrics.py",  # the in-flight gauge as the scope admits the call
    "server/runtime/features.py",  # the one-row fast path's validation into tensors
    "server/runtime/model_runtime.py",  # predict
    "server/runtime/batcher.py",  # submit: a lone call runs at once
    "server/runtime/prediction.py",  # probabilities -> scores and decisions
]


def traced_modules(server, call) -> list[str]:
    """riskserve modules (generated stubs aside) whose code ran on the server's loop thread during
    `call()`, in order of first entry."""
    seen: list[str] = []
    started, stopped = threading.Event(), threading.Event()
    timer: list = []  # the timer frame being run (a coroutine frame returns at each suspension)

    def profile(frame, event, arg):
        if timer:
            if event == "return" and frame is timer[0]:
                timer.clear()
            return
        if event == "call":
            path = Path(frame.f_code.co_filename)
            if path.is_relative_to(SERVER_ROOT) and "gen" not in path.parts:
                name = path.relative_to(SERVER_ROOT.parent).as_posix()
                if (name, frame.f_code.co_name) in TIMERS:
                    timer.append(frame)
                elif name not in seen and name not in NOT_PER_CALL:
                    seen.append(name)

    def start():
        sys.setprofile(profile)
        started.set()

    def stop():
        sys.setprofile(None)
        stopped.set()

    server.loop.call_soon_threadsafe(start)
    assert started.wait(5)
    try:
        call()
    finally:
        server.loop.call_soon_threadsafe(stop)
        assert stopped.wait(5)
    return seen


@pytest.fixture()
def fraud_stub(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        for _ in range(20):  # warm: first calls build per-model readers and answer templates
            stub.Score(transaction(), timeout=10)
        yield stub


def test_a_unary_score_runs_code_in_seven_modules(server, fraud_stub):
    def three_calls():
        for _ in range(3):
            fraud_stub.Score(transaction(), timeout=10)

    modules = traced_modules(server, three_calls)
    assert modules == SCORE_PATH, f"a unary Score ran code in {len(modules)} modules: {modules}"
