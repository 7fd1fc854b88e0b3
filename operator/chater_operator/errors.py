"""The operator's errors: the spec is wrong (permanent) or the API failed (maybe temporary).

Messages are written for the user who reads the CR's status: they name objects
and fields, never Secret values.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidSpecError(OperatorError):
    """The ChaterGpt spec cannot be rendered; the user must change it."""

    reason = "InvalidSpec"


class KubeApiError(OperatorError):
    """The Kubernetes API refused or failed a request."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def temporary(self) -> bool:
        """Worth retrying soon: server errors, throttling, timeouts, no connection."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class NotFoundError(KubeApiError):
    """404: the object (or its namespace, or its resource kind) does not exist."""


class ConflictError(KubeApiError):
    """409: a conflicting write; retried on the next pass."""
