"""What a call costs, as the money budgets need it: `Prices`, implemented by the model
catalogue (any object with this method will do).

The worst case of a request is its prompt at the input price plus all of `max_tokens`
at the output price, on the most expensive model that may answer it (the requested one
or a fallback): that is what the daily money budgets reserve before the call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Prices(Protocol):
    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for a call of `model` with this usage; 0.0 for a model without a price
        (a local model). Must not raise for a model the service may call."""
        ...


def worst_case_cost_usd(
    prices: Prices, models: Iterable[str], *, prompt_tokens: int, max_tokens: int
) -> float:
    """The most a call may cost: the prompt and every allowed completion token, on the
    dearest of `models`."""
    prompt, completion = max(prompt_tokens, 0), max(max_tokens, 0)
    return max((prices.cost_usd(model, prompt, completion) for model in models), default=0.0)
