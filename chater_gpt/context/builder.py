"""The prompt of one request, fitted into the context window.

Order: system prompt, stored history (oldest first), the request's own context
turns, the new user message (with its images). The budget is
min(CONTEXT_WINDOW, the model's own window) - max_tokens, counted by the model's
counter (`counters.py`: exact for OpenAI models, an upper bound for Claude and
Gemini), including the chat-format overhead. The model's own window comes from
`window_of` (the model catalogue's, by default the shipped one).

Trimming rule (documented in the README, "Conversation context"):
- consecutive earlier turns of one role are merged into one message;
- the earlier turns (history, then supplied context) are cut into exchanges: an
  exchange starts at a user turn and runs to the next one; turns before the first
  user turn (e.g. the legacy string context, one assistant turn) are an exchange
  of their own. Whole exchanges are dropped, oldest first, until the rest fits, so
  the kept conversation never opens with an answer whose question was dropped;
- the system prompt and the current message are never dropped. When they do not
  fit together, the longer one is cut (a token-accurate prefix ending in a visible
  marker), each keeping at least half of the room when both are long;
- when even that leaves no room for one token of text plus the marker (or the
  images alone overflow), the request fails with `context_too_long`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chater_gpt.catalogue import DEFAULT_CATALOGUE
from chater_gpt.context.counters import ModelTokenCounters
from chater_gpt.context.tokens import (
    REPLY_PRIMING_TOKENS,
    TokenCounter,
    TokenCounters,
    message_tokens,
)
from chater_gpt.domain import ImageInput, Turn
from chater_gpt.errors import ContextTooLong

TRUNCATION_MARKER = "\n[…truncated]"

ChatMessage = dict[str, Any]
# A model's own context window, or None when unknown (then CONTEXT_WINDOW alone applies).
WindowLookup = Callable[[str], int | None]


@dataclass(frozen=True, slots=True)
class BuiltContext:
    messages: Sequence[ChatMessage]
    # The prompt as the model's counter counts it: exact for OpenAI models (images by
    # the published rule), an upper bound for Claude and Gemini.
    prompt_tokens: int
    # Earlier turns (history or supplied context) left out to fit the window.
    dropped_turns: int
    # True when the system prompt or the current message was cut.
    truncated: bool = False


class ContextBuilder:
    def __init__(
        self,
        context_window: int,
        *,
        counters: TokenCounters | None = None,
        window_of: WindowLookup = DEFAULT_CATALOGUE.context_window,
        marker: str = TRUNCATION_MARKER,
    ) -> None:
        self._context_window = context_window
        self._counters = counters or ModelTokenCounters()
        self._window_of = window_of
        self._marker = marker

    def window_for(self, model: str) -> int:
        own = self._window_of(model)
        return self._context_window if own is None else min(self._context_window, own)

    async def prefetch(
        self,
        *,
        model: str,
        system_prompt: str,
        history: Sequence[Turn],
        supplied_context: Sequence[Turn],
        user_message: str,
    ) -> None:
        """Let the model's counter prepare the counts `build` will need (see TokenCounters);
        nothing to do, and nothing computed, for local encodings (the hot path)."""
        if not self._counters.needs_prefetch:
            return
        earlier, _ = merge_same_role_runs([*history, *supplied_context])
        texts = [system_prompt, user_message, *(turn.content for turn in earlier)]
        await self._counters.prefetch(model, texts)

    def build(
        self,
        *,
        model: str,
        system_prompt: str,
        history: Sequence[Turn],
        supplied_context: Sequence[Turn],
        user_message: str,
        images: Sequence[ImageInput] = (),
        max_tokens: int,
    ) -> BuiltContext:
        counter = self._counters.for_model(model)
        window = self.window_for(model)
        budget = window - max_tokens - REPLY_PRIMING_TOKENS
        image_cost = sum(counter.image_tokens(image) for image in images)
        system_prompt, user_message, truncated = self._fit_fixed(
            counter, budget, system_prompt, user_message, image_cost, window, max_tokens
        )
        fixed = (
            message_tokens(counter, "system", system_prompt) if system_prompt else 0
        ) + message_tokens(counter, "user", user_message, image_cost)

        earlier, sizes = merge_same_role_runs([*history, *supplied_context])
        kept_from, earlier_cost = _keep_newest(counter, earlier, budget - fixed)

        messages: list[ChatMessage] = []
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.extend({"role": t.role, "content": t.content} for t in earlier[kept_from:])
        messages.append(_user_message(user_message, images))
        return BuiltContext(
            messages=messages,
            prompt_tokens=fixed + earlier_cost + REPLY_PRIMING_TOKENS,
            dropped_turns=sum(sizes[:kept_from]),
            truncated=truncated,
        )

    def _fit_fixed(
        self,
        counter: TokenCounter,
        budget: int,
        system_prompt: str,
        user_message: str,
        image_cost: int,
        window: int,
        max_tokens: int,
    ) -> tuple[str, str, bool]:
        """System prompt and current message, cut if needed so that both fit."""
        framing = message_tokens(counter, "user", "", image_cost)
        if system_prompt:
            framing += message_tokens(counter, "system", "")
        room = budget - framing
        system_len, user_len = counter.count(system_prompt), counter.count(user_message)
        if system_len + user_len <= room:
            return system_prompt, user_message, False
        half = room // 2
        if system_len <= half:
            system_room, user_room = system_len, room - system_len
        elif user_len <= room - half:
            system_room, user_room = room - user_len, user_len
        else:
            system_room, user_room = half, room - half
        too_long = ContextTooLong(
            f"the system prompt and the message do not fit in the context window "
            f"({window} tokens, of which max_tokens={max_tokens} are kept for the answer)"
        )
        if system_len > system_room:
            system_prompt = self._truncate(counter, system_prompt, system_room, too_long)
        if user_len > user_room:
            user_message = self._truncate(counter, user_message, user_room, too_long)
        return system_prompt, user_message, True

    def _truncate(
        self, counter: TokenCounter, text: str, limit: int, too_long: ContextTooLong
    ) -> str:
        """The longest prefix that, with the marker appended, is at most `limit` tokens."""
        keep = limit - counter.count(self._marker)
        while keep >= 1:
            prefix = counter.truncate(text, keep)
            if not prefix:
                break
            cut = prefix + self._marker
            # Tokens can merge across the seam; re-count and back off by the excess.
            excess = counter.count(cut) - limit
            if excess <= 0:
                return cut
            keep -= excess
        raise too_long


def merge_same_role_runs(turns: Sequence[Turn]) -> tuple[list[Turn], list[int]]:
    """Consecutive turns of one role become one (joined by a blank line), so that
    history followed by a legacy context answer, or a producer's list with two
    questions in a row, still alternates. Returns the turns and how many inputs
    each one merges (to report dropped turns in the caller's terms)."""
    merged: list[Turn] = []
    sizes: list[int] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            merged[-1] = Turn(turn.role, f"{merged[-1].content}\n\n{turn.content}")
            sizes[-1] += 1
        else:
            merged.append(turn)
            sizes.append(1)
    return merged, sizes


def _exchange_starts(turns: Sequence[Turn]) -> list[int]:
    """Indexes where an exchange starts: 0 and every later user turn."""
    return [i for i, turn in enumerate(turns) if i == 0 or turn.role == "user"]


def _keep_newest(counter: TokenCounter, turns: Sequence[Turn], room: int) -> tuple[int, int]:
    """(index of the first kept turn, tokens of the kept turns): whole newest exchanges."""
    costs = [message_tokens(counter, t.role, t.content) for t in turns]
    kept_from, used = len(turns), 0
    end = len(turns)
    for start in reversed(_exchange_starts(turns)):
        cost = sum(costs[start:end])
        if used + cost > room:
            break
        used += cost
        kept_from, end = start, start
    return kept_from, used


def _user_message(text: str, images: Sequence[ImageInput]) -> ChatMessage:
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts.extend(
        {"type": "image_url", "image_url": {"url": image.url, "detail": image.detail}}
        for image in images
    )
    return {"role": "user", "content": parts}
