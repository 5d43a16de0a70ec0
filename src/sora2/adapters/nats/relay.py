"""The NATS relay: publishes every stored domain event to JetStream, reading the log as its outbox.

Commands only write the log; this follower publishes afterwards, so a slow or absent NATS
never blocks or loses a command. It publishes pages, and once a page's acks are all in it
records its position (eventsourcing's tracking table, under its own follower name): never past
an event JetStream has not acknowledged. A crash in between publishes those pages again on
restart, and JetStream's duplicate window drops the repeats by `Nats-Msg-Id` (the event id);
and each message carries its log position, so a restarted relay first moves its position up
to the stream's last message: consumers see each event once, even after a restart outside the
duplicate window.

Speed: publishing is pipelined. Up to `window` pages are on the wire at once (their acks
arrive on one inbox of the connection), the next page is read and mapped while the acks of
the previous ones come in, and the position is recorded in a thread meanwhile, once for all
the pages acknowledged by then. A page goes to the connection as one write of frames we
build ourselves (`frames.py`): all of it or, if the connection refuses it, none.

Order: every message but the first after an acknowledged position names its predecessor
(`Nats-Expected-Last-Msg-Id`), across pages too, so JetStream refuses to store an event after
a gap: a lost or refused publish can never let a later event overtake it, and everything
after a refusal is refused as well. The stream holds the events in log order, so in log order
per aggregate too. After a failure the relay first asks the stream how far it got, then goes
on from there one page at a time until a page goes through again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import msgspec
from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from eventsourcing.utils import resolve_topic
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from sora2.adapters.nats.frames import check_subject, hpub, write
from sora2.application.event_catalog import public_message, public_message_of_state
from sora2.application.event_log import EventLog
from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.processor import PositionMoved, Stored

if TYPE_CHECKING:
    from sora2.bootstrap import Sora2

log = logging.getLogger("sora2.nats")

RELAY_NAME = "sora2/nats-relay"
DEFAULT_PREFIX = "sora2"
# Repeats after a crash must land inside it to be dropped: keep it above the longest
# publish-then-restart gap you expect (memory cost: one id per event published in the window).
DUPLICATE_WINDOW = 120.0  # seconds
MAX_BACKOFF = 30.0
POSITION_HEADER = "Sora2-Log-Position"  # the event's notification id in the log
WINDOW = 2  # pages on the wire at once

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder().decode


class RelayError(Exception):
    """JetStream did not store part of a page; the rest is published on the next run."""


class _Page:
    """A page on the wire, and the acks asked for as they arrive (None, or why JetStream
    refused). Messages name their predecessor, so an ack for one vouches for all before it."""

    def __init__(self, outgoing: list[Outgoing], done: asyncio.Future[None]) -> None:
        self.outgoing = outgoing
        self.asked: list[int] = []  # indexes of the messages sent with a reply subject
        self.acks: dict[int, str | None] = {}
        self.sent = 0  # how many were handed to the connection
        self.waiting = 0  # asked for and not acknowledged yet
        self.all_sent = False
        self.abandoned = False  # an earlier page failed: this one's acks no longer count
        self.failure: str | None = None  # sending stopped part-way
        self.done = done  # set once every ack asked for is in, or one was a refusal

    def acked(self, index: int, refusal: str | None) -> None:
        self.acks[index] = refusal
        self.waiting -= 1
        if refusal is not None or (self.waiting == 0 and self.all_sent):
            self._finish()

    def sending_ended(self) -> None:
        self.all_sent = True
        if self.waiting == 0:
            self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def outcome(self) -> tuple[int, str | None]:
        """How many leading events JetStream is known to hold, and why not more (None: all)."""
        known = 0
        for index in self.asked:
            if index not in self.acks:
                return known, "no ack"
            if (refusal := self.acks[index]) is not None:
                return known, refusal
            known = index + 1
        if known < self.sent:
            return known, self.failure or "no ack"
        return known, self.failure


class Outgoing(NamedTuple):
    """One event ready to publish: where it sits in the log, and what goes on the wire.
    (A tuple: built for every event published, at half the cost of a frozen dataclass.)"""

    position: int
    msg_id: str
    subject: str
    payload: bytes


class NatsRelay:
    def __init__(
        self,
        log: EventLog,
        tracking_recorder: TrackingRecorder,
        nats_url: str,
        stream: str,
        subject_prefix: str = DEFAULT_PREFIX,
        name: str = RELAY_NAME,
        page_size: int = 500,
        poll_interval: float = 0.2,
        ack_timeout: float = 10.0,
        duplicate_window: float = DUPLICATE_WINDOW,
        window: int = WINDOW,
    ) -> None:
        self.log = log
        self.reader = LogReader(log)
        self.tracking_recorder = tracking_recorder
        self.nats_url = nats_url
        self.stream = stream
        self.subject_prefix = check_subject(subject_prefix)  # event types are plain words
        self.name = name
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.duplicate_window = duplicate_window
        self.window = max(1, window)
        self._nc: NATS | None = None  # set once connected and the stream is ready
        # Published and acked but not yet tracked (the database failed): tracked first on the
        # next run, so a database outage longer than the duplicate window republishes nothing.
        self._untracked: int | None = None
        # The pipeline: pages on the wire in log order, and who settles them.
        self._inbox = ""
        self._acks: Any = None  # the subscription every ack arrives on
        self._replies: dict[int, tuple[_Page, int]] = {}  # reply number -> its page and index
        self._next_reply = 0
        self._on_wire: deque[_Page] = deque()
        self._room: asyncio.Condition | None = None
        self._settler: asyncio.Task[None] | None = None
        self._sent_up_to: int | None = None  # the last position sent (None: ask the tracking)
        self._chain: str | None = None  # its message id: what the next message expects
        self._failure: BaseException | None = None  # a page failed: raised by the next call
        self._careful = False  # after a failure: one page at a time until one goes through

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and make sure the stream exists; waits until NATS answers.

        Once connected, the client reconnects by itself for ever; publishes that fail
        meanwhile are retried by `run_forever`.
        """
        if self._nc is not None:
            return
        # nats-py retries a first connection for ever, a warning a second; fail fast
        # instead, so the caller backs off (the runner's lane, `run_forever`)
        await nats_answers(self.nats_url, timeout=5)
        nc = NATS()
        try:
            await nc.connect(
                self.nats_url,
                name=self.name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                connect_timeout=5,
                error_cb=_log_nats_error,
                disconnected_cb=self._disconnected,
                reconnected_cb=_log_reconnected,
            )
            js = nc.jetstream(timeout=self.ack_timeout)
            await self._ensure_stream(js)
            await self._catch_up_with_stream(js)
            self._inbox = nc.new_inbox()
            self._acks = await nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        except BaseException:  # failed or cancelled: leave no half-open client behind
            await _quietly_close(nc)
            raise
        self._nc = nc
        self._room = asyncio.Condition()

    async def close(self) -> None:
        """Wait (a bounded time) for the pages on the wire to be acknowledged and tracked,
        then disconnect."""
        if self._settler is not None and not self._settler.done():
            await asyncio.wait([self._settler], timeout=self.ack_timeout)
            self._settler.cancel()
        self._forget_the_wire()
        nc, self._nc = self._nc, None
        if nc is not None:
            await _quietly_close(nc)

    async def ping(self, timeout: float) -> None:
        """Raise unless NATS answers (readiness): our connection if we have one, else a
        probe (the relay connects when it has its first event to publish)."""
        if self._nc is not None:
            if not self._nc.is_connected:
                raise ConnectionError("disconnected from NATS; reconnecting")
            return
        await nats_answers(self.nats_url, timeout)

    async def _disconnected(self) -> None:
        if self._nc is not None:  # not our own close()
            log.warning("NATS: disconnected; publishing resumes once reconnected")

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream, or widen an existing one to our subjects and duplicate window."""
        subjects = f"{self.subject_prefix}.>"
        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[subjects],
                    storage=StorageType.FILE,
                    duplicate_window=self.duplicate_window,
                )
            )
            log.info("created stream %s for %s", self.stream, subjects)
            return
        config = info.config
        current = list(config.subjects or [])
        if subjects in current and (config.duplicate_window or 0) >= self.duplicate_window:
            return
        await js.update_stream(
            config.evolve(
                subjects=current if subjects in current else [*current, subjects],
                duplicate_window=max(config.duplicate_window or 0, self.duplicate_window),
            )
        )
        log.info("updated stream %s for %s", self.stream, subjects)

    async def _catch_up_with_stream(self, js: JetStreamContext) -> None:
        """Move our position up to the last event the stream already holds.

        A crash after publishing but before tracking would otherwise republish that page,
        and repeats outside the duplicate window would be stored twice. Every message
        carries its log position, so the stream itself says how far we really got.
        """
        info = await js.stream_info(self.stream)
        if not info.state.messages:
            return
        last = await js.get_msg(self.stream, seq=info.state.last_seq)
        position = (last.headers or {}).get(POSITION_HEADER, "")
        if position.isdigit() and int(position) > await asyncio.to_thread(lambda: self.position):
            log.info("stream %s already holds events up to %s", self.stream, position)
            await asyncio.to_thread(self._track, int(position))

    # --- following the log -------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The last notification id published and tracked (blocking: a database read)."""
        return self.tracking_recorder.max_tracking_id(self.name) or 0

    async def run_once(self) -> int:
        """Publish the next page of events after our position and wait for its acks; how many
        were published.

        Raises (after tracking what JetStream did accept) if part of the page was refused or
        not acknowledged in time; calling again publishes the rest.
        """
        await self._ready()
        await self._settle_all()
        page = await asyncio.to_thread(self._read_page, await self._after())
        await self._send(page, sparse=False)
        await self._settle_all()
        return len(page)

    async def catch_up(self) -> int:
        """Publish every event stored so far, pipelined, and wait for the acks; how many."""
        await self._ready()
        published = 0
        while True:
            # Read in a thread: the acks of the pages on the wire come in meanwhile.
            page = await asyncio.to_thread(self._read_page, await self._after())
            await self._send(page)
            published += len(page)
            if len(page) < self.page_size:
                break
        await self._settle_all()
        return published

    async def publish_stored(self, after: int, batch: list[Outgoing]) -> int:
        """Put events the processing runner read (right after position `after`) on the wire;
        returns once they are sent, their acks are awaited in the background.

        Raises PositionMoved (after finding out from the stream how far it really got) when
        an earlier page failed, so the runner reads again from our position; and the error
        itself while the relay goes one page at a time after a failure.
        """
        if self._nc is None:
            await self.start()  # may move our position up to what the stream already holds
            done = await asyncio.to_thread(lambda: self.position)
            batch = [message for message in batch if message.position > done]
        elif self._on_wire and after != self._sent_up_to:
            await self.settled()  # not where the pipeline stands: start afresh
            self._sent_up_to = None
        if self._failure is not None:
            await self.resume()
            raise PositionMoved
        if self._careful:
            await self._recover()
            if after != await asyncio.to_thread(lambda: self.position):
                raise PositionMoved  # the stream holds more than we tracked
        await self._send(batch)
        return len(batch)

    @property
    def pipelining(self) -> bool:
        """Connected, and no failure to recover from: batches go out without waiting."""
        return self._nc is not None and not self._careful and self._failure is None

    @property
    def failed(self) -> bool:
        """Whether a page sent by `publish_stored` failed since: call `resume`, then go on
        from our position."""
        return self._failure is not None

    async def resume(self) -> None:
        """After a failure: log it, and find out from the stream how far it really got."""
        await self.settled()  # what was acked before the failure is tracked by then
        if self._failure is not None:
            failure = self._take_failure()
            log.warning("NATS relay: %s; going on from where the stream stands", failure)
        await self._recover()

    async def settled(self) -> None:
        """Until every page on the wire is settled (acknowledged and tracked, or failed)."""
        while self._settler is not None and not self._settler.done():
            await asyncio.shield(self._settler)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Follow the log until `stop` is set. Failures are logged and retried with back-off:
        NATS or the database being away must never take the server down."""
        backoff = self.poll_interval
        while not stop.is_set():
            try:
                if self._nc is None and not await _unless_stopped(self.start(), stop):
                    return
                published = await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("NATS relay: retrying in %.1fs", backoff, exc_info=True)
                await _sleep_unless_stopped(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = self.poll_interval
            if published < self.page_size:  # caught up: wait for new events
                await _sleep_unless_stopped(stop, self.poll_interval)

    # --- steps -------------------------------------------------------------------------------

    def _connection(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("call start() before publishing")
        return self._nc

    async def _ready(self) -> None:
        """Connected, and past any earlier failure: raise it once, then recover from it."""
        self._connection()
        await self._raise_failure()
        await self._recover()

    async def _after(self) -> int:
        """Where the next page starts: after what is on the wire, or our tracked position."""
        if self._sent_up_to is not None:
            return self._sent_up_to
        return await asyncio.to_thread(lambda: self.position)

    def _read_page(self, after: int) -> list[Outgoing]:
        """The page after `after`, mapped (runs in a thread: it reads the database)."""
        return self.outgoing_records(self.reader.read_records(after, self.page_size))

    def outgoing_records(self, batch: Sequence[Stored]) -> list[Outgoing]:
        """The messages of stored records: each one's JSON mapped straight to the public
        payload, or (any other case) decoded to the event first; the same bytes either way.
        A page at a time: what holds for every record is looked up once."""
        mapper = self.log.mapper
        if mapper.cipher is not None or mapper.compressor is not None:
            return [
                self.outgoing(Stored(s.position, s.topic, mapper.to_domain_event(s.event)))
                for s in batch
            ]
        classes: dict[str, type] = {}
        prefix = f"{self.subject_prefix}."
        messages = []
        for position, topic, record in batch:
            if (event_class := classes.get(topic)) is None:
                event_class = classes[topic] = resolve_topic(topic)
            payload = public_message_of_state(
                event_class,
                record.originator_id,
                record.originator_version,
                _decode(record.state),
            )
            if payload is None:
                stored = Stored(position, topic, mapper.to_domain_event(record))
                messages.append(self.outgoing(stored))
            else:
                messages.append(
                    Outgoing(
                        position,
                        payload["eventId"],
                        prefix + payload["type"],
                        _json.encode(payload),
                    )
                )
        return messages

    def outgoing(self, stored: Stored) -> Outgoing:
        kind, payload = public_message(stored.event)
        return Outgoing(
            stored.position,
            payload["eventId"],
            kind.subject(self.subject_prefix),
            _json.encode(payload),  # UTF-8, compact: what json.dumps(ensure_ascii=False) gives
        )

    async def _recover(self) -> None:
        """After a failure: track what was acked, and ask the stream how far it really got
        (an ack lost in a disconnect may hide events it stored)."""
        if self._untracked is not None and (self._settler is None or self._settler.done()):
            await asyncio.to_thread(self._track, self._untracked)
        if self._careful and not self._on_wire:
            await self._catch_up_with_stream(self._connection().jetstream(timeout=self.ack_timeout))

    async def _send(self, page: list[Outgoing], sparse: bool = True) -> None:
        """Put a page on the wire behind the ones already there (at most `window` at once).

        This is `js.publish` (a request whose reply is the ack) with the pages in flight at
        once, each page framed by us and queued as one write (`frames.py`). It is not
        `js.publish_async`: in nats-py 2.16 that leaves the future pending
        when JetStream answers with an error, so one refusal would cost the whole ack timeout.
        The first event sent while nothing is on the wire expects nothing: its predecessor
        was acked before our position moved past it (by us or another relay).

        `sparse`: only the page's last message asks for an ack. Each message names its
        predecessor, and JetStream stores none after a gap (nor a duplicate it does not
        hold), so that one ack vouches for the whole page; a refusal somewhere says only
        that the page did not go through, and the relay, one page at a time from then on
        with an ack per message, finds out from the stream how far it got and why.
        """
        if not page:
            return
        nc, room = self._connection(), self._room
        assert room is not None
        async with room:  # room on the wire, or a failure to report
            await room.wait_for(
                lambda: len(self._on_wire) < self.window or self._failure is not None
            )
        await self._raise_failure()
        loop = asyncio.get_running_loop()
        sending = _Page(page, loop.create_future())
        previous = self._chain if self._on_wire else None
        self._on_wire.append(sending)
        if self._settler is None or self._settler.done():
            self._settler = loop.create_task(self._settle_in_order())
        every = self._careful or not sparse  # else only the page's last message is acked
        last = len(page) - 1
        frames: list[bytes] = []
        payload_bytes = 0
        for index, message in enumerate(page):
            if len(message.payload) > nc.max_payload:
                sending.failure = f"publishing failed: {MaxPayloadError()!r}"
                break
            reply = ""
            if every or index == last:
                number = self._next_reply
                self._next_reply += 1
                self._replies[number] = (sending, index)
                sending.asked.append(index)
                sending.waiting += 1
                reply = f"{self._inbox}.{number}"
            expected = f"Nats-Expected-Last-Msg-Id: {previous}\r\n" if previous else ""
            headers = f"Nats-Msg-Id: {message.msg_id}\r\n{POSITION_HEADER}: {message.position}\r\n"
            frames.append(hpub(message.subject, reply, headers + expected, message.payload))
            payload_bytes += len(message.payload)
            previous = message.msg_id
        try:
            await write(nc, frames, payload_bytes)
            sending.sent = len(frames)
        except Exception as exc:  # disconnected, buffer full: none of the page went out
            for number in [n for n, (p, _) in self._replies.items() if p is sending]:
                del self._replies[number]
            sending.asked.clear()
            sending.waiting = 0
            sending.failure = f"publishing failed: {exc!r}"
        if sending.sent < len(page):  # what follows names an event the stream lacks: refused
            previous = page[-1].msg_id
        sending.sending_ended()
        if not sending.abandoned:
            self._chain = previous
            if sending.sent:
                self._sent_up_to = page[sending.sent - 1].position
        if self._careful:  # one page at a time until one goes through again
            await self._settle_all()
            self._careful = False

    async def _on_ack(self, msg: Msg) -> None:
        try:
            sending, index = self._replies.pop(int(msg.subject.rsplit(".", 1)[1]))
        except (KeyError, ValueError):
            return  # late: its page was given up on
        sending.acked(index, _refusal(msg, self.stream))

    async def _settle_in_order(self) -> None:
        """Await the pages' acks in log order; track the position once for all the pages
        acknowledged by then (in a thread, while the next pages go out); stop at a failure."""
        room = self._room
        assert room is not None
        while self._on_wire:
            oldest = self._on_wire[0]
            try:
                await asyncio.wait_for(asyncio.shield(oldest.done), self.ack_timeout)
            except TimeoutError:
                pass
            accepted, refusal = oldest.outcome()
            position = None
            while refusal is None:
                self._on_wire.popleft()
                position = oldest.outgoing[accepted - 1].position if accepted else position
                if not self._on_wire or not self._on_wire[0].done.done():
                    break
                oldest = self._on_wire[0]  # acknowledged already: tracked in the same step
                accepted, refusal = oldest.outcome()
            if refusal is not None and accepted:
                position = oldest.outgoing[accepted - 1].position
            if refusal is not None:
                self._failure = RelayError(
                    f"JetStream accepted {accepted} of {len(oldest.outgoing)} events "
                    f"(positions {oldest.outgoing[0].position}..{oldest.outgoing[-1].position}): "
                    + (f"no ack within {self.ack_timeout}s" if refusal == "no ack" else refusal)
                )
                self._forget_the_wire()  # what follows a refusal is refused too (the chain)
            if position is not None:
                if self._failure is None:
                    async with room:  # the next page goes out while the position is written
                        room.notify_all()
                try:
                    await asyncio.to_thread(self._track, position)
                except Exception as error:  # the database is away: tracked on the next call
                    self._untracked = position
                    if self._failure is None:
                        self._failure = error
                        self._forget_the_wire()
            async with room:
                room.notify_all()
            if self._failure is not None:
                return

    async def _settle_all(self) -> None:
        await self.settled()
        await self._raise_failure()

    async def _raise_failure(self) -> None:
        """Raise the failure once the settling that found it is over (what was acked before
        it tracked), and go one page at a time from then on."""
        if self._failure is not None:
            await self.settled()
            raise self._take_failure()

    def _take_failure(self) -> BaseException:
        failure, self._failure = self._failure, None
        assert failure is not None
        self._careful = True
        return failure

    def _forget_the_wire(self) -> None:
        for sending in self._on_wire:
            sending.abandoned = True
        self._on_wire.clear()
        self._replies.clear()
        self._sent_up_to = None
        self._chain = None

    def _track(self, position: int) -> None:
        try:
            self.tracking_recorder.insert_tracking(Tracking(self.name, position))
        except IntegrityError:
            pass  # another relay already recorded this position or a later one
        if self._untracked is not None and self._untracked <= position:
            self._untracked = None


async def nats_answers(url: str, timeout: float) -> None:
    """Raise ConnectionError unless a server of `url` (comma-separated) greets us with
    its INFO line within `timeout` seconds."""
    problems = []
    for server in (s.strip() for s in url.split(",") if s.strip()):
        parsed = urlsplit(server if "://" in server else f"nats://{server}")
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout=timeout
            )
            try:
                greeting = await asyncio.wait_for(reader.readline(), timeout=timeout)
            finally:
                writer.close()
            if greeting.startswith(b"INFO"):
                return
            problems.append(f"{host}:{port} is not a NATS server")
        except (TimeoutError, OSError) as error:
            problems.append(f"{host}:{port}: {type(error).__name__} {error}".strip())
    raise ConnectionError("NATS does not answer (" + "; ".join(problems) + ")")


def relay_from_settings(sora2: Sora2, subject_prefix: str = DEFAULT_PREFIX) -> NatsRelay | None:
    """The relay for this container's log, or None when NATS_URL is not set.

    The subject prefix is a parameter: the integrator reads `NATS_SUBJECT_PREFIX` in
    `config.py` (default "sora2") and passes it here.
    """
    settings = sora2.settings
    if not settings.nats_url:
        return None
    return NatsRelay(
        sora2.log,
        sora2.log.factory.tracking_recorder(),
        settings.nats_url,
        settings.nats_stream,
        subject_prefix=subject_prefix,
    )


async def _unless_stopped(work: Any, stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` is set first (then cancel it); whether it finished."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    task.result()  # raise its error, if any
    return True


async def _sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


def _refusal(ack: Msg, stream: str) -> str | None:
    """Why JetStream refused a publish, from its reply; None if our stream stored (or
    deduplicated) it. (Streams cannot share subjects: the answer names the one that has it.)"""
    data = ack.data
    if (
        not ack.headers
        and data.startswith(f'{{"stream":"{stream}",'.encode())
        and b'"error"' not in data
    ):
        return None  # `{"stream":"S","seq":7}`: the usual answer, read without parsing
    if ack.headers and ack.headers.get("Status") == "503":
        return "no stream listens on this subject"
    try:
        reply = json.loads(ack.data)
    except ValueError:
        return f"unreadable ack {ack.data[:200]!r}"
    if not isinstance(reply, dict):
        return f"unreadable ack {ack.data[:200]!r}"
    if (error := reply.get("error")) is not None:
        return f"{error.get('description', error)} (err_code {error.get('err_code')})"
    if reply.get("stream") != stream:
        return f"stored in stream {reply.get('stream')!r}, not {stream!r}"
    return None


async def _quietly_close(nc: NATS) -> None:
    await _quietly(nc.close())


async def _quietly(cleanup: Any) -> None:
    try:
        await cleanup
    except Exception:  # tidying a connection that is already gone: nothing left to save
        log.debug("NATS cleanup failed", exc_info=True)


async def _log_nats_error(error: Exception) -> None:
    log.warning("NATS: %s", error)


async def _log_reconnected() -> None:
    log.info("NATS: reconnected")
