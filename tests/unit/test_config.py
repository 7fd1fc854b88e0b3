"""Configuration: every setting validated at start-up; errors name the variable, never a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chater_gpt.config import Settings, load_settings
from chater_gpt.errors import ConfigError
from tests.support.service_runner import settings_env

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-test-CONFIG-SECRET-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper() in {f.upper() for f in Settings.model_fields}:
            monkeypatch.delenv(name)


def test_defaults_of_the_original_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_SERVER", "kafka:9092")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    settings = load_settings()
    assert settings.consumer_group == "chater-gpt-group"
    assert (settings.request_topic, settings.response_topic) == ("gpt-send", "gpt-response")
    assert settings.openai_api_key is not None
    assert FAKE_KEY not in repr(settings)


def test_comma_lists_and_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_SERVER", "kafka:9092")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://llm:8080/v1")
    monkeypatch.setenv("ALLOWED_MODELS", "a, b ,c")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.allowed_models == ["a", "b", "c"]
    assert settings.log_level == "DEBUG"
    assert {"a", "b", "c", settings.model}.issubset(settings.models_allowed)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "BOOTSTRAP_SERVER"),
        ({"BOOTSTRAP_SERVER": "k:9092"}, "OPENAI_API_KEY"),
        (
            {"BOOTSTRAP_SERVER": "k:9092", "OPENAI_API_KEY": FAKE_KEY, "MAX_IN_FLIGHT": "0"},
            "MAX_IN_FLIGHT",
        ),
        (
            {"BOOTSTRAP_SERVER": "k:9092", "OPENAI_API_KEY": FAKE_KEY, "TEMPERATURE": "hot"},
            "TEMPERATURE",
        ),
        (
            {"BOOTSTRAP_SERVER": "k:9092", "OPENAI_API_KEY": FAKE_KEY, "LLM_BACKEND": "koboldcpp"},
            "KOBOLDCPP_API_URL",
        ),
        (
            {"BOOTSTRAP_SERVER": "k:9092", "OPENAI_API_KEY": FAKE_KEY, "LLM_BACKEND": "anthropic"},
            "ANTHROPIC_API_KEY",
        ),
        (
            {
                "BOOTSTRAP_SERVER": "k:9092",
                "OPENAI_API_KEY": FAKE_KEY,
                "FALLBACK_BACKEND": "gemini",
            },
            "GEMINI_API_KEY",
        ),
        (
            {
                "BOOTSTRAP_SERVER": "k:9092",
                "OPENAI_API_KEY": FAKE_KEY,
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            },
            "KAFKA_SASL_MECHANISM",
        ),
        (
            {"BOOTSTRAP_SERVER": "k:9092", "OPENAI_API_KEY": FAKE_KEY, "DAILY_COST_LIMIT_USD": "0"},
            "DAILY_COST_LIMIT_USD",
        ),
        (
            {
                "BOOTSTRAP_SERVER": "k:9092",
                "OPENAI_API_KEY": FAKE_KEY,
                "USER_DAILY_COST_LIMIT_USD": "inf",
            },
            "USER_DAILY_COST_LIMIT_USD",
        ),
    ],
)
def test_invalid_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in caught.value.message
    assert FAKE_KEY not in caught.value.message


def test_kafka_security_settings_reach_librdkafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_SERVER", "broker:9093")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-pass-123")
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", "/etc/ca.pem")
    monkeypatch.setenv("KAFKA_EXTRA_CONFIG", '{"client.id": "chater"}')
    conf = load_settings().kafka_common_config()
    assert conf == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "kafka-pass-123",
        "ssl.ca.location": "/etc/ca.pem",
        "client.id": "chater",
    }


def test_the_service_refuses_to_start_with_a_clear_message() -> None:
    env = settings_env(
        {"bootstrap_server": "k:9092", "openai_api_key": FAKE_KEY, "max_retries": "-1"}
    )
    proc = subprocess.run(
        [sys.executable, "main.py", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "MAX_RETRIES" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert FAKE_KEY not in proc.stderr + proc.stdout


def test_the_gateway_needs_no_llm_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """It calls no LLM: its pods carry no backend's key; the service still needs one."""
    monkeypatch.setenv("BOOTSTRAP_SERVER", "k:9092")
    monkeypatch.setenv("LLM_BACKEND", "anthropic")
    assert load_settings(llm=False).llm_backend.value == "anthropic"
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "ANTHROPIC_API_KEY" in caught.value.message
