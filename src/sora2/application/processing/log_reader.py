"""Reading the log in pages of decoded events: the one way every follower reads it."""

from __future__ import annotations

from dataclasses import dataclass

from sora2.application.event_log import EventLog
from sora2.application.processing.processor import Stored


@dataclass(frozen=True)
class Undecodable(Exception):
    """A stored event that cannot be turned back into a domain event."""

    position: int
    topic: str
    error: str

    def __str__(self) -> str:
        return f"event {self.position} ({self.topic}) cannot be decoded: {self.error}"


class LogReader:
    def __init__(self, log: EventLog) -> None:
        self.log = log

    def head(self) -> int:
        """The last position in the log. Saves commit whole and one at a time, so the head
        is always a save boundary."""
        return self.log.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int, up_to: int | None = None) -> list[Stored]:
        """Up to `limit` events after position `after` (and not past `up_to`), decoded.

        Stops before the first event that cannot be decoded; raises Undecodable if that is
        the very first one, so the caller can report exactly where it is stuck.
        """
        if up_to is None:
            records = self.read_records(after, limit)
        else:
            notifications = self.log.recorder.select_notifications(
                start=after + 1, limit=limit, stop=up_to
            )
            records = [Stored(n.id, n.topic, n) for n in notifications]
        to_domain_event = self.log.mapper.to_domain_event
        events: list[Stored] = []
        for record in records:
            try:
                domain_event = to_domain_event(record.event)
            except Exception as error:
                if events:
                    return events
                raise Undecodable(record.position, record.topic, _brief(error)) from None
            events.append(Stored(record.position, record.topic, domain_event))
        return events

    def read_records(self, after: int, limit: int) -> list[Stored]:
        """Up to `limit` events after position `after` as the log stores them (the record in
        `Stored.event`: a `Notification`, or a `Record` where the recorder reads those
        cheaper), for a processor that reads the stored JSON itself."""
        select_records = getattr(self.log.recorder, "select_records", None)
        if select_records is not None:
            return select_records(after, limit)
        notifications = self.log.recorder.select_notifications(start=after + 1, limit=limit)
        return [Stored(n.id, n.topic, n) for n in notifications]


def _brief(error: Exception) -> str:
    """The error's kind and a short message: no stored content reaches the log lines."""
    return f"{type(error).__name__}: {str(error)[:160]}"
