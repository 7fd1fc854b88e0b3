"""The running service on the real broker and a scripted OpenAI-compatible server:
documented and legacy requests get the right reply under their key, vision requests
reach the server as data URLs, and bad input gets its documented error code."""

from __future__ import annotations

import base64

import orjson

from tests.integration.conftest import SettingsFactory, Topics
from tests.support.images import b64, image_bytes, png_bomb
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)


async def test_documented_and_legacy_requests_are_answered_under_their_keys(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    settings = make_settings()
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [
                envelope("doc-1", message="What is Kafka?", user_email="ada@example.com"),
                envelope("legacy-1", question="And now?", context="We talked about Kafka."),
                ("bare-1", orjson.dumps({"message": "A bare value"})),
            ],
        )
        by_key = await replies.await_keys({"doc-1", "legacy-1", "bare-1"}, timeout=30)

    doc = by_key["doc-1"][0].value
    assert doc["response"] == "echo: What is Kafka?"
    assert doc["model"] == "gpt-4o-mini"
    assert doc["finish_reason"] == "stop"
    usage = doc["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert doc["timestamp"].endswith("Z")
    assert doc["processing_time"] >= 0

    assert by_key["legacy-1"][0].value["response"] == "echo: And now?"
    assert by_key["bare-1"][0].value["response"] == "echo: A bare value"
    # The legacy context is the previous assistant turn, placed before the question.
    legacy_call = next(r for r in scripted.requests if r.last_user_text == "And now?")
    roles = [(m["role"], m["content"]) for m in legacy_call.messages]
    assert roles[-2:] == [("assistant", "We talked about Kafka."), ("user", "And now?")]
    assert roles[0][0] == "system"
    assert all(len(replies_of_key) == 1 for replies_of_key in by_key.values())


async def test_vision_requests_reach_the_backend_as_data_urls(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    png, jpeg = image_bytes("PNG"), image_bytes("JPEG")
    settings = make_settings()
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [
                envelope("png-1", message="What is in the PNG?", images=[b64(png)]),
                envelope(
                    "jpeg-1",
                    message="And the JPEG?",
                    images=[f"data:image/png;base64,{b64(jpeg)}"],  # wrong declared type
                ),
            ],
        )
        by_key = await replies.await_keys({"png-1", "jpeg-1"}, timeout=30)

    assert by_key["png-1"][0].value["model"] == "gpt-4o"  # VISION_MODEL with images
    sent = {r.last_user_text: r for r in scripted.requests}
    for text, data, mime in (
        ("What is in the PNG?", png, "image/png"),
        ("And the JPEG?", jpeg, "image/jpeg"),
    ):
        call = sent[text]
        assert call.body["model"] == "gpt-4o"
        parts = call.messages[-1]["content"]
        image_parts = [p for p in parts if p["type"] == "image_url"]
        assert len(image_parts) == 1
        url = image_parts[0]["image_url"]["url"]
        prefix = f"data:{mime};base64,"
        assert url.startswith(prefix)  # the MIME type comes from the bytes
        assert base64.b64decode(url[len(prefix) :]) == data


async def test_bad_input_gets_its_error_code_and_never_reaches_the_llm(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    settings = make_settings(max_payload_bytes=64 * 1024, max_images=2, max_image_pixels=10_000)
    cases: dict[str, tuple[bytes, str]] = {
        "not-json": (b"{this is not json", "invalid_json"),
        "not-utf8": (b'{"message": "\xff\xfe"}', "invalid_json"),
        "empty-value": (b"", "invalid_json"),
        "wrong-schema": (
            orjson.dumps({"key": "wrong-schema", "value": {"message": 42}}),
            "invalid_request",
        ),
        "empty-message": (
            orjson.dumps({"key": "empty-message", "value": {"message": "  "}}),
            "invalid_request",
        ),
        "not-an-object": (b"[1, 2, 3]", "invalid_request"),
        "oversize": (orjson.dumps({"message": "x" * 70_000}), "payload_too_large"),
        "bad-base64": (
            orjson.dumps({"message": "hi", "images": ["%%%not base64%%%"]}),
            "invalid_image",
        ),
        "not-an-image": (
            orjson.dumps({"message": "hi", "images": [b64(b"plain text, no image")]}),
            "invalid_image",
        ),
        "too-many-images": (
            orjson.dumps({"message": "hi", "images": [b64(image_bytes())] * 3}),
            "payload_too_large",
        ),
        "image-bomb": (
            orjson.dumps({"message": "hi", "images": [b64(png_bomb(50_000, 50_000))]}),
            "payload_too_large",
        ),
        "plain-http-url": (
            orjson.dumps({"message": "hi", "images": ["http://example.com/a.png"]}),
            "invalid_image",
        ),
        "unknown-model": (
            orjson.dumps({"message": "hi", "model": "gpt-9-ultra"}),
            "model_not_allowed",
        ),
        "too-many-tokens": (
            orjson.dumps({"message": "hi", "max_tokens": 1_000_000}),
            "invalid_request",
        ),
    }
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [(key, value) for key, (value, _) in cases.items()]
            + [envelope("good-after-bad", message="still alive?")],
        )
        by_key = await replies.await_keys(set(cases) | {"good-after-bad"}, timeout=30)

    for key, (_, code) in cases.items():
        value = by_key[key][0].value
        assert value["error"]["code"] == code, key
        assert value["error"]["retryable"] is False
        assert "Traceback" not in value["error"]["message"]
    assert by_key["good-after-bad"][0].value["response"] == "echo: still alive?"
    assert [r.last_user_text for r in scripted.requests] == ["still alive?"]
