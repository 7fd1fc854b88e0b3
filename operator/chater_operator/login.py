"""Credentials for `HttpKubeApi`, from the same sources kopf logs in with."""

from __future__ import annotations

from typing import Any

import kopf

from chater_operator.client import Connection, write_private_file


def login_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """The pod's service account in the cluster, else the current kubeconfig context.

    kopf logs in with this too (see handlers), so kopf and our client always talk
    to the same API server as the same user.
    """
    return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )


async def kopf_login(settings: kopf.OperatorSettings) -> Connection:
    info = login_info(settings)
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig found")
    return connection_of(info)


def connection_of(info: Any) -> Connection:
    """kopf's ConnectionInfo -> our Connection (certificate blobs become 0600 files)."""
    cert_path = info.certificate_path
    key_path = info.private_key_path
    if info.certificate_data:
        cert_path = write_private_file(_text(info.certificate_data), ".crt")
    if info.private_key_data:
        key_path = write_private_file(_text(info.private_key_data), ".key")
    return Connection(
        server=str(info.server),
        token=info.token,
        ca_path=str(info.ca_path) if info.ca_path else None,
        ca_data=_text(info.ca_data) if info.ca_data else None,
        insecure=bool(info.insecure),
        certificate_path=str(cert_path) if cert_path else None,
        private_key_path=str(key_path) if key_path else None,
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
