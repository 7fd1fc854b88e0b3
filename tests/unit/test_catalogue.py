"""The model catalogue: lookup by name and snapshot prefix, the shipped table, the
MODEL_CATALOGUE_FILE overrides and their errors, and prices → cost."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from chater_gpt.catalogue import (
    DEFAULT_CATALOGUE,
    ModelCatalogue,
    ModelInfo,
    Prices,
    Provider,
    load_catalogue,
    parse_catalogue,
)
from chater_gpt.catalogue.model import LongContext, PriceChange
from chater_gpt.config import load_settings
from chater_gpt.context.builder import ContextBuilder
from chater_gpt.errors import ConfigError

# --- lookup -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),  # a dated snapshot
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longest prefix wins
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # an exact entry beats its prefix
        ("chatgpt-4o-latest", "chatgpt-4o-latest"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),  # Vertex's spelling
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("gemini-3-flash-preview", "gemini-3-flash"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
        ("ft:gpt-4o-mini:acme::abc123", "gpt-4o-mini"),
    ],
)
def test_a_model_resolves_by_name_then_by_its_longest_snapshot_prefix(
    model: str, name: str
) -> None:
    assert DEFAULT_CATALOGUE.resolve(model) == name
    assert model in DEFAULT_CATALOGUE


@pytest.mark.parametrize(
    "model", ["gpt-5.2", "gpt-4omni", "smollm2-135m-instruct", "claude", "o1x", ""]
)
def test_a_name_that_only_starts_like_a_known_one_is_unknown(model: str) -> None:
    assert DEFAULT_CATALOGUE.lookup(model) is None
    assert DEFAULT_CATALOGUE.provider_of(model) is None
    assert DEFAULT_CATALOGUE.context_window(model) is None
    assert DEFAULT_CATALOGUE.cost_usd(model, 1000, 1000) == 0.0


def test_the_shipped_table_covers_the_three_providers_current_families() -> None:
    providers = {
        "gpt-4o": Provider.OPENAI,
        "gpt-4o-mini": Provider.OPENAI,
        "gpt-4.1-nano": Provider.OPENAI,
        "o4-mini": Provider.OPENAI,
        "gpt-5": Provider.OPENAI,
        "claude-opus-4-1": Provider.ANTHROPIC,
        "claude-sonnet-4-5": Provider.ANTHROPIC,
        "claude-haiku-4-5": Provider.ANTHROPIC,
        "gemini-2.5-pro": Provider.GEMINI,
        "gemini-2.5-flash": Provider.GEMINI,
        "gemini-2.5-flash-lite": Provider.GEMINI,
    }
    for model, provider in providers.items():
        info = DEFAULT_CATALOGUE.lookup(model)
        assert info is not None, model
        assert info.provider is provider, model
        assert info.prices is not None, model
        assert info.prices.output >= info.prices.input > 0, model
        cached = info.prices.cached_input
        assert cached is None or cached <= info.prices.input, model
        assert info.max_output is None or info.max_output <= info.context_window, model


def test_the_context_builder_takes_its_windows_from_the_catalogue() -> None:
    assert ContextBuilder(1_000_000).window_for("gpt-4") == 8_192
    assert ContextBuilder(1_000_000).window_for("claude-haiku-4-5") == 200_000
    assert ContextBuilder(8_000).window_for("claude-haiku-4-5") == 8_000
    assert ContextBuilder(1_000_000).window_for("local-model") == 1_000_000
    tiny = ModelCatalogue({"local-model": ModelInfo(Provider.KOBOLDCPP, 2_048)})
    assert ContextBuilder(8_000, window_of=tiny.context_window).window_for("local-model") == 2_048


# --- cost -------------------------------------------------------------------------------


def test_cost_is_list_price_times_usage_with_cached_tokens_at_the_cached_price() -> None:
    # gpt-4o-mini: $0.15 in, $0.60 out, $0.075 cached, per million.
    assert DEFAULT_CATALOGUE.cost_usd("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert DEFAULT_CATALOGUE.cost_usd("gpt-4o-mini", 0, 1_000_000) == pytest.approx(0.60)
    cost = DEFAULT_CATALOGUE.cost_usd("gpt-4o-mini-2024-07-18", 1000, 500, 200)
    assert cost == pytest.approx((800 * 0.15 + 200 * 0.075 + 500 * 0.60) / 1e6)


def test_a_model_without_a_cached_price_charges_cached_tokens_as_input() -> None:
    prices = Prices(input=2.0, output=4.0)
    assert prices.cost(1000, 0, 400) == pytest.approx(1000 * 2.0 / 1e6)


def test_cached_tokens_never_count_more_than_the_prompt_or_below_zero() -> None:
    prices = Prices(input=1.0, output=1.0, cached_input=0.0)
    assert prices.cost(100, 0, 500) == 0.0
    assert prices.cost(100, -5, -5) == pytest.approx(100 / 1e6)


def test_a_long_prompt_pays_the_long_context_tier_on_every_token() -> None:
    # gemini-2.5-pro: $1.25 / $10 up to 200k prompt tokens, $2.50 / $15 above.
    short = DEFAULT_CATALOGUE.cost_usd("gemini-2.5-pro", 200_000, 1000)
    long = DEFAULT_CATALOGUE.cost_usd("gemini-2.5-pro", 200_001, 1000)
    assert short == pytest.approx((200_000 * 1.25 + 1000 * 10) / 1e6)
    assert long == pytest.approx((200_001 * 2.50 + 1000 * 15) / 1e6)
    info = ModelInfo(Provider.GEMINI, 10, prices=None, long_context=LongContext(5, Prices(1, 1)))
    assert info.cost_usd(4, 1) == 0.0
    assert info.cost_usd(6, 1) == pytest.approx(7 / 1e6)


def test_a_call_pays_the_prices_of_its_day() -> None:
    # gemini-3.8-flash: an introductory $0.75 / $3.75 through 2026-12-31, then $1.50 / $7.50.
    last_intro_day, first_list_day = date(2026, 12, 31), date(2027, 1, 1)
    cost = DEFAULT_CATALOGUE.cost_usd
    assert cost("gemini-3.8-flash", 10**6, 10**6, day=last_intro_day) == pytest.approx(4.50)
    assert cost("gemini-3.8-flash", 10**6, 10**6, day=first_list_day) == pytest.approx(9.00)
    assert cost("gemini-3.8-flash", 10**6, 0, 10**6, day=first_list_day) == pytest.approx(0.15)


def test_a_price_change_keeps_the_long_context_tier_unless_it_names_one() -> None:
    tier = LongContext(100, Prices(10, 10))
    info = ModelInfo(
        Provider.GEMINI,
        1000,
        prices=Prices(1, 1),
        long_context=tier,
        price_changes=(
            PriceChange(date(2027, 1, 1), Prices(2, 2)),
            PriceChange(date(2027, 6, 1), Prices(3, 3), LongContext(200, Prices(30, 30))),
        ),
    )
    assert info.tiers_on(date(2026, 1, 1)) == (Prices(1, 1), tier)
    assert info.tiers_on(date(2027, 1, 1)) == (Prices(2, 2), tier)
    assert info.tiers_on(date(2027, 6, 1)) == (Prices(3, 3), LongContext(200, Prices(30, 30)))
    assert info.cost_usd(150, 0, day=date(2027, 1, 2)) == pytest.approx(150 * 10 / 1e6)
    assert info.cost_usd(150, 0, day=date(2027, 6, 2)) == pytest.approx(150 * 3 / 1e6)


# --- MODEL_CATALOGUE_FILE ---------------------------------------------------------------

FILE = """
models:
  gpt-4o-mini:
    prices: {input: 1, output: 2}
  gpt-4o-2024-11-20:
    context_window: 64000
  SmolLM2-135M-Instruct:
    provider: openai
    context_window: 8192
    vision: false
    prices: {input: 0, output: 0}
"""


def test_the_file_overrides_shipped_fields_and_adds_models() -> None:
    catalogue = parse_catalogue(FILE, yaml=True, base=DEFAULT_CATALOGUE)
    mini = catalogue.lookup("gpt-4o-mini")
    assert mini is not None
    assert mini.prices == Prices(1.0, 2.0, None)
    assert mini.context_window == 128_000  # not given: the shipped one stays
    snapshot = catalogue.lookup("gpt-4o-2024-11-20")  # a snapshot gets an entry of its own
    assert snapshot is not None
    assert snapshot.context_window == 64_000
    assert snapshot.prices == DEFAULT_CATALOGUE.models["gpt-4o"].prices  # from gpt-4o
    local = catalogue.lookup("smollm2-135m-instruct")
    assert local == ModelInfo(Provider.OPENAI, 8192, vision=False, prices=Prices(0.0, 0.0))
    assert DEFAULT_CATALOGUE.lookup("smollm2-135m-instruct") is None  # shipped one untouched


def test_the_file_gives_price_changes_in_any_order_and_its_prices_replace_the_schedule() -> None:
    text = """
models:
  gpt-4o:
    price_changes:
      - {effective: "2028-01-01", prices: {input: 3, output: 3}}
      - {effective: 2027-01-01, prices: {input: 2, output: 2}}
  gemini-3.8-flash:
    prices: {input: 0.5, output: 2}
"""
    catalogue = parse_catalogue(text, yaml=True, base=DEFAULT_CATALOGUE)
    gpt_4o = catalogue.lookup("gpt-4o")
    assert gpt_4o is not None
    assert [change.effective for change in gpt_4o.price_changes] == [
        date(2027, 1, 1),
        date(2028, 1, 1),
    ]
    assert gpt_4o.prices == DEFAULT_CATALOGUE.models["gpt-4o"].prices  # until the first
    assert catalogue.cost_usd("gpt-4o", 10**6, 0, day=date(2027, 3, 1)) == pytest.approx(2)
    # A negotiated price given alone is the price from now on: the shipped change to the
    # list price on 2027-01-01 no longer applies.
    flash = catalogue.lookup("gemini-3.8-flash")
    assert flash is not None
    assert flash.price_changes == ()
    assert catalogue.cost_usd("gemini-3.8-flash", 10**6, 0, day=date(2027, 3, 1)) == 0.5


def test_the_file_is_read_as_json_or_yaml_by_its_suffix(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps({"models": {"x-1": {"provider": "gemini", "context_window": 9}}}))
    assert load_catalogue(path).context_window("x-1") == 9
    assert load_catalogue(None) is DEFAULT_CATALOGUE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [1, 2]", "MODEL_CATALOGUE_FILE: models: Input should be a valid dictionary"),
        ("modles: {}", "MODEL_CATALOGUE_FILE: modles: Extra inputs are not permitted"),
        ("models: {x-1: {provider: openai}}", "model 'x-1': a new model needs context_window"),
        ("models: {x-1: {context_window: 5}}", "model 'x-1': a new model needs provider"),
        ("models: {x-1: {provider: mistral, context_window: 5}}", "model 'x-1': provider:"),
        ("models: {gpt-4o: {context_window: 0}}", "model 'gpt-4o': context_window:"),
        ("models: {gpt-4o: {prices: {input: -987, output: 1}}}", "model 'gpt-4o': prices.input"),
        ("models: {gpt-4o: {prices: {input: 1}}}", "model 'gpt-4o': prices.output: Field req"),
        ("models: {gpt-4o: {colour: magenta}}", "model 'gpt-4o': colour: Extra inputs"),
        ("models: {GPT-4o: {vision: false}, gpt-4o: {json: false}}", "'gpt-4o' is defined twice"),
        ("models: {gpt-4o: [", "MODEL_CATALOGUE_FILE: not valid YAML"),
        (
            "models: {gpt-4o: {price_changes: [{effective: '2027-02-30', prices: {input: 1, "
            "output: 1}}]}}",
            "model 'gpt-4o': price_changes.0.effective",
        ),
        (
            "models: {gpt-4o: {price_changes: [{effective: 2027-01-01}]}}",
            "model 'gpt-4o': price_changes.0.prices: Field required",
        ),
        (
            "models: {gpt-4o: {price_changes: [{effective: 2027-01-01, prices: {input: 1, "
            "output: 1}}, {effective: '2027-01-01', prices: {input: 2, output: 2}}]}}",
            "model 'gpt-4o': two price_changes take effect on one day",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalogue(text, yaml=True, base=DEFAULT_CATALOGUE)
    assert message in caught.value.message
    assert "\n" not in caught.value.message
    assert "987" not in caught.value.message  # never a value
    assert "magenta" not in caught.value.message


def test_the_settings_load_the_file_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(FILE)
    base = {"bootstrap_server": "x:9", "openai_api_key": "sk-test"}
    settings = load_settings({**base, "model_catalogue_file": str(path)})
    assert settings.catalogue.cost_usd("gpt-4o-mini", 1_000_000, 0) == pytest.approx(1.0)
    assert load_settings(base).catalogue is DEFAULT_CATALOGUE
    path.write_text("models: {x-1: {provider: openai}}")
    with pytest.raises(ConfigError, match="MODEL_CATALOGUE_FILE: model 'x-1'"):
        load_settings({**base, "model_catalogue_file": str(path)})
    with pytest.raises(ConfigError, match="MODEL_CATALOGUE_FILE: cannot read"):
        load_settings({**base, "model_catalogue_file": str(tmp_path / "missing.yaml")})


EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def test_the_shipped_examples_are_files_the_service_accepts() -> None:
    settings = load_settings(
        {
            "bootstrap_server": "x:9",
            "openai_api_key": "sk-test",
            "routes_file": str(EXAMPLES / "routes-gemini.yaml"),
            "model_catalogue_file": str(EXAMPLES / "models.yaml"),
        }
    )
    routes = {route.name: route for route in settings.routes}
    assert set(routes) == {"chat", "photo", "gemini"}  # today's topics stay
    gemini = routes["gemini"]
    assert (gemini.request_topic, gemini.reply_topic) == ("gemini-send", "gemini-response")
    assert gemini.model is not None
    assert settings.catalogue.provider_of(gemini.model) is Provider.GEMINI
    assert gemini.model in settings.models_allowed
    assert settings.catalogue.context_window("smollm2-135m-instruct") == 8192
    assert settings.catalogue.provider_of("gemini-3.1-pro-preview-06-05") is Provider.GEMINI
