"""A small Dockerfile parser: enough to check the project's own Dockerfile (no Docker engine runs here)."""

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    value: str  # the rest of the logical line, continuations joined

    def words(self) -> list[str]:
        """Exec form (JSON array) as is, shell form split like a shell would."""
        text = self.value.strip()
        if text.startswith("["):
            return list(json.loads(text))
        return shlex.split(text)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV values of this stage (`KEY=value ...` form; later ones win)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            words = instruction.words()
            if words and "=" not in words[0]:  # legacy `ENV KEY value`
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                values[key] = value
        return values


def logical_lines(text: str) -> list[str]:
    """Join `\\` continuations and drop comments and blank lines."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def parse_dockerfile(path: Path) -> list[Stage]:
    """The build stages of a Dockerfile, in order."""
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = value.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
            continue
        if not stages:
            raise ValueError(f"{keyword} before the first FROM in {path}")
        stages[-1].instructions.append(Instruction(keyword, value.strip()))
    return stages


def flags_and_args(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split `--flag=value` options (COPY --from, HEALTHCHECK --interval) from the arguments."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(words) and words[index].startswith("--"):
        key, _, value = words[index][2:].partition("=")
        flags[key] = value
        index += 1
    return flags, words[index:]


def image_user(final: Stage) -> tuple[str, int]:
    """(name, uid) of the final stage's USER, created in that stage by `useradd --uid UID NAME`."""
    user = final.last("USER")
    assert user is not None, "no USER: the server would run as root"
    value = user.value.split(":")[0]
    for run in final.all("RUN"):
        words = run.words()
        if "useradd" not in words:
            continue
        command = words[words.index("useradd") + 1 :]
        command = command[: command.index("&&")] if "&&" in command else command
        name, uid = command[-1], int(command[command.index("--uid") + 1])
        if value in {name, str(uid)}:
            return name, uid
    raise AssertionError(f"USER {value} is never created with useradd --uid")
