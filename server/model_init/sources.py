"""Where the domain API reads each feature of a model `models init` sets up (fraud: riskserve.v1.Transaction,
credit: Application), written as an explicit `source` so a field added to the proto later cannot change it.

The server's default rule, kept: a message field (or `behaviour.` field) of the feature's name when its type
fits, `derived.utc_hour` for a fraud feature named `hour_of_day`, else the `features` map (numbers) or the
`categorical_features` map (strings) under the feature's name. A same-named field of the wrong type (a number
feature named `currency`) goes to the map instead of failing at startup.
"""

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from server.api.gen.riskserve.v1 import scoring_pb2
from server.config.model_config import ModelTask

_NOT_FEATURES = frozenset({"model", "features", "categorical_features"})
LEGACY_HOUR_FEATURE = "hour_of_day"


def _scalars(descriptor: Descriptor) -> dict[str, bool]:
    """Scalar fields that may hold a feature -> whether the field is a string."""
    return {
        name: field.type == FieldDescriptor.TYPE_STRING
        for name, field in descriptor.fields_by_name.items()
        if name not in _NOT_FEATURES and field.type != FieldDescriptor.TYPE_MESSAGE
    }


def source_for(name: str, is_string: bool, task: ModelTask) -> str:
    message = scoring_pb2.Transaction if task is ModelTask.FRAUD else scoring_pb2.Application
    top = _scalars(message.DESCRIPTOR)
    nested = _scalars(scoring_pb2.BehaviourAggregates.DESCRIPTOR) if task is ModelTask.FRAUD else {}
    if task is ModelTask.FRAUD and name == LEGACY_HOUR_FEATURE and not is_string:
        return "derived.utc_hour"
    if top.get(name) is is_string:
        return name
    if nested.get(name) is is_string:
        return f"behaviour.{name}"
    return f"{'categorical_features' if is_string else 'features'}.{name}"


def explicit_sources(inputs: list[dict], task: ModelTask) -> str:
    """Set `source` on every feature of `inputs` (config entries, changed in place); one report line."""
    message = "Transaction" if task is ModelTask.FRAUD else "Application"
    groups: dict[str, list[str]] = {"field": [], "features": [], "categorical_features": [], "derived": []}
    for spec in inputs:
        for feature in spec.get("columns") or [spec]:
            is_string = spec["dtype"] == "string"
            source = source_for(feature["name"], is_string, task)
            feature["source"] = source
            head = source.split(".", 1)[0]
            groups[head if head in groups else "field"].append(feature["name"])
    said = []
    if groups["field"]:
        said.append(f"{len(groups['field'])} from {message} fields ({', '.join(groups['field'][:6])})")
    for kind in ("features", "categorical_features"):
        if groups[kind]:
            said.append(f"{len(groups[kind])} from the `{kind}` map")
    if groups["derived"]:
        said.append(f"{', '.join(groups['derived'])} derived from `timestamp` (UTC hour)")
    service = "FraudScoring" if task is ModelTask.FRAUD else "CreditScoring"
    return f"domain API ({service}): " + "; ".join(said) + " (written as explicit `source` entries)"
