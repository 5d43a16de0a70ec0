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

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from sora2.application.audit.report import Problem
from sora2.application.audit.store import RawLink
from sora2.application.ledger_chain import GENESIS, ChainLink, link_hash

_pack = struct.Struct(">qq").pack  # as `link_hash` packs position and version
_sha256 = hashlib.sha256


@dataclass(frozen=True)
class Checkpoint:
    position: int
    hash: bytes


class ChainCheck:
    def __init__(self, links: Iterator[list[RawLink]], against: Checkpoint | None) -> None:
        self._batches = iter(links)
        self._ahead: list[RawLink] = []  # links read, not yet walked past: from `_at` on
        self._at = 0
        self._fill(1)
        self.against = against
        self._up_to = against.position if against else -1
        self.problems: list[Problem] = []
        self.last_position = 0
        self._last_link: RawLink = (0, 0, GENESIS)  # the link of the last event seen
        self._head: RawLink | None = None  # the last link read
        self.running = GENESIS  # recomputed from the events alone, for the checkpoint
        self.last_within = 0  # the last event at or before the checkpoint's position
        self._unlinked: list[int] = []  # a run of events without links, reported as one
        self._topics: dict[str, bytes] = {}  # topic -> its bytes as a link hashes them

    def _fill(self, need: int) -> None:
        """At least `need` links ahead (or all that are left), so a batch of events walks
        its links by index."""
        ahead = self._ahead[self._at :]
        while len(ahead) < need and (more := next(self._batches, None)) is not None:
            ahead += more
        self._ahead, self._at = ahead, 0

    @property
    def _next(self) -> RawLink | None:
        return self._ahead[self._at] if self._at < len(self._ahead) else None

    def _take(self) -> RawLink:
        link = self._ahead[self._at]
        self._at += 1
        if self._at == len(self._ahead):
            self._fill(1)
        self._head = link
        return link

    @property
    def head(self) -> ChainLink | None:
        link = self._head
        return None if link is None else ChainLink(link[0], link[1], bytes(link[2]))

    def check(self, batch: list[tuple[int, bytes, int, str, bytes]]) -> None:
        """Check stored events in log order: the common case (the next link is the event's
        and hashes from the one before) inline, `link_hash` written out with each topic's
        bytes made once; anything else through `event`."""
        if self._up_to >= 0:  # a checkpoint to recompute towards: every event, one by one
            for stored in batch:
                self.event(*stored)
            return
        self._fill(len(batch))
        ahead, at, last, topics = self._ahead, self._at, self._last_link, self._topics
        walked = False  # a link taken inline since `ahead` was last read
        for position, originator, version, topic, state in batch:
            if at < len(ahead) and not self._unlinked:
                link = ahead[at]
                if link[0] == position and link[1] == last[0]:
                    if (topic_bytes := topics.get(topic)) is None:
                        topic_bytes = topics[topic] = topic.encode() + b"\x00"
                    parts = (last[2], _pack(position, version), originator, topic_bytes, state)
                    if _sha256(b"".join(parts)).digest() == link[2]:
                        at += 1
                        last = link
                        walked = True
                        self.last_position = position
                        continue
            self._put_back(at, last, walked)
            self.event(position, originator, version, topic, state)
            ahead, at, last, walked = self._ahead, self._at, self._last_link, False
        self._put_back(at, last, walked)

    def _put_back(self, at: int, last: RawLink, walked: bool) -> None:
        """What `check` walked inline, back in the fields `event` and `_take` use."""
        self._at = at
        if walked:
            self._head = last
        if at == len(self._ahead):
            self._fill(1)
        self._last_link = last

    def event(
        self, position: int, originator: bytes, version: int, topic: str, state: bytes
    ) -> None:
        link = self._next
        removed = None
        if link is not None and link[0] < position:
            removed = []
            while (link := self._next) is not None and link[0] < position:
                removed.append(self._take())
            self._report_removed(removed)
            self._last_link = removed[-1]
        if position <= self._up_to:
            self.running = link_hash(self.running, position, originator, version, topic, state)
            self.last_within = position
        if link is None or link[0] != position:
            self._unlinked.append(position)
        else:
            if self._unlinked:
                self._flush_unlinked()
            self._take()
            previous = self._last_link
            if link[1] != previous[0] and not removed:
                self.problems.append(
                    Problem(
                        "chain",
                        f"event {position}: its link names event {link[1]} before it,"
                        f" the log has {self.last_position or 'none'}: an event was removed"
                        " or inserted",
                        position,
                    )
                )
            if link_hash(previous[2], position, originator, version, topic, state) != link[2]:
                self.problems.append(
                    Problem(
                        "chain",
                        f"event {position} ({topic.rsplit(':', 1)[-1]}) was changed after it "
                        "was stored: its content does not hash to its link",
                        position,
                    )
                )
            self._last_link = link
        self.last_position = position

    def _report_removed(self, links: list[RawLink]) -> None:
        positions = [link[0] for link in links]
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
        while self._next is not None:
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
