"""A login session: the family of refresh tokens that rotate from one sign-in.

Each refresh spends the current token and issues the next. Presenting a spent token
means it was stolen or replayed, so the whole family ends.
"""

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import NotAuthenticated
from sora2.domain.flat_copy import FlatCopy


class Session(FlatCopy, Aggregate):
    class Started(Aggregate.Created):
        user_id: UUID
        token_id: UUID
        epoch: int

    class Rotated(Aggregate.Event):
        token_id: UUID

    class Ended(Aggregate.Event):
        reason: str  # "logout", "reuse", "expired"

    @event(Started)
    def __init__(
        self, id: UUID, user_id: UUID, token_id: UUID, epoch: int, timestamp: datetime
    ) -> None:
        self.user_id = user_id
        self.token_id = token_id
        self.epoch = epoch
        self.ended = False

    def rotate(self, presented: UUID, next_token: UUID, timestamp: datetime) -> bool:
        """Swap `presented` for `next_token`. A spent token ends the session and
        returns False (the caller saves that, then refuses); an ended session refuses."""
        if self.ended:
            raise NotAuthenticated("this session has ended; sign in again")
        if presented != self.token_id:
            self._ended("reuse", timestamp)
            return False
        self._rotated(next_token, timestamp)
        return True

    def end(self, reason: str, timestamp: datetime) -> None:
        if not self.ended:
            self._ended(reason, timestamp)

    @event(Rotated)
    def _rotated(self, token_id: UUID, timestamp: datetime) -> None:
        self.token_id = token_id

    @event(Ended)
    def _ended(self, reason: str, timestamp: datetime) -> None:
        self.ended = True
