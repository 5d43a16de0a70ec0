"""The rows read models answer with: plain data, shaped for the API's models."""

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")


@dataclass(frozen=True)
class UserRow:
    id: UUID
    email: str
    username: str
    avatar_key: str | None
    role: str
    created_at: datetime
    updated_at: datetime
    session_epoch: int = 0
    suspended: bool = False


@dataclass(frozen=True)
class UserBalance:
    """A user as an admin lists them: the account and its balance."""

    user: UserRow
    balance: int


@dataclass(frozen=True)
class Access:
    """What an access check reads in one go: the user, and the session if it is known."""

    user: UserRow
    session_ended: bool | None  # None: the read models do not hold the session (yet)
    session_user: UUID | None


@dataclass(frozen=True)
class AccessAtHead:
    """An access check's row read with the log's head and the read models' position, in one
    statement (several processes serve one address)."""

    access: Access | None
    head: int
    position: int | None  # None: the read models have no position yet
    moved: bool  # the log holds an event of this user or session past `position`


@dataclass(frozen=True)
class CreditRow:
    id: UUID
    user_id: UUID
    amount: int
    balance: int
    type: str  # RECHARGE | CONSUME | REFUND | REWARD | REVERSAL | ADJUSTMENT
    description: str
    reference_id: UUID | None  # the order or video the entry belongs to
    created_at: datetime


@dataclass(frozen=True)
class OrderRow:
    id: UUID
    user_id: UUID
    amount: str
    credits: int
    status: str
    payment_method: str
    created_at: datetime
    paid_at: datetime | None


@dataclass(frozen=True)
class VideoRow:
    id: UUID
    user_id: UUID
    prompt: str
    status: str
    progress: int
    seconds_remaining: int | None
    video_key: str | None
    thumbnail_key: str | None
    duration: int
    aspect_ratio: str
    cost: int
    error: str | None
    share_token_hash: str | None
    created_at: datetime
    updated_at: datetime
    error_code: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    limit: int
