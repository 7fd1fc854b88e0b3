"""spec.gateway -> a validated `GatewaySpec` (pure; no I/O).

The HTTP gateway (`python main.py gateway`) is optional: without `spec.gateway`, or with
`enabled: false`, nothing of it is rendered and the instance renders as it always did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chater_operator.errors import InvalidSpecError
from chater_operator.reader import Reader, SecretKeyRef

PATH = "spec.gateway"
DEFAULT_REPLICAS = 2  # a restart of one never takes the front door away
DEFAULT_PORT = 8080
# Pod names are "<CR name>-gateway-<ordinal>", and the StatefulSet's revision label
# "<name>-gateway-<10-char hash>" must stay within Kubernetes' 63 characters.
MAX_WORKLOAD_NAME = 52
_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
_FILE_KEY = re.compile(r"^[-_a-zA-Z0-9][-._a-zA-Z0-9]{0,252}$")  # mounted as a file name
# Variables the gateway's fields render (GATEWAY_INSTANCE_ID and GATEWAY_API_KEYS_FILE are
# always the operator's); extraConfig may carry any other GATEWAY_* setting.
FIELD_VARIABLES = {
    "port": "GATEWAY_PORT",
    "corsOrigins": "GATEWAY_CORS_ORIGINS",
    "timeoutSeconds": "GATEWAY_TIMEOUT_SECONDS",
    "streamIdleSeconds": "GATEWAY_STREAM_IDLE_SECONDS",
    "maxBodyBytes": "GATEWAY_MAX_BODY_BYTES",
    "requestTopic": "GATEWAY_REQUEST_TOPIC",
    "replyTopicPrefix": "GATEWAY_REPLY_TOPIC_PREFIX",
}
OPERATOR_VARIABLES = ("GATEWAY_INSTANCE_ID", "GATEWAY_API_KEYS_FILE")


@dataclass(frozen=True)
class GatewayAutoscaling:
    """spec.gateway.autoscaling: an HPA on CPU for the gateway's StatefulSet (an HTTP
    front door has no Kafka lag to scale on; its work is parsing and relaying)."""

    enabled: bool = False
    min_replicas: int = DEFAULT_REPLICAS
    max_replicas: int = 10
    cpu_utilization: int = 70


@dataclass(frozen=True)
class GatewaySpec:
    enabled: bool = False
    replicas: int = DEFAULT_REPLICAS
    port: int = DEFAULT_PORT
    resources: Mapping[str, Any] = field(default_factory=dict)
    api_keys: SecretKeyRef | None = None  # None: an open gateway (every caller let in)
    cors_origins: tuple[str, ...] = ()
    timeout_seconds: float | None = None
    stream_idle_seconds: float | None = None
    max_body_bytes: int | None = None
    request_topic: str | None = None
    reply_topic_prefix: str | None = None
    autoscaling: GatewayAutoscaling = GatewayAutoscaling()
    given: frozenset[str] = frozenset()  # the fields the CR sets (for extraConfig overlaps)


def parse_gateway(raw: Mapping[str, Any]) -> GatewaySpec:
    reader = Reader(raw, PATH)
    keys = reader.mapping("apiKeysSecret")
    api_keys = None
    if keys:
        ref = Reader(keys, f"{PATH}.apiKeysSecret")
        api_keys = SecretKeyRef(ref.required_string("name"), ref.required_string("key"))
        if not _FILE_KEY.match(api_keys.key):
            raise ref.fail("key", "a Secret key: letters, digits, '-', '_' and '.', not first")
    origins = reader.list("corsOrigins")
    if not all(isinstance(origin, str) and origin for origin in origins):
        raise reader.fail("corsOrigins", "a list of non-empty strings")
    timeout = reader.optional_positive_number("timeoutSeconds")
    return GatewaySpec(
        enabled=reader.boolean("enabled", False),
        replicas=reader.integer("replicas", DEFAULT_REPLICAS, minimum=0),
        port=reader.integer("port", DEFAULT_PORT, minimum=1, maximum=65535),
        resources=reader.mapping("resources"),
        api_keys=api_keys,
        cors_origins=tuple(origins),
        timeout_seconds=timeout,
        stream_idle_seconds=reader.optional_positive_number("streamIdleSeconds"),
        max_body_bytes=reader.optional_integer("maxBodyBytes", minimum=1024),
        request_topic=_topic(reader, "requestTopic", _TOPIC),
        reply_topic_prefix=_topic(
            reader, "replyTopicPrefix", re.compile(r"^[a-zA-Z0-9._-]{1,200}$")
        ),
        autoscaling=_autoscaling(reader.mapping("autoscaling")),
        given=frozenset(key for key in FIELD_VARIABLES if raw.get(key) not in (None, "", [])),
    )


def _autoscaling(raw: Mapping[str, Any]) -> GatewayAutoscaling:
    reader = Reader(raw, f"{PATH}.autoscaling")
    scaling = GatewayAutoscaling(
        enabled=reader.boolean("enabled", False),
        min_replicas=reader.integer("minReplicas", DEFAULT_REPLICAS, minimum=1),
        max_replicas=reader.integer("maxReplicas", 10, minimum=1),
        cpu_utilization=reader.integer("cpuUtilization", 70, minimum=1, maximum=100),
    )
    if scaling.max_replicas < scaling.min_replicas:
        raise reader.fail("maxReplicas", "at least minReplicas")
    return scaling


def _topic(reader: Reader, key: str, pattern: re.Pattern[str]) -> str | None:
    value = reader.string(key)
    if value is not None and not pattern.match(value):
        raise reader.fail(key, "Kafka topic characters (letters, digits, '.', '_', '-')")
    return value


def check_gateway(gateway: GatewaySpec, owner_name: str, extra_config: Mapping[str, str]) -> None:
    """What the schema cannot say: one source per variable, a name Kubernetes accepts."""
    for key in sorted(gateway.given):
        variable = FIELD_VARIABLES[key]
        if variable in extra_config:
            raise InvalidSpecError(
                f"{PATH}.{key} and spec.extraConfig.{variable} set the same variable: keep one"
            )
    if not gateway.enabled:
        return
    for variable in OPERATOR_VARIABLES:
        if variable in extra_config:
            raise InvalidSpecError(f"spec.extraConfig.{variable} is set by the operator")
    if len(gateway_name(owner_name)) > MAX_WORKLOAD_NAME:
        raise InvalidSpecError(
            f"{PATH}: the gateway's name {gateway_name(owner_name)!r} would be longer than "
            f"{MAX_WORKLOAD_NAME} characters; use a shorter ChaterGpt name"
        )


def gateway_name(owner_name: str) -> str:
    """The gateway's StatefulSet, Service and PodDisruptionBudget."""
    return f"{owner_name}-gateway"
