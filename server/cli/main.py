"""Entry point of the `riskserve` console script.

Each subcommand lives in its own module exposing `register(subparsers) -> None`; the parser it adds sets
`func(args) -> int` as its default. Modules are listed here in the order `--help` shows them.
"""

import argparse
import importlib
import sys

SUBCOMMAND_MODULES = (
    "server.cli.serve_cmd",
    "server.cli.score_cmd",
    "server.cli.quantize_cmd",
    "server.cli.models_cmd",
    "server.cli.health_cmd",
    "loadtest.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskserve",
        description="Low-latency gRPC inference server for fraud and credit-risk models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # subcommand not built yet; its own import errors still surface
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
