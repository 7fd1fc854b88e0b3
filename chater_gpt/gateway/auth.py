"""API keys: `Authorization: Bearer <key>`, checked against hashes from a file.

The keys file (GATEWAY_API_KEYS_FILE, YAML or JSON) maps the SHA-256 hex digest of each
key to its tenant's `app_code`, or to null for a revoked key:

    keys:
      9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08: shop
      2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae: null  # revoked

Only hashes are kept in memory; the presented key's digest is compared with every
entry in constant time (`hmac.compare_digest`, no early exit), so timing reveals
neither a key nor which entry matched. Keys are never logged or put in a message.
Without a file the gateway is open (`ApiKeys.open()`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError, field_validator

from chater_gpt.config_files import describe_problems, parse_document, read_document
from chater_gpt.errors import ConfigError, Forbidden, Unauthorized

VARIABLE = "GATEWAY_API_KEYS_FILE"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeysFile(BaseModel):
    keys: dict[str, str | None]

    @field_validator("keys")
    @classmethod
    def _hex_digests(cls, keys: dict[str, str | None]) -> dict[str, str | None]:
        normalised = {digest.strip().lower(): tenant for digest, tenant in keys.items()}
        if not all(_HEX64.match(digest) for digest in normalised):
            raise ValueError("every key must be the SHA-256 hex digest (64 hex digits)")
        return normalised


@dataclass(frozen=True, slots=True)
class Identity:
    """Whom a request is from: the key's tenant (None when the gateway is open)."""

    tenant: str | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    def __init__(self, entries: dict[str, str | None] | None) -> None:
        # None: no keys file, every caller is let in.
        self._entries = None if entries is None else [(d.encode(), t) for d, t in entries.items()]

    @classmethod
    def open(cls) -> ApiKeys:
        return cls(None)

    @classmethod
    def from_file(cls, path: Path) -> ApiKeys:
        text, yaml = read_document(path, variable=VARIABLE)
        try:
            parsed = KeysFile.model_validate(parse_document(text, yaml=yaml, variable=VARIABLE))
        except ValidationError as exc:
            raise ConfigError(f"{VARIABLE}: {describe_problems(exc)}") from None
        return cls(parsed.keys)

    @property
    def is_open(self) -> bool:
        return self._entries is None

    def __len__(self) -> int:
        return len(self._entries or ())

    def identify(self, authorization: str | None) -> Identity:
        """The caller's identity from the Authorization header, or Unauthorized/Forbidden."""
        if self._entries is None:
            return Identity(None)
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("missing API key: send Authorization: Bearer <key>")
        presented = digest(key.strip()).encode()
        found = False
        tenant: str | None = None
        for entry, entry_tenant in self._entries:  # every entry, no early exit
            if hmac.compare_digest(entry, presented):
                found, tenant = True, entry_tenant
        if not found:
            raise Unauthorized("invalid API key")
        if tenant is None:
            raise Forbidden("this API key is revoked")
        return Identity(tenant)
