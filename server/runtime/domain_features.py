"""Domain messages (Transaction, Application) -> named feature columns, with client-facing field names.

proto3 has no presence for scalars, so "missing" means: an empty string, a zero or negative `timestamp`,
or an absent `behaviour` message. A numeric field left at 0 is read as 0 (a valid count, flag or amount).
"""

from collections.abc import Sequence

import numpy as np

from server.api.gen.riskserve.v1 import scoring_pb2
from server.config.errors import ConfigError
from server.config.model_config import ModelConfig
from server.runtime.errors import InvalidInputError
from server.runtime.features import FieldNamer

SECONDS_PER_HOUR = 3600
_TRANSACTION_FIELDS = frozenset(scoring_pb2.Transaction.DESCRIPTOR.fields_by_name)
_BEHAVIOUR_FIELDS = frozenset(scoring_pb2.BehaviourAggregates.DESCRIPTOR.fields_by_name)
_APPLICATION_FIELDS = frozenset(scoring_pb2.Application.DESCRIPTOR.fields_by_name)
DERIVED_HOUR = "hour_of_day"  # from `timestamp`, the UTC hour 0-23


def check_transaction_sources(config: ModelConfig) -> None:
    """Fail at startup if a fraud model needs an input no Transaction field provides."""
    for name in config.input_names:
        if name != DERIVED_HOUR and name not in _TRANSACTION_FIELDS and name not in _BEHAVIOUR_FIELDS:
            raise ConfigError(
                f"model {config.name}: input '{name}' has no source in riskserve.v1.Transaction"
            )


def check_application_sources(config: ModelConfig) -> None:
    """Fail at startup if a credit model needs an input no Application field provides."""
    for name in config.input_names:
        if name not in _APPLICATION_FIELDS:
            raise ConfigError(
                f"model {config.name}: input '{name}' has no source in riskserve.v1.Application"
            )


def transaction_namer(prefix: str | None) -> FieldNamer:
    """Names like `transactions[3].behaviour.txn_count_1h` (batch) or `currency` (single message)."""

    def name(feature: str, row: int | None) -> str:
        field = (
            "timestamp"
            if feature == DERIVED_HOUR
            else (f"behaviour.{feature}" if feature in _BEHAVIOUR_FIELDS else feature)
        )
        if prefix is None or row is None:
            return field
        return f"{prefix}[{row}].{field}"

    return name


def application_namer(feature: str, row: int | None) -> str:
    return feature


def transaction_columns(
    transactions: Sequence[scoring_pb2.Transaction], input_names: Sequence[str], namer: FieldNamer
) -> dict[str, list | np.ndarray]:
    """One column per model input; checks presence of `timestamp` and `behaviour` (see module doc)."""
    columns: dict[str, list | np.ndarray] = {}
    for row, transaction in enumerate(transactions):
        if not transaction.HasField("behaviour"):
            field = namer("txn_count_1h", row).rsplit(".", 1)[0]
            raise InvalidInputError(field, "missing (behaviour aggregates are required)")
    for name in input_names:
        if name == DERIVED_HOUR:
            stamps = np.fromiter((t.timestamp for t in transactions), np.int64, len(transactions))
            if (stamps <= 0).any():
                row = int(np.argmax(stamps <= 0))
                raise InvalidInputError(namer(name, row), "missing (unix seconds, UTC, must be > 0)")
            columns[name] = (stamps // SECONDS_PER_HOUR) % 24
        elif name in _TRANSACTION_FIELDS:
            columns[name] = [getattr(t, name) for t in transactions]
        else:
            columns[name] = [float(getattr(t.behaviour, name)) for t in transactions]
    return columns


def application_columns(application: scoring_pb2.Application, input_names: Sequence[str]) -> dict[str, list]:
    return {name: [getattr(application, name)] for name in input_names}
