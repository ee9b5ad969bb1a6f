"""Dynamic micro-batching for one model: queue requests, cut batches, route each result to its caller.

Requests (each with one or more rows) wait in a bounded FIFO. One worker coroutine per model takes the
oldest requests up to `max_batch_size` rows, concatenates their inputs (the only copy), runs ONNX Runtime
once and hands each caller its slice of the output. Batches form naturally while a previous batch runs;
`max_queue_delay_us` > 0 additionally holds a partial batch that long to let it fill.

Where ONNX Runtime runs (`handoff`, measured in docs/server.md): `thread` runs every batch on the
model's own thread, so the event loop keeps reading requests meanwhile; `inline` runs every batch on the
event loop; `auto` (default) runs a lone small request inline at once, without queueing (no thread hop,
no extra event-loop turn), and everything else on the thread. A request is lone when the batcher is idle
and the previous request arrived more than LONE_GAP_S ago: nothing suggests callers it could share with.

Admission control: a request that would push the queue past `max_queue_rows` is refused at once
(OverloadedError), so overload never grows memory; a request whose deadline cannot be met (the batches
queued ahead of it, at the recent batch time, would outlast it) is refused at once, and one whose deadline
has passed by the time its batch is cut is not run (DeadlineExceededError); a caller that went away is
dropped.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from server.config.settings import InferenceHandoff
from server.runtime.errors import DeadlineExceededError, DrainingError, InferenceFailedError, OverloadedError

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
BatchObserver = Callable[[int, int], None]  # (rows of the batch about to run, rows still queued)

LONE_GAP_S = 300e-6  # `auto`: a request this long after the previous one is treated as lone
INLINE_MAX_ROWS = 16  # `auto`: larger requests always go to the thread
# `auto`: a model whose lone call takes longer than this never runs inline. A lone call is usually cold
# (caches trashed since the previous call): 200-250 us measured for the bundled INT8 fraud model that takes
# 38 us back to back. Blocking the loop that long costs nobody anything when the request is alone.
INLINE_MAX_SECONDS = 1e-3
TIMER_RESOLUTION_S = 1e-3  # asyncio (epoll) timers round shorter waits up to a millisecond


@dataclass(frozen=True)
class BatchResult:
    """One caller's rows of a batch's output, and where its time went."""

    outputs: np.ndarray  # the model output's rows for this request (a view into the batch output)
    queue_s: float  # from submit to the start of its batch's inference
    inference_s: float  # the ONNX Runtime call of the whole batch
    batch_rows: int


@dataclass
class _Request:
    feeds: Feeds
    rows: int
    future: asyncio.Future
    deadline: float | None  # event-loop time
    enqueued: float  # perf_counter


class MicroBatcher:
    """Per-model queue and batch cutter. `run_batch(feeds) -> output` is called with whole batches."""

    def __init__(
        self,
        model: str,
        run_batch: Callable[[Feeds], np.ndarray],
        *,
        max_batch_size: int,
        max_queue_delay_us: int,
        max_queue_rows: int,
        handoff: InferenceHandoff = InferenceHandoff.THREAD,
        on_batch: BatchObserver | None = None,
        inline_seconds: float | None = None,  # first estimate of a lone call's time (from warm-up)
    ) -> None:
        self.model = model
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self._delay_s = max_queue_delay_us / 1e6
        self.max_queue_rows = max_queue_rows
        self._handoff = handoff
        self._on_batch = on_batch or (lambda rows, queued: None)
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._work = asyncio.Event()
        self._full = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{model}")
        self._worker: asyncio.Task | None = None
        self._running = False
        self.batch_seconds: float | None = None  # moving average of one batch's inference time
        self.inline_seconds = inline_seconds  # moving average of a lone inline call
        self._last_submit = 0.0

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._serve(), name=f"batcher-{self.model}")

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail with DrainingError."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(DrainingError("server shutting down"))
        self._queued_rows = 0
        self._executor.shutdown(wait=False)

    async def submit(self, feeds: Feeds, rows: int, deadline: float | None = None) -> BatchResult:
        """Queue `rows` rows (validated [rows, 1] arrays) and wait for their outputs."""
        if self._queued_rows + rows > self.max_queue_rows:
            raise OverloadedError(
                f"model {self.model}: queue full ({self._queued_rows} rows waiting, limit "
                f"{self.max_queue_rows}); retry with backoff"
            )
        loop = asyncio.get_running_loop()
        if deadline is not None:
            self._check_deadline(deadline - loop.time(), rows)
        now = time.perf_counter()
        lone, self._last_submit = now - self._last_submit > LONE_GAP_S, now
        if self._may_run_now(rows, lone):
            return self._run_now(feeds, rows, now)
        request = _Request(feeds, rows, loop.create_future(), deadline, now)
        self._queue.append(request)
        self._queued_rows += rows
        self._work.set()
        if self._queued_rows >= self.max_batch_size:
            self._full.set()
        return await request.future

    def _may_run_now(self, rows: int, lone: bool) -> bool:
        if self._handoff is not InferenceHandoff.AUTO or self._queue or self._running:
            return False
        fast = self.inline_seconds is None or self.inline_seconds < INLINE_MAX_SECONDS
        return lone and rows <= INLINE_MAX_ROWS and fast

    def _run_now(self, feeds: Feeds, rows: int, submitted: float) -> BatchResult:
        """Run one request on the event loop, synchronously: nothing can interleave, so no queue."""
        self._on_batch(rows, self._queued_rows)
        started = time.perf_counter()
        try:
            outputs = self._run_batch(feeds)
        except Exception as exc:
            log.error("event=inference_failed model=%s rows=%d error=%r", self.model, rows, str(exc))
            raise InferenceFailedError(f"model {self.model}: inference failed") from exc
        inference_s = time.perf_counter() - started
        self._update_inline_estimate(inference_s)
        return BatchResult(outputs, started - submitted, inference_s, rows)

    def _update_inline_estimate(self, seconds: float) -> None:
        previous = self.inline_seconds
        self.inline_seconds = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def _timed_run(self, feeds: Feeds) -> tuple[np.ndarray, float]:
        """The ONNX Runtime call alone, timed where it runs (without the thread hand-off)."""
        started = time.perf_counter()
        outputs = self._run_batch(feeds)
        return outputs, time.perf_counter() - started

    def _check_deadline(self, remaining_s: float, rows: int) -> None:
        if remaining_s <= 0:
            raise DeadlineExceededError("deadline passed before the request was queued")
        if self.batch_seconds is None:
            return
        batches_ahead = -(-(self._queued_rows + rows) // self.max_batch_size) + self._running
        expected_s = batches_ahead * self.batch_seconds
        if expected_s > remaining_s:
            raise DeadlineExceededError(
                f"deadline cannot be met: about {expected_s * 1e3:.1f} ms of inference queued ahead, "
                f"{remaining_s * 1e3:.1f} ms left; not queued"
            )

    async def _serve(self) -> None:
        while True:
            if not self._queue:
                self._work.clear()
                await self._work.wait()
            if self._delay_s > 0 and self._queued_rows < self.max_batch_size:
                await self._let_batch_fill()
            batch = self._cut()
            if batch:
                await self._run(batch)

    async def _let_batch_fill(self) -> None:
        """Wait up to the queue delay for the batch to fill. asyncio timers cannot wait less than a
        millisecond (epoll's timeout unit), so shorter delays yield to the event loop instead, which keeps
        reading requests, until the delay has passed or the batch is full."""
        if self._delay_s >= TIMER_RESOLUTION_S:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._delay_s)
            return
        until = time.perf_counter() + self._delay_s
        while self._queued_rows < self.max_batch_size and time.perf_counter() < until:
            await asyncio.sleep(0)

    def _cut(self) -> list[_Request]:
        """Take the oldest live requests up to max_batch_size rows (a larger single request runs alone)."""
        now = asyncio.get_running_loop().time()
        batch: list[_Request] = []
        rows = 0
        while self._queue:
            request = self._queue[0]
            if batch and rows + request.rows > self.max_batch_size:
                break
            self._queue.popleft()
            self._queued_rows -= request.rows
            if request.future.done():  # the caller was cancelled (client gone or deadline hit)
                continue
            if request.deadline is not None and request.deadline <= now:
                request.future.set_exception(DeadlineExceededError("deadline passed while queued; not run"))
                continue
            batch.append(request)
            rows += request.rows
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        rows = sum(r.rows for r in batch)
        feeds = (
            batch[0].feeds
            if len(batch) == 1
            else {name: np.concatenate([r.feeds[name] for r in batch]) for name in batch[0].feeds}
        )
        self._on_batch(rows, self._queued_rows)
        started = time.perf_counter()
        self._running = True
        try:
            if self._handoff is InferenceHandoff.INLINE:
                outputs, ort_s = self._timed_run(feeds)
            else:
                outputs, ort_s = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._timed_run, feeds
                )
        except Exception as exc:  # an ORT failure fails this batch's callers, never the worker
            log.error("event=inference_failed model=%s rows=%d error=%r", self.model, rows, str(exc))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(
                        InferenceFailedError(f"model {self.model}: inference failed")
                    )
            return
        finally:
            self._running = False
        inference_s = time.perf_counter() - started
        previous = self.batch_seconds
        self.batch_seconds = inference_s if previous is None else 0.8 * previous + 0.2 * inference_s
        if rows <= INLINE_MAX_ROWS:
            # Small batches on the thread keep the inline estimate current, so one lone call slowed by a
            # busy machine cannot keep every later lone call off the inline path for good.
            self._update_inline_estimate(ort_s)
        offset = 0
        for request in batch:
            if not request.future.done():
                request.future.set_result(
                    BatchResult(
                        outputs[offset : offset + request.rows], started - request.enqueued, inference_s, rows
                    )
                )
            offset += request.rows
