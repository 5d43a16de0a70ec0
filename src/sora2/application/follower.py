"""Followers read the log in order from their own tracked position.

A follower (the read models, later the NATS relay) records each event's position in the
same transaction as its effect. Several processes may follow at once: whoever records a
position first wins, the others see an IntegrityError, roll back, and move on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder

from sora2.application.event_log import EventLog


class Follower:
    def __init__(
        self,
        log: EventLog,
        name: str,
        recorder: TrackingRecorder,
        process_event: Callable[[Any, Tracking], None],
        page_size: int = 500,
    ) -> None:
        self.log = log
        self.name = name
        self.recorder = recorder
        self.process_event = process_event
        self.page_size = page_size
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        return self.recorder.max_tracking_id(self.name) or 0

    def catch_up(self) -> int:
        """Process every event recorded after our position; how many we applied."""
        applied, refused_at = 0, None
        with self._lock:
            while True:
                start = self.position + 1
                notifications = self.log.recorder.select_notifications(
                    start=start, limit=self.page_size
                )
                if not notifications:
                    return applied
                for notification in notifications:
                    domain_event = self.log.mapper.to_domain_event(notification)
                    tracking = Tracking(self.name, notification.id)
                    try:
                        self.process_event(domain_event, tracking)
                    except IntegrityError:
                        if refused_at == notification.id:  # not a rival: a real fault
                            raise
                        refused_at = notification.id
                        break  # another process got there first: re-read our position
                    applied += 1

    def wait_for(self, notification_id: int | None, timeout: float = 10.0) -> None:
        """Return once this follower has processed `notification_id` (read your writes);
        FollowerBehind if it cannot get there in time."""
        if notification_id is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            self.catch_up()
            if self.position >= notification_id:
                return
            if time.monotonic() > deadline:
                raise FollowerBehind(f"{self.name} is behind the log")
            time.sleep(0.01)


class FollowerBehind(Exception):
    """A follower did not reach a position in time (the command itself was saved)."""
