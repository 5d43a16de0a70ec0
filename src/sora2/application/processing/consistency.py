"""Read your writes: a query waits until the read models hold the user's last command.

Commands answer from their own aggregates and note the position they saved at; a later
query of the same user waits (bounded) for the read-model lane to pass it. In a process
without a running runner (the CLI, tests on a bare container) the command's own thread
projects its events at once instead. Nothing waits
when the view is already there, and a slow view delays a query, never fails it: after the
bound the query answers from what the view holds.

Several processes behind one address cannot know each other's commands, so each request
asks once what the log's head is (together with the access check's own row, see
`Accounts.authenticate`) and every query of that request waits for that head, not again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import UUID

from sora2.application.processing.runner import Lane

log = logging.getLogger("sora2.processing")

WAIT_SECONDS = 5.0
MAX_MARKS = 100_000


class _Request:
    """What one request knows: the head the read models were seen to hold (None: not yet),
    and the head it read without waiting for it (its queries wait for that one)."""

    __slots__ = ("covered", "seen")

    def __init__(self) -> None:
        self.covered: int | None = None
        self.seen: int | None = None


_request: ContextVar[_Request | None] = ContextVar("sora2_request", default=None)


class ReadYourWrites:
    def __init__(
        self,
        lane: Lane,
        wait_seconds: float = WAIT_SECONDS,
        head: Callable[[], int] | None = None,
    ) -> None:
        self.lane = lane
        self.wait_seconds = wait_seconds
        # Several processes serve one address: a user's last write may have gone through
        # another one, so a query waits for the log's head (one cheap SELECT) instead.
        self.head = head
        self._marks: dict[UUID, int] = {}
        self._latest = 0  # the last position any command of this process saved at
        self._revocations: dict[UUID, int] = {}  # password changes and resets, by user
        self._lock = threading.Lock()  # guards the dict only, never held while waiting

    @property
    def follows_head(self) -> bool:
        """True when queries must wait for the log's head (several processes serve)."""
        return self.head is not None

    @contextmanager
    def request(self) -> Iterator[None]:
        """One request's scope: the head it found covered is remembered until it ends, so
        its queries wait for it once. Threads the request hands work to share it."""
        token = _request.set(_Request())
        try:
            yield
        finally:
            _request.reset(token)

    def covered(self, head: int, position: int | None, moved: bool = True) -> bool:
        """The access check read the log's head and the read models' position together,
        and whether the log holds events of its user or session past that position
        (`moved`): True if the row it read is current, else wait for the head and False
        (the row may be older than the head: read it again). A row that is current while
        the read models trail the head (other users' writes) is taken at once: the
        request's queries, if it makes any, wait for that head (`_wait_head`)."""
        if position is not None and position >= head:
            self._cover(head)
            return True
        if not moved:
            if (current := _request.get()) is not None:
                current.seen = max(head, current.seen or 0)
            return True
        if self.lane.wait_for(head, self.wait_seconds):
            self._cover(head)
        else:
            log.warning("read models are behind position %s; answering from them", head)
        return False

    def _cover(self, head: int) -> None:
        if (current := _request.get()) is not None:
            current.covered = max(head, current.covered or 0)

    def note(self, user_id: UUID, position: int | None, revokes: bool = False) -> None:
        """The user's command was saved at `position`; `revokes`: it ended sessions, which
        every later authentication must see (not only the user's own queries)."""
        if position is None:
            return
        if not self.lane.running:  # no runner here (a CLI, a bare container): project now
            self.lane.wait_for(position)
            return
        with self._lock:
            if revokes:
                self._revocations[user_id] = max(position, self._revocations.get(user_id, 0))
            self._latest = max(self._latest, position)
            if position > self._marks.get(user_id, 0):
                self._marks[user_id] = position
            if len(self._marks) > MAX_MARKS:
                self._forget_reached()

    def wait(self, user_id: UUID) -> None:
        """Return once the read models hold every command this process saved for the user."""
        self._wait_mark(self._marks, user_id)

    def wait_revocations(self, user_id: UUID) -> None:
        """Wait only for the user's last revocation of sessions: what an access check must
        see, while it need not wait for the user's other writes."""
        self._wait_mark(self._revocations, user_id)

    def _wait_mark(self, marks: dict[UUID, int], user_id: UUID) -> None:
        if self.head is not None:
            return self._wait_head(marks.get(user_id))
        target = marks.get(user_id)
        if target is None:
            return
        if self.lane.wait_for(target, self.wait_seconds):
            with self._lock:
                if marks.get(user_id) == target:
                    del marks[user_id]
        else:
            log.warning("read models are behind position %s; answering from them", target)

    def wait_latest(self) -> None:
        """Wait for every command this process saved (a query that belongs to no user, such
        as a public share link, which must die the moment its owner revokes it)."""
        if self.head is not None:
            return self._wait_head(self._latest or None)
        self.wait_for(self._latest or None)

    def _wait_head(self, own: int | None) -> None:
        """Several processes: wait for the head this request already found covered and for
        this process's own command `own`; a request that has not looked yet reads the head."""
        current = _request.get()
        if current is None or current.covered is None:
            seen = current.seen if current is not None else None
            head = seen if seen else self.head()  # type: ignore[misc]  # what its check read
            self.wait_for(max(head, own or 0))
            if current is not None:
                current.covered = head
            return
        if own is not None and own > current.covered:
            self.wait_for(own)

    def wait_for(self, position: int | None) -> None:
        """Wait for a position itself (a query that follows a command of any user)."""
        if position is not None and not self.lane.wait_for(position, self.wait_seconds):
            log.warning("read models are behind position %s; answering from them", position)

    def _forget_reached(self) -> None:
        reached = self.lane.status.position
        for marks in (self._marks, self._revocations):
            for user_id in [u for u, p in marks.items() if p <= reached]:
                del marks[user_id]
