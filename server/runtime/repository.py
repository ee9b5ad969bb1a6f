"""The served models by name, and which one answers a domain call that names none."""

from server.config.model_config import ModelTask
from server.runtime.errors import ModelNotFoundError, ModelNotReadyError
from server.runtime.model_runtime import ModelRuntime


class ModelRepository:
    """Models this process serves. `expected` are known from startup; `ready` once loaded and warmed."""

    def __init__(self, expected: dict[str, ModelTask]) -> None:
        self.expected = dict(expected)
        self._ready: dict[str, ModelRuntime] = {}

    def add(self, runtime: ModelRuntime) -> None:
        self._ready[runtime.config.name] = runtime

    @property
    def runtimes(self) -> list[ModelRuntime]:
        return list(self._ready.values())

    @property
    def all_ready(self) -> bool:
        return set(self._ready) == set(self.expected)

    def is_ready(self, name: str) -> bool:
        return name in self._ready

    def default_name(self, task: ModelTask) -> str:
        """The model named after the task if served, else the only model of that task."""
        if self.expected.get(task.value) is task:
            return task.value
        candidates = sorted(n for n, t in self.expected.items() if t is task)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise ModelNotFoundError(f"no {task.value} model is served")
        raise ModelNotFoundError(
            f"several {task.value} models are served ({', '.join(candidates)}): name one"
        )

    def name_for(self, requested: str, task: ModelTask) -> str:
        """The model a call means: the one it names, else the task's default (never raises)."""
        if requested:
            return requested
        try:
            return self.default_name(task)
        except ModelNotFoundError:
            return task.value  # get() then explains that no such model is served

    def get(self, name: str, task: ModelTask | None = None) -> ModelRuntime:
        """The ready model `name` (of `task`, when given) or a ModelNotFoundError / ModelNotReadyError."""
        if name not in self.expected:
            served = ", ".join(sorted(self.expected)) or "none"
            raise ModelNotFoundError(f"model '{name}' is not served (served: {served})")
        if task is not None and self.expected[name] is not task:
            raise ModelNotFoundError(
                f"model '{name}' is a {self.expected[name].value} model, not {task.value}"
            )
        runtime = self._ready.get(name)
        if runtime is None:
            raise ModelNotReadyError(f"model '{name}' is still loading")
        return runtime
