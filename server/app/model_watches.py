"""What watches each served runtime, kept right across versions: the FP32 live check of an INT8-served model
(server/monitoring/live_check.py), a champion's challenger in shadow (server/monitoring/challenger.py) and
the traffic file (server/monitoring/traffic_sample.py, with traffic_sample_dir).
Startup, a reload and the on_live_drift switch all go through `ModelWatches`:

- startup: `attach(runtime, pair=False)` as each model loads, `pair(runtime)` once all have (a challenger
  may load after its champion).
- reload (server/app/model_reload.py): `attach(new)` before the swap, so the new version's first calls are
  already sampled; the swap; `reattach_challengers(name)`: champions of the reloaded model shadow its new
  version; `retire(old)` once swapped out: its queued calls are answered, then its watches stop.
- on_live_drift serve_fp32: the FP32 runtime serves and inherits the champion's challenger check (same
  model and version: same labels, counters and window) and the version's traffic file; the INT8 runtime is
  retired.

A watch that cannot load leaves the runtime unwatched (logged `event=live_check_unavailable` /
`event=challenger_unavailable`): at startup with exit_on_model_error it is a startup error instead (`strict`).
A retired version's metric series stay as they were (counters keep their totals, so `rate()` over a range
spanning the swap stays right; its windows empty within their window_s); the new version's are its own.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from server.config.settings import ServerSettings
from server.metrics import ServingMetrics
from server.monitoring.challenger import ChallengerCheck
from server.monitoring.live_check import LiveCheck
from server.monitoring.shadow import ShadowConsumer, Shadows
from server.monitoring.traffic_sample import TrafficSample
from server.runtime.model_runtime import ModelRuntime
from server.runtime.repository import LiveSplit, ModelRepository
from server.served_model import Precision

log = logging.getLogger(__name__)

Stop = Callable[[], None]  # blocking: ends a watch's thread


class _Watched:
    """One runtime's watches: what its Shadows offers sampled calls to, and how each is stopped."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.live_check: LiveCheck | None = None
        self.challenger: ChallengerCheck | None = None
        self._consumers: dict[ShadowConsumer, Stop | None] = {}  # None: not this runtime's to stop

    def add(self, consumer: ShadowConsumer, stop: Stop | None) -> None:
        self._consumers[consumer] = stop
        self._rewatch()

    def remove(self, consumer: ShadowConsumer) -> Stop | None:
        stop = self._consumers.pop(consumer)
        self._rewatch()
        return stop

    def stops(self) -> list[Stop]:
        return [stop for stop in self._consumers.values() if stop is not None]

    def _rewatch(self) -> None:
        # rebuilt, not edited: each consumer's countdown starts afresh (a geometric gap has no memory)
        shadows = Shadows()
        for consumer in self._consumers:
            shadows.add(consumer)
        self.runtime.watch(shadows)


class ModelWatches:
    """The watches of every runtime this process serves (see the module doc). `start_runtime` starts a
    runtime's batcher as the server does (the FP32 runtime of a serve_fp32 switch)."""

    def __init__(
        self,
        settings: ServerSettings,
        repository: ModelRepository,
        metrics: ServingMetrics,
        start_runtime: Callable[[ModelRuntime], None],
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.metrics = metrics
        self._start_runtime = start_runtime
        self.strict = settings.exit_on_model_error  # the server clears it once serving: reloads never raise
        self._watched: dict[ModelRuntime, _Watched] = {}
        self._traffic_samples: dict[str, TrafficSample] = {}  # by model: its serving version's
        self._retiring: set[asyncio.Task] = set()

    async def attach(self, runtime: ModelRuntime, *, pair: bool = True) -> None:
        """Watch `runtime` (not yet serving, or serving now): its live check, and with `pair` its
        challenger shadow."""
        watched = self._watched.setdefault(runtime, _Watched(runtime))
        await self._attach_live_check(watched)
        self._attach_traffic_sample(watched)
        if pair:
            await self.pair(runtime)

    async def pair(self, champion: ModelRuntime) -> None:
        """The champion's challenger (config `challenger`): in shadow when shadow_share > 0 (replacing the
        check it had), deciding its share of the ids when live_share > 0. A challenger that is not serving,
        or whose shadow cannot load, leaves the champion to serve alone (logged)."""
        wanted = champion.config.challenger
        if wanted is None:
            self.repository.slot(champion.name).split = None  # a reload that removed the section
            return
        watched = self._watched.setdefault(champion, _Watched(champion))
        slot = self.repository.slot(wanted.model)
        challenger = slot.serving
        if challenger is None:
            log.error(
                "event=challenger_unavailable model=%s challenger=%s detail=%r action=serve_champion_alone",
                champion.name,
                wanted.model,
                slot.unavailable or "not loaded",
            )
            return
        if wanted.shadow_share > 0:
            check = await self._load("challenger", champion, ChallengerCheck.load, champion, challenger)
            if check is None:
                return
            check.start(self.metrics.challengers)
            old, watched.challenger = watched.challenger, check
            watched.add(check.scorer, check.stop)
            if old is not None:
                await asyncio.to_thread(watched.remove(old.scorer))
        self.repository.slot(champion.name).split = (
            LiveSplit.of(slot, wanted.live_share) if wanted.live_share > 0 else None
        )
        log.info(
            "event=challenger_started model=%s version=%s challenger=%s challenger_version=%s "
            "shadow_share=%g live_share=%g",
            champion.name,
            champion.facts.version,
            challenger.name,
            challenger.facts.version,
            wanted.shadow_share,
            wanted.live_share,
        )

    async def reattach_challengers(self, model: str) -> None:
        """`model` serves a new version: every serving champion whose challenger it is shadows that one."""
        for watched in list(self._watched.values()):
            champion = watched.runtime
            wanted = champion.config.challenger
            if wanted is not None and wanted.model == model and self._serving(champion):
                await self.pair(champion)

    async def retire(self, runtime: ModelRuntime) -> None:
        """A runtime no new call reaches (swapped out): its queued calls are answered (MicroBatcher.drain,
        within grace_period_s), then its batcher and watches stop."""
        drained = True
        if runtime.batcher is not None:
            drained = await runtime.batcher.drain(self.settings.grace_period_s)
        await self.detach(runtime)
        log.info(
            "event=model_retired model=%s version=%s precision=%s drained=%s",
            runtime.name,
            runtime.facts.version,
            runtime.facts.precision.value,
            drained,
        )

    async def detach(self, runtime: ModelRuntime) -> None:
        """Stop every watch of `runtime`."""
        watched = self._watched.pop(runtime, None)
        if watched is not None:
            for stop in watched.stops():
                await asyncio.to_thread(stop)

    async def stop(self) -> None:
        """Let the runtimes being retired finish, then stop every watch."""
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for runtime in list(self._watched):
            await self.detach(runtime)
        for sample in self._traffic_samples.values():
            await asyncio.to_thread(sample.stop)

    def _serving(self, runtime: ModelRuntime) -> bool:
        return self.repository.slot(runtime.name).serving is runtime

    async def _attach_live_check(self, watched: _Watched) -> None:
        """The FP32 shadow of an INT8-served runtime, when live_check_sample_rate asks for one."""
        runtime = watched.runtime
        if self.settings.live_check_sample_rate <= 0 or runtime.facts.precision is not Precision.INT8:
            return
        live_check = await self._load("live_check", runtime, LiveCheck.load, runtime)
        if live_check is None:
            return
        loop = asyncio.get_running_loop()

        def on_drift(threshold: str, flip_rate: float, window_rows: int) -> None:  # the live check's thread
            loop.call_soon_threadsafe(self._on_live_drift, live_check, threshold, flip_rate, window_rows)

        live_check.start(self.metrics.live_checks, on_drift)
        watched.live_check = live_check
        watched.add(live_check.scorer, live_check.stop)
        log.info(
            "event=live_check_started model=%s version=%s sample_rate=%g window_s=%g on_live_drift=%s",
            runtime.name,
            runtime.facts.version,
            live_check.sample_rate,
            live_check.window_s,
            live_check.policy.value,
        )

    def _attach_traffic_sample(self, watched: _Watched) -> None:
        """traffic_sample_dir: one more consumer of the runtime's sampled calls, writing their rows to its
        version's traffic file (an FP32 fallback's to its INT8's); a new version's sample replaces the last
        one, which writes its last rows. A sample outlives the runtimes of its version: stopped when
        replaced, or at stop."""
        if self.settings.traffic_sample_dir is None:
            return
        runtime = watched.runtime
        sample = self._traffic_samples.pop(runtime.name, None)
        if sample is None or (sample.version, sample.config) != (runtime.facts.version, runtime.config):
            if sample is not None:
                sample.close()
            sample = TrafficSample.for_runtime(runtime, self.settings)
            if sample is None:
                return
            sample.start()
            log.info(
                "event=traffic_sample_started model=%s version=%s file=%s sample_rate=%g",
                runtime.name,
                runtime.facts.version,
                sample.path,
                sample.sample_rate,
            )
        self._traffic_samples[runtime.name] = sample
        watched.add(sample, None)

    async def _load(self, kind: str, runtime: ModelRuntime, load: Callable, *args: ModelRuntime) -> Any:
        """`load(*args, settings)` off the event loop; None (logged `event=<kind>_unavailable`) if it fails,
        unless `strict`."""
        try:
            return await asyncio.to_thread(load, *args, self.settings)
        except Exception as exc:
            if self.strict:
                raise
            log.exception(
                "event=%s_unavailable model=%s version=%s error=%r action=serve_unwatched",
                kind,
                runtime.name,
                runtime.facts.version,
                str(exc),
            )
            return None

    def _on_live_drift(
        self, live_check: LiveCheck, threshold: str, flip_rate: float, window_rows: int
    ) -> None:
        """on_live_drift: serve_fp32 and the live flip rate is above the budget: serve FP32 now."""
        int8, fp32 = live_check.int8, live_check.fp32
        if not self._serving(int8):  # a reload replaced it since the window's last batch: nothing to switch
            return
        self._start_runtime(fp32)
        self.repository.add(fp32)  # new calls go to FP32 from here; whole batches, never a mix
        self.metrics.set_model_facts(fp32.facts)
        log.warning(
            "event=live_drift_fallback model=%s version=%s threshold=%s flip_rate=%.5f budget=%g "
            "window_rows=%d precision=fp32 gate_verdict=%s action=serve_fp32",
            int8.name,
            fp32.facts.version,
            threshold,
            flip_rate,
            live_check.reference.flip_budget,
            window_rows,
            fp32.facts.gate_verdict.value,
        )
        served = self._watched.get(int8)
        inheriting = self._watched.setdefault(fp32, _Watched(fp32))
        self._attach_traffic_sample(inheriting)
        if served is not None and served.challenger is not None:
            # FP32 inherits the challenger shadow: its scorer reads only the served model's positive column,
            # the same for FP32, and the key (model, version, challenger, version) is the same
            check, served.challenger = served.challenger, None
            inheriting.challenger = check
            inheriting.add(check.scorer, served.remove(check.scorer))
        task = asyncio.get_running_loop().create_task(self.retire(int8))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
