"""Every payload the load test sends is a valid request for the service."""

import orjson
import pytest

from chater_gpt.config import load_settings
from chater_gpt.contracts import ChatRequest
from chater_gpt.decoder import RequestDecoder
from chater_gpt.service import request_defaults
from tests.load._payloads import PAYLOADS, RequestFactory


@pytest.fixture
def decoder() -> RequestDecoder:
    return RequestDecoder(
        request_defaults(
            load_settings(
                {"bootstrap_server": "x:9092", "openai_base_url": "http://127.0.0.1:9/v1"}
            )
        )
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_payload_decodes_as_a_chat_request(decoder: RequestDecoder, payload: str) -> None:
    factory = RequestFactory("run1", payload, users=3)  # type: ignore[arg-type]
    for index in range(10):
        key, value = factory.build(index)
        request = decoder.decode(key, value)
        assert isinstance(request, ChatRequest), request
        assert request.key == key.decode() == f"lt-run1-{index}"


def test_keys_are_unique_and_users_cycle() -> None:
    factory = RequestFactory("r", "text", users=3)
    assert len({factory.key(i) for i in range(1000)}) == 1000
    users = [orjson.loads(factory.build(i)[1])["value"]["user_email"] for i in range(6)]
    assert users[:3] == users[3:]
    assert len(set(users)) == 3


def test_mixed_sends_every_kind() -> None:
    factory = RequestFactory("r", "mixed")
    values = [factory.value(i) for i in range(5)]
    assert sum("images" in v for v in values) == 1
    assert sum("question" in v for v in values) == 1
    assert {factory.kind(i) for i in range(5)} == {"text", "vision", "legacy"}
