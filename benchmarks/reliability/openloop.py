"""The load tester's open loop with every call's outcome kept: calls leave at their intended times whatever
the answers do (loadtest/open_loop.py's pacing over a constant-rate loadtest schedule), one grpc.aio loop.

The scenarios classify each call by its status, its details and when it was sent (before SIGTERM, during
the drain pause, ...), which the load generator's merged histograms do not keep; so the calls are sent
here, on the caller's event loop: run it on `loadtest.open_loop.precise_timer_loop()`.
"""

import asyncio
import gc
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from loadtest.open_loop import Departure, departures
from loadtest.scenario import Load
from loadtest.schedule import build_schedule

MAX_IN_FLIGHT = 5000


def settle_gc() -> None:
    """Collect and freeze what the generator built so far (request bodies, pandas frames of holdout rows),
    before a load starts: otherwise its own first full collections pause it mid-run (70 ms measured in
    one), and open-loop latency from the intended send charges that to the server."""
    gc.collect()
    gc.freeze()


@dataclass(slots=True)
class Record:
    intended: float  # time.monotonic() the call was due
    sent: float
    ended: float
    code: grpc.StatusCode
    details: str

    @property
    def latency_s(self) -> float:
        return self.ended - self.intended  # from the intended send time: no coordinated omission


async def _one(
    call, body: bytes, timeout_s: float, departure: Departure, records: list[Record], slots: asyncio.Semaphore
) -> None:
    try:
        await call(body, timeout=timeout_s)
        code, details = grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    finally:
        slots.release()
    records.append(Record(departure.intended, departure.sent, time.monotonic(), code, details))


async def open_loop(
    call: Callable,
    bodies: Sequence[bytes],
    rate: float,
    seconds: float,
    timeout_s: float,
    keep_going: Callable[[float], bool] = lambda now: True,
) -> "Run":
    """Send at `rate` per second for `seconds`, or until keep_going(time.monotonic()) is false, cycling
    through `bodies`. Returns once the last call left; calls still in flight stay in `pending`."""
    schedule = build_schedule(Load(rate=rate, duration_s=seconds, warmup_s=0), [1.0])
    records: list[Record] = []
    tasks: set[asyncio.Task] = set()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    cycled = itertools.cycle(bodies)
    start = last = time.monotonic()
    async for departure in departures(schedule.offsets_s.tolist(), start, slots, keep_going):
        task = asyncio.create_task(_one(call, next(cycled), timeout_s, departure, records, slots))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        last = departure.sent
    return Run(records, start, last, tasks)


@dataclass(slots=True)
class Run:
    records: list[Record]
    start: float
    last_sent: float
    pending: set[asyncio.Task]

    async def finish(self) -> list[Record]:
        """Every call's answer (or its deadline)."""
        if self.pending:
            await asyncio.gather(*list(self.pending))
        return self.records
