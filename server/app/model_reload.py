"""Model versions without a restart: find a changed or new version, prepare it off the serving path, and
swap it in atomically only if it passes.

reload (the repository poll every `model_poll_s`, or ModelAdmin.Reload), one model at a time:
  1. the digest of the version folder the model serves (server/config/model_versions.py): unchanged ->
     nothing to do. A changed digest is tried once: a version kept out is tried again when its files change.
  2. its config (its `challenger` section, and those of champions naming it, checked as at startup), then
     prepare_model (quantize + gate: the startup pipeline and cache) in a spawned process at nice +10
     (server/app/reload_worker.py), so the serving process's event loop and CPU share are not spent on it.
  3. kept out unless it passes: a load or pipeline error, or gate verdict failed / insufficient_evidence
     (at startup such a model serves FP32; a reload only replaces a serving version with one that passed).
  4. ModelRuntime.load + warm-up in a thread, its batcher started on the loop, its watches attached
     (server/app/model_watches.py: the FP32 live check of an INT8 version, its challenger shadow), loaded
     in a thread, so its first served call is already sampled; a watch that cannot load leaves the new
     version unwatched (logged).
  5. the swap (ModelRepository.swap): new calls get the new runtime; champions whose challenger is this
     model shadow the new version; calls that hold the old one finish on it, then its batcher and its
     watches stop (ModelWatches.retire: MicroBatcher.drain, within `grace_period_s`).
Every outcome is one log line `event=model_reload`, a count in `riskserve_model_reloads_total`; a version
kept out is also `riskserve_model_version_kept_out` and ModelAdmin.ListVersions, with why.
"""

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.api.domain_api import check_domain_sources
from server.app.health import HealthState
from server.app.model_watches import ModelWatches
from server.app.reload_worker import prepare_in_worker, start_worker
from server.app.startup import ModelProblem, problem_of
from server.config.model_config import ModelConfig, check_challenger
from server.config.model_versions import folder_digest, load_served_config, served_folder
from server.config.settings import ServerSettings
from server.metrics import ServingMetrics
from server.runtime.model_runtime import ModelRuntime
from server.runtime.repository import ModelRepository
from server.served_model import GateVerdict, PreparedModel

log = logging.getLogger(__name__)

KEPT_OUT_VERDICTS = (GateVerdict.FAILED, GateVerdict.INSUFFICIENT_EVIDENCE)
SWAPPED, UNCHANGED, KEPT_OUT = "swapped", "unchanged", "kept_out"


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did for one model: `version` is the one tried (the serving one when unchanged)."""

    model: str
    outcome: str  # swapped | unchanged | kept_out
    version: str
    reason: str = ""  # kept_out: "<kind>: <detail>"


class _KeptOut(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class ModelReloader:
    """Reloads for one serving process. `start_runtime` starts a new runtime's batcher (as at startup);
    `watches` watches the new version and stops the old one's."""

    def __init__(
        self,
        settings: ServerSettings,
        repository: ModelRepository,
        metrics: ServingMetrics,
        health: HealthState,
        start_runtime: Callable[[ModelRuntime], None],
        watches: ModelWatches,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.metrics = metrics
        self.health = health
        self._start_runtime = start_runtime
        self._watches = watches
        self._root = Path(settings.models_dir)
        # what startup read: a reload tries a model again only once its served folder differs from this
        self._digests = {name: folder_digest(self._root / name) for name in repository.expected}
        self._lock = asyncio.Lock()  # one reload at a time (the poll and the admin RPC share it)
        self._poll: asyncio.Task | None = None
        self._retiring: set[asyncio.Task] = set()
        self._pool = None  # the preparing process's pool while one runs

    @property
    def models(self) -> list[str]:
        return list(self.repository.expected)

    def start_polling(self) -> None:
        if self.settings.model_poll_s > 0 and self._poll is None:
            self._poll = asyncio.get_running_loop().create_task(self._poll_forever(), name="model-poll")

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.model_poll_s)
            try:
                await self.reload(trigger="poll")
            except Exception:
                log.exception("event=model_poll_failed action=retry_next_poll")

    async def reload(self, model: str = "", trigger: str = "admin") -> list[ReloadOutcome]:
        """Reload `model` (every configured model if empty) as the module doc says; one outcome each."""
        async with self._lock:
            return [await self._reload_one(name, trigger) for name in ([model] if model else self.models)]

    def _serving_version(self, name: str) -> str:
        slot = self.repository.routes[None][name]
        return slot.serving.facts.version if slot.serving is not None else ""

    async def _reload_one(self, name: str, trigger: str) -> ReloadOutcome:
        digest = await asyncio.to_thread(folder_digest, self._root / name)
        if digest == self._digests.get(name):
            return ReloadOutcome(name, UNCHANGED, self._serving_version(name))
        self._digests[name] = digest
        started = time.perf_counter()
        version = self._folder_version(name)
        try:
            config = await asyncio.to_thread(self._read_config, name)
            version = config.version
            prepared = await self._prepare(config)
            if isinstance(prepared, ModelProblem):
                raise _KeptOut(prepared.kind, prepared.message)
            if prepared.facts.gate_verdict in KEPT_OUT_VERDICTS:
                why = prepared.report.warnings[0] if prepared.report and prepared.report.warnings else ""
                raise _KeptOut("gate_failed", f"verdict {prepared.facts.gate_verdict.value}: {why}")
            runtime = await asyncio.to_thread(self._open, config, prepared)
        except _KeptOut as exc:
            return self._keep_out(name, version, exc.kind, str(exc), trigger, started)
        except Exception as exc:
            problem = problem_of(name, exc)
            reason = f"{problem.kind}: {problem.message}"
            return self._keep_out(name, version, problem.kind, reason, trigger, started)
        return await self._swap(runtime, trigger, started)

    def _folder_version(self, name: str) -> str:
        """The version a folder offers before its config is read: a version folder's name, else unknown."""
        try:
            folder = served_folder(self._root / name)
        except Exception:
            return "unknown"
        return folder.name if folder != self._root / name else "unknown"

    def _read_config(self, name: str) -> ModelConfig:
        config = load_served_config(self._root / name)
        check_domain_sources(config)
        self._check_pairing(config)
        return config

    def _check_pairing(self, config: ModelConfig) -> None:
        """ConfigError, as at startup, if `config`'s challenger, or a served champion that names `config`'s
        model as its challenger, no longer fits (same task and inputs). A challenger not serving is not
        checked: it is paired when a reload brings it."""
        configured = {r.name: r.config for r in self.repository.runtimes} | {config.name: config}
        for champion in configured.values():
            wanted = champion.challenger
            if wanted is None or (champion is not config and wanted.model != config.name):
                continue
            if wanted.model in configured or wanted.model not in self.repository.expected:
                check_challenger(champion, configured)

    async def _prepare(self, config: ModelConfig) -> PreparedModel | ModelProblem:
        """prepare_in_worker in a fresh spawned process (server/app/reload_worker.py; its memory is returned
        once it ends)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(value=None, error: BaseException | None = None) -> None:
            if not done.done():
                done.set_exception(error) if error is not None else done.set_result(value)

        context = multiprocessing.get_context("spawn")  # never fork a process running gRPC threads
        pool = self._pool = context.Pool(
            1, initializer=start_worker, initargs=(self.settings.log_level, self.settings.log_format)
        )
        try:
            pool.apply_async(
                prepare_in_worker,
                (config, Path(self.settings.cache_dir)),
                callback=lambda value: loop.call_soon_threadsafe(settle, value),
                error_callback=lambda error: loop.call_soon_threadsafe(settle, None, error),
            )
            return await done
        finally:
            self._pool = None
            await asyncio.to_thread(pool.terminate)

    def _open(self, config: ModelConfig, prepared: PreparedModel) -> ModelRuntime:
        """Session, reference row, batch-invariance check and warm-up of the new version (blocking)."""
        runtime = ModelRuntime.load(config, prepared, self.settings)
        runtime.warm_up()
        return runtime

    def _keep_out(
        self, name: str, version: str, kind: str, reason: str, trigger: str, started: float
    ) -> ReloadOutcome:
        self.repository.keep_out(name, version, reason)
        self.metrics.count_reload(name, KEPT_OUT, version, kind)
        log.warning(
            "event=model_reload model=%s outcome=kept_out version=%s serving_version=%s reason=%s trigger=%s "
            "seconds=%.2f detail=%r",
            name,
            version,
            self._serving_version(name) or "none",
            kind,
            trigger,
            time.perf_counter() - started,
            reason,
        )
        return ReloadOutcome(name, KEPT_OUT, version, reason)

    async def _swap(self, runtime: ModelRuntime, trigger: str, started: float) -> ReloadOutcome:
        name, facts = runtime.name, runtime.facts
        previous = self._serving_version(name) or "none"
        self._start_runtime(runtime)
        await self._watches.attach(runtime)
        old = self.repository.swap(runtime)
        self.metrics.set_model_facts(facts)
        self.metrics.count_reload(name, SWAPPED, facts.version)
        await self.health.set_model(name, True)
        self.metrics.set_ready(self.health.serving)
        log.info(
            "event=model_reload model=%s outcome=swapped version=%s previous_version=%s precision=%s "
            "gate_verdict=%s from_cache=%s trigger=%s seconds=%.2f",
            name,
            facts.version,
            previous,
            facts.precision.value,
            facts.gate_verdict.value,
            facts.from_cache,
            trigger,
            time.perf_counter() - started,
        )
        await self._watches.reattach_challengers(name)
        if old is not None:
            task = asyncio.get_running_loop().create_task(self._watches.retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return ReloadOutcome(name, SWAPPED, facts.version)

    async def stop(self) -> None:
        """Stop polling, end a reload under way (its process is killed) and stop retiring versions."""
        if self._poll is not None:
            self._poll.cancel()
            await asyncio.gather(self._poll, return_exceptions=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.terminate)
        await asyncio.gather(*self._retiring, return_exceptions=True)
