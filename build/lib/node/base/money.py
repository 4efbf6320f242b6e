"""An amount of money as people read it, wherever one is shown (the console, the refer
preview): ``250000.5`` ``AUD`` as ``AUD 250,000.50``, whole amounts without cents."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def money(amount: str | None, currency: str | None) -> str:
    """The amount with thousands separators and its currency first; a value that is not a
    number is shown as it is (it came from somewhere else, and hiding it would mislead)."""
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return amount
    text = f"{value:,.2f}" if value != value.to_integral_value() else f"{value:,.0f}"
    return f"{currency} {text}" if currency else text
