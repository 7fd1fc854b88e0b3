"""The gateway benchmark's time to first token: which SSE line is the first word."""

import json

from tests.load.bench_gateway import added_ttft, chat_body, has_content


def chunk(delta: dict[str, str]) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return b"data: " + json.dumps(body).encode() + b"\n"


def test_the_first_word_is_the_first_data_line_with_content() -> None:
    assert not has_content(chunk({"role": "assistant", "content": ""}))  # the role chunk
    assert has_content(chunk({"content": "echo: "}))
    assert not has_content(chunk({}))  # the finish chunk
    assert not has_content(b'data: {"choices": [], "usage": {"total_tokens": 3}}\n')
    assert not has_content(b"data: [DONE]\n")
    assert not has_content(b": keep-alive\n")
    assert not has_content(b"data: {not json\n")


def test_streaming_requests_ask_for_usage_and_added_is_per_quantile() -> None:
    body = json.loads(chat_body(3, stream=True))
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "stream" not in json.loads(chat_body(3))
    mine = {"first_token_ms": {"p50": 215.0, "p99": 260.0}}
    own = {"first_token_ms": {"p50": 202.0, "p99": 210.0}}
    assert added_ttft(mine, own) == {"p50": 13.0, "p99": 50.0}
    assert added_ttft({}, own) == {}
