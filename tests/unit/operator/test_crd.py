"""The CRD's own openAPIV3Schema accepts the README example and refuses invalid specs.

jsonschema checks the schema as the API server does for these keywords. The
Kubernetes extensions are mapped: `x-kubernetes-preserve-unknown-fields` keeps
unknown fields; elsewhere unknown fields are refused, as `kubectl apply`
(strict field validation, the default) refuses them; a list of
`x-kubernetes-list-type: map` refuses two items with the same keys; OpenAPI 3.0's boolean
`exclusiveMinimum` becomes draft 7's number. CEL rules
(`x-kubernetes-validations`) are left to the API server; spec.py repeats them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.unit.operator.samples import (
    CATALOGUE_MODELS,
    FULL_SPEC,
    PROVIDER_KEYS,
    README_EXAMPLE,
    ROUTES,
)

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "deploy/k8s/operator/crd.yaml"
EXAMPLE_PATH = ROOT / "deploy/k8s/examples/chatergpt.yaml"
ROUTES_EXAMPLE_PATH = ROOT / "deploy/k8s/examples/chatergpt-routes.yaml"
LIST_MAP_KEYS = "x-kubernetes-list-map-keys"


def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def as_json_schema(node: Any) -> Any:
    """The structural schema as a plain JSON schema (see the module docstring)."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {
        key: {name: as_json_schema(sub) for name, sub in value.items()}
        if key == "properties"
        else as_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-")
    }
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        # OpenAPI 3.0's boolean form (the CRD's) -> JSON Schema draft 7's number form.
        if node.get(exclusive) is True:
            schema[exclusive] = schema.pop(bound)
        elif node.get(exclusive) is False:
            del schema[exclusive]
    closed = "properties" in node and "additionalProperties" not in node
    if closed and not node.get("x-kubernetes-preserve-unknown-fields") and node.get("type"):
        schema["additionalProperties"] = False
    if node.get("x-kubernetes-list-type") == "map":
        schema[LIST_MAP_KEYS] = node[LIST_MAP_KEYS]
    return schema


def _unique_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    """`x-kubernetes-list-type: map`: the API server refuses a duplicate of the map keys."""
    if not isinstance(instance, list):
        return
    seen: set[str] = set()
    for item in instance:
        if isinstance(item, dict):
            key = json.dumps([item.get(name) for name in keys])
            if key in seen:
                yield jsonschema.ValidationError(f"duplicate entry with {keys} = {key}")
            seen.add(key)


CrdValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {LIST_MAP_KEYS: _unique_map_keys}
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # metadata is the API server's own (ObjectMeta); only its presence is ours to check.
    crd_validator: jsonschema.Draft7Validator = CrdValidator(as_json_schema(schema))
    return crd_validator


def errors(validator: jsonschema.Draft7Validator, obj: dict[str, Any]) -> list[str]:
    return [error.message for error in validator.iter_errors(obj)]


def with_spec(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(README_EXAMPLE)
    obj["spec"].update(changes)
    return obj


def test_the_readme_example_is_accepted_as_is(validator: jsonschema.Draft7Validator) -> None:
    assert errors(validator, README_EXAMPLE) == []
    # ... and the example file shipped in deploy/ is that same example.
    assert yaml.safe_load(EXAMPLE_PATH.read_text()) == README_EXAMPLE


def test_a_full_spec_is_accepted(validator: jsonschema.Draft7Validator) -> None:
    obj = copy.deepcopy(README_EXAMPLE)
    obj["spec"] = copy.deepcopy(FULL_SPEC)
    assert errors(validator, obj) == []


@pytest.mark.parametrize("backend", ["anthropic", "gemini"])
def test_the_provider_backends_need_no_url(
    validator: jsonschema.Draft7Validator, backend: str
) -> None:
    assert not list(validator.iter_errors(with_spec(backend=backend, model="m")))


def test_the_routes_example_is_accepted(validator: jsonschema.Draft7Validator) -> None:
    example = yaml.safe_load(ROUTES_EXAMPLE_PATH.read_text())
    assert errors(validator, example) == []
    assert [route["name"] for route in example["spec"]["routes"]] == ["gemini", "meal-photo"]


def with_route(**changes: Any) -> dict[str, Any]:
    """The README example with one route: the first sample route, changed (None removes)."""
    route = {**copy.deepcopy(ROUTES[0]), **changes}
    return with_spec(routes=[{k: v for k, v in route.items() if v is not None}])


@pytest.mark.parametrize(
    "obj",
    [
        with_route(),
        with_route(shape=None, model=None, systemPrompt=None, maxTokens=None, responseFormat=None),
        with_route(shape="photo", responseFormat={"type": "json_object"}),
        # The response format is the service's own: fields it may add later pass through.
        with_route(responseFormat={"type": "json_object", "future": {"x": 1}}),
        with_spec(routes=[]),
        with_spec(routes=ROUTES, isDev=True),
    ],
    ids=["all-fields", "required-only", "photo", "unknown-format-field", "empty", "two-and-dev"],
)
def test_valid_routes_are_accepted(validator: jsonschema.Draft7Validator, obj: Any) -> None:
    assert errors(validator, obj) == []


@pytest.mark.parametrize(
    "obj",
    [
        with_route(name="Gemini"),
        with_route(name="gemini_2"),
        with_route(name="-gemini"),
        with_route(name="g" * 64),
        with_route(name=None),
        with_route(requestTopic=None),
        with_route(replyTopic=None),
        with_route(requestTopic=""),
        with_route(replyTopic="gemini response"),
        with_route(shape="video"),
        with_route(maxTokens=0),
        with_route(maxTokens="800"),
        with_route(model=""),
        with_route(responseFormat={"json_schema": {"schema": {}}}),
        with_route(responseFormat={"type": "xml"}),
        with_route(responseFormat={"type": "json_schema"}),
        with_route(responseFormat={"type": "json_schema", "json_schema": {"name": "a"}}),
        with_route(request_topic="gemini-send"),  # the service's spelling, not the CRD's
        with_spec(routes=[ROUTES[0], {**ROUTES[1], "name": ROUTES[0]["name"]}]),
        with_spec(routes={"gemini": ROUTES[0]}),
        with_spec(isDev="true"),
    ],
    ids=[
        "uppercase-name",
        "underscore-name",
        "leading-dash-name",
        "name-too-long",
        "no-name",
        "no-request-topic",
        "no-reply-topic",
        "empty-request-topic",
        "space-in-topic",
        "unknown-shape",
        "max-tokens-zero",
        "max-tokens-as-string",
        "empty-model",
        "format-without-type",
        "unknown-format-type",
        "json-schema-without-schema-object",
        "json-schema-without-schema",
        "snake-case-key",
        "duplicate-names",
        "routes-as-object",
        "is-dev-as-string",
    ],
)
def test_invalid_routes_are_refused(validator: jsonschema.Draft7Validator, obj: Any) -> None:
    assert errors(validator, obj) != []


@pytest.mark.parametrize(
    "obj",
    [
        with_spec(replicas=-1),
        with_spec(replicas="3"),
        with_spec(replicas=2.5),
        with_spec(backend="claude"),
        with_spec(backend="koboldcpp"),  # without koboldcppUrl
        with_spec(model=7),
        with_spec(bootstrapServer=""),
        with_spec(logLevel="verbose"),
        with_spec(apiKey="sk-live-123"),  # the key itself has no place in the spec
        with_spec(apiKeySecretRef={"name": "keys"}),  # which key of the Secret?
        with_spec(redisUrl="redis://r", redisUrlSecretRef={"name": "r", "key": "url"}),
        with_spec(autoscaling={"enabled": "yes"}),
        with_spec(autoscaling={"enabled": True, "minReplicas": 0}),
        with_spec(kafkaSecurity={"protocol": "SASL_SSL"}),
        with_spec(kafkaSecurity={"protocol": "TLS"}),
        with_spec(extraConfig={"MAX_TOKENS": 800}),
        with_spec(namespace="Chater_GPT"),
        {k: v for k, v in README_EXAMPLE.items() if k != "spec"},
        {**README_EXAMPLE, "spec": {"model": "gpt-4o-mini"}},  # no bootstrapServer
    ],
    ids=[
        "negative-replicas",
        "replicas-as-string",
        "replicas-as-float",
        "unknown-backend",
        "koboldcpp-without-url",
        "model-as-number",
        "empty-bootstrap",
        "unknown-log-level",
        "api-key-in-spec",
        "secret-ref-without-key",
        "redis-url-twice",
        "autoscaling-enabled-as-string",
        "autoscaling-min-zero",
        "sasl-without-credentials",
        "unknown-protocol",
        "extra-config-not-a-string",
        "invalid-namespace",
        "no-spec",
        "no-bootstrap-server",
    ],
)
def test_invalid_specs_are_refused(validator: jsonschema.Draft7Validator, obj: Any) -> None:
    assert errors(validator, obj) != []


def _defaults(node: Any, path: str = "") -> list[tuple[str, Any, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if "default" in node:
            found.append((path, node["default"], node))
        for key, value in node.items():
            found += _defaults(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _defaults(item, f"{path}/{index}")
    return found


def test_every_default_satisfies_its_own_schema() -> None:
    # The API server refuses a CRD whose defaults do not validate.
    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    found = _defaults(schema)
    assert len(found) > 10
    for path, default, node in found:
        sub = as_json_schema({k: v for k, v in node.items() if k != "default"})
        assert list(jsonschema.Draft7Validator(sub).iter_errors(default)) == [], path


def test_crd_names_columns_and_status_subresource() -> None:
    crd = load_crd()
    kubernetes_validate.validate(crd, "1.30", strict=True)
    assert crd["metadata"]["name"] == "chatergpts.chater.example.com"
    assert crd["spec"]["names"]["kind"] == "ChaterGpt"
    assert crd["spec"]["names"]["shortNames"] == ["cgt"]
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1"
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Model"] == ".spec.model"
    assert columns["Replicas"] == ".spec.replicas"
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["Age"] == ".metadata.creationTimestamp"


@pytest.mark.parametrize(
    "limits",
    [
        {"dailyCostLimitUsd": 25},
        {"dailyCostLimitUsd": 0.01, "userDailyCostLimitUsd": 0.5},
        {"userDailyCostLimitUsd": 1e-6},
    ],
    ids=["integer", "both", "tiny"],
)
def test_money_limits_above_zero_are_accepted(
    validator: jsonschema.Draft7Validator, limits: dict[str, Any]
) -> None:
    assert errors(validator, with_spec(**limits)) == []


@pytest.mark.parametrize(
    "limits",
    [
        {"dailyCostLimitUsd": 0},
        {"dailyCostLimitUsd": -5},
        {"dailyCostLimitUsd": "25"},
        {"userDailyCostLimitUsd": 0.0},
        {"userDailyCostLimitUsd": True},
        {"dailyCostLimitUSD": 25},  # misspelt: unknown fields are refused
    ],
    ids=["zero", "negative", "string", "user-zero", "user-boolean", "misspelt"],
)
def test_money_limits_must_be_numbers_above_zero(
    validator: jsonschema.Draft7Validator, limits: dict[str, Any]
) -> None:
    assert errors(validator, with_spec(**limits)) != []


KEY_REF = {"name": "keys", "key": "k"}


@pytest.mark.parametrize(
    "obj",
    [
        with_spec(providerKeys=PROVIDER_KEYS),
        with_spec(providerKeys={"koboldcpp": KEY_REF}),
        with_spec(providerKeys={}),
        # apiKeySecretRef is the backend's key; providerKeys the others'.
        with_spec(apiKeySecretRef=KEY_REF, providerKeys={"anthropic": KEY_REF, "gemini": KEY_REF}),
        with_spec(backend="anthropic", apiKeySecretRef=KEY_REF, providerKeys={"openai": KEY_REF}),
        with_spec(backend="gemini", providerKeys={"gemini": KEY_REF}),
    ],
    ids=["three", "koboldcpp", "empty", "others-beside-ref", "openai-beside-claude", "no-ref"],
)
def test_provider_keys_are_accepted(validator: jsonschema.Draft7Validator, obj: Any) -> None:
    assert errors(validator, obj) == []


@pytest.mark.parametrize(
    "obj",
    [
        with_spec(providerKeys={"claude": KEY_REF}),
        with_spec(providerKeys={"gemini": {"name": "keys"}}),
        with_spec(providerKeys={"gemini": {"key": "k"}}),
        with_spec(providerKeys={"gemini": {"name": "", "key": "k"}}),
        with_spec(providerKeys={"gemini": "AIza-secret-value"}),  # a value, not a reference
        with_spec(providerKeys={"gemini": {**KEY_REF, "value": "AIza"}}),
        with_spec(providerKeys=[KEY_REF]),
        # The backend's key twice: apiKeySecretRef and providerKeys name the same variable.
        with_spec(apiKeySecretRef=KEY_REF, providerKeys={"openai": KEY_REF}),
        with_spec(backend="openai", apiKeySecretRef=KEY_REF, providerKeys={"openai": KEY_REF}),
        with_spec(
            backend="anthropic", apiKeySecretRef=KEY_REF, providerKeys={"anthropic": KEY_REF}
        ),
        with_spec(backend="gemini", apiKeySecretRef=KEY_REF, providerKeys={"gemini": KEY_REF}),
        with_spec(
            backend="koboldcpp",
            koboldcppUrl="http://kobold:5001",
            apiKeySecretRef=KEY_REF,
            providerKeys={"koboldcpp": KEY_REF},
        ),
    ],
    ids=[
        "unknown-provider",
        "no-key",
        "no-name",
        "empty-name",
        "literal-value",
        "value-beside-ref",
        "list",
        "openai-twice-default-backend",
        "openai-twice",
        "anthropic-twice",
        "gemini-twice",
        "koboldcpp-twice",
    ],
)
def test_invalid_provider_keys_are_refused(validator: jsonschema.Draft7Validator, obj: Any) -> None:
    assert errors(validator, obj) != []


def with_model(**entry: Any) -> dict[str, Any]:
    """The README example with an inline catalogue of one model."""
    return with_spec(modelCatalogue={"models": {"my-model": entry}})


@pytest.mark.parametrize(
    "obj",
    [
        with_spec(modelCatalogue={"models": CATALOGUE_MODELS}),
        with_spec(modelCatalogue={"configMapRef": {"name": "models", "key": "models.yaml"}}),
        with_spec(modelCatalogue={"configMapRef": {"name": "llm.models", "key": "catalogue_1"}}),
        with_model(prices={"input": 0.5, "output": 1.5}),
        with_model(provider="koboldcpp", contextWindow=4096),
        with_model(vision=False, json=False, maxOutput=1024),
        with_model(),  # a shipped model left as it is: the service decides
        with_spec(modelCatalogue={"models": {"claude-sonnet-4-5-20250929": {}}}),
    ],
    ids=[
        "inline",
        "config-map",
        "config-map-odd-names",
        "prices-only",
        "local-model",
        "capabilities",
        "empty-entry",
        "snapshot-name",
    ],
)
def test_model_catalogues_are_accepted(validator: jsonschema.Draft7Validator, obj: Any) -> None:
    assert errors(validator, obj) == []


@pytest.mark.parametrize(
    "obj",
    [
        with_spec(modelCatalogue={}),
        with_spec(
            modelCatalogue={
                "models": CATALOGUE_MODELS,
                "configMapRef": {"name": "models", "key": "models.yaml"},
            }
        ),
        with_spec(modelCatalogue={"models": {}}),
        with_spec(modelCatalogue={"models": [CATALOGUE_MODELS]}),
        with_spec(modelCatalogue={"file": "/etc/models.yaml"}),
        with_spec(modelCatalogue={"configMapRef": {"name": "models"}}),
        with_spec(modelCatalogue={"configMapRef": {"name": "Models", "key": "m.yaml"}}),
        with_spec(modelCatalogue={"configMapRef": {"name": "models", "key": "dir/m.yaml"}}),
        with_spec(modelCatalogue={"configMapRef": {"name": "models", "key": "..data"}}),
        with_spec(modelCatalogue={"configMapRef": {"name": "models", "key": ""}}),
        with_model(context_window=8192),  # the service's spelling, not the CRD's
        with_model(provider="mistral"),
        with_model(contextWindow=0),
        with_model(contextWindow="8k"),
        with_model(vision="yes"),
        with_model(prices={"input": -1, "output": 1}),
        with_model(prices={"input": 1}),
        with_model(prices={"input": 1, "output": 2, "cached_input": 0.5}),
        with_model(prices={"input": "1", "output": 2}),
        with_model(longContext={"prices": {"input": 1, "output": 2}}),
        with_model(longContext={"above": 0, "prices": {"input": 1, "output": 2}}),
        with_model(longContext={"above": 1000}),
        with_spec(modelCatalogue={"models": {"m": "gpt-4o"}}),
        with_model(priceChanges=[]),
        with_model(priceChanges=[{"prices": {"input": 1, "output": 2}}]),
        with_model(priceChanges=[{"effective": "2027-01-01"}]),
        with_model(priceChanges={"effective": "2027-01-01", "prices": {"input": 1, "output": 2}}),
    ],
    ids=[
        "empty",
        "both",
        "no-models",
        "models-as-list",
        "unknown-field",
        "config-map-without-key",
        "config-map-uppercase-name",
        "config-map-key-with-slash",
        "config-map-key-leading-dot",
        "config-map-empty-key",
        "snake-case-field",
        "unknown-provider",
        "window-zero",
        "window-as-string",
        "vision-as-string",
        "negative-price",
        "no-output-price",
        "snake-case-price",
        "price-as-string",
        "long-context-without-above",
        "long-context-above-zero",
        "long-context-without-prices",
        "entry-not-an-object",
        "no-price-changes",
        "price-change-without-day",
        "price-change-without-prices",
        "price-changes-not-a-list",
    ],
)
def test_invalid_model_catalogues_are_refused(
    validator: jsonschema.Draft7Validator, obj: Any
) -> None:
    assert errors(validator, obj) != []
