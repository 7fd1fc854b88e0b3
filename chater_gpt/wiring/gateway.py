"""Settings → the HTTP gateway (`python main.py gateway`)."""

from __future__ import annotations

import logging
import re
import secrets
import socket
from collections.abc import Sequence

from chater_gpt.config import Settings
from chater_gpt.errors import ConfigError
from chater_gpt.gateway.app import GatewayConfig, GatewayState, MoreRoutes
from chater_gpt.gateway.auth import ApiKeys
from chater_gpt.gateway.event_api import EventApi
from chater_gpt.gateway.job_shapes import AppCodes
from chater_gpt.gateway.jobs_api import JobApi
from chater_gpt.gateway.metrics import GatewayMetrics
from chater_gpt.gateway.requester import Requester
from chater_gpt.gateway.server import Gateway, GatewayRuntime, MoreApis
from chater_gpt.resilience.policy import PolicyBook, load_policy
from chater_gpt.storage.jobs import JobStore
from chater_gpt.storage.stores import open_stores
from chater_gpt.wiring import job_config, storage_config

log = logging.getLogger(__name__)


def instance_id(settings: Settings) -> str:
    """GATEWAY_INSTANCE_ID, else the hostname and a random suffix (a new reply topic per
    start: a restarted instance never reads its predecessor's replies)."""
    if settings.gateway_instance_id:
        return settings.gateway_instance_id
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:60] or "gateway"
    return f"{host}-{secrets.token_hex(3)}"


def gateway_config(
    settings: Settings, instance: str, policy: PolicyBook | None = None
) -> GatewayConfig:
    """`policy`: the tenant policy, whose tenants' `allowed_models` narrow what their
    keys see in `GET /v1/models`."""
    if not settings.gateway_reply_topic_prefix:
        raise ConfigError("GATEWAY_REPLY_TOPIC_PREFIX: must not be empty to run the gateway")
    chat = next((route for route in settings.routes if route.name == "chat"), None)
    request_topic = settings.gateway_request_topic or (chat.request_topic if chat else None)
    if request_topic is None:
        raise ConfigError("GATEWAY_REQUEST_TOPIC: required when no route is named chat")
    models = settings.models_allowed
    tenants = policy.tenants if policy is not None else {}
    return GatewayConfig(
        request_topic=request_topic,
        reply_topic=f"{settings.gateway_reply_topic_prefix}{instance}",
        models=models,
        timeout_seconds=settings.gateway_timeout_seconds,
        max_body_bytes=settings.gateway_max_body_bytes,
        cors_origins=tuple(settings.gateway_cors_origins),
        stream_idle_seconds=settings.gateway_stream_idle_seconds,
        tenant_models={
            name: tenant.allowed_models
            for name, tenant in tenants.items()
            if tenant.allowed_models is not None
        },
        owners={
            model: provider.value
            for model in models
            if (provider := settings.catalogue.provider_of(model)) is not None
        },
    )


def gateway_runtime(settings: Settings) -> GatewayRuntime:
    return GatewayRuntime(
        host=settings.gateway_host,
        port=settings.gateway_port,
        producer=settings.kafka_producer_properties(),
        consumer=settings.kafka_consumer_properties(),
        admin=settings.kafka_common_config(),
        refetch_seconds=settings.gateway_refetch_seconds,
        shutdown_grace_seconds=settings.gateway_shutdown_grace_seconds,
    )


def api_keys(settings: Settings) -> ApiKeys:
    path = settings.gateway_api_keys_file
    return ApiKeys.from_file(path) if path is not None else ApiKeys.open()


def more_apis(
    settings: Settings, keys: ApiKeys, policy: PolicyBook | None, jobs: JobStore | None = None
) -> MoreApis:
    """The job API and the event endpoint. Job state lives in `jobs` when given (a store
    shared with a core in this process: the demo), else in the stores `REDIS_URL` names
    (shared with the core and the other gateways), else in this process's memory, where
    no core can finish a job."""
    apps = AppCodes(policy)
    if jobs is None and settings.redis_url is None and len(apps):
        log.warning("no REDIS_URL: job state stays in this process; the core cannot finish jobs")

    def build(
        requester: Requester, state: GatewayState, metrics: GatewayMetrics
    ) -> Sequence[MoreRoutes]:
        stores = open_stores(storage_config(settings))
        job_api = JobApi(
            requester,
            jobs if jobs is not None else stores.jobs(job_config(settings)),
            apps,
            stores.rates,
            draining=lambda: state.draining,
            close=stores.aclose,
            count=metrics.job_submitted,
        )
        return [job_api, EventApi(requester, keys, settings.gateway_api_key_header)]

    return build


def build_gateway(settings: Settings, *, jobs: JobStore | None = None) -> Gateway:
    """`jobs`: the job store of a core in this process (the demo); see `more_apis`."""
    policy = load_policy(settings.tenant_policy_file) if settings.tenant_policy_file else None
    config = gateway_config(settings, instance_id(settings), policy)
    keys = api_keys(settings)
    return Gateway(config, gateway_runtime(settings), keys, more_apis(settings, keys, policy, jobs))
