"""Kafka headers of a request that matter to its reply: the correlation and trace
headers copied onto the reply, and the reply address (`reply-to`) of a gateway request.

A request may name the topic its reply goes to, but only a topic that starts with the
configured gateway reply prefix: otherwise any producer of the request topic could
make the service write to any topic it can reach.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Incoming headers copied onto the reply (and used as the correlation id).
PROPAGATED_HEADERS = (
    "correlation-id",
    "request_id",
    "x-request-id",
    "traceparent",
    "tracestate",
)
# The reply address of a request (a gateway's own reply topic); honoured only for topics
# that start with the configured gateway prefix (`PipelineConfig.reply_to_prefix`).
REPLY_TO_HEADER = "reply-to"
# A job of the job API (`POST /ai_request`): the core records its progress and outcome
# in the job store under this id.
JOB_ID_HEADER = "job-id"


# What librdkafka hands over as a message's headers.
RawHeaders = dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]]


def propagated_headers(raw: RawHeaders | None) -> list[tuple[str, bytes]]:
    """The incoming correlation headers that travel on to the reply and the LLM call."""
    if not raw:
        return []
    items = raw.items() if isinstance(raw, dict) else raw
    return [
        (name, value.encode("utf-8") if isinstance(value, str) else value)
        for name, value in items
        if value is not None and name.lower() in PROPAGATED_HEADERS
    ]


def reply_address(raw: RawHeaders | None, prefix: str) -> str | None:
    """The request's `reply-to` topic when it names a gateway reply topic (one that starts
    with `prefix`), else None: a producer cannot make the service write anywhere else."""
    if not raw or not prefix:
        return None
    items = raw.items() if isinstance(raw, dict) else raw
    for name, value in items:
        if name.lower() != REPLY_TO_HEADER or value is None:
            continue
        topic = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if topic.startswith(prefix) and len(topic) > len(prefix):
            return topic
        log.warning("ignoring a reply-to header outside the gateway reply prefix")
    return None


def job_id(raw: RawHeaders | None) -> str | None:
    """The job id a gateway put on a job-API request, if any (at most 64 characters)."""
    items = (raw.items() if isinstance(raw, dict) else raw) if raw else ()
    for name, value in items:
        if name.lower() == JOB_ID_HEADER and value:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return text[:64]
    return None
