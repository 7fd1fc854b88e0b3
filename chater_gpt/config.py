"""Every setting of chater-gpt, read from the environment and validated once.

This is the only module that reads the environment. Secrets are `SecretStr`, so
they never show in a repr, a log line or an error message. `load_settings()`
turns a validation failure into one `ConfigError` whose message names each bad
variable and never echoes a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from chater_gpt.catalogue import DEFAULT_CATALOGUE, ModelCatalogue, load_catalogue
from chater_gpt.config_files import describe_validation_error
from chater_gpt.config_gateway import GatewaySettings
from chater_gpt.errors import ConfigError
from chater_gpt.routes import Route, builtin_routes, load_routes, resolve_routes

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
# user_email values producers send when they know no user: no identity at all.
DEFAULT_PLACEHOLDER_IDENTITIES = ("unknown", "anonymous", "none", "null", "undefined")

CommaList = Annotated[list[str], NoDecode]


class BackendKind(StrEnum):
    OPENAI = "openai"
    KOBOLDCPP = "koboldcpp"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class Settings(GatewaySettings):
    """The service's configuration. Field names are the environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", frozen=True
    )

    # --- Kafka ---------------------------------------------------------------
    bootstrap_server: str = Field(min_length=1)
    request_topic: str = "gpt-send"
    response_topic: str = "gpt-response"
    # The photo-analysis route of the original service; an empty request topic turns it off.
    photo_request_topic: str = "eater-send-photo"
    photo_response_topic: str = Field(default="photo-analysis-response", min_length=1)
    # More routes (YAML or JSON, see chater_gpt/routes.py); validated at start-up.
    routes_file: Path | None = None
    # As the original: every topic read and written gets the suffix `_dev`.
    is_dev: bool = False
    consumer_group: str = "chater-gpt-group"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None
    ) = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    # Extra librdkafka properties as a JSON object, for what has no setting of its own.
    # Not in repr: it may carry secrets (e.g. sasl.oauthbearer.client.secret); the log
    # redactor treats values of secret-looking properties as secrets.
    kafka_extra_config: dict[str, str] = Field(default_factory=dict, repr=False)
    # The same, for one client only (e.g. fetch.wait.max.ms is a consumer property:
    # given to the producer too, librdkafka warns that it ignores it).
    kafka_consumer_config: dict[str, str] = Field(default_factory=dict, repr=False)
    kafka_producer_config: dict[str, str] = Field(default_factory=dict, repr=False)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    # How long /readyz waits for a first assignment; later, a partitionless member is a standby.
    kafka_join_grace_seconds: float = Field(default=60.0, ge=0)
    commit_interval_seconds: float = Field(default=1.0, gt=0)

    # --- processing ----------------------------------------------------------
    # Requests being processed at once (LLM calls in flight), at most.
    max_in_flight: int = Field(default=256, ge=1, le=10_000)
    # Consumed requests that may wait for a processing slot; consumption pauses only
    # when these are taken too. A paused partition takes librdkafka ~0.5-1 s to fetch
    # again after a resume, so a small queue keeps a full service from stalling.
    max_queued: int = Field(default=128, ge=0, le=10_000)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)

    # --- LLM backend ---------------------------------------------------------
    llm_backend: BackendKind = BackendKind.OPENAI
    openai_api_key: SecretStr | None = None
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    # "sdk": the official SDK; "aiohttp": the same wire and error semantics for a third
    # of the CPU per call (BENCHMARKS.md).
    openai_client: Literal["sdk", "aiohttp"] = "sdk"
    koboldcpp_api_url: str | None = None
    koboldcpp_api_key: SecretStr | None = None
    # Anthropic (Claude) and Google (Gemini) through their official SDKs. The base URLs
    # are the API's host (the SDKs add `/v1/...`); API versions empty: the SDK's own.
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = DEFAULT_ANTHROPIC_BASE_URL
    anthropic_api_version: str | None = None
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = DEFAULT_GEMINI_BASE_URL
    gemini_api_version: str | None = None
    # As OPENAI_CLIENT: "aiohttp" sends the same requests with the same error semantics
    # without the SDK, for a fraction of its CPU per call (BENCHMARKS.md, "Providers").
    anthropic_client: Literal["sdk", "aiohttp"] = "sdk"
    gemini_client: Literal["sdk", "aiohttp"] = "sdk"
    model: str = "gpt-4o-mini"
    vision_model: str = "gpt-4o"
    allowed_models: CommaList = Field(default_factory=list)
    fallback_models: CommaList = Field(default_factory=list)
    fallback_backend: BackendKind | None = None
    # "small=large,..." : the model to use when a prompt does not fit the requested one.
    context_fallback_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {"gpt-3.5-turbo": "gpt-4o-mini", "gpt-4": "gpt-4o"}
    )
    # Models added to or changed in the shipped catalogue (YAML or JSON, chater_gpt/catalogue).
    model_catalogue_file: Path | None = None
    max_tokens: int = Field(default=1000, ge=1)
    max_tokens_cap: int = Field(default=4096, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    seed: int | None = None

    # --- resilience ----------------------------------------------------------
    max_retries: int = Field(default=3, ge=0, le=20)
    timeout: float = Field(default=60.0, gt=0)
    retry_after_cap_seconds: float = Field(default=30.0, gt=0)
    requests_per_minute: int = Field(default=60, ge=1)
    daily_token_limit: int = Field(default=100_000, ge=1)
    user_requests_per_minute: int | None = Field(default=None, ge=1)
    user_daily_token_limit: int | None = Field(default=None, ge=1)
    # Daily money budgets in USD (global, per user); unset: no money limit.
    daily_cost_limit_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    user_daily_cost_limit_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tenant_policy_file: Path | None = None
    breaker_fail_max: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30.0, gt=0)
    outcome_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    # --- payload limits ------------------------------------------------------
    max_payload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_message_chars: int = Field(default=100_000, ge=1)
    max_images: int = Field(default=4, ge=0)
    max_image_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)

    # --- context and history -------------------------------------------------
    redis_url: SecretStr | None = None
    # Requests wait for a free connection rather than fail when all are busy.
    redis_max_connections: int = Field(default=64, ge=2)
    # Every key this service writes starts with it: two deployments (or test runs)
    # sharing one Redis keep their limits, breakers and histories apart.
    # The key space's own default (storage.keys.DEFAULT_KEY_PREFIX): config sits below
    # storage in the layers, so the value is repeated here and a test keeps them equal.
    redis_key_prefix: str = Field(default="chater:", min_length=1, max_length=64)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # A request whose user_email is one of these (or empty) has no identity: no stored
    # history, no per-user limits or usage (compared case-insensitively).
    placeholder_identities: CommaList = Field(
        default_factory=lambda: list(DEFAULT_PLACEHOLDER_IDENTITIES)
    )
    # Further tries when a JSON answer does not parse or match its schema (each billed).
    json_repair_attempts: int = Field(default=1, ge=0, le=3)
    context_window: int = Field(default=8000, ge=256)
    # Who counts tokens: "auto" (KoboldCPP's endpoint with that backend, else the OpenAI
    # encodings), "encoding" (always the OpenAI encodings), "llamacpp" (the /tokenize
    # endpoint of the llama.cpp server behind OPENAI_BASE_URL), "koboldcpp".
    tokenizer: Literal["auto", "encoding", "llamacpp", "koboldcpp"] = "auto"
    # Claude and Gemini prompts counted exactly by the provider's token-count endpoint
    # (cached per text; the conservative estimate when it fails or is off). On by
    # default: the estimate over-counts English ~9x (Claude), so alone it would trim
    # history early and refuse long messages as context_too_long.
    provider_token_counts: bool = True
    max_history: int = Field(default=10, ge=0)
    context_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    history_max_conversations: int = Field(default=10_000, ge=1)
    response_cache_enabled: bool = False
    response_cache_ttl_seconds: int = Field(default=3600, ge=1)

    # --- observability -------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: LogFormat = LogFormat.JSON
    log_content: bool = False
    metrics_port: int = Field(default=8000, ge=0, le=65535)
    sentry_dsn: SecretStr | None = None

    _routes: tuple[Route, ...] = PrivateAttr(default=())
    _catalogue: ModelCatalogue = PrivateAttr(default=DEFAULT_CATALOGUE)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("allowed_models", "fallback_models", "placeholder_identities", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("context_fallback_models", mode="before")
    @classmethod
    def _parse_model_map(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        table: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in value.split(","))):
            small, sep, large = (part.strip() for part in pair.partition("="))
            if not (sep and small and large):
                raise ValueError("must be a comma-separated list of model=larger_model")
            table[small] = large
        return table

    @field_validator(
        "kafka_extra_config", "kafka_consumer_config", "kafka_producer_config", mode="before"
    )
    @classmethod
    def _parse_json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError("must be a JSON object of librdkafka properties") from exc
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if (
            self.llm_backend is BackendKind.KOBOLDCPP
            or self.fallback_backend is BackendKind.KOBOLDCPP
        ) and not self.koboldcpp_api_url:
            raise ValueError("KOBOLDCPP_API_URL is required when the KoboldCPP backend is used")
        if self.kafka_security_protocol.startswith("SASL") and self.kafka_sasl_mechanism is None:
            raise ValueError("KAFKA_SASL_MECHANISM is required with a SASL security protocol")
        if self.tokenizer == "koboldcpp" and not self.koboldcpp_api_url:
            raise ValueError("TOKENIZER=koboldcpp needs KOBOLDCPP_API_URL")
        if self.max_tokens > self.max_tokens_cap:
            raise ValueError("MAX_TOKENS must not exceed MAX_TOKENS_CAP")
        return self

    def missing_credentials(self) -> str | None:
        """The backends' missing key, if any (checked by `load_settings`)."""
        backends = (self.llm_backend, self.fallback_backend)
        own_api = self.openai_base_url == DEFAULT_OPENAI_BASE_URL
        if BackendKind.OPENAI in backends and own_api and not _secret(self.openai_api_key):
            return "OPENAI_API_KEY: required when OPENAI_BASE_URL is OpenAI's own API"
        if BackendKind.ANTHROPIC in backends and not _secret(self.anthropic_api_key):
            return "ANTHROPIC_API_KEY: required when the Anthropic backend is used"
        if BackendKind.GEMINI in backends and not _secret(self.gemini_api_key):
            return "GEMINI_API_KEY: required when the Gemini backend is used"
        return None

    @model_validator(mode="after")
    def _load_routes(self) -> Settings:
        builtin = builtin_routes(
            chat_request=self.request_topic,
            chat_reply=self.response_topic,
            photo_request=self.photo_request_topic,
            photo_reply=self.photo_response_topic,
        )
        extra = load_routes(self.routes_file) if self.routes_file is not None else []
        self._routes = tuple(resolve_routes(builtin, extra, dev=self.is_dev))
        return self

    @model_validator(mode="after")
    def _load_catalogue(self) -> Settings:
        self._catalogue = load_catalogue(self.model_catalogue_file)
        return self

    # --- derived views -------------------------------------------------------

    @property
    def catalogue(self) -> ModelCatalogue:
        """The model catalogue: the shipped table with MODEL_CATALOGUE_FILE applied."""
        return self._catalogue

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route served (built-in and ROUTES_FILE), topics as used (IS_DEV applied)."""
        return self._routes

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(name.strip().lower() for name in self.placeholder_identities)

    @property
    def models_allowed(self) -> frozenset[str]:
        """The models a request may name: ALLOWED_MODELS, else the configured ones."""
        configured = {
            self.model,
            self.vision_model,
            *self.fallback_models,
            *self.context_fallback_models.values(),
            *(route.model for route in self._routes if route.model),
        }
        return frozenset(self.allowed_models) | frozenset(configured)

    def kafka_common_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka properties shared by the consumer and the producer (secrets revealed)."""
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_server,
            "security.protocol": self.kafka_security_protocol,
        }
        optional: Mapping[str, str | SecretStr | None] = {
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": self.kafka_sasl_password,
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
            "ssl.key.password": self.kafka_ssl_key_password,
        }
        for key, value in optional.items():
            if isinstance(value, SecretStr):
                conf[key] = value.get_secret_value()
            elif value is not None:
                conf[key] = value
        conf.update(self.kafka_extra_config)
        return conf

    def kafka_consumer_properties(self) -> dict[str, str | int | float | bool]:
        """The common properties plus KAFKA_CONSUMER_CONFIG (which wins)."""
        return {**self.kafka_common_config(), **self.kafka_consumer_config}

    def kafka_producer_properties(self) -> dict[str, str | int | float | bool]:
        """The common properties plus KAFKA_PRODUCER_CONFIG (which wins)."""
        return {**self.kafka_common_config(), **self.kafka_producer_config}


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


_SECRET_PROPERTY = re.compile(r"(?i)password|secret|token|key|credential")


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, for the log redactor: the SecretStr settings, the password
    inside a URL on its own (it could be logged without its URL), and secret-looking
    librdkafka extras."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            secret = value.get_secret_value()
            values.append(secret)
            password = urlsplit(secret).password if "://" in secret else None
            if password:
                values.extend({password, unquote(password)})
    extras = (
        settings.kafka_extra_config,
        settings.kafka_consumer_config,
        settings.kafka_producer_config,
    )
    values.extend(
        value
        for properties in extras
        for prop, value in properties.items()
        if _SECRET_PROPERTY.search(prop) and value
    )
    return values


def load_settings(overrides: Mapping[str, Any] | None = None, *, llm: bool = True) -> Settings:
    """Read Settings from the environment (plus explicit overrides), or raise ConfigError
    (a bad routes file raises it from its validator, naming the entry). `llm=False` (the
    gateway, which calls no LLM) does not ask for the backends' credentials."""
    try:
        settings = Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    missing = settings.missing_credentials() if llm else None
    if missing:
        raise ConfigError(f"invalid configuration: {missing}")
    return settings
