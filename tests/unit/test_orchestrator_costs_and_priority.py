"""Channel costs and agents' task priority: pure rules."""

import pytest
from pydantic import ValidationError

from recupero_events import Money
from recupero_orchestrator.domain.agent_work import task_priority
from recupero_orchestrator.domain.channels import ContactChannel
from recupero_orchestrator.domain.costs import (
    DEFAULT_CHANNEL_COSTS,
    ChannelCosts,
    cost_per_collected,
)


def test_priority_is_the_balance_weighted_by_propensity_and_neutral_when_unknown() -> None:
    assert task_priority(1_000_000, 20) == 200_000
    assert task_priority(400_000, 90) == 360_000
    assert task_priority(300_000, None) == 150_000
    assert task_priority(-5_000, 80) == 0  # an overpaid balance never jumps the queue


def test_costs_name_every_channel_and_compare_money_of_one_currency_only() -> None:
    with pytest.raises(ValidationError, match="no price for letter"):
        ChannelCosts(
            currency="MXN",
            per_contact={c: 1 for c in ContactChannel if c is not ContactChannel.LETTER},
        )
    cost = DEFAULT_CHANNEL_COSTS.cost_of({ContactChannel.WHATSAPP: 10, ContactChannel.EMAIL: 3})
    assert cost == Money(amount_minor=53, currency="USD")
    pesos = [Money(amount_minor=1_000_000, currency="MXN")]
    assert cost_per_collected(cost, pesos) is None  # no exchange rate is guessed
    dollars = [*pesos, Money(amount_minor=5_300, currency="USD")]
    assert cost_per_collected(cost, dollars) == 0.01
