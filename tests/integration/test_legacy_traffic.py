"""The original Chater service's traffic, in exactly the shapes its neighbours send and
parse (shared/LEGACY-TRAFFIC.md), through the running service and the real broker:
photo analyses read the way the food-diary service reads them, chat rendered the way
the UI renders it, anonymous users kept apart, JSON answers checked and repaired."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import orjson
import redis

from chater_gpt.routes import PHOTO_SYSTEM_PROMPT
from tests.integration.conftest import SettingsFactory, Topics
from tests.support.images import b64, image_bytes
from tests.support.scripted_openai import ScriptedOpenAI, user_text
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)

FOOD = {"type": "food_processing", "dish_name": "apple", "total_weight": 150}


def food_diary_parse(value: Any) -> dict[str, Any]:
    """The food-diary consumer's steps 1-4 (LEGACY-TRAFFIC.md §2), as it runs them: what
    it records, or raises where it would break."""
    if isinstance(value, str):
        value = json.loads(re.sub(r"^```(?:json)?|```$", "", value.strip()).strip())
    # A fenced or non-JSON analysis breaks it here.
    analysis = json.loads(value["analysis"]) if "analysis" in value else value
    if analysis.get("error"):
        return {"failure_for": value.get("user_email")}
    assert analysis["type"] in ("food_processing", "weight_processing")
    return {
        "type": analysis["type"],
        "image_id": value["image_id"],
        "timestamp": value.get("timestamp"),
        "date": value.get("date"),
        "analysis": analysis,
    }


def ui_render(response: str) -> str:
    """The UI (§1): a fenced json block, else the whole text as JSON, showing `script` or
    `code` from it; when all that fails, the text as it is."""
    fenced = re.search(r"```json\s*(.*?)```", response, re.DOTALL)
    try:
        document = json.loads(fenced.group(1) if fenced else response)
        return str(document.get("script") or document.get("code") or response)
    except (ValueError, AttributeError):
        return response


async def test_photos_are_analysed_in_the_platforms_shapes_and_parsed_by_the_food_diary(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
) -> None:
    # The model fences its JSON, as models do: the reply carries it unfenced.
    scripted.answer = lambda body: "```json\n" + json.dumps(FOOD) + "\n```"
    settings = make_settings()
    jpeg, png = b64(image_bytes("JPEG", (64, 48))), b64(image_bytes("PNG", (40, 30)))
    requests = [
        envelope(
            "ph-jpeg",
            prompt="Analyse the food. Answer as JSON with type = food_processing.",
            photo=jpeg,
            user_email="ada@example.com",
            image_id="images/ph-jpeg.jpg",
            timestamp="2026-11-25T12:00:00Z",
            date="2026-11-25",
        ),
        envelope(
            "ph-png",
            prompt="Read the weight. Answer as JSON.",
            photo=png,
            user_email="ada@example.com",
            image_id="ph-png",
            timestamp=None,
        ),
        envelope(
            "ph-broken",
            prompt="Analyse",
            photo=b64(b"not an image"),
            user_email="bo@x.io",
            image_id="ph-broken",
        ),
        envelope("ph-no-prompt", photo=jpeg, user_email="bo@x.io", image_id="ph-no-prompt"),
    ]
    collector = ReplyCollector(settings.bootstrap_server, topics.photo_response)
    try:
        async with running_service(settings):
            produce_requests(settings.bootstrap_server, topics.photo_request, requests)
            by_key = await collector.await_keys({key for key, _ in requests}, timeout=30)
    finally:
        collector.close()

    jpeg_reply = by_key["ph-jpeg"][0].value
    assert food_diary_parse(jpeg_reply) == {
        "type": "food_processing",
        "image_id": "images/ph-jpeg.jpg",
        "timestamp": "2026-11-25T12:00:00Z",
        "date": "2026-11-25",
        "analysis": FOOD,
    }
    assert jpeg_reply["analysis"] == json.dumps(FOOD)  # unfenced
    assert jpeg_reply["user_email"] == "ada@example.com"
    assert jpeg_reply["usage"]["total_tokens"] > 0
    png_reply = by_key["ph-png"][0].value
    assert food_diary_parse(png_reply)["image_id"] == "ph-png"
    assert "timestamp" not in png_reply  # null in the request: not carried over
    assert "date" not in png_reply

    for key, code in (("ph-broken", "invalid_image"), ("ph-no-prompt", "invalid_request")):
        value = by_key[key][0].value
        assert "analysis" not in value
        assert value["error"]["code"] == code
        assert value["error"]["retryable"] is False
        assert (value["user_email"], value["image_id"]) == ("bo@x.io", key)
        assert food_diary_parse(value) == {"failure_for": "bo@x.io"}

    # Only the two good photos reached the model, each as an image in JSON mode.
    assert len(scripted.requests) == 2
    for request in scripted.requests:
        body = request.body
        assert body["model"] == "gpt-4o"  # VISION_MODEL
        assert body["response_format"] == {"type": "json_object"}
        assert body["messages"][0] == {"role": "system", "content": PHOTO_SYSTEM_PROMPT}
        parts = body["messages"][-1]["content"]
        image = next(p for p in parts if p["type"] == "image_url")["image_url"]["url"]
        assert image.startswith(("data:image/jpeg;base64,", "data:image/png;base64,"))


async def test_chat_in_the_ui_shape_is_answered_and_rendered_as_the_ui_renders_it(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    scripted.answer = lambda body: '```json\n{"script": "kubectl get pods"}\n```'
    settings = make_settings()
    earlier = "How do I list nodes?kubectl get nodes shows them."
    request = {
        "question": "How do I list pods?",
        "context": earlier,
        "think": True,
        "send_topic": "gpt-response",
        "user_email": "unknown",
    }
    async with running_service(settings):
        produce_requests(settings.bootstrap_server, topics.request, [envelope("ui-1", **request)])
        reply = (await replies.await_keys({"ui-1"}, timeout=30))["ui-1"][0]

    assert ui_render(reply.value["response"]) == "kubectl get pods"
    messages = scripted.requests[0].messages
    # The UI's whole earlier conversation reaches the model before the new question.
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    assert messages[1]["content"] == earlier
    assert messages[2]["content"] == "How do I list pods?"


async def test_two_anonymous_users_never_share_a_conversation(
    redis_url: str,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    # One request per user per minute: were the placeholder one user, B would be refused.
    settings = make_settings(
        redis_url=redis_url, user_daily_token_limit=1_000_000, user_requests_per_minute=1
    )
    secret = f"my secret number is {uuid.uuid4().int % 10_000:04d}"
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("anon-a", message=secret, user_email="unknown")],
        )
        await replies.await_keys({"anon-a"}, timeout=30)
        for key, email in (("anon-b", "unknown"), ("anon-c", ""), ("anon-d", "Anonymous")):
            produce_requests(
                settings.bootstrap_server,
                topics.request,
                [envelope(key, message="what is my secret number?", user_email=email)],
            )
        answered = await replies.await_keys({"anon-b", "anon-c", "anon-d"}, timeout=30)

    assert not [k for k, r in answered.items() if "error" in r[0].value]
    later_calls = [r for r in scripted.requests if r.last_user_text != secret]
    assert len(later_calls) == 3
    for call in later_calls:
        assert secret not in orjson.dumps(call.body).decode()
        assert [m["role"] for m in call.messages] == ["system", "user"]
    # Nothing was stored for the placeholder "user", nor billed to it as a user.
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k.decode() for k in client.scan_iter(f"{settings.redis_key_prefix}*")]
    finally:
        client.close()
    assert not [k for k in keys if "{u:" in k], keys
    assert not [k for k in keys if ":user:" in k], keys
    assert [k for k in keys if k.endswith(":global")], keys  # the global budget was charged


async def test_a_named_conversation_keeps_its_stored_history_beside_supplied_context(
    redis_url: str,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    settings = make_settings(redis_url=redis_url)
    user = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [
                envelope(
                    "n-1", message="Remember: I like tea.", user_email=user, conversation_id="c"
                )
            ],
        )
        await replies.await_keys({"n-1"}, timeout=30)
        # With its own context and no conversation_id: stored history is not mixed in.
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("n-2", message="What do I like?", user_email=user, context="Hi.")],
        )
        await replies.await_keys({"n-2"}, timeout=30)
        # With context and the conversation_id: history first, then the context.
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [
                envelope(
                    "n-3",
                    message="What do I like?",
                    user_email=user,
                    conversation_id="c",
                    context="Hi.",
                )
            ],
        )
        await replies.await_keys({"n-3"}, timeout=30)

    second, third = scripted.requests[1], scripted.requests[2]
    assert "tea" not in orjson.dumps(second.body).decode()
    # (the supplied context, an assistant turn, merges with the stored answer before it)
    assert [m["content"] for m in third.messages[1:]] == [
        "Remember: I like tea.",
        "echo: Remember: I like tea.\n\nHi.",
        "What do I like?",
    ]


async def test_json_answers_are_checked_repaired_once_and_refused_after(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    schema = {
        "type": "object",
        "properties": {"type": {"enum": ["weight_processing"]}, "weight": {"type": "number"}},
        "required": ["type", "weight"],
    }
    answers = {
        # first answer misses "weight"; the repair is right
        "fix-me": iter(
            ['{"type": "weight_processing"}', '{"type": "weight_processing", "weight": 3}']
        ),
        "hopeless": iter(["no JSON here", "still no JSON"]),
    }

    def answer(body: dict[str, Any]) -> str:
        first_user = next(m for m in body["messages"] if m["role"] == "user")["content"]
        return next(answers[first_user])

    scripted.answer = answer
    settings = make_settings(json_repair_attempts=1)
    fmt = {"type": "json_schema", "json_schema": {"name": "weight", "schema": schema}}
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [
                envelope("j-1", message="fix-me", response_format=fmt),
                envelope("j-2", message="hopeless", response_format={"type": "json_object"}),
                envelope("j-3", message="x", response_format={"type": "xml"}),
            ],
        )
        by_key = await replies.await_keys({"j-1", "j-2", "j-3"}, timeout=30)

    fixed = by_key["j-1"][0].value
    assert json.loads(fixed["response"]) == {"type": "weight_processing", "weight": 3}
    fix_calls = [r for r in scripted.requests if user_text(r.body) != "hopeless"]
    first_call, repair_call = (r for r in fix_calls if r.messages[1]["content"] == "fix-me")
    assert first_call.body["response_format"]["json_schema"]["schema"] == schema
    # The repair shows the model its answer and asks again; both calls are billed.
    assert repair_call.messages[-2] == {
        "role": "assistant",
        "content": '{"type": "weight_processing"}',
    }
    billed = sum(r.body and 1 for r in (first_call, repair_call))
    assert billed == 2
    assert fixed["usage"]["completion_tokens"] >= 2
    assert by_key["j-2"][0].value["error"]["code"] == "invalid_model_output"
    assert by_key["j-2"][0].value["error"]["retryable"] is False
    assert by_key["j-3"][0].value["error"]["code"] == "invalid_request"
    assert len([r for r in scripted.requests if r.messages[1]["content"] == "hopeless"]) == 2
