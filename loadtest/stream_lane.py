"""One bidirectional ScoreStream for open-loop arrivals: written in order, answered first in first out."""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class StreamItem:
    body: bytes
    intended: float  # time.monotonic() the schedule meant it to be sent
    measured: bool
    slice_index: int
    mix_index: int


# (item, actual send time, completion time, gRPC status name)
Completion = Callable[[StreamItem, float, float, str], None]


class StreamLane:
    """Feeds queued items into a stream call; a failed call fails everything it had pending, then reopens."""

    def __init__(self, open_call: Callable[[], grpc.aio.StreamStreamCall], on_done: Completion) -> None:
        self._open_call = open_call
        self._on_done = on_done
        self._queue: asyncio.Queue[StreamItem | None] = asyncio.Queue()
        self._readers: list[asyncio.Task] = []
        self._calls: list[grpc.aio.StreamStreamCall] = []
        self._expired = False
        self._writer: asyncio.Task | None = None

    def submit(self, item: StreamItem) -> None:
        self._queue.put_nowait(item)

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Write items until `close()`; then half-close the stream."""
        call = None
        pending: deque = deque()
        while (item := await self._queue.get()) is not None:
            if call is None or call.done():
                call, pending = self._open_call(), deque()
                self._calls.append(call)
                self._readers.append(asyncio.get_running_loop().create_task(self._read(call, pending)))
            pending.append((item, time.monotonic()))
            # on failure the reader sees the call's final status and fails everything pending with it
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.write(item.body)
        if call is not None and not call.done():
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.done_writing()

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def drain(self, timeout_s: float) -> None:
        """Wait for outstanding answers; what is still pending after `timeout_s` counts as timed out."""
        deadline = time.monotonic() + timeout_s
        await asyncio.wait([self._writer], timeout=timeout_s)
        if not self._readers:
            return
        _, still_running = await asyncio.wait(self._readers, timeout=max(0.0, deadline - time.monotonic()))
        if still_running:
            self._expired = True
            for call in self._calls:
                call.cancel()
            await asyncio.wait(still_running)

    async def _read(self, call: grpc.aio.StreamStreamCall, pending: deque) -> None:
        code = "UNKNOWN"  # a stream that ends with answers missing lost them
        try:
            async for _ in call:
                item, sent = pending.popleft()
                self._on_done(item, sent, time.monotonic(), "OK")
            code = "UNKNOWN" if pending else "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        except asyncio.CancelledError:
            code = "CANCELLED"
        if self._expired and code in ("CANCELLED", "UNKNOWN"):
            code = "DEADLINE_EXCEEDED"
        now = time.monotonic()
        while pending:
            item, sent = pending.popleft()
            self._on_done(item, sent, now, code)
