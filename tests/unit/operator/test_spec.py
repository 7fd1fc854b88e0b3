"""Spec validation: what the CRD schema cannot say is refused with a message naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from chater_operator.errors import InvalidSpecError
from chater_operator.spec import (
    ConfigMapKeyRef,
    ModelCatalogue,
    Owner,
    Route,
    SecretKeyRef,
    parse_spec,
)

from tests.unit.operator.samples import (
    CATALOGUE_MODELS,
    FULL_SPEC,
    PROVIDER_KEYS,
    README_EXAMPLE,
    ROUTES,
)

OWNER = Owner(name="inst", namespace="team-a", uid="u")
BASE = README_EXAMPLE["spec"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"backend": "koboldcpp"}, "koboldcppUrl"),
        ({"redisUrl": "redis://r:6379", "redisUrlSecretRef": {"name": "r", "key": "u"}}, "redis"),
        ({"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
        ({"kafkaSecurity": {"protocol": "SASL_SSL"}}, "saslMechanism"),
        ({"extraConfig": {"OPENAI_API_KEY": "sk-live-123"}}, "OPENAI_API_KEY"),
        ({"extraConfig": {"BOOTSTRAP_SERVER": "x:1"}}, "BOOTSTRAP_SERVER"),
        ({"extraConfig": {"lower": "x"}}, "lower"),
        ({"replicas": -1}, "spec.replicas"),
        ({"replicas": True}, "spec.replicas"),
        ({"backend": "claude"}, "spec.backend"),
        ({"namespace": "Not_A_Namespace"}, "spec.namespace"),
        ({"bootstrapServer": ""}, "spec.bootstrapServer"),
        ({"extraConfig": {"IS_DEV": "true"}}, "IS_DEV"),
        ({"extraConfig": {"ROUTES_FILE": "/tmp/r.json"}}, "ROUTES_FILE"),
        ({"extraConfig": {"REDIS_KEY_PREFIX": ""}}, "REDIS_KEY_PREFIX"),
        ({"extraConfig": {"REDIS_KEY_PREFIX": "p" * 65}}, "REDIS_KEY_PREFIX"),
        ({"isDev": "yes"}, "spec.isDev"),
        ({"providerKeys": {"claude": {"name": "k", "key": "c"}}}, "spec.providerKeys.claude"),
        ({"providerKeys": {"gemini": {"name": "k"}}}, "spec.providerKeys.gemini.key"),
        ({"providerKeys": {"gemini": "sk-live-123"}}, "spec.providerKeys.gemini must be an object"),
        ({"providerKeys": [{"name": "k", "key": "c"}]}, "spec.providerKeys must be an object"),
        (
            {
                "apiKeySecretRef": {"name": "a", "key": "b"},
                "providerKeys": {"openai": {"name": "c", "key": "d"}},
            },
            "spec.apiKeySecretRef and spec.providerKeys.openai both set OPENAI_API_KEY",
        ),
        (
            {
                "backend": "anthropic",
                "apiKeySecretRef": {"name": "a", "key": "b"},
                "providerKeys": {"anthropic": {"name": "a", "key": "b"}},
            },
            "spec.apiKeySecretRef and spec.providerKeys.anthropic both set ANTHROPIC_API_KEY",
        ),
        ({"modelCatalogue": {"file": "m.yaml"}}, "spec.modelCatalogue must have one of"),
        (
            {"modelCatalogue": {"models": CATALOGUE_MODELS, "configMapRef": {"name": "m"}}},
            "spec.modelCatalogue must have one of",
        ),
        ({"modelCatalogue": {"models": {}}}, "spec.modelCatalogue.models"),
        (
            {"modelCatalogue": {"models": ["gpt-4o"]}},
            "spec.modelCatalogue.models must be an object",
        ),
        (
            {"modelCatalogue": {"configMapRef": {"name": "m"}}},
            "spec.modelCatalogue.configMapRef.key",
        ),
        (
            {"modelCatalogue": {"configMapRef": {"name": "M_x", "key": "k"}}},
            "spec.modelCatalogue.configMapRef.name",
        ),
        (
            {"modelCatalogue": {"configMapRef": {"name": "m", "key": "..data"}}},
            "spec.modelCatalogue.configMapRef.key",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"context_window": 8}}}},
            "spec.modelCatalogue.models['m'].context_window is not a catalogue field",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"provider": "mistral"}}}},
            "spec.modelCatalogue.models['m'].provider must be one of",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"contextWindow": 0}}}},
            "spec.modelCatalogue.models['m'].contextWindow",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"vision": "no"}}}},
            "spec.modelCatalogue.models['m'].vision",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"prices": {"input": 1}}}}},
            "spec.modelCatalogue.models['m'].prices.output",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"prices": {"input": -1, "output": 1}}}}},
            "spec.modelCatalogue.models['m'].prices.input must be a number of at least 0",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"prices": {"input": 1, "output": 1, "x": 1}}}}},
            "spec.modelCatalogue.models['m'].prices.x is not a price",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"longContext": {"above": 5}}}}},
            "spec.modelCatalogue.models['m'].longContext.prices",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"longContext": {"prices": {}}}}}},
            "spec.modelCatalogue.models['m'].longContext.above",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"priceChanges": []}}}},
            "spec.modelCatalogue.models['m'].priceChanges must be a list of 1 to 100",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"priceChanges": [{"effective": "2027-13-01"}]}}}},
            "spec.modelCatalogue.models['m'].priceChanges[0].effective must be a day",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"priceChanges": [{"effective": "2027-01-01"}]}}}},
            "spec.modelCatalogue.models['m'].priceChanges[0].prices must be an object",
        ),
        (
            {"modelCatalogue": {"models": {"m": {"priceChanges": [{"from": "2027-01-01"}]}}}},
            "spec.modelCatalogue.models['m'].priceChanges[0].from is not a field",
        ),
        (
            {
                "modelCatalogue": {
                    "models": {
                        "m": {
                            "priceChanges": [
                                {"effective": "2027-01-01", "prices": {"input": 1, "output": 1}},
                                {"effective": "2027-01-01", "prices": {"input": 2, "output": 2}},
                            ]
                        }
                    }
                }
            },
            "two changes take effect on one day",
        ),
        (
            {"modelCatalogue": {"models": {"GPT-4o": {}, "gpt-4o": {}}}},
            "'GPT-4o' and 'gpt-4o' are one model",
        ),
        ({"modelCatalogue": {"models": {"m" * 101: {}}}}, "1 to 100 characters"),
        ({"modelCatalogue": {"models": {" ": {}}}}, "1 to 100 characters"),
        (
            {
                "modelCatalogue": {"models": CATALOGUE_MODELS},
                "extraConfig": {"MODEL_CATALOGUE_FILE": "/app/models.yaml"},
            },
            "spec.modelCatalogue and spec.extraConfig.MODEL_CATALOGUE_FILE",
        ),
        ({"dailyCostLimitUsd": 0}, "spec.dailyCostLimitUsd must be a number above 0"),
        ({"dailyCostLimitUsd": -1.5}, "spec.dailyCostLimitUsd"),
        ({"dailyCostLimitUsd": "25"}, "spec.dailyCostLimitUsd must be a number"),
        ({"userDailyCostLimitUsd": True}, "spec.userDailyCostLimitUsd must be a number"),
        ({"userDailyCostLimitUsd": float("inf")}, "spec.userDailyCostLimitUsd"),
        (
            {"dailyCostLimitUsd": 5, "extraConfig": {"DAILY_COST_LIMIT_USD": "5"}},
            "spec.dailyCostLimitUsd and spec.extraConfig.DAILY_COST_LIMIT_USD",
        ),
        (
            {"userDailyCostLimitUsd": 1, "extraConfig": {"USER_DAILY_COST_LIMIT_USD": "2"}},
            "spec.userDailyCostLimitUsd and spec.extraConfig.USER_DAILY_COST_LIMIT_USD",
        ),
        ({"routes": {"gemini": ROUTES[0]}}, "spec.routes"),
        ({"routes": [{**ROUTES[0], "name": "Gemini"}]}, "spec.routes[0].name"),
        ({"routes": [ROUTES[0], {**ROUTES[1], "name": "gemini"}]}, "'gemini' is used twice"),
        ({"routes": [{"name": "a", "requestTopic": "a-send"}]}, "spec.routes[0].replyTopic"),
        ({"routes": [{**ROUTES[1], "requestTopic": "a b"}]}, "spec.routes[0].requestTopic"),
        ({"routes": [{**ROUTES[1], "shape": "video"}]}, "spec.routes[0].shape"),
        ({"routes": [{**ROUTES[1], "maxTokens": 0}]}, "spec.routes[0].maxTokens"),
        ({"routes": [{**ROUTES[1], "model": "m" * 101}]}, "spec.routes[0].model"),
        (
            {"routes": [{**ROUTES[1], "responseFormat": {"type": "xml"}}]},
            "spec.routes[0].responseFormat.type",
        ),
        (
            {"routes": [{**ROUTES[1], "responseFormat": {"type": "json_schema"}}]},
            "spec.routes[0].responseFormat.json_schema",
        ),
        (
            {
                "routes": [
                    {**ROUTES[1], "responseFormat": {"type": "json_schema", "json_schema": {}}}
                ]
            },
            "spec.routes[0].responseFormat.json_schema.schema",
        ),
        # What the service would refuse at start-up (and crash-loop on):
        ({"routes": [{**ROUTES[1], "requestTopic": "gpt-send"}]}, "both read topic 'gpt-send'"),
        (
            {"routes": [ROUTES[0], {**ROUTES[1], "requestTopic": "gemini-send"}]},
            "both read topic 'gemini-send'",
        ),
        ({"routes": [{**ROUTES[1], "replyTopic": "gpt-send"}]}, "replies on 'gpt-send'"),
        ({"routes": [{**ROUTES[1], "requestTopic": "gpt-response"}]}, "replies on 'gpt-response'"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec({**BASE, **change}, OWNER)
    assert field in caught.value.message
    assert "sk-live-123" not in caught.value.message  # a refused secret is never echoed


def test_children_namespace_defaults_to_the_crs_own() -> None:
    spec = {key: value for key, value in BASE.items() if key != "namespace"}
    assert parse_spec(spec, OWNER).namespace == "team-a"
    assert parse_spec(BASE, OWNER).namespace == "chater-gpt"


def test_api_key_reference_defaults_only_where_a_key_is_needed() -> None:
    assert parse_spec(BASE, OWNER).api_key == SecretKeyRef("inst-api-key", "OPENAI_API_KEY")
    local = {**BASE, "openaiBaseUrl": "http://llm.local:8080/v1"}
    assert parse_spec(local, OWNER).api_key is None
    kobold = {**BASE, "backend": "koboldcpp", "koboldcppUrl": "http://kobold:5001"}
    assert parse_spec(kobold, OWNER).api_key is None
    # Anthropic and Gemini always need a key, under their own variable name.
    for backend, variable in (("anthropic", "ANTHROPIC_API_KEY"), ("gemini", "GEMINI_API_KEY")):
        provider = {**BASE, "backend": backend, "model": "m"}
        assert parse_spec(provider, OWNER).api_key == SecretKeyRef("inst-api-key", variable)


def test_referenced_secrets_are_listed_once_each() -> None:
    spec = parse_spec(FULL_SPEC, OWNER)
    assert spec.referenced_secrets() == ("llm-keys", "redis", "kafka-user", "kafka-tls")


def test_routes_are_read_with_their_defaults() -> None:
    spec = parse_spec({**BASE, "routes": copy.deepcopy(ROUTES)}, OWNER)
    gemini, photo = spec.routes
    assert gemini == Route(
        name="gemini",
        request_topic="gemini-send",
        reply_topic="gemini-response",
        shape="chat",
        model="gemini-2.0-flash",
        system_prompt="Answer in one JSON object.",
        max_tokens=800,
        response_format=ROUTES[0]["responseFormat"],
    )
    assert photo == Route(
        name="photo-eu", request_topic="photo-send-eu", reply_topic="photo-response-eu"
    )
    assert parse_spec(BASE, OWNER).routes == ()
    assert parse_spec(BASE, OWNER).is_dev is False


def test_a_route_named_chat_replaces_the_builtin_one() -> None:
    # The service lets a route named "chat" take over spec.requestTopic's route.
    chat = {"name": "chat", "requestTopic": "gpt-send", "replyTopic": "gpt-answers"}
    spec = parse_spec({**BASE, "routes": [chat], "isDev": True}, OWNER)
    assert spec.routes[0].reply_topic == "gpt-answers"


def test_each_instance_gets_its_own_redis_key_prefix() -> None:
    assert parse_spec(BASE, OWNER).redis_key_prefix == "chater:team-a:inst:"
    other = Owner(name="inst", namespace="team-b", uid="v")
    assert parse_spec(BASE, other).redis_key_prefix == "chater:team-b:inst:"


def test_an_explicit_redis_key_prefix_is_kept() -> None:
    spec = parse_spec({**BASE, "extraConfig": {"REDIS_KEY_PREFIX": "chater:"}}, OWNER)
    assert spec.redis_key_prefix == "chater:"


def test_a_long_name_still_gets_a_unique_prefix_the_service_accepts() -> None:
    # The service refuses a prefix over 64 characters; CR names may be much longer.
    first = Owner(name="a" * 200 + "-one", namespace="n" * 63, uid="1")
    second = Owner(name="a" * 200 + "-two", namespace="n" * 63, uid="2")
    prefixes = {parse_spec(BASE, owner).redis_key_prefix for owner in (first, second)}
    assert len(prefixes) == 2
    for prefix in prefixes:
        assert len(prefix) <= 64
        assert prefix.startswith("chater:nnn")
        assert prefix.endswith(":")


def test_money_limits_are_read_as_given() -> None:
    spec = parse_spec({**BASE, "dailyCostLimitUsd": 25, "userDailyCostLimitUsd": 0.5}, OWNER)
    assert (spec.daily_cost_limit_usd, spec.user_daily_cost_limit_usd) == (25, 0.5)
    plain = parse_spec(BASE, OWNER)
    assert (plain.daily_cost_limit_usd, plain.user_daily_cost_limit_usd) == (None, None)


def test_money_limits_set_through_extra_config_stay_valid() -> None:
    # A CR written before the fields existed carried them in extraConfig: still accepted.
    extra = {"DAILY_COST_LIMIT_USD": "10", "USER_DAILY_COST_LIMIT_USD": "0.2"}
    spec = parse_spec({**BASE, "extraConfig": extra}, OWNER)
    assert spec.extra_config == extra
    assert spec.daily_cost_limit_usd is None


def test_provider_keys_are_read_in_a_fixed_order() -> None:
    raw = {"gemini": PROVIDER_KEYS["gemini"], "openai": PROVIDER_KEYS["openai"]}
    spec = parse_spec({**BASE, "backend": "anthropic", "providerKeys": raw}, OWNER)
    assert list(spec.provider_keys.items()) == [
        ("openai", SecretKeyRef("openai-key", "token")),
        ("gemini", SecretKeyRef("llm-keys", "GEMINI_API_KEY")),
    ]
    # The anthropic backend's own key is not among them: the conventional Secret, as before.
    assert spec.api_key == SecretKeyRef("inst-api-key", "ANTHROPIC_API_KEY")
    assert parse_spec(BASE, OWNER).provider_keys == {}


def test_the_backends_key_in_provider_keys_replaces_the_conventional_secret() -> None:
    for backend in ("openai", "anthropic", "gemini"):
        spec = parse_spec(
            {**BASE, "backend": backend, "model": "m", "providerKeys": PROVIDER_KEYS}, OWNER
        )
        assert spec.api_key is None
        assert "inst-api-key" not in spec.referenced_secrets()


def test_provider_key_secrets_are_referenced_once_each() -> None:
    keys = {"gemini": PROVIDER_KEYS["gemini"], "koboldcpp": {"name": "kobold", "key": "k"}}
    spec = parse_spec({**FULL_SPEC, "providerKeys": keys}, OWNER)
    assert spec.referenced_secrets() == (
        "llm-keys",  # apiKeySecretRef, and the Gemini key
        "kobold",
        "redis",
        "kafka-user",
        "kafka-tls",
    )


def test_an_inline_catalogue_is_read_in_the_services_file_format() -> None:
    spec = parse_spec(
        {**BASE, "modelCatalogue": {"models": copy.deepcopy(CATALOGUE_MODELS)}}, OWNER
    )
    assert spec.model_catalogue is not None
    assert spec.model_catalogue.config_map is None
    assert spec.model_catalogue.models == {
        "gpt-4o-mini": {
            "prices": {"input": 0.12, "output": 0.48, "cached_input": 0.06},
            "price_changes": [
                {
                    "effective": "2027-07-01",
                    "prices": {"input": 0.10, "output": 0.40, "cached_input": 0.05},
                }
            ],
        },
        "smollm2-135m-instruct": {
            "provider": "openai",
            "context_window": 8192,
            "vision": False,
            "prices": {"input": 0, "output": 0},
        },
        "gemini-3.1-pro-preview": {
            "provider": "gemini",
            "context_window": 1048576,
            "max_output": 65536,
            "prices": {"input": 2.0, "output": 12.0, "cached_input": 0.2},
            "long_context": {
                "above": 200000,
                "prices": {"input": 4.0, "output": 18.0, "cached_input": 0.4},
            },
        },
    }
    assert spec.referenced_config_maps() == ()
    assert parse_spec(BASE, OWNER).model_catalogue is None


def test_a_catalogue_config_map_is_a_referenced_config_map() -> None:
    ref = {"name": "llm-models", "key": "models.yaml"}
    spec = parse_spec({**BASE, "modelCatalogue": {"configMapRef": ref}}, OWNER)
    expected = ConfigMapKeyRef("llm-models", "models.yaml")
    assert spec.model_catalogue == ModelCatalogue(config_map=expected)
    assert spec.referenced_config_maps() == (expected,)
    assert spec.referenced_secrets() == ("inst-api-key",)  # a ConfigMap is not a Secret


def test_a_catalogue_file_set_through_extra_config_stays_valid() -> None:
    # E.g. a file baked into a custom image, from before spec.modelCatalogue.
    extra = {"MODEL_CATALOGUE_FILE": "/app/models.yaml"}
    spec = parse_spec({**BASE, "extraConfig": extra}, OWNER)
    assert spec.extra_config == extra
    assert spec.model_catalogue is None


def test_provider_names_and_key_variables_are_the_services() -> None:
    from chater_operator.spec import API_KEY_VARIABLES, PROVIDERS, SECRET_VARIABLES

    from chater_gpt.catalogue import Provider
    from chater_gpt.config import Settings
    from tests.unit.deploy.service_facts import secret_settings

    assert tuple(provider.value for provider in Provider) == PROVIDERS
    assert set(API_KEY_VARIABLES) == set(PROVIDERS)
    for variable in API_KEY_VARIABLES.values():
        assert variable.lower() in Settings.model_fields
    # Every secret of the service is one that extraConfig refuses and env gets by reference.
    assert secret_settings() <= SECRET_VARIABLES
