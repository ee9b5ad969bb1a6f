"""Helpers shared by the metrics tests: scraping and parsing the real exposition output."""

import socket
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import ServingMetrics, start_metrics_http_server
from server.metrics.http_server import MetricsHttpServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called `name` whose labels include `labels`."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found.append((sample.labels, sample.value))
    return found


def one_value(text: str, name: str, **labels: str) -> float:
    matches = samples(text, name, **labels)
    assert len(matches) == 1, f"expected one {name}{labels}, got {matches}"
    return matches[0][1]


def hdr_rank_percentile(values: np.ndarray, quantile: float) -> float:
    """The exact percentile under HDR's rank rule: the round(q*n)-th smallest value. (numpy's
    "inverted_cdf" takes ceil(q*n), and q*n = 19980.000000000004 then picks the next value up.)"""
    rank = max(int(quantile * values.size + 0.5), 1)
    return float(np.partition(values, rank - 1)[rank - 1])


@pytest.fixture
def metrics() -> Iterator[ServingMetrics]:
    recorder = ServingMetrics()
    yield recorder
    recorder.close()


@pytest.fixture
def exporter(metrics: ServingMetrics) -> Iterator[MetricsHttpServer]:
    handle = start_metrics_http_server(metrics, "127.0.0.1", 0)
    yield handle
    handle.close()
