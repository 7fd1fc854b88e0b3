"""Benchmark: building the context of a 10-turn, ~8k-token conversation.

    .venv/bin/python tests/load/bench_context.py

Target (issue 3): p50 <= 1 ms on the 2-core development machine, token counting
included. Three cases:
- warm: the same history again (every turn's count is in the counter's cache);
- steady: what a conversation costs per request: the history has one exchange
  (~1.6k tokens) the counter has never seen, the rest is cached;
- cold: no count cache at all, for comparison.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # runnable as a plain script from the repo root
    sys.path.insert(0, str(ROOT))

from chater_gpt.context.builder import ContextBuilder  # noqa: E402
from chater_gpt.context.tokens import BpeTokenCounters  # noqa: E402
from chater_gpt.domain import Turn  # noqa: E402

MODEL = "gpt-4o-mini"
_VOCABULARY = """
the a context window token model answer question service kafka redis history
request reply budget limit stream partition offset commit image vision
conversation user assistant system prompt latency throughput replica pod
kubernetes operator deploy metric alert retry breaker backoff jitter
"""
WORDS = _VOCABULARY.split()


def prose(rng: random.Random, words: int) -> str:
    out: list[str] = []
    for i in range(words):
        word = rng.choice(WORDS)
        out.append(word.capitalize() if i % 12 == 0 else word)
        if i % 12 == 11:
            out[-1] += rng.choice([".", ",", "!", "?", ";"])
        if i % 97 == 96:
            out.append(f"{rng.randint(0, 99999)}\n")
    return " ".join(out)


def history(rng: random.Random, turns: int = 10, words_per_turn: int = 650) -> list[Turn]:
    return [
        Turn("user" if i % 2 == 0 else "assistant", prose(rng, words_per_turn))
        for i in range(turns)
    ]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


def timed(run: Callable[[int], object], iterations: int) -> list[float]:
    samples = []
    for i in range(iterations):
        started = time.perf_counter()
        run(i)
        samples.append(time.perf_counter() - started)
    return samples


def bench_context(iterations: int = 1000) -> dict[str, tuple[float, float]]:
    """p50/p99 in ms per case; also checks the prompt is ~8k tokens and nothing dropped."""
    rng = random.Random(42)
    counters = BpeTokenCounters()
    builder = ContextBuilder(context_window=16_000, counters=counters)
    system = "You are a helpful assistant. Answer briefly and precisely."
    base = history(rng)
    question = prose(rng, 40)

    def build(turns: list[Turn], with_builder: ContextBuilder = builder) -> int:
        built = with_builder.build(
            model=MODEL,
            system_prompt=system,
            history=turns,
            supplied_context=(),
            user_message=question,
            images=(),
            max_tokens=1000,
        )
        assert built.dropped_turns == 0
        return built.prompt_tokens

    prompt_tokens = build(base)
    assert 7_500 <= prompt_tokens <= 8_500, prompt_tokens

    fresh = [history(rng, turns=2) for _ in range(iterations)]
    # A cache of size 0 keeps nothing: every build counts all 8k tokens again.
    uncached = ContextBuilder(context_window=16_000, counters=BpeTokenCounters(cache_size=0))
    build(base, uncached)

    results = {
        "warm": percentiles(timed(lambda _: build(base), iterations)),
        "steady": percentiles(timed(lambda i: build(base[2:] + fresh[i]), iterations)),
        "cold": percentiles(timed(lambda _: build(base, uncached), iterations)),
    }
    print(f"context of 10 turns, {prompt_tokens} prompt tokens, model {MODEL}")
    for case, (p50, p99) in results.items():
        print(f"  {case:<7} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")
    return results


if __name__ == "__main__":
    bench_context()
