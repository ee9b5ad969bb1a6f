"""An open-loop sender: calls leave at fixed intended times whatever the answers do (one grpc.aio loop)."""

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

MAX_IN_FLIGHT = 5000


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


async def _one(call, body: bytes, timeout_s: float, intended: float, records: list[Record], slots) -> None:
    sent = time.monotonic()
    try:
        await call(body, timeout=timeout_s)
        code, details = grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    records.append(Record(intended, sent, time.monotonic(), code, details))
    slots.release()


async def open_loop(
    call: Callable,
    bodies: Sequence[bytes],
    rate: float,
    keep_going: Callable[[float], bool],
    timeout_s: float,
) -> "Run":
    """Send at `rate` per second while keep_going(elapsed_s). Calls still in flight stay in `pending`."""
    records: list[Record] = []
    tasks: set[asyncio.Task] = set()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    start = time.monotonic()
    last = start
    for index, body in zip(itertools.count(), itertools.cycle(bodies)):
        intended = start + index / rate
        if not keep_going(intended - start):
            break
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        task = asyncio.create_task(_one(call, body, timeout_s, intended, records, slots))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        last = time.monotonic()
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
