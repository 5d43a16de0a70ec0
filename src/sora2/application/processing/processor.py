"""What follows the log: a processor gets whole saves and commits its effect with its position.

A processor (the read models, the NATS relay, the video-job dispatch) is handed a batch of
stored events that starts right after its position and ends at a save boundary. It applies
the batch and moves its position to the batch's last event in one step, so a crash replays
exactly what did not commit, and a reader never sees half of a save.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID


class Stored(NamedTuple):
    """One event as the log holds it: its position (notification id) and the domain event.
    (A tuple: built for every event read, at half the cost of a frozen dataclass.)"""

    position: int
    topic: str
    event: Any


class Record(NamedTuple):
    """A stored event as a recorder may hand it to a processor that reads records: what
    eventsourcing's `Notification` holds (the mapper decodes either), cheaper to build."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


class PositionMoved(Exception):
    """Another process applied these events first: re-read the position and go on."""


class Processor(ABC):
    name: str
    # Stuck, may a command's poke retry at once? Not when the failure is a service being
    # away (NATS): then only the lane's back-off retries, so an outage costs no warning per
    # command.
    retry_on_poke: bool = True
    # Handed the stored records instead of decoded events (`LogReader.read_records`): the
    # NATS relay maps the stored JSON straight to its messages.
    reads_records: bool = False
    # While it applies a page of a backlog, the lane reads the next one in a thread: for a
    # processor whose work does not wait on the database (`read_ahead.py`).
    reads_ahead: bool = False

    @abstractmethod
    def position(self) -> int:
        """The last position whose effect is committed (0: nothing yet)."""

    def check(self) -> None:
        """Before each read: PositionMoved if the position went back behind what the lane
        handed over (a processor that applies in the background found a failure)."""
        return None

    @abstractmethod
    def process(self, after: int, batch: Sequence[Stored]) -> None:
        """Apply `batch` (the events right after position `after`) and move the position to
        its last event, atomically; PositionMoved if the position is no longer `after`."""
