"""The watchdog: sees a model that stopped making progress, and an event loop that stopped answering.

Every `period_s`, on the event loop, each model's batcher is asked how long it has had work (queued or
running) without finishing a batch (MicroBatcher.stalled_s). Past `stall_s` the model is stalled: its
queued calls fail UNAVAILABLE at once and new ones are refused (clients retry elsewhere rather than wait
out their deadlines), `model/<name>` and `liveness` turn NOT_SERVING (server/app/health.py), so the
readiness probe takes the pod out of rotation and the liveness probe gets it restarted; one
`event=model_stalled` line says so, and `event=model_progressing` when it moves again (then all as before).

A thread beside it posts a heartbeat to the event loop every `period_s`. When none has come back for
`stall_s`, the loop is wedged (a blocking call, a busy loop): the thread logs `event=event_loop_stalled`
with the loop thread's Python stack, once per stall (on uvloop the loop itself is C: the stack starts at the
callback that blocks). A wedged loop cannot answer health checks at all, so the
liveness probe fails by its own timeout; the log line says why.
"""

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping

from server.app.health import HealthState
from server.runtime.batcher import MicroBatcher

log = logging.getLogger(__name__)

STACK_LINES = 12  # of the loop thread's stack in the stall log line


class Watchdog:
    """Start on the event loop with `start()`; `stop()` before the loop ends."""

    def __init__(
        self,
        health: HealthState,
        batchers: Callable[[], Mapping[str, MicroBatcher]],
        period_s: float,
        stall_s: float,
    ) -> None:
        self.health = health
        self._batchers = batchers
        self.period_s = period_s
        self.stall_s = stall_s
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_beat = time.monotonic()
        self.loop_stalls = 0  # stalls of the event loop seen by the thread

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._watch_models(), name="watchdog")
        self._last_beat = time.monotonic()
        loop_thread = threading.get_ident()
        self._thread = threading.Thread(
            target=self._watch_loop, args=(loop, loop_thread), name="riskserve-watchdog", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2 * self.period_s + 1)

    async def _watch_models(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self.check_models()
            except Exception:  # the watchdog must outlive whatever it watches
                log.exception("event=watchdog_failed")

    async def check_models(self) -> None:
        """One round: stalled models NOT_SERVING (and liveness with them), recovered ones SERVING again."""
        now = time.monotonic()
        for name, batcher in self._batchers().items():
            stalled_s = batcher.stalled_s(now)
            stalled = stalled_s > self.stall_s
            if stalled == (name in self.health.stalled):
                continue
            if stalled:
                failed = batcher.set_stalled(stalled_s)
                log.error(
                    "event=model_stalled model=%s stalled_s=%.1f stall_s=%g queued_failed=%d "
                    "action=refuse_and_liveness_not_serving",
                    name,
                    stalled_s,
                    self.stall_s,
                    failed,
                )
            else:
                batcher.set_stalled(None)
                log.warning("event=model_progressing model=%s action=serve_and_liveness_serving", name)
            await self.health.set_stalled(name, stalled)

    def _beat(self) -> None:
        self._last_beat = time.monotonic()

    def _watch_loop(self, loop: asyncio.AbstractEventLoop, loop_thread: int) -> None:
        stalled_since: float | None = None
        while not self._stop.wait(self.period_s):
            try:
                loop.call_soon_threadsafe(self._beat)
            except RuntimeError:  # the loop is closed
                return
            silent_s = time.monotonic() - self._last_beat
            if silent_s > self.stall_s + self.period_s and stalled_since is None:
                stalled_since = self._last_beat
                self.loop_stalls += 1
                log.error(
                    "event=event_loop_stalled silent_s=%.1f stall_s=%g stack=%r",
                    silent_s,
                    self.stall_s,
                    _stack_of(loop_thread),
                )
            elif silent_s <= self.period_s * 2 and stalled_since is not None:
                log.warning("event=event_loop_answering stalled_s=%.1f", self._last_beat - stalled_since)
                stalled_since = None


def _stack_of(thread_id: int) -> str:
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "(gone)"
    return " | ".join(line.strip() for line in traceback.format_stack(frame, limit=STACK_LINES))
