"""A real Prometheus (Debian's `prometheus` binary) scrapes the exporter with the shipped config and rules;
its histogram_quantile over our buckets agrees with the exported HDR p99 within one bucket."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from server.metrics import ServingMetrics
from server.metrics.buckets import LATENCY_BUCKETS_S
from server.metrics.latency_window import HDR_RELATIVE_PRECISION
from tests.metrics.conftest import free_port, hdr_rank_percentile, one_value, scrape
from tests.metrics.dashboard_queries import as_sent_by_grafana, panel_queries

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
STARTUP_TIMEOUT_S = 40
SCRAPE_TIMEOUT_S = 20


class PrometheusServer:
    def __init__(self, config: Path, data_dir: Path, log_path: Path) -> None:
        if shutil.which("prometheus") is None:
            raise FileNotFoundError("no `prometheus` binary: apt-get install prometheus (./run.sh test does)")
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read() or b"{}") if path.startswith("/api") else {}

    def query(self, promql: str) -> list[dict]:
        body = self.get("/api/v1/query", query=promql)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_until(self, condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, f"prometheus exited: {self.log_path.read_text()[-2000:]}"
            try:
                if condition():
                    return
            except OSError:  # not listening yet
                pass
            assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        finally:
            self._log.close()


@pytest.fixture
def prometheus_scraping(tmp_path: Path, metrics: ServingMetrics, exporter) -> Iterator[PrometheusServer]:
    """Prometheus running the shipped prometheus.yml and alert rules, retargeted at the test exporter."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / rule_file) for rule_file in config["rule_files"]]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "riskserve")
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{exporter.port}"]
    config["scrape_configs"] = [job]
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))

    server = PrometheusServer(config_path, tmp_path / "tsdb", tmp_path / "prometheus.log")
    try:
        server.wait_until(lambda: server.get("/-/ready") == {}, STARTUP_TIMEOUT_S, "prometheus /-/ready")
        yield server
    finally:
        server.stop()


def test_prometheus_histogram_quantile_agrees_with_the_exported_window_p99(
    metrics, exporter, prometheus_scraping
):
    prom = prometheus_scraping
    warm_up = 6e-4
    metrics.observe_call("fraud", "Score", "OK", warm_up)  # so every bucket series exists before the load
    metrics.set_model_info("fraud", "1", "int8", "passed", {"roc_auc_delta": -1e-4})
    metrics.set_ready(True)
    prom.wait_until(
        lambda: prom.query('riskserve_request_duration_seconds_count{model="fraud"} == 1'),
        SCRAPE_TIMEOUT_S, "the first scrape",
    )  # fmt: skip

    latencies = np.random.default_rng(6).lognormal(np.log(6e-4), 0.5, size=5_000)
    for value in latencies:
        metrics.observe_call("fraud", "Score", "OK", float(value), float(value) * 0.2, float(value) * 0.1)
    total = latencies.size + 1
    prom.wait_until(
        lambda: prom.query(f'riskserve_request_duration_seconds_count{{model="fraud"}} == {total}'),
        SCRAPE_TIMEOUT_S, "the loaded histogram to be scraped",
    )  # fmt: skip

    buckets = 'riskserve_request_duration_seconds_bucket{model="fraud"}'
    promql = f"histogram_quantile(0.99, sum by (le) (rate({buckets}[1m])))"
    prometheus_p99 = float(prom.query(promql)[0]["value"][1])
    exported_p99 = one_value(
        scrape(exporter.url), "riskserve_request_latency_window_seconds", quantile="0.99"
    )
    exact_p99 = hdr_rank_percentile(np.append(latencies, warm_up), 0.99)

    bucket = bisect_left(LATENCY_BUCKETS_S, exact_p99)  # the bucket (lower, upper] holding the true p99
    lower, upper = LATENCY_BUCKETS_S[bucket - 1], LATENCY_BUCKETS_S[bucket]
    assert lower < prometheus_p99 <= upper, (prometheus_p99, lower, upper)
    assert exported_p99 == pytest.approx(exact_p99, rel=2 * HDR_RELATIVE_PRECISION)
    assert abs(prometheus_p99 - exported_p99) <= upper - lower

    # The shipped rules loaded and evaluate against real data.
    groups = prom.get("/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["name"] for r in rules} >= {"RiskserveP99AboveSLA", "RiskserveModelServedAsFP32"}
    assert all(r["health"] in ("ok", "unknown") for r in rules), [
        (r["name"], r.get("lastError")) for r in rules
    ]
    prom.wait_until(
        lambda: prom.query('model_method:riskserve_request_duration_seconds:p99_rate1m{model="fraud"}'),
        SCRAPE_TIMEOUT_S, "the p99 recording rule",
    )  # fmt: skip
    recorded = float(prom.query("model_method:riskserve_request_duration_seconds:p99_rate1m")[0]["value"][1])
    assert lower < recorded <= upper

    # Every Grafana panel query parses and evaluates in a real Prometheus; the latency panels have data.
    for promql in panel_queries():
        body = prom.get("/api/v1/query", query=as_sent_by_grafana(promql))
        assert body["status"] == "success", (promql, body)
    p99_panel = next(
        q for q in panel_queries() if q.startswith("histogram_quantile(0.99") and "request_dur" in q
    )
    assert prom.query(as_sent_by_grafana(p99_panel))
