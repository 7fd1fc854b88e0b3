"""Per-tenant policy (TENANT_POLICY_FILE): what each `app_code` may do.

The file is YAML (`.yaml`/`.yml`) or JSON:

    tenants:
      shop:
        allowed_models: [gpt-4o-mini]   # omitted: every model the service allows
        max_tokens: 500                 # cap on a request's max_tokens
        requests_per_minute: 30         # refused beyond (rate_limited)
        daily_token_limit: 200000       # refused beyond (budget_exhausted)
        daily_cost_limit_usd: 25.0      # USD per UTC day, refused beyond (budget_exhausted)
    unknown_app_code: reject            # or "allow": no tenant limits for it

Parsing and validation only; `admission` applies it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chater_gpt.config_files import describe_problems, parse_document, read_document
from chater_gpt.errors import ConfigError

VARIABLE = "TENANT_POLICY_FILE"


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_models: frozenset[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    daily_token_limit: int | None = Field(default=None, ge=1)
    daily_cost_limit_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)


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
