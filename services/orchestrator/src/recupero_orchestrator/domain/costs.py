"""What contacting a debtor costs, per channel: tenant data, with documented defaults.

A tenant states one currency and a price per contact attempt for every channel (integer minor
units). Until it does, `DEFAULT_CHANNEL_COSTS` applies: rough public list prices in US cents,
there to make the figures non-empty, not to be trusted for a real budget. Cost per unit collected
compares money of one currency only: a cost in USD says nothing per peso without an exchange rate,
and none is guessed here.
"""

from collections.abc import Mapping, Sequence
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from recupero_events import Money
from recupero_orchestrator.domain.channels import ChannelField, ContactChannel


class ChannelCosts(BaseModel):
    """A tenant's price of one contact attempt on each channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO-4217 currency.")]
    per_contact: dict[ChannelField, NonNegativeInt] = Field(
        description="Minor units per contact attempt, for every channel.",
        examples=[{"whatsapp": 90, "sms": 60, "email": 2, "ivr": 250, "letter": 2500}],
    )

    @model_validator(mode="after")
    def _every_channel(self) -> Self:
        missing = [c.value for c in ContactChannel if c not in self.per_contact]
        if missing:
            # A channel left out would silently cost nothing and flatter its variant.
            raise ValueError(f"per_contact: no price for {', '.join(missing)}")
        return self

    def cost_of(self, contacts: Mapping[ContactChannel, int]) -> Money:
        total = sum(self.per_contact[channel] * count for channel, count in contacts.items())
        return Money(amount_minor=total, currency=self.currency)


DEFAULT_CHANNEL_COSTS = ChannelCosts(
    currency="USD",
    per_contact={
        ContactChannel.WHATSAPP: 5,  # a utility/marketing template message in Latin America
        ContactChannel.SMS: 4,
        ContactChannel.EMAIL: 1,
        ContactChannel.IVR: 15,  # a short automated call
        ContactChannel.LETTER: 120,  # printed and posted
        ContactChannel.AGENT_CALL: 250,  # a few minutes of an agent's time
        ContactChannel.FIELD_VISIT: 1_500,
        ContactChannel.LEGAL_REFERRAL: 5_000,
    },
)


def cost_per_collected(cost: Money, collected: Sequence[Money]) -> float | None:
    """Cost per unit of money collected in the cost's currency; None when nothing was."""
    same = sum(m.amount_minor for m in collected if m.currency == cost.currency)
    return cost.amount_minor / same if same > 0 else None
