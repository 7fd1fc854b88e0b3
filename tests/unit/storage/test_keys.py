"""Redis key names are a wire format: every family is byte-identical to what the
stores wrote before the key space existed (the old formulas are copied below), and a
few literal keys are pinned so that no refactoring can move deployed data."""

from __future__ import annotations

import hashlib

import pytest

from chater_gpt.domain import ConversationRef
from chater_gpt.storage.keys import (
    DEFAULT_KEY_PREFIX,
    GLOBAL_SCOPE,
    KeySpace,
    backend_scope_name,
    dedupe_id,
    digest,
    identity,
    tenant_scope_name,
    user_scope_name,
)

KEYS = KeySpace()
ADA = ConversationRef("Ada@Example.com", "work")
EMAILS = ["ada@example.com", "Ada@Example.com ", " BOB@x.org", "zoë@例え.jp", "", "a\x1fb"]
CONVERSATIONS = [ConversationRef(e, c) for e in EMAILS for c in (None, "work", "ünï")]


# --- the formulas of the stores before the key space (verbatim) ------------------------


def old_history_digest(text: str) -> str:  # context/history.py `_digest`
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def old_user_key(user_email: str) -> str:  # resilience/budget.py `user_key`
    digest = hashlib.sha256(user_email.strip().lower().encode()).hexdigest()[:32]
    return f"user:{digest}"


def old_history_keys(prefix: str, conversation: ConversationRef) -> tuple[str, str, str]:
    tag = f"{prefix}{{u:{old_history_digest(conversation.user_email)}}}"
    member = old_history_digest(conversation.storage_key)
    return f"{tag}:h:{member}", f"{tag}:d:{member}", f"{tag}:idx"


# --- pinned literals -----------------------------------------------------------------


def test_the_default_prefix() -> None:
    assert DEFAULT_KEY_PREFIX == "chater:"
    assert KeySpace().prefix == "chater:"


def test_pinned_keys_of_every_family() -> None:
    ada = user_scope_name("Ada@Example.com ")
    assert ada == "user:b5fc85e55755f9e0d030a10ab4429b6b"  # sha256("ada@example.com")
    assert KEYS.outcome("id:0123") == "chater:outcome:id:0123"
    assert KEYS.cache("f00d") == "chater:cache:f00d"
    assert KEYS.rate(ada) == "chater:rate:user:b5fc85e55755f9e0d030a10ab4429b6b"
    assert KEYS.rate(backend_scope_name("openai")) == "chater:rate:rpm:openai"
    assert KEYS.rate(tenant_scope_name("shop")) == "chater:rate:tenant:shop"
    assert KEYS.budget("2026-03-01", GLOBAL_SCOPE) == "chater:budget:2026-03-01:global"
    assert KEYS.budget("2026-03-01", ada) == (
        "chater:budget:2026-03-01:user:b5fc85e55755f9e0d030a10ab4429b6b"
    )
    assert KEYS.cost("2026-03-01", GLOBAL_SCOPE) == "chater:cost:2026-03-01:global"
    assert KEYS.cost("2026-03-01", tenant_scope_name("shop")) == (
        "chater:cost:2026-03-01:tenant:shop"
    )
    assert KEYS.breaker("openai") == "chater:breaker:openai"
    assert KEYS.breaker_probe("openai") == "chater:breaker:openai:probe"
    assert KEYS.job("j1") == "chater:{jobs}:job:j1"
    assert KEYS.job_queue() == "chater:{jobs}:queue"
    assert KEYS.jobs_done() == "chater:{jobs}:done"
    user = KEYS.user_history(ADA.user_email)
    member = KEYS.conversation_member(ADA)
    assert member == "ae8f54676d5d24f8638e6a309522c737"  # sha256("Ada@Example.com\x1fwork")
    assert user.turns(member) == (
        "chater:{u:1aa1bf07b50d24a304252acef11b0537}:h:ae8f54676d5d24f8638e6a309522c737"
    )
    assert user.dedupe_ids(member) == (
        "chater:{u:1aa1bf07b50d24a304252acef11b0537}:d:ae8f54676d5d24f8638e6a309522c737"
    )
    assert user.index == "chater:{u:1aa1bf07b50d24a304252acef11b0537}:idx"


# --- identical to the old formulas ---------------------------------------------------


@pytest.mark.parametrize("prefix", ["chater:", "staging-7:", "{x}"])
@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=repr)
def test_history_keys_are_the_old_ones(prefix: str, conversation: ConversationRef) -> None:
    keys = KeySpace(prefix)
    user = keys.user_history(conversation.user_email)
    member = keys.conversation_member(conversation)
    assert (user.turns(member), user.dedupe_ids(member), user.index) == old_history_keys(
        prefix, conversation
    )


@pytest.mark.parametrize("email", EMAILS)
def test_user_scopes_are_the_old_ones(email: str) -> None:
    assert user_scope_name(email) == old_user_key(email)


@pytest.mark.parametrize("prefix", ["chater:", "staging-7:"])
def test_the_other_families_are_the_old_ones(prefix: str) -> None:
    keys = KeySpace(prefix)
    assert keys.outcome("msg:t:0:1:ab") == f"{prefix}outcome:msg:t:0:1:ab"
    assert keys.cache("k") == f"{prefix}cache:k"
    assert keys.rate("tenant:a") == f"{prefix}rate:tenant:a"
    assert keys.budget("2026-01-01", "tenant:a") == f"{prefix}budget:2026-01-01:tenant:a"
    assert keys.breaker("koboldcpp") == f"{prefix}breaker:koboldcpp"
    assert keys.breaker_probe("koboldcpp") == f"{prefix}breaker:koboldcpp:probe"


def test_one_hash_two_inputs() -> None:
    # History hashes the address as sent, budgets the normalised address: both with
    # the one `digest`.
    assert identity(" Ada@Example.COM") == digest("ada@example.com")
    assert (
        KEYS.user_history("Ada@Example.com").root == "chater:{u:" + digest("Ada@Example.com") + "}"
    )
    assert len(digest("x")) == 32


def test_digest_accepts_any_string() -> None:
    assert len(digest("\ud800")) == 32  # a lone surrogate (strict UTF-8 would refuse it)


def test_no_key_names_a_user() -> None:
    email = "ada@example.com"
    user = KEYS.user_history(email)
    member = KEYS.conversation_member(ConversationRef(email))
    for key in (
        user.turns(member),
        user.index,
        KEYS.budget("2026-01-01", user_scope_name(email)),
        KEYS.cost("2026-01-01", user_scope_name(email)),
        KEYS.rate(user_scope_name(email)),
    ):
        assert "ada" not in key


def test_dedupe_ids_are_pinned() -> None:
    # A replay after a deploy finds the outcome recorded before it only if its id is
    # computed the same way.
    by_id = dedupe_id(key="k", request_id="r1", topic="t", partition=0, offset=5, value=b"v")
    assert by_id == "id:053dd62167e191e47f362792"
    assert by_id == dedupe_id(key="k", request_id="r1", topic="u", partition=1, offset=9, value=b"")
    by_offset = dedupe_id(
        key="k", request_id=None, topic="gpt-send", partition=3, offset=42, value=b"{}"
    )
    assert by_offset == "msg:gpt-send:3:42:00900a89c6506f5fd1a7e9c1"
    assert by_offset != dedupe_id(
        key="k", request_id=None, topic="gpt-send", partition=3, offset=42, value=b"[]"
    )
