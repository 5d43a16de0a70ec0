"""Which process applies a lane, when several processes follow one log.

Any process may apply any batch: a processor's position moves only from where the batch
starts, so two appliers never both commit one batch. But two processes that read and apply
every page do the work twice, and the loser of each race throws its read away (measured:
twice the database's CPU a command). So one process leads each lane and the others follow:
they read no page, they learn the leader's position as it announces it, and they try to
take over now and then (a leader's hold ends with its connection, so with its process).
Correctness never rests on it: two leaders for a moment only race as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Announcement:
    """A leader's word on its lane: how far it got, and where it is stuck (0: it is not)."""

    lane: str
    position: int
    stuck_position: int = 0
    stuck_topic: str = ""
    stuck_error: str = ""


class Leadership:
    """Every process leads every lane: one process, or a store with no way to agree (SQLite,
    where one file rarely has many writers)."""

    def leads(self, lane: str) -> bool:
        """Whether this process leads `lane` (taking the lead if nobody holds it)."""
        return True

    def announce(self, announcement: Announcement) -> None:
        """Tell the followers (a leader, after each batch and each failure)."""

    def listen(
        self,
        heard: Callable[[Announcement], None],
        committed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        """Start hearing announcements (`heard`) and other processes' commits (`committed`:
        a leader reads at once instead of at its next poll) until `stop` is set."""

    def close(self) -> None:
        """Let go of every lane this process leads (another process takes over at once)."""
