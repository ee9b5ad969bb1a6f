"""`riskserve models build|list|init|reload`: rebuild the bundled models from the seeded generator, list a
repository, set up a folder for your own ONNX model (`init`: server/cli/models_init_cmd.py), reload new
versions in a running server (`reload`: server/cli/models_reload_cmd.py)."""

import argparse
import importlib
import logging
import shlex
import sys
import time
from pathlib import Path

from server.cli import models_init_cmd, models_reload_cmd
from server.config.paths import BUNDLED_MODELS_DIR, default_models_dir

log = logging.getLogger(__name__)
MODEL_NAMES = ("fraud", "credit")
MODEL_FILES = (
    "config.yaml",
    "model.onnx",
    "calibration.parquet",
    "holdout.parquet",
    "metrics.json",
    "MODEL_CARD.md",
)
# What `pip install 'riskserve[train]'` adds (pyproject.toml's `train` extra), as import names.
TRAIN_EXTRA_MODULES = ("skl2onnx",)


class BadFlagError(ValueError):
    """A command-line value is out of range; the message names the flag and the valid range."""


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="build, list, set up or reload models")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION")
    build = actions.add_parser("build", help="rebuild the bundled fraud and credit models from the seed")
    build.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="model repository to write (default: $RISKSERVE_MODELS_DIR or the bundled models/)",
    )
    build.add_argument("--only", choices=MODEL_NAMES, help="build one model only")
    build.add_argument("--seed", type=int, default=None, help="generator and training seed (default 7)")
    build.add_argument(
        "--fraud-rate",
        type=float,
        default=0.005,
        help="share of fraudulent transactions in the generated stream, in (0, 0.5) (default 0.005)",
    )
    build.add_argument("--rows", type=int, default=None, help=argparse.SUPPRESS)  # smaller data, for tests
    build.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tiny networks, for tests
    build.set_defaults(func=run_build)
    listing = actions.add_parser("list", help="list the models in a repository")
    listing.add_argument("--models-dir", type=Path, default=None)
    listing.set_defaults(func=run_list)
    models_init_cmd.register(actions)
    models_reload_cmd.register(actions)
    models.set_defaults(func=lambda args: (models.print_help(), 2)[1])


def _validate(args: argparse.Namespace) -> None:
    if not 0.0 < args.fraud_rate < 0.5:
        raise BadFlagError(f"--fraud-rate must be in (0, 0.5), got {args.fraud_rate}")
    if args.seed is not None and args.seed < 0:
        raise BadFlagError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.rows is not None and args.rows < 5_000:
        raise BadFlagError(f"--rows must be at least 5000, got {args.rows}")


def _command_line(args: argparse.Namespace, name: str) -> str:
    parts = ["riskserve", "models", "build", "--only", name]
    if args.models_dir is not None and args.models_dir.resolve() != BUNDLED_MODELS_DIR.resolve():
        parts += ["--models-dir", str(args.models_dir)]
    if args.seed is not None:
        parts += ["--seed", str(args.seed)]
    if name == "fraud" and args.fraud_rate != 0.005:
        parts += ["--fraud-rate", str(args.fraud_rate)]
    if args.rows is not None:
        parts += ["--rows", str(args.rows)]
    if args.quick:
        parts.append("--quick")
    return shlex.join(parts)


def run_build(args: argparse.Namespace) -> int:
    try:
        _validate(args)
    except BadFlagError as exc:
        print(f"riskserve models build: error: {exc}", file=sys.stderr)
        return 2
    # The training recipe (the top-level `modelbuild` package) and its train-only dependencies are imported
    # here, never at module level, so serving and the image (serving extras only) stay free of them.
    try:
        for name in TRAIN_EXTRA_MODULES:  # modelbuild imports these lazily: check them before any work
            importlib.import_module(name)
        from modelbuild.build import build_model
        from modelbuild.errors import GeneratorConfigError, ModelBuildError
        from modelbuild.recipe import DEFAULT_SEED, credit_recipe, fraud_recipe
    except ImportError as exc:
        missing = exc.name or "a training dependency"
        print(
            f"riskserve models build: error: {missing} cannot be imported ({exc}); training needs the train"
            " extra: pip install 'riskserve[train]' (in a checkout: pip install -e '.[train]')",
            file=sys.stderr,
        )
        return 2

    models_dir = args.models_dir or default_models_dir()
    seed = DEFAULT_SEED if args.seed is None else args.seed
    names = [args.only] if args.only else list(MODEL_NAMES)
    started = time.perf_counter()
    print(f"building {', '.join(names)} into {models_dir} (seed {seed})", flush=True)

    def progress(model: str, stage: str, seconds: float, detail: str) -> None:
        print(f"[{model:6}] {stage:9} {seconds:7.1f} s  {detail}", flush=True)

    results = []
    try:
        for name in names:
            recipe = (
                fraud_recipe(seed, args.fraud_rate, args.rows, args.quick)
                if name == "fraud"
                else credit_recipe(seed, args.rows, args.quick)
            )
            results.append(build_model(recipe, models_dir / name, _command_line(args, name), progress))
    except (ModelBuildError, GeneratorConfigError) as exc:
        print(f"riskserve models build: error: {exc}", file=sys.stderr)
        return 1
    _print_summary(results, time.perf_counter() - started)
    return 0


def _print_summary(results, total_seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"riskserve models build: {total_seconds:.1f} s")
    for column in (
        "model",
        "ROC-AUC",
        "PR-AUC",
        "KS",
        "Brier",
        "recall@1%FPR",
        "params",
        "holdout +",
        "review / decline",
        "seconds",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for result in results:
        m = result.metrics["holdout_metrics"]
        decision = result.metrics["decision"]
        table.add_row(
            result.name,
            f"{m['roc_auc']:.4f}",
            f"{m['pr_auc']:.4f}",
            f"{m['ks']:.4f}",
            f"{m['brier']:.5f}",
            f"{m['recall_at_1pct_fpr']:.3f}",
            f"{result.metrics['model']['parameters']:,}",
            str(m["positives"]),
            f"{decision['review']:.4g} / {decision['decline']:.4g}",
            f"{result.seconds:.1f}",
        )
    Console(width=140).print(table)


def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from server.config import ConfigError, load_model_config

    models_dir = args.models_dir or default_models_dir()
    if not models_dir.is_dir():
        print(f"riskserve models list: error: model repository not found: {models_dir}", file=sys.stderr)
        return 1
    table = Table(title=f"models in {models_dir}")
    for column in ("name", "version", "task", "inputs", "files present", "status"):
        table.add_column(column)
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        files = [f for f in MODEL_FILES if (folder / f).is_file()]
        present = f"{len(files)}/{len(MODEL_FILES)}" + (
            ""
            if len(files) == len(MODEL_FILES)
            else " (missing " + ", ".join(sorted(set(MODEL_FILES) - set(files))) + ")"
        )
        try:
            config = load_model_config(folder)
        except ConfigError as exc:
            table.add_row(
                folder.name, "-", "-", "-", present, f"invalid: {str(exc).splitlines()[-1].strip()}"
            )
            continue
        table.add_row(config.name, config.version, config.task.value, str(len(config.inputs)), present, "ok")
    Console(width=160).print(table)
    return 0
