"""Dynamic micro-batching for one model: queue requests, cut batches, route each result to its caller.

Requests (each with one or more rows) wait in a bounded FIFO. One worker coroutine per model takes the
oldest requests up to `max_batch_size` rows, concatenates their inputs (the only copy), runs ONNX Runtime
once and hands each caller its slice of the output. Batches form naturally while a previous batch runs;
`max_queue_delay_us` > 0 additionally holds a partial batch that long to let it fill.

Where ONNX Runtime runs (`handoff`, measured in docs/server.md and docs/performance.md): `thread` runs
every batch on the model's own thread, so the event loop keeps reading requests meanwhile; `inline` runs
every batch on the event loop; `auto` (default) runs a lone small request inline at once, without queueing
(no thread hop, no extra event-loop turn), a cut batch of more than INLINE_MAX_ROWS rows inline when its
ONNX Runtime call is expected to take at most BATCH_INLINE_MAX_SECONDS (rows times the recent time per
row), and everything else on the thread. A request is lone when the batcher is idle and the previous
request arrived more than LONE_GAP_S ago: nothing suggests callers it could share with.

Admission control: a request that would push the queue past `max_queue_rows` is refused at once
(OverloadedError), so overload never grows memory; a request whose deadline cannot be met (the batches
queued ahead of it, at the recent batch time, would outlast it) is refused at once, and one whose deadline
has passed by the time its batch is cut is not run (DeadlineExceededError); a caller that went away is
dropped. The batch time is a moving average that also decays while the model is idle (half-life
ESTIMATE_HALF_LIFE_S), learns from lone inline calls, and takes one batch as at most ESTIMATE_STEP_MAX times
the estimate, so a few huge batches (or one hung call) cannot keep refusing short deadlines for long.

Supervision. The worker is watched by a done-callback: if it ends for any reason but `stop()` (an
exception at any step, a cancellation), every call of the batch it was running and every queued call fails
at once with BatcherFailedError (INTERNAL, naming the model), the failure is logged with its traceback and
reported to `on_failure`, and a new worker starts. More than `max_restarts` failures within
`restart_window_s` and the batcher gives up: `on_failure` hears `gave_up=True` and every later call is
refused with ModelUnavailableError.

Invariant: every queued request's future is resolved exactly once, whatever raises where:
- with its rows of the batch output, once its batch ran;
- DeadlineExceededError, when its deadline passed while queued (it is not run);
- InferenceFailedError, when ONNX Runtime raised or returned a wrong number of rows (its batch only; the
  worker goes on);
- BatcherFailedError, when anything else raised in the worker (cutting, concatenating, the observer,
  slicing the output, updating the estimates): the supervisor fails the batch and the queue;
- ModelUnavailableError, when the watchdog declares the model stalled while it was queued;
- DrainingError, on `stop()`;
- or not at all because the caller cancelled it (the future is done already; nobody waits).
Requests refused at the door (queue full, deadline cannot be met, given up, stalled) and inline requests
never get a future: their exception is raised to the caller directly. tests/server/test_batcher_faults.py
injects a fault at each step and checks that every caller is answered at once.
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
from server.runtime.errors import (
    BatcherFailedError,
    DeadlineExceededError,
    DrainingError,
    InferenceFailedError,
    ModelUnavailableError,
    OverloadedError,
    ScoringError,
)

log = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
BatchObserver = Callable[[int, int], None]  # (rows of the batch about to run, rows still queued)

LONE_GAP_S = 300e-6  # `auto`: a request this long after the previous one is treated as lone
INLINE_MAX_ROWS = 16  # `auto`: larger requests always go to the thread
# `auto`: a model whose lone call takes longer than this never runs inline. A lone call is usually cold
# (caches trashed since the previous call): 200-250 us measured for the bundled INT8 fraud model that takes
# 38 us back to back. Blocking the loop that long costs nobody anything when the request is alone.
INLINE_MAX_SECONDS = 1e-3
# `auto`: a batch of more than INLINE_MAX_ROWS rows expected to take at most this long runs inline. Handing
# it to the thread costs more CPU than it frees: the batch's inputs (Python strings, arrays) and outputs
# cross to another core and back, +0.3-1 ms of server CPU per 256-row batch of the bundled fraud model
# (0.45-0.8 ms of ONNX Runtime), none of it when both threads are pinned to one core. Meanwhile the same
# call's own Python work (parsing, validation, answers) holds the loop ~3 ms. Slower models keep the thread.
BATCH_INLINE_MAX_SECONDS = 2e-3
TIMER_RESOLUTION_S = 1e-3  # both loops time in milliseconds (epoll; libuv): shorter waits are spun
ESTIMATE_HALF_LIFE_S = 1.0  # an idle model's batch-time estimate halves this often
ESTIMATE_STEP_MAX = 4.0  # one batch counts as at most this many times the estimate
MAX_RESTARTS = 3  # worker failures tolerated within RESTART_WINDOW_S; one more and the model is given up
RESTART_WINDOW_S = 60.0


@dataclass(frozen=True)
class BatchResult:
    """One caller's rows of a batch's output, and where its time went."""

    outputs: np.ndarray  # the model output's rows for this request (a view into the batch output)
    queue_s: float  # from submit to the start of its batch's inference
    inference_s: float  # the ONNX Runtime call of the whole batch
    batch_rows: int


@dataclass(frozen=True)
class BatcherFailure:
    """What `on_failure` hears when a worker ended: the error, the calls it failed, whether it was the
    last straw (`gave_up`: the model no longer serves)."""

    model: str
    error: str
    calls_failed: int
    failures_in_window: int
    gave_up: bool


FailureObserver = Callable[[BatcherFailure], None]


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
        on_failure: FailureObserver | None = None,
        max_restarts: int = MAX_RESTARTS,
        restart_window_s: float = RESTART_WINDOW_S,
        estimate_half_life_s: float = ESTIMATE_HALF_LIFE_S,
    ) -> None:
        self.model = model
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self._delay_s = max_queue_delay_us / 1e6
        self.max_queue_rows = max_queue_rows
        self._handoff = handoff
        self._on_batch = on_batch or (lambda rows, queued: None)
        self.on_failure = on_failure
        self._max_restarts = max_restarts
        self._restart_window_s = restart_window_s
        self._half_life_s = estimate_half_life_s
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._batch: list[_Request] = []  # cut and not yet answered
        self._work = asyncio.Event()
        self._full = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{model}")
        self._worker: asyncio.Task | None = None
        self._stopping = False
        self._failures: list[float] = []  # monotonic times of worker failures within the window
        self.gave_up: str | None = None  # why the batcher no longer serves
        self.stalled_for: float | None = None  # set by the watchdog while no batch finishes
        self._running = False
        self._batch_seconds: float | None = None  # moving average of one batch's inference time ...
        self._estimated_at = 0.0  # ... as of this monotonic time (it decays from there)
        self.inline_seconds = inline_seconds  # moving average of a lone inline call
        self.row_seconds: float | None = None  # moving average of ORT time per row, batches > INLINE_MAX_ROWS
        self._last_submit = 0.0
        self.progress_at = time.monotonic()  # last time a batch finished or the queue was found empty

    # ---- lifecycle and supervision ----------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None and not self._stopping:
            self._spawn()

    def _spawn(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._serve(), name=f"batcher-{self.model}")
        self._worker.add_done_callback(self._worker_ended)

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail with DrainingError."""
        self._stopping = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        self._fail_pending(lambda: DrainingError("server shutting down"))
        self._executor.shutdown(wait=False)

    @property
    def idle(self) -> bool:
        """Nothing queued, cut or running: `stop()` now fails no call."""
        return not self._queue and not self._batch and not self._running

    async def drain(self, timeout_s: float, poll_s: float = 0.01) -> bool:
        """Stop once every call already queued is answered (at most `timeout_s`; then `stop()` fails the
        rest): for a runtime a reload replaced, which gets no new calls. True if none was failed."""
        deadline = time.monotonic() + timeout_s
        while not self.idle and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
        drained = self.idle
        await self.stop()
        return drained

    def _worker_ended(self, worker: asyncio.Task) -> None:
        """The supervisor: a worker that ends while not stopping fails every pending call, is logged and
        reported, and is replaced (or, past the bound, the batcher gives up)."""
        if self._stopping or worker is not self._worker:
            return
        error = None if worker.cancelled() else worker.exception()
        what = "cancelled" if worker.cancelled() else ("returned" if error is None else repr(error))
        message = f"model {self.model}: batcher failed; the call was not scored, retry"
        failed = self._fail_pending(lambda: BatcherFailedError(message))
        now = time.monotonic()
        self._failures = [t for t in self._failures if now - t < self._restart_window_s] + [now]
        gave_up = len(self._failures) > self._max_restarts
        log.error(
            "event=batcher_failed model=%s error=%r calls_failed=%d failures_in_window=%d window_s=%g "
            "action=%s",
            self.model,
            what,
            failed,
            len(self._failures),
            self._restart_window_s,
            "give_up" if gave_up else "restart",
            exc_info=error,
        )
        self._worker = None
        if gave_up:
            self.gave_up = f"its batcher failed {len(self._failures)} times in {self._restart_window_s:g} s"
        else:
            self._spawn()
        if self.on_failure is not None:
            try:
                self.on_failure(BatcherFailure(self.model, what, failed, len(self._failures), gave_up))
            except Exception:
                log.exception("event=batcher_failure_observer_failed model=%s", self.model)

    def _fail_pending(self, error: Callable[[], ScoringError]) -> int:
        """Fail the batch being run and every queued request with a new `error()` each; returns how many
        were failed."""
        failed = 0
        for request in [*self._batch, *self._queue]:
            if not request.future.done():
                request.future.set_exception(error())
                failed += 1
        self._batch = []
        self._queue.clear()
        self._queued_rows = 0
        self._running = False
        return failed

    # ---- the estimates ------------------------------------------------------------------------------

    @property
    def batch_seconds(self) -> float | None:
        """The recent batch time, decayed by half every `estimate_half_life_s` since it was last learnt."""
        return self._batch_seconds_at(time.monotonic())

    def _batch_seconds_at(self, clock: float) -> float | None:
        """`batch_seconds` as of monotonic time `clock`."""
        if self._batch_seconds is None:
            return None
        idle_s = clock - self._estimated_at
        return self._batch_seconds * 0.5 ** ((idle_s if idle_s > 0.0 else 0.0) / self._half_life_s)

    def _learn_batch_time(self, seconds: float, clock: float | None = None) -> None:
        """Moving average of the batch time; one batch counts as at most ESTIMATE_STEP_MAX times the
        estimate, so an outlier (a call that hung 15 s) cannot refuse every short deadline after it.
        `clock`: monotonic time now, when the caller has read it."""
        if clock is None:
            clock = time.monotonic()
        previous = self._batch_seconds_at(clock)
        if previous is not None:
            step_max = ESTIMATE_STEP_MAX * previous
            seconds = 0.8 * previous + 0.2 * (seconds if seconds < step_max else step_max)
        self._batch_seconds = seconds
        self._estimated_at = clock

    def _update_inline_estimate(self, seconds: float) -> None:
        previous = self.inline_seconds
        self.inline_seconds = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def set_stalled(self, stalled_s: float | None) -> int:
        """The watchdog's verdict: stalled for `stalled_s` (queued calls fail UNAVAILABLE at once and new
        ones are refused, so clients retry elsewhere instead of waiting out their deadlines), or None
        (moving again). The batch being run is left to finish. Returns how many queued calls were failed."""
        self.stalled_for = stalled_s
        if stalled_s is None:
            return 0
        failed = 0
        for request in self._queue:
            if not request.future.done():
                request.future.set_exception(ModelUnavailableError(self._stalled_message()))
                failed += 1
        self._queue.clear()
        self._queued_rows = 0
        return failed

    def _stalled_message(self) -> str:
        return (
            f"model {self.model} is not making progress (no batch finished for {self.stalled_for:.0f} s); "
            "retry on another instance"
        )

    def stalled_s(self, now: float | None = None) -> float:
        """How long the batcher has had work (queued or running) without finishing a batch; 0 when idle."""
        if not self._queue and not self._running and not self._batch:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self.progress_at)

    # ---- the callers' side ----------------------------------------------------------------------------

    async def submit(self, feeds: Feeds, rows: int, deadline: float | None = None) -> BatchResult:
        """Queue `rows` rows (validated [rows, 1] arrays) and wait for their outputs."""
        return self.run_lone(feeds, rows, deadline) or await self.enqueue(feeds, rows, deadline)

    def run_lone(self, feeds: Feeds, rows: int, deadline: float | None = None) -> BatchResult | None:
        """`submit`'s first step, without a coroutine: refuse what cannot be queued, and run a lone request
        at once on the event loop, synchronously (nothing can interleave, so no queue). None: the request
        may not run now; `enqueue` it. Any fault in the run is raised to this caller alone
        (InferenceFailedError for ORT, else BatcherFailedError). `deadline` is event-loop (monotonic) time."""
        if self.gave_up is not None:
            raise ModelUnavailableError(f"model {self.model} is unavailable: {self.gave_up}")
        if self.stalled_for is not None:
            raise ModelUnavailableError(self._stalled_message())
        if self._queued_rows + rows > self.max_queue_rows:
            raise OverloadedError(
                f"model {self.model}: queue full ({self._queued_rows} rows waiting, limit "
                f"{self.max_queue_rows}); retry with backoff"
            )
        clock = time.monotonic()  # the deadlines' clock
        if deadline is not None:
            self._check_deadline(deadline - clock, rows, self._batch_seconds_at(clock))
        now = time.perf_counter()
        lone, self._last_submit = now - self._last_submit > LONE_GAP_S, now
        if (
            not lone
            or rows > INLINE_MAX_ROWS
            or self._queue
            or self._running
            or self._handoff is not InferenceHandoff.AUTO
            or (self.inline_seconds is not None and self.inline_seconds >= INLINE_MAX_SECONDS)
        ):
            return None
        try:
            self._on_batch(rows, self._queued_rows)
            outputs, inference_s, started = self._timed_run(feeds, rows)
            self._update_inline_estimate(inference_s)
            self._learn_batch_time(inference_s, clock)
            return BatchResult(outputs, started - now, inference_s, rows)
        except InferenceFailedError:
            raise
        except Exception as exc:
            log.exception("event=batcher_failed model=%s path=inline rows=%d", self.model, rows)
            raise BatcherFailedError(f"model {self.model}: scoring failed; the call was not scored") from exc

    async def enqueue(self, feeds: Feeds, rows: int, deadline: float | None = None) -> BatchResult:
        """Queue a request `run_lone` did not run, and wait for its batch."""
        if not self._queue and not self._running:
            self.progress_at = time.monotonic()  # idle until now: the stall clock starts here
        future = asyncio.get_running_loop().create_future()
        request = _Request(feeds, rows, future, deadline, self._last_submit)  # submitted when run_lone saw it
        self._queue.append(request)
        self._queued_rows += rows
        self._work.set()
        if self._queued_rows >= self.max_batch_size:
            self._full.set()
        return await request.future

    def _runs_inline(self, rows: int) -> bool:
        """Whether a cut batch of `rows` runs on the event loop rather than the model's thread."""
        if self._handoff is not InferenceHandoff.AUTO:
            return self._handoff is InferenceHandoff.INLINE
        if rows <= INLINE_MAX_ROWS or self.row_seconds is None:  # the first big batch measures on the thread
            return False
        # Not while other requests wait behind it: under load the loop must keep turning to accept and
        # refuse calls (RESOURCE_EXHAUSTED at the door), or they pile up in gRPC core until it cancels them.
        return not self._queue and rows * self.row_seconds <= BATCH_INLINE_MAX_SECONDS

    def _timed_run(self, feeds: Feeds, rows: int) -> tuple[np.ndarray, float, float]:
        """The ONNX Runtime call alone, timed where it runs (without the thread hand-off): (outputs, its
        seconds, its perf_counter start). Whatever goes wrong in it (raised, or the wrong number of output
        rows) is an InferenceFailedError."""
        started = time.perf_counter()
        try:
            outputs = self._run_batch(feeds)
            if getattr(outputs, "shape", None) is None or len(outputs) != rows:
                raise ValueError(f"{len(outputs) if hasattr(outputs, '__len__') else 'no'} output rows")
        except Exception as exc:
            log.error("event=inference_failed model=%s rows=%d error=%r", self.model, rows, str(exc))
            raise InferenceFailedError(f"model {self.model}: inference failed") from exc
        return outputs, time.perf_counter() - started, started

    def _check_deadline(self, remaining_s: float, rows: int, batch_s: float | None) -> None:
        """Refuse a request whose deadline the inference queued ahead of it (`batch_s` a batch) cannot
        meet."""
        if remaining_s <= 0:
            raise DeadlineExceededError("deadline passed before the request was queued")
        if batch_s is None:
            return
        batches_ahead = -(-(self._queued_rows + rows) // self.max_batch_size) + self._running
        expected_s = batches_ahead * batch_s
        if expected_s > remaining_s:
            raise DeadlineExceededError(
                f"deadline cannot be met: about {expected_s * 1e3:.1f} ms of inference queued ahead, "
                f"{remaining_s * 1e3:.1f} ms left; not queued"
            )

    # ---- the worker -------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            if not self._queue:
                self.progress_at = time.monotonic()
                self._work.clear()
                await self._work.wait()
            if self._delay_s > 0 and self._queued_rows < self.max_batch_size:
                await self._let_batch_fill()
            self._batch = self._cut()
            if self._batch:
                await self._run(self._batch)
            self._batch = []
            self.progress_at = time.monotonic()

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
        now = time.monotonic()  # the deadlines' clock (not loop.time(): uvloop's is libuv's, in ms)
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
        """Run one cut batch. An ORT failure fails this batch only; anything else raised here ends the
        worker, and the supervisor fails the batch (self._batch) and the queue."""
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
            if self._runs_inline(rows):
                outputs, ort_s, _ = self._timed_run(feeds, rows)
            else:
                outputs, ort_s, _ = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._timed_run, feeds, rows
                )
        except InferenceFailedError as exc:  # fails this batch's callers, never the worker
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(InferenceFailedError(str(exc)))
            return
        finally:
            self._running = False
        inference_s = time.perf_counter() - started
        self._learn_batch_time(inference_s)
        if rows <= INLINE_MAX_ROWS:
            # Small batches on the thread keep the inline estimate current, so one lone call slowed by a
            # busy machine cannot keep every later lone call off the inline path for good.
            self._update_inline_estimate(ort_s)
        else:  # learnt wherever the batch ran, so one slow batch cannot keep later ones off the loop
            previous, per_row = self.row_seconds, ort_s / rows
            self.row_seconds = per_row if previous is None else 0.8 * previous + 0.2 * per_row
        offset = 0
        for request in batch:
            if not request.future.done():
                request.future.set_result(
                    BatchResult(
                        outputs[offset : offset + request.rows], started - request.enqueued, inference_s, rows
                    )
                )
            offset += request.rows
