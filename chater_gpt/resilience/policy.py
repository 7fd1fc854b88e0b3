"""Per-tenant policy (TENANT_POLICY_FILE): what each `app_code` may do.

The file is YAML (`.yaml`/`.yml`) or JSON:

    tenants:
      shop:
        allowed_models: [gpt-4o-mini]   # omitted: every model the service allows
        max_tokens: 500                 # cap on a request's max_tokens
        requests_per_minute: 30         # refused beyond (rate_limited)
        daily_token_limit: 200000       # refused beyond (budget_exhausted)
        daily_cost_limit_usd: 25.0      # USD per UTC day, refused beyond (budget_exhausted)
        # The job API (POST /ai_request) takes this tenant's work when it has an app code:
        name: Shop assistant
        app_code_sha256: 9f86d0...      # SHA-256 hex of the app code (a credential)
        rate_limit: 100/hour            # submissions, refused beyond (429)
        request_types:
          summarise: {prompt_template: "Summarise: {text}", model: gpt-4o-mini,
                      max_tokens: 300, temperature: 0.2}
    unknown_app_code: reject            # or "allow": no tenant limits for it

Parsing and validation only; `admission` applies it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chater_gpt.config_files import describe_problems, parse_document, read_document
from chater_gpt.errors import ConfigError

VARIABLE = "TENANT_POLICY_FILE"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


class RequestType(BaseModel):
    """One kind of job an app may submit: its prompt and how it is answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # `str.format` fields are the submitted `request`'s keys; `{request}` is all of it.
    prompt_template: str = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    system_prompt: str | None = None


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_models: frozenset[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    daily_token_limit: int | None = Field(default=None, ge=1)
    daily_cost_limit_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # The job API: a tenant with an app code takes jobs of its request types.
    name: str | None = None
    app_code_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    rate_limit: str | None = None  # "<n>/<second|minute|hour|day>": job submissions
    request_types: dict[str, RequestType] = Field(default_factory=dict)

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        found = _RATE.match(value or "")
        if value is not None and (found is None or int(found.group(1)) < 1):
            raise ValueError("a rate limit is <n>/second, /minute, /hour or /day, e.g. 100/hour")
        return value

    @property
    def job_rate(self) -> tuple[int, float] | None:
        """The job submission limit as (count, period in seconds), if any."""
        found = _RATE.match(self.rate_limit or "")
        if found is None or int(found.group(1)) < 1:
            return None
        return int(found.group(1)), PERIODS[found.group(2)]


class PolicyBook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: dict[str, TenantPolicy] = Field(default_factory=dict)
    unknown_app_code: Literal["reject", "allow"] = "reject"

    def for_app(self, app_code: str) -> TenantPolicy | None:
        return self.tenants.get(app_code)


def parse_policy(text: str, *, yaml: bool) -> PolicyBook:
    """Validate a policy document, or raise ConfigError naming what is wrong."""
    data = parse_document(text, yaml=yaml, variable=VARIABLE)
    try:
        return PolicyBook.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"{VARIABLE}: {describe_problems(exc, limit=50)}") from None


def load_policy(path: Path) -> PolicyBook:
    text, yaml = read_document(path, variable=VARIABLE)
    return parse_policy(text, yaml=yaml)
