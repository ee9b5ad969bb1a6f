"""Scenario 2: a barrage of requests each corrupted in one way, interleaved with good ones.

Every bad request must be refused with its documented status and a message that starts with the field;
no bad request may return a score; every good one must be answered; the server must stay up.
"""

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.reliability.payloads import (
    ASSESS,
    MODEL_INFER,
    SCORE,
    SCORE_BATCH,
    holdout_applications,
    holdout_transactions,
    infer_request,
    unary,
)
from benchmarks.reliability.process_stats import rss_kb
from benchmarks.server_process import RiskServe
from server.api.gen.riskserve.v1 import scoring_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
CONCURRENCY = 32
BUSY_RETRIES = 20
MAX_REQUEST_ROWS = 4096  # the server's default max_request_rows


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    body: bytes
    code: grpc.StatusCode  # expected status (OK for a good request)
    field: str  # the message must start with f"{field}:"
    rows: int = 1  # scores a good request must return


def _txn(t: scoring_pb2.Transaction, **fields) -> scoring_pb2.Transaction:
    bad = scoring_pb2.Transaction()
    bad.CopyFrom(t)
    for name, value in fields.items():
        if name.startswith("behaviour."):
            setattr(bad.behaviour, name.split(".", 1)[1], value)
        else:
            setattr(bad, name, value)
    return bad


def _no_behaviour(t: scoring_pb2.Transaction) -> scoring_pb2.Transaction:
    bad = _txn(t)
    bad.ClearField("behaviour")
    return bad


SCORE_CORRUPTIONS: dict[str, tuple[Callable, str]] = {
    "amount NaN": (lambda t: _txn(t, amount=math.nan), "amount"),
    "amount +inf": (lambda t: _txn(t, amount=math.inf), "amount"),
    "amount -inf": (lambda t: _txn(t, amount=-math.inf), "amount"),
    "amount negative": (lambda t: _txn(t, amount=-12.5), "amount"),
    "currency unknown": (lambda t: _txn(t, currency="XYZ"), "currency"),
    "currency missing": (lambda t: _txn(t, currency=""), "currency"),
    "card_country unknown": (lambda t: _txn(t, card_country="ZZ"), "card_country"),
    "merchant_country missing": (lambda t: _txn(t, merchant_country=""), "merchant_country"),
    "mcc unknown": (lambda t: _txn(t, mcc="0000"), "mcc"),
    "channel unknown": (lambda t: _txn(t, channel="telepathy"), "channel"),
    "entry_mode missing": (lambda t: _txn(t, entry_mode=""), "entry_mode"),
    "timestamp missing": (lambda t: _txn(t, timestamp=0), "timestamp"),
    "behaviour missing": (_no_behaviour, "behaviour"),
    "behaviour NaN": (lambda t: _txn(t, **{"behaviour.txn_count_1h": math.nan}), "behaviour.txn_count_1h"),
    "behaviour negative sum": (
        lambda t: _txn(t, **{"behaviour.amount_sum_24h": -1.0}),
        "behaviour.amount_sum_24h",
    ),
    "distance out of range": (
        lambda t: _txn(t, **{"behaviour.distance_from_home_km": 1e6}),
        "behaviour.distance_from_home_km",
    ),
}


def _tensor(request, name: str):
    return next(t for t in request.inputs if t.name == name)


def _oip_cases(rows: list[scoring_pb2.Transaction]) -> list[tuple[str, Any, str]]:
    """(name, spoiled ModelInferRequest, field) for the Open Inference Protocol."""
    cases = []

    def typed():
        return infer_request(rows, raw=False)

    r = typed()
    r.inputs.add(name="amount_usd", datatype="FP32", shape=[len(rows), 1]).contents.fp32_contents.extend(
        [1.0] * len(rows)
    )
    cases.append(("oip unknown tensor name", r, "inputs[amount_usd]"))
    r = typed()
    _tensor(r, "amount").datatype = "FP64"
    cases.append(("oip wrong dtype", r, "inputs[amount].datatype"))
    r = typed()
    del _tensor(r, "amount").shape[:]
    _tensor(r, "amount").shape.extend([len(rows), 2])
    cases.append(("oip wrong shape", r, "inputs[amount].shape"))
    r = typed()
    kept = [t for t in r.inputs if t.name != "channel"]
    del r.inputs[:]
    r.inputs.extend(kept)
    cases.append(("oip missing tensor", r, "inputs[channel]"))
    r = typed()
    _tensor(r, "currency").contents.bytes_contents[0] = b"XYZ"
    cases.append(("oip unknown category", r, "inputs[currency][0]"))
    r = typed()
    _tensor(r, "txn_count_24h").contents.fp32_contents[len(rows) - 1] = math.nan
    cases.append(("oip NaN value", r, f"inputs[txn_count_24h][{len(rows) - 1}]"))
    r = typed()
    r.outputs.add(name="logits")
    cases.append(("oip unknown output", r, "outputs[logits]"))
    r = infer_request(rows, raw=True)
    index = [t.name for t in r.inputs].index("amount")
    r.raw_input_contents[index] = r.raw_input_contents[index][:-1]
    cases.append(("oip raw bytes of wrong length", r, "inputs[amount]"))
    r = infer_request(rows, raw=True)
    index = [t.name for t in r.inputs].index("mcc")
    r.raw_input_contents[index] = b"\xff\xff\x00\x00" + r.raw_input_contents[index][4:]
    cases.append(("oip malformed BYTES", r, "inputs[mcc]"))
    return cases


def build_cases(count: int, seed: int) -> tuple[list[Case], dict[str, int]]:
    """About half good requests, half corrupted, shuffled (seeded). Returns the cases and a kind count."""
    rng = random.Random(seed)
    pool = holdout_transactions(2000, seed)
    apps = holdout_applications(200)
    oversized = scoring_pb2.TransactionBatch(
        transactions=pool[:1] * (MAX_REQUEST_ROWS + 1)
    ).SerializeToString()
    oversized_oip = infer_request(pool[:1] * (MAX_REQUEST_ROWS + 1), raw=True).SerializeToString()
    cases: list[Case] = []
    for i in range(count):
        t = rng.choice(pool)
        if i % 2 == 0:  # good: Score, ScoreBatch, ModelInfer, Assess
            kind = i // 2 % 4
            if kind == 0:
                cases.append(Case("good Score", SCORE, t.SerializeToString(), grpc.StatusCode.OK, ""))
            elif kind == 1:
                rows = rng.sample(pool, rng.randint(2, 64))
                body = scoring_pb2.TransactionBatch(transactions=rows).SerializeToString()
                cases.append(Case("good ScoreBatch", SCORE_BATCH, body, grpc.StatusCode.OK, "", len(rows)))
            elif kind == 2:
                rows = rng.sample(pool, rng.randint(1, 8))
                body = infer_request(rows, raw=rng.random() < 0.5).SerializeToString()
                cases.append(Case("good ModelInfer", MODEL_INFER, body, grpc.StatusCode.OK, "", len(rows)))
            else:
                body = rng.choice(apps).SerializeToString()
                cases.append(Case("good Assess", ASSESS, body, grpc.StatusCode.OK, ""))
            continue
        kind = rng.randrange(8)
        if kind < 4:
            name, (spoil, field) = rng.choice(list(SCORE_CORRUPTIONS.items()))
            cases.append(Case(f"Score: {name}", SCORE, spoil(t).SerializeToString(), INVALID, field))
        elif kind == 4:
            rows = rng.sample(pool, rng.randint(2, 64))
            at = rng.randrange(len(rows))
            name, (spoil, field) = rng.choice(list(SCORE_CORRUPTIONS.items()))
            rows[at] = spoil(rows[at])
            body = scoring_pb2.TransactionBatch(transactions=rows).SerializeToString()
            cases.append(
                Case(f"ScoreBatch row: {name}", SCORE_BATCH, body, INVALID, f"transactions[{at}].{field}")
            )
        elif kind == 5:
            which = rng.randrange(4)
            if which == 0:
                cases.append(
                    Case("ScoreBatch oversized (4097)", SCORE_BATCH, oversized, INVALID, "transactions")
                )
            elif which == 1:
                cases.append(Case("ScoreBatch empty", SCORE_BATCH, b"", INVALID, "transactions"))
            elif which == 2:
                body = oversized_oip
                cases.append(
                    Case("oip oversized (4097 rows)", MODEL_INFER, body, INVALID, "inputs[amount].shape")
                )
            else:
                body = _txn(t, model="no-such-model").SerializeToString()
                cases.append(Case("Score: unknown model", SCORE, body, grpc.StatusCode.NOT_FOUND, ""))
        elif kind == 6:
            name, request, field = rng.choice(_oip_cases(rng.sample(pool, rng.randint(1, 8))))
            cases.append(Case(name, MODEL_INFER, request.SerializeToString(), INVALID, field))
        else:
            app = scoring_pb2.Application()
            app.CopyFrom(rng.choice(apps))
            name, field, value = rng.choice(
                [
                    ("Assess: income negative", "annual_income", -1.0),
                    ("Assess: DTI NaN", "debt_to_income", math.nan),
                    ("Assess: purpose unknown", "purpose", "yacht"),
                    ("Assess: home_ownership missing", "home_ownership", ""),
                ]
            )
            setattr(app, field, value)
            cases.append(Case(name, ASSESS, app.SerializeToString(), INVALID, field))
    return cases, dict(Counter(c.name for c in cases))


async def _call(call, body: bytes, tally: Counter) -> tuple[Any, grpc.StatusCode, str]:
    """One call; a "server busy" refusal (the server's concurrency limits) is retried after a pause, as
    its message asks, so the barrage tests validation rather than admission."""
    for attempt in range(BUSY_RETRIES + 1):
        try:
            return await call(body, timeout=10), grpc.StatusCode.OK, ""
        except grpc.aio.AioRpcError as error:
            code, details = error.code(), error.details() or ""
        if code is not grpc.StatusCode.RESOURCE_EXHAUSTED or attempt == BUSY_RETRIES:
            return None, code, details
        tally["busy_retries"] += 1
        await asyncio.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


def _answered_rows(method: str, answer) -> int:
    if method == SCORE_BATCH:
        return len(answer.scores)
    if method == MODEL_INFER:
        return int(answer.outputs[0].shape[0]) if answer.outputs else 0
    return 1


async def run(server: RiskServe, count: int, seed: int) -> dict[str, Any]:
    cases, kinds = build_cases(count, seed)
    rss_before = rss_kb(server.pid)
    tally: Counter = Counter()
    wrong: list[dict[str, str]] = []
    queue: asyncio.Queue = asyncio.Queue()
    for case in cases:
        queue.put_nowait(case)
    began = time.monotonic()
    async with grpc.aio.insecure_channel(
        server.target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        calls = {m: unary(channel, m) for m in (SCORE, SCORE_BATCH, ASSESS, MODEL_INFER)}

        async def caller() -> None:
            while not queue.empty():
                case = queue.get_nowait()
                good = case.code is grpc.StatusCode.OK
                answer, code, details = await _call(calls[case.method], case.body, tally)
                if good:
                    ok = code is grpc.StatusCode.OK and _answered_rows(case.method, answer) == case.rows
                    outcome = "good_ok" if ok else "good_failed"
                elif answer is not None:
                    outcome = "bad_scored"
                elif code is case.code and details.startswith(f"{case.field}:" if case.field else ""):
                    outcome = "bad_refused_as_documented"
                else:
                    outcome = "bad_refused_otherwise"
                tally[outcome] += 1
                if outcome in ("good_failed", "bad_scored", "bad_refused_otherwise") and len(wrong) < 20:
                    wrong.append({"case": case.name, "code": code.name, "details": details[:200]})

        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        seconds = time.monotonic() - began
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return {
        "requests": len(cases),
        "good": sum(1 for c in cases if c.code is grpc.StatusCode.OK),
        "bad": sum(1 for c in cases if c.code is not grpc.StatusCode.OK),
        "kinds": kinds,
        "outcomes": dict(tally),
        "unexpected_examples": wrong,
        "seconds": round(seconds, 2),
        "server_alive": server.alive(),
        "health_after": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
        "rss_kb_before": rss_before,
        "rss_kb_after": rss_kb(server.pid),
        "command": f"{len(cases)} requests, {CONCURRENCY} concurrent callers on one grpc.aio channel; "
        f"RESOURCE_EXHAUSTED (server busy) retried up to {BUSY_RETRIES} times",
    }
