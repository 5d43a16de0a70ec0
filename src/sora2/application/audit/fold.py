"""The auditor's own fold of the log: one pass over the stored events, decoded fast.

The read models are a projection the API trusts; an auditor must not. This fold reads the
stored JSON straight (msgspec, no domain objects) and keeps what each check needs: every
credit entry with its own running balance, and the state of each user, session, order and
video as the log says it is. Ids stay 16-byte keys until a message shows them.

Credit entries are recognised by shape, so entry types added later slot in: any
CreditLedger event with an `amount` and a `balance` is an entry; `KINDS` names the known
ones and the sign of their amount (ADJUSTMENT's amount carries its own sign).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.utils import resolve_topic

from sora2.application.audit.event_fields import LEDGER, ORDER, SESSION, USER, VIDEO, shape_of
from sora2.application.audit.report import Problem

# event name -> (entry type, sign of the stored amount; 0: the amount is signed already)
KINDS: dict[str, tuple[str, int]] = {
    "Rewarded": ("REWARD", 1),
    "Recharged": ("RECHARGE", 1),
    "Reserved": ("CONSUME", -1),
    "Refunded": ("REFUND", 1),
    "Adjusted": ("ADJUSTMENT", 0),
    "Reversed": ("REVERSAL", -1),
}
SPENDING = ("CONSUME", "REVERSAL")  # entry types whose amount must be negative
FIXED_SIGN = {kind for kind, sign in KINDS.values() if sign}
USER_FIELDS = ("email", "username", "avatar_key", "role", "session_epoch")
SUSPENSION = {"Suspended": 1, "Unsuspended": 0}
VIDEO_STATUS = {
    "Started": "PROCESSING",
    "Completed": "COMPLETED",
    "Failed": "FAILED",
    "Cancelled": "CANCELLED",
}
ORDER_STATUS = {
    "Paid": "PAID",
    "Failed": "FAILED",
    "Cancelled": "CANCELLED",
    "Expired": "CANCELLED",
    "Refunded": "REFUNDED",
}


# uuid5's version (5) and RFC 4122 variant bits over the first 16 bytes of a SHA-1
_UUID5_KEEP = int.from_bytes(bytes.fromhex("ffffffffffff0fff3fffffffffffffff"))
_UUID5_SET = int.from_bytes(bytes.fromhex("00000000000050008000000000000000"))
_sha1 = hashlib.sha1
_from_bytes = int.from_bytes
_fromhex = bytes.fromhex


def show_id(key: bytes | None) -> str:
    return str(UUID(bytes=key)) if key else "-"


class Entry(msgspec.Struct, gc=False):
    """One credit entry as the fold sees it; `balance` is the fold's running balance,
    `recorded_balance` what the event itself carries. A Struct: made in C, once per entry,
    and never tracked by the cyclic collector (nothing it holds can lead back to it)."""

    position: int
    ledger: bytes
    version: int
    user: bytes | None
    type: str
    amount: int
    balance: int
    recorded_balance: int
    reference: bytes | None
    timestamp: str
    admin: bytes | None = None  # who made an ADJUSTMENT, and why
    reason: str | None = None

    @property
    def key(self) -> bytes:
        """The entry's id (`event_id`: uuid5 of the ledger id and version) as 16 bytes,
        made with hashlib alone: the uuid module would cost more than the whole fold."""
        digest = _sha1(self.ledger + b"%d" % self.version).digest()
        return ((_from_bytes(digest[:16]) & _UUID5_KEEP) | _UUID5_SET).to_bytes(16)

    @property
    def id(self) -> UUID:
        """The entry's id as the read models and the API give it (`event_id`)."""
        return UUID(bytes=self.key)

    @property
    def user_id(self) -> UUID:
        return UUID(bytes=self.user)

    @property
    def reference_id(self) -> UUID | None:
        return UUID(bytes=self.reference) if self.reference else None

    @property
    def admin_id(self) -> UUID | None:
        return UUID(bytes=self.admin) if self.admin else None

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.timestamp)

    def __repr__(self) -> str:
        return f"Entry({self.type} {self.amount:+d} → {self.balance} at {self.position})"

    def as_record(self) -> dict[str, Any]:
        """The export row: the API's Credit field names."""
        return {
            "id": str(self.id),
            "userId": str(self.user_id),
            "type": self.type,
            "amount": self.amount,
            "balance": self.balance,
            "reference": str(self.reference_id) if self.reference else None,
            "createdAt": iso_text(self.timestamp),
        }


def iso_text(timestamp: str) -> str:
    """A stored ISO instant as the API writes it (UTC, `Z`)."""
    return timestamp.replace("+00:00", "Z")


class UserFacts(msgspec.Struct):
    email: str
    username: str
    avatar_key: str | None
    role: str
    created_at: str
    session_epoch: int = 0
    suspended: int = 0


class VideoFacts(msgspec.Struct):
    user: bytes | None = None
    cost: int | None = None
    duration: int | None = None
    status: str | None = None  # None: never requested (only referenced)
    video_key: str | None = None
    thumbnail_key: str | None = None
    created_at: str | None = None
    deleted: bool = False
    completed: bool = False  # a Completed event is in the log
    reserved: list[Entry] = msgspec.field(default_factory=list)
    refunded: list[Entry] = msgspec.field(default_factory=list)
    settled: list[tuple[int, bytes]] = msgspec.field(default_factory=list)  # (position, user)


class OrderFacts(msgspec.Struct):
    user: bytes | None = None
    credits: int | None = None
    amount: str | None = None
    status: str | None = None  # None: never created (only referenced)
    created_at: str | None = None
    paid_at: str | None = None
    paid: int = 0  # how many Paid events
    recharges: list[Entry] = msgspec.field(default_factory=list)
    reversals: list[Entry] = msgspec.field(default_factory=list)


class Fold:
    """Everything one pass over the log says; `apply` takes one raw stored event.

    `entries_only`: the credit entries alone (export, history, balances), read from the
    ledgers' events; other events are not even decoded. An entry comes from its own
    event and the entries before it, so the entries are the whole fold's; the facts and
    the problems are not (only `verify` reports those)."""

    def __init__(self, entries_only: bool = False) -> None:
        self.entries_only = entries_only
        self.events = 0
        self.position = 0
        self.entries: list[Entry] = []
        self.by_user: dict[bytes, list[Entry]] = {}
        self.balances: dict[bytes, int] = {}  # user -> running balance
        self.recorded: dict[bytes, int] = {}  # user -> balance the last entry records
        self.ledger_owner: dict[bytes, bytes] = {}
        self.users: dict[bytes, UserFacts] = {}
        self.sessions: dict[bytes, list[Any]] = {}  # id -> [user, ended]
        self.videos: dict[bytes, VideoFacts] = {}
        self.orders: dict[bytes, OrderFacts] = {}
        self.versions: dict[bytes, int] = {}
        self.problems: list[Problem] = []
        self._decode = msgspec.json.Decoder().decode
        self._decoders: dict[str, Any] = {}  # topic -> decode of the fields its handler reads
        self._handlers = {
            **{LEDGER + name: self._entry_of(kind, sign) for name, (kind, sign) in KINDS.items()},
            LEDGER + "Opened": self._ledger_opened,
            LEDGER + "Settled": self._settled,
            USER + "Registered": self._user_registered,
            SESSION + "Started": self._session_started,
            SESSION + "Ended": self._session_ended,
            ORDER + "Created": self._order_created,
            VIDEO + "Requested": self._video_requested,
            VIDEO + "Deleted": self._video_deleted,
        }
        if entries_only:
            self._handlers = {t: h for t, h in self._handlers.items() if t.startswith(LEDGER)}

    # --- one event ---------------------------------------------------------------------------

    def apply(self, position: int, originator: bytes, version: int, topic: str, state: bytes):
        self.fold([(position, originator, version, topic, state)])

    def fold(self, batch: list[tuple[int, bytes, int, str, bytes]]) -> None:
        """Fold stored events in log order (the loop every audit spends its time in)."""
        if not batch:
            return
        versions, handlers, decoders, decode = (
            self.versions,
            self._handlers,
            self._decoders,
            self._decode,
        )
        route = self._route
        for position, originator, version, topic, state in batch:
            last = versions.get(originator, 0)
            if version != last + 1:
                self._version_problem(position, originator, version, last, topic)
                version = max(version, last)
            versions[originator] = version
            handler = handlers.get(topic)
            if handler is None:
                handler = handlers[topic] = route(topic)
            if handler is _skip:
                continue
            if (fields := decoders.get(topic)) is None:
                fields = decoders[topic] = self._fields_decoder(topic)
            try:
                try:
                    p = fields(state)
                except msgspec.DecodeError:  # not the usual shape: the whole event, as ever
                    p = decode(state)
                handler(position, originator, version, p)
            except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
                self._undecodable(position, topic, error)
        self.events += len(batch)
        self.position = batch[-1][0]

    def _fields_decoder(self, topic: str) -> Any:
        """Decode of only the fields the topic's handler reads (`event_fields`)."""
        try:
            resolve_topic(topic)
            known = True
        except Exception:  # as `_route` finds it: its events are undecodable
            known = False
        shape = shape_of(topic, known)
        return self._decode if shape is None else msgspec.json.Decoder(shape).decode

    def _route(self, topic: str) -> Any:
        """The handler of a topic without one of its own (found once per topic); a topic
        that names no event class makes each of its events undecodable."""
        if self.entries_only and not topic.startswith(LEDGER):
            return _skip
        try:
            resolve_topic(topic)
        except Exception as error:  # TopicError, or the module fails to import
            reason = f"the topic names no event class ({type(error).__name__})"

            def unknown(position: int, originator: bytes, version: int, p: dict) -> None:
                raise ValueError(reason)

            return unknown
        name = topic.rsplit(".", 1)[-1]
        if topic.startswith(USER):
            return lambda position, user, version, p: self._user_changed(user, name, p)
        if topic.startswith(VIDEO):
            return lambda position, video, version, p: self._video_changed(video, name, p)
        if topic.startswith(ORDER):
            return lambda position, order, version, p: self._order_changed(order, name, p)
        if topic.startswith(LEDGER):
            return lambda position, ledger, version, p: self._maybe_entry(
                position, ledger, version, p, topic
            )
        return _ignore

    def _maybe_entry(self, position: int, ledger: bytes, version: int, p: dict, topic: str) -> None:
        """A CreditLedger event this release does not know: an entry if it has the shape."""
        if "amount" in p and "balance" in p:
            kind, sign = self._kind_of(topic, p)
            self._entry(kind, sign, position, ledger, version, p)

    def _undecodable(self, position: int, topic: str, error: Exception) -> None:
        self.problems.append(
            Problem(
                "undecodable",
                f"event {position} ({topic}) cannot be decoded: {type(error).__name__}: "
                f"{str(error)[:120]}",
                position,
            )
        )

    def _version_problem(
        self, position: int, originator: bytes, version: int, last: int, topic: str
    ) -> None:
        if version <= last:
            what = f"repeats version {version} (already at {last})"
        else:
            missing = f"{last + 1}" if version == last + 2 else f"{last + 1}–{version - 1}"
            what = f"jumps from version {last} to {version}: version {missing} is missing"
        self.problems.append(
            Problem(
                "sequence",
                f"aggregate {show_id(originator)} ({topic.rsplit(':', 1)[-1]}) at event "
                f"{position} {what}",
                position,
            )
        )

    # --- credits ------------------------------------------------------------------------------

    def _ledger_opened(self, position: int, ledger: bytes, version: int, p: dict) -> None:
        self.ledger_owner[ledger] = _id(p["user_id"])

    def _entry_of(self, kind: str, sign: int) -> Any:
        return partial(self._entry, kind, sign)  # no frame of its own, as a lambda would be

    def _entry(
        self, kind: str, sign: int, position: int, ledger: bytes, version: int, p: dict
    ) -> None:
        """The fold's hottest handler: ids read inline, as `_id` would, and the checks of
        `_check_entry` run only when a quick look says one of them could fail."""
        user = _fromhex(u["_data_"]) if (u := p["user_id"]) is not None else None
        amount = int(p["amount"])
        amount = amount * sign if sign else amount
        balances = self.balances
        balance = balances[user] = balances.get(user, 0) + amount
        recorded = int(p["balance"])
        self.recorded[user] = recorded
        admin = _fromhex(a["_data_"]) if (a := p.get("admin_id")) is not None else None
        # the read models file an adjustment under the admin who made it
        ref = p.get("order_id") or p.get("video_id")
        reference = (_fromhex(ref["_data_"]) if ref is not None else None) or admin
        entry = Entry(
            position,
            ledger,
            version,
            user,
            kind,
            amount,
            balance,
            recorded,
            reference,
            p["timestamp"]["_data_"],
            admin,
            p.get("reason") if kind == "ADJUSTMENT" else None,
        )
        self.entries.append(entry)
        if (mine := self.by_user.get(user)) is None:
            mine = self.by_user[user] = []
        mine.append(entry)
        if (
            recorded != balance
            or balance < 0
            or amount == 0
            or (amount < 0) != (kind in SPENDING)
            or kind not in FIXED_SIGN
            or self.ledger_owner.get(ledger) != user
        ):
            self._check_entry(entry)
        if kind == "CONSUME":
            self._video(reference).reserved.append(entry)
        elif kind == "REFUND":
            self._video(reference).refunded.append(entry)
        elif kind == "RECHARGE":
            self._order(reference).recharges.append(entry)
        elif kind == "REVERSAL":
            self._order(reference).reversals.append(entry)

    def _kind_of(self, topic: str, p: dict) -> tuple[str, int]:
        """An entry type this release does not know, found by its shape: its name in
        capitals, its sign the one that makes the balance it records."""
        user, amount = _id(p["user_id"]), int(p["amount"])
        before = self.balances.get(user, 0)
        sign = -1 if before - amount == int(p["balance"]) != before + amount else 1
        return topic.rsplit(".", 1)[-1].upper(), sign

    def _check_entry(self, entry: Entry) -> None:
        owner = self.ledger_owner.get(entry.ledger)
        if owner != entry.user:
            self._entry_problem(
                entry, f"its ledger {show_id(entry.ledger)} belongs to user {show_id(owner)}"
            )
        spends = entry.type in SPENDING
        if entry.amount == 0 or (entry.type in FIXED_SIGN and (entry.amount < 0) != spends):
            self._entry_problem(entry, f"amount {entry.amount} has the wrong sign")
        if entry.recorded_balance != entry.balance:
            self._entry_problem(
                entry,
                f"balance is {entry.recorded_balance} in the event, "
                f"{entry.balance} by the log's sum",
            )
        if entry.balance < 0:
            self._entry_problem(entry, f"the balance goes negative ({entry.balance})")
        if entry.type == "ADJUSTMENT":
            admin = self.users.get(entry.admin) if entry.admin else None
            if entry.admin is None:
                self._entry_problem(entry, "the adjustment names no admin")
            elif admin is None or admin.role != "ADMIN":
                self._entry_problem(
                    entry, f"names {show_id(entry.admin)}, who was not an ADMIN at the time"
                )

    def _entry_problem(self, entry: Entry, what: str) -> None:
        where = (
            f"user {show_id(entry.user)}, {entry.type} entry {entry.id} (event {entry.position})"
        )
        self._problem("ledger", f"{where}: {what}", entry)

    def _settled(self, position: int, ledger: bytes, version: int, p: dict) -> None:
        self._video(_id(p["video_id"])).settled.append((position, _id(p["user_id"])))

    # --- accounts -----------------------------------------------------------------------------

    def _user_registered(self, position: int, user: bytes, version: int, p: dict) -> None:
        self.users[user] = UserFacts(
            p["email"], p["username"], None, p["role"], p["timestamp"]["_data_"]
        )

    def _user_changed(self, user: bytes, event: str, p: dict) -> None:
        facts = self.users.get(user)
        if facts is None:
            return
        for name in USER_FIELDS:
            if name in p:
                setattr(facts, name, p[name])
        if event in SUSPENSION:
            facts.suspended = SUSPENSION[event]

    def _session_started(self, position: int, session: bytes, version: int, p: dict) -> None:
        self.sessions[session] = [_id(p["user_id"]), 0]

    def _session_ended(self, position: int, session: bytes, version: int, p: dict) -> None:
        if (facts := self.sessions.get(session)) is not None:
            facts[1] = 1

    # --- orders and videos --------------------------------------------------------------------

    def _order(self, order_id: bytes | None) -> OrderFacts:
        key = order_id or b""
        if (order := self.orders.get(key)) is None:
            order = self.orders[key] = OrderFacts()
        return order

    def _video(self, video_id: bytes | None) -> VideoFacts:
        key = video_id or b""
        if (video := self.videos.get(key)) is None:
            video = self.videos[key] = VideoFacts()
        return video

    def _order_created(self, position: int, order_id: bytes, version: int, p: dict) -> None:
        order = self._order(order_id)
        order.user, order.credits, order.amount = _id(p["user_id"]), p["credits"], p["amount"]
        order.status, order.created_at = "PENDING", p["timestamp"]["_data_"]

    def _order_changed(self, order_id: bytes, name: str, p: dict) -> None:
        order = self._order(order_id)
        if name == "Paid":
            order.paid += 1
            order.paid_at = p["timestamp"]["_data_"]
        if (status := ORDER_STATUS.get(name)) is not None:
            order.status = status

    def _video_requested(self, position: int, video_id: bytes, version: int, p: dict) -> None:
        video = self._video(video_id)
        video.user, video.cost, video.duration = _id(p["user_id"]), p["cost"], p["duration"]
        video.status, video.created_at = "PENDING", p["timestamp"]["_data_"]

    def _video_changed(self, video_id: bytes, name: str, p: dict) -> None:
        video = self._video(video_id)
        if (status := VIDEO_STATUS.get(name)) is not None:
            video.status = status
        if name == "Completed":
            video.completed = True
            video.video_key, video.thumbnail_key = p["video_key"], p["thumbnail_key"]

    def _video_deleted(self, position: int, video_id: bytes, version: int, p: dict) -> None:
        self._video(video_id).deleted = True

    def _problem(self, kind: str, message: str, at: Entry | int | None) -> None:
        position = at.position if isinstance(at, Entry) else at
        self.problems.append(Problem(kind, message, position))


def _ignore(position: int, originator: bytes, version: int, p: dict) -> None:
    """An event no check reads (claims, heartbeats of older releases, …)."""


def _skip(position: int, originator: bytes, version: int, p: dict) -> None:
    """An event an entries-only fold does not decode (no ledger's)."""


def _id(value: Any) -> bytes | None:
    """A stored UUID (`{"_type_": "uuid_hex", "_data_": hex}`) as its 16 bytes."""
    if value is None:
        return None
    return bytes.fromhex(value["_data_"])
