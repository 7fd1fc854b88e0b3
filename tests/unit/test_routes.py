"""Routes: the two built-in routes of the original service, more from ROUTES_FILE, IS_DEV,
and a bad routes file stopping start-up with one line naming the entry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from chater_gpt.config import Settings, load_settings
from chater_gpt.domain import ResponseFormat
from chater_gpt.errors import ConfigError
from chater_gpt.routes import PHOTO_SYSTEM_PROMPT, Route, RouteShape, parse_routes

# A local base URL: no OpenAI key needed.
BASE: dict[str, Any] = {
    "bootstrap_server": "kafka:9092",
    "openai_base_url": "http://127.0.0.1:1/v1",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper() in {f.upper() for f in Settings.model_fields}:
            monkeypatch.delenv(name)


def settings(**overrides: Any) -> Settings:
    return load_settings({**BASE, **overrides})


def routes_by_name(configured: Settings) -> dict[str, Route]:
    return {route.name: route for route in configured.routes}


def routes_file(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_routes_file(
    tmp_path: Path, text: str, name: str = "routes.yaml", **extra: Any
) -> Settings:
    return settings(routes_file=str(routes_file(tmp_path, text, name)), **extra)


GEMINI_YAML = """\
routes:
  - name: gemini
    request_topic: gemini-send
    reply_topic: gemini-response
    model: gemini-2.0-flash
    system_prompt: "Be brief."
    max_tokens: 800
    response_format: {type: json_object}
"""


# --- built-in routes --------------------------------------------------------------------


def test_defaults_are_the_original_chat_and_photo_routes() -> None:
    routes = routes_by_name(settings())
    assert set(routes) == {"chat", "photo"}
    chat, photo = routes["chat"], routes["photo"]
    assert (chat.request_topic, chat.reply_topic, chat.shape) == (
        "gpt-send",
        "gpt-response",
        RouteShape.CHAT,
    )
    assert (chat.model, chat.system_prompt, chat.response_format) == (None, None, None)
    assert (photo.request_topic, photo.reply_topic, photo.shape) == (
        "eater-send-photo",
        "photo-analysis-response",
        RouteShape.PHOTO,
    )


def test_the_photo_route_asks_for_a_json_object_with_the_photo_system_prompt() -> None:
    photo = routes_by_name(settings())["photo"]
    assert photo.response_format == ResponseFormat("json_object")
    assert photo.system_prompt == PHOTO_SYSTEM_PROMPT
    assert "json" in photo.system_prompt.lower()
    assert photo.model is None  # the decoder picks VISION_MODEL


def test_an_empty_photo_request_topic_turns_photo_off() -> None:
    routes = settings(photo_request_topic="").routes
    assert [route.name for route in routes] == ["chat"]


def test_the_topic_settings_name_the_built_in_routes() -> None:
    routes = routes_by_name(
        settings(
            request_topic="ask",
            response_topic="answer",
            photo_request_topic="pics",
            photo_response_topic="pic-answers",
        )
    )
    assert (routes["chat"].request_topic, routes["chat"].reply_topic) == ("ask", "answer")
    assert (routes["photo"].request_topic, routes["photo"].reply_topic) == ("pics", "pic-answers")


# --- routes file ------------------------------------------------------------------------


def test_a_yaml_routes_file_adds_a_route_with_its_defaults(tmp_path: Path) -> None:
    routes = routes_by_name(with_routes_file(tmp_path, GEMINI_YAML))
    assert set(routes) == {"chat", "photo", "gemini"}
    assert routes["gemini"] == Route(
        name="gemini",
        request_topic="gemini-send",
        reply_topic="gemini-response",
        shape=RouteShape.CHAT,
        model="gemini-2.0-flash",
        system_prompt="Be brief.",
        max_tokens=800,
        response_format=ResponseFormat("json_object"),
    )


@pytest.mark.parametrize("suffix", ["yml", "YAML"])
def test_yaml_is_recognised_by_either_suffix(tmp_path: Path, suffix: str) -> None:
    routes = routes_by_name(with_routes_file(tmp_path, GEMINI_YAML, f"routes.{suffix}"))
    assert routes["gemini"].request_topic == "gemini-send"


def test_a_json_routes_file_adds_a_route(tmp_path: Path) -> None:
    document = {
        "routes": [
            {
                "name": "summary",
                "request_topic": "summary-send",
                "reply_topic": "summary-response",
                "max_tokens": 200,
            }
        ]
    }
    routes = routes_by_name(with_routes_file(tmp_path, json.dumps(document), "routes.json"))
    assert set(routes) == {"chat", "photo", "summary"}
    summary = routes["summary"]
    assert (summary.request_topic, summary.reply_topic) == ("summary-send", "summary-response")
    assert summary.shape is RouteShape.CHAT
    assert summary.max_tokens == 200
    assert (summary.model, summary.system_prompt, summary.response_format) == (None, None, None)


def test_a_file_entry_named_like_a_built_in_route_replaces_it(tmp_path: Path) -> None:
    text = """\
routes:
  - name: chat
    request_topic: chat-in
    reply_topic: chat-out
    model: gpt-4o
"""
    routes = with_routes_file(tmp_path, text).routes
    chats = [route for route in routes if route.name == "chat"]
    assert len(chats) == 1
    assert (chats[0].request_topic, chats[0].reply_topic, chats[0].model) == (
        "chat-in",
        "chat-out",
        "gpt-4o",
    )
    assert all(route.request_topic != "gpt-send" for route in routes)
    assert {route.name for route in routes} == {"chat", "photo"}


def test_a_photo_entry_replacing_the_built_in_keeps_its_own_prompt(tmp_path: Path) -> None:
    text = """\
routes:
  - name: photo
    shape: photo
    request_topic: eater-send-photo
    reply_topic: photo-analysis-response
    model: gpt-4o-mini
    system_prompt: "Count the calories. Answer in JSON."
"""
    photo = routes_by_name(with_routes_file(tmp_path, text))["photo"]
    assert photo.model == "gpt-4o-mini"
    assert photo.system_prompt == "Count the calories. Answer in JSON."
    assert photo.response_format == ResponseFormat("json_object")


def test_a_photo_shaped_file_route_gets_the_photo_defaults(tmp_path: Path) -> None:
    text = """\
routes:
  - name: receipts
    shape: photo
    request_topic: receipt-send
    reply_topic: receipt-response
"""
    receipts = routes_by_name(with_routes_file(tmp_path, text))["receipts"]
    assert receipts.shape is RouteShape.PHOTO
    assert receipts.system_prompt == PHOTO_SYSTEM_PROMPT
    assert receipts.response_format == ResponseFormat("json_object")


def test_a_route_can_ask_for_a_json_schema_answer(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"kcal": {"type": "number"}}, "required": ["kcal"]}
    document = {
        "routes": [
            {
                "name": "kcal",
                "request_topic": "kcal-send",
                "reply_topic": "kcal-response",
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "kcal", "schema": schema},
                },
            }
        ]
    }
    kcal = routes_by_name(with_routes_file(tmp_path, json.dumps(document), "r.json"))["kcal"]
    assert kcal.response_format == ResponseFormat("json_schema", schema=schema, name="kcal")


def test_an_empty_routes_file_adds_nothing(tmp_path: Path) -> None:
    assert {route.name for route in with_routes_file(tmp_path, "").routes} == {"chat", "photo"}
    assert {r.name for r in with_routes_file(tmp_path, "routes: []\n").routes} == {"chat", "photo"}


def test_is_dev_suffixes_every_topic_with_dev(tmp_path: Path) -> None:
    routes = routes_by_name(with_routes_file(tmp_path, GEMINI_YAML, is_dev=True))
    assert {name: (r.request_topic, r.reply_topic) for name, r in routes.items()} == {
        "chat": ("gpt-send_dev", "gpt-response_dev"),
        "photo": ("eater-send-photo_dev", "photo-analysis-response_dev"),
        "gemini": ("gemini-send_dev", "gemini-response_dev"),
    }


def test_without_is_dev_topics_are_used_as_given() -> None:
    assert all(
        not topic.endswith("_dev")
        for route in settings(is_dev=False).routes
        for topic in (route.request_topic, route.reply_topic)
    )


def test_a_routes_model_becomes_an_allowed_model(tmp_path: Path) -> None:
    configured = with_routes_file(tmp_path, GEMINI_YAML)
    assert "gemini-2.0-flash" in configured.models_allowed
    assert "gemini-2.0-flash" not in settings().models_allowed


def test_a_routes_model_is_allowed_beside_an_explicit_allow_list(tmp_path: Path) -> None:
    configured = with_routes_file(tmp_path, GEMINI_YAML, allowed_models="gpt-4.1")
    assert {"gpt-4.1", "gemini-2.0-flash"} <= configured.models_allowed


# --- a bad routes file stops start-up with one line naming the entry ----------------------


def entry(**fields: Any) -> str:
    """One route entry as a YAML routes document."""
    return json.dumps({"routes": [fields]})  # JSON is YAML


def config_error(tmp_path: Path, text: str, name: str = "routes.yaml", **extra: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        with_routes_file(tmp_path, text, name, **extra)
    message = caught.value.message
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            entry(name="Bad_Name", request_topic="a", reply_topic="b"),
            ["route 'Bad_Name'", "name"],
        ),
        (entry(name="-dash", request_topic="a", reply_topic="b"), ["route '-dash'", "name"]),
        (entry(name="x" * 64, request_topic="a", reply_topic="b"), ["name"]),
        (entry(name="gemini", request_topic="a"), ["route 'gemini'", "reply_topic"]),
        (entry(name="gemini", reply_topic="b"), ["route 'gemini'", "request_topic"]),
        (entry(name="gemini", request_topic="", reply_topic="b"), ["'gemini'", "request_topic"]),
        (
            entry(name="gemini", request_topic="a", reply_topic="b", colour="red"),
            ["route 'gemini'", "colour"],
        ),
        (
            entry(name="gemini", request_topic="a", reply_topic="b", shape="video"),
            ["route 'gemini'", "shape"],
        ),
        (
            entry(name="gemini", request_topic="a", reply_topic="b", max_tokens=0),
            ["route 'gemini'", "max_tokens"],
        ),
        (
            entry(
                name="gemini", request_topic="a", reply_topic="b", response_format={"type": "xml"}
            ),
            ["route 'gemini'", "response_format"],
        ),
        (
            entry(
                name="gemini",
                request_topic="a",
                reply_topic="b",
                response_format={
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "array"}},
                },
            ),
            ["route 'gemini'", "response_format"],
        ),
        (entry(request_topic="a", reply_topic="b"), ["routes[0]", "name"]),
        ('{"routes": ["gemini"]}', ["routes.0"]),
        ('{"routes": [], "extra": 1}', ["extra"]),
        ('["gemini"]', ["ROUTES_FILE"]),
    ],
)
def test_a_bad_entry_is_one_config_error_line_naming_it(
    tmp_path: Path, text: str, named: list[str]
) -> None:
    message = config_error(tmp_path, text)
    assert message.startswith("ROUTES_FILE: ")
    for part in named:
        assert part in message, message


def test_duplicate_route_names_are_refused(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "routes": [
                {"name": "gemini", "request_topic": "a", "reply_topic": "b"},
                {"name": "gemini", "request_topic": "c", "reply_topic": "d"},
            ]
        }
    )
    message = config_error(tmp_path, text)
    assert "'gemini'" in message
    assert "twice" in message


def test_two_routes_reading_one_topic_are_refused(tmp_path: Path) -> None:
    text = entry(name="gemini", request_topic="gpt-send", reply_topic="gemini-response")
    message = config_error(tmp_path, text)
    assert "'chat'" in message
    assert "'gemini'" in message
    assert "'gpt-send'" in message


def test_two_file_routes_reading_one_topic_are_refused(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "routes": [
                {"name": "one", "request_topic": "shared", "reply_topic": "one-out"},
                {"name": "two", "request_topic": "shared", "reply_topic": "two-out"},
            ]
        }
    )
    message = config_error(tmp_path, text)
    assert "'one'" in message
    assert "'two'" in message
    assert "'shared'" in message


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        # replies on the chat route's request topic
        (
            {"name": "gemini", "request_topic": "gemini-send", "reply_topic": "gpt-send"},
            ["'gemini'", "'gpt-send'", "'chat'"],
        ),
        # reads the chat route's reply topic: chat would reply into it
        (
            {"name": "gemini", "request_topic": "gpt-response", "reply_topic": "gemini-out"},
            ["'chat'", "'gpt-response'", "'gemini'"],
        ),
        # replies on its own request topic
        (
            {"name": "echo", "request_topic": "echo", "reply_topic": "echo"},
            ["'echo'"],
        ),
    ],
)
def test_a_route_replying_on_a_topic_some_route_reads_is_refused(
    tmp_path: Path, fields: dict[str, str], named: list[str]
) -> None:
    message = config_error(tmp_path, entry(**fields))
    assert "replies on" in message
    for part in named:
        assert part in message, message


def test_an_unreadable_routes_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(routes_file=str(tmp_path / "missing-routes.yaml"))
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith("ROUTES_FILE: ")
    assert "missing-routes.yaml" in message
    with pytest.raises(ConfigError, match=r"^ROUTES_FILE: "):
        settings(routes_file=str(tmp_path))  # a directory


def test_invalid_yaml_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, "routes:\n  - name: [unclosed\n")
    assert message == "ROUTES_FILE: not valid YAML"


def test_invalid_json_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, '{"routes": [', "routes.json")
    assert message == "ROUTES_FILE: not valid JSON"


def test_the_error_does_not_echo_the_file_contents(tmp_path: Path) -> None:
    secret = "sk-proj-ROUTES-MUST-NOT-LEAK-0123456789"
    message = config_error(
        tmp_path, entry(name="gemini", request_topic="a", reply_topic="b", model=[secret])
    )
    assert secret not in message
    assert "model" in message


def test_a_conflict_introduced_by_dev_suffixes_is_found_too(tmp_path: Path) -> None:
    # Without IS_DEV, 'gemini' reads gpt-send_dev and nobody else does; with it, chat does.
    text = entry(name="gemini", request_topic="gpt-send", reply_topic="gemini-out")
    message = config_error(tmp_path, text, is_dev=True)
    assert "'gpt-send_dev'" in message


def test_parse_routes_reads_yaml_and_json_alike() -> None:
    assert parse_routes(GEMINI_YAML, yaml=True) == parse_routes(
        json.dumps(
            {
                "routes": [
                    {
                        "name": "gemini",
                        "request_topic": "gemini-send",
                        "reply_topic": "gemini-response",
                        "model": "gemini-2.0-flash",
                        "system_prompt": "Be brief.",
                        "max_tokens": 800,
                        "response_format": {"type": "json_object"},
                    }
                ]
            }
        ),
        yaml=False,
    )


def test_a_routes_file_that_is_not_utf8_is_refused_naming_routes_file(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_bytes(b"routes:\n  - name: caf\xe9\n    request_topic: a\n    reply_topic: b\n")
    with pytest.raises(ConfigError) as caught:
        settings(routes_file=str(path))
    assert caught.value.message.startswith("ROUTES_FILE: "), caught.value.message
