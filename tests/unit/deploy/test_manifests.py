"""The plain Kubernetes manifests (deploy/k8s): they render with `kubectl kustomize`, every
object validates offline against the Kubernetes schemas, and what they promise matches
the service (probe paths it serves, its port, its drain time, its settings, its secrets).
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chater_gpt.config import Settings, load_settings
from tests.unit.deploy.crd_schemas import CUSTOM_RESOURCE_SCHEMAS
from tests.unit.deploy.service_facts import secret_settings, served_routes

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
EXAMPLE = K8S / "overlays" / "example"

# Fixed Kubernetes minors: the oldest the manifests support (PodDisruptionBudget's
# unhealthyPodEvictionPolicy) and the newest kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")

Manifest = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("kubectl is required in CI (scripts/ensure-test-services.sh installs it)")
    pytest.skip("kubectl is not installed (apt-get install kubernetes-client)")


def render(directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def write_hpa_overlay(directory: Path) -> Path:
    """The HPA alternative as the README tells users to build it: ./app plus ./hpa."""
    directory.mkdir(parents=True, exist_ok=True)
    app, hpa, gateway = (os.path.relpath(BASE / d, directory) for d in ("app", "hpa", "gateway"))
    (directory / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"bases:\n  - {app}\n  - {hpa}\n  - {gateway}\n"
    )
    return directory


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Manifest]]:
    hpa_overlay = write_hpa_overlay(tmp_path_factory.mktemp("overlay") / "hpa")
    return {"base": render(BASE), "example": render(EXAMPLE), "hpa": render(hpa_overlay)}


def is_gateway(obj: Manifest) -> bool:  # its objects: test_gateway_manifests.py
    return bool(obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "gateway")


def only(objects: list[Manifest], kind: str) -> Manifest:
    found = [obj for obj in objects if obj["kind"] == kind and not is_gateway(obj)]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(objects: list[Manifest]) -> Manifest:
    containers: list[Manifest] = only(objects, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def config(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = only(objects, "ConfigMap")["data"]
    return data


def secret_values(secret: Manifest) -> dict[str, str]:
    values = dict(secret.get("stringData", {}))
    for key, encoded in secret.get("data", {}).items():
        values[key] = base64.b64decode(encoded).decode()
    return values


def validate_object(obj: Manifest, version: str) -> None:
    """Kubernetes' own schema (strict: unknown fields fail), or ours for custom resources."""
    schema = CUSTOM_RESOURCE_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if schema is not None:
        jsonschema.Draft202012Validator(schema).validate(obj)
    else:
        # An unknown kind raises SchemaNotFoundError: it fails the test, never passes it.
        kubernetes_validate.validate(obj, version, strict=True)


# --- rendering and schemas ---------------------------------------------------------------

APP_KINDS = {
    "ConfigMap",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "ServiceMonitor",
    "NetworkPolicy",
}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("base", APP_KINDS | {"ScaledObject"}),
        ("example", APP_KINDS | {"ScaledObject", "Namespace", "Secret"}),
        ("hpa", APP_KINDS | {"HorizontalPodAutoscaler"}),
    ],
)
def test_kustomization_renders_the_expected_objects(
    rendered: dict[str, list[Manifest]], target: str, expected: set[str]
) -> None:
    kinds = [obj["kind"] for obj in rendered[target] if not is_gateway(obj)]
    assert sorted(kinds) == sorted(expected)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", ["base", "example", "hpa"])
def test_every_object_validates_offline(
    rendered: dict[str, list[Manifest]], target: str, version: str
) -> None:
    for obj in rendered[target]:
        try:
            validate_object(obj, version)
        except (jsonschema.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            detail = getattr(exc, "message", str(exc))  # SchemaNotFoundError has no str()
            pytest.fail(f"{target}: {obj['kind']}/{obj['metadata']['name']}: {detail}")


def test_custom_resource_schemas_reject_what_the_crds_reject(
    rendered: dict[str, list[Manifest]],
) -> None:
    scaled = copy.deepcopy(only(rendered["base"], "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["allowIdleConsumers"] = False  # unquoted
    with pytest.raises(jsonschema.ValidationError):
        validate_object(scaled, KUBERNETES_VERSIONS[0])
    monitor = copy.deepcopy(only(rendered["base"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30"  # no unit
    with pytest.raises(jsonschema.ValidationError):
        validate_object(monitor, KUBERNETES_VERSIONS[0])


def test_a_kind_without_any_schema_fails() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_object(unknown, KUBERNETES_VERSIONS[0])


# --- the Deployment against the service ---------------------------------------------------


def named_port(objects: list[Manifest], port: int | str) -> int:
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    return int(ports[port])


def test_probes_hit_paths_the_service_serves_on_its_port(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["example"]
    main = container(objects)
    metrics_port = int(
        config(objects).get("METRICS_PORT", Settings.model_fields["metrics_port"].default)
    )
    routes = served_routes()
    probes = {
        name: main[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == "/livez"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for name, probe in probes.items():
        assert probe["path"] in routes, f"{name} probes {probe['path']}, not served"
        assert named_port(objects, probe["port"]) == metrics_port, name

    service_port = only(objects, "Service")["spec"]["ports"][0]
    assert named_port(objects, service_port["targetPort"]) == metrics_port
    endpoint = only(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["path"] in routes


def test_termination_grace_exceeds_the_drain_time(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    default_grace = Settings.model_fields["shutdown_grace_seconds"].default
    drain = float(config(objects).get("SHUTDOWN_GRACE_SECONDS", default_grace))
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > drain


def test_pods_are_locked_down(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container(objects)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    # The only writable path is an emptyDir on /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(objects)["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    assert "emptyDir" in volumes["tmp"]


def test_service_links_cannot_override_settings(rendered: dict[str, list[Manifest]]) -> None:
    # Service links would inject e.g. METRICS_PORT=tcp://... for a Service named "metrics",
    # which the service would refuse as its port.
    pod = only(rendered["example"], "Deployment")["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False


def test_resources_match_the_original_service(rendered: dict[str, list[Manifest]]) -> None:
    assert container(rendered["example"])["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }


def test_replicas_belong_to_the_autoscaler(rendered: dict[str, list[Manifest]]) -> None:
    for target in ("base", "example", "hpa"):
        deployment = only(rendered[target], "Deployment")
        assert "replicas" not in deployment["spec"], target
    scaled = only(rendered["example"], "ScaledObject")["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (3, 8)  # overlay patch
    assert (
        scaled["scaleTargetRef"]["name"]
        == only(rendered["example"], "Deployment")["metadata"]["name"]
    )
    hpa = only(rendered["hpa"], "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == only(rendered["hpa"], "Deployment")["metadata"]["name"]
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_lag_trigger_watches_the_services_group_over_all_its_topics(
    rendered: dict[str, list[Manifest]],
) -> None:
    for target in ("base", "example"):
        settings = config(rendered[target])
        trigger = only(rendered[target], "ScaledObject")["spec"]["triggers"][0]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["bootstrapServers"] == settings["BOOTSTRAP_SERVER"]
        assert "topic" not in trigger["metadata"]  # every route's topic counts
        assert trigger["metadata"]["consumerGroup"] == settings["CONSUMER_GROUP"]
        assert settings["CONSUMER_GROUP"] == "chater-gpt-group"
    hpa_selector = only(rendered["hpa"], "HorizontalPodAutoscaler")["spec"]["metrics"][0]
    labels = hpa_selector["external"]["metric"]["selector"]["matchLabels"]
    assert labels == {"consumergroup": "chater-gpt-group", "topic": "gpt-send"}


def test_selectors_match_the_pods(rendered: dict[str, list[Manifest]]) -> None:
    for target in ("base", "example", "hpa"):
        objects = rendered[target]
        pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
        selectors = {
            "Deployment": only(objects, "Deployment")["spec"]["selector"]["matchLabels"],
            "Service": only(objects, "Service")["spec"]["selector"],
            "PodDisruptionBudget": only(objects, "PodDisruptionBudget")["spec"]["selector"][
                "matchLabels"
            ],
            "NetworkPolicy": only(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        }
        for kind, selector in selectors.items():
            assert selector.items() <= pod_labels.items(), f"{target}: {kind}"
        monitor = only(objects, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
        assert monitor.items() <= only(objects, "Service")["metadata"]["labels"].items()


def test_network_policy_lets_through_what_the_service_talks_to(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["example"]
    policy = only(objects, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    metrics_port = named_port(objects, container(objects)["ports"][0]["name"])
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {metrics_port}
    egress = {(p.get("protocol", "TCP"), p["port"]) for r in policy["egress"] for p in r["ports"]}
    kafka_ports = {
        int(server.rsplit(":", 1)[1]) for server in config(objects)["BOOTSTRAP_SERVER"].split(",")
    }
    needed = {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 443)}
    needed |= {("TCP", port) for port in kafka_ports}
    assert needed <= egress


# --- settings and secrets -------------------------------------------------------------------


def test_configmap_holds_only_known_non_secret_settings(
    rendered: dict[str, list[Manifest]],
) -> None:
    known = {name.upper() for name in Settings.model_fields}
    for target in ("base", "example"):
        keys = set(config(rendered[target]))
        assert keys <= known, f"unknown settings: {sorted(keys - known)}"
        assert not keys & secret_settings(), "a secret belongs in the Secret"


def test_configmap_is_a_valid_configuration(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    values: dict[str, Any] = {k.lower(): v for k, v in config(objects).items()}
    values |= {k.lower(): v for k, v in secret_values(only(objects, "Secret")).items()}
    settings = load_settings(values)  # raises ConfigError, naming the variable
    assert settings.request_topic == "gpt-send"


def test_secrets_come_from_the_secret(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    secret = only(objects, "Secret")
    env = {item["name"]: item for item in container(objects)["env"]}
    assert "OPENAI_API_KEY" in env
    for name, item in env.items():
        if name in secret_settings():
            assert "value" not in item, f"{name} must not be a literal"
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret_values(secret)
    for source in container(objects).get("envFrom", []):
        assert "configMapRef" in source or source["secretRef"]["name"] == secret["metadata"]["name"]


def test_example_secret_holds_placeholders_only(rendered: dict[str, list[Manifest]]) -> None:
    values = secret_values(only(rendered["example"], "Secret"))
    assert set(values) <= secret_settings()
    for key, value in values.items():
        assert "REPLACE_ME" in value, f"{key} is not a placeholder"
        assert not re.search(r"sk-[A-Za-z0-9_-]{8,}", value), f"{key} looks like a real key"
    for target in ("base", "hpa"):
        assert all(obj["kind"] != "Secret" for obj in rendered[target]), target


def test_no_secret_value_in_the_configmap(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    config_text = "\n".join(config(objects).values())
    for key, value in secret_values(only(objects, "Secret")).items():
        assert value not in config_text, key
        assert "REPLACE_ME" not in config_text


def test_example_overlay_pins_image_and_namespace(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    namespace = only(objects, "Namespace")["metadata"]["name"]
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["kind"]
    image = container(objects)["image"]
    name, _, tag = image.rpartition(":")
    assert "/" in name
    assert tag
    assert tag != "latest"


def test_every_manifest_file_is_used() -> None:
    """A file no kustomization lists is never applied: catch it before users wonder."""
    listed: set[Path] = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for key in ("resources", "patchesStrategicMerge"):
            listed |= {
                (kustomization.parent / item).resolve()
                for item in spec.get(key, [])
                if (kustomization.parent / item).is_file()
            }
    for directory in (BASE, EXAMPLE):
        for path in sorted(directory.rglob("*.yaml")):
            if path.name != "kustomization.yaml":
                assert path.resolve() in listed, f"{path.relative_to(ROOT)} is in no kustomization"
