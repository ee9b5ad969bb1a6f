"""One bidirectional ScoreStream for open-loop arrivals: written in order, answered first in first out.

A stream can end early (the server ends it with INVALID_ARGUMENT on a bad message, or UNAVAILABLE when
draining) or stop taking writes. Every submitted item is completed exactly once: answered, failed with
the stream's final status, or failed with DEADLINE_EXCEEDED when it waited longer than the timeout.
"""

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


# (item, actual send time, completion time, gRPC status name, error details)
Completion = Callable[[StreamItem, float, float, str, str], None]
_CLOSE = None


class _Call:
    """One stream call, the items written to it and not yet answered, and the task reading answers."""

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self.call = call
        self.pending: deque[tuple[StreamItem, float]] = deque()
        self.reader: asyncio.Task | None = None
        self.timed_out = False


class StreamLane:
    """Feeds items into a stream call; a call that ends fails what it had pending, and a new one opens."""

    def __init__(
        self, open_call: Callable[[], grpc.aio.StreamStreamCall], on_done: Completion, timeout_s: float
    ) -> None:
        self._open_call = open_call
        self._on_done = on_done
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[StreamItem | None] = asyncio.Queue()
        self._calls: list[_Call] = []
        self._writer: asyncio.Task | None = None
        self._abandon = False

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write())

    def submit(self, item: StreamItem) -> None:
        self._queue.put_nowait(item)

    def close(self) -> None:
        self._queue.put_nowait(_CLOSE)

    async def _write(self) -> None:
        current: _Call | None = None
        while (item := await self._queue.get()) is not _CLOSE:
            if self._abandon:
                self._on_done(item, time.monotonic(), time.monotonic(), "DEADLINE_EXCEEDED", "never written")
                continue
            if current is None or current.call.done():
                current = self._open()
            current.pending.append((item, time.monotonic()))
            try:
                await asyncio.wait_for(current.call.write(item.body), self._timeout_s)
            except TimeoutError:  # the server stopped taking messages: give up on this call
                current.timed_out = True
                current.call.cancel()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the call has ended; its reader fails what is pending with the final status
            if current.call.done() and current.reader is not None:
                await current.reader  # settle this call before the next item opens a new one
        if current is not None and not current.call.done():
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await current.call.done_writing()

    def _open(self) -> _Call:
        stream = _Call(self._open_call())
        stream.reader = asyncio.get_running_loop().create_task(self._read(stream))
        self._calls.append(stream)
        return stream

    async def drain(self) -> None:
        """Wait up to the timeout for outstanding answers; what is still pending then has timed out."""
        deadline = time.monotonic() + self._timeout_s
        if self._writer is not None:
            await asyncio.wait([self._writer], timeout=self._timeout_s)
        readers = [c.reader for c in self._calls if c.reader is not None and not c.reader.done()]
        if readers:
            await asyncio.wait(readers, timeout=max(0.0, deadline - time.monotonic()))
        self._abandon = True
        for stream in self._calls:
            if not stream.call.done():
                stream.timed_out = True
                stream.call.cancel()
        remaining = [c.reader for c in self._calls if c.reader is not None]
        if self._writer is not None:
            remaining.append(self._writer)
        await asyncio.gather(*remaining, return_exceptions=True)

    async def _read(self, stream: _Call) -> None:
        code, details = "OK", ""
        try:
            async for _ in stream.call:
                item, sent = stream.pending.popleft()
                self._on_done(item, sent, time.monotonic(), "OK", "")
        except grpc.aio.AioRpcError as error:
            code, details = error.code().name, error.details() or ""
        except asyncio.CancelledError:
            code = "CANCELLED"
        if stream.pending and code == "OK":
            code, details = "UNKNOWN", "the stream ended with messages unanswered"
        if stream.timed_out and code in ("CANCELLED", "UNKNOWN"):
            code, details = "DEADLINE_EXCEEDED", f"no answer within {self._timeout_s:g} s"
        now = time.monotonic()
        while stream.pending:
            item, sent = stream.pending.popleft()
            self._on_done(item, sent, now, code, details)
