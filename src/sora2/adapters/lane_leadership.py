"""Lane leadership on PostgreSQL: a session advisory lock per lane, LISTEN/NOTIFY for news.

The lock is held on a connection of this process's own, so it ends with the process (or
with the connection: a restarted server frees it, and whoever asks first leads). Leaders
announce on a channel of this schema; every process listens there and on the event store's
own channel, which the library notifies on each insert: a leader reads another process's
commit at once, not at its next poll.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

import psycopg

from sora2.adapters.event_store import connect_args
from sora2.application.processing.leadership import Announcement, Leadership

log = logging.getLogger("sora2.processing")

RECONNECT_SECONDS = 1.0


class PostgresLeadership(Leadership):
    def __init__(self, env: dict[str, str], events_channel: str) -> None:
        self._connect = connect_args(env)
        schema = env.get("POSTGRES_SCHEMA") or "public"
        self._schema = schema
        digest = hashlib.sha256(schema.encode()).hexdigest()[:16]
        self.channel = f"sora2_lanes_{digest}"
        self._events_channel = events_channel
        self._conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()  # the lock connection, between lane threads

    def leads(self, lane: str) -> bool:
        with self._lock:
            if lane in self._held and self._alive():
                return True
            got = self._run("SELECT pg_try_advisory_lock(hashtext(%s))", (self._key(lane),))
            if got:
                self._held.add(lane)
            return got

    def announce(self, announcement: Announcement) -> None:
        payload = json.dumps(astuple(announcement))
        with self._lock:
            try:
                self._run("SELECT pg_notify(%s, %s)", (self.channel, payload))
            except psycopg.Error:  # the followers read the position themselves meanwhile
                log.debug("announcing %s failed", announcement.lane, exc_info=True)

    def listen(
        self,
        heard: Callable[[Announcement], None],
        committed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        threading.Thread(
            target=self._listen, args=(heard, committed, stop), name="lane-news", daemon=True
        ).start()

    def close(self) -> None:
        with self._lock:
            self._drop()

    # --- the lock connection ------------------------------------------------------------

    def _key(self, lane: str) -> str:
        return f"sora2 lane {self._schema} {lane}"

    def _alive(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    def _run(self, statement: str, params: tuple[Any, ...]) -> Any:
        if not self._alive():
            self._drop()
            self._conn = psycopg.connect(**self._connect, autocommit=True, connect_timeout=3)
        assert self._conn is not None
        try:
            return self._conn.execute(statement, params).fetchone()[0]  # type: ignore[index]
        except psycopg.Error:
            self._drop()  # its locks went with it: lead again only by asking again
            raise

    def _drop(self) -> None:
        self._held.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- the news -----------------------------------------------------------------------

    def _listen(
        self,
        heard: Callable[[Announcement], None],
        committed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(**self._connect, autocommit=True, connect_timeout=3) as conn:
                    for channel in (self.channel, self._events_channel):
                        conn.execute(f'LISTEN "{channel}"')
                    while not stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            if notice.channel != self.channel:
                                committed()
                            elif (announcement := _announcement(notice.payload)) is not None:
                                heard(announcement)
            except Exception:  # the database is away: lanes poll meanwhile
                log.debug("lane news: listening failed", exc_info=True)
                stop.wait(RECONNECT_SECONDS)


def _announcement(payload: str) -> Announcement | None:
    try:
        lane, position, stuck_position, stuck_topic, stuck_error = json.loads(payload)
        return Announcement(lane, int(position), int(stuck_position), stuck_topic, stuck_error)
    except (ValueError, TypeError):  # not ours: a follower reads the position itself
        return None
