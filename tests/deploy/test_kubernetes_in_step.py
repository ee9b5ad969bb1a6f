"""deploy/kubernetes stays in step with the server: settings names and values, ports, probes, drain timing.

Manifests are parsed with pyyaml; settings come from ServerSettings itself, so a renamed or new setting
is followed without touching this test. `kubectl kustomize` renders the kustomization where kubectl exists.
"""

import asyncio
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from grpc_health.v1 import health_pb2

from server.app.health import LIVENESS_SERVICE, HealthState
from server.cli import serve_cmd
from server.cli.main import build_parser
from server.config.settings import ENV_PREFIX, ServerSettings, load_settings
from tests.deploy.dockerfile import image_user, parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
KSERVE_FILE = "kserve-servingruntime.yaml"  # applied where KServe runs, not by the kustomization


def _load(name: str) -> dict:
    return yaml.safe_load((MANIFESTS / name).read_text())


@pytest.fixture(scope="module")
def deployment() -> dict:
    return _load("deployment.yaml")


@pytest.fixture(scope="module")
def pod(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod: dict) -> dict:
    (riskserve,) = [c for c in pod["containers"] if c["name"] == "riskserve"]
    return riskserve


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def _settings(container: dict) -> ServerSettings:
    """The settings the server would run with: the container's env through the real loader."""
    return load_settings(environ=_env(container))


def _ports(container: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def _port(container: dict, port: int | str) -> int:
    return _ports(container)[port] if isinstance(port, str) else port


@pytest.mark.parametrize("name", ["deployment.yaml", KSERVE_FILE])
def test_every_riskserve_env_var_names_a_setting_and_validates(name: str) -> None:
    containers = (
        _load(name)["spec"]["template"]["spec"]["containers"]
        if name == "deployment.yaml"
        else (_load(name)["spec"]["containers"])
    )
    for container in containers:
        env = _env(container)
        unknown = [
            var
            for var in env
            if var.startswith(ENV_PREFIX)
            and var.removeprefix(ENV_PREFIX).lower() not in ServerSettings.model_fields
        ]
        assert not unknown, f"{name}: not a ServerSettings field: {unknown}"
        _settings(container)  # raises ConfigError naming a bad value


def test_container_ports_are_the_configured_grpc_and_metrics_ports(container: dict) -> None:
    settings = _settings(container)
    assert _ports(container) == {"grpc": settings.port, "metrics": settings.metrics_port}
    assert settings.host == settings.metrics_host == "0.0.0.0", "a pod must listen beyond loopback"


def test_grpc_probes_ask_the_health_service_on_the_grpc_port(container: dict) -> None:
    grpc_port = _settings(container).port
    for probe in ("startupProbe", "readinessProbe"):
        check = container[probe]
        assert "grpc" in check, f"{probe} should be a native gRPC (grpc.health.v1) probe"
        assert _port(container, check["grpc"]["port"]) == grpc_port
        assert check["grpc"].get("service", "") == "", "the whole server's status, as `riskserve health`"
    liveness = container["livenessProbe"]["grpc"]
    assert _port(container, liveness["port"]) == grpc_port
    assert liveness["service"] == LIVENESS_SERVICE, "the watchdog's service, which a drain leaves SERVING"


def test_liveness_serves_through_a_drain_and_fails_for_a_stalled_model(container: dict) -> None:
    service = container["livenessProbe"]["grpc"]["service"]

    async def statuses() -> list[int]:
        health = HealthState()
        await health.set_model("fraud", True)
        await health.set_serving(True)
        seen = [await _check(health, service)]
        await health.set_serving(False)  # a drain
        seen.append(await _check(health, service))
        await health.set_stalled("fraud", True)  # the watchdog's verdict
        seen.append(await _check(health, service))
        return seen

    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert asyncio.run(statuses()) == [serving, serving, not_serving]


async def _check(health: HealthState, service: str) -> int:
    return (await health.servicer.Check(health_pb2.HealthCheckRequest(service=service), None)).status


def test_liveness_gives_the_watchdog_time_and_never_outpaces_a_busy_moment(container: dict) -> None:
    settings, probe = _settings(container), container["livenessProbe"]
    failing_for_s = probe["periodSeconds"] * probe["failureThreshold"]
    assert failing_for_s >= 3 * settings.watchdog_stall_s, "restart only after the watchdog has decided"
    assert settings.watchdog_stall_s > 0, "the watchdog is what liveness reports"
    assert probe.get("timeoutSeconds", 1) >= 5, "a loaded event loop may take a moment to answer"


def test_termination_grace_covers_prestop_drain_pause_and_grace_period(pod: dict, container: dict) -> None:
    settings = _settings(container)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0, "load balancers need a moment to drop the pod before SIGTERM"
    needed = pre_stop + settings.drain_pause_s + settings.grace_period_s
    assert pod["terminationGracePeriodSeconds"] > needed


def test_resources_fit_a_two_core_replica(container: dict) -> None:
    resources = container["resources"]
    assert resources["requests"] == resources["limits"], "Guaranteed QoS"
    assert resources["limits"]["cpu"] == "2"
    assert resources["limits"]["memory"] in {"1Gi", "1536Mi", "2Gi"}


def test_runs_as_the_images_non_root_user_with_writable_volumes(pod: dict, container: dict) -> None:
    (final,) = parse_dockerfile(REPO / "Dockerfile")[-1:]
    _name, image_uid = image_user(final)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == image_uid
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    cache_dir = str(_settings(container).cache_dir)
    assert cache_dir == final.env()["RISKSERVE_CACHE_DIR"], "same cache dir as the image"
    assert cache_dir in mounts
    shared_dir = _settings(container).metrics_shared_dir
    if shared_dir is not None:
        (volume,) = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == str(shared_dir)]
        (spec,) = [v for v in pod["volumes"] if v["name"] == volume]
        assert spec["emptyDir"].get("medium") == "Memory", "metric snapshots belong in memory"
    if container["securityContext"].get("readOnlyRootFilesystem"):
        assert "/tmp" in mounts, "quantization writes scratch files under /tmp"
    volumes = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes


def test_image_tag_is_the_project_version(container: dict) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    kserve_image = _load(KSERVE_FILE)["spec"]["containers"][0]["image"]
    assert container["image"] == kserve_image == f"riskserve:{version}"


def test_headless_service_selects_the_pods_and_targets_named_ports(deployment: dict, container: dict) -> None:
    service = _load("service.yaml")
    assert service["spec"]["clusterIP"] == "None", "headless: DNS answers every ready pod's address"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    for name, container_port in _ports(container).items():
        assert ports[name]["port"] == container_port, "clients dial the container's own port numbers"
        assert ports[name]["targetPort"] in {name, container_port}
    assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"


def test_hpa_pdb_and_podmonitor_point_at_the_deployment(deployment: dict, container: dict) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = _load("hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "riskserve"}
    assert deployment["metadata"]["name"] == "riskserve"
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] >= hpa["minReplicas"]
    pdb = _load("pdb.yaml")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["maxUnavailable"] < hpa["minReplicas"]
    monitor = _load("podmonitor.yaml")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert endpoint["port"] in _ports(container) and _ports(container)[endpoint["port"]] == (
        _settings(container).metrics_port
    )


def test_kserve_runtime_serves_the_mounted_models_on_the_grpc_port() -> None:
    spec = _load(KSERVE_FILE)["spec"]
    (container,) = spec["containers"]
    # No `command`: the image's ENTRYPOINT `riskserve serve` gets `args` as serve flags.
    assert "command" not in container
    args = build_parser().parse_args(["serve", *container["args"]])
    assert args.func is serve_cmd.run
    assert str(args.models_dir) == "/mnt/models", "KServe mounts the storageUri at /mnt/models"
    settings = load_settings(overrides={"models_dir": args.models_dir}, environ=_env(container))
    (port,) = container["ports"]
    assert port["name"] == "h2c", "KServe routes gRPC (v2) to the port named h2c"
    assert port["containerPort"] == settings.port
    assert spec["protocolVersions"] == ["grpc-v2"]
    assert int(spec["annotations"]["prometheus.kserve.io/port"]) == settings.metrics_port
    assert settings.host == "0.0.0.0"


def test_kustomization_lists_every_manifest_but_the_kserve_runtime() -> None:
    resources = _load("kustomization.yaml")["resources"]
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", KSERVE_FILE}
    assert set(resources) == on_disk


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomization_renders_with_kubectl() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered)}
    assert kinds == {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "PodMonitor"}


KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes the manifests target (native gRPC probes: 1.27)


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml"])
def test_manifest_validates_against_the_kubernetes_schema(name: str) -> None:
    validator = pytest.importorskip("kubernetes_validate")
    validator.validate(_load(name), KUBERNETES_VERSION, strict=True)  # unknown fields are errors too
