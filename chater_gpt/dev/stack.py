"""The settings that put the service on the embedded stack (the Tansu broker and a
local or scripted OpenAI-compatible LLM, no Redis): one definition for `make demo`,
the integration tests and the load runs."""

from __future__ import annotations

from typing import Any

# Tansu answers a waiting fetch only when `fetch.wait.max.ms` runs out, not when data
# arrives (measured: ~215 ms median delivery at librdkafka's default 500 ms, ~3 ms at
# 10 ms), where Apache Kafka answers at once (BENCHMARKS.md). A short wait makes the
# embedded broker behave like Kafka.
TANSU_FETCH_WAIT_MS = "10"


def embedded_settings(
    *, bootstrap: str, llm_base_url: str, fetch_wait_ms: str = TANSU_FETCH_WAIT_MS, **overrides: Any
) -> dict[str, Any]:
    """Settings (as `load_settings` takes them) for the embedded stack; `overrides` win.
    Group joins are quick (Tansu joins take half the session timeout)."""
    return {
        "bootstrap_server": bootstrap,
        "openai_base_url": llm_base_url,
        "llm_backend": "openai",
        "redis_url": None,
        "kafka_session_timeout_ms": 3000,
        "kafka_heartbeat_interval_ms": 300,
        "kafka_consumer_config": {"fetch.wait.max.ms": fetch_wait_ms},
        "metrics_port": 0,
        "log_format": "text",
        **overrides,
    }
