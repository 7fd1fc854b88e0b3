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

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from chater_gpt.domain import ConversationRef, Role, Turn
from chater_gpt.observability.logging import warn_degraded

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
    turns: list[Turn]
    expires_at: float
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
        self._ttl = ttl_seconds
        self._max_conversations = max_conversations
        self._clock = clock
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}

    async def load(self, conversation: ConversationRef) -> list[Turn]:
        stored = self._live(conversation.storage_key)
        return list(stored.turns) if stored else []

    async def append(
        self, conversation: ConversationRef, turns: Sequence[Turn], *, dedupe_id: str
    ) -> None:
        key = conversation.storage_key
        stored = self._live(key)
        if stored is None:
            stored = _Conversation(conversation.user_email, [], 0.0)
            self._conversations[key] = stored
            self._by_user.setdefault(conversation.user_email, set()).add(key)
        elif dedupe_id in stored.dedupe_ids:
            return
        stored.dedupe_ids[dedupe_id] = None
        if len(stored.dedupe_ids) > DEDUPE_IDS_KEPT:
            stored.dedupe_ids.popitem(last=False)
        stored.turns.extend(turns)
        del stored.turns[: trim_start([t.role for t in stored.turns], self._max_history)]
        stored.expires_at = self._clock() + self._ttl
        self._conversations.move_to_end(key)
        while len(self._conversations) > self._max_conversations:
            oldest, _ = next(iter(self._conversations.items()))
            self._remove(oldest)

    async def forget_user(self, user_email: str) -> int:
        now = self._clock()
        deleted = 0
        for key in list(self._by_user.get(user_email, ())):
            stored = self._conversations.get(key)
            if stored is not None and stored.expires_at > now:
                deleted += 1
            self._remove(key)
        self._by_user.pop(user_email, None)
        return deleted

    async def ping(self) -> bool:
        return True

    def _live(self, key: str) -> _Conversation | None:
        stored = self._conversations.get(key)
        if stored is None:
            return None
        if stored.expires_at <= self._clock():
            self._remove(key)
            return None
        self._conversations.move_to_end(key)
        return stored

    def _remove(self, key: str) -> None:
        stored = self._conversations.pop(key, None)
        if stored is None:
            return
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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class RedisHistoryStore:
    """History shared by all replicas.

    Keys hold digests, never e-mail addresses. All keys of one user share a Redis
    Cluster hash tag `{u:<digest>}`, so the append script and the forget
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
        prefix: str = "chater:",
    ) -> None:
        self._client = client
        self._max_history = max_history
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._append_script = client.register_script(_APPEND_SCRIPT)

    def _user_tag(self, user_email: str) -> str:
        return f"{self._prefix}{{u:{_digest(user_email)}}}"

    def _keys(self, conversation: ConversationRef) -> tuple[str, str, str, str]:
        tag = self._user_tag(conversation.user_email)
        member = _digest(conversation.storage_key)
        return f"{tag}:h:{member}", f"{tag}:d:{member}", f"{tag}:idx", member

    async def load(self, conversation: ConversationRef) -> list[Turn]:
        history_key, *_ = self._keys(conversation)
        raw = cast(list[bytes], await self._client.lrange(history_key, 0, -1))
        return [_decode_turn(item) for item in raw]

    async def append(
        self, conversation: ConversationRef, turns: Sequence[Turn], *, dedupe_id: str
    ) -> None:
        history_key, dedupe_key, index_key, member = self._keys(conversation)
        encoded = [orjson.dumps([turn.role, turn.content]) for turn in turns]
        await self._append_script(
            keys=[history_key, dedupe_key, index_key],
            args=[dedupe_id, self._ttl, self._max_history, member, DEDUPE_IDS_KEPT, *encoded],
        )

    async def forget_user(self, user_email: str) -> int:
        tag = self._user_tag(user_email)
        index_key = f"{tag}:idx"
        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH: an append that adds a conversation meanwhile restarts this.
                    await pipe.watch(index_key)
                    members = await pipe.smembers(index_key)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for member in sorted(cast(set[bytes], members)):
                        name = member.decode()
                        pipe.delete(f"{tag}:h:{name}")
                        pipe.delete(f"{tag}:d:{name}")
                    pipe.delete(index_key)
                    results: list[Any] = await pipe.execute()
                except WatchError:
                    continue
                # Every conversation is one history-list DEL: count those that existed.
                return sum(int(result) for result in results[:-1:2])

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError) as exc:
            warn_degraded(log, "Redis ping failed", exc)
            return False


def _decode_turn(item: bytes) -> Turn:
    role, content = orjson.loads(item)
    return Turn(cast(Role, role), str(content))
