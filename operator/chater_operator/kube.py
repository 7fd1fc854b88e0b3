"""The few Kubernetes API calls the reconciler makes, as a Protocol.

The reconciler depends on this seam only; `client.HttpKubeApi` implements it
over HTTP, and the tests point that client at an in-process API mock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chater_operator.resources import ObjectRef


class KubeApi(Protocol):
    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The object, or None when it (or its namespace or kind) does not exist."""

    async def exists(self, ref: ObjectRef) -> bool:
        """Whether the object exists, reading its metadata only (used for Secrets)."""

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (creates or updates) as the operator's field manager."""

    async def delete(self, ref: ObjectRef) -> bool:
        """Delete the object; False when it was already gone."""

    async def patch_status(self, ref: ObjectRef, status: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource."""


class EventSink(Protocol):
    """Kubernetes events about the ChaterGpt object (what the operator did)."""

    def emit(self, body: Mapping[str, Any], *, type: str, reason: str, message: str) -> None: ...
