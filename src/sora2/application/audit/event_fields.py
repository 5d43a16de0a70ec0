"""The fields of each stored event the fold reads, so msgspec decodes those alone.

Decoding a whole event into a dict costs more than the rest of the fold: a registration
carries a password hash, every event its originator topic and each id or instant its
`_type_`. Decoded into a TypedDict that names only what a handler reads, an event is a
plain dict of those keys, each value as the whole decode would give it (`Any`; an id or
instant keeps its `_data_`). An event that does not fit the shape (a key missing, an id
that is no object) is decoded whole instead, so the handler meets it, and fails on it,
exactly as before.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

LEDGER = "sora2.domain.credits.ledger:CreditLedger."
USER = "sora2.domain.users.user:User."
SESSION = "sora2.domain.users.session:Session."
ORDER = "sora2.domain.orders.order:Order."
VIDEO = "sora2.domain.videos.video:Video."


class Data(TypedDict):
    """An id or instant as stored: `{"_type_": ..., "_data_": ...}`."""

    _data_: Any


class EntryEvent(TypedDict):
    user_id: Data | None
    amount: Any
    balance: Any
    timestamp: Data
    admin_id: NotRequired[Data | None]
    order_id: NotRequired[Data | None]
    video_id: NotRequired[Data | None]
    reason: NotRequired[Any]


class OfUser(TypedDict):
    user_id: Data | None


class Settled(TypedDict):
    user_id: Data | None
    video_id: Data | None


class Registered(TypedDict):
    email: Any
    username: Any
    role: Any
    timestamp: Data


class UserChanged(TypedDict, total=False):  # the fields `Fold._user_changed` copies
    email: Any
    username: Any
    avatar_key: Any
    role: Any
    session_epoch: Any


class OrderCreated(TypedDict):
    user_id: Data | None
    credits: Any
    amount: Any
    timestamp: Data


class OrderChanged(TypedDict, total=False):
    timestamp: Data


class VideoRequested(TypedDict):
    user_id: Data | None
    cost: Any
    duration: Any
    timestamp: Data


class VideoChanged(TypedDict, total=False):
    video_key: Any
    thumbnail_key: Any


class Nothing(TypedDict):
    """An event no handler reads a field of: only its JSON must be sound."""


ENTRY_EVENTS = ("Rewarded", "Recharged", "Reserved", "Refunded", "Adjusted", "Reversed")
SHAPES: dict[str, type] = {
    **{LEDGER + name: EntryEvent for name in ENTRY_EVENTS},
    LEDGER + "Opened": OfUser,
    LEDGER + "Settled": Settled,
    USER + "Registered": Registered,
    SESSION + "Started": OfUser,
    SESSION + "Ended": Nothing,
    ORDER + "Created": OrderCreated,
    VIDEO + "Requested": VideoRequested,
    VIDEO + "Deleted": Nothing,
}
CHANGED = {USER: UserChanged, ORDER: OrderChanged, VIDEO: VideoChanged}


def shape_of(topic: str, known: bool) -> type | None:
    """The shape to decode a topic's events into; None: decode them whole (a ledger event
    this release does not know is read by its shape, any field may count)."""
    if (shape := SHAPES.get(topic)) is not None:
        return shape
    if not known:
        return Nothing  # no event class: the handler reads nothing
    for prefix, changed in CHANGED.items():
        if topic.startswith(prefix):
            return changed
    return None if topic.startswith(LEDGER) else Nothing
