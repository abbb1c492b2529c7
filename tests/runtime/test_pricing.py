"""spec.agent.pricing applied to tokens: exact decimals, reported to a billionth of the currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from agent_runtime.pricing import PriceTable, wire_amount
from agentry_api.v1alpha1 import PricingSpec


def table(input_price: float, output_price: float, currency: str = "USD") -> PriceTable:
    spec = PricingSpec.model_validate(
        {"inputPerMillionTokens": input_price, "outputPerMillionTokens": output_price, "currency": currency}
    )
    found = PriceTable.from_spec(spec)
    assert found is not None
    return found


def test_no_price_table_means_no_cost() -> None:
    assert PriceTable.from_spec(None) is None


def test_cost_is_tokens_times_the_price_per_million() -> None:
    prices = table(3.0, 15.0, "EUR")
    assert prices.cost(input_tokens=1_000_000, output_tokens=0) == Decimal(3)
    assert prices.cost(input_tokens=2_000, output_tokens=500) == Decimal("0.0135")
    assert prices.amount(input_tokens=2_000, output_tokens=500) == 0.0135
    assert prices.currency == "EUR"


def test_float_prices_carry_no_binary_error_and_sums_equal_the_whole() -> None:
    prices = table(0.15, 0.6)  # 0.15 and 0.6 are not exact binary floats
    whole = prices.cost(input_tokens=3_000, output_tokens=300)
    parts = sum((prices.cost(input_tokens=1_000, output_tokens=100) for _ in range(3)), Decimal(0))
    assert whole == parts == Decimal("0.00063")


def test_amounts_are_rounded_to_a_billionth() -> None:
    prices = table(0.01, 0.0)
    assert prices.cost(input_tokens=1, output_tokens=0) == Decimal("1E-8")
    assert wire_amount(Decimal("0.0000000014")) == 0.000000001
    assert prices.amount(input_tokens=0, output_tokens=0) == 0.0


@pytest.mark.parametrize(
    ("pricing", "field"),
    [
        ({"inputPerMillionTokens": -1, "outputPerMillionTokens": 1}, "inputPerMillionTokens"),
        ({"inputPerMillionTokens": 1, "outputPerMillionTokens": 1, "currency": "usd"}, "currency"),
        ({"inputPerMillionTokens": 1}, "outputPerMillionTokens"),
    ],
)
def test_a_bad_price_table_names_its_field(pricing: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PricingSpec.model_validate(pricing)
    assert field in str(caught.value)
