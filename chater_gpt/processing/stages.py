"""What passes between the stages of a chat request, and the shape of each step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ChatCall, ChatResult, Turn


@dataclass(frozen=True, slots=True)
class Prompt:
    """A chat request made ready for the backend: the call, and what the stages below
    need of the request it came from."""

    request: ChatRequest
    call: ChatCall
    # The prompt's tokens as counted while fitting the context (the admission estimate).
    prompt_tokens: int
    route: str
    has_history: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    result: ChatResult
    cached: bool = False


# A chat request → the reply bytes to publish (replay, replying).
ReplyStep = Callable[[ChatRequest, Job], Awaitable[bytes]]
# A chat request → its answer (conversations).
AnswerStep = Callable[[ChatRequest, Job], Awaitable[Answer]]
# A chat request with its stored history → its answer (prompt).
HistoryStep = Callable[[ChatRequest, Job, list[Turn]], Awaitable[Answer]]
# A prompt → its answer (caching, checked).
PromptStep = Callable[[Prompt], Awaitable[Answer]]
# A prompt → the backend's result (admitted).
AskStep = Callable[[Prompt], Awaitable[ChatResult]]
# A backend call → its result (backend_call).
CallStep = Callable[[ChatCall], Awaitable[ChatResult]]
