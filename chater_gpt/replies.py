"""Reply bytes, in the shape of the request's route (orjson: the hot path).

Chat replies (`gpt-response`): `{response, model, provider, usage, cost, finish_reason,
timestamp, processing_time}`; photo replies (`photo-analysis-response`): `{analysis,
user_email, image_id, timestamp?, date?, model, provider, usage, cost}`. `provider` is
who answered (left out when unknown), `cost` its price in USD (0 from the cache). An
error reply carries `error` at the top of the value, and for a photo the echoed fields
and never `analysis`. Tests check what these write against the schemas of
`contracts.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from chater_gpt.contracts import CHAT_STYLE, ReplyStyle
from chater_gpt.domain import ChatResult
from chater_gpt.errors import ChaterError
from chater_gpt.routes import RouteShape


def utc_timestamp(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def usage_of(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.total_tokens,
    }


def _cost(result: ChatResult, cached: bool) -> float:
    return 0.0 if cached else round(result.cost_usd, 10)


def _answered_by(value: dict[str, Any], result: ChatResult, cached: bool) -> None:
    value["model"] = result.model
    if result.provider:
        value["provider"] = result.provider
    value["usage"] = usage_of(result)
    value["cost"] = _cost(result, cached)


def reply_bytes(
    key: str,
    result: ChatResult,
    processing_time: float,
    *,
    cached: bool = False,
    style: ReplyStyle = CHAT_STYLE,
) -> bytes:
    value: dict[str, Any]
    if style.shape is RouteShape.PHOTO:
        value = {"analysis": result.text, **dict(style.echo)}
        _answered_by(value, result, cached)
        value["finish_reason"] = result.finish_reason
        value["processing_time"] = round(processing_time, 4)
        return orjson.dumps({"key": key, "value": value})
    value = {"response": result.text}
    _answered_by(value, result, cached)
    value["finish_reason"] = result.finish_reason
    value["timestamp"] = utc_timestamp()
    value["processing_time"] = round(processing_time, 4)
    if cached:
        value["cached"] = True
    return orjson.dumps({"key": key, "value": value})


def error_body(error: ChaterError) -> dict[str, Any]:
    """The `error` object of an error reply (and of a stream that broke)."""
    body: dict[str, Any] = {
        "code": error.code.value,
        "message": error.message,
        "retryable": error.retryable,
    }
    if error.retry_after is not None:
        body["retry_after"] = round(error.retry_after, 3)
    return body


def error_bytes(key: str, error: ChaterError, style: ReplyStyle = CHAT_STYLE) -> bytes:
    body = error_body(error)
    if style.shape is RouteShape.PHOTO:
        return orjson.dumps({"key": key, "value": {"error": body, **dict(style.echo)}})
    return orjson.dumps({"key": key, "value": {"error": body, "timestamp": utc_timestamp()}})


def forget_ack_bytes(key: str, user_email: str, deleted: int) -> bytes:
    value = {
        "forgotten": user_email,
        "conversations_deleted": deleted,
        "timestamp": utc_timestamp(),
    }
    return orjson.dumps({"key": key, "value": value})
