"""The options of the load test and the benchmarks (photos, providers), and where their
replies are read; the settings the load stack gives the service for each provider."""

from dataclasses import replace

import pytest

from chater_gpt.config import BackendKind, Settings
from chater_gpt.wiring import provider_count_endpoints
from chater_gpt.wiring.backends import configured_providers
from tests.load import bench
from tests.load._stack import service_settings
from tests.load._target import KafkaTarget
from tests.load.load_backend import Provider
from tests.load.load_test import parse_args, parse_size, spec_from_args, target_from_args
from tests.support.service_runner import settings_env


def test_photo_size_parses_width_by_height() -> None:
    assert parse_size("640x480") == (640, 480)
    assert parse_size("64X48") == (64, 48)
    for bad in ("640", "0x10", "axb", "10x10x10"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_photo_runs_read_both_reply_topics() -> None:
    target = KafkaTarget("x:9092")
    assert target.response_topics(photos=False) == ["gpt-response"]
    assert target.response_topics(photos=True) == ["gpt-response", "photo-analysis-response"]


def test_load_test_options_reach_the_spec_and_the_target() -> None:
    args = parse_args(
        [
            "--payload=photo-mixed",
            "--photo-size=32x32",
            "--bootstrap=k:9093",
            "--photo-request-topic=p-in",
            "--photo-response-topic=p-out",
        ]
    )
    spec = spec_from_args(args)
    assert (spec.payload, spec.photo_size) == ("photo-mixed", (32, 32))
    target = target_from_args(args)
    assert (target.photo_request_topic, target.photo_response_topic) == ("p-in", "p-out")
    defaults = spec_from_args(parse_args([]))
    assert (defaults.payload, defaults.photo_size) == ("text", (64, 48))


def test_bench_payload_options() -> None:
    args = bench.parse_args(["--only", "A,B", "--payload", "photo-mixed", "--b-clients", "sdk"])
    assert (args.only, args.payload, args.b_clients) == (["A", "B"], "photo-mixed", ("sdk",))
    defaults = bench.parse_args([])
    assert (defaults.payload, defaults.b_clients) == ("text", ("sdk", "aiohttp"))
    assert bench.FULL.payload == "text"
    with pytest.raises(SystemExit):
        bench.parse_args(["--b-clients", "httpx"])


def test_bench_provider_options() -> None:
    defaults = bench.parse_args([])
    assert (defaults.provider, defaults.provider_token_counts) == (("openai",), False)
    args = bench.parse_args(["--only", "B", "--provider", "anthropic, Gemini,anthropic"])
    assert args.provider == ("anthropic", "gemini")
    assert bench.parse_args(["--provider-token-counts"]).provider_token_counts
    for bad in ("cohere", ","):
        with pytest.raises(SystemExit):
            bench.parse_args(["--provider", bad])


def test_b_runs_each_client_of_each_provider() -> None:
    assert bench.b_runs(bench.FULL) == [("openai", "sdk"), ("openai", "aiohttp")]
    scale = replace(bench.FULL, b_providers=("openai", "anthropic", "gemini"))
    runs = bench.b_runs(scale)
    assert [bench.b_label(*run) for run in runs] == [
        "sdk",
        "aiohttp",
        "anthropic-sdk",
        "anthropic-aiohttp",
        "gemini-sdk",
        "gemini-aiohttp",
    ]
    only_sdks = bench.b_runs(replace(scale, b_clients=("sdk",)))
    assert only_sdks == [("openai", "sdk"), ("anthropic", "sdk"), ("gemini", "sdk")]


@pytest.mark.parametrize(
    ("provider", "kind", "model", "vision_model"),
    [
        ("openai", BackendKind.OPENAI, "gpt-4o-mini", "gpt-4o"),
        ("anthropic", BackendKind.ANTHROPIC, "claude-haiku-5-5", "claude-haiku-5-5"),
        ("gemini", BackendKind.GEMINI, "gemini-3-flash", "gemini-3-flash"),
    ],
)
def test_the_stack_configures_the_service_for_its_backends_provider_alone(
    provider: Provider,
    kind: BackendKind,
    model: str,
    vision_model: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = service_settings("k:9092", "http://127.0.0.1:9", {}, provider)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in settings_env(values).items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # as the child process reads its environment
    assert configured_providers(settings) == [kind]
    assert settings.llm_backend is kind
    assert (settings.model, settings.vision_model) == (model, vision_model)
    assert settings.catalogue.provider_of(model) == provider
    if provider != "openai":
        assert settings.provider_token_counts is False  # B: the completion path alone
        assert provider_count_endpoints(settings) == {}
        counted = service_settings("k:9092", "http://x", {}, provider, provider_token_counts=True)
        assert counted["provider_token_counts"] is True
    base = {"openai": "openai_base_url", "anthropic": "anthropic_base_url"}
    assert values[base.get(provider, "gemini_base_url")].startswith("http://127.0.0.1:9")
