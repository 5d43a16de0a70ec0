"""The NATS relay: publishes every stored domain event to JetStream, reading the log as its outbox.

Commands only write the log; this follower publishes afterwards, so a slow or absent NATS
never blocks or loses a command. It publishes a page, awaits the acks, then records its
position (eventsourcing's tracking table, under its own follower name). A crash in between
publishes the page again on restart, and JetStream's duplicate window drops the repeats by
`Nats-Msg-Id` (the event id); and each message carries its log position, so a restarted relay
first moves its position up to the stream's last message: consumers see each event once, even
after a restart outside the duplicate window.

Order: a page is pipelined on one connection (hundreds of acks in flight), and every message
but the first names its predecessor (`Nats-Expected-Last-Msg-Id`), so JetStream refuses to
store an event after a gap: a lost publish can never let a later event overtake it. The stream
holds the events in log order, so in log order per aggregate too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from sora2.application.event_catalog import public_message
from sora2.application.event_log import EventLog
from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.processor import Stored

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

_json = msgspec.json.Encoder()


class RelayError(Exception):
    """JetStream did not store part of a page; the rest is published on the next run."""


@dataclass(frozen=True)
class Outgoing:
    """One event ready to publish: where it sits in the log, and what goes on the wire."""

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
    ) -> None:
        self.log = log
        self.reader = LogReader(log)
        self.tracking_recorder = tracking_recorder
        self.nats_url = nats_url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.name = name
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.duplicate_window = duplicate_window
        self._nc: NATS | None = None  # set once connected and the stream is ready
        # Published and acked but not yet tracked (the database failed): tracked first on the
        # next run, so a database outage longer than the duplicate window republishes nothing.
        self._untracked: int | None = None

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
        except BaseException:  # failed or cancelled: leave no half-open client behind
            await _quietly_close(nc)
            raise
        self._nc = nc

    async def close(self) -> None:
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
        """Publish the next page of events after our position; how many were published.

        Raises (after tracking what JetStream did accept) if part of the page was refused or
        not acknowledged in time; calling again publishes the rest.
        """
        self._connection()
        page = await asyncio.to_thread(self._read_page)
        return await self._publish_page(page)

    async def publish_stored(self, batch: list[Stored]) -> int:
        """Publish events the processing runner read (right after our position)."""
        if self._nc is None:
            await self.start()  # may move our position up to what the stream already holds
            done = await asyncio.to_thread(lambda: self.position)
            batch = [stored for stored in batch if stored.position > done]
        return await self._publish_page([self._outgoing(stored) for stored in batch])

    async def _publish_page(self, page: list[Outgoing]) -> int:
        nc = self._connection()
        if self._untracked is not None:
            await asyncio.to_thread(self._track, self._untracked)
        if not page:
            return 0
        accepted, refusal = await self._publish(nc, page)
        if accepted:
            self._untracked = page[accepted - 1].position
            await asyncio.to_thread(self._track, self._untracked)
        if refusal is not None:
            raise RelayError(
                f"JetStream accepted {accepted} of {len(page)} events "
                f"(positions {page[0].position}..{page[-1].position}): {refusal}"
            )
        return len(page)

    async def catch_up(self) -> int:
        """Publish every event stored so far; how many."""
        published = 0
        while (count := await self.run_once()) > 0:
            published += count
            if count < self.page_size:
                break
        return published

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Follow the log until `stop` is set. Failures are logged and retried with back-off:
        NATS or the database being away must never take the server down."""
        backoff = self.poll_interval
        while not stop.is_set():
            try:
                if self._nc is None and not await _unless_stopped(self.start(), stop):
                    return
                published = await self.run_once()
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

    def _read_page(self) -> list[Outgoing]:
        """The next page, decoded and mapped (runs in a thread: it reads the database)."""
        return [self._outgoing(s) for s in self.reader.read(self.position, self.page_size)]

    def _outgoing(self, stored: Stored) -> Outgoing:
        kind, payload = public_message(stored.event)
        return Outgoing(
            stored.position,
            payload["eventId"],
            kind.subject(self.subject_prefix),
            _json.encode(payload),  # UTF-8, compact: what json.dumps(ensure_ascii=False) gives
        )

    async def _publish(self, nc: NATS, page: list[Outgoing]) -> tuple[int, str | None]:
        """Pipeline the page in log order; how many leading events were stored, and why not more.

        This is `js.publish` (a request whose reply is the ack) with the page in flight at
        once. It is not `js.publish_async`: in nats-py 2.16 that leaves the future pending
        when JetStream answers with an error, so one refusal would cost the whole ack timeout.
        The first event of a page expects nothing: its predecessor was acked before our
        position moved past it (by us or another relay).
        """
        inbox = nc.new_inbox()
        loop = asyncio.get_running_loop()
        acks = [loop.create_future() for _ in page]

        async def on_ack(msg: Msg) -> None:
            index = int(msg.subject.rsplit(".", 1)[1])
            if not acks[index].done():
                acks[index].set_result(_refusal(msg))

        subscription = await nc.subscribe(f"{inbox}.*", cb=on_ack)
        failure: str | None = None
        sent = 0
        try:
            previous: str | None = None
            for message in page:
                headers = {
                    "Nats-Msg-Id": message.msg_id,
                    "Nats-Expected-Stream": self.stream,
                    POSITION_HEADER: str(message.position),
                }
                if previous is not None:
                    headers["Nats-Expected-Last-Msg-Id"] = previous
                await nc.publish(
                    message.subject, message.payload, reply=f"{inbox}.{sent}", headers=headers
                )
                previous = message.msg_id
                sent += 1
        except Exception as exc:  # disconnected, buffer full: the sent ones may still be acked
            failure = f"publishing failed: {exc!r}"
        try:
            if sent:
                await asyncio.wait(acks[:sent], timeout=self.ack_timeout)
        finally:
            await _quietly(subscription.unsubscribe())
        for accepted, ack in enumerate(acks[:sent]):
            if not ack.done():
                return accepted, f"no ack within {self.ack_timeout}s"
            if (refusal := ack.result()) is not None:
                return accepted, refusal
        return sent, failure

    def _track(self, position: int) -> None:
        try:
            self.tracking_recorder.insert_tracking(Tracking(self.name, position))
        except IntegrityError:
            pass  # another relay already recorded this position or a later one
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


def _refusal(ack: Msg) -> str | None:
    """Why JetStream refused a publish, from its reply; None if it stored (or deduplicated) it."""
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
