"""The processing runner: one per process, it feeds every processor whole saves from the log.

Each processor has a lane: a thread that reads the log from the processor's own position
and hands it batches that end at a save boundary (what one read returned: committed saves
are whole; or a full page while it catches up a long backlog: a processor that asks for it
gets the next page read in a thread meanwhile, `read_ahead.py`). Lanes are independent, so a
NATS outage never holds up the read models. Commands of this process wake the lanes at
once (`poke`); writes of other processes are seen on the next look at the log (`poll`).

Queries that must see a command's effect wait on a lane's position (`Lane.wait_for`): a
condition the lane signals, with a bound; nothing in the request path takes a lock the
lane holds while it works.

With several processes on one log, one process leads each shared lane (`leadership.py`):
the others' lanes read nothing and move with the leader's announcements.

A batch that fails is retried event by event, so whatever precedes a bad event is applied;
the bad one leaves its lane stuck at its position (logged with the event's type, shown by
`/ready`), retried with back-off, while every other lane and every command go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sora2.application.event_log import EventLog
from sora2.application.processing.leadership import Announcement, Leadership
from sora2.application.processing.log_reader import LogReader, Undecodable
from sora2.application.processing.processor import PositionMoved, Processor, Stored
from sora2.application.processing.read_ahead import ReadAhead

log = logging.getLogger("sora2.processing")

BATCH_SIZE = 1000  # events per transaction while catching up a backlog
MAX_BACKOFF = 30.0
FOLLOW_SECONDS = 1.0  # a follower's look at the position and try for the lead


@dataclass(frozen=True)
class Stuck:
    position: int
    topic: str
    error: str


@dataclass(frozen=True)
class LaneStatus:
    name: str
    position: int
    stuck: Stuck | None
    leading: bool = True


class Lane:
    def __init__(
        self,
        processor: Processor,
        reader: LogReader,
        batch_size: int = BATCH_SIZE,
        poll: float = 0.1,
        shared: bool = True,
    ) -> None:
        """`shared`: one process applies this lane for all (the read models, the relay);
        else every process runs its own (a job dispatch hands jobs to its own process)."""
        self.processor = processor
        self.reader = reader
        self.batch_size = batch_size
        self.poll = poll
        self.shared = shared
        self.leadership = Leadership()  # the runner's, once added to one
        self.leading = True
        self._told_stuck = False  # the last announcement said stuck: say when it is not
        self.name = processor.name
        self.stuck: Stuck | None = None
        self._position = 0
        self._committed: int | None = None  # the processor's position as this lane left it
        self._moved = threading.Condition()
        self._wake = threading.Event()
        self._step_lock = threading.Lock()  # the lane thread and a caller's catch_up()
        self._thread: threading.Thread | None = None
        self._ahead = ReadAhead(self._read) if processor.reads_ahead else None

    # --- what callers see -------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The processor's committed position (read from its store)."""
        self._advance_to(self.processor.position())
        return self._position

    @property
    def status(self) -> LaneStatus:
        return LaneStatus(self.name, self._position, self.stuck, self.leading)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_for(self, position: int | None, timeout: float = 5.0) -> bool:
        """Whether the lane reached `position` within `timeout` seconds. Without a running
        lane thread (CLI, tests on a bare container) the caller catches up itself."""
        if position is None or self._position >= position:
            return True
        if not self.running:
            self.catch_up()
            return self._position >= position
        if self.leading:  # a follower's position moves with the leader's announcements
            self._wake.set()
        with self._moved:
            return self._moved.wait_for(lambda: self._position >= position, timeout)

    def catch_up(self) -> int:
        """Process everything up to the head, in the caller's thread; how many events."""
        total = 0
        while (count := self.step()) > 0:
            total += count
        return total

    def poke(self) -> None:
        self._wake.set()

    def heard(self, announcement: Announcement) -> None:
        """The leader's announcement (a follower takes it; a leader knows better)."""
        if self.leading:
            return
        self._advance_to(announcement.position)
        stuck = announcement.stuck_position
        self.stuck = (
            Stuck(stuck, announcement.stuck_topic, announcement.stuck_error) if stuck else None
        )

    # --- the work ---------------------------------------------------------------------------

    def step(self) -> int:
        """One batch: how many events this lane applied (0 when caught up or stuck)."""
        with self._step_lock:
            for _ in range(10):  # another process applying the same events: follow it
                try:
                    return self._step()
                except PositionMoved:
                    self._committed = None  # read where it got to, and go on from there
            return 0

    def _step(self) -> int:
        self.processor.check()
        if self._committed is None:
            self._committed = self.processor.position()
        after = self._committed
        self._advance_to(after)
        if self.stuck is not None and after >= self.stuck.position:
            self.stuck = None  # another process got past it
        try:
            batch = self._ahead.take(after) if self._ahead is not None else None
            if batch is None:
                batch = self._read(after)
        except Undecodable as bad:
            self._stick(Stuck(bad.position, bad.topic, bad.error))
            return 0
        if self.stuck is not None and not self.stuck.topic:
            self.stuck = None  # the store answers again
        if not batch:
            return 0
        if (
            self._ahead is not None
            and len(batch) == self.batch_size  # a backlog: more to come
            and threading.current_thread() is self._thread  # joined when the lane stops
        ):
            self._ahead.start(batch[-1].position)
        return self._process(after, batch)

    def _read(self, after: int) -> list[Stored]:
        # One statement reads a consistent set of committed saves, each whole: so a page
        # shorter than the limit ends at a save boundary. (A full page is a backlog being
        # caught up; it ends where the limit cut it.)
        if self.processor.reads_records:
            return self.reader.read_records(after, self.batch_size)
        return self.reader.read(after, self.batch_size)

    def _process(self, after: int, batch: Sequence[Stored]) -> int:
        try:
            self.processor.process(after, batch)
        except PositionMoved:
            raise
        except Exception as error:
            if len(batch) == 1:
                self._stick(Stuck(batch[0].position, batch[0].topic, _brief(error)))
                return 0
            return self._process_one_by_one(after, batch)
        self._committed = batch[-1].position
        self._applied(batch[-1].position)
        return len(batch)

    def _process_one_by_one(self, after: int, batch: Sequence[Stored]) -> int:
        """Find the event that fails: apply what precedes it, and stop there."""
        done = 0
        for stored in batch:
            try:
                self.processor.process(after, [stored])
            except PositionMoved:
                if done:
                    return done
                raise
            except Exception as error:
                self._stick(Stuck(stored.position, stored.topic, _brief(error)))
                return done
            after = self._committed = stored.position
            self._applied(after)
            done += 1
        return done

    def _applied(self, position: int) -> None:
        if self.stuck is not None and position >= self.stuck.position:
            log.info("%s moved past position %s", self.name, self.stuck.position)
            self.stuck = None
        self._advance_to(position)

    def _advance_to(self, position: int) -> None:
        if position > self._position:
            with self._moved:
                self._position = position
                self._moved.notify_all()

    def _stick(self, stuck: Stuck) -> None:
        if self.stuck != stuck:
            log.error(
                "%s is stuck at position %s (%s): %s",
                self.name,
                stuck.position,
                stuck.topic,
                stuck.error,
            )
        self.stuck = stuck

    # --- the thread -------------------------------------------------------------------------

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(stop,), name=f"lane:{self.name}", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
        if self._ahead is not None:  # its read must end before the store closes
            self._ahead.finish(max(0.0, deadline - time.monotonic()))

    def _run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            if not self._leads():
                self._follow()
                stop.wait(FOLLOW_SECONDS)
                continue
            self._wake.clear()
            try:
                count = self.step()
            except Exception as error:  # the database is away: the lane waits, then retries
                self._stick(Stuck(self._position + 1, "", _brief(error)))
                count = 0
            if count or self.stuck is not None or self._told_stuck:
                self._announce()
            if self.stuck is not None:
                # a poke retries at once (if the processor allows it); else back off
                (self._wake if self.processor.retry_on_poke else stop).wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 1.0
            if count < self.batch_size:
                # a short page ended at the head as it was read: nothing to read again until
                # a command pokes (a poke during the step already woke us) or the next poll
                self._wake.wait(self.poll)

    # --- leading and following -------------------------------------------------------------

    def _leads(self) -> bool:
        if not self.shared:
            return True
        try:
            leading = self.leadership.leads(self.name)
        except Exception:  # the database is away: step, and be stuck where it shows
            leading = True
        if leading and not self.leading:
            log.info("%s: this process leads it now", self.name)
            self._committed = None  # read where the last leader left it
        self.leading = leading
        return leading

    def _follow(self) -> None:
        """Between announcements (one may be lost, a leader may die between two), read the
        position itself."""
        try:
            self._advance_to(self.processor.position())
        except Exception:  # the database is away: the next look tries again
            pass

    def _announce(self) -> None:
        if not self.shared:
            return
        stuck = self.stuck
        self._told_stuck = stuck is not None
        self.leadership.announce(
            Announcement(
                self.name,
                self._position,
                stuck.position if stuck else 0,
                stuck.topic if stuck else "",
                stuck.error if stuck else "",
            )
        )


class ProcessingRunner:
    """The lanes of one process, started by `sora2 serve` and `sora2 worker`."""

    def __init__(
        self, event_log: EventLog, lanes: Sequence[Lane], leadership: Leadership | None = None
    ) -> None:
        self.leadership = leadership or Leadership()
        self._stop = threading.Event()
        self._started = False
        self.lanes: dict[str, Lane] = {}
        for lane in lanes:
            self.add(lane)
        event_log.on_commit(lambda position: self.poke())

    def add(self, lane: Lane) -> None:
        lane.leadership = self.leadership
        self.lanes[lane.name] = lane
        if self._started:
            lane.start(self._stop)

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.leadership.listen(self._heard, self.poke, self._stop)
        for lane in self.lanes.values():
            lane.start(self._stop)

    def _heard(self, announcement: Announcement) -> None:
        if (lane := self.lanes.get(announcement.lane)) is not None:
            lane.heard(announcement)

    def poke(self) -> None:
        for lane in self.lanes.values():
            lane.poke()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.poke()
        deadline = time.monotonic() + timeout
        for lane in self.lanes.values():
            lane.join(max(0.0, deadline - time.monotonic()))
        self.leadership.close()

    def status(self) -> list[LaneStatus]:
        return [lane.status for lane in self.lanes.values()]


def _brief(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"
