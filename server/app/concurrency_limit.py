"""Admission at the door, checked where the handler runs (server/api/calls.py), once the request is read.

Three rules, each answering RESOURCE_EXHAUSTED at once and counting `riskserve_requests_rejected_total`:

1. Slots (`reason="concurrency_limit"`): at most `max_rpcs` unary scoring calls held, `max_batch_rpcs` of
   them ScoreBatch; at most `max_streams` ScoreStreams open, `max_streams_per_client` per client address.
   A unary call holds its slot from its handler's start to its end, so a call whose body never arrives
   holds nothing; streams have their own slots, so idle streams cannot lock unary calls out, and one
   client's streams cannot lock other clients' streams out.
2. Queueing delay (`reason="queue_delay"`), CoDel-style: at most `max_active` unary calls work at once;
   the others wait in a FIFO. While the oldest waiter's time in the queue has stayed above `target_s` for
   `interval_s`, waiters older than `target_s` are refused from the head, oldest first, until the queue
   delay is below the target again. Below saturation nothing waits that long and nothing is refused; a
   short burst queues for less than `interval_s` and is served.
3. Bytes (`reason="memory_budget"`): large requests (64 KiB or more) hold their size from before they are
   parsed until their call ends, at most `max_request_bytes` in all; one that would pass it is refused
   unparsed. Counted where gRPC hands the request over (server/api/calls.py, `Calls.parser`), for every
   method.
4. Health, reflection and metadata calls never pass the slots: a busy process still answers its probes.

Why a queue in Python: gRPC's aio server accepts one call per event-loop turn; when every turn is full of
handler work, the excess waits inside gRPC core, where Python can neither see nor time it, until core
cancels it (its pending-call bound) or its deadline passes. Bounding the calls that work at once keeps
the turns short, so calls are accepted as they arrive and the excess waits here, timed, and is refused
with the right code.
"""

import asyncio
import logging
import time
from collections import deque

from server.runtime.errors import OverloadedError

log = logging.getLogger(__name__)

REASON = "concurrency_limit"
QUEUE_REASON = "queue_delay"


def worth_logging(count: int) -> bool:
    """Whether the `count`-th refusal of a kind is logged: the 1st, the 10th, every 1000th (a trace of it
    in the log, not a flood)."""
    return count in (1, 10) or count % 1000 == 0


class ConcurrencyLimitError(OverloadedError):
    """Refused at the door: too many calls or streams held."""

    reason = REASON


class QueueDelayError(OverloadedError):
    """Refused at the door: calls have waited longer than the queue-delay target for a whole interval."""

    reason = QUEUE_REASON


class Admission:
    """The door's counters and wait queue (one event loop: no locks). 0 or None disables a limit."""

    def __init__(
        self,
        max_rpcs: int = 0,
        max_batch_rpcs: int = 0,
        *,
        max_active: int = 0,
        target_s: float = 0.005,
        interval_s: float = 0.1,
        max_streams: int = 0,
        max_streams_per_client: int = 0,
        max_request_bytes: int = 0,
    ) -> None:
        self.max_rpcs = max_rpcs or 1 << 62
        self.max_batch_rpcs = max_batch_rpcs or 1 << 62
        self.max_active = max_active or 1 << 62
        self.target_s, self.interval_s = target_s, interval_s
        self.max_streams = max_streams or 1 << 62
        self.max_streams_per_client = max_streams_per_client or 1 << 62
        self.held = 0  # unary calls holding a slot: working or waiting
        self.held_batch = 0
        self.active = 0  # unary calls working
        self.streams = 0
        self.streams_by_client: dict[str, int] = {}
        self.refused = 0
        # bytes of large requests parsed or being parsed and not yet answered (server/api/calls.py, parser)
        self.max_request_bytes = max_request_bytes or 1 << 62
        self.request_bytes = 0
        self.refused_bytes = 0
        # calls waiting for a working slot (future, when queued); read directly by the call scope's fast path
        self.queue: deque[tuple[asyncio.Future, float]] = deque()
        self._above_since: float | None = None  # when the head's delay first exceeded the target

    # ---- unary calls ------------------------------------------------------------------------------------

    def take(self, batch: bool) -> bool:
        """Take a slot (ConcurrencyLimitError if none). True: work now; False: `await wait()` first."""
        if self.held >= self.max_rpcs:
            self._refused()
            raise ConcurrencyLimitError(
                f"server busy: {self.held} calls in progress (max_concurrent_rpcs); retry with backoff"
            )
        if batch:
            if self.held_batch >= self.max_batch_rpcs:
                self._refused()
                raise ConcurrencyLimitError(
                    f"server busy: {self.held_batch} ScoreBatch calls in progress "
                    "(max_concurrent_batch_rpcs); retry with backoff"
                )
            self.held_batch += 1
        self.held += 1
        if self.active < self.max_active and not self.queue:
            self.active += 1
            return True
        return False

    async def wait(self, batch: bool) -> None:
        """Queue for a working slot; QueueDelayError when shed (its slots are given back then)."""
        future = asyncio.get_running_loop().create_future()
        self.queue.append((future, time.perf_counter()))
        try:
            await future  # a result from `_hand_on`: granted; QueueDelayError: shed
        except QueueDelayError:
            self._give_back(batch)
            raise
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled before it ran
                self.release(batch)
            else:
                self._give_back(batch)
            raise

    def release(self, batch: bool) -> None:
        """A working call ended: give its slots back and let the next waiter in (or shed it)."""
        self._give_back(batch)
        self._hand_on()

    def _give_back(self, batch: bool) -> None:
        self.held -= 1
        if batch:
            self.held_batch -= 1

    def _hand_on(self) -> None:
        """The working slot just freed goes to the oldest live waiter, shedding stale ones first."""
        self.active -= 1
        now = time.perf_counter()
        while self.queue and self.active < self.max_active:
            future, enqueued = self.queue.popleft()
            if future.done():  # its call was cancelled (client gone, deadline)
                continue
            if self._shed(now - enqueued, now):
                self._refused(QUEUE_REASON)
                future.set_exception(
                    QueueDelayError(
                        f"server busy: waited {(now - enqueued) * 1e3:.1f} ms for a slot, over the "
                        f"{self.target_s * 1e3:g} ms queue-delay target; retry with backoff"
                    )
                )
                continue
            self.active += 1
            future.set_result(None)

    def _shed(self, delay_s: float, now: float) -> bool:
        """CoDel's test: refuse when the delay has been above the target for a whole interval."""
        if delay_s < self.target_s:
            self._above_since = None
            return False
        if self._above_since is None:
            self._above_since = now
            return False
        return now - self._above_since >= self.interval_s

    # ---- streams ----------------------------------------------------------------------------------------

    def open_stream(self, client: str) -> None:
        """Take a stream slot for `client` (its address), or ConcurrencyLimitError."""
        per_client = self.streams_by_client.get(client, 0)
        if self.streams >= self.max_streams:
            self._refused()
            raise ConcurrencyLimitError(
                f"server busy: {self.streams} streams open (max_concurrent_streams); retry with backoff"
            )
        if per_client >= self.max_streams_per_client:
            self._refused()
            raise ConcurrencyLimitError(
                f"{per_client} streams open from this client (max_streams_per_client); close idle streams"
            )
        self.streams += 1
        self.streams_by_client[client] = per_client + 1

    def close_stream(self, client: str) -> None:
        self.streams -= 1
        left = self.streams_by_client[client] - 1
        if left:
            self.streams_by_client[client] = left
        else:
            del self.streams_by_client[client]

    def _refused(self, reason: str = REASON) -> None:
        self.refused += 1
        if worth_logging(self.refused):
            log.warning("event=admission_refused reason=%s refused_total=%d", reason, self.refused)


def client_of(peer: str) -> str:
    """The client's address from a gRPC peer string ('ipv4:127.0.0.1:5012' -> 'ipv4:127.0.0.1')."""
    return peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer
