"""The outage policy's building block: Redis failures become `StoreUnavailable`."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chater_gpt.errors import StoreUnavailable
from chater_gpt.storage.redis import redis_client, store_errors


@pytest.mark.parametrize(
    "error",
    [
        RedisConnectionError("Error 111 connecting to redis://:pw@10.0.0.1"),
        RedisTimeoutError(),
        ResponseError("NOSCRIPT"),
        ConnectionRefusedError(),
        OSError("socket"),
    ],
)
def test_redis_and_socket_errors_become_store_unavailable(error: Exception) -> None:
    with pytest.raises(StoreUnavailable) as caught, store_errors("history"):
        raise error
    assert caught.value.store == "history"
    assert caught.value.__cause__ is error
    assert "pw" not in str(caught.value)
    assert str(caught.value) == "the history store is unavailable"


@pytest.mark.parametrize("error", [ValueError("bad data"), KeyError("x")])
def test_other_errors_pass_through(error: Exception) -> None:
    with pytest.raises(type(error)), store_errors("outcomes"):
        raise error


def test_cancellation_passes_through() -> None:
    with pytest.raises(asyncio.CancelledError), store_errors("outcomes"):
        raise asyncio.CancelledError


async def test_the_client_waits_for_a_connection_instead_of_failing() -> None:
    client = redis_client("redis://:secret-pw@127.0.0.1:1/3", max_connections=7)
    try:
        pool = client.connection_pool
        assert type(pool).__name__ == "BlockingConnectionPool"
        assert pool.max_connections == 7
        assert pool.connection_kwargs["db"] == 3
        assert "secret-pw" not in repr(client)
    finally:
        await client.aclose()
