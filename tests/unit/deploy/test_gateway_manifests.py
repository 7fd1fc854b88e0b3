"""The HTTP gateway's plain manifests (deploy/k8s/base/gateway): a StatefulSet whose pod
names are the instances' ids, its Service, PodDisruptionBudget, NetworkPolicy and
ServiceMonitor, checked against the gateway itself (its routes, port, drain time, its
settings through the service's own `load_settings`). Schema validation of every rendered
object is test_manifests.py's (it renders the gateway too)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chater_gpt.config import Settings, load_settings
from chater_gpt.config_gateway import GatewaySettings
from chater_gpt.gateway.auth import ApiKeys
from chater_gpt.wiring.gateway import gateway_config, instance_id
from tests.unit.deploy.test_manifests import (
    ROOT,
    Manifest,
    config,
    container,
    is_gateway,
    only,
    rendered,
    secret_values,
)

__all__ = ["rendered"]  # the module-scoped fixture, shared with test_manifests.py

GATEWAY_KINDS = {
    "ConfigMap",
    "StatefulSet",
    "Service",
    "PodDisruptionBudget",
    "ServiceMonitor",
    "NetworkPolicy",
}
# The gateway closes its server (5 s), reply reader and producer (5 s) after the grace.
CLOSE_SECONDS = 10


def gateway(objects: list[Manifest], kind: str) -> Manifest:
    found = [obj for obj in objects if obj["kind"] == kind and is_gateway(obj)]
    assert len(found) == 1, f"expected one gateway {kind}, found {len(found)}"
    return found[0]


def pod(objects: list[Manifest]) -> Manifest:
    spec: Manifest = gateway(objects, "StatefulSet")["spec"]["template"]["spec"]
    return spec


def main(objects: list[Manifest]) -> Manifest:
    (only_container,) = pod(objects)["containers"]
    return dict(only_container)


def gateway_routes() -> set[str]:
    """The paths the gateway's web app serves, read from its source."""
    source = (ROOT / "chater_gpt/gateway/app.py").read_text()
    return set(re.findall(r"""add_(?:get|post)\(\s*["'](/[^"']+)["']""", source))


def gateway_config_map(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = gateway(objects, "ConfigMap")["data"]
    return data


@pytest.mark.parametrize(
    ("target", "expected"),
    [("base", GATEWAY_KINDS), ("hpa", GATEWAY_KINDS), ("example", GATEWAY_KINDS | {"Secret"})],
)
def test_every_variant_runs_the_gateway(
    rendered: dict[str, list[Manifest]], target: str, expected: set[str]
) -> None:
    kinds = [obj["kind"] for obj in rendered[target] if is_gateway(obj)]
    assert sorted(kinds) == sorted(expected)


def test_a_stateful_set_names_each_instance_after_its_pod(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["example"]
    workload = gateway(objects, "StatefulSet")
    spec = workload["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == gateway(objects, "Service")["metadata"]["name"]
    assert spec["replicas"] == 3  # the overlay's patch
    assert gateway(rendered["base"], "StatefulSet")["spec"]["replicas"] == 2
    env = {item["name"]: item for item in main(objects)["env"]}
    assert env["GATEWAY_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # Pod names are "<name>-<ordinal>": within the service's limits on an instance id.
    pod_name = f"{workload['metadata']['name']}-9999"
    assert GatewaySettings(gateway_instance_id=pod_name).gateway_instance_id == pod_name
    assert main(objects)["command"] == ["python", "main.py", "gateway"]


def test_probes_and_service_hit_the_gateways_routes_on_its_port(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["example"]
    http = main(objects)
    port = int(gateway_config_map(objects)["GATEWAY_PORT"])
    (named,) = http["ports"]
    assert (named["name"], named["containerPort"]) == ("http", port)
    assert http["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert http["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert http["startupProbe"]["httpGet"]["path"] in gateway_routes()
    assert {"/livez", "/readyz", "/metrics"} <= gateway_routes()
    (service_port,) = gateway(objects, "Service")["spec"]["ports"]
    assert service_port == {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    (endpoint,) = gateway(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")


def test_termination_grace_exceeds_the_gateways_drain(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["example"]
    grace = float(gateway_config_map(objects)["GATEWAY_SHUTDOWN_GRACE_SECONDS"])
    assert pod(objects)["terminationGracePeriodSeconds"] >= grace + CLOSE_SECONDS


def test_locked_down_and_bounded_like_the_service(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    service_pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    for key in ("securityContext", "automountServiceAccountToken", "enableServiceLinks"):
        assert pod(objects)[key] == service_pod[key], key
    assert main(objects)["securityContext"] == container(objects)["securityContext"]
    resources = main(objects)["resources"]
    assert set(resources) == {"requests", "limits"}
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_api_keys_come_read_only_from_a_secret(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    objects = rendered["example"]
    volumes = {volume["name"]: volume for volume in pod(objects)["volumes"]}
    mounts = {mount["name"]: mount for mount in main(objects)["volumeMounts"]}
    keys = volumes["api-keys"]["secret"]
    assert "optional" not in keys  # no file would mean an open gateway
    (item,) = keys["items"]
    assert mounts["api-keys"]["readOnly"] is True
    env = {entry["name"]: entry for entry in main(objects)["env"]}
    keys_file = f"{mounts['api-keys']['mountPath']}/{item['path']}"
    assert env["GATEWAY_API_KEYS_FILE"]["value"] == keys_file
    # The example Secret: a placeholder that loads as a keys file admitting nobody.
    secret = gateway(objects, "Secret")
    assert secret["metadata"]["name"] == keys["secretName"]
    text = secret_values(secret)[item["key"]]
    assert "REPLACE_ME" in text
    (tmp_path / item["path"]).write_text(text)
    loaded = ApiKeys.from_file(tmp_path / item["path"])
    assert (loaded.is_open, len(loaded)) == (False, 0)


def test_kafka_settings_and_secrets_are_the_services(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["example"]
    sources = [source["configMapRef"]["name"] for source in main(objects)["envFrom"]]
    service_config = only(objects, "ConfigMap")["metadata"]["name"]
    assert sources == [service_config, gateway(objects, "ConfigMap")["metadata"]["name"]]
    service_secrets = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in container(objects)["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    gateway_env = {item["name"]: item for item in main(objects)["env"]}
    assert (
        gateway_env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        == (service_secrets["KAFKA_SASL_PASSWORD"])
    )
    # Redis: the job API's state, shared with the core.
    assert gateway_env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == service_secrets["REDIS_URL"]


def test_the_pods_settings_load_as_the_gateway_reads_them(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    objects = rendered["example"]
    values: dict[str, Any] = {k.lower(): v for k, v in config(objects).items()}
    values |= {k.lower(): v for k, v in gateway_config_map(objects).items()}
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(secret_values(gateway(objects, "Secret"))["keys.yaml"])
    for item in main(objects)["env"]:  # what the kubelet puts in the environment
        source = item.get("valueFrom", {})
        if "fieldRef" in source:
            values[item["name"].lower()] = "chater-gpt-gateway-0"
        elif "secretKeyRef" in source:
            values[item["name"].lower()] = "test-secret"
        else:
            values[item["name"].lower()] = item["value"]
    values["gateway_api_keys_file"] = str(keys_file)

    settings = load_settings(values, llm=False)  # as `main.py gateway` reads them

    built = gateway_config(settings, instance_id(settings))
    assert built.reply_topic == "gpt-gateway-reply-chater-gpt-gateway-0"
    assert built.request_topic == config(objects)["REQUEST_TOPIC"]
    assert settings.gateway_port == 8080


def test_selectors_keep_the_gateway_and_the_service_apart(
    rendered: dict[str, list[Manifest]],
) -> None:
    for target in ("base", "example", "hpa"):
        objects = rendered[target]
        gateway_pod = gateway(objects, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
        service_pod = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
        gateway_selectors = [
            gateway(objects, "StatefulSet")["spec"]["selector"]["matchLabels"],
            gateway(objects, "Service")["spec"]["selector"],
            gateway(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
            gateway(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        ]
        service_selectors = [
            only(objects, "Service")["spec"]["selector"],
            only(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
            only(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        ]
        for selector in gateway_selectors:
            assert selector.items() <= gateway_pod.items(), target
            assert not selector.items() <= service_pod.items(), target
        for selector in service_selectors:
            assert not selector.items() <= gateway_pod.items(), target
        monitor = gateway(objects, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
        assert monitor.items() <= gateway(objects, "Service")["metadata"]["labels"].items()
        assert not monitor.items() <= only(objects, "Service")["metadata"]["labels"].items()


def test_network_policy_lets_in_http_and_out_only_dns_and_kafka(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["example"]
    policy = gateway(objects, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == {8080}
    egress = {(p.get("protocol", "TCP"), p["port"]) for r in policy["egress"] for p in r["ports"]}
    kafka = {int(s.rsplit(":", 1)[1]) for s in config(objects)["BOOTSTRAP_SERVER"].split(",")}
    assert {("UDP", 53), ("TCP", 53)} | {("TCP", port) for port in kafka} <= egress
    assert not {("TCP", 443), ("TCP", 6379)} & egress  # no LLM, no Redis


def test_gateway_settings_are_known_and_not_secret(rendered: dict[str, list[Manifest]]) -> None:
    known = {name.upper() for name in Settings.model_fields}
    keys = set(gateway_config_map(rendered["example"]))
    assert keys <= known, sorted(keys - known)
    assert all(key.startswith("GATEWAY_") for key in keys)
    # The reply prefix is the service's too: it belongs in the shared ConfigMap only.
    assert "GATEWAY_REPLY_TOPIC_PREFIX" not in keys
