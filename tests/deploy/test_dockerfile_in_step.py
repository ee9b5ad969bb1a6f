"""The Dockerfile stays in step with the project: ports, entry point, install command, paths, user.

No Docker engine runs here, so the Dockerfile is parsed (tests/deploy/dockerfile.py) and every value it
hard-codes is compared with its source of truth: ServerSettings, pyproject.toml, run.sh, the CLI.
"""

import fnmatch
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement

from server.cli import health_cmd, serve_cmd
from server.cli.main import build_parser
from server.config.settings import ServerSettings
from tests.deploy.dockerfile import Instruction, Stage, flags_and_args, image_user, parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PORT = ServerSettings.model_fields["port"].default
DEFAULT_METRICS_PORT = ServerSettings.model_fields["metrics_port"].default


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(REPO / "Dockerfile")


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def build(stages: list[Stage]) -> Stage:
    """The stage that runs the install (the one the final stage copies from)."""
    copied_from = {flags_and_args(c.words())[0].get("from") for c in stages[-1].all("COPY")} - {None}
    assert len(copied_from) == 1, f"the final stage should copy from one build stage, got {copied_from}"
    (name,) = copied_from
    return next(s for s in stages if s.name == name)


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _workdir(stage: Stage) -> PurePosixPath:
    workdir = stage.last("WORKDIR")
    assert workdir is not None, f"stage {stage.name or stage.base} sets no WORKDIR"
    return PurePosixPath(workdir.value)


def _copies(stage: Stage) -> list[tuple[dict[str, str], list[str], PurePosixPath]]:
    """(flags, sources, destination resolved against WORKDIR) of every COPY of a stage."""
    found = []
    workdir = PurePosixPath("/")
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.value
        elif instruction.keyword == "COPY":
            flags, args = flags_and_args(instruction.words())
            found.append((flags, args[:-1], workdir / args[-1]))
    return found


def test_multi_stage_on_python_311_slim(stages: list[Stage], pyproject: dict) -> None:
    assert len(stages) >= 2, "a build stage and a slim runtime stage"
    required = pyproject["project"]["requires-python"]
    assert ">=3.11" in required and "<3.12" in required, required
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", stage.base), stage.base


def test_exposed_ports_are_the_default_grpc_and_metrics_ports(final: Stage) -> None:
    exposed = {int(word.split("/")[0]) for e in final.all("EXPOSE") for word in e.words()}
    assert exposed == {DEFAULT_PORT, DEFAULT_METRICS_PORT}


def test_entrypoint_is_the_console_script_serving_as_pid_1(final: Stage, pyproject: dict) -> None:
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None
    # Exec form: riskserve itself is PID 1 and gets SIGTERM (a shell form would wrap it in /bin/sh -c).
    assert entrypoint.value.startswith("["), "ENTRYPOINT must be exec form so SIGTERM reaches riskserve"
    words = entrypoint.words()
    assert words[0] in pyproject["project"]["scripts"], f"{words[0]} is not a console script"
    assert pyproject["project"]["scripts"][words[0]] == "server.cli.main:main"
    args = build_parser().parse_args(words[1:])
    assert args.func is serve_cmd.run
    assert final.last("CMD") is None, "CMD would append arguments to every `docker run`"
    stop = final.last("STOPSIGNAL")
    assert stop is None or stop.value in {"SIGTERM", "15"}


def test_console_script_is_on_path_from_the_copied_venv(build: Stage, final: Stage) -> None:
    venv = PurePosixPath(build.env()["RISKSERVE_VENV"])
    path = final.env()["PATH"].split(":")
    assert path[0] == str(venv / "bin"), f"PATH should start with the venv's bin, got {path}"
    copied = [dest for flags, _src, dest in _copies(final) if flags.get("from") == build.name]
    assert any(venv.is_relative_to(dest) for dest in copied), f"{venv} not copied from {build.name}"


def _run_sh_arm(word: str) -> str:
    """The body of `word)` in run.sh's case statement."""
    text = (REPO / "run.sh").read_text()
    match = re.search(rf"^\s*{word}\)\n(.*?)\n\s*;;", text, flags=re.S | re.M)
    assert match, f"run.sh has no `{word})` arm"
    return match[1]


def test_install_step_is_run_sh_install_which_installs_what_serve_does(build: Stage) -> None:
    runs = [r.words() for r in build.all("RUN")]
    assert ["./run.sh", "install"] in runs, runs
    install_arm, serve_arm = _run_sh_arm("install"), _run_sh_arm("serve")
    extras = re.findall(r'ensure_venv "([^"]*)"', install_arm)
    assert extras and extras == re.findall(r'ensure_venv "([^"]*)"', serve_arm)
    assert "./run.sh serve" in (REPO / "README.md").read_text(), "README's install is ./run.sh serve"


def test_image_installs_the_serving_dependencies_only(build: Stage, pyproject: dict) -> None:
    """No training (skl2onnx) or test (perf-analyzer) dependency in the image: `./run.sh install` only."""
    assert not [r.value for r in build.all("RUN") if "pip" in r.words()], "install through ./run.sh only"
    install_arm = _run_sh_arm("install")
    assert "ensure_perf_analyzer" not in install_arm
    (extras,) = re.findall(r'ensure_venv "([^"]*)"', install_arm)
    optional = pyproject["project"]["optional-dependencies"]
    assert not {"train", "test"} & set(extras.split(","))
    installed = pyproject["project"]["dependencies"] + [r for e in extras.split(",") for r in optional[e]]
    names = {Requirement(r).name.lower() for r in installed}
    assert "skl2onnx" in {Requirement(r).name.lower() for r in optional["train"]}
    assert not names & {"skl2onnx", "perf-analyzer", "nvidia-cuda-runtime-cu12"}, names


def test_build_stage_copies_every_installed_package_and_file(build: Stage, pyproject: dict) -> None:
    sources = {src.rstrip("/") for _flags, srcs, _dest in _copies(build) for src in srcs}
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed = packages | {"pyproject.toml", "run.sh", pyproject["project"]["readme"]}
    assert needed <= sources, f"not copied into the build stage: {needed - sources}"


def test_healthcheck_asks_riskserve_health_on_the_grpc_port(final: Stage) -> None:
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None
    options, _, command = healthcheck.value.partition(" CMD ")
    words = Instruction("CMD", command).words()
    assert words[:2] == ["riskserve", "health"]
    args = build_parser().parse_args(words[1:])
    assert args.func is health_cmd.run
    if args.target:
        port = int(args.target.rsplit(":", 1)[1])
    else:  # the CLI's default target follows RISKSERVE_PORT as the image sets it
        port = int(final.env().get("RISKSERVE_PORT") or DEFAULT_PORT)
    assert port == DEFAULT_PORT
    flags, _ = flags_and_args(options.split())
    assert "start-period" in flags, "startup quantizes and gates the models: give it a start period"


def test_runs_as_a_non_root_user_created_in_the_image(final: Stage) -> None:
    name, uid = image_user(final)
    assert name != "root" and uid != 0
    assert final.last("USER").value.split(":")[0] == str(uid), "numeric USER: runAsNonRoot can verify it"


def test_bundled_models_are_where_the_server_looks_for_them(build: Stage, final: Stage) -> None:
    # server/config/paths.py: the bundled models sit beside the installed `server` package.
    (server_dest,) = [dest for _f, srcs, dest in _copies(build) if srcs == ["server"]]
    install_root = server_dest.parent
    models = [dest for flags, srcs, dest in _copies(final) if srcs == ["models"] and "from" not in flags]
    assert models == [install_root / "models"], models
    assert "RISKSERVE_MODELS_DIR" not in final.env()


def test_cache_dir_is_the_volume_owned_by_the_server_user(final: Stage) -> None:
    cache_dir = final.env()["RISKSERVE_CACHE_DIR"]
    volumes = [v for instruction in final.all("VOLUME") for v in instruction.words()]
    assert volumes == [cache_dir]
    user, _uid = image_user(final)
    runs = " ".join(r.value for r in final.all("RUN"))
    assert re.search(rf"chown [^&]*{re.escape(user)}[^&]* {re.escape(cache_dir)}\b", runs), runs


def test_image_env_names_real_settings_and_listens_beyond_loopback(final: Stage) -> None:
    env = final.env()
    for name in (n for n in env if n.startswith("RISKSERVE_")):
        assert name.removeprefix("RISKSERVE_").lower() in ServerSettings.model_fields, name
    assert env["RISKSERVE_HOST"] == env["RISKSERVE_METRICS_HOST"] == "0.0.0.0"


def test_dockerignore_keeps_what_the_build_copies(stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.lstrip("/")) for p in patterns if not p.startswith("!"))

    copied = {src for stage in stages for f, srcs, _d in _copies(stage) if "from" not in f for src in srcs}
    assert not [src for src in copied if ignored(src.rstrip("/"))]
    assert ignored(".venv") and ignored(".git"), "the local venv and history stay out of the context"
