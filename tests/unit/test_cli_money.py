"""Balances in the CLI's report read as money, with each currency's own decimals."""

import pytest

from recupero_cli.money import currency_decimals, format_money

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount_minor", "currency", "shown"),
    [
        (538_694_865, "ARS", "ARS 5,386,948.65"),
        (150_075, "MXN", "MXN 1,500.75"),
        (5, "PEN", "PEN 0.05"),
        (0, "USD", "USD 0.00"),
        (12_345_678, "CLP", "CLP 12,345,678"),
        (2_500_000, "PYG", "PYG 2,500,000"),
        (-1_050, "COP", "COP -10.50"),
        (1_234_567, "KWD", "KWD 1,234.567"),
    ],
)
def test_minor_units_are_shown_with_the_currency_decimals(
    amount_minor: int, currency: str, shown: str
) -> None:
    assert format_money(amount_minor, currency) == shown


def test_chilean_and_paraguayan_pesos_have_no_decimals_others_two() -> None:
    assert currency_decimals("CLP") == currency_decimals("PYG") == 0
    assert currency_decimals("ARS") == currency_decimals("BRL") == currency_decimals("XYZ") == 2


def test_large_amounts_are_exact_not_floating_point() -> None:
    assert format_money(10**20 + 1, "MXN") == "MXN 1,000,000,000,000,000,000.01"
