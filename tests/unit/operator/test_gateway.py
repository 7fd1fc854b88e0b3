"""spec.gateway: the CRD's schema, the rendered StatefulSet, Service and PodDisruptionBudget
(Kubernetes accepts them, they belong to the instance, the gateway loads its settings
through the service's own `load_settings`), and an instance without it unchanged."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chater_operator.errors import InvalidSpecError
from chater_operator.render import managed_children, render_children
from chater_operator.spec import Owner, parse_spec
from chater_operator.status import Rollout, build_status

from chater_gpt.config import load_settings
from chater_gpt.wiring.gateway import api_keys, gateway_config, instance_id
from tests.unit.operator.samples import FULL_SPEC, README_EXAMPLE
from tests.unit.operator.test_crd import CrdValidator, as_json_schema, load_crd

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = yaml.safe_load((ROOT / "deploy/k8s/examples/chatergpt-gateway.yaml").read_text())
OWNER = Owner(name="chater-gpt-instance", namespace="chater-gpt", uid="uid-1", generation=1)
KEYS = {"name": "gw-keys", "key": "keys.yaml"}
WITH_GATEWAY = {**README_EXAMPLE["spec"], "gateway": {"enabled": True, "apiKeysSecret": KEYS}}
Manifest = dict[str, Any]


def render(spec: dict[str, Any], owner: Owner = OWNER) -> list[Manifest]:
    return render_children(parse_spec(copy.deepcopy(spec), owner))


def gateway_children(children: list[Manifest]) -> dict[str, Manifest]:
    return {c["kind"]: c for c in children if c["metadata"]["name"].endswith("-gateway")}


def main(children: list[Manifest]) -> Manifest:
    workload = gateway_children(children)["StatefulSet"]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return CrdValidator(as_json_schema(schema))


@pytest.mark.parametrize(
    ("gateway", "valid"),
    [
        ({"enabled": True}, True),
        (EXAMPLE["spec"]["gateway"], True),
        ({"enabled": False, "replicas": 0}, True),
        ({"enabled": True, "replyTopicPrefix": "gw-reply.", "requestTopic": "gpt-send"}, True),
        ({"enabled": "yes"}, False),
        ({"enabled": True, "replicas": -1}, False),
        ({"enabled": True, "port": 0}, False),
        ({"enabled": True, "apiKeysSecret": {"name": "k"}}, False),
        ({"enabled": True, "apiKeysSecret": {"name": "k", "key": "../keys"}}, False),
        ({"enabled": True, "timeoutSeconds": 0}, False),
        ({"enabled": True, "streamIdleSeconds": 0}, False),
        ({"enabled": True, "autoscaling": {"enabled": True, "maxReplicas": 6}}, True),
        ({"enabled": True, "autoscaling": {"enabled": True, "minReplicas": 0}}, False),
        ({"enabled": True, "autoscaling": {"cpuUtilization": 101}}, False),
        ({"enabled": True, "maxBodyBytes": 10}, False),
        ({"enabled": True, "corsOrigins": "*"}, False),
        ({"enabled": True, "replyTopicPrefix": ""}, False),
        ({"enabled": True, "instanceId": "gw-0"}, False),  # the pod name, never the CR's
    ],
)
def test_the_crd_schema_checks_the_gateway(
    validator: Any, gateway: dict[str, Any], valid: bool
) -> None:
    obj = copy.deepcopy(README_EXAMPLE)
    obj["spec"]["gateway"] = gateway
    assert (list(validator.iter_errors(obj)) == []) is valid


def test_no_gateway_unless_enabled() -> None:
    for spec in (README_EXAMPLE["spec"], {**README_EXAMPLE["spec"], "gateway": {"replicas": 3}}):
        assert all(child["kind"] != "StatefulSet" for child in render(spec))


def test_enabling_it_leaves_the_services_children_as_they_were() -> None:
    # No roll of the service's pods, no re-apply of its children.
    before = render(README_EXAMPLE["spec"])
    after = render(WITH_GATEWAY)
    assert after[: len(before)] == before
    assert [c["kind"] for c in after[len(before) :]] == [
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
    ]


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_kubernetes_accepts_the_gateways_children(version: str) -> None:
    for spec in (WITH_GATEWAY, {**FULL_SPEC, "gateway": EXAMPLE["spec"]["gateway"]}):
        for child in gateway_children(render(spec)).values():
            kubernetes_validate.validate(child, version, strict=True)


def test_the_gateway_belongs_to_the_instance_and_selects_only_its_own_pods() -> None:
    children = render(WITH_GATEWAY)
    gateway = gateway_children(children)
    service_selector = next(c for c in children if c["kind"] == "Deployment")["spec"]["selector"]
    pod_labels = gateway["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    for child in gateway.values():
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"]) == ("ChaterGpt", "uid-1")
        assert child["metadata"]["labels"]["chater.example.com/owner-uid"] == "uid-1"
    selectors = [
        gateway["StatefulSet"]["spec"]["selector"]["matchLabels"],
        gateway["Service"]["spec"]["selector"],
        gateway["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    assert not service_selector["matchLabels"].items() <= pod_labels.items()
    names = {(kind, name) for _, kind, name in managed_children(OWNER.name)}
    assert {(c["kind"], c["metadata"]["name"]) for c in gateway.values()} <= names


def test_each_pod_is_an_instance_with_its_keys_file_read_only() -> None:
    children = render(WITH_GATEWAY)
    workload = gateway_children(children)["StatefulSet"]
    assert workload["spec"]["podManagementPolicy"] == "Parallel"
    assert workload["spec"]["replicas"] == 2
    assert (
        workload["spec"]["serviceName"] == gateway_children(children)["Service"]["metadata"]["name"]
    )
    container = main(children)
    env = {item["name"]: item for item in container["env"]}
    assert env["GATEWAY_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["command"] == ["python", "main.py", "gateway"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "api-keys"]
    assert mount["readOnly"] is True
    assert env["GATEWAY_API_KEYS_FILE"]["value"] == f"{mount['mountPath']}/keys.yaml"
    pod = workload["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "api-keys"]
    assert volume["secret"]["secretName"] == "gw-keys"
    assert "optional" not in volume["secret"]
    assert pod["terminationGracePeriodSeconds"] > float(
        env["GATEWAY_SHUTDOWN_GRACE_SECONDS"]["value"]
    )
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_only_kafkas_secrets_and_redis_reach_the_gateway() -> None:
    spec = {**FULL_SPEC, "providerKeys": {"gemini": KEYS}, "gateway": {"enabled": True}}
    env = main(render(spec))["env"]
    refs = {item["name"] for item in env if "secretKeyRef" in item.get("valueFrom", {})}
    # No provider's key: the gateway calls no LLM; Redis holds the job API's state.
    assert refs == {
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_KEY_PASSWORD",
        "REDIS_URL",
    }
    assert all("value" not in item for item in env if item["name"] in refs)


def test_the_examples_gateway_loads_its_settings_as_the_gateway_reads_them(
    tmp_path: Path,
) -> None:
    meta = EXAMPLE["metadata"]
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid="uid-1")
    children = render(EXAMPLE["spec"], owner)
    config_map = next(c for c in children if c["kind"] == "ConfigMap")
    values: dict[str, Any] = {k.lower(): v for k, v in config_map["data"].items()}
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("keys:\n  " + "a" * 64 + ": shop\n")
    for item in main(children)["env"]:  # what the kubelet puts in the environment
        source = item.get("valueFrom", {})
        value = "chater-gpt-gateway-gateway-0" if "fieldRef" in source else item.get("value")
        values[item["name"].lower()] = value if value is not None else "test-secret"
    values["gateway_api_keys_file"] = str(keys_file)

    settings = load_settings(values, llm=False)  # as `main.py gateway` reads them

    config = gateway_config(settings, instance_id(settings))
    assert config.reply_topic == "gpt-gateway-reply-chater-gpt-gateway-gateway-0"
    assert config.request_topic == "gpt-send"
    assert (config.timeout_seconds, config.max_body_bytes) == (90, 8388608)
    assert config.stream_idle_seconds == 45
    assert config.cors_origins == ("https://chat.example.com",)
    assert len(api_keys(settings)) == 1
    assert settings.gateway_port == main(children)["ports"][0]["containerPort"] == 8080


def test_a_reply_prefix_is_the_services_too() -> None:
    spec = {**WITH_GATEWAY, "gateway": {"enabled": True, "replyTopicPrefix": "gw-reply."}}
    data = next(c for c in render(spec) if c["kind"] == "ConfigMap")["data"]
    assert data["GATEWAY_REPLY_TOPIC_PREFIX"] == "gw-reply."  # the pods of both read it
    values = {k.lower(): v for k, v in data.items()} | {"openai_api_key": "sk-test"}
    assert load_settings(values, llm=False).gateway_reply_topic_prefix == "gw-reply."


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {**WITH_GATEWAY, "extraConfig": {"GATEWAY_INSTANCE_ID": "x"}},
            "GATEWAY_INSTANCE_ID",
        ),
        (
            {
                **README_EXAMPLE["spec"],
                "gateway": {"timeoutSeconds": 30},
                "extraConfig": {"GATEWAY_TIMEOUT_SECONDS": "60"},
            },
            "timeoutSeconds",
        ),
        ({**WITH_GATEWAY, "gateway": {"enabled": True, "port": "8080"}}, "spec.gateway.port"),
        (
            {
                **WITH_GATEWAY,
                "gateway": {"enabled": True, "autoscaling": {"minReplicas": 4, "maxReplicas": 3}},
            },
            "spec.gateway.autoscaling.maxReplicas must be at least minReplicas",
        ),
    ],
)
def test_what_the_schema_cannot_say_is_refused(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError, match=field):
        parse_spec(copy.deepcopy(spec), OWNER)


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_an_autoscaled_gateway_is_an_hpa_on_its_stateful_sets_cpu(version: str) -> None:
    scaling = {"enabled": True, "minReplicas": 2, "maxReplicas": 6, "cpuUtilization": 60}
    spec = {**WITH_GATEWAY, "gateway": {**WITH_GATEWAY["gateway"], "autoscaling": scaling}}
    gateway = gateway_children(render(spec))
    hpa = gateway["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": gateway["StatefulSet"]["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    assert "replicas" not in gateway["StatefulSet"]["spec"]  # the autoscaler's to set
    # The service's own autoscaler (a different name) is not the gateway's.
    assert hpa["metadata"]["name"] == "chater-gpt-instance-gateway"
    for child in gateway.values():
        kubernetes_validate.validate(child, version, strict=True)
    # Off again: the HPA is no longer rendered (the reconciler prunes it), replicas return.
    off = gateway_children(render(WITH_GATEWAY))
    assert "HorizontalPodAutoscaler" not in off
    assert off["StatefulSet"]["spec"]["replicas"] == 2


def test_a_name_too_long_for_the_pods_is_refused() -> None:
    owner = Owner(name="x" * 45, namespace="chater-gpt", uid="u")
    with pytest.raises(InvalidSpecError, match="shorter ChaterGpt name"):
        parse_spec(copy.deepcopy(WITH_GATEWAY), owner)
    parse_spec(copy.deepcopy(README_EXAMPLE["spec"]), owner)  # no gateway: no limit


def test_the_status_reports_the_gateways_ready_replicas() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rollout = Rollout(wanted=3, ready=2, updated=3, total=3, observed=True)
    common: dict[str, Any] = {"generation": 1, "namespace": "n", "problem": None, "now": now}
    status = build_status(previous={}, rollout=rollout, gateway=rollout, **common)
    assert status["gateway"] == {"replicas": 3, "readyReplicas": 2}
    assert "gateway" not in build_status(previous={}, rollout=rollout, **common)
    # Disabled after it reported: the merge patch removes it.
    assert build_status(previous=status, rollout=rollout, **common)["gateway"] is None


def test_the_crd_shows_the_gateway_in_wide_output() -> None:
    (version,) = load_crd()["spec"]["versions"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Gateway"] == ".status.gateway.readyReplicas"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    with pytest.raises(jsonschema.ValidationError):  # the status schema is typed too
        jsonschema.validate({"gateway": {"readyReplicas": "2"}}, as_json_schema(status))
