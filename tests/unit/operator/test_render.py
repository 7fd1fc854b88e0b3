"""Render: a ChaterGpt spec -> child manifests that Kubernetes accepts, with no secret inside."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chater_operator.render import render_children
from chater_operator.spec import SECRET_VARIABLES, InstanceSpec, Owner, parse_spec

from tests.unit.operator.samples import (
    CATALOGUE_MODELS,
    FULL_SPEC,
    PROVIDER_KEYS,
    README_EXAMPLE,
    ROUTES,
)

K8S_VERSION = "1.30"
OWNER = Owner(name="chater-gpt-instance", namespace="chater-gpt", uid="uid-1", generation=1)
ROUTES_EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "deploy/k8s/examples/chatergpt-routes.yaml").read_text()
)
WITH_ROUTES = {**README_EXAMPLE["spec"], "routes": ROUTES}
CONFIG_HASH = "chater.example.com/config-hash"


def parse(spec: dict[str, Any], owner: Owner = OWNER) -> InstanceSpec:
    return parse_spec(copy.deepcopy(spec), owner)


def by_kind(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {child["kind"]: child for child in children}


def container(children: list[dict[str, Any]]) -> dict[str, Any]:
    main: dict[str, Any] = by_kind(children)["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return main


@pytest.mark.parametrize(
    "spec",
    [README_EXAMPLE["spec"], FULL_SPEC, ROUTES_EXAMPLE["spec"]],
    ids=["readme", "full", "routes-example"],
)
def test_children_validate_against_the_kubernetes_schemas(spec: dict[str, Any]) -> None:
    children = render_children(parse(spec))
    for child in children:
        # strict: an unknown or misspelt field fails, as `kubectl apply --validate=strict` would.
        kubernetes_validate.validate(child, K8S_VERSION, strict=True)


def test_readme_example_renders_the_four_children_in_the_spec_namespace() -> None:
    children = render_children(parse(README_EXAMPLE["spec"]))
    assert sorted(child["kind"] for child in children) == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    ]
    assert {child["metadata"]["namespace"] for child in children} == {"chater-gpt"}
    kinds = by_kind(children)
    assert kinds["Deployment"]["spec"]["replicas"] == 3
    data = kinds["ConfigMap"]["data"]
    assert data["BOOTSTRAP_SERVER"] == "kafka-service:9092"
    assert data["MODEL"] == "gpt-4o-mini"
    assert data["VISION_MODEL"] == "gpt-4o-latest"
    # OpenAI's own API needs a key: the conventional Secret is referenced, never a value.
    assert container(children)["env"] == [
        {
            "name": "OPENAI_API_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": "chater-gpt-instance-api-key", "key": "OPENAI_API_KEY"}
            },
        }
    ]


def _walk(value: Any) -> Any:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_secrets_reach_the_pod_only_as_secret_key_refs() -> None:
    children = render_children(parse(FULL_SPEC))
    config = by_kind(children)["ConfigMap"]["data"]
    assert not SECRET_VARIABLES & set(config), "a secret variable landed in the ConfigMap"
    env = {item["name"]: item for item in container(children)["env"]}
    assert set(env) == {
        "OPENAI_API_KEY",
        "REDIS_URL",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_KEY_PASSWORD",
    }
    assert env["OPENAI_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "llm-keys", "key": "openai"}
    }
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "kafka-user", "key": "pass"}
    }
    # Nowhere in any object: no env entry with a literal value for a secret variable.
    for node in _walk(children):
        if isinstance(node, dict) and node.get("name") in SECRET_VARIABLES:
            assert "value" not in node, node
            assert set(node["valueFrom"]) == {"secretKeyRef"}


def test_each_provider_key_reaches_its_own_variable() -> None:
    for backend, variable in (("anthropic", "ANTHROPIC_API_KEY"), ("gemini", "GEMINI_API_KEY")):
        children = render_children(parse({**FULL_SPEC, "backend": backend}))
        env = {item["name"]: item for item in container(children)["env"]}
        assert env[variable]["valueFrom"] == {"secretKeyRef": {"name": "llm-keys", "key": "openai"}}
        assert "OPENAI_API_KEY" not in env
        assert by_kind(children)["ConfigMap"]["data"]["LLM_BACKEND"] == backend


def test_tls_files_are_mounted_read_only_from_their_secret() -> None:
    children = render_children(parse(FULL_SPEC))
    pod = by_kind(children)["Deployment"]["spec"]["template"]["spec"]
    tls = next(v for v in pod["volumes"] if v["name"] == "kafka-tls")
    assert tls["secret"]["secretName"] == "kafka-tls"
    mount = next(m for m in container(children)["volumeMounts"] if m["name"] == "kafka-tls")
    assert mount["readOnly"] is True
    assert by_kind(children)["ConfigMap"]["data"]["KAFKA_SSL_CA_LOCATION"] == (
        f"{mount['mountPath']}/ca.crt"
    )


def test_pod_is_hardened_probed_and_bounded() -> None:
    children = render_children(parse(README_EXAMPLE["spec"]))
    pod = by_kind(children)["Deployment"]["spec"]["template"]["spec"]
    main = container(children)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["ports"][0]["containerPort"] == 8000
    assert main["resources"] == {
        "requests": {"memory": "256Mi", "cpu": "250m"},
        "limits": {"memory": "512Mi", "cpu": "500m"},
    }
    # The service drains for SHUTDOWN_GRACE_SECONDS (25) before Kubernetes may kill it.
    assert pod["terminationGracePeriodSeconds"] > 25
    service = by_kind(children)["Service"]
    assert service["spec"]["ports"][0]["port"] == 8000


def test_user_resources_and_grace_replace_the_defaults() -> None:
    children = render_children(parse(FULL_SPEC))
    assert container(children)["resources"] == FULL_SPEC["resources"]
    pod = by_kind(children)["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > FULL_SPEC["shutdownGraceSeconds"]
    assert pod["affinity"] == FULL_SPEC["affinity"]


def test_autoscaler_only_when_asked_and_then_it_owns_the_replica_count() -> None:
    plain = by_kind(render_children(parse(README_EXAMPLE["spec"])))
    assert not {"HorizontalPodAutoscaler", "ScaledObject"} & set(plain)
    assert plain["Deployment"]["spec"]["replicas"] == 3

    hpa = by_kind(render_children(parse(FULL_SPEC)))
    assert "replicas" not in hpa["Deployment"]["spec"]
    assert hpa["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
    assert hpa["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 8

    keda_spec = {**README_EXAMPLE["spec"], "autoscaling": {"enabled": True, "lagThreshold": 20}}
    keda = by_kind(render_children(parse(keda_spec)))
    assert "HorizontalPodAutoscaler" not in keda
    trigger = keda["ScaledObject"]["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "chater-gpt-group"
    assert "topic" not in trigger["metadata"]  # the lag of every route's topic counts
    assert trigger["metadata"]["lagThreshold"] == "20"
    assert keda["ScaledObject"]["spec"]["scaleTargetRef"] == {"name": "chater-gpt-instance"}


def test_owner_references_only_for_children_in_the_crs_namespace() -> None:
    same = render_children(parse(README_EXAMPLE["spec"]))  # CR and children in chater-gpt
    for child in same:
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref["uid"] == "uid-1"
        assert ref["controller"] is True
    elsewhere = Owner(name="chater-gpt-instance", namespace="default", uid="uid-1")
    for child in render_children(parse(README_EXAMPLE["spec"], elsewhere)):
        assert "ownerReferences" not in child["metadata"]
        assert child["metadata"]["labels"]["chater.example.com/owner-uid"] == "uid-1"


def test_a_replica_change_renders_a_different_deployment_only() -> None:
    before = by_kind(render_children(parse(README_EXAMPLE["spec"])))
    after = by_kind(render_children(parse({**README_EXAMPLE["spec"], "replicas": 5})))
    changed = {kind for kind in before if before[kind] != after[kind]}
    assert changed == {"Deployment"}
    # ... and the pods themselves are not rolled.
    assert before["Deployment"]["spec"]["template"] == after["Deployment"]["spec"]["template"]


def test_a_settings_change_rolls_the_pods() -> None:
    before = by_kind(render_children(parse(README_EXAMPLE["spec"])))
    after = by_kind(render_children(parse({**README_EXAMPLE["spec"], "model": "gpt-4.1-mini"})))
    annotation = "chater.example.com/config-hash"
    old = before["Deployment"]["spec"]["template"]["metadata"]["annotations"][annotation]
    new = after["Deployment"]["spec"]["template"]["metadata"]["annotations"][annotation]
    assert old != new


def test_rendering_is_deterministic() -> None:
    first = render_children(parse(FULL_SPEC))
    second = render_children(parse(FULL_SPEC))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def pod_template(children: list[dict[str, Any]]) -> dict[str, Any]:
    template: dict[str, Any] = by_kind(children)["Deployment"]["spec"]["template"]
    return template


def test_routes_become_the_services_routes_file_in_the_config_map() -> None:
    data = by_kind(render_children(parse(WITH_ROUTES)))["ConfigMap"]["data"]
    # The service's own format: snake_case keys, optional fields only when set.
    assert json.loads(data["routes.json"]) == {
        "routes": [
            {
                "name": "gemini",
                "request_topic": "gemini-send",
                "reply_topic": "gemini-response",
                "shape": "chat",
                "model": "gemini-2.0-flash",
                "system_prompt": "Answer in one JSON object.",
                "max_tokens": 800,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "answer",
                        "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                        "strict": True,
                    },
                },
            },
            {
                "name": "photo-eu",
                "request_topic": "photo-send-eu",
                "reply_topic": "photo-response-eu",
                "shape": "chat",
            },
        ]
    }
    assert data["ROUTES_FILE"] == "/etc/chater-gpt/routes/routes.json"


def test_the_routes_file_is_mounted_read_only_where_routes_file_points() -> None:
    children = render_children(parse(WITH_ROUTES))
    pod = pod_template(children)["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == by_kind(children)["ConfigMap"]["metadata"]["name"]
    assert volume["configMap"]["items"] == [{"key": "routes.json", "path": "routes.json"}]
    (mount,) = [m for m in container(children)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    routes_file = by_kind(children)["ConfigMap"]["data"]["ROUTES_FILE"]
    assert routes_file == f"{mount['mountPath']}/routes.json"
    # ROUTES_FILE reaches the container through the ConfigMap it takes its environment from.
    assert container(children)["envFrom"] == [
        {"configMapRef": {"name": volume["configMap"]["name"]}}
    ]


def test_no_routes_no_routes_file() -> None:
    for spec in (README_EXAMPLE["spec"], {**README_EXAMPLE["spec"], "routes": []}):
        children = render_children(parse(spec))
        data = by_kind(children)["ConfigMap"]["data"]
        assert "ROUTES_FILE" not in data
        assert "routes.json" not in data
        assert [v["name"] for v in pod_template(children)["spec"]["volumes"]] == ["tmp"]
        assert [m["name"] for m in container(children)["volumeMounts"]] == ["tmp"]


def test_a_routes_change_rolls_the_pods() -> None:
    before = by_kind(render_children(parse(WITH_ROUTES)))
    changed_routes = [{**ROUTES[0], "maxTokens": 400}, ROUTES[1]]
    after = by_kind(render_children(parse({**WITH_ROUTES, "routes": changed_routes})))
    assert before["ConfigMap"]["data"]["routes.json"] != after["ConfigMap"]["data"]["routes.json"]
    old = before["Deployment"]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    new = after["Deployment"]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    assert old != new


def test_the_rendered_settings_and_routes_file_are_a_configuration_the_service_accepts(
    tmp_path: Path,
) -> None:
    from chater_gpt.config import load_settings  # the service's own validation
    from chater_gpt.routes import RouteShape

    spec = {**ROUTES_EXAMPLE["spec"], "isDev": True}
    owner = Owner(name="chater-gpt-routes", namespace="chater-gpt", uid="uid-1")
    data = dict(by_kind(render_children(parse(spec, owner)))["ConfigMap"]["data"])
    routes_file = tmp_path / "routes.json"  # what the pod sees at ROUTES_FILE
    routes_file.write_text(data.pop("routes.json"))
    values = {key.lower(): value for key, value in data.items()}
    values |= {"routes_file": str(routes_file), "openai_api_key": "sk-test"}

    settings = load_settings(values)  # raises ConfigError, naming the variable

    assert settings.is_dev is True
    assert settings.redis_key_prefix == "chater:chater-gpt:chater-gpt-routes:"
    served = {route.name: route for route in settings.routes}
    assert (served["gemini"].request_topic, served["gemini"].reply_topic) == (
        "gemini-send_dev",
        "gemini-response_dev",
    )
    assert served["gemini"].max_tokens == 800
    assert served["meal-photo"].shape is RouteShape.PHOTO
    assert served["meal-photo"].response_format is not None
    assert served["meal-photo"].response_format.type == "json_schema"


def test_is_dev_sets_is_dev() -> None:
    plain = by_kind(render_children(parse(README_EXAMPLE["spec"])))
    assert "IS_DEV" not in plain["ConfigMap"]["data"]

    dev_spec = {**README_EXAMPLE["spec"], "isDev": True, "autoscaling": {"enabled": True}}
    dev = by_kind(render_children(parse(dev_spec)))
    assert dev["ConfigMap"]["data"]["IS_DEV"] == "true"


def test_each_instance_gets_its_own_redis_key_prefix_unless_the_cr_sets_one() -> None:
    data = by_kind(render_children(parse(README_EXAMPLE["spec"])))["ConfigMap"]["data"]
    assert data["REDIS_KEY_PREFIX"] == "chater:chater-gpt:chater-gpt-instance:"
    other = Owner(name="chater-gpt-instance", namespace="team-b", uid="uid-2")
    data = by_kind(render_children(parse(README_EXAMPLE["spec"], other)))["ConfigMap"]["data"]
    assert data["REDIS_KEY_PREFIX"] == "chater:team-b:chater-gpt-instance:"

    explicit = {**README_EXAMPLE["spec"], "extraConfig": {"REDIS_KEY_PREFIX": "chater:"}}
    data = by_kind(render_children(parse(explicit)))["ConfigMap"]["data"]
    assert data["REDIS_KEY_PREFIX"] == "chater:"


def test_money_limits_become_the_services_cost_limits() -> None:
    spec = {**README_EXAMPLE["spec"], "dailyCostLimitUsd": 25, "userDailyCostLimitUsd": 0.5}
    data = by_kind(render_children(parse(spec)))["ConfigMap"]["data"]
    assert (data["DAILY_COST_LIMIT_USD"], data["USER_DAILY_COST_LIMIT_USD"]) == ("25", "0.5")
    plain = by_kind(render_children(parse(README_EXAMPLE["spec"])))["ConfigMap"]["data"]
    assert not {"DAILY_COST_LIMIT_USD", "USER_DAILY_COST_LIMIT_USD"} & set(plain)


def test_the_rendered_money_limits_are_what_the_service_reads() -> None:
    from chater_gpt.config import load_settings

    data = by_kind(render_children(parse(FULL_SPEC)))["ConfigMap"]["data"]
    values = {key.lower(): value for key, value in data.items() if key != "routes.json"}
    values.pop("routes_file")
    settings = load_settings(values | {"openai_api_key": "sk-test"})
    assert settings.daily_cost_limit_usd == FULL_SPEC["dailyCostLimitUsd"]
    assert settings.user_daily_cost_limit_usd == FULL_SPEC["userDailyCostLimitUsd"]


# What the existing kinds of spec rendered before providerKeys, modelCatalogue and the money
# limits existed (each child's rendered-hash annotation). A spec that sets none of the new
# fields must render byte for byte the same: a different hash would make the operator
# re-apply every running instance's children and, for the Deployment, roll its pods.
# Change these only on purpose, saying so in the commit.
RENDERED_BEFORE_THE_PROVIDER_FIELDS = {
    "readme": {
        "ConfigMap": "fcb7d6ba36a2c1927c94",
        "Deployment": "b033f2d2ccca496884eb",
        "Service": "66dbb49a3a6171bb4751",
        "PodDisruptionBudget": "8c69d2d6dd4f491dd994",
    },
    "full": {
        "ConfigMap": "6f94724deab0aa6def9b",
        "Deployment": "e4e9bb33a52cbbd87130",
        "Service": "3af3b7d7cf858d9549ea",
        "PodDisruptionBudget": "a725bb927801f67f0028",
        "HorizontalPodAutoscaler": "ab2221413ed49395365d",
    },
    "routes-example": {
        "ConfigMap": "5e593aa94bb2f8889cf1",
        "Deployment": "c3c4d7941ba267830d28",
        "Service": "66dbb49a3a6171bb4751",
        "PodDisruptionBudget": "8c69d2d6dd4f491dd994",
    },
}
NEW_FIELDS = ("providerKeys", "modelCatalogue", "dailyCostLimitUsd", "userDailyCostLimitUsd")


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("readme", README_EXAMPLE["spec"]),
        ("full", FULL_SPEC),
        ("routes-example", ROUTES_EXAMPLE["spec"]),
    ],
)
def test_specs_without_the_new_fields_render_as_before(name: str, spec: dict[str, Any]) -> None:
    older = {key: value for key, value in spec.items() if key not in NEW_FIELDS}
    children = render_children(parse(older))
    hashes = {
        child["kind"]: child["metadata"]["annotations"]["chater.example.com/rendered-hash"]
        for child in children
    }
    assert hashes == RENDERED_BEFORE_THE_PROVIDER_FIELDS[name]


# An OpenAI-backed instance that also answers Claude and Gemini models.
WITH_PROVIDER_KEYS = {
    **README_EXAMPLE["spec"],
    "providerKeys": {key: PROVIDER_KEYS[key] for key in ("anthropic", "gemini")},
}


def secret_refs(children: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container(children)["env"]}


def test_each_provider_key_is_its_providers_variable_from_its_secret() -> None:
    children = render_children(parse(WITH_PROVIDER_KEYS))
    assert secret_refs(children) == {
        # The backend's own key first, as before (here the conventional Secret).
        "OPENAI_API_KEY": {"name": "chater-gpt-instance-api-key", "key": "OPENAI_API_KEY"},
        "ANTHROPIC_API_KEY": {"name": "llm-keys", "key": "ANTHROPIC_API_KEY"},
        "GEMINI_API_KEY": {"name": "llm-keys", "key": "GEMINI_API_KEY"},
    }
    # Never a value, never in the ConfigMap.
    assert all(set(item) == {"name", "valueFrom"} for item in container(children)["env"])
    assert not SECRET_VARIABLES & set(by_kind(children)["ConfigMap"]["data"])
    for child in children:
        kubernetes_validate.validate(child, K8S_VERSION, strict=True)


def test_the_backends_key_may_come_from_provider_keys() -> None:
    spec = {**README_EXAMPLE["spec"], "backend": "gemini", "providerKeys": PROVIDER_KEYS}
    refs = secret_refs(render_children(parse(spec)))
    assert list(refs) == ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"]
    assert refs["GEMINI_API_KEY"] == {"name": "llm-keys", "key": "GEMINI_API_KEY"}
    assert refs["OPENAI_API_KEY"] == {"name": "openai-key", "key": "token"}
    # KoboldCPP's key too, beside apiKeySecretRef for the openai backend.
    kobold = {
        **FULL_SPEC,
        "koboldcppUrl": "http://kobold:5001",
        "providerKeys": {"koboldcpp": {"name": "kobold", "key": "k"}},
    }
    refs = secret_refs(render_children(parse(kobold)))
    assert refs["KOBOLDCPP_API_KEY"] == {"name": "kobold", "key": "k"}
    assert refs["OPENAI_API_KEY"] == {"name": "llm-keys", "key": "openai"}


def test_a_provider_key_change_rolls_the_pods() -> None:
    # env is part of the pod template: a new key reference is a new template.
    before = pod_template(render_children(parse(README_EXAMPLE["spec"])))
    after = pod_template(render_children(parse(WITH_PROVIDER_KEYS)))
    assert before["spec"]["containers"][0]["env"] != after["spec"]["containers"][0]["env"]


def test_with_the_rendered_keys_the_service_serves_every_provider() -> None:
    from chater_gpt.config import BackendKind, load_settings
    from chater_gpt.wiring.backends import configured_providers

    children = render_children(parse(WITH_PROVIDER_KEYS))
    values = {key.lower(): value for key, value in by_kind(children)["ConfigMap"]["data"].items()}
    # What the kubelet puts in the environment from each secretKeyRef.
    values |= {name.lower(): f"test-{name}" for name in secret_refs(children)}
    settings = load_settings(values)
    assert configured_providers(settings) == [
        BackendKind.OPENAI,
        BackendKind.ANTHROPIC,
        BackendKind.GEMINI,
    ]


ROOT = Path(__file__).resolve().parents[3]
WITH_CATALOGUE = {**WITH_ROUTES, "modelCatalogue": {"models": CATALOGUE_MODELS}}
WITH_CATALOGUE_MAP = {
    **README_EXAMPLE["spec"],
    "modelCatalogue": {"configMapRef": {"name": "llm-models", "key": "models.yaml"}},
}


def volume_and_mount(children: list[dict[str, Any]], name: str) -> tuple[Any, Any]:
    (volume,) = [v for v in pod_template(children)["spec"]["volumes"] if v["name"] == name]
    (mount,) = [m for m in container(children)["volumeMounts"] if m["name"] == name]
    return volume, mount


def test_an_inline_catalogue_is_a_file_of_the_config_map_mounted_like_the_routes_file() -> None:
    children = render_children(parse(WITH_CATALOGUE))
    config_map = by_kind(children)["ConfigMap"]
    data = config_map["data"]
    # The service's own format: the same document as its example file.
    example = yaml.safe_load((ROOT / "deploy/examples/models.yaml").read_text())
    assert json.loads(data["models.json"]) == example
    volume, mount = volume_and_mount(children, "model-catalogue")
    assert volume["configMap"] == {
        "name": config_map["metadata"]["name"],
        "defaultMode": 0o444,
        "items": [{"key": "models.json", "path": "models.json"}],
    }
    assert mount["readOnly"] is True
    assert data["MODEL_CATALOGUE_FILE"] == f"{mount['mountPath']}/models.json"
    # Beside the routes file, each in its own directory.
    _, routes_mount = volume_and_mount(children, "routes")
    assert routes_mount["mountPath"] != mount["mountPath"]
    assert data["ROUTES_FILE"] == f"{routes_mount['mountPath']}/routes.json"
    for child in children:
        kubernetes_validate.validate(child, K8S_VERSION, strict=True)


def test_a_catalogue_config_map_is_mounted_as_its_key() -> None:
    children = render_children(parse(WITH_CATALOGUE_MAP))
    data = by_kind(children)["ConfigMap"]["data"]
    volume, mount = volume_and_mount(children, "model-catalogue")
    assert volume["configMap"] == {
        "name": "llm-models",
        "defaultMode": 0o444,
        "items": [{"key": "models.yaml", "path": "models.yaml"}],
    }
    # The suffix stays: the service reads .yaml as YAML, anything else as JSON.
    assert data["MODEL_CATALOGUE_FILE"] == f"{mount['mountPath']}/models.yaml"
    assert "models.json" not in data
    for child in children:
        kubernetes_validate.validate(child, K8S_VERSION, strict=True)


def test_a_catalogue_change_rolls_the_pods() -> None:
    before = pod_template(render_children(parse(WITH_CATALOGUE)))
    models = {**CATALOGUE_MODELS, "gpt-4o-mini": {"prices": {"input": 0.1, "output": 0.4}}}
    changed = {**WITH_CATALOGUE, "modelCatalogue": {"models": models}}
    after = pod_template(render_children(parse(changed)))
    old = before["metadata"]["annotations"][CONFIG_HASH]
    assert after["metadata"]["annotations"][CONFIG_HASH] != old


def test_the_rendered_catalogue_is_one_the_service_accepts(tmp_path: Path) -> None:
    from chater_gpt.catalogue import Provider
    from chater_gpt.config import load_settings

    data = dict(by_kind(render_children(parse(WITH_CATALOGUE)))["ConfigMap"]["data"])
    for key in ("routes.json", "models.json"):  # the files, where the pod sees them
        (tmp_path / key).write_text(data.pop(key))
    values = {key.lower(): value for key, value in data.items()}
    values |= {
        "routes_file": str(tmp_path / "routes.json"),
        "model_catalogue_file": str(tmp_path / "models.json"),
        "openai_api_key": "sk-test",
    }
    catalogue = load_settings(values).catalogue
    before, after = date(2027, 6, 30), date(2027, 7, 1)  # the sample's price change
    assert catalogue.cost_usd("gpt-4o-mini", 1_000_000, 0, day=before) == pytest.approx(0.12)
    assert catalogue.cost_usd("gpt-4o-mini", 1_000_000, 0, day=after) == pytest.approx(0.10)
    assert catalogue.context_window("smollm2-135m-instruct") == 8192
    assert catalogue.provider_of("gemini-3.1-pro-preview") is Provider.GEMINI
