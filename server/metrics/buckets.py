"""Histogram bucket boundaries shared by the recorder, the exporter, the alert rules and the dashboard."""

# Renard R10 preferred numbers: 10 log-spaced steps per decade (about 3.3 per octave, each bucket about 26 %
# wide). Unlike powers of two they put exact boundaries on the values people write in SLAs: 1 ms, 2 ms,
# 2.5 ms, 5 ms, 10 ms, so `le="0.001"` exists and an SLA ratio can be read without interpolation.
R10_MANTISSAS = ("1.0", "1.25", "1.6", "2.0", "2.5", "3.15", "4.0", "5.0", "6.3", "8.0")


def r10_series(lowest: float, highest: float) -> tuple[float, ...]:
    """R10 values from `lowest` to `highest` inclusive, from decimal strings so `le` labels stay short."""
    values = []
    for exponent in range(-9, 4):
        for mantissa in R10_MANTISSAS:
            value = float(f"{mantissa}e{exponent}")
            if lowest * (1 - 1e-9) <= value <= highest * (1 + 1e-9):
                values.append(value)
    return tuple(values)


# 25 µs .. 1 s: 47 boundaries. The cheapest gRPC round trip here is about 0.46 ms, a fraud model's
# inference tens of µs, so the low end resolves inference alone and the 1 ms SLA sits mid-range.
LATENCY_BUCKETS_S: tuple[float, ...] = r10_series(25e-6, 1.0)

# Rows per ONNX Runtime call: powers of two up to the largest batch a ScoreBatch may carry.
BATCH_SIZE_BUCKETS: tuple[float, ...] = tuple(float(2**k) for k in range(13))

# Positive-class probability. Fraud scores crowd near 0 (base rate well under 1 %), so the low end is fine
# grained; the upper bins follow typical review/decline thresholds. Also usable as PSI bins for drift.
SCORE_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    1.0,
)
