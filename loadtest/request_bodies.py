"""Request bodies built once, up front, from real rows (by default the model's holdout file, as its
config.yaml names it, read by server.model_data like every other reader of a model's data).

Each mix entry becomes a RequestPool: the gRPC method path and a list of already-serialized request
messages. Workers send these bytes as they are (no proto building, no pandas on the send path).
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tritonclient.grpc import service_pb2

from loadtest.errors import LoadTestError
from loadtest.plan import RequestPool
from loadtest.scenario import CallKind, MixEntry
from server.api.gen.riskserve.v1 import scoring_pb2
from server.config.errors import ConfigError, DataFileError
from server.config.model_config import CONFIG_FILE_NAME, ModelConfig, load_model_config
from server.config.paths import default_models_dir
from server.model_data import DataKind, data_path, read_data_file

MAX_POOL_REQUESTS = 2048  # distinct bodies per mix entry; cycled through on the send path
MAX_POOL_ROWS = 32_768  # rows turned into bodies (e.g. 128 batches of 256)
BASE_TIMESTAMP = 1_767_225_600  # 2026-01-01T00:00:00Z; a holdout row's hour_of_day is added to it

BEHAVIOUR_FIELDS = (
    "txn_count_1h",
    "txn_count_24h",
    "amount_sum_1h",
    "amount_sum_24h",
    "seconds_since_last_txn",
    "distance_from_home_km",
)
FLAG_FIELDS = ("is_new_merchant", "is_new_device")
TRANSACTION_STRINGS = ("currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode")
APPLICATION_FLOATS = (
    "annual_income",
    "debt_to_income",
    "revolving_utilization",
    "delinquencies_2y",
    "inquiries_6m",
    "credit_history_months",
    "loan_amount",
    "term_months",
    "employment_years",
    "open_accounts",
)
APPLICATION_STRINGS = ("purpose", "home_ownership")
ID_COLUMNS = ("transaction_id", "card_id", "merchant_id", "application_id")


def _method_path(file_descriptor, service: str, method: str) -> str:
    descriptor = file_descriptor.services_by_name[service]
    return f"/{descriptor.full_name}/{descriptor.methods_by_name[method].name}"


METHOD_PATHS = {
    CallKind.FRAUD_SCORE: _method_path(scoring_pb2.DESCRIPTOR, "FraudScoring", "Score"),
    CallKind.FRAUD_SCORE_BATCH: _method_path(scoring_pb2.DESCRIPTOR, "FraudScoring", "ScoreBatch"),
    CallKind.FRAUD_SCORE_STREAM: _method_path(scoring_pb2.DESCRIPTOR, "FraudScoring", "ScoreStream"),
    CallKind.CREDIT_ASSESS: _method_path(scoring_pb2.DESCRIPTOR, "CreditScoring", "Assess"),
    CallKind.OIP_INFER: _method_path(service_pb2.DESCRIPTOR, "GRPCInferenceService", "ModelInfer"),
}


def _model_config(entry: MixEntry, models_dir: Path) -> ModelConfig | None:
    """The config of the entry's model in `models_dir`, None if it is not there."""
    folder = models_dir / entry.model_name
    if not (folder / CONFIG_FILE_NAME).is_file():
        return None
    try:
        return load_model_config(folder)
    except ConfigError as exc:
        raise LoadTestError(str(exc)) from exc


def _source(entry: MixEntry, models_dir: Path) -> tuple[Path, ModelConfig | None]:
    """The entry's data file (its `data_file`, else its model's holdout file) and its model's config
    (for oip.infer and the holdout file; None when not needed or not in `models_dir`)."""
    if entry.data_file is not None:
        return entry.data_file, _model_config(entry, models_dir) if entry.call is CallKind.OIP_INFER else None
    config = _model_config(entry, models_dir)
    if config is None:
        raise LoadTestError(
            f"mix entry {entry.call.value}: no model {entry.model_name!r} in {models_dir} to read its "
            f"holdout file from (set `data_file` in the mix entry)"
        )
    return data_path(config, DataKind.HOLDOUT), config


def _string_columns(entry: MixEntry, config: ModelConfig | None) -> tuple[str, ...]:
    """Columns that stay strings in a CSV file: ids and categories ("0742" is an MCC, not 742)."""
    known = {CallKind.CREDIT_ASSESS: APPLICATION_STRINGS, CallKind.OIP_INFER: ()}.get(
        entry.call, TRANSACTION_STRINGS
    )
    model = tuple(spec.name for spec in config.inputs if spec.dtype == "string") if config else ()
    return (*ID_COLUMNS, *known, *model)


def read_rows(path: Path, string_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Request rows of a Parquet or CSV file (`string_columns` stay strings in a CSV file)."""
    if not path.is_file():
        raise LoadTestError(f"request data file not found: {path} (set `data_file` in the mix entry)")
    try:
        frame = read_data_file(path, string_columns)
    except DataFileError as exc:
        raise LoadTestError(str(exc)) from exc
    if frame.empty:
        raise LoadTestError(f"request data file {path} has no rows")
    return frame.reset_index(drop=True)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LoadTestError(f"request data file {path} lacks column(s) {', '.join(missing)}")


def transactions(frame: pd.DataFrame, path: Path, model: str | None) -> list[scoring_pb2.Transaction]:
    """One Transaction per row. The timestamp comes from `timestamp`, else from `hour_of_day`."""
    _require(frame, ("amount", *TRANSACTION_STRINGS, *BEHAVIOUR_FIELDS, *FLAG_FIELDS), path)
    if "timestamp" in frame.columns:
        stamps = frame["timestamp"].astype("int64").to_numpy()
    elif "hour_of_day" in frame.columns:
        stamps = BASE_TIMESTAMP + frame["hour_of_day"].astype("int64").to_numpy() * 3600
    else:
        raise LoadTestError(f"request data file {path} needs a `timestamp` or `hour_of_day` column")
    records = frame.to_dict("records")
    result = []
    for index, row in enumerate(records):
        behaviour = scoring_pb2.BehaviourAggregates(
            **{name: float(row[name]) for name in BEHAVIOUR_FIELDS},
            **{name: bool(row[name]) for name in FLAG_FIELDS},
        )
        result.append(
            scoring_pb2.Transaction(
                transaction_id=str(row.get("transaction_id", f"lt-{index}")),
                card_id=str(row.get("card_id", f"lt-card-{index % 997}")),  # tokens, never a PAN
                merchant_id=str(row.get("merchant_id", f"lt-m-{index % 89}")),
                amount=float(row["amount"]),
                timestamp=int(stamps[index]),
                behaviour=behaviour,
                model=model or "",
                **{name: str(row[name]) for name in TRANSACTION_STRINGS},
            )
        )
    return result


def applications(frame: pd.DataFrame, path: Path, model: str | None) -> list[scoring_pb2.Application]:
    """One credit Application per row."""
    _require(frame, (*APPLICATION_FLOATS, *APPLICATION_STRINGS), path)
    return [
        scoring_pb2.Application(
            application_id=str(row.get("application_id", f"lt-{index}")),
            model=model or "",
            **{name: float(row[name]) for name in APPLICATION_FLOATS},
            **{name: str(row[name]) for name in APPLICATION_STRINGS},
        )
        for index, row in enumerate(frame.to_dict("records"))
    ]


def _oip_columns(entry: MixEntry, config: ModelConfig | None) -> tuple[str, ...]:
    if entry.inputs is not None:
        return entry.inputs
    if config is not None:
        return tuple(config.feature_names)
    raise LoadTestError(f"oip.infer model {entry.model_name!r} is not a bundled model: list its `inputs`")


def infer_requests(
    entry: MixEntry, frame: pd.DataFrame, path: Path, config: ModelConfig | None
) -> list[bytes]:
    """ModelInferRequests of `batch_size` rows, one input [rows, 1] per feature column, raw contents.
    The columns are the entry's `inputs`, else those of the model's `config`."""
    columns = _oip_columns(entry, config)
    _require(frame, columns, path)
    tensors = []  # (name, datatype, raw bytes of every row's value)
    for column in columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            tensors.append((column, "FP32", series.to_numpy().astype("<f4")))
        else:
            encoded = [str(value).encode() for value in series]
            tensors.append((column, "BYTES", [len(e).to_bytes(4, "little") + e for e in encoded]))
    requests = []
    for chunk in _row_chunks(len(frame), entry.batch_size):
        request = service_pb2.ModelInferRequest(model_name=entry.model_name)
        for name, datatype, values in tensors:
            request.inputs.add(name=name, datatype=datatype, shape=[len(chunk), 1])
            if datatype == "FP32":
                request.raw_input_contents.append(values[chunk].tobytes())
            else:  # BYTES: each element a 4-byte little-endian length, then the bytes
                request.raw_input_contents.append(b"".join(values[i] for i in chunk))
        requests.append(request.SerializeToString())
    return requests


def _row_chunks(rows: int, batch_size: int) -> list[np.ndarray]:
    """Consecutive row indices in chunks of batch_size, wrapping around a short file."""
    count = max(1, min(MAX_POOL_REQUESTS, rows // batch_size))
    return [np.arange(i * batch_size, (i + 1) * batch_size) % rows for i in range(count)]


def _spread(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most `rows` rows taken evenly across the file (a large holdout is often ordered by time)."""
    if len(frame) <= rows:
        return frame
    return frame.iloc[np.linspace(0, len(frame) - 1, rows).astype(int)].reset_index(drop=True)


def build_pool(entry: MixEntry, models_dir: Path | None = None) -> RequestPool:
    """Read the entry's rows (its `data_file`, else its model's holdout file in `models_dir`) and serialize
    its requests once."""
    models_dir = models_dir or default_models_dir()
    path, config = _source(entry, models_dir)
    frame = read_rows(path, _string_columns(entry, config))
    frame = _spread(frame, min(MAX_POOL_ROWS, MAX_POOL_REQUESTS * entry.batch_size))
    override = entry.model if entry.model and entry.model != entry.call.default_model else None
    label = entry.call.value
    if entry.call is CallKind.OIP_INFER:
        bodies = infer_requests(entry, frame, path, config)
        label = f"oip.infer:{entry.model_name}"
    elif entry.call is CallKind.CREDIT_ASSESS:
        bodies = [m.SerializeToString() for m in applications(frame, path, override)]
    elif entry.call is CallKind.FRAUD_SCORE_BATCH:
        rows = transactions(frame, path, override)
        bodies = [
            scoring_pb2.TransactionBatch(
                transactions=[rows[i] for i in chunk], model=override or ""
            ).SerializeToString()
            for chunk in _row_chunks(len(rows), entry.batch_size)
        ]
    else:
        bodies = [m.SerializeToString() for m in transactions(frame, path, override)]
    if entry.batch_size > 1:
        label = f"{label}[{entry.batch_size}]"
    return RequestPool(
        label=label,
        method_path=METHOD_PATHS[entry.call],
        streaming=entry.call is CallKind.FRAUD_SCORE_STREAM,
        rows_per_request=entry.batch_size,
        bodies=tuple(bodies),
    )
