"""The job API's shapes (the original job-queue system's): submissions, app codes,
prompts from templates, and the status of a job as `GET /get_request/<id>` shows it.
Pure: no I/O.

Answers are `{"status": "success", ...}` or `{"status": "error", "error_code",
"message"}` with that system's upper-case codes (README, "The job API").
"""

from __future__ import annotations

import hashlib
import hmac
import math
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chater_gpt.resilience.policy import PolicyBook, RequestType, TenantPolicy
from chater_gpt.storage.jobs import JobView


class JobApiError(Exception):
    """A rejection: its HTTP status, code and message (never a secret in it)."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"status": "error", "error_code": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


def invalid(message: str) -> JobApiError:
    return JobApiError(400, "INVALID_REQUEST", message)


class Submission(BaseModel):
    model_config = ConfigDict(extra="ignore")

    app_code: str = Field(min_length=1, max_length=256)
    request_type: str = Field(min_length=1, max_length=100)
    request: dict[str, Any] | str


def parse_submission(body: Any) -> Submission:
    try:
        return Submission.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        raise invalid(f"{field}: {first['msg']}") from None


@dataclass(frozen=True, slots=True)
class App:
    tenant: str  # the tenant's key in the policy: the core's app_code (not a secret)
    policy: TenantPolicy

    @property
    def name(self) -> str:
        return self.policy.name or self.tenant


class AppCodes:
    """The registered app codes, as SHA-256 digests from the tenant policy. A presented
    code's digest is compared with every entry (`hmac.compare_digest`, no early exit),
    so timing reveals neither a code nor which entry matched."""

    def __init__(self, book: PolicyBook | None) -> None:
        tenants = book.tenants.items() if book is not None else ()
        self._entries = [
            (policy.app_code_sha256.lower().encode(), App(tenant, policy))
            for tenant, policy in tenants
            if policy.app_code_sha256
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, app_code: str) -> App:
        presented = hashlib.sha256(app_code.encode("utf-8", "surrogatepass")).hexdigest().encode()
        found: App | None = None
        for entry, app in self._entries:  # every entry, no early exit
            if hmac.compare_digest(entry, presented):
                found = app
        if found is None:
            raise JobApiError(401, "INVALID_APP_CODE", "the app code is not registered")
        return found


def request_type(app: App, name: str) -> RequestType:
    found = app.policy.request_types.get(name)
    if found is None:
        raise JobApiError(
            403, "UNSUPPORTED_REQUEST_TYPE", f"this app may not submit request type {name!r}"
        )
    return found


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise invalid(f"request: the request type needs the field {key!r}")


def render_prompt(kind: RequestType, request: dict[str, Any] | str) -> str:
    """The prompt: the request type's template filled from the request's fields
    (`{request}` is the whole request). Only plain `{name}` fields are filled: the
    template is the operator's, the values the caller's."""
    fields = _Fields(request if isinstance(request, dict) else {})
    fields.setdefault("request", request)
    for _, name, _, _ in string.Formatter().parse(kind.prompt_template):
        if name is not None and not name.isidentifier():
            raise invalid(f"request: the template field {name!r} cannot be filled")
    try:
        prompt = kind.prompt_template.format_map(fields)
    except (ValueError, IndexError, KeyError):
        raise invalid("request: the prompt template could not be filled") from None
    if not prompt.strip():
        raise invalid("request: the prompt is empty")
    return prompt


def core_request(app: App, kind: RequestType, prompt: str, job_id: str) -> dict[str, Any]:
    """The core's chat request for a job: stateless, under the app's tenant (its limits
    and budgets), with the request type's model and parameters."""
    value: dict[str, Any] = {"message": prompt, "request_id": job_id, "app_code": app.tenant}
    optional = {
        "model": kind.model,
        "max_tokens": kind.max_tokens,
        "temperature": kind.temperature,
        "system_prompt": kind.system_prompt,
    }
    value.update({name: item for name, item in optional.items() if item is not None})
    return value


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def status_body(job_id: str, view: JobView) -> dict[str, Any]:
    """What `GET /get_request/<id>` answers for a job."""
    record = view.record
    body: dict[str, Any] = {
        "request_id": job_id,
        "status": view.status,
        "app_name": record.get("app_name"),
        "request_type": record.get("request_type"),
        "submitted_at": _iso(record.get("submitted_ms")),
        "status_history": [
            {"status": status, "at": _iso(at)} for status, at in record.get("history", [])
        ],
    }
    if view.status == "queued":
        position = view.position or 0
        body["position"] = position + 1  # 1: next in line
        body["jobs_ahead"] = position
        body["estimated_wait_seconds"] = (
            round((position + 1) / view.per_second, 1) if view.per_second > 0 else None
        )
    elif view.status == "expired":
        body["message"] = "the job waited too long in the queue and was not processed"
    else:
        body.update(record.get("result") or {})
    return body
