"""The domain API's fraud door: riskserve.v1 FraudScoring (Score, ScoreBatch, ScoreStream).

Each method converts Transactions to named feature columns (client-facing field names), calls the scoring
core once (ModelRuntime.predict) and converts the Prediction to FraudScore answers. Errors, drain and
metrics: server/api/calls.py.

proto3 has no presence for scalars, so "missing" means: an empty string, a zero or negative `timestamp`,
or an absent `behaviour` message. A numeric field left at 0 is read as 0 (a valid count, flag or amount).
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from functools import lru_cache
from operator import attrgetter

import grpc
import numpy as np

from server.api.calls import Calls
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.api.model_ref import model_ref
from server.config.errors import ConfigError
from server.config.model_config import ModelConfig, ModelTask
from server.runtime.errors import DrainingError, InvalidInputError
from server.runtime.features import FieldNamer
from server.runtime.model_runtime import ModelRuntime
from server.runtime.prediction import Prediction
from server.runtime.repository import ModelRepository

SECONDS_PER_HOUR = 3600
_TRANSACTION_FIELDS = frozenset(scoring_pb2.Transaction.DESCRIPTOR.fields_by_name)
_BEHAVIOUR_FIELDS = frozenset(scoring_pb2.BehaviourAggregates.DESCRIPTOR.fields_by_name)
DERIVED_HOUR = "hour_of_day"  # from `timestamp`, the UTC hour 0-23


def check_transaction_sources(config: ModelConfig) -> None:
    """Fail at startup if a fraud model needs an input no Transaction field provides."""
    for name in config.input_names:
        if name != DERIVED_HOUR and name not in _TRANSACTION_FIELDS and name not in _BEHAVIOUR_FIELDS:
            raise ConfigError(
                f"model {config.name}: input '{name}' has no source in riskserve.v1.Transaction"
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


@lru_cache(maxsize=16)
def _transaction_reader(input_names: tuple[str, ...]) -> tuple[Callable, tuple[str, ...]]:
    """A function reading every needed field of one Transaction in two C-level calls, and the field order.

    attrgetter over all fields at once is about 3x faster than one getattr per field and row."""
    top = [n for n in input_names if n in _TRANSACTION_FIELDS]
    if DERIVED_HOUR in input_names:
        top.append("timestamp")
    behaviour = [n for n in input_names if n in _BEHAVIOUR_FIELDS]
    get_top = attrgetter(*top, "transaction_id")  # a dummy last field: attrgetter always returns a tuple
    get_behaviour = attrgetter(*behaviour, "txn_count_1h")

    def read(transaction: scoring_pb2.Transaction) -> tuple:
        return get_top(transaction)[:-1] + get_behaviour(transaction.behaviour)[:-1]

    return read, (*top, *behaviour)


def transaction_columns(
    transactions: Sequence[scoring_pb2.Transaction], input_names: Sequence[str], namer: FieldNamer
) -> dict[str, Sequence | np.ndarray]:
    """One column per model input; checks presence of `timestamp` and `behaviour` (see module doc)."""
    if len(transactions) == 1:
        columns = _one_transaction_columns(transactions[0], tuple(input_names))
        if columns is not None:
            return columns
    if not all(t.HasField("behaviour") for t in transactions):
        row = next(i for i, t in enumerate(transactions) if not t.HasField("behaviour"))
        field = namer("txn_count_1h", row).rsplit(".", 1)[0]
        raise InvalidInputError(field, "missing (behaviour aggregates are required)")
    if not transactions:
        raise InvalidInputError("transactions", "empty")
    read, fields = _transaction_reader(tuple(input_names))
    values_by_field = zip(*map(read, transactions), strict=True)  # rows -> one tuple per field
    columns: dict[str, Sequence | np.ndarray] = dict(zip(fields, values_by_field, strict=True))
    if DERIVED_HOUR in input_names:
        stamps = np.asarray(columns.pop("timestamp"), dtype=np.int64)
        if (stamps <= 0).any():
            row = int(np.argmax(stamps <= 0))
            raise InvalidInputError(namer(DERIVED_HOUR, row), "missing (unix seconds, UTC, must be > 0)")
        columns[DERIVED_HOUR] = (stamps // SECONDS_PER_HOUR) % 24
    return columns


def _one_transaction_columns(
    transaction: scoring_pb2.Transaction, input_names: tuple[str, ...]
) -> dict[str, Sequence] | None:
    """The unary hot path: one-value columns of plain Python values (the hour as an int, the same number
    the general path computes), or None when a field is missing, for the general path to report."""
    if not transaction.HasField("behaviour"):
        return None
    read, fields = _transaction_reader(input_names)
    columns: dict[str, Sequence] = {
        field: (value,) for field, value in zip(fields, read(transaction), strict=True)
    }
    if DERIVED_HOUR in input_names:
        (stamp,) = columns.pop("timestamp")
        if stamp <= 0:
            return None
        columns[DERIVED_HOUR] = ((stamp // SECONDS_PER_HOUR) % 24,)
    return columns


_STREAM_WINDOW = 256  # streamed transactions scored concurrently (so they can share batches)
_UNARY_NAMER = transaction_namer(None)
_BATCH_NAMER = transaction_namer("transactions")


class _FraudModel:
    """Per served runtime, built once: its input names and the answer template holding its ModelRef."""

    __slots__ = ("answer", "input_names", "runtime")

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.input_names = tuple(runtime.config.input_names)
        self.answer = scoring_pb2.FraudScore(model=model_ref(runtime.facts))  # copied into every answer


def fraud_scores(
    transactions: Sequence[scoring_pb2.Transaction],
    prediction: Prediction,
    template: scoring_pb2.FraudScore,
    latency_us: int,
) -> list[scoring_pb2.FraudScore]:
    """One FraudScore per transaction: a copy of the model's template (its ModelRef) plus the row's fields,
    about 3x cheaper than passing the ModelRef to the constructor."""
    answers = []
    for t, p, r, d in zip(
        transactions, prediction.probabilities, prediction.scores, prediction.decisions, strict=True
    ):
        answer = scoring_pb2.FraudScore()
        answer.CopyFrom(template)
        answer.transaction_id = t.transaction_id
        answer.probability = p
        answer.risk_score = r
        answer.decision = d
        answer.server_latency_us = latency_us
        answers.append(answer)
    return answers


class FraudScoringServicer(scoring_pb2_grpc.FraudScoringServicer):
    def __init__(self, repository: ModelRepository, calls: Calls) -> None:
        self.repository = repository
        self.calls = calls
        self._models: dict[str, _FraudModel] = {}

    def _model(self, runtime: ModelRuntime) -> _FraudModel:
        """The runtime's per-model constants (rebuilt if the repository now serves another runtime)."""
        cached = self._models.get(runtime.name)
        if cached is None or cached.runtime is not runtime:
            cached = self._models[runtime.name] = _FraudModel(runtime)
        return cached

    async def _score(
        self, transactions: Sequence[scoring_pb2.Transaction], runtime: ModelRuntime, namer: FieldNamer, call
    ) -> list[scoring_pb2.FraudScore]:
        served = self._model(runtime)
        columns = transaction_columns(transactions, served.input_names, namer)
        prediction = call.prediction = await runtime.predict(columns, len(transactions), namer, call.deadline)
        return fraud_scores(transactions, prediction, served.answer, call.latency_us())

    async def Score(self, request: scoring_pb2.Transaction, context: grpc.aio.ServicerContext):
        slot = self.repository.slot(request.model, ModelTask.FRAUD)
        async with self.calls.unary(context, slot.label, "Score") as call:
            return (await self._score([request], slot.ready(), _UNARY_NAMER, call))[0]

    async def ScoreBatch(self, request: scoring_pb2.TransactionBatch, context: grpc.aio.ServicerContext):
        slot = self.repository.slot(request.model, ModelTask.FRAUD)
        async with self.calls.unary(context, slot.label, "ScoreBatch") as call:
            runtime = slot.ready()
            rows = len(request.transactions)
            if rows == 0:
                raise InvalidInputError("transactions", "empty batch")
            if rows > runtime.max_request_rows:
                raise InvalidInputError(
                    "transactions", f"{rows} transactions, at most {runtime.max_request_rows}"
                )
            scores = await self._score(request.transactions, runtime, _BATCH_NAMER, call)
            return scoring_pb2.FraudScoreBatch(scores=scores)

    async def ScoreStream(
        self, request_iterator: AsyncIterator[scoring_pb2.Transaction], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scoring_pb2.FraudScore]:
        """Answers in arrival order; up to _STREAM_WINDOW transactions are scored concurrently. A bad
        transaction ends the stream with INVALID_ARGUMENT naming it (by position and id); once a drain
        refuses new calls, the stream ends with UNAVAILABLE so the client reconnects elsewhere."""
        async with self.calls.stream(context):
            pending: asyncio.Queue = asyncio.Queue(_STREAM_WINDOW)
            reader = asyncio.create_task(self._read_stream(request_iterator, context, pending))
            try:
                while (task := await pending.get()) is not None:
                    yield await task  # its error ends the stream with its status (calls.stream)
            finally:
                reader.cancel()
                while not pending.empty():
                    task = pending.get_nowait()
                    if task is not None:
                        task.cancel()

    async def _read_stream(self, request_iterator, context, pending: asyncio.Queue) -> None:
        """Start scoring each message as it arrives; end with None, or with the read error as a failed
        future so the answering side ends the stream instead of waiting forever."""
        position = 0
        try:
            async for transaction in request_iterator:
                await pending.put(asyncio.create_task(self._score_streamed(transaction, position, context)))
                position += 1
        except Exception as exc:  # the request stream broke (not a cancellation): end the answers too
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            await pending.put(failed)
            return
        await pending.put(None)

    async def _score_streamed(self, transaction, position: int, context) -> scoring_pb2.FraudScore:
        slot = self.repository.slot(transaction.model, ModelTask.FRAUD)
        async with self.calls.message(context, slot.label, "ScoreStream") as call:
            if self.calls.drain.refusing:
                raise DrainingError("server is shutting down; reconnect to another instance")
            try:
                return (await self._score([transaction], slot.ready(), _UNARY_NAMER, call))[0]
            except InvalidInputError as exc:
                ident = (
                    f" (transaction_id '{transaction.transaction_id}')" if transaction.transaction_id else ""
                )
                raise InvalidInputError(
                    f"stream message {position}{ident}: {exc.field}", exc.problem
                ) from exc
