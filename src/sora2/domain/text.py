"""Text a person typed, fit to keep in an event: no control characters.

A NUL cannot be stored in a PostgreSQL text column, so one in an event poisons every
projection that reads it; other control characters (a bell, an escape, a carriage return)
garble logs, mails and terminals. Each text field is single-line (an email, a username, a
password, a token) or multi-line (a video prompt, where newline and tab are allowed).

The two `*_PATTERN`s say the same for the HTTP schema (`msgspec.Meta(pattern=...)`), where
they also reach the OpenAPI document, so they are written for both Python's `re` and
JSON Schema's ECMA-262 dialect: `$(?!\\n)` ends the string in both (Python's `$` alone
also matches before a final newline). They leave out lone surrogates, which the JSON
decoder refuses already and which a JavaScript validator would confuse with the halves of
an emoji; the domain guard refuses them too.
"""

from __future__ import annotations

import re

from sora2.domain.errors import InvalidInput

# bodies of a regex [class]: every Cc character, and the line and paragraph separators
CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
CONTROL_BUT_TAB_NEWLINE = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029"
_SURROGATES = r"\ud800-\udfff"

SINGLE_LINE_PATTERN = rf"^[^{CONTROL}]*$(?!\n)"
MULTILINE_PATTERN = rf"^[^{CONTROL_BUT_TAB_NEWLINE}]*$(?!\n)"

_single_line = re.compile(rf"[{CONTROL}{_SURROGATES}]")
_multiline = re.compile(rf"[{CONTROL_BUT_TAB_NEWLINE}{_SURROGATES}]")


def check_text(value: str, field: str, *, multiline: bool = False) -> str:
    """`value`, unless it holds a control character (newline and tab: if `multiline`).

    Refuses with `InvalidInput("<field>: ...")`, naming the first bad character.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be text")
    bad = (_multiline if multiline else _single_line).search(value)
    if bad is not None:
        allowed = " other than newline and tab" if multiline else ""
        raise InvalidInput(
            f"{field}: must not contain control characters{allowed} "
            f"(U+{ord(bad.group()):04X} at position {bad.start()})"
        )
    return value


def is_clean_text(value: object, *, multiline: bool = False) -> bool:
    """Whether `check_text` would accept `value`."""
    pattern = _multiline if multiline else _single_line
    return isinstance(value, str) and pattern.search(value) is None


def scrub_text(value: str, *, multiline: bool = True) -> str:
    """`value` with each control character replaced by U+FFFD: for text we did not get
    from a person and must keep anyway (a provider's error message)."""
    return (_multiline if multiline else _single_line).sub("\ufffd", value)
