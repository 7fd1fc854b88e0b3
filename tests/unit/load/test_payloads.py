"""Every payload the load test sends is a valid request for the service, on its route."""

import base64
import io

import orjson
import pytest
from PIL import Image

from chater_gpt.config import Settings, load_settings
from chater_gpt.contracts import ChatRequest
from chater_gpt.decoder import RequestDecoder
from chater_gpt.routes import RouteShape
from chater_gpt.wiring import request_defaults
from tests.load._payloads import PAYLOADS, RequestFactory, tiny_jpeg, uses_photos


@pytest.fixture
def settings() -> Settings:
    return load_settings({"bootstrap_server": "x:9092", "openai_base_url": "http://127.0.0.1:9/v1"})


def decoders(settings: Settings) -> dict[RouteShape, RequestDecoder]:
    defaults = request_defaults(settings)
    return {route.shape: RequestDecoder(defaults, route) for route in settings.routes}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_payload_decodes_as_a_request_of_its_route(settings: Settings, payload: str) -> None:
    by_shape = decoders(settings)
    factory = RequestFactory("run1", payload, users=3)  # type: ignore[arg-type]
    for index in range(10):
        key, value = factory.build(index)
        shape = RouteShape.PHOTO if factory.is_photo(index) else RouteShape.CHAT
        request = by_shape[shape].decode(key, value)
        assert isinstance(request, ChatRequest), request
        assert request.key == key.decode() == f"lt-run1-{index}"
        assert request.style.shape is shape


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
    assert not any(factory.is_photo(i) for i in range(5))


def test_photo_mixed_alternates_text_and_photo_analyses() -> None:
    factory = RequestFactory("r", "photo-mixed")
    kinds = [factory.kind(i) for i in range(6)]
    assert kinds == ["text", "photo"] * 3
    photo = factory.value(1)
    assert set(photo) == {"prompt", "photo", "user_email", "image_id"}
    assert photo["image_id"] == "img-r-1"
    assert "message" in factory.value(2)
    assert all(RequestFactory("r", "photo").is_photo(i) for i in range(4))


def test_photos_are_real_jpegs_without_a_data_prefix() -> None:
    photo = RequestFactory("r", "photo", photo_size=(100, 60)).value(0)["photo"]
    assert not photo.startswith("data:")
    with Image.open(io.BytesIO(base64.b64decode(photo))) as image:
        assert image.format == "JPEG"
        assert image.size == (100, 60)
    assert len(tiny_jpeg()) < 4096  # the default stays small


def test_only_photo_payloads_use_the_photo_topics() -> None:
    assert {p for p in PAYLOADS if uses_photos(p)} == {"photo", "photo-mixed"}
