"""The training recipe is an optional extra: serving never imports it, and `models build` names the extra."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from server.cli.models_cmd import TRAIN_EXTRA_MODULES

REPO = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("modelbuild", "skl2onnx")
MODULE_LEVEL_IMPORT = re.compile(rf"(from|import)\s+({'|'.join(TRAINING_ONLY)})\b")


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """A fresh interpreter, so what it imports is what the code imports (not what pytest already loaded)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def test_train_extra_modules_are_what_the_train_extra_installs():
    train = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    assert [Requirement(r).name for r in train] == list(TRAIN_EXTRA_MODULES)


def test_models_build_without_skl2onnx_names_the_train_extra_and_exits_2(tmp_path):
    models_dir = tmp_path / "models"
    code = (
        "import sys\n"
        "sys.modules['skl2onnx'] = None  # as if the train extra were not installed\n"
        "from server.cli.main import main\n"
        f"sys.exit(main(['models', 'build', '--models-dir', {str(models_dir)!r}, '--quick']))\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("riskserve models build: error: skl2onnx ")
    assert "pip install 'riskserve[train]'" in lines[0]
    assert not models_dir.exists() and not done.stdout


def test_serving_imports_neither_the_recipe_nor_skl2onnx(tmp_path):
    code = (
        "import sys\n"
        "import server.app.serving, server.cli.main\n"
        "server.cli.main.build_parser()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_ONLY!r}))\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_nothing_in_server_imports_the_recipe_at_module_level():
    offenders = []
    for path in (REPO / "server").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if MODULE_LEVEL_IMPORT.match(line):  # unindented: runs when the module is imported
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line}")
    assert not offenders, offenders


def test_serving_does_not_import_scikit_learn(tmp_path):
    """A warm start reads cached reports only: scikit-learn (holdout metrics, `models init`) would add
    ~40 MiB to every serving process's RSS and a second to its start."""
    code = (
        "import sys\n"
        "import server.app.serving, server.quantization.report, server.monitoring.live_check\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn')[:3])\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
