"""Items of one key run in order, one at a time; different keys run concurrently."""

import asyncio

from chater_gpt.kafka.dispatcher import KeyedDispatcher


async def test_one_key_is_sequential_and_in_order() -> None:
    seen: list[int] = []
    running = 0
    peak = 0

    async def handle(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        seen.append(item)
        running -= 1

    dispatcher: KeyedDispatcher[int] = KeyedDispatcher(handle)
    for i in range(50):
        dispatcher.submit("conversation", i)
    assert await dispatcher.wait_idle(5)
    assert seen == list(range(50))
    assert peak == 1


async def test_different_keys_run_concurrently() -> None:
    release = asyncio.Event()
    started: set[str] = set()

    async def handle(item: str) -> None:
        started.add(item)
        if len(started) == 3:
            release.set()
        await release.wait()

    dispatcher: KeyedDispatcher[str] = KeyedDispatcher(handle)
    for key in ("a", "b", "c"):
        dispatcher.submit(key, key)
    # Completes only if all three handlers were inside at the same time.
    assert await dispatcher.wait_idle(5)
    assert started == {"a", "b", "c"}


async def test_a_failing_handler_does_not_stall_its_key() -> None:
    done: list[int] = []

    async def handle(item: int) -> None:
        if item == 0:
            raise RuntimeError("boom")
        done.append(item)

    dispatcher: KeyedDispatcher[int] = KeyedDispatcher(handle)
    for i in range(3):
        dispatcher.submit("k", i)
    assert await dispatcher.wait_idle(5)
    assert done == [1, 2]
    assert dispatcher.active_keys == 0


async def test_cancel_all_abandons_running_work() -> None:
    async def handle(item: int) -> None:
        await asyncio.Event().wait()

    dispatcher: KeyedDispatcher[int] = KeyedDispatcher(handle)
    dispatcher.submit("k", 1)
    await asyncio.sleep(0)
    assert not await dispatcher.wait_idle(0.01)
    await dispatcher.cancel_all()
    assert await dispatcher.wait_idle(1)
