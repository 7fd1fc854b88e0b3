"""Plain value types shared by the layers (contracts, context, backends, service).

No I/O and no validation here: `contracts.py` validates raw input and produces
these; the other layers only consume them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]
ImageDetail = Literal["low", "high", "auto"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, as stored in history or supplied by a producer."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Where a conversation's history lives: one user, optionally one named conversation."""

    user_email: str
    conversation_id: str | None = None

    @property
    def storage_key(self) -> str:
        """Stable id of the conversation inside the user's history (without any prefix)."""
        return f"{self.user_email}\x1f{self.conversation_id or 'default'}"


@dataclass(frozen=True, slots=True)
class ImageInput:
    """A validated image: a data URL (bytes checked, MIME detected) or an https URL.

    `width`/`height` are known for inline images (read from the header) and None for
    remote URLs, whose size the service cannot see without fetching them.
    """

    url: str
    mime_type: str | None
    width: int | None
    height: int | None
    detail: ImageDetail = "auto"
