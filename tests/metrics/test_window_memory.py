"""The rolling window's HDR histograms (216 KiB each) are reused, and freed without a garbage collection.

Before: every slice boundary allocated a new histogram per key and dropped the expired one into a
reference cycle (histogram <-> encoder) that only a full collection frees; a server with a large old
generation runs one rarely, so idle RSS crept 5-7 MiB a minute.
"""

import gc
import weakref
from collections.abc import Iterator

import pytest

from server.metrics import ServingMetrics
from server.metrics import serving_metrics as serving_metrics_module
from server.metrics.latency_window import (
    RollingLatencyWindow,
    decode_hdr_histogram,
    merge_window,
    new_hdr_histogram,
    reset_hdr_histogram,
    window_quantiles,
)

KEYS = [("fraud", "Score"), ("fraud", "ScoreBatch"), ("credit", "Assess")]
START = 1_000_000.0  # a slice boundary


@pytest.fixture()
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_dropped_histogram_is_freed_without_a_collection(no_gc) -> None:
    made = [new_hdr_histogram(), decode_hdr_histogram(new_hdr_histogram().encode())]
    made[0].record_value(1000)
    assert made[0].encode()  # the encoder still works through its weak reference
    refs = [weakref.ref(h) for h in made]
    del made
    assert [r() for r in refs] == [None, None]


def test_slice_rotation_reuses_the_expired_histograms(no_gc, monkeypatch) -> None:
    allocated: list[weakref.ref] = []
    real = serving_metrics_module.new_hdr_histogram

    def counting():
        histogram = real()
        allocated.append(weakref.ref(histogram))
        return histogram

    monkeypatch.setattr(serving_metrics_module, "new_hdr_histogram", counting)
    metrics = ServingMetrics()
    metrics.close()  # no maintenance thread: slices are rotated below, at simulated times
    window = metrics.window
    for step in range(40 * 2):  # 40 slices (400 s), the maintenance running twice per slice
        now = START + step * window.slice_s / 2
        for key in KEYS:
            window.record(key, 0.001, now=now)
        metrics._prepare_next_slices(now)
    alive = [r for r in allocated if r() is not None]
    # each key holds its live slices plus the next one from its first call on, and nothing more was ever
    # allocated (the first slice of each key comes from its first call, the rest ahead of time)
    assert len(allocated) == len(KEYS) * window.slices
    assert len(alive) == len(allocated)
    assert [len(window._histograms[key]) for key in KEYS] == [window.slices + 1] * len(KEYS)
    per_key = window.live_slices(now)
    assert all(sum(h.get_total_count() for h in per_key[key].values()) > 0 for key in KEYS)


def test_recycled_slices_start_empty() -> None:
    window = RollingLatencyWindow(window_s=60.0, slices=6)
    window.record(("fraud", "Score"), 0.5, now=START)
    window.drop_expired(now=START + 30)
    (old,) = window.drop_expired(now=START + 70)
    window.install(("fraud", "Score"), window.slice_index(START + 70), reset_hdr_histogram(old))
    window.record(("fraud", "Score"), 0.002, now=START + 70)
    merged = merge_window(window.live_slices(now=START + 70).values(), window.slice_index(START + 70), 6)
    assert merged.get_total_count() == 1
    assert window_quantiles(merged)[0.999] == pytest.approx(0.002, rel=1e-3)
