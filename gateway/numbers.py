"""Whole numbers read from text (headers, query parameters, URLs, flags, environment variables)."""

from __future__ import annotations


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits, the only numbers read here. ``str.isdigit``
    alone also takes other digits, "²" among them, which ``int`` and ``float`` refuse."""
    return text.isascii() and text.isdigit()
