"""Plain value types shared by the layers (contracts, context, backends, resilience,
kafka, service): the bottom layer, importing nothing of the package.

No I/O and no validation here: `contracts.py` validates raw input and produces
these; the other layers only consume them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
ImageDetail = Literal["low", "high", "auto"]


class BreakerState(StrEnum):
    """A backend's circuit breaker state, as `/healthz`, the breaker listeners and the
    replicas' shared Redis hash spell it."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class PauseReason(StrEnum):
    """Why consumption is paused: `/healthz`'s `pause_reasons` and the `reason` label of
    `chater_gpt_paused_partitions`."""

    CAPACITY = "capacity"  # MAX_IN_FLIGHT + MAX_QUEUED unfinished messages
    BREAKER = "breaker"  # a request waits for an open breaker
    BUDGET = "budget"  # the global daily token budget is spent


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, as stored in history or supplied by a producer."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Where a conversation's history lives: one user, optionally one named conversation."""

    user_email: str
    conversation_id: str | None = None

    @property
    def storage_key(self) -> str:
        """Stable id of the conversation inside the user's history (without any prefix)."""
        return f"{self.user_email}\x1f{self.conversation_id or 'default'}"


@dataclass(frozen=True, slots=True)
class ImageInput:
    """A validated image: a data URL (bytes checked, MIME detected) or an https URL.

    `width`/`height` are known for inline images (read from the header) and None for
    remote URLs, whose size the service cannot see without fetching them.
    """

    url: str
    mime_type: str | None
    width: int | None
    height: int | None
    detail: ImageDetail = "auto"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The answer must be JSON: any object (`json_object`) or one matching `schema`
    (`json_schema`). Validated on the way in (`json_output.parse_response_format`) and
    checked on the way out (`json_output.check_answer`)."""

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str = "answer"
    strict: bool = False

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI `response_format` request field."""
        if self.type == "json_object" or self.schema is None:
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": dict(self.schema), "strict": self.strict},
        }


# An OpenAI chat message: {"role": ..., "content": str | list[content part]}.
ChatMessage = Mapping[str, Any]


def content_parts(content: Any) -> tuple[list[str], list[str]]:
    """A message's content (a string, or OpenAI's list of parts) as its texts and its
    image URLs, in order; parts of other types are left out."""
    if isinstance(content, str):
        return [content], []
    texts: list[str] = []
    images: list[str] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            images.append(str(image.get("url") or "") if isinstance(image, Mapping) else "")
    return texts, images


# Awaited with each text delta of a streamed answer, in order, as it arrives.
DeltaSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One call to an LLM backend: OpenAI-style chat messages plus parameters."""

    model: str
    messages: Sequence[ChatMessage]
    max_tokens: int
    temperature: float
    # Correlation id sent to the backend as a header (X-Request-ID) where it can take one.
    request_id: str = ""
    seed: int | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    # The answer must be JSON (of this schema): each backend asks in its own dialect.
    response_format: ResponseFormat | None = None
    # Set: the caller wants the answer's text as it is generated (`LLMBackend.stream`).
    on_delta: DeltaSink | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A backend's answer to a `ChatCall`, with its token usage (and, once the model
    router has priced it, the provider that answered and its cost)."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    backend: str
    # Prompt tokens read from the provider's prompt cache (part of prompt_tokens).
    cached_prompt_tokens: int = 0
    # The catalogue's provider that answered ("" before routing) and the call's cost in
    # USD at its list prices (0 for models the catalogue does not price).
    provider: str = ""
    cost_usd: float = 0.0
    # False when the backend reported no token usage (a stream without a usage chunk):
    # the token counts are then 0 or an estimate, and the caller must count them itself.
    usage_reported: bool = True

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
