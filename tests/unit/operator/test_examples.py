"""Every ChaterGpt in deploy/k8s/examples, found by listing the folder (a new example is
checked without naming it here): the CRD's schema accepts it, the operator renders it
into children Kubernetes accepts, and the service accepts the configuration the pod gets.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chater_operator.render import render_children
from chater_operator.spec import InstanceSpec, Owner, parse_spec

from chater_gpt.config import BackendKind, Settings, load_settings
from chater_gpt.wiring.backends import configured_providers
from tests.unit.operator.test_crd import CrdValidator, as_json_schema, load_crd

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "deploy/k8s/examples").glob("*.yaml"))
# The oldest Kubernetes the manifests support and the newest kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")


def load(path: Path) -> dict[str, Any]:
    example: dict[str, Any] = yaml.safe_load(path.read_text())
    return example


def instance(example: dict[str, Any]) -> InstanceSpec:
    meta = example["metadata"]
    owner = Owner(name=meta["name"], namespace=meta.get("namespace", "default"), uid="uid-1")
    return parse_spec(copy.deepcopy(example["spec"]), owner)


def pod_settings(children: list[dict[str, Any]], files: Path) -> Settings:
    """The service's settings from what the pod gets: the ConfigMap's variables, its files
    where the variables point, and a stand-in value for each secretKeyRef."""
    by_kind = {child["kind"]: child for child in children}
    data = dict(by_kind["ConfigMap"]["data"])
    file_keys = [key for key in data if not key.isupper()]
    for key in file_keys:  # routes.json, models.json: mounted, named by a variable
        (files / key).write_text(data.pop(key))
        (variable,) = [name for name, value in data.items() if value.endswith(f"/{key}")]
        data[variable] = str(files / key)
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    secrets = {item["name"]: f"test-{item['name']}" for item in container.get("env", [])}
    return load_settings({key.lower(): value for key, value in (data | secrets).items()})


def test_the_examples_are_all_found() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"chatergpt.yaml", "chatergpt-routes.yaml", "chatergpt-providers.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_the_crd_schema_accepts_the_example(path: Path) -> None:
    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    problems = [
        error.message for error in CrdValidator(as_json_schema(schema)).iter_errors(load(path))
    ]
    assert problems == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_the_example_renders_children_kubernetes_accepts(path: Path, version: str) -> None:
    for child in render_children(instance(load(path))):
        try:
            kubernetes_validate.validate(child, version, strict=True)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{child['kind']}/{child['metadata']['name']}: {exc.message}")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_the_service_accepts_the_examples_configuration(path: Path, tmp_path: Path) -> None:
    pod_settings(render_children(instance(load(path))), tmp_path)  # raises ConfigError


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_model_the_example_names_has_its_providers_key(path: Path, tmp_path: Path) -> None:
    # Without it the service would send the model to LLM_BACKEND, which does not serve it.
    settings = pod_settings(render_children(instance(load(path))), tmp_path)
    configured = {kind.value for kind in configured_providers(settings)}
    named = [
        settings.model,
        settings.vision_model,
        *settings.fallback_models,
        *(route.model for route in settings.routes if route.model),
    ]
    for model in named:
        provider = settings.catalogue.provider_of(model)
        assert provider is None or provider.value in configured, (model, provider)


def test_the_providers_example_serves_claude_and_gemini_within_its_budgets(
    tmp_path: Path,
) -> None:
    from chater_gpt.catalogue import Provider

    example = load(ROOT / "deploy/k8s/examples/chatergpt-providers.yaml")
    spec = instance(example)
    assert spec.referenced_secrets() == ("llm-provider-keys",)  # no <name>-api-key expected
    settings = pod_settings(render_children(spec), tmp_path)

    assert configured_providers(settings) == [BackendKind.ANTHROPIC, BackendKind.GEMINI]
    catalogue = settings.catalogue
    assert catalogue.provider_of(settings.model) is Provider.ANTHROPIC
    assert catalogue.provider_of(settings.vision_model) is Provider.ANTHROPIC
    (fallback,) = settings.fallback_models
    assert catalogue.provider_of(fallback) is Provider.GEMINI
    gemini = next(route for route in settings.routes if route.name == "gemini")
    assert gemini.model is not None
    assert catalogue.provider_of(gemini.model) is Provider.GEMINI
    # Every model it names has a price: the money budgets count them all.
    for model in (settings.model, settings.vision_model, fallback, gemini.model):
        assert catalogue.cost_usd(model, 1_000_000, 1_000_000) > 0, model
    assert settings.daily_cost_limit_usd == 25
    assert settings.user_daily_cost_limit_usd == 0.5
    assert settings.anthropic_api_key is not None
    assert settings.gemini_api_key is not None
    assert settings.openai_api_key is None
