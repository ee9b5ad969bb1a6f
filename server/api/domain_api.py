"""The domain API's front door: riskserve.v1 FraudScoring (Score, ScoreBatch, ScoreStream) and
CreditScoring (Assess).

Each method reads the model's features from the message by each feature's configured `source`
(`MessageColumns`), calls the scoring core once (ModelRuntime.predict) and converts the Prediction to the
answer. Errors, drain and metrics: server/api/calls.py.

Where a feature's value comes from (config `source:`): a message field (`amount`), a field of the nested
aggregates (`behaviour.txn_count_1h`), the UTC hour of `timestamp` (`derived.utc_hour`), or an entry of the
message's feature maps (`features.<key>` for numbers, `categorical_features.<key>` for strings). Without a
source: the message field of the feature's name if there is one, else the map entry of that name. Map
entries no feature uses are ignored (feature services send supersets).

proto3 has no presence for scalars, so "missing" means: an empty string, a zero or negative `timestamp`,
an absent `behaviour` message, or an absent map key. A numeric field left at 0 is read as 0.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from operator import attrgetter, itemgetter, methodcaller

import grpc
import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from server.api.calls import Calls
from server.api.fraud_answers import FraudBatchAnswer
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.config.errors import ConfigError
from server.config.model_config import ModelConfig, ModelTask
from server.runtime.errors import DrainingError, InvalidInputError, ModelNotFoundError, ScoringError
from server.runtime.features import FeatureSchema, FieldNamer
from server.runtime.model_runtime import ModelRuntime
from server.runtime.prediction import Prediction
from server.runtime.repository import LiveSplit, ModelRepository
from server.served_model import ModelFacts

SECONDS_PER_HOUR = 3600
LEGACY_HOUR_FEATURE = "hour_of_day"  # a fraud feature of this name defaults to derived.utc_hour
NUMBER_MAP, STRING_MAP = "features", "categorical_features"
_STREAM_WINDOW = 256  # streamed transactions scored concurrently (so they can share batches)
# message fields that never hold a feature
_NOT_FEATURES = frozenset({"model", "model_version", NUMBER_MAP, STRING_MAP})


@dataclass(frozen=True)
class DomainMessage:
    """A domain request message: its type, the nested aggregates message (if any), the timestamp and the id
    its answer echoes."""

    descriptor: Descriptor
    nested: str | None  # e.g. "behaviour"
    timestamp: str | None  # field of derived.utc_hour
    ident: str  # e.g. "transaction_id"


TRANSACTION = DomainMessage(scoring_pb2.Transaction.DESCRIPTOR, "behaviour", "timestamp", "transaction_id")
APPLICATION = DomainMessage(scoring_pb2.Application.DESCRIPTOR, None, None, "application_id")


@dataclass(frozen=True)
class FeatureSource:
    """Where one feature's value is read: `kind` field | nested | hour | map; `wire` names it for clients."""

    feature: str
    kind: str
    field: str  # the message field, nested field, timestamp field or map name
    key: str  # the map key ("" otherwise)
    wire: str  # e.g. "amount", "behaviour.txn_count_1h", "timestamp", "features[v14]"


def _is_string(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_STRING


def _scalar_fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {
        name: field
        for name, field in descriptor.fields_by_name.items()
        if name not in _NOT_FEATURES and field.type != FieldDescriptor.TYPE_MESSAGE
    }


def feature_sources(config: ModelConfig, message: DomainMessage) -> tuple[FeatureSource, ...]:
    """Each feature's source in `message`; ConfigError naming the model, feature and source if a source
    does not exist or has the wrong type (checked at startup, before anything is served)."""
    top = _scalar_fields(message.descriptor)
    nested = (
        _scalar_fields(message.descriptor.fields_by_name[message.nested].message_type)
        if message.nested
        else {}
    )
    sources = []
    for feature in config.features:
        source = feature.source
        if source is None:  # default: a field of the same name, else the map entry of that name
            if message.timestamp and config.task is ModelTask.FRAUD and feature.name == LEGACY_HOUR_FEATURE:
                source = "derived.utc_hour"
            elif feature.name in top:
                source = feature.name
            elif feature.name in nested:
                source = f"{message.nested}.{feature.name}"
            else:
                source = f"{STRING_MAP if feature.dtype == 'string' else NUMBER_MAP}.{feature.name}"
        head, _, rest = source.partition(".")
        problem = None
        if source == "derived.utc_hour":
            if message.timestamp is None:
                problem = "has no timestamp to derive the hour from"
            sources.append(FeatureSource(feature.name, "hour", message.timestamp or "", "", "timestamp"))
        elif head in (NUMBER_MAP, STRING_MAP) and rest:
            sources.append(FeatureSource(feature.name, "map", head, rest, f"{head}[{rest}]"))
        elif rest and head == message.nested and rest in nested:
            field = nested[rest]
            sources.append(FeatureSource(feature.name, "nested", rest, "", source))
        elif not rest and head in top:
            field = top[head]
            sources.append(FeatureSource(feature.name, "field", head, "", source))
        else:
            problem = "has no such field"
        if (
            problem is None
            and sources[-1].kind in ("field", "nested")
            and _is_string(field) != (feature.dtype == "string")
        ):
            problem = (
                f"is a {'string' if _is_string(field) else 'number'} field; the feature is {feature.dtype}"
            )
        if problem is not None:
            raise ConfigError(
                f"model {config.name}: feature '{feature.name}' (source {source}): "
                f"riskserve.v1.{message.descriptor.name} {problem}"
            )
    return tuple(sources)


class MessageColumns:
    """Reads one model's features from domain messages as feature columns, with client-facing names.

    Typed fields are read with one attrgetter call per message (about 3x faster than a getattr per field),
    the message's id with them (`columns_and_ids`); map entries by key."""

    def __init__(self, config: ModelConfig, message: DomainMessage) -> None:
        self.sources = feature_sources(config, message)
        self._nested = message.nested
        by_kind = {
            kind: [s for s in self.sources if s.kind == kind] for kind in ("field", "nested", "hour", "map")
        }
        self._fields = tuple(s.feature for s in by_kind["field"])
        # the id last: what columns_and_ids reads in the same call, and a tuple even for a single field
        self._get_fields = attrgetter(*(s.field for s in by_kind["field"]), message.ident)
        self._get_id = attrgetter(message.ident)
        self._nested_features = tuple(s.feature for s in by_kind["nested"])
        nested_fields = [s.field for s in by_kind["nested"]]
        self._get_nested = attrgetter(*nested_fields, nested_fields[0]) if nested_fields else None
        self._has_nested = methodcaller("HasField", message.nested) if message.nested else None
        self._hours = tuple((s.feature, s.field) for s in by_kind["hour"])
        # map name -> (feature, key) pairs: each message's map is copied to a dict once (one C-level call),
        # then read by key, about 5x faster than a protobuf map lookup per feature.
        maps: dict[str, list[tuple[str, str]]] = {}
        for source in by_kind["map"]:
            maps.setdefault(source.field, []).append((source.feature, source.key))
        self._maps = tuple((name, tuple(pairs)) for name, pairs in maps.items())
        self.one_row = _row_reader(self, config)
        wire = {s.feature: s.wire for s in self.sources}
        self.namer = _namer(wire, None)
        self.batch_namer = _namer(wire, "transactions")

    def columns(self, messages: Sequence, namer: FieldNamer) -> dict[str, Sequence]:
        """One column per feature; missing values (see the module doc) are InvalidInputError naming them."""
        if len(messages) == 1:
            columns = self._one_message(messages[0])
            if columns is not None:
                return columns
        return self.columns_and_ids(messages, namer)[0]

    def columns_and_ids(self, messages: Sequence, namer: FieldNamer) -> tuple[dict[str, Sequence], Sequence]:
        """`columns`, and each message's id (e.g. transaction_id) read in the same pass."""
        if not messages:
            raise InvalidInputError("transactions", "empty")
        # Each pass over a repeated field makes a Python object per message again (protobuf keeps none
        # unless held): held in a list, they are made once for all the passes below (~0.6 µs a message).
        messages = list(messages)
        columns: dict[str, Sequence] = {}
        if self._fields:
            *values, ids = zip(*map(self._get_fields, messages), strict=True)
            columns.update(zip(self._fields, values, strict=True))
        else:
            ids = tuple(map(self._get_id, messages))
        if self._get_nested is not None:
            if not all(map(self._has_nested, messages)):
                row = next(i for i, m in enumerate(messages) if not m.HasField(self._nested))
                field = namer(self._nested_features[0], row).rsplit(".", 1)[0]
                raise InvalidInputError(field, f"missing ({self._nested} aggregates are required)")
            nested = map(self._get_nested, map(attrgetter(self._nested), messages))
            columns.update(zip(self._nested_features, zip(*nested, strict=True), strict=False))
        for feature, field in self._hours:
            stamps = np.fromiter(map(attrgetter(field), messages), dtype=np.int64, count=len(messages))
            if (stamps <= 0).any():
                row = int(np.argmax(stamps <= 0))
                raise InvalidInputError(namer(feature, row), "missing (unix seconds, UTC, must be > 0)")
            columns[feature] = (stamps // SECONDS_PER_HOUR) % 24
        for map_name, pairs in self._maps:
            entries = [dict(getattr(m, map_name)) for m in messages]
            for feature, key in pairs:
                column = [entry.get(key) for entry in entries]
                if None in column:
                    row = column.index(None)
                    raise InvalidInputError(namer(feature, row), _missing_entry(messages[row], map_name, key))
                columns[feature] = column
        return columns, ids

    def _one_message(self, message) -> dict[str, Sequence] | None:
        """The unary hot path: one-value columns of plain Python values (the hour as an int, the same number
        the general path computes), or None when a value is missing, for the general path to report."""
        columns: dict[str, Sequence] = {
            feature: (value,) for feature, value in zip(self._fields, self._get_fields(message), strict=False)
        }
        if self._get_nested is not None:
            if not message.HasField(self._nested):
                return None
            values = self._get_nested(getattr(message, self._nested))
            columns.update(
                (feature, (value,)) for feature, value in zip(self._nested_features, values, strict=False)
            )
        for feature, field in self._hours:
            stamp = getattr(message, field)
            if stamp <= 0:
                return None
            columns[feature] = ((stamp // SECONDS_PER_HOUR) % 24,)
        for map_name, pairs in self._maps:
            entries = dict(getattr(message, map_name))
            for feature, key in pairs:
                value = entries.get(key)
                if value is None:
                    return None
                columns[feature] = (value,)
        return columns


class _Arrivals:
    """A stream's messages as they arrive (bounded: the reader waits when `window` are unanswered), handed
    out in groups of those that are already here and share a model (and pinned version)."""

    def __init__(self, window: int) -> None:
        self._queue: asyncio.Queue = asyncio.Queue(window)
        self._window = window
        self._next: object = _NOTHING  # taken from the queue but not in the last group

    async def read(self, request_iterator: AsyncIterator) -> None:
        """Queue each message; end with None, or with the read error (not a cancellation), so the
        answering side ends the stream instead of waiting forever."""
        try:
            async for transaction in request_iterator:
                await self._queue.put(transaction)
        except Exception as exc:
            await self._queue.put(exc)
            return
        await self._queue.put(None)

    async def group(self) -> list | None:
        """The next messages (at least one, waiting for it), or None at the end of the stream."""
        item, self._next = (await self._queue.get() if self._next is _NOTHING else self._next), _NOTHING
        if item is None:
            return None
        if isinstance(item, Exception):
            raise item
        group, model, version = [item], item.model, item.model_version
        while len(group) < self._window and not self._queue.empty():
            item = self._queue.get_nowait()
            if (
                item is None
                or isinstance(item, Exception)
                or (item.model, item.model_version) != (model, version)
            ):
                self._next = item
                break
            group.append(item)
        return group


_NOTHING = object()


def _row_reader(columns: "MessageColumns", config: ModelConfig):
    """`message -> (numbers, strings)` in the schema's numeric and categorical orders (what
    FeatureSchema.one_row_feeds takes), or None when a value is missing; None instead of a reader when the
    model's features do not suit it (fewer than two of a kind, map sources)."""
    schema = FeatureSchema.from_config(config)
    numeric = [name for name, _, _, _ in schema.numeric]
    categorical = [name for name, _ in schema.categorical]
    if columns._maps or len(numeric) < 2 or len(categorical) == 1:
        return None
    order = [*columns._fields, None]  # the id, attrgetter's last value
    nested_getter, nested = columns._get_nested, columns._nested
    if nested_getter is not None:
        order += [*columns._nested_features, None]
    order += [feature for feature, _ in columns._hours]
    pick_numbers = itemgetter(*(order.index(n) for n in numeric))
    pick_strings = itemgetter(*(order.index(n) for n in categorical)) if categorical else lambda _: ()
    get_fields, hours = columns._get_fields, columns._hours

    def read(message) -> tuple[tuple, tuple] | None:
        values = get_fields(message)
        if nested_getter is not None:
            if not message.HasField(nested):
                return None
            values += nested_getter(getattr(message, nested))
        for _, field in hours:
            stamp = getattr(message, field)
            if stamp <= 0:
                return None
            values += ((stamp // SECONDS_PER_HOUR) % 24,)
        return pick_numbers(values), pick_strings(values)

    return read


def _missing_entry(message, map_name: str, key: str) -> str:
    other = STRING_MAP if map_name == NUMBER_MAP else NUMBER_MAP
    if key in getattr(message, other):
        kind = "a string" if other == STRING_MAP else "a number"
        return f"missing; {other}[{key}] holds {kind}, but the model reads this feature from {map_name}"
    return "missing"


def _namer(wire: dict[str, str], prefix: str | None) -> FieldNamer:
    """Names like `transactions[3].behaviour.txn_count_1h` (batch) or `features[v14]` (single message)."""

    def name(feature: str, row: int | None) -> str:
        field = wire.get(feature, feature)
        if prefix is None or row is None:
            return field
        return f"{prefix}[{row}].{field}"

    return name


def check_domain_sources(config: ModelConfig) -> None:
    """Fail at startup if a fraud or credit model's feature has no source in its domain message."""
    if config.task is ModelTask.FRAUD:
        feature_sources(config, TRANSACTION)
    elif config.task is ModelTask.CREDIT:
        feature_sources(config, APPLICATION)


def split_decider(split: LiveSplit, identity: str, champion: ModelRuntime, call) -> ModelRuntime:
    """The runtime deciding a call for card or applicant `identity` under the champion's live split: the
    challenger for ids whose hash is below the split's cutoff while it serves (the call is then recorded
    under its name), else the champion. No id: the champion. The id is hashed, never kept or logged."""
    if not identity:
        return champion
    digest = int.from_bytes(blake2b(identity.encode(), digest_size=8).digest(), "big")
    challenger = split.challenger.serving
    if digest >= split.cutoff or challenger is None:
        return champion
    call.relabel(split.challenger.label)
    return challenger


def model_ref(facts: ModelFacts) -> scoring_pb2.ModelRef:
    """The ModelRef every domain answer carries: which model, version and precision scored it."""
    return scoring_pb2.ModelRef(
        name=facts.name, version=facts.version, precision=facts.precision, gate_verdict=facts.gate_verdict
    )


class _FraudModel:
    """Per served runtime, built once: its feature reader, the answer template holding its ModelRef and the
    serializer of its ScoreBatch answers."""

    __slots__ = ("answer", "batch_answer", "reader", "runtime")

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.reader = MessageColumns(runtime.config, TRANSACTION)
        self.answer = scoring_pb2.FraudScore(model=model_ref(runtime.facts))  # copied into every answer
        self.batch_answer = FraudBatchAnswer(self.answer.model)


def fraud_scores(
    transactions: Sequence[scoring_pb2.Transaction],
    prediction: Prediction,
    template: scoring_pb2.FraudScore,
    latency_us: int,
    into=None,
) -> Sequence[scoring_pb2.FraudScore]:
    """One FraudScore per transaction: a copy of the model's template (its ModelRef) plus the row's fields,
    about 3x cheaper than passing the ModelRef to the constructor. `into`: a repeated FraudScore field to
    add them to in place (no copy of each answer into the batch's message afterwards)."""
    answers = scoring_pb2.FraudScoreBatch().scores if into is None else into
    add = answers.add
    for t, p, r, d in zip(
        transactions, prediction.probabilities, prediction.scores, prediction.decisions, strict=True
    ):
        answer = add()
        answer.CopyFrom(template)
        answer.transaction_id = t.transaction_id
        answer.probability = p
        answer.risk_score = r
        answer.decision = d
        answer.server_latency_us = latency_us
    return answers


def _column_answer(
    ids: Sequence[str], prediction: Prediction, served: _FraudModel, call
) -> scoring_pb2.FraudScoreBatch:
    """ScoreBatch with answer_layout COLUMNS: the scores as parallel packed arrays, each set in one call."""
    answer = scoring_pb2.FraudScoreBatch(
        transaction_ids=ids,
        probabilities=prediction.probabilities,
        risk_scores=prediction.scores,
        decisions=prediction.decisions,
        model=served.answer.model,
    )
    answer.server_latency_us = call.latency_us()
    return answer


def _row_answer(
    transactions: Sequence[scoring_pb2.Transaction],
    ids: Sequence[str],
    prediction: Prediction,
    served: _FraudModel,
    latency_us: int,
) -> bytes | scoring_pb2.FraudScoreBatch:
    """ScoreBatch's default answer, one FraudScore per transaction: serialized straight from the columns
    (server/api/fraud_answers.py), or built as messages when the serializer leaves it to them."""
    serialized = served.batch_answer.serialize(
        ids, prediction.probabilities, prediction.scores, prediction.decisions, latency_us
    )
    if serialized is not None:
        return serialized
    answer = scoring_pb2.FraudScoreBatch()
    fraud_scores(transactions, prediction, served.answer, latency_us, answer.scores)
    return answer


class FraudScoringServicer(scoring_pb2_grpc.FraudScoringServicer):
    def __init__(self, repository: ModelRepository, calls: Calls) -> None:
        self.repository = repository
        self._routes = repository.routes[ModelTask.FRAUD]
        self.calls = calls
        self._models: dict[ModelRuntime, _FraudModel] = {}

    def _model(self, runtime: ModelRuntime) -> "_FraudModel":
        """The runtime's per-model constants, by runtime (a reloaded model is another runtime: the entry of
        the version it replaced goes, so reloads do not pile up sessions here)."""
        cached = self._models.get(runtime)
        if cached is None:
            for replaced in [r for r in self._models if r.name == runtime.name]:
                del self._models[replaced]
            cached = self._models[runtime] = _FraudModel(runtime)
        return cached

    async def _score(
        self,
        transactions: Sequence[scoring_pb2.Transaction],
        runtime: ModelRuntime,
        batch: bool,
        call,
    ) -> Sequence[scoring_pb2.FraudScore]:
        served = self._models.get(runtime) or self._model(runtime)
        reader = served.reader
        namer = reader.batch_namer if batch else reader.namer
        if not batch and reader.one_row is not None:  # unary hot path: values straight into tensors
            row = reader.one_row(transactions[0])
            feeds = None if row is None else runtime.schema.one_row_feeds(*row)
            if feeds is not None:
                prediction = call.prediction = await runtime.predict({}, 1, namer, call.deadline, feeds=feeds)
                latency_us = int((time.perf_counter() - call.started) * 1e6)
                return fraud_scores(transactions, prediction, served.answer, latency_us)
        columns = reader.columns(transactions, namer)
        prediction = call.prediction = await runtime.predict(columns, len(transactions), namer, call.deadline)
        return fraud_scores(transactions, prediction, served.answer, call.latency_us())

    async def Score(self, request: scoring_pb2.Transaction, context: grpc.aio.ServicerContext):
        slot = self._routes.get(request.model) or self.repository.slot(request.model, ModelTask.FRAUD)
        async with self.calls.unary(context, slot.label, "Score") as call:
            runtime = slot.serving or slot.ready()
            if request.model_version:
                if request.model_version != runtime.facts.version:
                    raise slot.version_error(request.model_version)
            elif slot.split is not None:  # a pinned version is the champion's: no split
                runtime = split_decider(slot.split, request.card_id, runtime, call)
            return (await self._score([request], runtime, False, call))[0]

    async def ScoreBatch(
        self, request: scoring_pb2.TransactionBatch | bytes, context: grpc.aio.ServicerContext
    ):
        """Registered with the request unparsed (`add_fraud_scoring`): the door is checked before a large
        batch is parsed, so refusing the excess costs little more than the refusal itself."""
        raw = request if isinstance(request, bytes) else None
        label = self.repository.slot("", ModelTask.FRAUD).label if raw is not None else None
        slot = None if raw is not None else self.repository.slot(request.model, ModelTask.FRAUD)
        async with self.calls.unary(context, label or slot.label, "ScoreBatch", batch=True) as call:
            if raw is not None:
                await asyncio.sleep(0)  # a loop turn before the long parse: gRPC accepts the next call
                try:
                    request = scoring_pb2.TransactionBatch.FromString(raw)
                except DecodeError as exc:
                    problem = f"not a valid riskserve.v1.TransactionBatch message ({len(raw)} bytes)"
                    raise InvalidInputError("request", problem) from exc
                slot = self.repository.slot(request.model, ModelTask.FRAUD)
                call.relabel(slot.label)
            runtime = slot.ready()
            if request.model_version and request.model_version != runtime.facts.version:
                raise slot.version_error(request.model_version)
            rows = len(request.transactions)
            if rows == 0:
                raise InvalidInputError("transactions", "empty batch")
            if rows > runtime.max_request_rows:
                raise InvalidInputError(
                    "transactions", f"{rows} transactions, at most {runtime.max_request_rows}"
                )
            transactions = request.transactions
            served = self._models.get(runtime) or self._model(runtime)
            reader = served.reader
            columns, ids = reader.columns_and_ids(transactions, reader.batch_namer)
            prediction = call.prediction = await runtime.predict(
                columns, rows, reader.batch_namer, call.deadline
            )
            if request.answer_layout == scoring_pb2.COLUMNS:
                return _column_answer(ids, prediction, served, call)
            return _row_answer(transactions, ids, prediction, served, call.latency_us())

    async def ScoreStream(
        self, request_iterator: AsyncIterator[scoring_pb2.Transaction], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scoring_pb2.FraudScore]:
        """Answers in arrival order. The transactions that arrived while the previous ones were scored are
        scored together, as one batch (up to _STREAM_WINDOW): a busy stream costs per batch, not per message.
        A bad transaction ends the stream with INVALID_ARGUMENT naming it (by position and id), after the
        answers to those before it; once a drain refuses new calls, the stream ends with UNAVAILABLE so the
        client reconnects elsewhere."""
        label = self.repository.slot("", ModelTask.FRAUD).label
        async with self.calls.stream(context, label):
            arrivals = _Arrivals(_STREAM_WINDOW)
            reader = asyncio.create_task(arrivals.read(request_iterator))
            try:
                position = 0
                while (group := await arrivals.group()) is not None:
                    answers, error = await self._score_group(group, position, context)
                    for answer in answers:
                        yield answer
                    if error is not None:
                        raise error  # ends the stream with its status (calls.stream)
                    position += len(group)
            finally:
                reader.cancel()

    async def _score_group(
        self, group: list, position: int, context
    ) -> tuple[list[scoring_pb2.FraudScore], ScoringError | None]:
        """Score messages that arrived together (one model) as one batch; if one of them is bad, message by
        message instead, so the answers before it go out and its error names it."""
        if len(group) > 1:
            slot = self.repository.slot(group[0].model, ModelTask.FRAUD)
            try:
                async with self.calls.message(context, slot.label, "ScoreStream") as call:
                    if self.calls.drain.refusing:
                        raise DrainingError("server is shutting down; reconnect to another instance")
                    runtime = slot.ready()
                    if group[0].model_version and group[0].model_version != runtime.facts.version:
                        raise slot.version_error(group[0].model_version)
                    return await self._score(group, runtime, True, call), None
            except (InvalidInputError, ModelNotFoundError):
                pass  # found again below, message by message, with its position
        answers = []
        for offset, transaction in enumerate(group):
            try:
                answers.append(await self._score_streamed(transaction, position + offset, context))
            except ScoringError as exc:
                return answers, exc
        return answers, None

    async def _score_streamed(self, transaction, position: int, context) -> scoring_pb2.FraudScore:
        slot = self._routes.get(transaction.model) or self.repository.slot(transaction.model, ModelTask.FRAUD)
        async with self.calls.message(context, slot.label, "ScoreStream") as call:
            if self.calls.drain.refusing:
                raise DrainingError("server is shutting down; reconnect to another instance")
            runtime = slot.serving or slot.ready()
            if transaction.model_version and transaction.model_version != runtime.facts.version:
                raise slot.version_error(transaction.model_version)
            try:
                return (await self._score([transaction], runtime, False, call))[0]
            except InvalidInputError as exc:
                ident = (
                    f" (transaction_id '{transaction.transaction_id}')" if transaction.transaction_id else ""
                )
                raise InvalidInputError(
                    f"stream message {position}{ident}: {exc.field}", exc.problem
                ) from exc


def _batch_answer_bytes(answer: scoring_pb2.FraudScoreBatch | bytes) -> bytes:
    """ScoreBatch's response serializer: the per-transaction answer comes serialized already
    (server/api/fraud_answers.py), the others as messages."""
    return answer if isinstance(answer, bytes) else answer.SerializeToString()


def add_fraud_scoring(servicer: FraudScoringServicer, server: grpc.aio.Server) -> None:
    """`scoring_pb2_grpc.add_FraudScoringServicer_to_server`, with ScoreBatch's request handed over as
    bytes (its handler parses it once admitted)."""
    messages = scoring_pb2
    handlers = {
        "Score": grpc.unary_unary_rpc_method_handler(
            servicer.Score,
            request_deserializer=messages.Transaction.FromString,
            response_serializer=messages.FraudScore.SerializeToString,
        ),
        "ScoreBatch": grpc.unary_unary_rpc_method_handler(
            servicer.ScoreBatch,
            request_deserializer=None,  # bytes
            response_serializer=_batch_answer_bytes,
        ),
        "ScoreStream": grpc.stream_stream_rpc_method_handler(
            servicer.ScoreStream,
            request_deserializer=messages.Transaction.FromString,
            response_serializer=messages.FraudScore.SerializeToString,
        ),
    }
    service = "riskserve.v1.FraudScoring"
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


class CreditScoringServicer(scoring_pb2_grpc.CreditScoringServicer):
    def __init__(self, repository: ModelRepository, calls: Calls) -> None:
        self.repository = repository
        self._routes = repository.routes[ModelTask.CREDIT]
        self.calls = calls
        self._readers: dict[str, tuple[ModelRuntime, MessageColumns]] = {}

    def _reader(self, runtime: ModelRuntime) -> "MessageColumns":
        cached = self._readers.get(runtime.name)
        if cached is None or cached[0] is not runtime:
            cached = self._readers[runtime.name] = (runtime, MessageColumns(runtime.config, APPLICATION))
        return cached[1]

    async def Assess(self, request: scoring_pb2.Application, context: grpc.aio.ServicerContext):
        slot = self._routes.get(request.model) or self.repository.slot(request.model, ModelTask.CREDIT)
        async with self.calls.unary(context, slot.label, "Assess") as call:
            runtime = slot.serving or slot.ready()
            if request.model_version:
                if request.model_version != runtime.facts.version:
                    raise slot.version_error(request.model_version)
            elif slot.split is not None:  # a pinned version is the champion's: no split
                runtime = split_decider(
                    slot.split, request.applicant_id or request.application_id, runtime, call
                )
            reader = self._reader(runtime)
            prediction = call.prediction = await runtime.predict(
                reader.columns([request], reader.namer), 1, reader.namer, call.deadline, explain=True
            )
            return scoring_pb2.CreditAssessment(
                application_id=request.application_id,
                probability_of_default=prediction.probabilities[0],
                score=prediction.scores[0],
                decision=prediction.decisions[0],
                reasons=[
                    scoring_pb2.ReasonCode(
                        code=r.code, feature=r.feature, description=r.description, contribution=r.contribution
                    )
                    for r in prediction.reasons or ()
                ],
                model=model_ref(runtime.facts),
                server_latency_us=call.latency_us(),
            )
