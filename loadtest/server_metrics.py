"""The server's own view of latency, scraped from its Prometheus endpoint before and after the run.

Two figures per (model, method): the server's rolling-window p99 (`riskserve_request_latency_window_seconds`,
as exported at the end of the run) and a p99 over exactly this run, estimated from the increase of the
`riskserve_request_duration_seconds` histogram buckets between the two scrapes (linear within a bucket,
like PromQL's histogram_quantile). The client's figure includes the network and the client; the server's
does not, so the gap between them is where time goes outside the server.
"""

import http.client
import logging
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from loadtest.errors import LoadTestError

log = logging.getLogger(__name__)

WINDOW_FAMILY = "riskserve_request_latency_window_seconds"
HISTOGRAM_FAMILY = "riskserve_request_duration_seconds"


@dataclass(frozen=True)
class ServerLatency:
    model: str
    method: str
    requests: float  # increase of the histogram's count during the run
    run_p99_ms: float | None  # from the histogram increase
    window_p99_ms: float | None  # the server's rolling window after the run


def _fetch(url: str, timeout_s: float) -> str:
    """The endpoint's text. LoadTestError when it answers but not as a metrics endpoint would (not HTTP/1,
    an HTTP error, not a URL); OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise LoadTestError(
            f"metrics_url {url}: HTTP {exc.code} {exc.reason}; is it the /metrics path?"
        ) from exc
    except http.client.HTTPException as exc:  # e.g. BadStatusLine: a gRPC (HTTP/2) port
        raise LoadTestError(
            f"metrics_url {url}: does not speak HTTP/1 ({type(exc).__name__}); point it at the server's "
            "metrics port (default 9100), not its gRPC port"
        ) from exc
    except ValueError as exc:  # "unknown url type"
        raise LoadTestError(f"metrics_url {url}: not an http(s) URL ({exc})") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):
            raise exc.reason from exc
        raise OSError(str(exc.reason)) from exc


def _families(url: str, text: str) -> set[str]:
    try:
        return {family.name for family in text_string_to_metric_families(text)}
    except (ValueError, TypeError, IndexError) as exc:
        raise LoadTestError(f"metrics_url {url}: the answer is not Prometheus text ({exc})") from exc


def check_metrics_url(url: str, timeout_s: float = 3.0) -> None:
    """Before a run: LoadTestError when `url` answers with something that is not Prometheus text; a
    warning (the verdict then has no server column) when nothing answers or it is not riskserve's."""
    try:
        text = _fetch(url, timeout_s)
    except OSError as exc:
        log.warning("event=metrics_unreachable url=%s error=%s action=no_server_column", url, exc)
        return
    if HISTOGRAM_FAMILY not in _families(url, text):
        log.warning(
            "event=metrics_not_riskserve url=%s missing=%s action=no_server_column", url, HISTOGRAM_FAMILY
        )


def scrape(url: str | None, timeout_s: float = 3.0) -> str | None:
    """The metrics text, or None (and a warning) when the endpoint does not answer with Prometheus text."""
    if not url:
        return None
    try:
        text = _fetch(url, timeout_s)
        _families(url, text)
    except (OSError, LoadTestError) as exc:
        log.warning("event=metrics_scrape_failed url=%s error=%s", url, exc)
        return None
    return text


def _buckets(text: str) -> dict[tuple[str, str], dict[float, float]]:
    """(model, method) -> {le: cumulative count}, summed over status codes."""
    result: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        if family.name != HISTOGRAM_FAMILY:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                key = (sample.labels.get("model", ""), sample.labels.get("method", ""))
                result[key][float(sample.labels["le"])] += sample.value
    return result


def _window_p99(text: str) -> dict[tuple[str, str], float]:
    result = {}
    for family in text_string_to_metric_families(text):
        if family.name != WINDOW_FAMILY:
            continue
        for sample in family.samples:
            if sample.labels.get("quantile") == "0.99" and sample.value == sample.value:  # skip NaN
                result[(sample.labels.get("model", ""), sample.labels.get("method", ""))] = sample.value
    return result


def histogram_quantile(quantile: float, cumulative: dict[float, float]) -> float | None:
    """PromQL-style quantile of a cumulative bucket map (upper bound -> count); None when empty."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = quantile * cumulative[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return bounds[-1]


def server_latencies(
    before: str | None, after: str | None, methods: set[tuple[str, str]]
) -> list[ServerLatency]:
    """The server's p99 for each (model, method) the run used, or [] without an `after` scrape."""
    if after is None:
        return []
    after_buckets, window = _buckets(after), _window_p99(after)
    before_buckets = _buckets(before) if before else {}
    result = []
    for key in sorted(methods):
        increase = {
            le: count - before_buckets.get(key, {}).get(le, 0.0)
            for le, count in after_buckets.get(key, {}).items()
        }
        p99_s = histogram_quantile(0.99, increase)
        window_s = window.get(key)
        result.append(
            ServerLatency(
                model=key[0],
                method=key[1],
                requests=max(increase.values(), default=0.0),
                run_p99_ms=None if p99_s is None else p99_s * 1000,
                window_p99_ms=None if window_s is None else window_s * 1000,
            )
        )
    return result
