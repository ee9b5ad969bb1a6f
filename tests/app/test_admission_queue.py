"""The door's slots and its CoDel-style queue (server/app/concurrency_limit.py), on a fake clock."""

import asyncio

import pytest

from server.app import concurrency_limit as door
from server.app.concurrency_limit import Admission, ConcurrencyLimitError, QueueDelayError, client_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(door.time, "perf_counter", fake)
    return fake


def test_slots_refuse_at_once_beyond_the_limits():
    admission = Admission(2, 1)
    assert admission.take(batch=True) and admission.take(batch=False)
    with pytest.raises(ConcurrencyLimitError, match="max_concurrent_rpcs"):
        admission.take(batch=False)
    admission.release(batch=False)
    with pytest.raises(ConcurrencyLimitError, match="max_concurrent_batch_rpcs"):
        admission.take(batch=True)
    assert (admission.held, admission.held_batch, admission.active) == (1, 1, 1)


def test_waiters_are_let_in_in_order_and_a_short_wait_is_never_shed(clock):
    async def scenario() -> list[int]:
        admission = Admission(10, 0, max_active=1, target_s=0.005, interval_s=0.1)
        assert admission.take(False)
        order: list[int] = []

        async def waiter(i: int) -> None:
            assert not admission.take(False)
            await admission.wait(False)
            order.append(i)
            admission.release(False)

        tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
        await asyncio.sleep(0)
        clock.now += 0.050  # far above the target, but not for a whole interval yet
        admission.release(False)
        await asyncio.gather(*tasks)
        assert (admission.held, admission.active, len(admission.queue)) == (0, 0, 0)
        return order

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_a_queue_delay_above_target_for_an_interval_is_shed_from_the_head(clock):
    async def scenario() -> tuple[list, Admission]:
        admission = Admission(10, 0, max_active=1, target_s=0.005, interval_s=0.1)
        assert admission.take(False)
        outcomes: list = []
        gate = asyncio.Event()

        async def waiter() -> None:
            assert not admission.take(False)
            try:
                await admission.wait(False)
                outcomes.append("served")
                await gate.wait()
                admission.release(False)
            except QueueDelayError:
                outcomes.append("shed")

        first = [asyncio.create_task(waiter()) for _ in range(2)]
        await asyncio.sleep(0)
        clock.now += 0.010
        admission.release(False)  # the head waited 10 ms: above target since now, but served
        await asyncio.sleep(0)
        clock.now += 0.2  # the next is still above the target a whole interval later: shed
        gate.set()
        await asyncio.gather(*first)
        return outcomes, admission

    outcomes, admission = asyncio.run(scenario())
    assert outcomes == ["served", "shed"]
    assert (admission.held, admission.active, len(admission.queue)) == (0, 0, 0)


def test_a_cancelled_waiter_gives_its_slot_back():
    async def scenario() -> Admission:
        admission = Admission(10, 0, max_active=1)
        assert admission.take(False)
        assert not admission.take(False)
        waiting = asyncio.create_task(admission.wait(False))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        admission.release(False)
        return admission

    admission = asyncio.run(scenario())
    assert (admission.held, admission.active, len(admission.queue)) == (0, 0, 0)


def test_streams_have_their_own_slots_per_client():
    admission = Admission(1, 0, max_streams=3, max_streams_per_client=2)
    admission.open_stream("ipv4:10.0.0.1")
    admission.open_stream("ipv4:10.0.0.1")
    with pytest.raises(ConcurrencyLimitError, match="max_streams_per_client"):
        admission.open_stream("ipv4:10.0.0.1")
    admission.open_stream("ipv4:10.0.0.2")
    with pytest.raises(ConcurrencyLimitError, match="max_concurrent_streams"):
        admission.open_stream("ipv4:10.0.0.3")
    assert admission.take(False)  # unary slots are not taken by streams
    admission.close_stream("ipv4:10.0.0.1")
    assert admission.streams_by_client == {"ipv4:10.0.0.1": 1, "ipv4:10.0.0.2": 1}


def test_client_of_drops_the_port():
    assert client_of("ipv4:127.0.0.1:50312") == "ipv4:127.0.0.1"
    assert client_of("ipv6:[::1]:50312") == "ipv6:[::1]"
    assert client_of("unix:/tmp/socket") == "unix:/tmp/socket"
