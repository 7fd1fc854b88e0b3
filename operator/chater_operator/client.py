"""`KubeApi` over HTTP with aiohttp: GET, server-side apply, DELETE, status patch.

Credentials come from a login callable (the service account in the cluster, a
kubeconfig outside), the same sources kopf uses. On 401 it logs in again once,
so a rotated service-account token is picked up.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from chater_operator import FIELD_MANAGER
from chater_operator.errors import ConflictError, KubeApiError, NotFoundError
from chater_operator.resources import ObjectRef

# Ask for metadata only: the operator checks that a Secret exists, never reads its data.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
APPLY = "application/apply-patch+yaml"  # JSON is YAML, so the body is JSON
MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate (no secrets in repr)."""

    server: str
    token: str | None = None
    ca_path: str | None = None
    ca_data: str | None = None  # base64 PEM, as in a kubeconfig
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None

    def __repr__(self) -> str:
        return f"Connection(server={self.server!r})"


Login = Callable[[], Awaitable[Connection]]


def ssl_context(conn: Connection) -> ssl.SSLContext | bool:
    if not conn.server.startswith("https"):
        return False
    if conn.insecure:
        return False
    context = ssl.create_default_context(cafile=conn.ca_path)
    if conn.ca_data:
        context.load_verify_locations(cadata=base64.b64decode(conn.ca_data).decode())
    if conn.certificate_path:
        context.load_cert_chain(conn.certificate_path, conn.private_key_path)
    return context


class HttpKubeApi:
    """The operator's Kubernetes client. Use as an async context manager or call close()."""

    def __init__(self, login: Login, *, timeout: float = 30.0) -> None:
        self._login = login
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._conn: Connection | None = None

    async def __aenter__(self) -> HttpKubeApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            return await self._request("GET", ref.path)
        except NotFoundError:
            return None

    async def exists(self, ref: ObjectRef) -> bool:
        try:
            await self._request("GET", ref.path, headers={"Accept": METADATA_ONLY})
        except NotFoundError:
            return False
        return True

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        ref = ObjectRef.of(manifest)
        return await self._request(
            "PATCH",
            ref.path,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=manifest,
            content_type=APPLY,
        )

    async def delete(self, ref: ObjectRef) -> bool:
        try:
            # Foreground: the Deployment's pods go before the Deployment is gone.
            options = {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "propagationPolicy": "Foreground",
            }
            await self._request("DELETE", ref.path, body=options)
        except NotFoundError:
            return False
        return True

    async def patch_status(self, ref: ObjectRef, status: Mapping[str, Any]) -> None:
        await self._request(
            "PATCH", f"{ref.path}/status", body={"status": status}, content_type=MERGE
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            session, conn = await self._connect(fresh=attempt == 2)
            request_headers = {"Accept": "application/json", **(headers or {})}
            if conn.token:
                request_headers["Authorization"] = f"Bearer {conn.token}"
            if body is not None:
                request_headers["Content-Type"] = content_type
            try:
                async with session.request(
                    method,
                    conn.server.rstrip("/") + path,
                    params=params,
                    headers=request_headers,
                    data=None if body is None else json.dumps(body),
                ) as response:
                    payload = await response.read()
                    if response.status == 401 and attempt == 1:
                        continue  # the token may have rotated: log in again, once
                    if response.status >= 400:
                        raise _error(method, path, response.status, payload)
                    return _json_object(payload)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise KubeApiError(f"{method} {path}: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _connect(self, *, fresh: bool) -> tuple[aiohttp.ClientSession, Connection]:
        if fresh or self._session is None or self._conn is None:
            await self.close()
            self._conn = await self._login()
            connector = aiohttp.TCPConnector(ssl=ssl_context(self._conn))
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session, self._conn


def _json_object(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    data = json.loads(payload)
    return data if isinstance(data, dict) else {}


def _error(method: str, path: str, status: int, payload: bytes) -> KubeApiError:
    try:
        body = _json_object(payload)
    except ValueError:
        body = {}
    reason = str(body.get("reason") or "")
    # The API's Status message names the object and field; it never echoes Secret data.
    message = f"{method} {path}: {status} {body.get('message') or reason or 'error'}"
    if status == 404:
        return NotFoundError(message, status=status, reason=reason)
    if status == 409:
        return ConflictError(message, status=status, reason=reason)
    return KubeApiError(message, status=status, reason=reason)


def write_private_file(data: str, suffix: str) -> str:
    """A base64 kubeconfig blob as a 0600 file (ssl loads certificates from files only)."""
    with tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False) as handle:
        handle.write(base64.b64decode(data))
    Path(handle.name).chmod(0o600)
    return handle.name
