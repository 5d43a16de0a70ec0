"""The read-model port: what the projection writes and what queries read.

Each write also records the event's tracking position in the same transaction, so a
view never applies an event twice and resumes exactly where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking, TrackingRecorder

from sora2.application.projections.rows import (
    Access,
    AccessAtHead,
    CreditRow,
    OrderRow,
    Page,
    UserBalance,
    UserRow,
    VideoRow,
)


class ReadModelView(TrackingRecorder, ABC):
    # --- the processor's position ---
    @abstractmethod
    def position_of(self, name: str) -> int:
        """The last position a processor of this view committed."""

    @abstractmethod
    def batch(self, name: str, after: int, last: int) -> AbstractContextManager[None]:
        """One transaction for a batch of writes that moves `name` from `after` to `last`;
        raises PositionMoved (and writes nothing) if another process moved it first."""

    # --- rebuilding into fresh tables ---
    @abstractmethod
    def fresh_copy(self) -> ReadModelView:
        """Empty tables of the same shape beside these, for a rebuild to fill."""

    @abstractmethod
    def swap_in(self, fresh: ReadModelView, name: str, finish: Callable[[], int]) -> int:
        """In one transaction: `finish()` brings `fresh` to the head (its writes join the
        transaction) and returns that position; `fresh` replaces these tables and `name`'s
        position becomes it. The old tables serve until the commit."""

    @abstractmethod
    def drop(self) -> None:
        """Remove these tables (a rebuild that did not finish)."""

    # --- writes (each with its tracking, atomically) ---
    @abstractmethod
    def add_user(self, row: UserRow, tracking: Tracking) -> None: ...

    @abstractmethod
    def update_user(
        self, user_id: UUID, changes: dict[str, Any], at: datetime, tracking: Tracking
    ) -> None: ...

    @abstractmethod
    def add_credit(self, row: CreditRow, tracking: Tracking) -> None:
        """Append the entry and set the user's balance to the entry's running balance."""

    @abstractmethod
    def add_order(self, row: OrderRow, tracking: Tracking) -> None: ...

    @abstractmethod
    def update_order(
        self, order_id: UUID, status: str, paid_at: datetime | None, tracking: Tracking
    ) -> None: ...

    @abstractmethod
    def add_video(self, row: VideoRow, tracking: Tracking) -> None: ...

    @abstractmethod
    def update_video(
        self, video_id: UUID, changes: dict[str, Any], at: datetime, tracking: Tracking
    ) -> None: ...

    @abstractmethod
    def remove_video(self, video_id: UUID, tracking: Tracking) -> None: ...

    def skip(self, tracking: Tracking) -> None:
        """An event no read model needs: the batch's position moves past it anyway."""

    # --- reads ---
    @abstractmethod
    def user(self, user_id: UUID) -> UserRow | None: ...

    @abstractmethod
    def access(self, user_id: UUID, session_id: UUID) -> Access | None:
        """The user and whether the session ended, in one read; None if no such user."""

    @abstractmethod
    def access_at_head(self, user_id: UUID, session_id: UUID) -> AccessAtHead:
        """`access`, with the log's head and the read models' position read in the same
        statement (several processes serve: one round trip says whether the row is fresh)."""

    @abstractmethod
    def add_session(self, session_id: UUID, user_id: UUID, tracking: Tracking) -> None: ...

    @abstractmethod
    def end_session(self, session_id: UUID, tracking: Tracking) -> None: ...

    @abstractmethod
    def balance_of(self, user_id: UUID) -> int: ...

    @abstractmethod
    def credits(self, user_id: UUID, type: str | None, page: int, limit: int) -> Page[CreditRow]:
        """The user's entries, newest first."""

    @abstractmethod
    def orders(self, user_id: UUID, status: str | None, page: int, limit: int) -> Page[OrderRow]:
        """The user's orders, newest first."""

    @abstractmethod
    def order(self, order_id: UUID) -> OrderRow | None: ...

    @abstractmethod
    def pending_orders(self, created_before: datetime) -> list[UUID]:
        """Orders still PENDING that were placed before the instant, oldest first."""

    @abstractmethod
    def videos(self, user_id: UUID, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        """The user's videos that are not deleted, newest first."""

    @abstractmethod
    def video(self, video_id: UUID) -> VideoRow | None: ...

    @abstractmethod
    def video_by_share(self, token_hash: str) -> VideoRow | None: ...

    @abstractmethod
    def search_users(self, query: str | None, page: int, limit: int) -> Page[UserBalance]:
        """Every user whose email or username contains `query` (any case), newest first,
        with their balance (admins)."""

    @abstractmethod
    def all_videos(self, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        """Videos of every user that are not deleted, newest first (admins)."""

    @abstractmethod
    def unfinished_videos(self) -> list[UUID]:
        """Videos PENDING or PROCESSING, oldest first: jobs to resume after a restart."""

    @abstractmethod
    def all_balances(self) -> dict[UUID, int]:
        """Every user's projected balance, for auditors to compare with a replay."""
