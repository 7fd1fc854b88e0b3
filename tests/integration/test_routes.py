"""Routes through the running service: a routes file adds a request topic answered on its
own reply topic with its pinned model (and the route in the metrics), `IS_DEV` moves every
topic to `<topic>_dev`, and a bare `python main.py` runs the service as the original did."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import aiohttp

from tests.integration.conftest import (
    Broker,
    SettingsFactory,
    Topics,
    service_config,
)
from tests.support.images import b64, image_bytes
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    ServiceProcess,
    envelope,
    produce_requests,
    running_service,
)


async def test_a_routes_file_adds_a_route_with_its_own_topics_model_and_metrics(
    broker: Broker,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    send, reply = f"gemini-send-{run}", f"gemini-response-{run}"
    broker.create_topics([send, reply])
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n"
        f"  - {{name: gemini, request_topic: {send}, reply_topic: {reply},"
        " model: gemini-2.0-flash, system_prompt: You are Gemini., max_tokens: 77}\n"
    )
    settings = make_settings(routes_file=str(routes))
    gemini_replies = ReplyCollector(settings.bootstrap_server, reply)
    try:
        async with running_service(settings) as service:
            produce_requests(
                settings.bootstrap_server,
                send,
                [envelope("g-1", question="Hi Gemini"), envelope("g-2", message="x", model="nope")],
            )
            produce_requests(
                settings.bootstrap_server, topics.request, [envelope("c-1", message="Hi chat")]
            )
            by_key = await gemini_replies.await_keys({"g-1", "g-2"}, timeout=30)
            chat = await replies.await_keys({"c-1"}, timeout=30)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{service.health_port}/metrics") as response,
            ):
                metrics = await response.text()
    finally:
        gemini_replies.close()

    assert by_key["g-1"][0].value["model"] == "gemini-2.0-flash"
    assert by_key["g-2"][0].value["error"]["code"] == "model_not_allowed"
    assert set(by_key) == {"g-1", "g-2"}  # nothing of the chat route on the gemini topic
    assert chat["c-1"][0].value["model"] == "gpt-4o-mini"
    gemini_call = next(r for r in scripted.requests if r.last_user_text == "Hi Gemini")
    assert gemini_call.body["model"] == "gemini-2.0-flash"
    assert gemini_call.body["max_tokens"] == 77
    assert gemini_call.messages[0] == {"role": "system", "content": "You are Gemini."}
    assert 'route="gemini"' in metrics
    assert 'route="chat"' in metrics


async def test_is_dev_moves_every_topic_to_its_dev_twin(
    broker: Broker,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
) -> None:
    dev = {name: f"{name}_dev" for name in (topics.request, topics.response)}
    dev |= {name: f"{name}_dev" for name in (topics.photo_request, topics.photo_response)}
    broker.create_topics(list(dev.values()))
    scripted.answer = lambda body: (
        '{"type": "weight_processing", "weight": 2}' if "response_format" in body else "chat"
    )
    settings = make_settings(is_dev=True)
    chat_dev = ReplyCollector(settings.bootstrap_server, dev[topics.response])
    photo_dev = ReplyCollector(settings.bootstrap_server, dev[topics.photo_response])
    try:
        async with running_service(settings):
            produce_requests(
                settings.bootstrap_server, dev[topics.request], [envelope("d-1", message="hi")]
            )
            produce_requests(
                settings.bootstrap_server,
                dev[topics.photo_request],
                [envelope("d-2", prompt="weigh", photo=b64(image_bytes("PNG")), image_id="d-2")],
            )
            chat = await chat_dev.await_keys({"d-1"}, timeout=30)
            photo = await photo_dev.await_keys({"d-2"}, timeout=30)
    finally:
        chat_dev.close()
        photo_dev.close()
    assert chat["d-1"][0].value["response"] == "chat"
    assert json.loads(photo["d-2"][0].value["analysis"])["weight"] == 2


async def test_a_bare_python_main_py_runs_the_service(
    broker: Broker,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    tmp_path: Path,
) -> None:
    config = service_config(broker, topics, scripted)
    child = ServiceProcess(config, tmp_path / "service.log", command=()).start()
    try:
        produce_requests(broker.bootstrap, topics.request, [envelope("bare-1", message="hello")])
        reply = await replies.await_keys({"bare-1"}, timeout=60)
    finally:
        child.stop()
    assert reply["bare-1"][0].value["response"] == "echo: hello"
