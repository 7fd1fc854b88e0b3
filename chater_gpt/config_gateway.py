"""The HTTP gateway's settings (`GATEWAY_*`) and the streams' (`STREAM_TOPIC`), a part
of `config.Settings`.

Kept apart only so `config.py` stays short; `Settings` inherits them, and like
`config` this module is read only by the entry points and the wiring (import contract
"settings"). The core reads some of them too: `GATEWAY_REPLY_TOPIC_PREFIX`, the only
topics a request's `reply-to` header may name, and `STREAM_TOPIC`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

DEFAULT_REPLY_TOPIC_PREFIX = "gpt-gateway-reply-"


class GatewaySettings(BaseSettings):
    """Field names are the environment variables."""

    # Where a streamed answer's chunks go as they are generated (`contracts.StreamChunk`);
    # empty: only to the request's reply address, if it has one.
    stream_topic: str = Field(default="gpt-stream", max_length=249)
    gateway_port: int = Field(default=8080, ge=0, le=65535)
    gateway_host: str = "0.0.0.0"  # in a container the server listens on every address
    # The gateway's reply topic is <prefix><instance id>; the core replies only to topics
    # with this prefix. Empty: the core ignores reply addresses (no gateway).
    gateway_reply_topic_prefix: str = Field(default=DEFAULT_REPLY_TOPIC_PREFIX, max_length=200)
    # Stable under a StatefulSet (the pod name); unset: hostname + a random suffix.
    gateway_instance_id: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$"
    )
    # Where the gateway sends requests; unset: the chat route's request topic.
    gateway_request_topic: str | None = Field(default=None, min_length=1)
    # A request's answer, or a streamed one's first text, within this long (else 504).
    gateway_timeout_seconds: float = Field(default=120.0, gt=0)
    # Once a stream's text flows, each next piece within this long (else it ends with
    # an error event); the core's TIMEOUT bounds the whole generation.
    gateway_stream_idle_seconds: float = Field(default=30.0, gt=0)
    gateway_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # YAML/JSON: {keys: {<sha256 hex of the key>: <tenant app_code>}}; unset: open.
    gateway_api_keys_file: Path | None = None
    gateway_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # While requests wait and no reply came for this long, the reply reader fetches
    # again from where it is (the embedded broker's live reader can miss a message,
    # FIELD-NOTES); 0 turns it off.
    gateway_refetch_seconds: float = Field(default=0.5, ge=0)
    # On SIGTERM, open requests may finish this long; the rest get 503 (retryable).
    gateway_shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # The job API (`POST /ai_request`): a job's record lives this long after it was
    # submitted and again after it finished (then 404); a job queued longer than the
    # max wait is expired; past the capacity of queued jobs, submissions get 503.
    gateway_job_ttl_seconds: int = Field(default=86400, ge=1)
    gateway_job_max_wait_seconds: float = Field(default=3600.0, gt=0)
    gateway_job_queue_capacity: int = Field(default=10_000, ge=1)
    # The event endpoint (`POST /event`) takes an API key from this header too (as
    # well as `Authorization: Bearer`).
    gateway_api_key_header: str = Field(default="X-API-Key", min_length=1)

    @field_validator("gateway_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
