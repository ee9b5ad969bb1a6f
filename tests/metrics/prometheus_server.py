"""Debian's real `prometheus` binary on 127.0.0.1, running the shipped deploy/prometheus config and rules
retargeted at one metrics endpoint, with a 1 s scrape interval and its storage in a temp folder."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.metrics.conftest import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
STARTUP_TIMEOUT_S = 40


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


def write_config(folder: Path, metrics_port: int) -> Path:
    """The shipped prometheus.yml with its rules, scraping only 127.0.0.1:`metrics_port` every second."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / rule_file) for rule_file in config["rule_files"]]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "riskserve")
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{metrics_port}"]
    config["scrape_configs"] = [job]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_prometheus(folder: Path, metrics_port: int) -> Iterator[PrometheusServer]:
    server = PrometheusServer(write_config(folder, metrics_port), folder / "tsdb", folder / "prometheus.log")
    try:
        server.wait_until(lambda: server.get("/-/ready") == {}, STARTUP_TIMEOUT_S, "prometheus /-/ready")
        yield server
    finally:
        server.stop()
