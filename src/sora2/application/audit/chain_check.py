"""The chain against the events, and the log against a signed checkpoint.

Walked beside the fold, event by event, with the links merged in by position:
- each event must have its link, naming the event before it, and hashing to it from the
  previous link: otherwise it was changed (its link does not match), inserted (it has no
  link) or the event before it removed (its link names an event the log lacks);
- a link without its event is an event removed;
- from the first event, the hash recomputed over the events alone must, at a
  checkpoint's position, be the checkpoint's hash: whoever rewrote events and links
  alike cannot make that hold without the key that signed the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sora2.application.audit.report import Problem
from sora2.application.ledger_chain import GENESIS, ChainLink, link_hash


@dataclass(frozen=True)
class Checkpoint:
    position: int
    hash: bytes


class ChainCheck:
    def __init__(self, links: Iterator[list[ChainLink]], against: Checkpoint | None) -> None:
        self._batches = links
        self._links: list[ChainLink] = []
        self._index = 0
        self.against = against
        self.problems: list[Problem] = []
        self.last_position = 0
        self.last_link: ChainLink | None = None  # the link of the last event seen
        self.head: ChainLink | None = None  # the last link read
        self.running = GENESIS  # recomputed from the events alone, for the checkpoint
        self.last_within = 0  # the last event at or before the checkpoint's position
        self._unlinked: list[int] = []  # a run of events without links, reported as one

    def _peek(self) -> ChainLink | None:
        while self._index >= len(self._links):
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._links, self._index = batch, 0
        return self._links[self._index]

    def _take(self) -> ChainLink:
        link = self._links[self._index]
        self._index += 1
        self.head = link
        return link

    def event(
        self, position: int, originator: bytes, version: int, topic: str, state: bytes
    ) -> None:
        removed = []
        while (link := self._peek()) is not None and link.position < position:
            removed.append(self._take())
        if removed:
            self._report_removed(removed)
            self.last_link = removed[-1]
        if self.against is not None and position <= self.against.position:
            self.running = link_hash(self.running, position, originator, version, topic, state)
            self.last_within = position
        link = self._peek()
        if link is None or link.position != position:
            self._unlinked.append(position)
        else:
            self._flush_unlinked()
            self._take()
            previous = self.last_link
            expected_previous = previous.position if previous else 0
            if link.previous != expected_previous and not removed:
                before = self.last_position
                self.problems.append(
                    Problem(
                        "chain",
                        f"event {position}: its link names event {link.previous} before it,"
                        f" the log has {before or 'none'}: an event was removed or inserted",
                        position,
                    )
                )
            from_hash = previous.hash if previous else GENESIS
            if link_hash(from_hash, position, originator, version, topic, state) != link.hash:
                self.problems.append(
                    Problem(
                        "chain",
                        f"event {position} ({topic.rsplit(':', 1)[-1]}) was changed after it "
                        "was stored: its content does not hash to its link",
                        position,
                    )
                )
            self.last_link = link
        self.last_position = position

    def _report_removed(self, links: list[ChainLink]) -> None:
        positions = [link.position for link in links]
        shown = ", ".join(map(str, positions[:10])) + (" …" if len(positions) > 10 else "")
        self.problems.append(
            Problem(
                "chain",
                f"{_events(len(positions))} removed from the log: the chain links event"
                f"{'s' if len(positions) > 1 else ''} {shown}",
                positions[0],
            )
        )

    def _flush_unlinked(self) -> None:
        if not self._unlinked:
            return
        first, last, n = self._unlinked[0], self._unlinked[-1], len(self._unlinked)
        where = f"event {first}" if n == 1 else f"{n} events from {first} to {last}"
        self.problems.append(
            Problem(
                "chain",
                f"{where}: not in the chain (stored outside the application, or never "
                "linked: `sora2 ledger checkpoint` links a log older than the chain)",
                first,
            )
        )
        self._unlinked = []

    def finish(self) -> None:
        """After the last event: links past it are events removed from the end."""
        self._flush_unlinked()
        removed = []
        while self._peek() is not None:
            removed.append(self._take())
        if removed:
            self._report_removed(removed)

    def checkpoint_problems(self) -> list[Problem]:
        if self.against is None:
            return []
        last, running, cp = self.last_within, self.running, self.against
        if last < cp.position:
            return [
                Problem(
                    "checkpoint",
                    f"the log was cut: the checkpoint covers it up to event {cp.position}, "
                    f"the log's last event at or before that is {last or 'none'}",
                    cp.position,
                )
            ]
        if running != cp.hash:
            return [
                Problem(
                    "checkpoint",
                    f"the log up to event {cp.position} is not the one checkpointed: it hashes"
                    f" to {running.hex()[:16]}…, the checkpoint signed {cp.hash.hex()[:16]}…"
                    " (an event at or before it was changed, inserted or removed)",
                    cp.position,
                )
            ]
        return []


def _events(n: int) -> str:
    return "1 event" if n == 1 else f"{n} events"
