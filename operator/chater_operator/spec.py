"""A ChaterGpt CR -> a validated, typed `InstanceSpec` (pure; no I/O).

The CRD's openAPIV3Schema already checks types, ranges and enums and fills the
defaults; this module repeats the checks that a schema cannot express (rules
between fields, reserved names) and fills the same defaults again, so an object
written around the schema (an old CRD, a test) still renders predictably.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chater_operator.catalogue_spec import (
    PROVIDERS,
    ConfigMapKeyRef,
    ModelCatalogue,
    parse_model_catalogue,
)
from chater_operator.errors import InvalidSpecError
from chater_operator.gateway_spec import GatewaySpec, check_gateway, parse_gateway
from chater_operator.reader import Reader as _Reader
from chater_operator.reader import SecretKeyRef

DEFAULT_IMAGE = "chater-gpt:0.1.0"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 25
BACKENDS = ("openai", "koboldcpp", "anthropic", "gemini")
# The variable that carries each backend's API key.
API_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "koboldcpp": "KOBOLDCPP_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
# spec.providerKeys: each provider's key, in the order they are rendered.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
AUTOSCALERS = ("keda", "hpa")
ROUTE_SHAPES = ("chat", "photo")
RESPONSE_FORMAT_TYPES = ("json_object", "json_schema")
# The service's built-in chat route reads spec.requestTopic; a route of this name replaces it.
BUILTIN_CHAT_ROUTE = "chat"
# The service refuses a REDIS_KEY_PREFIX longer than this (or empty).
REDIS_KEY_PREFIX_MAX = 64
ROUTE_MODEL_MAX = 100  # the service's limit on a route's model name
# Secrets reach the pod only as secretKeyRef; extraConfig must never carry them.
SECRET_VARIABLES = frozenset(
    {
        "OPENAI_API_KEY",
        "KOBOLDCPP_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "REDIS_URL",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_KEY_PASSWORD",
        "SENTRY_DSN",
    }
)
# Variables rendered from spec fields of their own; extraConfig may not override them.
MANAGED_VARIABLES = frozenset(
    {
        "BOOTSTRAP_SERVER",
        "REQUEST_TOPIC",
        "RESPONSE_TOPIC",
        "CONSUMER_GROUP",
        "LLM_BACKEND",
        "MODEL",
        "VISION_MODEL",
        "OPENAI_BASE_URL",
        "KOBOLDCPP_API_URL",
        "MAX_IN_FLIGHT",
        "REQUESTS_PER_MINUTE",
        "DAILY_TOKEN_LIMIT",
        "SHUTDOWN_GRACE_SECONDS",
        "LOG_LEVEL",
        "METRICS_PORT",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SSL_CA_LOCATION",
        "KAFKA_SSL_CERTIFICATE_LOCATION",
        "KAFKA_SSL_KEY_LOCATION",
        "IS_DEV",
        "ROUTES_FILE",
    }
)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")  # Kafka's legal topic names


@dataclass(frozen=True)
class Owner:
    """The ChaterGpt object the children belong to."""

    name: str
    namespace: str
    uid: str
    generation: int = 0


@dataclass(frozen=True)
class SaslSecret:
    name: str
    username_key: str = "username"
    password_key: str = "password"  # noqa: S105 - a key name, not a password


@dataclass(frozen=True)
class TlsSecret:
    name: str
    ca_key: str | None = "ca.crt"
    cert_key: str | None = None
    key_key: str | None = None
    key_password_key: str | None = None


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl: SaslSecret | None = None
    tls: TlsSecret | None = None


@dataclass(frozen=True)
class Autoscaling:
    enabled: bool = False
    provider: str = "keda"
    min_replicas: int = 1
    max_replicas: int = 10
    lag_threshold: int = 100
    cpu_utilization: int = 70
    keda_authentication_ref: str | None = None


@dataclass(frozen=True)
class Route:
    """One more request topic the service answers (its routes file, snake_case there)."""

    name: str
    request_topic: str
    reply_topic: str
    shape: str = "chat"
    model: str | None = None
    system_prompt: str | None = None
    max_tokens: int | None = None
    # The service's own format, passed through: {"type": "json_object"} or
    # {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}.
    response_format: Mapping[str, Any] | None = None


def default_redis_key_prefix(namespace: str, name: str) -> str:
    """`chater:<namespace>:<name>:`, so instances sharing one Redis never share keys.

    A CR name may be longer than the service allows for a prefix: then the head is cut
    and a hash of the full identity keeps it unique.
    """
    prefix = f"chater:{namespace}:{name}:"
    if len(prefix) <= REDIS_KEY_PREFIX_MAX:
        return prefix
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:12]
    head = prefix[: REDIS_KEY_PREFIX_MAX - len(digest) - 2]
    return f"{head}~{digest}:"


@dataclass(frozen=True)
class InstanceSpec:
    """Everything the renderer needs, validated and defaulted."""

    owner: Owner
    namespace: str  # where the children live (spec.namespace, else the CR's)
    bootstrap_server: str
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    replicas: int = 1
    backend: str = "openai"
    model: str = "gpt-4o-mini"
    vision_model: str = "gpt-4o"
    openai_base_url: str | None = None
    koboldcpp_url: str | None = None
    api_key: SecretKeyRef | None = None  # the backend's key (apiKeySecretRef or its default)
    # More providers' keys (spec.providerKeys), provider -> Secret key, in PROVIDERS order.
    provider_keys: Mapping[str, SecretKeyRef] = field(default_factory=dict)
    redis_url: str | None = None
    redis_url_secret: SecretKeyRef | None = None
    request_topic: str = "gpt-send"
    response_topic: str = "gpt-response"
    consumer_group: str = "chater-gpt-group"
    max_in_flight: int | None = None
    requests_per_minute: int | None = None
    daily_token_limit: int | None = None
    daily_cost_limit_usd: float | None = None
    user_daily_cost_limit_usd: float | None = None
    shutdown_grace_seconds: int = DEFAULT_SHUTDOWN_GRACE_SECONDS
    log_level: str = "INFO"
    extra_config: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)
    affinity: Mapping[str, Any] | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    kafka: KafkaSecurity = field(default_factory=KafkaSecurity)
    routes: tuple[Route, ...] = ()
    model_catalogue: ModelCatalogue | None = None
    is_dev: bool = False
    redis_key_prefix: str = "chater:"
    gateway: GatewaySpec = field(default_factory=GatewaySpec)

    @property
    def same_namespace(self) -> bool:
        """Children next to the CR can carry an owner reference; others cannot."""
        return self.namespace == self.owner.namespace

    def referenced_secrets(self) -> tuple[str, ...]:
        """Names of the Secrets (in `namespace`) the pods need, each once, in order."""
        refs = (
            self.api_key,
            *self.provider_keys.values(),
            self.redis_url_secret,
            self.kafka.sasl,
            self.kafka.tls,
            self.gateway.api_keys if self.gateway.enabled else None,
        )
        names = [ref.name for ref in refs if ref is not None]
        return tuple(dict.fromkeys(names))

    def referenced_config_maps(self) -> tuple[ConfigMapKeyRef, ...]:
        """Keys of ConfigMaps (in `namespace`, not the operator's own) the pods mount."""
        catalogue = self.model_catalogue
        return (catalogue.config_map,) if catalogue and catalogue.config_map else ()


def parse_spec(raw: Mapping[str, Any], owner: Owner) -> InstanceSpec:
    """Validate a CR spec; raise InvalidSpecError naming the first bad field."""
    reader = _Reader(raw, "spec")
    namespace = reader.string("namespace") or owner.namespace
    if not _DNS_LABEL.match(namespace):
        raise InvalidSpecError(f"spec.namespace {namespace!r} is not a valid namespace name")
    backend = reader.choice("backend", BACKENDS, "openai")
    extra_config = _extra_config(reader.mapping("extraConfig"))
    provider_keys = _provider_keys(reader.mapping("providerKeys"))
    spec = InstanceSpec(
        owner=owner,
        namespace=namespace,
        bootstrap_server=reader.required_string("bootstrapServer"),
        image=reader.string("image") or DEFAULT_IMAGE,
        image_pull_policy=reader.choice(
            "imagePullPolicy", ("Always", "IfNotPresent", "Never"), "IfNotPresent"
        ),
        image_pull_secrets=tuple(
            _Reader(item, f"spec.imagePullSecrets[{i}]").required_string("name")
            for i, item in enumerate(reader.list("imagePullSecrets"))
        ),
        replicas=reader.integer("replicas", 1, minimum=0),
        backend=backend,
        model=reader.string("model") or "gpt-4o-mini",
        vision_model=reader.string("visionModel") or "gpt-4o",
        openai_base_url=reader.string("openaiBaseUrl"),
        koboldcpp_url=reader.string("koboldcppUrl"),
        api_key=_api_key(reader, backend, owner.name, provider_keys),
        provider_keys=provider_keys,
        redis_url=reader.string("redisUrl"),
        redis_url_secret=reader.secret_key_ref("redisUrlSecretRef", None),
        request_topic=reader.string("requestTopic") or "gpt-send",
        response_topic=reader.string("responseTopic") or "gpt-response",
        consumer_group=reader.string("consumerGroup") or "chater-gpt-group",
        max_in_flight=reader.optional_integer("maxInFlight", minimum=1, maximum=10_000),
        requests_per_minute=reader.optional_integer("requestsPerMinute", minimum=1),
        daily_token_limit=reader.optional_integer("dailyTokenLimit", minimum=1),
        daily_cost_limit_usd=reader.optional_positive_number("dailyCostLimitUsd"),
        user_daily_cost_limit_usd=reader.optional_positive_number("userDailyCostLimitUsd"),
        shutdown_grace_seconds=reader.integer(
            "shutdownGraceSeconds", DEFAULT_SHUTDOWN_GRACE_SECONDS, minimum=0
        ),
        log_level=reader.choice("logLevel", LOG_LEVELS, "INFO"),
        extra_config=extra_config,
        resources=reader.mapping("resources"),
        affinity=reader.mapping("affinity") or None,
        node_selector={str(k): str(v) for k, v in reader.mapping("nodeSelector").items()},
        tolerations=tuple(reader.list("tolerations")),
        autoscaling=_autoscaling(reader.mapping("autoscaling")),
        kafka=_kafka_security(reader.mapping("kafkaSecurity")),
        routes=_routes(reader.list("routes")),
        model_catalogue=parse_model_catalogue(reader.mapping("modelCatalogue")),
        is_dev=reader.boolean("isDev", False),
        # An explicit extraConfig.REDIS_KEY_PREFIX wins (e.g. "chater:" to keep older keys).
        redis_key_prefix=extra_config.get("REDIS_KEY_PREFIX")
        or default_redis_key_prefix(owner.namespace, owner.name),
        gateway=parse_gateway(reader.mapping("gateway")),
    )
    _check_rules(spec)
    return spec


def _api_key(
    reader: _Reader, backend: str, cr_name: str, provider_keys: Mapping[str, SecretKeyRef]
) -> SecretKeyRef | None:
    # OpenAI's own API, Anthropic and Gemini need a key: without a reference (here or in
    # providerKeys), the conventional Secret "<name>-api-key" is expected (reported as
    # missing until it exists), under the backend's variable name.
    key = API_KEY_VARIABLES.get(backend, "OPENAI_API_KEY")
    if backend in provider_keys:
        if reader.mapping("apiKeySecretRef"):
            raise InvalidSpecError(
                f"spec.apiKeySecretRef and spec.providerKeys.{backend} both set {key} "
                f"(the {backend} backend's key): keep one of them"
            )
        return None
    needs_default = backend in ("anthropic", "gemini") or (
        backend == "openai" and not reader.string("openaiBaseUrl")
    )
    default = SecretKeyRef(f"{cr_name}-api-key", key) if needs_default else None
    return reader.secret_key_ref("apiKeySecretRef", default)


def _provider_keys(raw: Mapping[str, Any]) -> dict[str, SecretKeyRef]:
    """spec.providerKeys: provider -> Secret key, each rendered as that provider's variable."""
    for provider in raw:
        if provider not in PROVIDERS:
            raise InvalidSpecError(
                f"spec.providerKeys.{provider} is not a provider: one of " + ", ".join(PROVIDERS)
            )
    keys: dict[str, SecretKeyRef] = {}
    for provider in PROVIDERS:
        if provider in raw:
            ref = _Reader(raw[provider], f"spec.providerKeys.{provider}")
            keys[provider] = SecretKeyRef(ref.required_string("name"), ref.required_string("key"))
    return keys


def _check_rules(spec: InstanceSpec) -> None:
    if spec.backend == "koboldcpp" and not spec.koboldcpp_url:
        raise InvalidSpecError("spec.koboldcppUrl is required when spec.backend is koboldcpp")
    if spec.redis_url and spec.redis_url_secret:
        raise InvalidSpecError("set spec.redisUrl or spec.redisUrlSecretRef, not both")
    scaling = spec.autoscaling
    if scaling.enabled and scaling.min_replicas > scaling.max_replicas:
        raise InvalidSpecError(
            "spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas"
        )
    kafka = spec.kafka
    if kafka.protocol.startswith("SASL") and (kafka.sasl_mechanism is None or kafka.sasl is None):
        raise InvalidSpecError(
            "spec.kafkaSecurity.saslMechanism and saslSecretRef are required with a SASL protocol"
        )
    _check_route_topics(spec)
    _check_extra_config_overlaps(spec)
    check_gateway(spec.gateway, spec.owner.name, spec.extra_config)


def _check_extra_config_overlaps(spec: InstanceSpec) -> None:
    """Variables that newer spec fields render, which extraConfig may still carry (older
    CRs set them there): one source each, never both."""
    fields = {
        "DAILY_COST_LIMIT_USD": ("dailyCostLimitUsd", spec.daily_cost_limit_usd),
        "USER_DAILY_COST_LIMIT_USD": ("userDailyCostLimitUsd", spec.user_daily_cost_limit_usd),
        "MODEL_CATALOGUE_FILE": ("modelCatalogue", spec.model_catalogue),
    }
    for variable, (name, value) in fields.items():
        if value is not None and variable in spec.extra_config:
            raise InvalidSpecError(
                f"spec.{name} and spec.extraConfig.{variable} set the same variable: keep one"
            )


def _check_route_topics(spec: InstanceSpec) -> None:
    """What the service refuses at start-up: two routes reading one topic, or a route
    answering on a topic that a route reads (it would consume its own replies)."""
    routes = [(f"route {r.name!r}", r.request_topic, r.reply_topic) for r in spec.routes]
    if all(route.name != BUILTIN_CHAT_ROUTE for route in spec.routes):
        builtin = "the built-in chat route (spec.requestTopic, spec.responseTopic)"
        routes.insert(0, (builtin, spec.request_topic, spec.response_topic))
    readers: dict[str, str] = {}
    for label, request_topic, _ in routes:
        other = readers.setdefault(request_topic, label)
        if other != label:
            raise InvalidSpecError(
                f"spec.routes: {other} and {label} both read topic {request_topic!r}"
            )
    for label, _, reply_topic in routes:
        if reply_topic in readers:
            raise InvalidSpecError(
                f"spec.routes: {label} replies on {reply_topic!r}, "
                f"which {readers[reply_topic]} reads"
            )


def _extra_config(raw: Mapping[str, Any]) -> dict[str, str]:
    config: dict[str, str] = {}
    for name, value in raw.items():
        if not _ENV_NAME.match(name):
            raise InvalidSpecError(f"spec.extraConfig key {name!r} is not an environment name")
        if name in SECRET_VARIABLES:
            raise InvalidSpecError(
                f"spec.extraConfig must not carry the secret {name}: use a Secret reference"
            )
        if name in MANAGED_VARIABLES:
            raise InvalidSpecError(f"spec.extraConfig.{name} is set by a spec field of its own")
        config[name] = value if isinstance(value, str) else str(value)
    prefix = config.get("REDIS_KEY_PREFIX")
    if prefix is not None and not 1 <= len(prefix) <= REDIS_KEY_PREFIX_MAX:
        raise InvalidSpecError(
            f"spec.extraConfig.REDIS_KEY_PREFIX must be 1 to {REDIS_KEY_PREFIX_MAX} characters"
        )
    return config


def _routes(items: list[Any]) -> tuple[Route, ...]:
    routes: list[Route] = []
    for index, item in enumerate(items):
        path = f"spec.routes[{index}]"
        reader = _Reader(item, path)
        name = reader.required_string("name")
        if not _DNS_LABEL.match(name):
            raise InvalidSpecError(
                f"{path}.name {name!r} must be lowercase letters, digits and dashes "
                "(at most 63, starting and ending with a letter or digit)"
            )
        if any(route.name == name for route in routes):
            raise InvalidSpecError(f"spec.routes: the name {name!r} is used twice")
        routes.append(
            Route(
                name=name,
                request_topic=_topic(reader, "requestTopic"),
                reply_topic=_topic(reader, "replyTopic"),
                shape=reader.choice("shape", ROUTE_SHAPES, "chat"),
                model=_route_model(reader),
                system_prompt=reader.string("systemPrompt"),
                max_tokens=reader.optional_integer("maxTokens", minimum=1),
                response_format=_response_format(
                    reader.mapping("responseFormat"), f"{path}.responseFormat"
                ),
            )
        )
    return tuple(routes)


def _route_model(reader: _Reader) -> str | None:
    model = reader.string("model")
    if model is not None and len(model) > ROUTE_MODEL_MAX:
        raise reader.fail("model", f"at most {ROUTE_MODEL_MAX} characters")
    return model


def _topic(reader: _Reader, key: str) -> str:
    topic = reader.required_string(key)
    if not _TOPIC.match(topic):
        raise reader.fail(key, "a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
    return topic


def _response_format(raw: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The service's response_format, checked for its outline and passed on as written."""
    if not raw:
        return None
    reader = _Reader(raw, path)
    kind = reader.optional_choice("type", RESPONSE_FORMAT_TYPES)
    if kind is None:
        raise reader.fail("type", "one of " + ", ".join(RESPONSE_FORMAT_TYPES))
    if kind == "json_schema":
        schema = _Reader(raw.get("json_schema"), f"{path}.json_schema")
        if not isinstance(raw["json_schema"].get("schema"), Mapping):
            raise schema.fail("schema", "an object (the JSON Schema of the answer)")
        schema.string("name")
        schema.boolean("strict", False)
    return dict(raw)


def _autoscaling(raw: Mapping[str, Any]) -> Autoscaling:
    reader = _Reader(raw, "spec.autoscaling")
    return Autoscaling(
        enabled=reader.boolean("enabled", False),
        provider=reader.choice("provider", AUTOSCALERS, "keda"),
        min_replicas=reader.integer("minReplicas", 1, minimum=1),
        max_replicas=reader.integer("maxReplicas", 10, minimum=1),
        lag_threshold=reader.integer("lagThreshold", 100, minimum=1),
        cpu_utilization=reader.integer("cpuUtilization", 70, minimum=1, maximum=100),
        keda_authentication_ref=reader.string("kedaAuthenticationRef"),
    )


def _kafka_security(raw: Mapping[str, Any]) -> KafkaSecurity:
    reader = _Reader(raw, "spec.kafkaSecurity")
    sasl_raw = reader.mapping("saslSecretRef")
    tls_raw = reader.mapping("tlsSecretRef")
    sasl = None
    if sasl_raw:
        sasl_reader = _Reader(sasl_raw, "spec.kafkaSecurity.saslSecretRef")
        sasl = SaslSecret(
            name=sasl_reader.required_string("name"),
            username_key=sasl_reader.string("usernameKey") or "username",
            password_key=sasl_reader.string("passwordKey") or "password",
        )
    tls = None
    if tls_raw:
        tls_reader = _Reader(tls_raw, "spec.kafkaSecurity.tlsSecretRef")
        tls = TlsSecret(
            name=tls_reader.required_string("name"),
            ca_key=tls_reader.string("caKey") or "ca.crt",
            cert_key=tls_reader.string("certKey"),
            key_key=tls_reader.string("keyKey"),
            key_password_key=tls_reader.string("keyPasswordKey"),
        )
    return KafkaSecurity(
        protocol=reader.choice("protocol", SECURITY_PROTOCOLS, "PLAINTEXT"),
        sasl_mechanism=reader.optional_choice("saslMechanism", SASL_MECHANISMS),
        sasl=sasl,
        tls=tls,
    )
