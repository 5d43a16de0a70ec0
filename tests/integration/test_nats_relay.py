"""The NATS relay against the real JetStream server: every stored event arrives once, in order.

Each test has its own stream and subject prefix (deleted afterwards) and reads what was
published with a real pull consumer, so duplicates or gaps would show as extra or missing
messages, not just as a count.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import OutboundBufferLimitError
from nats.js.api import DiscardPolicy, StreamConfig

from sora2.adapters.nats import relay as relay_module
from sora2.adapters.nats.frames import write
from sora2.adapters.nats.relay import NatsRelay, RelayError, relay_from_settings
from sora2.adapters.nats.relay_processor import RelayProcessor
from sora2.application.event_catalog import public_message
from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.runner import Lane
from sora2.bootstrap import Sora2, bootstrap
from sora2.config import Settings
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.users.user import User
from tests.conftest import FastHasher
from tests.support.backends import postgres_settings, sqlite_settings

pytestmark = pytest.mark.nats

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


@dataclass(frozen=True)
class Names:
    stream: str
    prefix: str


@dataclass(frozen=True)
class Received:
    subject: str
    msg_id: str
    payload: dict[str, Any]
    raw: bytes


@pytest.fixture
def names() -> Iterator[Names]:
    token = uuid.uuid4().hex[:12]
    names = Names(stream=f"T{token}", prefix=f"t{token}")
    yield names
    asyncio.run(_delete_stream(names.stream))


def container(settings: Settings) -> Sora2:
    sora2 = bootstrap(settings, hasher=FastHasher())
    sora2.jobs.shutdown()  # no renders: the events are the ones the test's commands make
    return sora2


@pytest.fixture
def sora2(tmp_path: Path) -> Iterator[Sora2]:
    app = container(sqlite_settings(tmp_path))
    try:
        yield app
    finally:
        app.close()


def make_relay(sora2: Sora2, names: Names, **options: Any) -> NatsRelay:
    return NatsRelay(
        sora2.log,
        options.pop("tracking_recorder", None) or sora2.log.factory.tracking_recorder(),
        NATS_URL,
        names.stream,
        subject_prefix=names.prefix,
        **options,
    )


def buy_and_render(sora2: Sora2, name: str) -> uuid.UUID:
    """Register, buy 50 credits, request a video: every kind of money movement."""
    user_id = sora2.accounts.register(f"{name}@example.com", name, "password123").user.id
    order = sora2.orders.create(user_id, 50, "STRIPE")
    assert sora2.orders.confirm_payment(order.id, f"ref-{name}")
    sora2.videos.request(user_id, "a cat surfing a wave", 5, "16:9")
    return user_id


def stored(sora2: Sora2) -> list[tuple[str, str]]:
    """(subject suffix, event id) of every stored event, in log order."""
    notifications = sora2.log.recorder.select_notifications(start=1, limit=100_000)
    result = []
    for notification in notifications:
        kind, payload = public_message(sora2.log.mapper.to_domain_event(notification))
        result.append((kind.type, payload["eventId"]))
    return result


async def read_stream(names: Names) -> list[Received]:
    """Everything the stream holds, through an ephemeral pull consumer, in stream order."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        subscription = await js.pull_subscribe(f"{names.prefix}.>", stream=names.stream)
        received: list[Received] = []
        while True:
            try:
                batch = await subscription.fetch(200, timeout=0.5)
            except TimeoutError:  # nats-py raises both its own and asyncio's
                return received
            for msg in batch:
                received.append(
                    Received(
                        msg.subject, msg.headers["Nats-Msg-Id"], json.loads(msg.data), msg.data
                    )
                )
                await msg.ack()
    finally:
        await nc.close()


async def stream_messages(names: Names) -> int:
    nc = await nats.connect(NATS_URL)
    try:
        return (await nc.jetstream().stream_info(names.stream)).state.messages
    finally:
        await nc.close()


async def _delete_stream(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


def assert_log_order_once(received: list[Received], expected: list[tuple[str, str]], prefix: str):
    assert [(r.subject, r.msg_id) for r in received] == [
        (f"{prefix}.{kind}", msg_id) for kind, msg_id in expected
    ]
    assert all(r.msg_id == r.payload["eventId"] for r in received)


# --- the basic flow, on each backend ----------------------------------------------------------


async def publish_and_check(sora2: Sora2, names: Names) -> None:
    user_id = buy_and_render(sora2, "alice")
    expected = stored(sora2)
    relay = make_relay(sora2, names)
    await relay.start()
    try:
        assert await relay.catch_up() == len(expected)
        assert await relay.run_once() == 0  # nothing new: nothing published
    finally:
        await relay.close()

    received = await read_stream(names)
    assert_log_order_once(received, expected, names.prefix)
    # read straight from the stored JSON, the bytes are those of the decoded events
    decoded = LogReader(sora2.log).read(0, 100_000)
    assert [r.raw for r in received] == [relay.outgoing(s).payload for s in decoded]
    subjects = {r.subject.removeprefix(f"{names.prefix}.") for r in received}
    assert {
        "user.registered",
        "claim.made",
        "credits.opened",
        "credits.rewarded",
        "session.started",
        "order.created",
        "order.paid",
        "credits.recharged",
        "video.requested",
        "credits.consumed",
    } <= subjects

    consumed = next(r.payload for r in received if r.subject.endswith(".credits.consumed"))
    assert consumed["type"] == "credits.consumed"
    assert consumed["aggregateId"] == str(CreditLedger.create_id(user_id))
    assert consumed["timestamp"].endswith("Z") and isinstance(consumed["version"], int)
    assert consumed["data"]["userId"] == str(user_id)
    assert consumed["data"]["amount"] == 5 and consumed["data"]["balance"] == 55
    registered = next(r for r in received if r.subject.endswith(".user.registered"))
    assert registered.payload["data"] == {
        "email": "alice@example.com",
        "username": "alice",
        "role": "USER",
    }
    password_hash = sora2.log.load(User, user_id).password_hash
    assert all(password_hash.encode() not in r.raw for r in received)
    assert all(b"passwordHash" not in r.raw and b"tokenId" not in r.raw for r in received)


def test_every_stored_event_arrives_once_in_log_order(sora2: Sora2, names: Names) -> None:
    asyncio.run(publish_and_check(sora2, names))


@pytest.mark.postgres
def test_every_stored_event_arrives_once_in_log_order_on_postgres(
    tmp_path: Path, names: Names
) -> None:
    with postgres_settings(tmp_path) as settings:
        app = container(settings)
        try:
            asyncio.run(publish_and_check(app, names))
        finally:
            app.close()


# --- crashes and restarts ---------------------------------------------------------------------


def test_a_crash_before_tracking_publishes_nothing_twice(
    sora2: Sora2, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    buy_and_render(sora2, "bob")
    expected = stored(sora2)
    tracking = sora2.log.factory.tracking_recorder()
    real_insert = tracking.insert_tracking
    failures = []

    def crash_once(position: Any) -> None:
        if not failures:
            failures.append(position)
            raise RuntimeError("the process died before recording its position")
        real_insert(position)

    monkeypatch.setattr(tracking, "insert_tracking", crash_once)

    async def scenario() -> None:
        first = make_relay(sora2, names, tracking_recorder=tracking)
        await first.start()
        with pytest.raises(RuntimeError):
            await first.run_once()
        await first.close()  # "crashed": published, never tracked
        assert await stream_messages(names) == len(expected)
        assert tracking.max_tracking_id(first.name) is None

        restarted = make_relay(sora2, names, tracking_recorder=tracking)
        await restarted.start()  # reads how far the stream got
        try:
            assert restarted.position == sora2.log.position
            assert await restarted.catch_up() == 0  # nothing published twice
        finally:
            await restarted.close()
        assert await stream_messages(names) == len(expected)

    asyncio.run(scenario())
    assert failures
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


def test_a_restart_after_the_duplicate_window_still_publishes_nothing_twice(
    sora2: Sora2, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    buy_and_render(sora2, "dan")
    expected = stored(sora2)
    tracking = sora2.log.factory.tracking_recorder()
    monkeypatch.setattr(tracking, "insert_tracking", lambda position: None)  # never tracks

    async def scenario() -> None:
        first = make_relay(sora2, names, tracking_recorder=tracking, duplicate_window=1.0)
        await first.start()
        await first.run_once()
        await first.close()
        await asyncio.sleep(1.5)  # JetStream has forgotten the message ids by now
        monkeypatch.undo()
        restarted = make_relay(sora2, names, tracking_recorder=tracking, duplicate_window=1.0)
        await restarted.start()
        try:
            assert await restarted.catch_up() == 0
        finally:
            await restarted.close()

    asyncio.run(scenario())
    assert await_count(names) == len(expected)
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


def await_count(names: Names) -> int:
    return asyncio.run(stream_messages(names))


def test_a_restarted_relay_resumes_after_its_tracked_position(sora2: Sora2, names: Names) -> None:
    buy_and_render(sora2, "carol")
    first_batch = len(stored(sora2))

    async def run(page_size: int) -> int:
        relay = make_relay(sora2, names, page_size=page_size)
        await relay.start()
        try:
            return await relay.catch_up()
        finally:
            await relay.close()

    assert asyncio.run(run(page_size=4)) == first_batch  # several pages
    buy_and_render(sora2, "dave")
    expected = stored(sora2)
    assert asyncio.run(run(page_size=500)) == len(expected) - first_batch  # only the new ones
    assert asyncio.run(stream_messages(names)) == len(expected)
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


def test_a_page_jetstream_partly_refuses_is_tracked_up_to_the_refusal_and_finished_later(
    sora2: Sora2, names: Names
) -> None:
    buy_and_render(sora2, "erin")
    expected = stored(sora2)

    async def scenario() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        limited = StreamConfig(
            name=names.stream,
            subjects=[f"{names.prefix}.>"],
            duplicate_window=120.0,
            max_msgs=5,
            discard=DiscardPolicy.NEW,  # the 6th publish is refused
        )
        await js.add_stream(limited)
        relay = make_relay(sora2, names)
        await relay.start()
        try:
            with pytest.raises(RelayError, match=f"accepted 5 of {len(expected)}"):
                await relay.run_once()
            assert await asyncio.to_thread(lambda: relay.position) == 5
            await js.update_stream(limited.evolve(max_msgs=-1))
            assert await relay.catch_up() == len(expected) - 5
        finally:
            await relay.close()
            await nc.close()

    asyncio.run(scenario())
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


def test_a_page_the_connection_refuses_goes_out_whole_on_the_next_run(
    sora2: Sora2, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    buy_and_render(sora2, "fay")
    expected = stored(sora2)
    writes = []

    async def refuse_the_second(nc: Any, frames: list[bytes], payload_bytes: int) -> None:
        writes.append(len(frames))
        if len(writes) == 2:  # as when disconnected with the reconnect buffer full
            raise OutboundBufferLimitError
        await write(nc, frames, payload_bytes)

    monkeypatch.setattr(relay_module, "write", refuse_the_second)

    async def scenario() -> None:
        relay = make_relay(sora2, names, page_size=4, ack_timeout=5)
        await relay.start()
        try:
            with pytest.raises(RelayError, match="accepted 0 of 4 .*publishing failed"):
                await relay.catch_up()  # at once: no ack is awaited for what never went out
            assert await asyncio.to_thread(lambda: relay.position) == 4
            assert await relay.catch_up() == len(expected) - 4
        finally:
            await relay.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=4))
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


# --- pipelining: pages on the wire at once ----------------------------------------------------


async def read_chain(names: Names) -> list[tuple[str, str | None]]:
    """(message id, the predecessor it names) of every stored message, in stream order."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(names.stream)
        chain = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            headers = (await js.get_msg(names.stream, seq=seq)).headers or {}
            chain.append((headers["Nats-Msg-Id"], headers.get("Nats-Expected-Last-Msg-Id")))
        return chain
    finally:
        await nc.close()


def test_pages_pipelined_in_a_window_arrive_once_in_log_order_each_naming_its_predecessor(
    sora2: Sora2, names: Names
) -> None:
    buy_and_render(sora2, "hana")
    buy_and_render(sora2, "ivan")
    expected = stored(sora2)

    async def scenario() -> None:
        relay = make_relay(sora2, names, page_size=3, window=3)
        await relay.start()
        try:
            assert await relay.catch_up() == len(expected)
            assert relay.position == len(expected)  # tracked once every ack was in
        finally:
            await relay.close()

    asyncio.run(scenario())
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)
    chain = asyncio.run(read_chain(names))
    named = [(predecessor, chain[i - 1][0]) for i, (_, predecessor) in enumerate(chain) if i]
    assert all(p in (None, previous) for p, previous in named)  # never a wrong predecessor
    # pipelined: the first event of most pages names the last one of the page before it
    assert sum(p is not None for p, _ in named[2::3]) >= 1


def limited_stream(names: Names, max_msgs: int) -> StreamConfig:
    return StreamConfig(
        name=names.stream,
        subjects=[f"{names.prefix}.>"],
        duplicate_window=120.0,
        max_msgs=max_msgs,
        discard=DiscardPolicy.NEW,  # the publish after max_msgs is refused
    )


class Recording:
    """A tracking recorder that remembers every position recorded."""

    def __init__(self, real: Any) -> None:
        self.real, self.tracked = real, []

    def insert_tracking(self, tracking: Any) -> None:
        self.tracked.append(tracking.notification_id)
        self.real.insert_tracking(tracking)

    def max_tracking_id(self, name: str) -> int | None:
        return self.real.max_tracking_id(name)


class HeldFirst(Recording):
    """A tracking recorder whose first write waits until it is let go."""

    def __init__(self, real: Any) -> None:
        super().__init__(real)
        self.writing, self.let_go = threading.Event(), threading.Event()

    def insert_tracking(self, tracking: Any) -> None:
        if not self.writing.is_set():
            self.writing.set()
            assert self.let_go.wait(10)
        super().insert_tracking(tracking)


def test_the_next_page_goes_out_while_the_position_is_written(sora2: Sora2, names: Names) -> None:
    """An acknowledged page leaves the window at once: writing its position (a commit) does
    not hold the next page back, and the position never passes an unacknowledged event."""
    buy_and_render(sora2, "nora")
    expected = stored(sora2)
    tracking = HeldFirst(sora2.log.factory.tracking_recorder())

    async def scenario() -> None:
        relay = make_relay(sora2, names, tracking_recorder=tracking, page_size=3, window=1)
        await relay.start()
        try:
            catching_up = asyncio.ensure_future(relay.catch_up())
            assert await asyncio.to_thread(tracking.writing.wait, 10)
            deadline = time.monotonic() + 5
            while await stream_messages(names) <= 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert await stream_messages(names) > 3  # the second page went out meanwhile
            tracking.let_go.set()
            assert await catching_up == len(expected)
            assert relay.position == len(expected)
        finally:
            tracking.let_go.set()
            await relay.close()

    asyncio.run(scenario())
    assert tracking.tracked[0] == 3 and tracking.tracked == sorted(tracking.tracked)
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


def test_a_refusal_inside_the_window_tracks_nothing_past_it_and_later_pages_wait(
    sora2: Sora2, names: Names
) -> None:
    buy_and_render(sora2, "jack")
    buy_and_render(sora2, "kate")
    expected = stored(sora2)
    tracking = Recording(sora2.log.factory.tracking_recorder())

    async def scenario() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(limited_stream(names, 5))
        relay = make_relay(sora2, names, tracking_recorder=tracking, page_size=2, window=2)
        await relay.start()
        try:
            with pytest.raises(RelayError):  # the page of events 5 and 6
                await relay.catch_up()
            assert relay.position <= 5 and max(tracking.tracked) <= 5
            assert await stream_messages(names) == 5  # and no later page got in after the gap
            # one page at a time now, with an ack per event: how far, and why
            with pytest.raises(RelayError, match="accepted 0 of 2 .*maximum messages"):
                await relay.run_once()
            assert relay.position == 5 and max(tracking.tracked) == 5
            await js.update_stream(limited_stream(names, -1))
            assert await relay.catch_up() == len(expected) - 5
            assert relay.position == len(expected)
        finally:
            await relay.close()
            await nc.close()

    asyncio.run(scenario())
    assert tracking.tracked == sorted(tracking.tracked)
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


def test_the_relay_lane_sticks_at_a_refused_event_and_publishes_the_rest_once_in_order(
    sora2: Sora2, names: Names
) -> None:
    """The path production takes: a lane of the runner hands the relay batches, and goes
    on reading while their acks come in."""
    buy_and_render(sora2, "liam")
    buy_and_render(sora2, "mona")
    expected = stored(sora2)
    tracking = Recording(sora2.log.factory.tracking_recorder())

    async def limit(max_msgs: int, create: bool = False) -> None:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            config = limited_stream(names, max_msgs)
            await (js.add_stream(config) if create else js.update_stream(config))
        finally:
            await nc.close()

    asyncio.run(limit(5, create=True))
    relay = make_relay(sora2, names, tracking_recorder=tracking, page_size=2, window=2)
    processor = RelayProcessor(relay)
    lane = Lane(processor, LogReader(sora2.log), batch_size=2)
    try:
        lane.catch_up()
        processor.settle()
        lane.catch_up()  # finds the failure, reads again from the tracked position
        assert lane.stuck is not None and lane.stuck.position == 6
        assert "maximum messages" in lane.stuck.error
        assert relay.position == 5 and max(tracking.tracked) == 5
        assert asyncio.run(stream_messages(names)) == 5

        asyncio.run(limit(-1))
        assert lane.catch_up() == len(expected) - 5
        processor.settle()
        assert lane.stuck is None and lane.position == relay.position == len(expected)
    finally:
        processor.close()
    assert tracking.tracked == sorted(tracking.tracked)
    assert_log_order_once(asyncio.run(read_stream(names)), expected, names.prefix)


# --- running for ever -------------------------------------------------------------------------


def test_run_forever_publishes_new_events_and_stops_when_asked(sora2: Sora2, names: Names) -> None:
    async def scenario() -> None:
        relay = make_relay(sora2, names, poll_interval=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run_forever(stop))
        await asyncio.to_thread(buy_and_render, sora2, "frank")  # written while it runs
        expected = len(stored(sora2))
        for _ in range(200):
            if await asyncio.to_thread(lambda: relay.position) == sora2.log.position:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await relay.close()
        assert await stream_messages(names) == expected

    asyncio.run(scenario())


def test_run_forever_survives_nats_being_away(
    sora2: Sora2, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    buy_and_render(sora2, "gina")

    async def scenario() -> None:
        relay = NatsRelay(
            sora2.log,
            sora2.log.factory.tracking_recorder(),
            "nats://127.0.0.1:1",  # nothing listens here
            names.stream,
            subject_prefix=names.prefix,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run_forever(stop))
        deadline = time.monotonic() + 30
        while sum(r.name == "sora2.nats" for r in caplog.records) < 2:  # tried, failed, again
            assert not task.done(), "the relay gave up"
            assert time.monotonic() < deadline, "the relay never retried"
            await asyncio.sleep(0.02)
        assert not task.done()  # it failed twice and is still trying, not crashed
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await relay.close()
        assert relay.position == 0

    asyncio.run(scenario())


def test_start_widens_an_existing_stream_to_the_duplicate_window(
    sora2: Sora2, names: Names
) -> None:
    async def scenario() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(name=names.stream, subjects=["other.>"], duplicate_window=10.0)
        relay = make_relay(sora2, names)
        await relay.start()
        await relay.close()
        config = (await js.stream_info(names.stream)).config
        await nc.close()
        assert config.subjects == ["other.>", f"{names.prefix}.>"]
        assert config.duplicate_window >= 120

    asyncio.run(scenario())


def test_relay_from_settings_needs_a_nats_url(tmp_path: Path, names: Names) -> None:
    without = container(sqlite_settings(tmp_path / "a"))
    with_url = container(sqlite_settings(tmp_path / "b", NATS_URL=NATS_URL, NATS_STREAM="X"))
    try:
        assert relay_from_settings(without) is None
        relay = relay_from_settings(with_url, subject_prefix=names.prefix)
        assert relay is not None
        assert (relay.stream, relay.subject_prefix, relay.name) == (
            "X",
            names.prefix,
            "sora2/nats-relay",
        )
    finally:
        without.close()
        with_url.close()
