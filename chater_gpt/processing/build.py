"""Assembles the chain of stages that answers a request (see the package's docstring)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from chater_gpt.backends.base import LLMBackend
from chater_gpt.context.builder import ContextBuilder
from chater_gpt.domain import PauseReason
from chater_gpt.errors import CircuitOpen
from chater_gpt.processing.admitted import Admitted
from chater_gpt.processing.backend_call import BackendCall
from chater_gpt.processing.caching import Caching
from chater_gpt.processing.checked import Checked
from chater_gpt.processing.conversations import Conversations
from chater_gpt.processing.dispatch import Dispatch
from chater_gpt.processing.observer import NullObserver, ProcessorObserver
from chater_gpt.processing.prompt import Prompting
from chater_gpt.processing.replay import Replayed
from chater_gpt.processing.replying import Replying
from chater_gpt.processing.stages import PromptStep
from chater_gpt.processing.streaming import Streams
from chater_gpt.processing.waiting import PausedWait, Pauser
from chater_gpt.resilience.admission import AdmissionControl
from chater_gpt.resilience.budget import GlobalBudgetExhausted
from chater_gpt.storage.cache import ResponseCache
from chater_gpt.storage.history import HistoryStore
from chater_gpt.storage.outcomes import OutcomeStore


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    system_prompt: str
    seed: int | None = None
    # A model → its larger-context fallback (CONTEXT_FALLBACK_MODELS).
    context_fallbacks: Mapping[str, str] = field(default_factory=dict)
    # The least wait between tries while the breaker is open.
    min_breaker_wait: float = 0.2
    # The longest sleep between tries while paused (open breaker, spent global budget).
    max_pause_wait: float = 5.0
    json_repair_attempts: int = 1

    def __post_init__(self) -> None:
        # Frozen all the way down: a copy nobody else holds, read-only.
        object.__setattr__(
            self, "context_fallbacks", MappingProxyType(dict(self.context_fallbacks))
        )


@dataclass(frozen=True, slots=True)
class ProcessingStores:
    history: HistoryStore
    outcomes: OutcomeStore
    cache: ResponseCache | None = None  # None: no response cache


def build_processor(
    config: ProcessingConfig,
    stores: ProcessingStores,
    *,
    backend: LLMBackend,
    builder: ContextBuilder,
    pauser: Pauser,
    admission: AdmissionControl | None = None,
    observer: ProcessorObserver | None = None,
    clock: Callable[[], float] = time.monotonic,
    streams: Streams | None = None,
) -> Dispatch:
    """The processor (`process(job) -> bytes`): each stage wraps the next."""
    observer = observer or NullObserver()
    breaker_wait = PausedWait(
        pauser,
        PauseReason.BREAKER,
        waits_on=CircuitOpen,
        max_wait=config.max_pause_wait,
        min_wait=config.min_breaker_wait,
    )
    budget_wait = PausedWait(
        pauser,
        PauseReason.BUDGET,
        waits_on=GlobalBudgetExhausted,
        max_wait=config.max_pause_wait,
        default_wait=1.0,
    )
    call = BackendCall(backend, breaker_wait, observer, clock)
    answer: PromptStep = Checked(
        Admitted(call, admission, budget_wait, observer),
        observer,
        repair_attempts=config.json_repair_attempts,
    )
    if stores.cache is not None:
        answer = Caching(answer, stores.cache, observer)
    prompting = Prompting(
        answer,
        builder,
        system_prompt=config.system_prompt,
        seed=config.seed,
        context_fallbacks=config.context_fallbacks,
        streams=streams,
    )
    conversations = Conversations(prompting, stores.history, observer)
    replying = Replying(conversations, observer, clock, streams)
    return Dispatch(Replayed(replying, stores.outcomes, observer), stores.history, observer)
