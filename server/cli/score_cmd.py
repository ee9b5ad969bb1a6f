"""`riskserve score fraud|credit`: send one transaction or application to a running server, print the answer.

The request comes from, in order of application: a random row of the model's holdout file (the default),
a JSON file (`--json FILE`, or `-` for stdin; flat feature names like the holdout columns, or the proto's
JSON form), then `--field name=value` overrides. Without a `timestamp`, `hour_of_day` becomes one on
2024-01-01 UTC. Exit 1 if the call failed (its gRPC status is printed), 2 for a bad input (request,
settings, model folder or certificate files).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.cli import client_channel
from server.cli.client_channel import ClientSettings
from server.config.errors import ConfigError
from server.config.model_config import CONFIG_FILE_NAME, ModelConfig, load_model_config

EPOCH_DAY = 1_704_067_200  # 2024-01-01T00:00:00Z: a day start for timestamps built from hour_of_day
EXIT_RPC_FAILED = 1
EXIT_BAD_INPUT = 2
_MESSAGES = {"fraud": scoring_pb2.Transaction, "credit": scoring_pb2.Application}
_BEHAVIOUR = scoring_pb2.BehaviourAggregates.DESCRIPTOR.fields_by_name


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score one transaction or credit application",
        description=f"{__doc__}\n{client_channel.CONNECTION_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "task", choices=sorted(_MESSAGES), help="fraud (FraudScoring.Score) or credit (Assess)"
    )
    parser.add_argument(
        "--json", dest="json_file", default=None, metavar="FILE", help="request as JSON ('-': stdin)"
    )
    parser.add_argument(
        "--random-holdout-row",
        action="store_true",
        help="start from a random holdout row (the default when --json is not given)",
    )
    parser.add_argument("--field", action="append", default=[], metavar="NAME=VALUE", help="set one field")
    parser.add_argument("--model", default="", help="served model name (default: the task's default model)")
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="where holdout files are read (default: the server's)"
    )
    parser.add_argument("--seed", type=int, default=None, help="pick the same holdout row every time")
    client_channel.add_arguments(parser)
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="how to print the answer")
    parser.set_defaults(func=run)


def model_config(models_dir: Path, model: str) -> ModelConfig:
    """The config of `models_dir/<model>`; ConfigError in one line if there is no such model folder."""
    if not models_dir.is_dir():
        raise ConfigError(f"models dir {models_dir} is not a directory (set --models-dir)")
    folder = models_dir / model
    if not (folder / CONFIG_FILE_NAME).is_file():
        there = sorted(p.name for p in models_dir.iterdir() if (p / CONFIG_FILE_NAME).is_file())
        raise ConfigError(f"no model '{model}' in {models_dir} (models there: {', '.join(there) or 'none'})")
    return load_model_config(folder)


def holdout_row(models_dir: Path, model: str, seed: int | None) -> dict[str, Any]:
    """A random row of the model's holdout file (its config's `holdout_file`; the label column and ids
    are dropped later by name)."""
    from server.model_data import DataKind, read_model_data  # only here: health probes need no pandas

    config = model_config(models_dir, model)
    frame = read_model_data(config, DataKind.HOLDOUT)
    if frame.empty:
        raise ConfigError(f"holdout file {config.holdout_path} has no rows")
    return frame.sample(1, random_state=seed).iloc[0].to_dict()


def _set(values: dict[str, Any], name: str, value: Any, message_type) -> None:
    """Put a flat feature into the nested JSON dict of the message."""
    fields = message_type.DESCRIPTOR.fields_by_name
    if name == "hour_of_day" and message_type is scoring_pb2.Transaction:
        values["timestamp"] = EPOCH_DAY + int(float(value)) * 3600
    elif name in fields:
        values[name] = _typed(fields[name], value)
    elif message_type is scoring_pb2.Transaction and name in _BEHAVIOUR:
        values.setdefault("behaviour", {})[name] = _typed(_BEHAVIOUR[name], value)
    # anything else (label columns, ids of the data file) is not part of the request


def _typed(field: FieldDescriptor, value: Any) -> Any:
    if isinstance(value, dict):
        return value
    if field.type == FieldDescriptor.TYPE_STRING:
        return str(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return str(value).lower() in ("1", "1.0", "true", "yes") if isinstance(value, str) else bool(value)
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32):
        return int(float(value))
    return float(value)


def build_request(args: argparse.Namespace, models_dir: Path):
    message_type = _MESSAGES[args.task]
    values: dict[str, Any] = {}
    sources = []
    if args.json_file is None or args.random_holdout_row:
        sources.append(holdout_row(models_dir, args.model or args.task, args.seed))
    if args.json_file is not None:
        text = sys.stdin.read() if args.json_file == "-" else Path(args.json_file).read_text()
        sources.append(json.loads(text))
    for source in sources:
        if "timestamp" in source:  # the real time wins over the derived hour
            source = {k: v for k, v in source.items() if k != "hour_of_day"}
        for name, value in source.items():
            _set(values, name, value, message_type)
    for item in args.field:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--field {item!r}: expected NAME=VALUE")
        _set(values, name.strip(), value, message_type)
    id_field = "transaction_id" if args.task == "fraud" else "application_id"
    values.setdefault(id_field, "cli-1")
    if args.model:
        values["model"] = args.model
    return json_format.ParseDict(values, message_type())


def run(args: argparse.Namespace) -> int:
    try:
        client = ClientSettings.from_args(args)
        request = build_request(args, args.models_dir or client.server.models_dir)
        channel = client.channel()
    except (ConfigError, OSError, ValueError, json_format.ParseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with channel:
        try:
            if args.task == "fraud":
                answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(request, timeout=args.timeout)
            else:
                answer = scoring_pb2_grpc.CreditScoringStub(channel).Assess(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return EXIT_RPC_FAILED
    if args.output == "json":
        print(json_format.MessageToJson(answer, preserving_proto_field_name=True))
    else:
        print(describe(answer))
    return 0


def describe(answer) -> str:
    """A few human lines: the decision first."""
    decision = scoring_pb2.Decision.Name(answer.decision)
    m = answer.model
    model = (
        f"model {m.name} {m.version} ({m.precision}, gate {m.gate_verdict}), {answer.server_latency_us} µs"
    )
    if isinstance(answer, scoring_pb2.FraudScore):
        return (
            f"transaction {answer.transaction_id}: {decision}  risk score {answer.risk_score}/999  "
            f"probability {answer.probability:.6f}\n{model}"
        )
    lines = [
        f"application {answer.application_id}: {decision}  score {answer.score}  "
        f"probability of default {answer.probability_of_default:.4f}"
    ]
    lines += [f"  {r.code}: {r.description} (+{r.contribution:.4f} PD)" for r in answer.reasons]
    return "\n".join([*lines, model])
