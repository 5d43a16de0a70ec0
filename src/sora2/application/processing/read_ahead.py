"""The next page of a backlog, read in a thread while the lane applies this one.

For a processor whose work is Python (the NATS relay maps and publishes), a quarter of a
lane's time catching up was waiting for the database's answer to the next read. Asked for
before the page in hand is applied, that answer comes in meanwhile. It is taken only if the
lane goes on from exactly where it ends; else it is dropped and the lane reads afresh. Either
way the page is what one read returned (whole saves, or a full page of a backlog).

The reading thread must be done before the store closes: a SQLite connection closed under a
running statement crashes the process (a segfault in CI). So the lane joins it when it stops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from sora2.application.processing.processor import Stored


class ReadAhead:
    def __init__(self, read: Callable[[int], list[Stored]]) -> None:
        self._read = read  # the page after a position
        self._after: int | None = None
        self._page: Future[list[Stored]] | None = None
        self._thread: threading.Thread | None = None

    def start(self, after: int) -> None:
        """Start reading the page after `after` (one read ahead at a time: this one)."""
        page: Future[list[Stored]] = Future()

        def read() -> None:
            try:
                page.set_result(self._read(after))
            except BaseException as error:  # raised by `take`, where the lane reads
                page.set_exception(error)

        self._after, self._page = after, page
        self._thread = threading.Thread(target=read, name="lane-read-ahead", daemon=True)
        self._thread.start()

    def take(self, after: int) -> list[Stored] | None:
        """The page read ahead after `after` (raising what reading it raised); None if none
        was read from there."""
        page, self._page = self._page, None
        if page is None or self._after != after:
            return None
        return page.result()

    def finish(self, timeout: float) -> None:
        """Wait (up to `timeout` seconds) for a read in flight, and drop its page."""
        if self._thread is not None:
            self._thread.join(timeout)
        self._page = None
