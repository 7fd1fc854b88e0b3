from __future__ import annotations

import pytest

from chater_gpt.backends.koboldcpp import KoboldCppBackend, render_prompt
from chater_gpt.errors import BackendConfigError, InvalidImage


def test_messages_become_a_chat_prompt_with_images_as_base64() -> None:
    prompt, images = render_prompt(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                ],
            },
        ]
    )
    assert prompt == (
        "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: What is this?\nAssistant:"
    )
    assert images == ["iVBORw0K"]


def test_image_urls_cannot_reach_the_native_api() -> None:
    with pytest.raises(InvalidImage):
        render_prompt(
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ]
        )


@pytest.mark.parametrize("url", [None, "", "ftp://host"])
def test_a_missing_url_is_a_configuration_error(url: str | None) -> None:
    with pytest.raises(BackendConfigError) as caught:
        KoboldCppBackend(base_url=url, api_key=None, timeout=5)
    assert not caught.value.retryable
