"""Error types of the load tester. Each message names the problem so a user can act on it."""


class ScenarioError(ValueError):
    """A scenario file or a command-line override is invalid (exit code 2). The message names the field."""


class LoadTestError(RuntimeError):
    """The load test could not run: target unreachable, request data missing, a worker crashed."""
