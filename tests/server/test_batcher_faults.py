"""The batcher's invariant: whatever raises where, every caller is answered at once, and the worker goes on.

A fault is injected once at each step of a batch (concatenating the inputs, the observer, ONNX Runtime,
slicing the output, cancelling the worker); the callers of that batch and of the queue must get an
INTERNAL-coded error naming the model well before their deadline, and the next call must be scored.
Past the restart bound the model is given up: calls are refused at once with UNAVAILABLE.
"""

import asyncio
import logging
import threading
import time

import numpy as np
import pytest

from server.config.settings import InferenceHandoff
from server.runtime import batcher as batcher_module
from server.runtime.batcher import MicroBatcher
from server.runtime.errors import ScoringError

DEADLINE_S = 5.0  # the callers' deadline: a wedged batcher would keep them waiting this long
# "At once": a fraction of DEADLINE_S, with room for the stalls of a loaded machine (was 1 s and 50 ms).
ANSWERED_WITHIN_S = 2.0
REFUSED_WITHIN_S = 0.5


class Model:
    """output = 2 * x; waits on `gate` (if set) so that requests queue up behind a running batch; counts
    the batches it was called with (`started`)."""

    def __init__(self) -> None:
        self.gate: threading.Event | None = None
        self.fail_next = False
        self.started = 0

    def __call__(self, feeds):
        self.started += 1
        gate = self.gate
        if gate is not None:
            gate.wait(5)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("ORT: injected failure")
        return feeds["x"] * 2


def _feeds(value: float, width: int = 1) -> dict:
    return {"x": np.full((1, width), value, dtype=np.float32)}


def _batcher(model, **kwargs) -> MicroBatcher:
    defaults = dict(
        max_batch_size=8, max_queue_delay_us=0, max_queue_rows=100, handoff=InferenceHandoff.THREAD
    )
    return MicroBatcher("fraud", model, **(defaults | kwargs))


async def _until_started(model: Model, batches: int) -> None:
    """Until the model was called with `batches` batches (instead of sleeping a guess)."""
    deadline = time.monotonic() + DEADLINE_S
    while model.started < batches:
        assert time.monotonic() < deadline, f"the model never got batch {batches}"
        await asyncio.sleep(0.005)


async def _hold_the_next_batch(batcher: MicroBatcher, model: Model, first: asyncio.Future) -> asyncio.Future:
    """Once `first` is answered, a new call runs and is held at a fresh (closed) gate. Returns its future."""
    await first  # past the open gate: closing a new one cannot catch it
    model.gate = threading.Event()
    loop = asyncio.get_running_loop()
    held = asyncio.ensure_future(batcher.submit(_feeds(1), 1, loop.time() + DEADLINE_S))
    await _until_started(model, 2)
    return held


async def _queue_behind_a_running_batch(batcher: MicroBatcher, model: Model, feeds: list[dict]):
    """One request runs (held at the gate) while `feeds` queue up; then the gate opens and the queued ones
    are cut into one batch. Returns (first, queued) futures."""
    loop = asyncio.get_running_loop()
    model.gate = threading.Event()
    first = asyncio.ensure_future(batcher.submit(_feeds(0), 1, loop.time() + DEADLINE_S))
    await _until_started(model, 1)
    queued = [asyncio.ensure_future(batcher.submit(f, 1, loop.time() + DEADLINE_S)) for f in feeds]
    await asyncio.sleep(0.01)
    model.gate.set()
    return first, queued


async def _outcomes(futures) -> list:
    """Each future's result or exception, waiting at most ANSWERED_WITHIN_S (TimeoutError: a caller hung)."""
    done = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), ANSWERED_WITHIN_S)
    return list(done)


def _assert_failed_naming_the_model(outcome) -> None:
    assert isinstance(outcome, ScoringError), outcome
    assert outcome.code == "INTERNAL" and "fraud" in str(outcome)


async def _next_call_is_scored(batcher: MicroBatcher) -> None:
    loop = asyncio.get_running_loop()
    result = await asyncio.wait_for(
        batcher.submit(_feeds(21), 1, loop.time() + DEADLINE_S), ANSWERED_WITHIN_S
    )
    assert result.outputs.item() == 42


def _run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_a_fault_while_concatenating_fails_the_batch_at_once_and_the_worker_goes_on():
    model = Model()

    async def scenario():
        batcher = _batcher(model)
        batcher.start()
        # inputs of different widths cannot be concatenated: np.concatenate raises in the worker
        first, queued = await _queue_behind_a_running_batch(batcher, model, [_feeds(1), _feeds(2, width=3)])
        outcomes = await _outcomes([first, *queued])
        await _next_call_is_scored(batcher)
        await batcher.stop()
        return outcomes

    first, *queued = _run(scenario())
    assert first.outputs.item() == 0
    for outcome in queued:
        _assert_failed_naming_the_model(outcome)


def test_a_fault_in_the_observer_fails_the_batch_at_once_and_the_worker_goes_on():
    model = Model()
    calls = []

    def observer(rows: int, queued: int) -> None:
        calls.append(rows)
        if len(calls) == 2:
            raise RuntimeError("observer: injected failure")

    async def scenario():
        batcher = _batcher(model, on_batch=observer)
        batcher.start()
        first, queued = await _queue_behind_a_running_batch(batcher, model, [_feeds(1), _feeds(2)])
        outcomes = await _outcomes([first, *queued])
        await _next_call_is_scored(batcher)
        await batcher.stop()
        return outcomes

    first, *queued = _run(scenario())
    assert first.outputs.item() == 0
    for outcome in queued:
        _assert_failed_naming_the_model(outcome)


def test_an_onnx_runtime_fault_fails_its_batch_only():
    model = Model()

    async def scenario():
        batcher = _batcher(model)
        batcher.start()
        model.fail_next = True
        loop = asyncio.get_running_loop()
        failed = await _outcomes([batcher.submit(_feeds(1), 1, loop.time() + DEADLINE_S)])
        await _next_call_is_scored(batcher)
        await batcher.stop()
        return failed

    (failed,) = _run(scenario())
    _assert_failed_naming_the_model(failed)
    assert failed.reason == "inference_error"


def test_a_model_answering_the_wrong_number_of_rows_fails_its_batch_only():
    answers = [None, np.zeros((0, 1), np.float32)]  # no array, then 0 rows for 1

    def flaky(feeds):
        return answers.pop(0) if answers else feeds["x"] * 2

    async def scenario():
        batcher = _batcher(flaky)
        batcher.start()
        loop = asyncio.get_running_loop()
        outcomes = await _outcomes([batcher.submit(_feeds(1), 1, loop.time() + DEADLINE_S)])
        outcomes += await _outcomes([batcher.submit(_feeds(1), 1, loop.time() + DEADLINE_S)])
        await _next_call_is_scored(batcher)
        await batcher.stop()
        return outcomes

    for outcome in _run(scenario()):  # neither is sliced into a wrong answer
        _assert_failed_naming_the_model(outcome)


def test_a_fault_while_slicing_the_output_fails_the_batch_at_once(monkeypatch):
    model = Model()
    real = batcher_module.BatchResult
    made = []

    def result_once_failing(*args):
        made.append(args)
        if len(made) == 3:  # the second caller's slice of the second batch
            raise RuntimeError("slicing: injected failure")
        return real(*args)

    monkeypatch.setattr(batcher_module, "BatchResult", result_once_failing)

    async def scenario():
        batcher = _batcher(model)
        batcher.start()
        first, queued = await _queue_behind_a_running_batch(batcher, model, [_feeds(1), _feeds(2), _feeds(3)])
        outcomes = await _outcomes([first, *queued])
        await _next_call_is_scored(batcher)
        await batcher.stop()
        return outcomes

    first, answered, *failed = _run(scenario())
    assert first.outputs.item() == 0 and answered.outputs.item() == 2  # delivered before the fault
    for outcome in failed:
        _assert_failed_naming_the_model(outcome)


def test_a_cancelled_worker_is_restarted_and_its_queue_failed():
    model = Model()

    async def scenario():
        batcher = _batcher(model)
        batcher.start()
        first, _ = await _queue_behind_a_running_batch(batcher, model, [])
        held = await _hold_the_next_batch(batcher, model, first)
        batcher._worker.cancel()  # the worker ends for a reason nobody planned
        outcomes = await _outcomes([held])
        model.gate.set()
        await _next_call_is_scored(batcher)
        await batcher.stop()
        return outcomes

    (held,) = _run(scenario())
    _assert_failed_naming_the_model(held)


def test_the_failure_is_logged_reported_and_past_the_bound_the_model_is_given_up(caplog):
    model = Model()
    failures = []

    def observer(rows: int, queued: int) -> None:
        raise RuntimeError("observer: always failing")

    async def scenario():
        batcher = _batcher(model, on_batch=observer, on_failure=failures.append, max_restarts=2)
        batcher.start()
        loop = asyncio.get_running_loop()
        outcomes = []
        for value in range(3):
            outcomes += await _outcomes([batcher.submit(_feeds(value), 1, loop.time() + DEADLINE_S)])
            await asyncio.sleep(0)  # let the supervisor's callback run
        started = time.perf_counter()
        with pytest.raises(ScoringError) as refused:
            await batcher.submit(_feeds(9), 1, loop.time() + DEADLINE_S)
        await batcher.stop()
        return outcomes, refused.value, time.perf_counter() - started

    with caplog.at_level(logging.ERROR, logger="server.runtime.batcher"):
        outcomes, refused, refused_in = _run(scenario())
    for outcome in outcomes:
        _assert_failed_naming_the_model(outcome)
    assert [f.gave_up for f in failures] == [False, False, True]
    assert [f.calls_failed for f in failures] == [1, 1, 1]
    assert refused.code == "UNAVAILABLE" and "fraud" in str(refused) and refused_in < REFUSED_WITHIN_S
    logged = [r for r in caplog.records if "event=batcher_failed" in r.getMessage()]
    assert len(logged) == 3 and all(r.exc_info for r in logged)
    assert "action=give_up" in logged[-1].getMessage()


def test_a_fault_on_the_inline_path_is_raised_to_its_caller():
    model = Model()

    def observer(rows: int, queued: int) -> None:
        raise RuntimeError("observer: injected failure")

    async def scenario():
        batcher = _batcher(model, handoff=InferenceHandoff.AUTO, on_batch=observer)
        batcher.start()
        try:
            return await _outcomes([batcher.submit(_feeds(1), 1)])
        finally:
            await batcher.stop()

    (outcome,) = _run(scenario())
    _assert_failed_naming_the_model(outcome)


def test_a_stalled_model_fails_its_queue_and_refuses_at_once_until_it_moves():
    model = Model()

    async def scenario():
        batcher = _batcher(model)
        batcher.start()
        first, _ = await _queue_behind_a_running_batch(batcher, model, [])
        hung = await _hold_the_next_batch(batcher, model, first)  # the next batch hangs
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(batcher.submit(_feeds(2), 1, loop.time() + DEADLINE_S))
        await asyncio.sleep(0.01)
        assert batcher.stalled_s() > 0
        assert batcher.set_stalled(12.0) == 1  # the watchdog's verdict: the queued call fails
        failed = await _outcomes([waiting])
        with pytest.raises(ScoringError) as refused:
            await batcher.submit(_feeds(3), 1, loop.time() + DEADLINE_S)
        model.gate.set()
        batcher.set_stalled(None)
        answered = await _outcomes([first, hung])
        await _next_call_is_scored(batcher)
        await batcher.stop()
        return failed[0], refused.value, answered

    failed, refused, answered = _run(scenario())
    for error in (failed, refused):
        assert error.code == "UNAVAILABLE" and "not making progress" in str(error) and "fraud" in str(error)
    assert [a.outputs.item() for a in answered] == [0, 2]  # the hung batch itself finishes
