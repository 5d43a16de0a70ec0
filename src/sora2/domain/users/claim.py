"""A claim on a unique value (an email or a username) by one user.

The claim's id is derived from the value, so two users racing for the same value
write to the same aggregate and the event store lets only one of them win.
"""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import Conflict
from sora2.domain.flat_copy import FlatCopy

KINDS = ("email", "username")


class Claim(FlatCopy, Aggregate):
    class Made(Aggregate.Created):
        kind: str
        value: str
        owner_id: UUID

    class Released(Aggregate.Event):
        pass

    class Renewed(Aggregate.Event):
        owner_id: UUID

    @staticmethod
    def create_id(kind: str, value: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/claims/{kind}/{value.lower()}")

    @event(Made)
    def __init__(self, kind: str, value: str, owner_id: UUID, timestamp: datetime) -> None:
        self.kind = kind
        self.value = value.lower()
        self.owner_id: UUID | None = owner_id

    def take(self, owner_id: UUID, timestamp: datetime) -> None:
        if self.owner_id == owner_id:
            return
        if self.owner_id is not None:
            raise Conflict(f"this {self.kind} is already taken")
        self._renewed(owner_id, timestamp)

    def release(self, owner_id: UUID, timestamp: datetime) -> None:
        if self.owner_id == owner_id:
            self._released(timestamp)

    @event(Released)
    def _released(self, timestamp: datetime) -> None:
        self.owner_id = None

    @event(Renewed)
    def _renewed(self, owner_id: UUID, timestamp: datetime) -> None:
        self.owner_id = owner_id
