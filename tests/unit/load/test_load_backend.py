"""Shaping the scripted load backend: latency distributions, errors, 429 bursts."""

import random
import statistics
from typing import Any

import orjson
import pytest

from chater_gpt.domain import ResponseFormat
from chater_gpt.json_output import check_answer
from tests.load.load_backend import (
    Bursts,
    FaultPlan,
    Provider,
    build_server,
    padded_answer,
    parse_args,
    parse_latency,
)
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_gemini import ScriptedGemini
from tests.support.scripted_openai import ScriptedOpenAI


def test_fixed_normal_and_longtail_latencies() -> None:
    rng = random.Random(1)
    assert parse_latency("fixed:0.2", rng)() == 0.2
    normal = [parse_latency("normal:0.2,0.05", rng)() for _ in range(4000)]
    assert statistics.mean(normal) == pytest.approx(0.2, abs=0.005)
    assert min(normal) >= 0
    sample = parse_latency("longtail:0.2", rng)
    tail = sorted(sample() for _ in range(4000))
    assert tail[2000] == pytest.approx(0.2, rel=0.1)  # the median is the parameter
    assert tail[3960] > 4 * tail[2000]  # p99 far above the median


@pytest.mark.parametrize(
    "spec", ["fixed", "fixed:x", "normal:0.2", "longtail:0", "uniform:1", "fixed:-1"]
)
def test_bad_latency_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="latency"):
        parse_latency(spec, random.Random())


def test_bursts_answer_429_at_the_start_of_each_period() -> None:
    bursts = Bursts.parse("10:2")
    assert bursts.active(0.5)
    assert bursts.active(21.9)
    assert not bursts.active(2.5)
    assert not bursts.active(19.9)
    plan = FaultPlan(bursts=bursts)
    fault = plan.fault(10.4, draw=0.99)
    assert fault is not None
    assert fault.status == 429
    assert fault.headers["Retry-After"] == "2"  # 1.6 s left, rounded up
    assert plan.fault(5.0, draw=0.0) is None  # no error rate set
    with pytest.raises(ValueError, match="PERIOD"):
        Bursts.parse("2:10")


def test_error_rate_uses_the_draw() -> None:
    plan = FaultPlan(error_rate=0.1)
    assert plan.fault(0.0, draw=0.05) is not None
    assert plan.fault(0.0, draw=0.5) is None


def test_answers_echo_the_question_and_are_padded_to_the_token_count() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    answer = padded_answer(40)(body)
    assert answer.startswith("echo: hi")
    assert len(answer) // 4 == 40


def test_json_mode_requests_get_one_json_object() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "what food?"}]}],
        "response_format": {"type": "json_object"},
    }
    text = padded_answer(40)(body)
    assert check_answer(text, ResponseFormat("json_object")) == text  # the service accepts it
    document = orjson.loads(text)
    assert document["type"] == "food_processing"
    assert document["echo"] == "what food?"
    assert abs(len(text) // 4 - 40) <= 2


def test_each_provider_gets_its_own_json_answers() -> None:
    claude_json = {
        "system": "Be brief.\n\nAnswer with a single JSON object only, with no other text.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "what food?"}]}],
    }
    claude_schema = {
        "messages": [{"role": "user", "content": "what food?"}],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    gemini_json = {
        "contents": [{"role": "user", "parts": [{"text": "what food?"}]}],
        "generationConfig": {"responseMimeType": "application/json"},
    }
    cases: list[tuple[Provider, dict[str, Any]]] = [
        ("anthropic", claude_json),
        ("anthropic", claude_schema),
        ("gemini", gemini_json),
    ]
    for provider, body in cases:
        document = orjson.loads(padded_answer(40, provider)(body))
        assert document["echo"] == "what food?", provider
    claude_text = {"system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]}
    gemini_text = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert padded_answer(40, "anthropic")(claude_text).startswith("echo: hi tok")
    assert padded_answer(40, "gemini")(gemini_text).startswith("echo: hi tok")


def test_rate_limits_carry_openais_body_or_the_servers_own() -> None:
    bursts = Bursts.parse("10:2")
    openai = FaultPlan(bursts=bursts).fault(0.5, draw=0.99)
    assert openai is not None
    assert openai.body == {"error": {"message": "rate limited (scripted)", "type": "requests"}}
    other = FaultPlan(bursts=bursts, rate_limited_body=None).fault(0.5, draw=0.99)
    assert other is not None
    assert (other.status, other.body) == (429, None)  # the Anthropic/Gemini server's body


@pytest.mark.parametrize(
    ("provider", "server"),
    [("openai", ScriptedOpenAI), ("anthropic", ScriptedAnthropic), ("gemini", ScriptedGemini)],
)
def test_the_backend_is_the_providers_scripted_server(provider: str, server: type) -> None:
    built = build_server(parse_args([f"--provider={provider}", "--latency=fixed:0"]))
    assert type(built) is server
    assert built.record is False  # long runs would keep every request in memory
    assert parse_args([]).provider == "openai"
