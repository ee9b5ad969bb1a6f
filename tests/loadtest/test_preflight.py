"""A load test pointed at the wrong thing says so in one line and exits 2, never with a traceback: a metrics
URL that is not an HTTP/1 Prometheus endpoint (e.g. the gRPC port), a target that is not a riskserve or
Open Inference Protocol server, a model the target does not serve. An unreachable metrics URL is a
warning: the verdict then has no server column."""

import http.server
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from loadtest.server_metrics import scrape
from server.cli.main import main
from tests.loadtest.conftest import write_scenario
from tests.loadtest.peer_server import PeerBehaviour, PeerServer

pytestmark = pytest.mark.timeout(90)


def _scenario(target: str, data_file: Path, **fields) -> dict:
    return {
        "name": "preflight",
        "target": target,
        "mix": [{"call": "fraud.score", "data_file": str(data_file)}],
        "load": {"rate": 50, "duration_s": 0.5, "warmup_s": 0, "connect_timeout_s": 2},
        **fields,
    }


def _run(tmp_path: Path, scenario: dict, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["loadtest", str(write_scenario(tmp_path, scenario)), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err


@pytest.fixture()
def http_server() -> Iterator[str]:
    """http://127.0.0.1:PORT serving `/page` (HTML, not Prometheus text); anything else is 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/page":
                self.send_error(404)
                return
            body = b"<html><body>hello</body></html>\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_metrics_url_at_the_grpc_port_is_one_line_and_exit_2(tmp_path, fraud_file, capsys):
    with PeerServer() as peer:
        scenario = _scenario(peer.target, fraud_file, metrics_url=f"http://{peer.target}/metrics")
        code, err = _run(tmp_path, scenario, capsys)
    assert code == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            f"load test could not run: metrics_url http://{peer.target}/metrics: does not speak HTTP/1"
        )
    )


@pytest.mark.parametrize(("path", "says"), [("/page", "not Prometheus text"), ("/metrics", "HTTP 404")])
def test_a_metrics_url_that_is_not_a_metrics_endpoint_is_exit_2(
    tmp_path, fraud_file, capsys, http_server, path, says
):
    with PeerServer() as peer:
        code, err = _run(tmp_path, _scenario(peer.target, fraud_file, metrics_url=http_server + path), capsys)
    assert code == 2 and says in err


def test_a_target_that_is_not_a_riskserve_server_is_exit_2(tmp_path, fraud_file, capsys):
    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=2))  # gRPC, but no riskserve service
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    try:
        code, err = _run(tmp_path, _scenario(f"127.0.0.1:{port}", fraud_file), capsys)
    finally:
        bare.stop(0)
    assert code == 2
    assert "does not serve /riskserve.v1.FraudScoring/Score (UNIMPLEMENTED): not a riskserve server" in err
    assert "protocol: oip" in err


def test_a_model_the_target_does_not_serve_is_exit_2(tmp_path, fraud_file, capsys):
    with PeerServer(PeerBehaviour(max_in_flight=0, refusal=grpc.StatusCode.NOT_FOUND)) as peer:
        code, err = _run(tmp_path, _scenario(peer.target, fraud_file), capsys)
    assert code == 2 and "mix entry fraud.score: target" in err and "does not serve model 'fraud'" in err


def test_an_unreachable_metrics_url_is_a_warning_and_the_run_goes_on(tmp_path, fraud_file, capsys, caplog):
    with PeerServer() as peer:
        scenario = _scenario(peer.target, fraud_file, metrics_url="http://127.0.0.1:9/metrics")
        code, _ = _run(tmp_path, scenario, capsys)
    assert code in (0, 1) and (tmp_path / "out" / "report.json").is_file()  # judged, whatever the verdict
    assert "event=metrics_unreachable" in caplog.text


def test_a_scrape_of_the_grpc_port_after_the_run_is_none_not_a_traceback():
    with PeerServer() as peer:
        assert scrape(f"http://{peer.target}/metrics") is None
