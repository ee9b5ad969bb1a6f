"""The serving process's lifecycle: start, load models, serve, drain, stop.

start:  metrics endpoint -> gRPC server listening (health NOT_SERVING, `liveness` SERVING) -> watchdog ->
        per model, off the event loop: prepare_model -> session -> warm-up -> batcher -> once every model
        is ready: collect and freeze the startup objects (no full-GC pass over them later) -> SERVING.
serve:  a batcher whose worker fails too often gives its model up (UNAVAILABLE, `model/<name>`
        NOT_SERVING); the watchdog turns `liveness` NOT_SERVING while a model makes no progress.
drain:  (SIGTERM / SIGINT) health NOT_SERVING at once -> keep serving `drain_pause_s` so load balancers
        notice -> refuse new calls with UNAVAILABLE -> in-flight calls get `grace_period_s` -> keep refusing
        until no call arrived for 0.25 s (at most 2 s, within the grace) -> stop.
"""

import asyncio
import logging
import os
import signal
import time

from server.api.calls import Calls, DrainState
from server.app.event_loop import loop_name
from server.app.gc_tuning import GcPauseLog, freeze_startup_objects
from server.app.grpc_server import build_server
from server.app.health import HealthState
from server.app.listen import ListenError, start_metrics
from server.app.malloc_tuning import fix_mmap_threshold
from server.app.model_admin import start_admin
from server.app.model_reload import ModelReloader
from server.app.model_watches import ModelWatches
from server.app.startup import ModelProblem, discover_models, load_model, problem_of
from server.app.watchdog import Watchdog
from server.config.errors import ConfigError
from server.config.settings import ServerSettings
from server.metrics import ServingMetrics
from server.quantization.errors import QuantizationError
from server.runtime.batcher import RESTART_WINDOW_S, BatcherFailure, MicroBatcher
from server.runtime.model_runtime import ModelRuntime
from server.runtime.repository import ModelRepository

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STARTUP_FAILED = 1
EXIT_INTERRUPTED = 130
DRAIN_QUIET_S = 0.25  # after the grace wait: stop once no call arrived for this long ...
DRAIN_LINGER_MAX_S = 2.0  # ... or after this long (never past the grace period)
STOP_GRACE_S = 1.0  # gRPC's own grace for calls a handler already runs when the server stops
WATCHDOG_CHECKS_PER_STALL = 10  # the watchdog looks this often within `watchdog_stall_s` (at most 1/s)


class RiskServer:
    """Run in-process with `await start()` ... `await drain()`, or via `run_until_signal()`.

    `worker` (an index) makes it one of a supervisor's serving processes (server/app/supervisor.py): it binds
    the port with SO_REUSEPORT and opens no metrics port (the supervisor exports the merged metrics)."""

    def __init__(
        self, settings: ServerSettings, metrics: ServingMetrics | None = None, *, worker: int | None = None
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.metrics = metrics or ServingMetrics()
        self.health = HealthState(settings.strict_readiness)
        self.drain_state = DrainState()
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.startup_error: BaseException | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._server = None
        self._limiter = None  # Admission: refusals at the door (server/app/concurrency_limit.py)
        self._metrics_http = None
        self._admin = None  # the ModelAdmin server (admin_enabled): server/app/model_admin.py
        self.admin_port: int | None = None
        self._loading: asyncio.Task | None = None
        self._watchdog: Watchdog | None = None
        self._background: set[asyncio.Task] = set()
        self._gc_log = GcPauseLog()

    async def start(self) -> None:
        """Listen at once (health NOT_SERVING) and load the models in the background.

        ListenError (server/app/listen.py) if the gRPC or metrics address cannot be listened on."""
        fix_mmap_threshold(self.settings.malloc_mmap_threshold_kb)  # before the first large buffer
        # A bad repository fails here, before anything listens; a bad model's config is a ModelProblem.
        configs, problems = discover_models(self.settings)
        self.repository = ModelRepository(
            {**{c.name: c.task for c in configs}, **{p.name: None for p in problems}}
        )
        self.watches = ModelWatches(self.settings, self.repository, self.metrics, self._start_runtime)
        self.reloads = ModelReloader(
            self.settings, self.repository, self.metrics, self.health, self._start_runtime, self.watches
        )
        calls = Calls(self.drain_state, self.metrics)
        if self.worker is None:
            self._metrics_http = start_metrics(self.metrics, self.settings)
            self.metrics_port = self._metrics_http.port
        self.metrics.set_ready(False)
        for name in self.repository.expected:
            await self.health.set_model(name, False)
        await self.health.set_serving(False)
        try:
            self._server, self.port, self._limiter = build_server(
                self.settings, self.repository, calls, self.health, reuse_port=self.worker is not None
            )
        except Exception:  # ListenError: the port is taken; free the metrics port before saying so
            if self._metrics_http is not None:
                self._metrics_http.close()
            raise
        await self._server.start()
        if self.settings.admin_enabled and self.worker is None:
            try:
                self._admin, self.admin_port = await start_admin(self.reloads)
            except ListenError:
                await self._server.stop(0)
                self._metrics_http.close()
                raise
            log.info("event=admin_listening address=%s:%d", self.settings.admin_host, self.admin_port)
        if self.worker is None:
            log.info(
                "event=listening address=%s:%d metrics_port=%d models=%s loop=%s",
                self.settings.host,
                self.port,
                self.metrics_port,
                ",".join(self.repository.expected),
                loop_name(),
            )
        else:
            log.info(
                "event=worker_listening worker=%d pid=%d address=%s:%d models=%s loop=%s",
                self.worker,
                os.getpid(),
                self.settings.host,
                self.port,
                ",".join(self.repository.expected),
                loop_name(),
            )
        for problem in problems:
            self._keep_out(problem)
        if self.settings.watchdog_stall_s > 0:
            stall_s = self.settings.watchdog_stall_s
            period_s = min(1.0, stall_s / WATCHDOG_CHECKS_PER_STALL)
            self._watchdog = Watchdog(self.health, self._batchers, period_s, stall_s)
            self._watchdog.start()
        self._loading = asyncio.get_running_loop().create_task(self._load_models(configs))

    def _batchers(self) -> dict[str, MicroBatcher]:
        return {r.name: r.batcher for r in self.repository.runtimes if r.batcher is not None}

    def _start_runtime(self, runtime: ModelRuntime) -> None:
        """Start a loaded model's batcher on this loop, observed by the metrics and the supervision (at
        startup, for a reloaded version and for the FP32 fallback)."""
        runtime.start(self.metrics.batch_observer(runtime.name), on_failure=self._batcher_failed)

    def _batcher_failed(self, failure: BatcherFailure) -> None:
        """A model's batcher worker failed (it logged why): count it; past its bound, keep the model out."""
        self.metrics.count_batcher_failure(failure.model, "give_up" if failure.gave_up else "restart")
        if not failure.gave_up:
            return
        detail = (
            f"its batcher failed {failure.failures_in_window} times in {RESTART_WINDOW_S:g} s "
            "(server log: event=batcher_failed)"
        )
        self._keep_out(ModelProblem(failure.model, "batcher_failed", detail))
        task = asyncio.get_running_loop().create_task(self._model_down(failure.model))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _model_down(self, name: str) -> None:
        await self.health.set_model(name, False)
        self.metrics.set_ready(self.health.serving)

    def _keep_out(self, problem: ModelProblem) -> None:
        """One model will not serve: UNAVAILABLE with its reason for its calls, one log line, a metric."""
        self.repository.mark_unavailable(problem.name, f"{problem.kind}: {problem.message}")
        self.metrics.set_model_unavailable(problem.name, problem.kind)
        log.error(
            "event=model_unavailable model=%s reason=%s detail=%r action=serve_others",
            problem.name,
            problem.kind,
            problem.message,
        )

    async def _load_models(self, configs) -> None:
        try:
            for config in configs:
                try:
                    runtime = await asyncio.to_thread(load_model, config, self.settings, self.worker is None)
                except Exception as exc:
                    if self.settings.exit_on_model_error:
                        raise
                    self._keep_out(problem_of(config.name, exc))
                    continue
                await self.watches.attach(runtime, pair=False)  # challengers once every model loaded
                self._start_runtime(runtime)
                self.repository.add(runtime)
                self.metrics.set_model_facts(runtime.facts)
                await self.health.set_model(config.name, True)
            for runtime in self.repository.runtimes:
                await self.watches.pair(runtime)
            self.watches.strict = False  # from here a watch that cannot load leaves its runtime unwatched
            if self.settings.startup_gc_freeze:
                freeze_startup_objects()
            self._gc_log.install()
            await self.health.set_serving(True)
            self.metrics.set_ready(self.health.serving)
            log.info(
                "event=serving models=%d unavailable=%d strict_readiness=%s ready=%s",
                len(self.repository.runtimes),
                len(self.repository.expected) - len(self.repository.runtimes),
                self.settings.strict_readiness,
                self.health.serving,
            )
            self._ready.set()
            self.reloads.start_polling()
        except (ConfigError, QuantizationError) as exc:  # exit_on_model_error: say which file and why
            log.error("event=startup_failed error=%r", str(exc))
            self.startup_error = exc
            self._ready.set()
        except Exception as exc:
            log.exception("event=startup_failed error=%r", str(exc))
            self.startup_error = exc
            self._ready.set()

    async def wait_ready(self) -> None:
        """Until every model serves; raises the startup error if loading failed."""
        await self._ready.wait()
        if self.startup_error is not None:
            raise self.startup_error

    async def drain(self) -> bool:
        """Graceful shutdown (see module doc). True if every in-flight call finished in time."""
        log.info(
            "event=drain_started pause_s=%.1f grace_period_s=%.1f inflight=%d",
            self.settings.drain_pause_s,
            self.settings.grace_period_s,
            self.drain_state.inflight,
        )
        await self.health.set_serving(False)
        self.metrics.set_ready(False)
        await asyncio.sleep(self.settings.drain_pause_s)
        self.drain_state.refusing = True
        grace_ends = time.monotonic() + self.settings.grace_period_s
        finished = await self.drain_state.wait_idle(self.settings.grace_period_s)
        # Calls still arriving (or queued inside gRPC, not yet seen by a handler) are refused with
        # UNAVAILABLE until the door is quiet: stopping now would have gRPC cancel them instead.
        linger_s = max(0.0, min(grace_ends - time.monotonic(), DRAIN_LINGER_MAX_S))
        quiet = await self.drain_state.wait_quiet(DRAIN_QUIET_S, linger_s)
        log.info(
            "event=drain_finished inflight_left=%d clean=%s quiet=%s",
            self.drain_state.inflight,
            finished,
            quiet,
        )
        await self.stop(STOP_GRACE_S)
        return finished

    async def stop(self, grace_s: float = 0.2) -> None:
        """Stop now: cancel loading, stop the server (calls it already runs get `grace_s`), stop the
        batchers, close the metrics endpoint."""
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self._watchdog is not None:
            await self._watchdog.stop()
        if self._admin is not None:
            await self._admin.stop(0)
        await self.reloads.stop()
        if self._server is not None:
            await self._server.stop(grace_s)
        await self.watches.stop()
        for runtime in self.repository.runtimes:
            await runtime.stop()
        if self._metrics_http is not None:
            self._metrics_http.close()
        self._gc_log.remove()
        log.info("event=gc_stats %s", self._gc_log.summary())
        self._stopped.set()

    async def run_until_signal(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> int:
        """Serve until one of `signals`, then drain; a second signal stops at once.

        Exit status: 0 after a drain, 1 if startup failed, 130 if a second signal cut the drain short."""
        loop = asyncio.get_running_loop()
        stop_requested, stop_now = asyncio.Event(), asyncio.Event()

        def on_signal() -> None:
            (stop_now if stop_requested.is_set() else stop_requested).set()

        for signum in signals:
            loop.add_signal_handler(signum, on_signal)
        await self.start()
        ready = asyncio.create_task(self._ready.wait())
        requested = asyncio.create_task(stop_requested.wait())
        await asyncio.wait({ready, requested}, return_when=asyncio.FIRST_COMPLETED)
        if self.startup_error is not None:
            await self.stop()
            return EXIT_STARTUP_FAILED
        await requested
        ready.cancel()
        draining = asyncio.create_task(self.drain())
        forced = asyncio.create_task(stop_now.wait())
        await asyncio.wait({draining, forced}, return_when=asyncio.FIRST_COMPLETED)
        status = EXIT_OK
        if not draining.done():
            log.warning("event=drain_interrupted inflight=%d action=stop_now", self.drain_state.inflight)
            draining.cancel()
            await self.stop()
            status = EXIT_INTERRUPTED
        forced.cancel()
        self.metrics.close()
        return status
