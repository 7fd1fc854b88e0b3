from __future__ import annotations

from pathlib import Path

import pytest

from chater_gpt.errors import ConfigError
from chater_gpt.resilience.policy import load_policy, parse_policy

YAML = """
tenants:
  shop:
    allowed_models: [gpt-4o-mini]
    max_tokens: 500
    requests_per_minute: 30
    daily_token_limit: 200000
  docs: {}
unknown_app_code: allow
"""


def test_yaml_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(YAML)
    book = load_policy(path)
    shop = book.for_app("shop")
    assert shop is not None
    assert shop.allowed_models == frozenset({"gpt-4o-mini"})
    assert (shop.max_tokens, shop.requests_per_minute, shop.daily_token_limit) == (500, 30, 200000)
    docs = book.for_app("docs")
    assert docs is not None
    assert docs.allowed_models is None
    assert book.for_app("other") is None
    assert book.unknown_app_code == "allow"


def test_json_policy_defaults_to_rejecting_unknown_app_codes(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"tenants": {"shop": {"max_tokens": 10}}}')
    book = load_policy(path)
    assert book.unknown_app_code == "reject"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"tenants": {"shop": {"max_tokens": 0}}}', "tenants.shop.max_tokens"),
        ('{"tenants": {"shop": {"max_tokns": 5}}}', "tenants.shop.max_tokns"),
        ('{"unknown_app_code": "maybe"}', "unknown_app_code"),
        ("{not json", "not valid JSON"),
    ],
)
def test_invalid_policy_names_the_problem(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, yaml=False)
    assert named in caught.value.message
    assert caught.value.message.startswith("TENANT_POLICY_FILE")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_policy(tmp_path / "absent.yaml")
