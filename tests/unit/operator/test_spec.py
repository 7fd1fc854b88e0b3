"""Spec validation: what the CRD schema cannot say is refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from chater_operator.errors import InvalidSpecError
from chater_operator.spec import Owner, SecretKeyRef, parse_spec

from tests.unit.operator.samples import FULL_SPEC, README_EXAMPLE

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


def test_referenced_secrets_are_listed_once_each() -> None:
    spec = parse_spec(FULL_SPEC, OWNER)
    assert spec.referenced_secrets() == ("llm-keys", "redis", "kafka-user", "kafka-tls")
