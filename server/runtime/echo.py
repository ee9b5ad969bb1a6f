"""Client text echoed back in error messages: cut to a fixed length, card numbers masked, one line.

A status message travels in gRPC metadata (16 KiB at most): an unbounded echo of a 20 kB model name made
the answer RESOURCE_EXHAUSTED instead of NOT_FOUND. And whatever a client sends may be a card number (a
PAN pasted into the wrong field): a run of 13-19 digits, spaces or dashes allowed between them, that passes
the Luhn check is never echoed. `echo` is for one echoed value; `safe_details` is the net under every
status message the server sends (server/api/calls.py, SafeContext).
"""

import re

ECHO_MAX_CHARS = 64  # of one echoed client value
DETAILS_MAX_CHARS = 1000  # of a whole status message
MASK = "[card number masked]"
_CARD_LIKE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def mask_card_numbers(text: str) -> str:
    """Every Luhn-valid run of 13-19 digits (spaces or dashes between them allowed) replaced by MASK."""

    def mask(found: re.Match) -> str:
        digits = found.group().replace(" ", "").replace("-", "")
        return MASK if 13 <= len(digits) <= 19 and luhn_valid(digits) else found.group()

    return _CARD_LIKE.sub(mask, text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def echo(value: object, limit: int = ECHO_MAX_CHARS) -> str:
    """`value` as it may appear in a message to the client: card numbers masked, control characters as
    '?', at most `limit` characters (then '... (N chars)')."""
    return _cut(_CONTROL.sub("?", mask_card_numbers(str(value))), limit)


def safe_details(details: str) -> str:
    """A whole status message: card numbers masked, at most DETAILS_MAX_CHARS characters."""
    if len(details) < 13 and len(details) <= DETAILS_MAX_CHARS:
        return details  # too short to hold a card number
    return _cut(mask_card_numbers(details), DETAILS_MAX_CHARS)
