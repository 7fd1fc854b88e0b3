"""tests/load/sdk_overhead.py: the verdict, the comparison of bodies and the options."""

import base64

import pytest

from tests.load import sdk_overhead
from tests.load.sdk_overhead import Measured, verdict


def test_an_sdk_costs_far_more_past_twice_the_plain_client_and_0_3_ms() -> None:
    plain = Measured("p", "aiohttp", [0.2, 0.2, 0.25], [1.0])
    assert verdict(Measured("p", "sdk", [0.9, 1.0, 1.1], [1.0]), plain)[2]
    assert not verdict(Measured("p", "sdk", [0.45, 0.45, 0.45], [1.0]), plain)[2]  # 0.25 ms
    assert not verdict(Measured("p", "sdk", [0.3, 0.3, 0.3], [1.0]), plain)[2]  # 1.5x


def test_options() -> None:
    args = sdk_overhead.parse_args(["--provider", "gemini,anthropic", "--calls", "10"])
    assert (args.provider, args.calls, args.rounds) == (("gemini", "anthropic"), 10, 5)
    assert sdk_overhead.parse_args([]).provider == ("openai", "anthropic", "gemini")
    with pytest.raises(SystemExit):
        sdk_overhead.parse_args(["--provider", "cohere"])


def test_bodies_compare_equal_up_to_spelling() -> None:
    raw = bytes(range(250, 256)) * 3  # base64 with "+" and "/" in the standard alphabet
    sdk = {"inlineData": {"mime_type": "image/png", "data": base64.urlsafe_b64encode(raw).decode()}}
    rest = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(raw).decode()}}
    assert sdk_overhead._comparable([sdk]) == sdk_overhead._comparable([rest])
    other = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(raw).decode()}}
    assert sdk_overhead._comparable(sdk) != sdk_overhead._comparable(other)
