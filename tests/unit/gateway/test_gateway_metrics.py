"""The gateway's request metrics: every API route counted under its path template (a
bounded label), probes and scrapes not counted, and job submissions by outcome; and the
models list each key is shown."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from chater_gpt.config import load_settings
from chater_gpt.gateway.app import GatewayApp, GatewayConfig, GatewayState
from chater_gpt.gateway.auth import ApiKeys, digest
from chater_gpt.gateway.job_shapes import AppCodes
from chater_gpt.gateway.jobs_api import JobApi
from chater_gpt.gateway.metrics import GatewayMetrics
from chater_gpt.gateway.requester import Requester
from chater_gpt.gateway.waiter import ReplyWaiter
from chater_gpt.resilience.policy import PolicyBook, TenantPolicy
from chater_gpt.storage.jobs import InMemoryJobStore, JobConfig
from chater_gpt.storage.rates import InMemoryRateStore
from chater_gpt.wiring.gateway import gateway_config
from tests.unit.gateway.test_jobs_api import BODY, BOOK, Sink


def samples(metrics: GatewayMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = metrics.render().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_api_requests_are_counted_by_route_template_and_status() -> None:
    metrics = GatewayMetrics()
    waiter = ReplyWaiter()
    requester = Requester("req", "reply", waiter, Sink(), 5.0)
    store = InMemoryJobStore(JobConfig(ttl_seconds=60, max_wait_seconds=60))
    jobs = JobApi(
        requester, store, AppCodes(BOOK), InMemoryRateStore(), count=metrics.job_submitted
    )
    config = GatewayConfig("req", "reply", frozenset({"gpt-4o-mini"}), 5.0, 10_000)
    app = GatewayApp(
        config, ApiKeys.open(), waiter, requester, metrics, GatewayState(), [jobs]
    ).app()
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/v1/models")).status == 200
        assert (await client.post("/ai_request", json=BODY)).status == 200
        for job in ("a" * 32, "b" * 32):
            assert (await client.get(f"/get_request/{job}")).status == 404
        assert (await client.get("/no/such/path")).status == 404
        for probe in ("/livez", "/healthz", "/metrics"):
            await client.get(probe)
    assert samples(metrics, "chater_gpt_gateway_requests_total") == {
        (("route", "/v1/models"), ("status", "200")): 1.0,
        (("route", "/ai_request"), ("status", "200")): 1.0,
        (("route", "/get_request/{request_id}"), ("status", "404")): 2.0,
        (("route", "unmatched"), ("status", "404")): 1.0,
    }
    assert samples(metrics, "chater_gpt_gateway_jobs_submitted_total") == {
        (("outcome", "accepted"),): 1.0
    }


async def test_each_key_sees_the_models_its_tenant_may_ask_for_with_their_providers() -> None:
    """`GET /v1/models` through the wiring's config: a tenant whose policy narrows its
    models sees only those; `owned_by` is the catalogue's provider."""
    settings = load_settings(
        {
            "bootstrap_server": "127.0.0.1:9",
            "openai_api_key": "sk-test",
            "model": "gpt-4o-mini",
            "allowed_models": "gpt-4o,claude-haiku-4-5,local-llama",
        }
    )
    policy = PolicyBook(tenants={"shop": TenantPolicy(allowed_models=frozenset({"gpt-4o"}))})
    config = gateway_config(settings, "gw-0", policy)
    keys = ApiKeys({digest("shop-key"): "shop", digest("lab-key"): "lab"})
    waiter = ReplyWaiter()
    requester = Requester("req", "reply", waiter, Sink(), 5.0)
    app = GatewayApp(config, keys, waiter, requester, GatewayMetrics(), GatewayState()).app()
    async with TestClient(TestServer(app)) as client:

        async def listed(key: str) -> dict[str, str]:
            answer = await client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
            return {m["id"]: m["owned_by"] for m in (await answer.json())["data"]}

        assert await listed("shop-key") == {"gpt-4o": "openai"}
        lab = await listed("lab-key")  # no policy of its own: every allowed model
        assert lab["claude-haiku-4-5"] == "anthropic"
        assert lab["gpt-4o-mini"] == "openai"
        assert lab["local-llama"] == "chater-gpt"  # unknown to the catalogue
