"""Stored conversation history: one small Protocol, a Redis and an in-memory store.

Rules both stores keep:
- a conversation keeps at most `max_history` messages, trimmed from the front in
  whole exchanges: it always starts with a user message (an odd `max_history`
  therefore keeps one message less, never an answer without its question);
- it expires `ttl_seconds` after its last append (the retention policy);
- an append carries the request's dedupe id; the same id appended again (a replay
  after a crash) changes nothing. The store remembers the last
  `DEDUPE_IDS_KEPT` ids of a conversation, for as long as the conversation lives;
- `forget_user` deletes every conversation of a user (privacy).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from chater_gpt.domain import ConversationRef, Role, Turn
from chater_gpt.errors import StoreUnavailable
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.storage.keys import KeySpace, UserHistoryKeys
from chater_gpt.storage.redis import store_errors
from chater_gpt.storage.ttl_lru import TtlLru

log = logging.getLogger(__name__)

# A replay comes within the uncommitted window of a partition: far fewer requests.
DEDUPE_IDS_KEPT = 256


class HistoryStore(Protocol):
    async def load(self, conversation: ConversationRef) -> list[Turn]: ...

    async def append(
        self, conversation: ConversationRef, turns: Sequence[Turn], *, dedupe_id: str
    ) -> None: ...

    async def forget_user(self, user_email: str) -> int: ...

    async def ping(self) -> bool: ...


def trim_start(roles: Sequence[str], max_history: int) -> int:
    """Index of the first message to keep: the last `max_history`, starting at a user turn."""
    start = max(len(roles) - max_history, 0)
    while start < len(roles) and roles[start] != "user":
        start += 1
    return start


# --- in memory -------------------------------------------------------------------


@dataclass
class _Conversation:
    user_email: str
    turns: list[Turn] = field(default_factory=list)
    dedupe_ids: OrderedDict[str, None] = field(default_factory=OrderedDict)


class InMemoryHistoryStore:
    """Per-process history (embedded mode, one replica): bounded LRU with a TTL."""

    def __init__(
        self,
        *,
        max_history: int,
        ttl_seconds: float,
        max_conversations: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_history = max_history
        self._conversations: TtlLru[_Conversation] = TtlLru(
            ttl_seconds=ttl_seconds,
            max_entries=max_conversations,
            clock=clock,
            on_evict=self._unindex,
        )
        self._by_user: dict[str, set[str]] = {}

    async def load(self, conversation: ConversationRef) -> list[Turn]:
        stored = self._conversations.get(conversation.storage_key)
        return list(stored.turns) if stored else []

    async def append(
        self, conversation: ConversationRef, turns: Sequence[Turn], *, dedupe_id: str
    ) -> None:
        key = conversation.storage_key
        stored = self._conversations.get(key)
        if stored is None:
            stored = _Conversation(conversation.user_email)
            self._by_user.setdefault(conversation.user_email, set()).add(key)
        elif dedupe_id in stored.dedupe_ids:
            return
        stored.dedupe_ids[dedupe_id] = None
        if len(stored.dedupe_ids) > DEDUPE_IDS_KEPT:
            stored.dedupe_ids.popitem(last=False)
        stored.turns.extend(turns)
        del stored.turns[: trim_start([t.role for t in stored.turns], self._max_history)]
        self._conversations.put(key, stored)  # refreshes the TTL; may evict the LRU one

    async def forget_user(self, user_email: str) -> int:
        keys = self._by_user.pop(user_email, set())
        return sum(self._conversations.pop(key) is not None for key in keys)

    async def ping(self) -> bool:
        return True

    def _unindex(self, key: str, stored: _Conversation) -> None:
        keys = self._by_user.get(stored.user_email)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[stored.user_email]


# --- Redis -----------------------------------------------------------------------

# One script, so a concurrent append or a replay can never interleave with it.
# KEYS: history list, dedupe-id zset, the user's index set.
# ARGV: dedupe id, ttl, max_history, index member, dedupe ids kept, turns...
# Turns are orjson arrays `["role","content"]`; orjson writes no spaces, so a user
# turn starts with exactly `["user"`.
_APPEND_SCRIPT = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local ttl = tonumber(ARGV[2])
if #ARGV > 5 then
  redis.call('RPUSH', KEYS[1], unpack(ARGV, 6))
end
local length = redis.call('LLEN', KEYS[1])
local start = math.max(length - tonumber(ARGV[3]), 0)
while start < length and
    string.sub(redis.call('LINDEX', KEYS[1], start), 1, 7) ~= '["user"' do
  start = start + 1
end
if start > 0 then
  redis.call('LTRIM', KEYS[1], start, -1)
end
redis.call('EXPIRE', KEYS[1], ttl)
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], now[1] + now[2] / 1000000, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ttl)
return 1
"""


class RedisHistoryStore:
    """History shared by all replicas.

    Keys hold digests, never e-mail addresses (see `keys.py`). All keys of one user
    share a Redis Cluster hash tag `{u:<digest>}`, so the append script and the forget
    transaction touch a single slot:
      <prefix>{u:U}:h:C  list of turns          (TTL)
      <prefix>{u:U}:d:C  zset of dedupe ids     (TTL)
      <prefix>{u:U}:idx  set of the user's C    (TTL, refreshed by every append)
    Token counts are not stored: they depend on the model of each request, and
    the builder's counter caches them in process (see tokens.py).
    """

    def __init__(
        self,
        client: Redis,
        *,
        max_history: int,
        ttl_seconds: int,
        keys: KeySpace,
    ) -> None:
        self._client = client
        self._max_history = max_history
        self._ttl = ttl_seconds
        self._keys = keys
        self._append_script = client.register_script(_APPEND_SCRIPT)

    async def load(self, conversation: ConversationRef) -> list[Turn]:
        user = self._keys.user_history(conversation.user_email)
        turns_key = user.turns(self._keys.conversation_member(conversation))
        with store_errors("history"):
            raw = cast(list[bytes], await self._client.lrange(turns_key, 0, -1))
        return [_decode_turn(item) for item in raw]

    async def append(
        self, conversation: ConversationRef, turns: Sequence[Turn], *, dedupe_id: str
    ) -> None:
        user = self._keys.user_history(conversation.user_email)
        member = self._keys.conversation_member(conversation)
        encoded = [orjson.dumps([turn.role, turn.content]) for turn in turns]
        with store_errors("history"):
            await self._append_script(
                keys=[user.turns(member), user.dedupe_ids(member), user.index],
                args=[dedupe_id, self._ttl, self._max_history, member, DEDUPE_IDS_KEPT, *encoded],
            )

    async def forget_user(self, user_email: str) -> int:
        user = self._keys.user_history(user_email)
        with store_errors("history"):
            return await self._forget(user)

    async def _forget(self, user: UserHistoryKeys) -> int:
        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH: an append that adds a conversation meanwhile restarts this.
                    await pipe.watch(user.index)
                    members = await pipe.smembers(user.index)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for member in sorted(cast(set[bytes], members)):
                        name = member.decode()
                        pipe.delete(user.turns(name))
                        pipe.delete(user.dedupe_ids(name))
                    pipe.delete(user.index)
                    results: list[Any] = await pipe.execute()
                except WatchError:
                    continue
                # Every conversation is one history-list DEL: count those that existed.
                return sum(int(result) for result in results[:-1:2])

    async def ping(self) -> bool:
        try:
            with store_errors("history"):
                return bool(await self._client.ping())
        except StoreUnavailable as exc:
            warn_degraded(log, "Redis ping failed", exc)
            return False


def _decode_turn(item: bytes) -> Turn:
    role, content = orjson.loads(item)
    return Turn(cast(Role, role), str(content))
