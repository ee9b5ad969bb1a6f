"""Domain request messages for any model, built from data rows by each feature's configured source: the
inverse of what the server reads (server/api/domain_api.py `feature_sources`), so a model whose features
come from `features` / `categorical_features` maps can be load-tested like the bundled ones."""

from collections.abc import Sequence

import pandas as pd

from server.api.domain_api import APPLICATION, SECONDS_PER_HOUR, TRANSACTION, DomainMessage, feature_sources
from server.api.gen.riskserve.v1 import scoring_pb2
from server.config.model_config import ModelConfig, ModelTask

BASE_TIMESTAMP = 1_704_067_200  # 2024-01-01 00:00 UTC: a row's hour_of_day becomes this day's hour


def domain_messages(config: ModelConfig, frame: pd.DataFrame, model: str | None = None) -> list:
    """One Transaction (fraud) or Application (credit) per row of `frame` (columns named by feature)."""
    if config.task is ModelTask.FRAUD:
        message, message_type = TRANSACTION, scoring_pb2.Transaction
    elif config.task is ModelTask.CREDIT:
        message, message_type = APPLICATION, scoring_pb2.Application
    else:
        raise ValueError(f"model {config.name} is a {config.task.value} model: it has no domain API")
    sources = feature_sources(config, message)
    missing = [s.feature for s in sources if s.feature not in frame.columns]
    if missing:
        raise ValueError(f"rows lack the model's features: {', '.join(missing)}")
    return [
        _message(message, message_type, sources, row, model or config.name)
        for row in frame.to_dict("records")
    ]


def _message(message: DomainMessage, message_type, sources: Sequence, row: dict, model: str):
    built = message_type(model=model)
    for source in sources:
        value = row[source.feature]
        if source.kind == "field":
            setattr(built, source.field, _typed(message_type.DESCRIPTOR.fields_by_name[source.field], value))
        elif source.kind == "nested":
            nested = getattr(built, message.nested)
            field = nested.DESCRIPTOR.fields_by_name[source.field]
            setattr(nested, source.field, _typed(field, value))
        elif source.kind == "hour":
            setattr(built, source.field, BASE_TIMESTAMP + int(value) * SECONDS_PER_HOUR)
        elif source.field == "categorical_features":
            built.categorical_features[source.key] = str(value)
        else:
            built.features[source.key] = float(value)
    return built


def _typed(field, value):
    if field.type == field.TYPE_STRING:
        return str(value)
    if field.type == field.TYPE_BOOL:
        return bool(value)
    if field.type in (field.TYPE_INT64, field.TYPE_INT32):
        return int(value)
    return float(value)
