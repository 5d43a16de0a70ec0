"""The prompt policy: terms an operator blocks, checked before a video is charged.

Matching is deliberately plain (a term anywhere in the prompt, ignoring case), so an
operator can predict it; the provider's own moderation still judges what passes here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sora2.domain.errors import PromptBlocked

BLOCKED_MESSAGE = "The prompt contains a term that is not allowed on this platform."


class PromptPolicy(Protocol):
    def check(self, prompt: str) -> None:
        """Raise PromptBlocked if the prompt may not be generated."""


class BlockedTerms:
    """Refuses a prompt containing any of the terms, case-insensitively."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = tuple(sorted({t.strip().casefold() for t in terms if t.strip()}))

    def check(self, prompt: str) -> None:
        text = prompt.casefold()
        if any(term in text for term in self.terms):
            raise PromptBlocked(BLOCKED_MESSAGE)


ALLOW_ALL = BlockedTerms(())
