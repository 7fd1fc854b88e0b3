"""Resilience of the running service (real broker, real Redis, scripted backend):
a replay after a crash costs no LLM call, an open breaker pauses consumption instead
of failing requests, retries follow the policy, and a fallback model answers when the
primary fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.integration.conftest import (
    Broker,
    SettingsFactory,
    Topics,
    service_config,
)
from tests.support.scripted_openai import Fault, ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    ServiceProcess,
    envelope,
    produce_requests,
    running_service,
)


def test_a_crash_after_replying_but_before_committing_replays_at_no_cost(
    broker: Broker,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    redis_url: str,
    tmp_path: Path,
) -> None:
    # Commits are held back (one per hour) so the SIGKILL lands after every reply was
    # produced but before any offset was committed: the restart replays all of them.
    config = service_config(
        broker, topics, scripted, redis_url=redis_url, commit_interval_seconds=3600
    )
    messages = [envelope(f"bill-{i}", message=f"costly question {i}") for i in range(40)]
    produce_requests(broker.bootstrap, topics.request, messages)
    first = ServiceProcess(config, tmp_path / "first.log").start()
    try:
        first_answers = replies.wait_for_keys({k for k, _ in messages}, timeout=60)
        first.kill()
    finally:
        first.stop()
    assert scripted.calls == len(messages)

    second = ServiceProcess(config, tmp_path / "second.log").start()
    try:
        replies.wait_for(2 * len(messages), timeout=60)
        assert second.terminate(timeout=30)[0] == 0
    finally:
        second.stop()
    assert scripted.calls == len(messages)  # the replay made no LLM call at all
    by_key = replies.wait_for_keys({k for k, _ in messages}, timeout=1)
    for key, answers in by_key.items():
        assert len(answers) == 2
        assert answers[0].value["response"] == answers[1].value["response"]
        assert answers[1].value["usage"] == first_answers[key][0].value["usage"]


async def test_an_open_breaker_pauses_consumption_and_loses_no_request(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    scripted.outage_status = 503
    # Retries (backoff) outlast the breaker's opening: requests then wait for it instead of
    # failing, and each is answered once the backend is back.
    settings = make_settings(breaker_fail_max=3, breaker_reset_seconds=1.0, max_retries=3)
    keys = {f"wait-{i}" for i in range(30)}
    async with running_service(settings) as service:
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope(key, message=key) for key in sorted(keys)],
        )
        await scripted_wait(scripted, lambda s: s.calls >= 3)
        pipeline = service.pipeline
        assert pipeline is not None
        await wait_until(lambda: "breaker" in pipeline.pause_reasons)
        calls_when_opened = scripted.calls
        # While open: the backend only sees the odd half-open probe (one per reset period).
        await wait_until(lambda: scripted.calls >= calls_when_opened + 2, timeout=10)
        assert scripted.calls <= calls_when_opened + 4
        assert not replies.replies  # nobody was answered with an error for the outage
        scripted.outage_status = None
        by_key = await replies.await_keys(keys, timeout=60)

    assert all("response" in answers[0].value for answers in by_key.values())
    assert all(len(answers) == 1 for answers in by_key.values())


async def test_retries_follow_the_policy(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    settings = make_settings(max_retries=2, breaker_fail_max=50)
    async with running_service(settings):
        scripted.fail_next(Fault(status=500), Fault(status=502))
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope("r-500", message="flaky")]
        )
        ok = (await replies.await_keys({"r-500"}, timeout=30))["r-500"][0].value
        assert ok["response"] == "echo: flaky"
        assert scripted.calls == 3  # two failures, then the answer

        scripted.fail_next(Fault(status=400))
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope("r-400", message="bad")]
        )
        bad = (await replies.await_keys({"r-400"}, timeout=30))["r-400"][0].value
        assert bad["error"]["code"] == "backend_error"
        assert bad["error"]["retryable"] is False
        assert scripted.calls == 4  # a 400 is never retried

        scripted.fail_next(*[Fault(status=500)] * 3)
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope("r-down", message="down")]
        )
        down = (await replies.await_keys({"r-down"}, timeout=30))["r-down"][0].value
        assert down["error"] == {
            "code": "backend_error",
            "message": down["error"]["message"],
            "retryable": True,
        }
        assert "scripted failure" not in down["error"]["message"]  # no upstream body
        assert scripted.calls == 7  # the first attempt and MAX_RETRIES=2 retries


async def test_a_fallback_model_answers_when_the_primary_fails_and_the_reply_names_it(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    def fail_primary(request_model: str) -> Fault | None:
        return Fault(status=503) if request_model == "gpt-4o-mini" else None

    scripted.fault_for_body = lambda body: fail_primary(body.get("model", ""))
    settings = make_settings(fallback_models="gpt-4.1-mini", max_retries=1, breaker_fail_max=50)
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope("fb-1", message="hello")]
        )
        value = (await replies.await_keys({"fb-1"}, timeout=30))["fb-1"][0].value

    assert value["model"] == "gpt-4.1-mini"
    assert value["response"] == "echo: hello"
    assert [r.body["model"] for r in scripted.requests] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4.1-mini",
    ]


async def scripted_wait(
    server: ScriptedOpenAI, predicate: Callable[[ScriptedOpenAI], bool], timeout: float = 30
) -> None:
    await asyncio.to_thread(server.wait_until, predicate, timeout)


async def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Poll a cheap in-process condition (the service's own state has no event to await)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_prompt_too_long_for_the_model_goes_to_its_larger_context_fallback(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    settings = make_settings(
        allowed_models="gpt-4",
        context_window=32_000,
        context_fallback_models="gpt-4=gpt-4o",
    )
    long_question = "Please summarise this. " + "lorem ipsum dolor sit amet " * 1200  # ~6k tokens
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [
                envelope("fits", message="short", model="gpt-4", max_tokens=100),
                envelope("too-long", message=long_question, model="gpt-4", max_tokens=4000),
            ],
        )
        by_key = await replies.await_keys({"fits", "too-long"}, timeout=30)

    assert by_key["fits"][0].value["model"] == "gpt-4"
    assert by_key["too-long"][0].value["model"] == "gpt-4o"  # gpt-4's 8k window is too small
    sent = next(r for r in scripted.requests if r.body["max_tokens"] == 4000)
    assert sent.body["model"] == "gpt-4o"
    assert sent.last_user_text == long_question  # nothing was cut


async def test_a_spent_global_budget_pauses_consumption_instead_of_failing_requests(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    # Each answer really costs ~120 tokens (a ~20-token prompt, 100 completion tokens):
    # two fit in the day's 300 tokens, the third would overrun them.
    scripted.answer = lambda body: "word " * 80
    settings = make_settings(daily_token_limit=300, max_tokens=100, shutdown_grace_seconds=1)
    async with running_service(settings) as service:
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("budget", message=f"spend {i}") for i in range(4)],
        )
        await replies.await_count(2, timeout=30)
        pipeline = service.pipeline
        assert pipeline is not None
        await wait_until(lambda: "budget" in pipeline.pause_reasons)
        readiness = await read_readyz(service.health_port)
        assert readiness["failing"]["budget"]
        assert len(replies.replies) == 2  # the rest wait in the service and in Kafka
        assert all("response" in r.value for r in replies.replies)
        assert scripted.calls == 2
        service.request_stop()  # the waiting requests are abandoned, not answered


async def read_readyz(port: int | None) -> dict[str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        assert response.status == 503
        body: dict[str, dict[str, str]] = await response.json()
        return body
