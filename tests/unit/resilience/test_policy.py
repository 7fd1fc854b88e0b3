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
    daily_cost_limit_usd: 12.5
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
    assert shop.daily_cost_limit_usd == 12.5
    docs = book.for_app("docs")
    assert docs is not None
    assert docs.allowed_models is None
    assert docs.daily_cost_limit_usd is None  # no money limit
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
        ('{"tenants": {"shop": {"daily_cost_limit_usd": 0}}}', "tenants.shop.daily_cost_limit_usd"),
        ('{"tenants": {"s": {"daily_cost_limit_usd": -5}}}', "tenants.s.daily_cost_limit_usd"),
        ('{"tenants": {"s": {"daily_cost_limit_usd": "lots"}}}', "tenants.s.daily_cost_limit_usd"),
        ('{"tenants": {"s": {"daily_cost_usd": 5}}}', "tenants.s.daily_cost_usd"),
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


def test_an_infinite_money_limit_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy("tenants: {shop: {daily_cost_limit_usd: .inf}}", yaml=True)
    assert "tenants.shop.daily_cost_limit_usd" in caught.value.message


def test_a_job_api_tenant_names_its_app_code_hash_request_types_and_rate() -> None:
    book = parse_policy(
        """
tenants:
  shop:
    name: Shop assistant
    app_code_sha256: """
        + "ab" * 32
        + """
    rate_limit: 100/hour
    daily_token_limit: 1000
    request_types:
      summarise: {prompt_template: "Summarise: {text}", model: gpt-4o-mini,
                  max_tokens: 300, temperature: 0.2}
""",
        yaml=True,
    )
    shop = book.tenants["shop"]
    assert shop.job_rate == (100, 3600.0)
    assert shop.request_types["summarise"].max_tokens == 300


@pytest.mark.parametrize("rate", ["100", "0/hour", "5/week", "many/minute"])
def test_a_bad_job_rate_is_refused(rate: str) -> None:
    with pytest.raises(ConfigError, match="rate"):
        parse_policy(f'{{"tenants": {{"shop": {{"rate_limit": "{rate}"}}}}}}', yaml=False)
