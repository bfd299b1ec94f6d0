"""A fake card gateway that reacts to the published test card numbers (decline, slow)."""

from __future__ import annotations

import time

from corrtrace.demo.faults import CARD_DECLINE, CARD_SLOW, CARD_SLOW_DECLINE


class Declined(Exception):
    """The card was declined: a business failure, not a code error."""


def charge(card: str, amount_cents: int, slow_ms: int) -> str:
    """Return an authorisation code, or raise ``Declined``. Slow cards take ``slow_ms`` first."""
    if card in (CARD_SLOW, CARD_SLOW_DECLINE):
        time.sleep(slow_ms / 1000)
    if card in (CARD_DECLINE, CARD_SLOW_DECLINE):
        raise Declined("card declined: insufficient funds")
    return f"auth-{card[-4:]}-{amount_cents}"
