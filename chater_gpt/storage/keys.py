"""Every Redis key the service reads or writes, built here and nowhere else.

Key names are a wire format: data written by a deployed version must stay readable,
so each family below is byte-for-byte what earlier versions wrote
(`tests/unit/storage/test_keys.py` pins them):

    <prefix>outcome:<dedupe id>                 recorded reply (outcomes.py)
    <prefix>cache:<cache key>                   cached answer (cache.py)
    <prefix>{u:<digest(email)>}:h:<member>      a conversation's turns (history.py)
    <prefix>{u:<digest(email)>}:d:<member>      its recent request ids
    <prefix>{u:<digest(email)>}:idx             the user's conversations
    <prefix>rate:<scope>                        a GCRA rate window (rates.py)
    <prefix>budget:<UTC day>:<scope>            a daily token counter (budgets.py);
                                                a user's usage is their budget counter
    <prefix>cost:<UTC day>:<scope>              a daily money counter, in nano-USD
                                                (budgets.py), beside the token counter
    <prefix>breaker:<backend>                   shared breaker state (breaker_state.py)
    <prefix>breaker:<backend>:probe             the half-open probe claim
    <prefix>{jobs}:job:<job id>                 a job of the job API (jobs.py)
    <prefix>{jobs}:queue                        queued jobs by submission time
    <prefix>{jobs}:done                         finish times of the last minute

Scopes (of rate windows and budget and cost counters) are `global`, `user:<identity>`,
`tenant:<app_code>` and `rpm:<backend>` (a backend's pacing).

Personal data never appears in a key: an e-mail address is hashed with `digest`, the
one hash of key names. Two families hash it from different text, and must keep doing
so: history hashes the address exactly as the request spelled it (its conversations
were stored under that), while per-user limits, budgets and usage hash it trimmed and
lower-cased (`identity`), so `Ada@Example.com ` and `ada@example.com` share one
budget. Normalising history too would orphan every stored conversation of an address
with a capital letter; not normalising budgets would split a user's usage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from chater_gpt.domain import ConversationRef

DEFAULT_KEY_PREFIX = "chater:"
GLOBAL_SCOPE = "global"


def digest(text: str) -> str:
    """The hash in key names: the first 32 hex digits of SHA-256 over the UTF-8 text.

    `surrogatepass`: any Python string has a digest. (Budgets used to encode strictly;
    for every string that encoding accepts the bytes, so the digest, are the same.)
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def identity(user_email: str) -> str:
    """A user's identity in limits, budgets and usage: the digest of the trimmed,
    lower-cased address (see the module's docstring for why history differs)."""
    return digest(user_email.strip().lower())


def user_scope_name(user_email: str) -> str:
    return f"user:{identity(user_email)}"


def tenant_scope_name(app_code: str) -> str:
    return f"tenant:{app_code}"


def backend_scope_name(backend: str) -> str:
    """The pacing scope of one backend (REQUESTS_PER_MINUTE)."""
    return f"rpm:{backend}"


def content_fingerprint(parts: Sequence[bytes]) -> str:
    """A short stable digest of request content, for idempotency ids."""
    fingerprint = hashlib.blake2b(digest_size=12)
    for part in parts:
        fingerprint.update(len(part).to_bytes(8, "big"))
        fingerprint.update(part)
    return fingerprint.hexdigest()


def dedupe_id(
    *, key: str, request_id: str | None, topic: str, partition: int, offset: int, value: bytes
) -> str:
    """A request's idempotency id: its outcome record and its history appends carry it.

    An explicit request_id wins (scoped by key); else the message's own coordinates.
    The content fingerprint guards against a topic recreated from scratch, where the
    same coordinates would name a different message.
    """
    if request_id:
        return f"id:{content_fingerprint([key.encode(), request_id.encode()])}"
    return f"msg:{topic}:{partition}:{offset}:{content_fingerprint([value])}"


@dataclass(frozen=True, slots=True)
class UserHistoryKeys:
    """The keys of one user's history. All share the Redis Cluster hash tag
    `{u:<digest>}`, so the append script and the forget transaction touch one slot."""

    root: str

    @property
    def index(self) -> str:
        """The set of the user's conversation members."""
        return f"{self.root}:idx"

    def turns(self, member: str) -> str:
        return f"{self.root}:h:{member}"

    def dedupe_ids(self, member: str) -> str:
        return f"{self.root}:d:{member}"


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The keys of one deployment: every key starts with `prefix` (REDIS_KEY_PREFIX)."""

    prefix: str = DEFAULT_KEY_PREFIX

    def outcome(self, dedupe_id: str) -> str:
        return f"{self.prefix}outcome:{dedupe_id}"

    def cache(self, cache_key: str) -> str:
        return f"{self.prefix}cache:{cache_key}"

    def user_history(self, user_email: str) -> UserHistoryKeys:
        return UserHistoryKeys(f"{self.prefix}{{u:{digest(user_email)}}}")

    @staticmethod
    def conversation_member(conversation: ConversationRef) -> str:
        """A conversation's name inside its user's history keys."""
        return digest(conversation.storage_key)

    def rate(self, scope: str) -> str:
        return f"{self.prefix}rate:{scope}"

    def budget(self, day: str, scope: str) -> str:
        return f"{self.prefix}budget:{day}:{scope}"

    def cost(self, day: str, scope: str) -> str:
        return f"{self.prefix}cost:{day}:{scope}"

    def breaker(self, backend: str) -> str:
        return f"{self.prefix}breaker:{backend}"

    def breaker_probe(self, backend: str) -> str:
        return f"{self.breaker(backend)}:probe"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}{{jobs}}:job:{job_id}"

    def job_queue(self) -> str:
        return f"{self.prefix}{{jobs}}:queue"

    def jobs_done(self) -> str:
        return f"{self.prefix}{{jobs}}:done"
