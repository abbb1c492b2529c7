"""What tokens cost: spec.agent.pricing applied to a run's (or one model response's) tokens.

Pure: amounts are computed with decimals, so a run's cost is the same however its responses were summed,
and rounded to nano-units of the currency on the wire, where cost is a JSON number.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agentry_api.v1alpha1 import PricingSpec

__all__ = ["PriceTable", "wire_amount"]

MILLION = Decimal(1_000_000)
#: Places kept on the wire: a billionth of the currency (a token of a cheap model costs about a ten-millionth).
QUANTUM = Decimal("0.000000001")


@dataclass(frozen=True)
class PriceTable:
    """The prices of one agent's model, per million tokens."""

    input_per_million: Decimal
    output_per_million: Decimal
    currency: str

    @classmethod
    def from_spec(cls, spec: PricingSpec | None) -> PriceTable | None:
        """The table of spec.agent.pricing; None when the agent has none (cost is then not reported)."""
        if spec is None:
            return None
        # str() first: Decimal(0.15) would carry the float's binary error into every amount.
        return cls(
            input_per_million=Decimal(str(spec.input_per_million_tokens)),
            output_per_million=Decimal(str(spec.output_per_million_tokens)),
            currency=spec.currency,
        )

    def cost(self, *, input_tokens: int, output_tokens: int) -> Decimal:
        """The exact cost of these tokens."""
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / MILLION

    def amount(self, *, input_tokens: int, output_tokens: int) -> float:
        """The cost as it is reported (results, audit records): rounded to a billionth of the currency."""
        return wire_amount(self.cost(input_tokens=input_tokens, output_tokens=output_tokens))


def wire_amount(cost: Decimal) -> float:
    """A cost as a JSON number, rounded to a billionth of the currency."""
    return float(cost.quantize(QUANTUM))
