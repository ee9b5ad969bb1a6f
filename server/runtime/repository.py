"""The served models by name, and which one answers a call that names none.

Each configured model has one `ModelSlot`, made at startup: its name, task and, once loaded, its runtime.
A call asks the repository once (`slot`) and gets the slot, whose `label` names the model in metrics and
whose `ready()` is the runtime or the reason it cannot serve (not found, another task, still loading).
A reload (server/app/model_reload.py) swaps a new version in with `swap`: one assignment of
`slot.serving`, so a call reads either the old runtime or the new one, never a mix. One version serves per
model; a call pinning any other (`model_version`) gets `version_error`: NOT_FOUND naming the served one.
"""

from dataclasses import dataclass

from server.config.model_config import ModelTask
from server.runtime.echo import echo
from server.runtime.errors import ModelNotFoundError, ModelNotReadyError, ModelUnavailableError, ScoringError
from server.runtime.model_runtime import ModelRuntime

UNKNOWN_MODEL_LABEL = "unknown"  # metrics label for names we don't serve: clients can't explode cardinality


MAX_REASON_CHARS = 300  # of an unavailable model's reason, in answers to clients


class ModelSlot:
    """One configured model. `runtime` is None until the model is loaded, gated and warmed; `unavailable`
    says why it never will be (its config, data, model file or quantization failed). `task` is None when
    even its config could not be read. `serving` is the runtime while it may answer calls, else None: the
    scoring path reads it as `slot.serving or slot.ready()`, so a call to a serving model calls nothing
    here."""

    __slots__ = ("kept_out", "label", "name", "runtime", "serving", "split", "task", "unavailable")

    def __init__(self, name: str, task: ModelTask | None) -> None:
        self.name = name
        self.label = name
        self.task = task
        self.runtime: ModelRuntime | None = None
        self.serving: ModelRuntime | None = None
        self.unavailable: str | None = None
        self.kept_out: tuple[str, str] | None = None  # (version, why) of the last version a reload kept out
        self.split: LiveSplit | None = None  # its challenger decides a share of its calls (domain API)

    def version_error(self, version: str) -> ModelNotFoundError:
        """What a call pinning `version` gets when it is not the version serving."""
        runtime = self.serving or self.ready()
        served = runtime.facts.version
        message = f"model '{self.name}' version '{echo(version)}' is not served (served: {served})"
        if self.kept_out is not None and self.kept_out[0] == version:
            message += f"; version {version} was kept out: {self.kept_out[1]}"
        return ModelNotFoundError(message)

    def ready(self) -> ModelRuntime:
        """The model's runtime, or why not: ModelUnavailableError (also once a served model is given up),
        or ModelNotReadyError while it loads."""
        if self.unavailable is not None:
            raise ModelUnavailableError(f"model '{self.name}' is unavailable: {self.unavailable}")
        runtime = self.runtime
        if runtime is None:
            raise ModelNotReadyError(f"model '{self.name}' is still loading")
        return runtime


@dataclass(frozen=True)
class LiveSplit:
    """A champion's calls decided by its challenger (config challenger.live_share): those whose card or
    applicant id hashes below `cutoff` (server/api/domain_api.py: a stable hash, so a card stays with one
    model), while the challenger serves."""

    challenger: ModelSlot
    cutoff: int  # of SPLIT_HASH_VALUES

    @classmethod
    def of(cls, challenger: ModelSlot, share: float) -> "LiveSplit":
        return cls(challenger, round(share * SPLIT_HASH_VALUES))


SPLIT_HASH_VALUES = 2**64  # an 8-byte BLAKE2b digest of the id, read as an unsigned integer


class _Refused(ModelSlot):
    """What a call that cannot be served by any slot gets: every `ready()` raises `error`."""

    __slots__ = ("error",)

    def __init__(self, label: str, error: ScoringError) -> None:
        super().__init__(label, ModelTask.FRAUD)
        self.error = error

    def ready(self) -> ModelRuntime:
        raise self.error


class ModelRepository:
    """Models this process serves: every configured one has a slot from startup on."""

    def __init__(self, expected: dict[str, ModelTask | None]) -> None:
        self.expected = dict(expected)
        self._slots = {name: ModelSlot(name, task) for name, task in self.expected.items()}
        self._defaults = {task: self._default_slot(task) for task in ModelTask}
        # per task, what a request's model field may say -> its slot ("" the task's default): read as a
        # plain dict on the scoring path; a miss goes to `slot()`, which says why
        # (None: any task, by name only)
        self.routes: dict[ModelTask | None, dict[str, ModelSlot]] = {None: dict(self._slots)}
        for task in ModelTask:
            routes = {n: self._slots[n] for n, t in self.expected.items() if t is task or t is None}
            if not isinstance(self._defaults[task], _Refused):
                routes[""] = self._defaults[task]
            self.routes[task] = routes

    def add(self, runtime: ModelRuntime) -> None:
        slot = self._slots[runtime.name]
        slot.runtime = runtime
        if slot.unavailable is None:
            slot.serving = runtime

    def swap(self, runtime: ModelRuntime) -> ModelRuntime | None:
        """Serve `runtime` (a new version of its model) from the next call on; returns the runtime it
        replaced (its in-flight calls finish on it), None if the model was not serving. Brings back a
        model that was unavailable."""
        slot = self._slots[runtime.name]
        old, slot.runtime = slot.runtime, runtime
        slot.task = runtime.config.task
        slot.unavailable = slot.kept_out = None
        slot.serving = runtime  # the swap: new calls read this
        return old

    def keep_out(self, name: str, version: str, reason: str) -> None:
        """A reload's candidate `version` of `name` failed to load or pass: the serving version stays."""
        shown = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."
        self._slots[name].kept_out = (version, " ".join(shown.split()))

    @property
    def slots(self) -> list[ModelSlot]:
        """Every configured model's slot, in configuration order."""
        return list(self._slots.values())

    def mark_unavailable(self, name: str, reason: str) -> None:
        """`name` will not serve (never loaded, or given up while serving): calls to it get UNAVAILABLE
        with `reason`; the other models serve on."""
        shown = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."
        slot = self._slots[name]
        slot.unavailable = " ".join(shown.split())  # one line
        slot.serving = None

    @property
    def all_loaded(self) -> bool:
        """Every configured model serves (none unavailable, none still loading)."""
        return all(slot.runtime is not None and slot.unavailable is None for slot in self._slots.values())

    @property
    def runtimes(self) -> list[ModelRuntime]:
        return [slot.runtime for slot in self._slots.values() if slot.runtime is not None]

    def is_ready(self, name: str) -> bool:
        slot = self._slots.get(name)
        return slot is not None and slot.runtime is not None and slot.unavailable is None

    def _default_slot(self, task: ModelTask) -> ModelSlot:
        """The model named after the task if served, else the only model of that task."""
        if self.expected.get(task.value) is task:
            return self._slots[task.value]
        candidates = sorted(n for n, t in self.expected.items() if t is task)
        if len(candidates) == 1:
            return self._slots[candidates[0]]
        if not candidates:
            return _Refused(UNKNOWN_MODEL_LABEL, ModelNotFoundError(f"no {task.value} model is served"))
        return _Refused(
            UNKNOWN_MODEL_LABEL,
            ModelNotFoundError(f"several {task.value} models are served ({', '.join(candidates)}): name one"),
        )

    def slot(self, requested: str, task: ModelTask | None = None) -> ModelSlot:
        """The slot a call means: the model it names (of `task`, when given), else the task's default.
        Never raises: a call to a model that is not served gets a slot whose `ready()` says why."""
        if not requested:
            if task is None:
                return _Refused(UNKNOWN_MODEL_LABEL, ModelNotFoundError("no model named"))
            return self._defaults[task]
        slot = self._slots.get(requested)
        if slot is None:
            served = ", ".join(sorted(self.expected)) or "none"
            return _Refused(
                UNKNOWN_MODEL_LABEL,
                ModelNotFoundError(f"model '{echo(requested)}' is not served (served: {served})"),
            )
        if task is not None and slot.task is not None and slot.task is not task:
            return _Refused(
                slot.label,
                ModelNotFoundError(
                    f"model '{echo(requested)}' is a {slot.task.value} model, not {task.value}"
                ),
            )
        return slot

    def get(self, name: str, task: ModelTask | None = None) -> ModelRuntime:
        """The ready model `name`, or the ScoringError saying why not."""
        return self.slot(name, task).ready()
