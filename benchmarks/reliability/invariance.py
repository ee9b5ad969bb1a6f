"""Scenario 4: a transaction's probability does not depend on what it was scored with (bit for bit).

The same holdout transactions are scored (a) one by one with sequential unary Score calls, (b) inside
ScoreBatch calls of random sizes at random positions among other random holdout transactions, and (c) as
concurrent unary Score calls while ScoreBatch calls run, so the server's micro-batcher mixes them.
"""

import asyncio
import random
from typing import Any

import grpc

from benchmarks.reliability.payloads import SCORE, SCORE_BATCH, holdout_transactions, unary
from server.api.gen.riskserve.v1 import scoring_pb2


def _differences(reference: dict[str, float], other: dict[str, float]) -> dict[str, Any]:
    differing = [tid for tid, p in reference.items() if other.get(tid) != p]
    worst = max((abs(reference[t] - other[t]) for t in differing if t in other), default=0.0)
    return {
        "compared": len(reference),
        "missing": sum(1 for t in reference if t not in other),
        "differing": len(differing),
        "max_abs_difference": worst,
    }


async def run(target: str, count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    pool = holdout_transactions(count + 4000, seed)
    targets, fillers = pool[:count], pool[count:]
    async with grpc.aio.insecure_channel(target) as channel:
        score, score_batch = unary(channel, SCORE), unary(channel, SCORE_BATCH)
        single: dict[str, float] = {}
        for t in targets:  # (a) one by one, nothing else in flight
            single[t.transaction_id] = (await score(t.SerializeToString(), timeout=5)).probability

        batched: dict[str, float] = {}
        positions: list[int] = []
        order = list(targets)
        rng.shuffle(order)
        while order:  # (b) 1-4 targets per batch of 2-256 rows, at random positions
            mine = [order.pop() for _ in range(min(len(order), rng.randint(1, 4)))]
            size = rng.randint(len(mine) + 1, 256)
            rows = rng.sample(fillers, size - len(mine))
            for t in mine:
                at = rng.randint(0, len(rows))
                rows.insert(at, t)
            batch = scoring_pb2.TransactionBatch(transactions=rows)
            answer = await score_batch(batch.SerializeToString(), timeout=10)
            wanted = {t.transaction_id for t in mine}
            for index, s in enumerate(answer.scores):
                if s.transaction_id in wanted:
                    batched[s.transaction_id] = s.probability
                    positions.append(index)

        mixed: dict[str, float] = {}

        async def one(t: scoring_pb2.Transaction) -> None:
            mixed[t.transaction_id] = (await score(t.SerializeToString(), timeout=10)).probability

        async def background() -> None:
            for _ in range(8):
                rows = rng.sample(fillers, rng.randint(16, 256))
                await score_batch(
                    scoring_pb2.TransactionBatch(transactions=rows).SerializeToString(), timeout=10
                )

        for start in range(0, count, 50):  # (c) 50 concurrent unary calls next to 2 streams of batches
            chunk = targets[start : start + 50]
            await asyncio.gather(*(one(t) for t in chunk), background(), background())

    return {
        "transactions": count,
        "batch_positions": {"min": min(positions), "max": max(positions)},
        "in_score_batch_vs_single": _differences(single, batched),
        "concurrent_unary_vs_single": _differences(single, mixed),
        "command": "ScoreBatch of 2-256 random holdout rows with 1-4 targets at random positions; "
        "50 concurrent Score calls beside 2 callers sending ScoreBatch(16-256)",
    }
