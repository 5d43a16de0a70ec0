"""What each domain event looks like outside the service: its NATS subject and public payload.

Consumers depend on this, so it is a contract kept apart from the event classes: names are
fixed here (`CreditLedger.Reserved` is the spec's `credits.consumed`), data is plain JSON in
camelCase, and secrets (password and token hashes, refresh-token ids) never leave the log.
`docs/events.asyncapi.yaml` documents the same catalog; `tests/unit/test_event_catalog.py`
keeps the two in step. An event class missing here still publishes under a name derived from
its class, so nothing is silently dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.orders.order import Order
from sora2.domain.users.claim import Claim
from sora2.domain.users.session import Session
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video

SECRET_FIELDS = frozenset({"password_hash", "token_hash", "token_id"})
# eventsourcing's own attributes: the envelope carries the useful ones under public names
ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)

AGGREGATES: dict[type[Aggregate], tuple[str, tuple[type, ...]]] = {
    User: (
        "user",
        (
            User.Registered,
            User.EmailChanged,
            User.UsernameChanged,
            User.AvatarChanged,
            User.PasswordChanged,
            User.PasswordResetRequested,
            User.PasswordReset,
            User.RoleChanged,
            User.Suspended,
            User.Unsuspended,
        ),
    ),
    CreditLedger: (
        "credits",
        (
            CreditLedger.Opened,
            CreditLedger.Rewarded,
            CreditLedger.Recharged,
            CreditLedger.Reserved,
            CreditLedger.Refunded,
            CreditLedger.Reversed,
            CreditLedger.Adjusted,
            CreditLedger.Settled,
        ),
    ),
    Order: (
        "order",
        (
            Order.Created,
            Order.Paid,
            Order.Failed,
            Order.Cancelled,
            Order.Expired,
            Order.PaymentReturned,
            Order.Refunded,
        ),
    ),
    Video: (
        "video",
        (
            Video.Requested,
            Video.Started,
            Video.Resumed,
            Video.ProgressReported,
            Video.Completed,
            Video.Failed,
            Video.Cancelled,
            Video.Shared,
            Video.ShareRevoked,
            Video.Deleted,
        ),
    ),
    Session: ("session", (Session.Started, Session.Rotated, Session.Ended)),
    Claim: ("claim", (Claim.Made, Claim.Released, Claim.Renewed)),
}

# Public names that are not simply the class name in snake_case.
RENAMED: dict[type, str] = {
    CreditLedger.Reserved: "consumed",  # the ledger's CONSUME entry, as the spec names it
}


@dataclass(frozen=True)
class EventKind:
    """One kind of event as consumers see it: `credits.consumed` on `<prefix>.credits.consumed`."""

    aggregate: str
    event: str

    @property
    def type(self) -> str:
        return f"{self.aggregate}.{self.event}"

    def subject(self, prefix: str) -> str:
        return f"{prefix}.{self.type}"


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


CATALOG: dict[type, EventKind] = {
    event_class: EventKind(aggregate, RENAMED.get(event_class, snake_case(event_class.__name__)))
    for aggregate, classes in AGGREGATES.values()
    for event_class in classes
}

_AGGREGATE_BY_QUALNAME = {(a.__module__, a.__qualname__): n for a, (n, _) in AGGREGATES.items()}


def subjects(prefix: str) -> list[str]:
    """Every cataloged subject, in catalog order (what the AsyncAPI document lists)."""
    return [kind.subject(prefix) for kind in CATALOG.values()]


def kind_of(event_class: type) -> EventKind:
    """The catalog's entry, or one derived from the class name (`Outer.Inner` → `outer.inner`)."""
    known = CATALOG.get(event_class)
    if known is not None:
        return known
    parts = [p for p in event_class.__qualname__.split(".") if not p.startswith("<")]
    outer = ".".join(parts[:-1])
    aggregate = _AGGREGATE_BY_QUALNAME.get((event_class.__module__, outer))
    if aggregate is None:
        aggregate = _token(parts[-2]) if len(parts) > 1 else "event"
    return EventKind(aggregate, _token(parts[-1]))


def public_fields(event_class: type) -> dict[str, Any]:
    """The event's own fields that may be published, with their types (snake_case names)."""
    hints = typing.get_type_hints(event_class)
    return {
        f.name: hints.get(f.name, Any)
        for f in dataclasses.fields(event_class)
        if f.name not in ENVELOPE_FIELDS and f.name not in SECRET_FIELDS
    }


def public_message(domain_event: Any) -> tuple[EventKind, dict[str, Any]]:
    """The event's kind and its JSON-able payload: the envelope plus its public fields."""
    event_class = type(domain_event)
    kind, names = (
        _plan(event_class) if dataclasses.is_dataclass(event_class) else _ad_hoc(domain_event)
    )
    data = {}
    for name, public in names:
        value = getattr(domain_event, name)
        data[public] = value if type(value) in _JSON_SCALARS else plain(value)
    payload = {
        "eventId": event_id_text(domain_event),
        "type": kind.type,
        "aggregateId": str(domain_event.originator_id),
        "version": domain_event.originator_version,
        "timestamp": iso_utc(domain_event.timestamp),
        "data": data,
    }
    return kind, payload


_JSON_SCALARS = frozenset({str, int, bool, float, type(None)})


def public_message_of_state(
    event_class: type, originator_id: UUID, version: int, state: Mapping[str, Any]
) -> dict[str, Any] | None:
    """`public_message(event)[1]` read straight from the event's stored JSON (eventsourcing's
    transcodings of UUIDs, times and decimals), without building the event: what the relay
    does thousands of times a second. None when the state holds anything else (another
    transcoding, an upcast class, a missing field): then decode the event."""
    plan = _state_plan(event_class)
    if plan is None or "class_version" in state:
        return None
    kind, names = plan
    data = {}
    try:
        for name, public in names:
            value = state[name]
            if type(value) not in _JSON_SCALARS and (value := _of_stored(value)) is _UNKNOWN:
                return None
            data[public] = value
    except KeyError:  # a field the stored JSON lacks
        return None
    timestamp = _of_stored(state.get("timestamp"))
    if type(timestamp) is not str:
        return None
    return {
        "eventId": _event_id_of(originator_id, version),
        "type": kind.type,
        "aggregateId": str(originator_id),
        "version": version,
        "timestamp": timestamp,
        "data": data,
    }


_UNKNOWN: Any = object()


def _hyphenated(hex32: str) -> str:
    """A UUID's 32 hex digits as `str(UUID)` writes them."""
    h = hex32.lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _of_stored(value: Any) -> Any:
    """What `plain` makes of the value eventsourcing's JSON transcoder stored as `value`."""
    if type(value) is dict and len(value) == 2:  # the usual: {"_type_": ..., "_data_": ...}
        kind, data = value.get("_type_"), value.get("_data_")
        if type(data) is str:
            if kind == "uuid_hex" and len(data) == 32:
                return _hyphenated(data)
            if kind == "datetime_iso" and data.endswith("+00:00"):
                return data[:-6] + "Z"
    return _of_stored_otherwise(value)


def _of_stored_otherwise(value: Any) -> Any:
    if type(value) in _JSON_SCALARS:
        return value
    if isinstance(value, list):
        items = [_of_stored(v) for v in value]
        return _UNKNOWN if any(v is _UNKNOWN for v in items) else items
    if not isinstance(value, dict):
        return _UNKNOWN
    kind = value.get("_type_")
    if kind is None:
        items = {str(k): _of_stored(v) for k, v in value.items()}
        return _UNKNOWN if any(v is _UNKNOWN for v in items.values()) else items
    data = value.get("_data_")
    if not isinstance(data, str) or len(value) != 2:
        return _UNKNOWN
    if kind == "uuid_hex":
        return _hyphenated(data) if len(data) == 32 else str(UUID(hex=data))
    if kind == "datetime_iso":
        if data.endswith("+00:00"):
            return data[:-6] + "Z"
        return iso_utc(datetime.fromisoformat(data))
    if kind == "decimal_str":
        return str(Decimal(data))
    return _UNKNOWN


@functools.cache
def _plan(event_class: type) -> tuple[EventKind, tuple[tuple[str, str], ...]]:
    """What to publish of an event class, worked out once: its kind, and its public fields
    with their camelCase names (the relay maps thousands of events a second)."""
    return kind_of(event_class), _published(f.name for f in dataclasses.fields(event_class))


@functools.cache
def _state_plan(event_class: type) -> tuple[EventKind, tuple[tuple[str, str], ...]] | None:
    """`_plan` for a class whose stored JSON maps straight to its payload; None for one that
    is decoded first (not a dataclass, or upcast: its stored state may be older)."""
    if not dataclasses.is_dataclass(event_class) or getattr(event_class, "class_version", 1) != 1:
        return None
    return _plan(event_class)


def _ad_hoc(domain_event: Any) -> tuple[EventKind, tuple[tuple[str, str], ...]]:
    """Not an eventsourcing event class: publish what it holds."""
    return kind_of(type(domain_event)), _published(vars(domain_event))


def _published(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name, camel_case(name))
        for name in names
        if name not in ENVELOPE_FIELDS and name not in SECRET_FIELDS and not name.startswith("_")
    )


def event_id_text(domain_event: Any) -> str:
    """`str(event_id(domain_event))`, the UUID 5 worked out on bytes: a third of the cost."""
    return _event_id_of(domain_event.originator_id, domain_event.originator_version)


def _event_id_of(originator_id: UUID, version: int) -> str:
    h = hashlib.sha1(originator_id.bytes + str(version).encode()).hexdigest()
    # version 5 in digit 12, the RFC 4122 variant in digit 16
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`; a naive time is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """A JSON value: ids and money as strings, times as ISO 8601 UTC."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def _token(name: str) -> str:
    """A safe NATS subject token: no dots, spaces or wildcards."""
    return re.sub(r"[^a-z0-9_-]", "_", snake_case(name)) or "event"
