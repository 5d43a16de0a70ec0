"""The auditors' replay of the credit ledger, straight from the event log.

The read models are a projection the API trusts; an auditor must not. `LedgerAudit`
folds every stored event itself, with its own arithmetic, and then compares: the read
models against the fold, each event's recorded balance against the fold's running
balance, and every entry against the video or order that justifies it.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO
from uuid import UUID

from sora2.application.event_log import EventLog, event_id
from sora2.application.processing.log_reader import LogReader, Undecodable
from sora2.application.processing.processor import Stored
from sora2.application.projections.read_models import FOLLOWER_NAME
from sora2.application.projections.rows import CreditRow
from sora2.application.projections.view import ReadModelView
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.orders.order import Order
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video

PAGE_SIZE = 1_000
EXPORT_COLUMNS = ("id", "userId", "type", "amount", "balance", "reference", "createdAt")
REFUNDABLE = ("FAILED", "CANCELLED")


@dataclass(frozen=True)
class Entry:
    """One credit entry as the fold sees it (API field `balance` = `balance` here)."""

    id: UUID
    user_id: UUID
    type: str  # RECHARGE | CONSUME | REFUND | REWARD | REVERSAL | ADJUSTMENT
    amount: int  # signed: negative for CONSUME and REVERSAL, either sign for ADJUSTMENT
    balance: int  # running balance computed by the fold
    recorded_balance: int  # the balance the event itself carries
    reference: UUID | None  # the order (RECHARGE, REVERSAL) or video (CONSUME, REFUND)
    created_at: datetime
    position: int  # the event's notification id in the log
    admin_id: UUID | None = None  # who made an ADJUSTMENT
    reason: str | None = None  # and why

    def as_record(self) -> dict[str, Any]:
        """The export row: the API's Credit field names."""
        return {
            "id": str(self.id),
            "userId": str(self.user_id),
            "type": self.type,
            "amount": self.amount,
            "balance": self.balance,
            "reference": str(self.reference) if self.reference else None,
            "createdAt": iso(self.created_at),
        }


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    users: int = 0
    entries: int = 0
    events: int = 0
    log_position: int = 0
    read_model_position: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _VideoFacts:
    user_id: UUID | None = None
    cost: int | None = None
    status: str | None = None  # last of COMPLETED / FAILED / CANCELLED, None while running
    reserved: list[Entry] = field(default_factory=list)
    refunded: list[Entry] = field(default_factory=list)


@dataclass
class _OrderFacts:
    user_id: UUID | None = None
    credits: int | None = None
    paid: int = 0  # how many Paid events
    refunded: int = 0  # how many Refunded events
    recharges: list[Entry] = field(default_factory=list)
    reversals: list[Entry] = field(default_factory=list)


@dataclass
class _Fold:
    """Everything one pass over the log tells about money."""

    events: int = 0
    position: int = 0
    entries: list[Entry] = field(default_factory=list)  # in log order
    by_user: dict[UUID, list[Entry]] = field(default_factory=lambda: defaultdict(list))
    ledger_users: set[UUID] = field(default_factory=set)
    videos: dict[UUID, _VideoFacts] = field(default_factory=lambda: defaultdict(_VideoFacts))
    orders: dict[UUID, _OrderFacts] = field(default_factory=lambda: defaultdict(_OrderFacts))
    problems: list[str] = field(default_factory=list)
    running: dict[UUID, int] = field(default_factory=dict)  # user -> balance so far
    ledger_owner: dict[UUID, UUID] = field(default_factory=dict)  # ledger id -> its user
    roles: dict[UUID, str] = field(default_factory=dict)  # user -> role so far


class LedgerAudit:
    """Replays the log into per-user credit histories and checks them."""

    def __init__(self, log: EventLog, views: ReadModelView, page_size: int = PAGE_SIZE) -> None:
        self.log = log
        self.views = views
        self.page_size = page_size
        self._fold: _Fold | None = None

    # --- what an auditor asks ----------------------------------------------------------

    def history(self, user_id: UUID) -> list[Entry]:
        """The user's entries, oldest first, with the fold's running balances."""
        return list(self._folded().by_user.get(user_id, []))

    def balance_at(self, user_id: UUID, instant: datetime) -> int:
        """The balance after the last entry recorded at or before `instant` (naive = UTC)."""
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        balance = 0
        for entry in self.history(user_id):
            if entry.created_at <= instant:
                balance = entry.balance
        return balance

    def balance(self, user_id: UUID) -> int:
        entries = self.history(user_id)
        return entries[-1].balance if entries else 0

    def verify(self) -> Report:
        """Compare the read models with a fresh fold and check the ledger's invariants."""
        before = self.views.position_of(FOLLOWER_NAME)
        balances = self.views.all_balances()
        fold = self._advance(_Fold())  # reaches at least `before`: the log leads the views
        users = set(balances) | set(fold.by_user)
        lists = {user_id: self._credit_rows(user_id) for user_id in users}
        after = self.views.position_of(FOLLOWER_NAME)
        self._fold = fold = self._advance(fold)  # and now at least `after`
        report = Report(
            problems=list(fold.problems),
            users=len(fold.ledger_users | set(fold.by_user)),
            entries=len(fold.entries),
            events=fold.events,
            log_position=fold.position,
            read_model_position=after,
        )
        for user_id in sorted(set(balances) | set(fold.by_user), key=str):
            report.problems += _compare_user(
                user_id,
                fold.by_user.get(user_id, []),
                balances.get(user_id),
                lists.get(user_id, []),
                before,
                after,
            )
        report.problems += _check_videos(fold) + _check_orders(fold)
        return report

    def export(self, fmt: str, out: TextIO, user_id: UUID | None = None) -> int:
        """Write the entries (all users in log order, or one user's); how many."""
        entries = self.history(user_id) if user_id else self._folded().entries
        if fmt == "jsonl":
            for entry in entries:
                out.write(json.dumps(entry.as_record()) + "\n")
        elif fmt == "csv":
            writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
            writer.writeheader()
            for entry in entries:
                record = entry.as_record()
                writer.writerow({**record, "reference": record["reference"] or ""})
        else:
            raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
        return len(entries)

    # --- the fold ------------------------------------------------------------------------

    def _folded(self) -> _Fold:
        if self._fold is None:
            self._fold = self._advance(_Fold())
        return self._fold

    def _stored(self, after: int) -> Iterator[Stored | Undecodable]:
        """Every event after `after`; one that cannot be decoded is a finding, not a crash:
        it is handed on as such and the replay goes on after it."""
        reader = LogReader(self.log)
        while True:
            try:
                page = reader.read(after, self.page_size)
            except Undecodable as bad:
                yield bad
                after = bad.position
                continue
            if not page:
                return
            yield from page
            after = page[-1].position

    def _advance(self, fold: _Fold) -> _Fold:
        """Fold the events recorded after `fold.position` into it."""
        running, ledger_owner = fold.running, fold.ledger_owner
        for stored in self._stored(fold.position):
            if isinstance(stored, Undecodable):
                fold.problems.append(str(stored))
                fold.position = stored.position
                continue
            e = stored.event
            fold.events += 1
            fold.position = stored.position
            if isinstance(e, User.Registered | User.RoleChanged):
                fold.roles[e.originator_id] = e.role
            if isinstance(e, CreditLedger.Opened):
                ledger_owner[e.originator_id] = e.user_id
                fold.ledger_users.add(e.user_id)
            elif isinstance(e, Video.Requested):
                video = fold.videos[e.originator_id]
                video.user_id, video.cost = e.user_id, e.cost
            elif isinstance(e, Video.Completed):
                fold.videos[e.originator_id].status = "COMPLETED"
            elif isinstance(e, Video.Failed):
                fold.videos[e.originator_id].status = "FAILED"
            elif isinstance(e, Video.Cancelled):
                fold.videos[e.originator_id].status = "CANCELLED"
            elif isinstance(e, Order.Created):
                order = fold.orders[e.originator_id]
                order.user_id, order.credits = e.user_id, e.credits
            elif isinstance(e, Order.Paid):
                fold.orders[e.originator_id].paid += 1
            elif isinstance(e, Order.Refunded):
                fold.orders[e.originator_id].refunded += 1
            entry = _entry(e, stored.position, running)
            if entry is None:
                continue
            owner = ledger_owner.get(e.originator_id)
            if owner != entry.user_id:
                fold.problems.append(
                    f"entry {entry.id}: ledger {e.originator_id} belongs to user {owner},"
                    f" but the entry names user {entry.user_id}"
                )
            fold.entries.append(entry)
            fold.by_user[entry.user_id].append(entry)
            fold.problems += _check_entry(entry)
            if entry.admin_id and fold.roles.get(entry.admin_id) != "ADMIN":
                fold.problems.append(
                    f"user {entry.user_id}: ADJUSTMENT entry {entry.id} names {entry.admin_id},"
                    " who was not an ADMIN at the time"
                )
            if entry.type == "CONSUME":
                fold.videos[entry.reference].reserved.append(entry)  # type: ignore[index]
            elif entry.type == "REFUND":
                fold.videos[entry.reference].refunded.append(entry)  # type: ignore[index]
            elif entry.type == "RECHARGE":
                fold.orders[entry.reference].recharges.append(entry)  # type: ignore[index]
            elif entry.type == "REVERSAL":
                fold.orders[entry.reference].reversals.append(entry)  # type: ignore[index]
        return fold

    # --- the read models ----------------------------------------------------------------

    def _credit_rows(self, user_id: UUID) -> list[CreditRow]:
        """Every entry of the user, oldest first. Pages are newest first, so an entry
        projected while we page shifts older ones down: we may see one twice, never miss one."""
        rows: list[CreditRow] = []
        seen: set[UUID] = set()
        page = 1
        while True:
            items = self.views.credits(user_id, None, page, self.page_size).items
            for row in items:
                if row.id not in seen:
                    seen.add(row.id)
                    rows.append(row)
            if len(items) < self.page_size:
                break
            page += 1
        rows.reverse()
        return rows


def iso(instant: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as the API writes timestamps."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entry(e: Any, position: int, running: dict[UUID, int]) -> Entry | None:
    """The credit entry an event makes, with the fold's own running balance."""
    if isinstance(e, CreditLedger.Rewarded):
        kind, amount, reference = "REWARD", e.amount, None
    elif isinstance(e, CreditLedger.Recharged):
        kind, amount, reference = "RECHARGE", e.amount, e.order_id
    elif isinstance(e, CreditLedger.Reserved):
        kind, amount, reference = "CONSUME", -e.amount, e.video_id
    elif isinstance(e, CreditLedger.Refunded):
        kind, amount, reference = "REFUND", e.amount, e.video_id
    elif isinstance(e, CreditLedger.Reversed):
        kind, amount, reference = "REVERSAL", -e.amount, e.order_id
    elif isinstance(e, CreditLedger.Adjusted):
        kind, amount, reference = "ADJUSTMENT", e.amount, None
    else:
        return None
    balance = running.get(e.user_id, 0) + amount
    running[e.user_id] = balance
    admin = (getattr(e, "admin_id", None), getattr(e, "reason", None))
    return Entry(
        event_id(e),
        e.user_id,
        kind,
        amount,
        balance,
        e.balance,
        reference,
        e.timestamp,
        position,
        *admin,
    )


def _check_entry(entry: Entry) -> list[str]:
    problems = []
    where = f"user {entry.user_id}, {entry.type} entry {entry.id} (log position {entry.position})"
    spends = entry.type in ("CONSUME", "REVERSAL")
    if entry.amount == 0 or (entry.type != "ADJUSTMENT" and (entry.amount < 0) != spends):
        problems.append(f"{where}: amount {entry.amount} has the wrong sign")
    if entry.type == "ADJUSTMENT" and not entry.admin_id:
        problems.append(f"{where}: the adjustment names no admin")
    if entry.recorded_balance != entry.balance:
        problems.append(
            f"{where}: the event records balance {entry.recorded_balance},"
            f" the replay computes {entry.balance}"
        )
    if entry.balance < 0:
        problems.append(f"{where}: the balance goes negative ({entry.balance})")
    return problems


def _compare_user(
    user_id: UUID,
    folded: list[Entry],
    balance: int | None,
    rows: list[CreditRow],
    before: int,
    after: int,
) -> list[str]:
    """The read model must show the fold as of some position between `before` and `after`
    (the same position when nothing was written during the audit)."""
    problems = []
    for index, (entry, row) in enumerate(zip(folded, rows, strict=False), start=1):
        expected = (entry.id, entry.type, entry.amount, entry.balance)
        actual = (row.id, row.type, row.amount, row.balance)
        if actual != expected:
            problems.append(
                f"user {user_id}: read-model entry #{index} is {_show(actual)},"
                f" the replay says {_show(expected)}"
            )
            break  # the rest of the list is shifted; one message says it
    else:
        settled = sum(1 for entry in folded if entry.position <= before)
        if len(rows) > len(folded):
            extra = [str(row.id) for row in rows[len(folded) :]]
            problems.append(
                f"user {user_id}: the read model lists {_entries(len(extra))} the log does not"
                f" have: {_few(extra)}"
            )
        elif len(rows) < settled:
            missing = [str(entry.id) for entry in folded[len(rows) : settled]]
            problems.append(
                f"user {user_id}: the read model lacks {_entries(len(missing))}: {_few(missing)}"
            )
    acceptable = _balances_between(folded, before, after)
    if balance not in acceptable:
        replay = " or ".join("no balance" if b is None else str(b) for b in acceptable)
        shown = "missing" if balance is None else str(balance)
        problems.append(
            f"user {user_id}: the read-model balance is {shown}, the replay says {replay}"
        )
    return problems


def _balances_between(folded: list[Entry], before: int, after: int) -> list[int | None]:
    """The balances the user had at any log position from `before` to `after`."""
    acceptable: list[int | None] = [None]  # no entry yet: no balance row
    for entry in folded:
        if entry.position <= before:
            acceptable = [entry.balance]
        elif entry.position <= after:
            acceptable.append(entry.balance)
    return acceptable


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _few(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")


def _show(values: tuple[Any, ...]) -> str:
    entry_id, kind, amount, balance = values
    return f"{kind} {amount:+d} → {balance} (entry {entry_id})"


def _check_videos(fold: _Fold) -> list[str]:
    """Each CONSUME has its video at its cost; each REFUND gives back a failed or
    cancelled video's reservation, once; no failed or cancelled video stays charged."""
    problems = []
    for video_id, video in fold.videos.items():
        for entry in video.reserved:
            who = f"user {entry.user_id}: CONSUME entry {entry.id} for video {video_id}"
            if video.user_id is None:
                problems.append(f"{who}: no such video was requested")
            elif video.user_id != entry.user_id:
                problems.append(f"{who}: the video belongs to user {video.user_id}")
            elif video.cost != -entry.amount:
                problems.append(f"{who}: charges {-entry.amount} but the video costs {video.cost}")
        if len(video.reserved) > 1:
            problems.append(
                f"video {video_id}: charged {len(video.reserved)} times"
                f" (entries {', '.join(str(e.id) for e in video.reserved)})"
            )
        for entry in video.refunded:
            who = f"user {entry.user_id}: REFUND entry {entry.id} for video {video_id}"
            reservation = next(
                (r for r in video.reserved if r.user_id == entry.user_id),
                None,
            )
            if reservation is None:
                problems.append(f"{who}: the video was never charged to this user")
            elif reservation.position > entry.position:
                problems.append(f"{who}: refunded before it was charged")
            elif -reservation.amount != entry.amount:
                problems.append(
                    f"{who}: refunds {entry.amount} but {-reservation.amount} were charged"
                )
            if video.status not in REFUNDABLE:
                state = video.status or ("still running" if video.user_id else "unknown")
                problems.append(f"{who}: the video is {state}, not FAILED or CANCELLED")
        if len(video.refunded) > 1:
            problems.append(
                f"video {video_id}: refunded {len(video.refunded)} times"
                f" (entries {', '.join(str(e.id) for e in video.refunded)})"
            )
        if video.status in REFUNDABLE and video.reserved and not video.refunded:
            problems.append(
                f"user {video.user_id}: video {video_id} is {video.status}"
                f" but its {-video.reserved[0].amount} credits were never refunded"
            )
    return problems


def _check_orders(fold: _Fold) -> list[str]:
    """Each RECHARGE credits a paid order of the same user and credits, once; each
    REVERSAL takes a refunded order's recharge back, once; no refunded order keeps them."""
    problems = []
    for order_id, order in fold.orders.items():
        if order.paid > 1:
            problems.append(f"order {order_id}: paid {order.paid} times")
        for entry in order.recharges:
            who = f"user {entry.user_id}: RECHARGE entry {entry.id} for order {order_id}"
            if order.user_id is None:
                problems.append(f"{who}: no such order exists")
                continue
            if order.user_id != entry.user_id:
                problems.append(f"{who}: the order belongs to user {order.user_id}")
            if order.credits != entry.amount:
                problems.append(
                    f"{who}: credits {entry.amount} but the order is for {order.credits}"
                )
            if not order.paid:
                problems.append(f"{who}: the order was never paid")
        if len(order.recharges) > 1:
            problems.append(
                f"order {order_id}: recharged {len(order.recharges)} times"
                f" (entries {', '.join(str(e.id) for e in order.recharges)})"
            )
        problems += _check_reversals(order_id, order)
    return problems


def _check_reversals(order_id: UUID, order: _OrderFacts) -> list[str]:
    problems = []
    for entry in order.reversals:
        who = f"user {entry.user_id}: REVERSAL entry {entry.id} for order {order_id}"
        recharge = next((r for r in order.recharges if r.user_id == entry.user_id), None)
        if recharge is None:
            problems.append(f"{who}: the order was never credited to this user")
        elif recharge.position > entry.position:
            problems.append(f"{who}: taken back before it was credited")
        elif recharge.amount != -entry.amount:
            problems.append(
                f"{who}: takes back {-entry.amount} but {recharge.amount} were credited"
            )
        if not order.refunded:
            problems.append(f"{who}: the order was never refunded")
    if len(order.reversals) > 1:
        problems.append(
            f"order {order_id}: reversed {len(order.reversals)} times"
            f" (entries {', '.join(str(e.id) for e in order.reversals)})"
        )
    if order.refunded and order.recharges and not order.reversals:
        problems.append(
            f"user {order.user_id}: order {order_id} is REFUNDED"
            f" but its {order.credits} credits were never taken back"
        )
    return problems
