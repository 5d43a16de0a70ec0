"""The NATS relay draining a backlog, against publishing the same messages straight to
JetStream with nats-py (500 in flight, acks awaited): what the relay costs beyond the
publishing itself (reading and decoding the log, mapping, tracking its position).

The relay runs as production runs it: a lane of the processing runner handing it batches
(timed until every ack is in and the position tracked). `--catch-up` also times
`NatsRelay.catch_up` (the relay on its own, as `run_forever` drives it).

Both publish the same number of messages of the same sizes into fresh streams on the
machine's NATS server, in the same run; medians of 3.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nats  # noqa: E402
from tests.conftest import FastHasher  # noqa: E402
from tests.support.backends import postgres_settings  # noqa: E402
from tests.support.history import make_history  # noqa: E402

from sora2.adapters.nats.relay import NatsRelay  # noqa: E402
from sora2.adapters.nats.relay_processor import RelayProcessor  # noqa: E402
from sora2.application.processing.log_reader import LogReader  # noqa: E402
from sora2.application.processing.runner import Lane  # noqa: E402
from sora2.bootstrap import bootstrap  # noqa: E402

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
USERS = 300  # about 15 events each
ROUNDS = 3
IN_FLIGHT = 500


def bench_relay(sora2, stream: str, prefix: str) -> NatsRelay:  # noqa: ANN001
    """The relay as `sora2 serve` builds it, publishing pages of IN_FLIGHT to `stream`."""
    return NatsRelay(
        sora2.log,
        sora2.log.factory.tracking_recorder(),
        NATS_URL,
        stream,
        subject_prefix=prefix,
        name=f"bench-{stream}",
        page_size=IN_FLIGHT,
    )


def lane_rate(sora2, stream: str, prefix: str) -> tuple[float, int]:  # noqa: ANN001
    relay = bench_relay(sora2, stream, prefix)
    processor = RelayProcessor(relay)
    lane = Lane(processor, LogReader(sora2.log), batch_size=relay.page_size)
    processor.start()
    try:
        started = time.perf_counter()
        published = lane.catch_up()
        processor.settle()  # every ack in, the position tracked
        elapsed = time.perf_counter() - started
        assert relay.position == sora2.log.position
        return published / elapsed, published
    finally:
        processor.close()


async def relay_rate(sora2, stream: str, prefix: str) -> tuple[float, int]:  # noqa: ANN001
    relay = bench_relay(sora2, stream, prefix)
    await relay.start()
    try:
        started = time.perf_counter()
        published = await relay.catch_up()
        return published / (time.perf_counter() - started), published
    finally:
        await relay.close()


async def raw_rate(messages: list[tuple[str, bytes]], stream: str, prefix: str) -> float:
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream(publish_async_max_pending=IN_FLIGHT)
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
    try:
        started = time.perf_counter()
        acks = [
            await js.publish_async(f"{prefix}.{subject}", payload, headers={"Nats-Msg-Id": f"{i}"})
            for i, (subject, payload) in enumerate(messages)
        ]
        await js.publish_async_completed()
        for ack in acks:  # every one stored: a refused publish is no baseline
            await ack
        return len(messages) / (time.perf_counter() - started)
    finally:
        await js.delete_stream(stream)
        await nc.close()


async def drop(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def main() -> None:
    with_catch_up = "--catch-up" in sys.argv
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    with postgres_settings(folder, VIDEO_JOBS="off") as settings:
        sora2 = bootstrap(settings, hasher=FastHasher())
        try:
            make_history(sora2, USERS)
            ours, alone, theirs, events = [], [], [], 0
            for _ in range(ROUNDS):
                tag = uuid.uuid4().hex[:8]
                stream, prefix = f"BENCH_{tag}", f"bench{tag}"
                rate, events = lane_rate(sora2, stream, prefix)
                ours.append(rate)
                messages = asyncio.run(published_messages(stream))
                asyncio.run(drop(stream))
                theirs.append(asyncio.run(raw_rate(messages, f"RAW_{tag}", f"raw{tag}")))
                if with_catch_up:
                    stream = f"ALONE_{tag}"
                    alone.append(asyncio.run(relay_rate(sora2, stream, f"alone{tag}"))[0])
                    asyncio.run(drop(stream))
        finally:
            sora2.close()
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(
        f"NATS relay, backlog of {events:,} events on PostgreSQL: "
        f"{statistics.median(ours):,.0f} events/s; nats-py JetStream publish, {IN_FLIGHT} in "
        f"flight: {statistics.median(theirs):,.0f} msgs/s; ratio {ratio:.2f}x "
        f"(medians of {ROUNDS}, load average {os.getloadavg()[0]:.1f})"
    )
    if alone:
        print(
            f"  NatsRelay.catch_up alone: {statistics.median(alone):,.0f} events/s, ratio "
            f"{statistics.median(alone) / statistics.median(theirs):.2f}x"
        )


async def published_messages(stream: str) -> list[tuple[str, bytes]]:
    """What the relay published (subject after the prefix, and body), to publish again."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        sub = await js.pull_subscribe(">", stream=stream)
        out: list[tuple[str, bytes]] = []
        while len(out) < info.state.messages:
            for msg in await sub.fetch(500, timeout=10):
                out.append((msg.subject.split(".", 1)[1], msg.data))  # without the prefix
                await msg.ack()
        return out
    finally:
        await nc.close()


if __name__ == "__main__":
    main()
