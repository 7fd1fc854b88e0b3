"""Metrics move as the observers report, lag comes from librdkafka statistics, and
every metric is documented and free of secrets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from chater_gpt.domain import BreakerState, PauseReason
from chater_gpt.errors import ErrorCode
from chater_gpt.observability.kafka_stats import lag_from_stats
from chater_gpt.observability.metrics import METRIC_DOCS, OTHER, Metrics, metrics_markdown

STATS = (Path(__file__).parent / "stats_sample.json").read_text()


def value(metrics: Metrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    assert sample is not None, f"{name}{labels} was never exported"
    return sample


def test_requests_by_outcome_code_model_and_backend() -> None:
    metrics = Metrics()
    metrics.request_done(outcome="ok", code="", model="gpt-4o-mini", backend="openai", route="chat")
    metrics.request_done(outcome="ok", code="", model="gpt-4o-mini", backend="openai", route="chat")
    metrics.request_done(
        outcome="error", code="backend_timeout", model="gpt-4o", backend="", route="chat"
    )

    ok = {"outcome": "ok", "code": "", "model": "gpt-4o-mini", "backend": "openai", "route": "chat"}
    error = {
        "outcome": "error",
        "code": "backend_timeout",
        "model": "gpt-4o",
        "backend": "",
        "route": "chat",
    }
    assert value(metrics, "chater_gpt_requests_total", **ok) == 2
    assert value(metrics, "chater_gpt_requests_total", **error) == 1
    assert value(metrics, "chater_gpt_error_replies_total", code="backend_timeout") == 1
    # Every documented code is exported from the start, at zero.
    assert value(metrics, "chater_gpt_error_replies_total", code="invalid_json") == 0
    for code in ErrorCode:
        assert (
            metrics.registry.get_sample_value(
                "chater_gpt_error_replies_total", {"code": code.value}
            )
            is not None
        )


def test_cost_in_usd_by_model_and_provider() -> None:
    metrics = Metrics()
    metrics.cost(model="gpt-4o-mini", provider="openai", usd=0.25)
    metrics.cost(model="gpt-4o-mini", provider="openai", usd=0.5)
    metrics.cost(model="claude-haiku-4-5", provider="anthropic", usd=0.125)
    metrics.cost(model="local", provider="koboldcpp", usd=-1.0)  # never negative
    cost = "chater_gpt_cost_usd_total"
    assert value(metrics, cost, model="gpt-4o-mini", provider="openai") == pytest.approx(0.75)
    assert value(metrics, cost, model="claude-haiku-4-5", provider="anthropic") == 0.125
    assert value(metrics, cost, model="local", provider="koboldcpp") == 0.0


def test_tokens_by_model_and_backend_latency_histogram() -> None:
    metrics = Metrics()
    metrics.tokens(model="gpt-4o-mini", prompt=50, completion=100)
    metrics.tokens(model="gpt-4o-mini", prompt=10, completion=5)
    metrics.backend_latency(backend="openai", seconds=0.7)
    metrics.backend_latency(backend="openai", seconds=42.0)

    assert value(metrics, "chater_gpt_prompt_tokens_total", model="gpt-4o-mini") == 60
    assert value(metrics, "chater_gpt_completion_tokens_total", model="gpt-4o-mini") == 105
    latency = "chater_gpt_backend_latency_seconds"
    assert value(metrics, f"{latency}_count", backend="openai") == 2
    assert value(metrics, f"{latency}_sum", backend="openai") == pytest.approx(42.7)
    assert value(metrics, f"{latency}_bucket", backend="openai", le="1.0") == 1
    assert value(metrics, f"{latency}_bucket", backend="openai", le="45.0") == 2
    assert value(metrics, f"{latency}_bucket", backend="openai", le="0.05") == 0


def test_end_to_end_latency_from_the_kafka_timestamp() -> None:
    metrics = Metrics()
    three_seconds_ago = int((time.time() - 3) * 1000)
    metrics.replied(kafka_timestamp_ms=three_seconds_ago, seconds_in_service=1.5)
    metrics.replied(kafka_timestamp_ms=None, seconds_in_service=0.2)

    e2e = "chater_gpt_end_to_end_latency_seconds"
    assert value(metrics, f"{e2e}_count") == 1  # no timestamp, no end-to-end sample
    assert 3 <= value(metrics, f"{e2e}_sum") < 60
    assert value(metrics, f"{e2e}_bucket", le="2.0") == 0
    assert value(metrics, f"{e2e}_bucket", le="5.0") == 1
    assert value(metrics, "chater_gpt_processing_seconds_count") == 2
    assert value(metrics, "chater_gpt_processing_seconds_sum") == pytest.approx(1.7)
    assert value(metrics, "chater_gpt_replies_total") == 2


def test_a_producer_clock_ahead_of_ours_counts_as_zero_not_negative() -> None:
    metrics = Metrics()
    metrics.replied(kafka_timestamp_ms=int((time.time() + 60) * 1000), seconds_in_service=0.1)
    assert value(metrics, "chater_gpt_end_to_end_latency_seconds_sum") == 0
    assert value(metrics, "chater_gpt_end_to_end_latency_seconds_bucket", le="0.05") == 1


def test_pipeline_and_processor_counters() -> None:
    metrics = Metrics()
    metrics.consumed(5)
    metrics.consumed(2)
    metrics.rejected_without_key()
    metrics.delivery_failed()
    metrics.replayed()
    metrics.store_error(store="history")
    metrics.store_error(store="history")
    metrics.retried(backend="openai")
    metrics.retry_hook("openai", 2, TimeoutError())
    metrics.rate_limit_waited(0.25)
    metrics.rate_limit_waited(0.5, scope="user")
    metrics.cache_hit()
    metrics.cache_miss()
    metrics.cache_miss()

    assert value(metrics, "chater_gpt_messages_consumed_total") == 7
    assert value(metrics, "chater_gpt_rejected_without_key_total") == 1
    assert value(metrics, "chater_gpt_reply_delivery_failures_total") == 1
    assert value(metrics, "chater_gpt_replayed_total") == 1
    assert value(metrics, "chater_gpt_store_errors_total", store="history") == 2
    assert value(metrics, "chater_gpt_store_errors_total", store="outcomes") == 0
    assert value(metrics, "chater_gpt_retries_total", backend="openai") == 2
    assert value(metrics, "chater_gpt_rate_limit_waits_total", scope="global") == 1
    assert value(metrics, "chater_gpt_rate_limit_wait_seconds_total", scope="user") == 0.5
    assert value(metrics, "chater_gpt_cache_hits_total") == 1
    assert value(metrics, "chater_gpt_cache_misses_total") == 2


def test_state_gauges_unfinished_pauses_and_breakers() -> None:
    metrics = Metrics()
    metrics.set_unfinished(7)
    metrics.set_paused({PauseReason.BREAKER, PauseReason.BUDGET}, partitions=3)
    metrics.set_breaker_states({"openai": BreakerState.OPEN, "koboldcpp": BreakerState.HALF_OPEN})

    assert value(metrics, "chater_gpt_unfinished_requests") == 7
    assert value(metrics, "chater_gpt_in_flight_requests") == 7  # the deprecated name
    assert value(metrics, "chater_gpt_paused_partitions", reason="breaker") == 3
    assert value(metrics, "chater_gpt_paused_partitions", reason="budget") == 3
    assert value(metrics, "chater_gpt_paused_partitions", reason="capacity") == 0
    assert value(metrics, "chater_gpt_breaker_state", backend="openai") == 2
    assert value(metrics, "chater_gpt_breaker_state", backend="koboldcpp") == 1

    metrics.set_paused(frozenset(), partitions=3)
    metrics.set_breaker_state("openai", BreakerState.CLOSED)
    assert value(metrics, "chater_gpt_paused_partitions", reason="breaker") == 0
    assert value(metrics, "chater_gpt_paused_partitions", reason="budget") == 0
    assert value(metrics, "chater_gpt_breaker_state", backend="openai") == 0


def test_scrape_hooks_run_before_each_exposition() -> None:
    metrics = Metrics()
    state = {"unfinished": 4}
    metrics.add_scrape_hook(lambda: metrics.set_unfinished(state["unfinished"]))
    assert b"chater_gpt_unfinished_requests 4.0" in metrics.exposition()
    state["unfinished"] = 9
    assert b"chater_gpt_unfinished_requests 9.0" in metrics.exposition()


def test_two_instances_do_not_share_a_registry() -> None:
    first, second = Metrics(), Metrics()
    first.consumed(3)
    assert value(first, "chater_gpt_messages_consumed_total") == 3
    assert value(second, "chater_gpt_messages_consumed_total") == 0


def test_lag_from_a_librdkafka_statistics_document() -> None:
    # Partition 2 is no longer wanted (revoked), -1 is librdkafka's internal one, and
    # partition 3 has no committed offset yet: all of its 30 retained messages wait.
    assert lag_from_stats(STATS) == {("gpt-send", 0): 60, ("gpt-send", 1): 0, ("gpt-send", 3): 30}


def test_lag_ignores_partition_minus_one_and_unknown_lags() -> None:
    stats = {
        "topics": {
            "t": {
                "partitions": {
                    "-1": {"partition": -1, "consumer_lag": 5},
                    "0": {"partition": 0, "consumer_lag": -1},
                    "1": {"partition": 1, "consumer_lag": 7},
                    "2": {
                        "partition": 2,
                        "consumer_lag": -1,
                        "committed_offset": -1001,
                        "lo_offset": -1,
                        "hi_offset": -1,
                    },
                }
            }
        }
    }
    assert lag_from_stats(json.dumps(stats)) == {("t", 1): 7}
    assert lag_from_stats(json.dumps({"type": "producer"})) == {}


def test_observe_stats_exports_lag_and_forgets_partitions_no_longer_reported() -> None:
    metrics = Metrics()
    metrics.observe_stats(STATS)
    assert value(metrics, "chater_gpt_consumer_lag", topic="gpt-send", partition="0") == 60
    assert value(metrics, "chater_gpt_consumer_lag", topic="gpt-send", partition="1") == 0

    # After a rebalance only partition 1 is reported: partition 0's series goes away.
    later = json.loads(STATS)
    del later["topics"]["gpt-send"]["partitions"]["0"]
    later["topics"]["gpt-send"]["partitions"]["1"]["consumer_lag"] = 12
    metrics.observe_stats(json.dumps(later))
    assert (
        metrics.registry.get_sample_value(
            "chater_gpt_consumer_lag", {"topic": "gpt-send", "partition": "0"}
        )
        is None
    )
    assert value(metrics, "chater_gpt_consumer_lag", topic="gpt-send", partition="1") == 12


def test_a_malformed_statistics_document_changes_nothing_and_raises_nothing() -> None:
    metrics = Metrics()
    metrics.observe_stats(STATS)
    metrics.observe_stats("{not json")
    assert value(metrics, "chater_gpt_consumer_lag", topic="gpt-send", partition="0") == 60


def test_unbounded_label_values_are_folded_into_other() -> None:
    metrics = Metrics()
    for i in range(200):
        metrics.tokens(model=f"model-{i}", prompt=1, completion=1)
    models = {
        sample.labels["model"]
        for family in metrics.registry.collect()
        if family.name == "chater_gpt_prompt_tokens"
        for sample in family.samples
    }
    assert len(models) <= 51
    assert value(metrics, "chater_gpt_prompt_tokens_total", model=OTHER) == 150


def _exported_names(metrics: Metrics) -> set[str]:
    names = set()
    for family in metrics.registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def test_every_metric_is_documented_prefixed_and_named_with_its_unit() -> None:
    metrics = Metrics()
    documented = [name for name, _ in METRIC_DOCS]
    assert len(documented) == len(set(documented))
    assert _exported_names(metrics) == set(documented)
    for name, description in METRIC_DOCS:
        assert name.startswith("chater_gpt_")
        assert description.strip()
        assert "\n" not in description
    for family in metrics.registry.collect():
        if family.type == "histogram":
            assert family.name.endswith("_seconds")
        if family.type == "counter" and "token" in family.name:
            assert family.name.endswith("_tokens")


def test_the_readme_table_has_one_row_per_metric() -> None:
    rows = metrics_markdown().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [name for name, _ in METRIC_DOCS]


def test_no_label_or_value_carries_a_secret() -> None:
    secret = "sk-test-SECRET-metrics-4c1d9e"
    metrics = Metrics()
    # Realistic traffic, including an error path and statistics from a SASL client.
    metrics.request_done(outcome="ok", code="", model="gpt-4o-mini", backend="openai", route="chat")
    metrics.request_done(
        outcome="error", code="backend_auth_error", model="gpt-4o", backend="", route="chat"
    )
    metrics.tokens(model="gpt-4o-mini", prompt=3, completion=4)
    metrics.backend_latency(backend="openai", seconds=0.3)
    metrics.store_error(store="outcomes")
    metrics.set_breaker_states({"openai": BreakerState.OPEN})
    metrics.observe_stats(STATS)
    text = metrics.exposition().decode()

    assert secret not in text
    assert "sk-" not in text
    allowed_labels = {"outcome", "code", "model", "backend", "reason", "topic", "partition"}
    allowed_labels |= {"store", "scope", "le", "route", "status"}
    for family in metrics.registry.collect():
        for sample in family.samples:
            assert set(sample.labels) <= allowed_labels, (family.name, sample.labels)
