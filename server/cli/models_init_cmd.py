"""`riskserve models init <dir> --onnx M --data F --label L ...`: set up a model folder for an exported
ONNX model (server/model_init). Registered by server/cli/models_cmd.py under `riskserve models`.

Exit status: 0 when the folder is written, 2 for any bad input (one line on stderr, nothing written).
"""

import argparse
import sys
import types
from pathlib import Path

EXIT_BAD_INPUT = 2


def _one_line_error(parser: argparse.ArgumentParser, message: str) -> None:
    """A flag error as one line on stderr, exit 2 (argparse's own adds its usage block)."""
    parser.exit(
        EXIT_BAD_INPUT, f"riskserve models init: error: {message} (see riskserve models init --help)\n"
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _number(flag: str, text: str) -> float:
    from server.model_init.errors import ModelInitError

    try:
        return float(text)
    except ValueError:
        raise ModelInitError(f"{flag} takes a number, got '{text}'") from None


def register(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "init",
        help="set up a model folder from your ONNX file and labelled data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", type=Path, help="model folder to write (its name is the model name)")
    parser.add_argument("--onnx", type=Path, required=True, help="the exported ONNX model")
    parser.add_argument("--data", type=Path, required=True, help="labelled data, .parquet or .csv")
    parser.add_argument("--label", required=True, help="the data's 0/1 outcome column")
    parser.add_argument(
        "--task", choices=("fraud", "credit", "binary"), default="fraud", help="API to serve it on (fraud)"
    )
    holdout = parser.add_mutually_exclusive_group()
    holdout.add_argument("--holdout", type=Path, help="a labelled holdout file (default: split from --data)")
    holdout.add_argument("--holdout-fraction", default="0.3", help="share of --data held out (default 0.3)")
    parser.add_argument("--time-column", help="order rows by this column: the latest rows are the holdout")
    parser.add_argument(
        "--alert-rates",
        help="review,decline shares of holdout scores at or above each threshold "
        "(default 0.02,0.005; credit 0.2,0.1)",
    )
    parser.add_argument("--ignore", type=_names, default=(), help="comma-separated non-model columns (ids)")
    parser.add_argument("--columns", type=_names, help="comma-separated columns of an [N, F] input, in order")
    parser.add_argument("--output", help="the ONNX output holding the probabilities (default: found)")
    parser.add_argument("--name", help="model name (default: the folder name)")
    parser.add_argument("--version", default="1.0.0", help="model version (default 1.0.0)")
    parser.add_argument("--force", action="store_true", help="write into an existing, non-empty folder")
    parser.error = types.MethodType(_one_line_error, parser)  # type: ignore[method-assign]
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from server.config.model_config import ModelTask
    from server.model_init.build import InitOptions, check_alert_rates, init_model
    from server.model_init.errors import ModelInitError

    try:
        options = InitOptions(
            directory=args.directory,
            onnx=args.onnx,
            data=args.data,
            label=args.label,
            task=ModelTask(args.task),
            holdout=args.holdout,
            holdout_fraction=_number("--holdout-fraction", args.holdout_fraction),
            time_column=args.time_column,
            alert_rates=None if args.alert_rates is None else check_alert_rates(args.alert_rates),
            name=args.name,
            version=args.version,
            force=args.force,
            ignore=args.ignore,
            columns=args.columns,
            output=args.output,
        )
        init_model(options, lambda line: print(line, flush=True))
    except ModelInitError as exc:
        print(f"riskserve models init: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
