"""Reply bytes, in the shape of the request's route (orjson: the hot path).

Chat replies (`gpt-response`): `{response, model, usage, finish_reason, timestamp,
processing_time}`; photo replies (`photo-analysis-response`): `{analysis, user_email,
image_id, timestamp?, date?, model, usage}`. An error reply carries `error` at the top
of the value, and for a photo the echoed fields and never `analysis`. Tests check what
these write against the schemas of `contracts.py`.
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


def _usage(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.total_tokens,
    }


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
        value["model"] = result.model
        value["usage"] = _usage(result)
        value["finish_reason"] = result.finish_reason
        value["processing_time"] = round(processing_time, 4)
        return orjson.dumps({"key": key, "value": value})
    value = {
        "response": result.text,
        "model": result.model,
        "usage": _usage(result),
        "finish_reason": result.finish_reason,
        "timestamp": utc_timestamp(),
        "processing_time": round(processing_time, 4),
    }
    if cached:
        value["cached"] = True
    return orjson.dumps({"key": key, "value": value})


def error_bytes(key: str, error: ChaterError, style: ReplyStyle = CHAT_STYLE) -> bytes:
    body: dict[str, Any] = {
        "code": error.code.value,
        "message": error.message,
        "retryable": error.retryable,
    }
    if error.retry_after is not None:
        body["retry_after"] = round(error.retry_after, 3)
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
