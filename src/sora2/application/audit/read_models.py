"""Every read-model row against the fold of the log, one scan per table.

Called when the fold stands exactly at the read models' own position (both come from one
snapshot, and the read models commit their rows with that position), so whatever differs
is a fault, not lag. Each difference is one problem naming the table, the row, the field,
the read model's value and the log's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sora2.application.audit.fold import Fold, show_id
from sora2.application.audit.report import Problem
from sora2.application.audit.store import AuditReading

Rows = Callable[[str], Iterator[list[tuple]]]


def compare_read_models(fold: Fold, reading: AuditReading) -> tuple[list[Problem], int]:
    """The problems, and the sum of the read model's balances."""
    problems: list[Problem] = []
    problems += _users(fold, reading.rows("users"))
    problems += _sessions(fold, reading.rows("sessions"))
    balance_problems, balances_sum = _balances(fold, reading.rows("balances"))
    problems += balance_problems
    problems += _credits(fold, reading.rows("credits"))
    problems += _orders(fold, reading.rows("orders"))
    problems += _videos(fold, reading.rows("videos"))
    return problems, balances_sum


def _key(text: Any) -> bytes | None:
    """A read model's UUID text as the fold's 16-byte key (None if it is no UUID)."""
    try:
        key = _fromhex(text.replace("-", ""))
    except (ValueError, AttributeError):
        return None
    return key if len(key) == 16 else None


_fromhex = bytes.fromhex


# Columns that hold ids: compared as 16-byte keys, shown as UUIDs.
ID_FIELDS = {"id", "user_id", "reference_id"}


def _differences(
    table: str, what: str, row: tuple, fields: tuple[str, ...], expected: tuple
) -> list[Problem]:
    """One problem per field that differs (fields and values in the same order); id
    fields are compared as keys and shown as the read model holds them."""
    problems = []
    for name, actual, wanted in zip(fields, row, expected, strict=True):
        if name in ID_FIELDS:
            if _key(actual) == wanted:
                continue
            wanted = show_id(wanted) if wanted else None
        elif actual == wanted:
            continue
        problems.append(
            Problem(
                "read-model",
                f"rm_{table} {what}: {name} is {_show(actual)} in the read model, "
                f"{_show(wanted)} in the log",
            )
        )
    return problems


def _show(value: Any) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def _missing(table: str, what: str, state: str) -> Problem:
    return Problem("read-model", f"rm_{table} {what}: missing from the read model ({state})")


def _extra(table: str, what: str) -> Problem:
    return Problem("read-model", f"rm_{table} {what}: in the read model, not in the log")


USER_FIELDS = (
    "email",
    "username",
    "avatar_key",
    "role",
    "created_at",
    "session_epoch",
    "suspended",
)


def _users(fold: Fold, batches: Iterator[list[tuple]]) -> list[Problem]:
    problems, seen = [], set()
    users = fold.users
    for rows in batches:
        for row in rows:
            key = _key(row[0])
            facts = users.get(key) if key else None
            if facts is None:
                problems.append(_extra("users", f"user {row[0]}"))
                continue
            seen.add(key)
            expected = (
                facts.email,
                facts.username,
                facts.avatar_key,
                facts.role,
                facts.created_at,
                facts.session_epoch,
                facts.suspended,
            )
            if (*row[1:7], int(row[7])) != expected:
                problems += _differences("users", f"user {row[0]}", row[1:], USER_FIELDS, expected)
    for key, facts in users.items():
        if key not in seen:
            problems.append(_missing("users", f"user {show_id(key)}", facts.email))
    return problems


SESSION_FIELDS = ("user_id", "ended")


def _sessions(fold: Fold, batches: Iterator[list[tuple]]) -> list[Problem]:
    problems, seen = [], set()
    sessions = fold.sessions
    for rows in batches:
        for row in rows:
            key = _key(row[0])
            facts = sessions.get(key) if key else None
            if facts is None:
                problems.append(_extra("sessions", f"session {row[0]}"))
                continue
            seen.add(key)
            actual = (row[1], int(row[2]))
            if (_key(row[1]), actual[1]) != (facts[0], facts[1]):
                problems += _differences(
                    "sessions", f"session {row[0]}", actual, SESSION_FIELDS, (facts[0], facts[1])
                )
    for key, facts in sessions.items():
        if key not in seen:
            state = f"user {show_id(facts[0])}, {'ended' if facts[1] else 'open'}"
            problems.append(_missing("sessions", f"session {show_id(key)}", state))
    return problems


def _balances(fold: Fold, batches: Iterator[list[tuple]]) -> tuple[list[Problem], int]:
    problems, seen, total = [], set(), 0
    balances = fold.balances
    for rows in batches:
        for user_id, balance in rows:
            total += int(balance)
            key = _key(user_id)
            if key not in balances:
                problems.append(_extra("balances", f"user {user_id} (balance {balance})"))
                continue
            seen.add(key)
            if balance != balances[key]:
                problems += _differences(
                    "balances", f"user {user_id}", (balance,), ("balance",), (balances[key],)
                )
    for key, balance in balances.items():
        if key not in seen:
            problems.append(_missing("balances", f"user {show_id(key)}", f"balance {balance}"))
    return problems, total


CREDIT_FIELDS = ("id", "user_id", "amount", "balance", "type", "reference_id", "created_at")


def _credits(fold: Fold, batches: Iterator[list[tuple]]) -> list[Problem]:
    """The largest table: each row first compared inline (its ids parsed in place, the
    entry's id derived last), and only a row that may differ goes through `_differences`."""
    problems = []
    entries = {entry.position: entry for entry in fold.entries}
    pop, fromhex = entries.pop, _fromhex
    for rows in batches:
        for row in rows:
            seq, id_, user_id, amount, balance, type_, reference, created_at = row
            entry = pop(seq, None)
            if entry is None:
                what = f"entry {id_} (user {user_id}, {type_} {amount}, seq {seq})"
                problems.append(_extra("credits", what))
                continue
            try:
                same = (
                    amount == entry.amount
                    and balance == entry.balance
                    and type_ == entry.type
                    and created_at == entry.timestamp
                    and len(user := fromhex(user_id.replace("-", ""))) == 16
                    and user == entry.user
                    and (
                        entry.reference is None
                        if reference is None
                        else len(ref := fromhex(reference.replace("-", ""))) == 16
                        and ref == entry.reference
                    )
                    and fromhex(id_.replace("-", "")) == entry.key
                )
            except (ValueError, AttributeError, TypeError):
                same = False
            if not same:
                expected = (
                    entry.key,
                    entry.user,
                    entry.amount,
                    entry.balance,
                    entry.type,
                    entry.reference,
                    entry.timestamp,
                )
                what = f"entry {id_} (user {user_id}, {type_} {amount}, seq {seq})"
                problems += _differences("credits", what, row[1:], CREDIT_FIELDS, expected)
    for entry in entries.values():
        problems.append(
            _missing(
                "credits",
                f"entry {entry.id} (user {show_id(entry.user)}, event {entry.position})",
                f"{entry.type} {entry.amount:+d} → {entry.balance}",
            )
        )
    return problems


ORDER_FIELDS = ("user_id", "amount", "credits", "status", "created_at", "paid_at")


def _orders(fold: Fold, batches: Iterator[list[tuple]]) -> list[Problem]:
    problems, seen = [], set()
    orders = fold.orders
    for rows in batches:
        for row in rows:
            key = _key(row[0])
            order = orders.get(key) if key else None
            if order is None or order.status is None:
                problems.append(_extra("orders", f"order {row[0]}"))
                continue
            seen.add(key)
            expected = (
                order.user,
                order.amount,
                order.credits,
                order.status,
                order.created_at,
                order.paid_at,
            )
            if (_key(row[1]), *row[2:]) != expected:
                problems += _differences(
                    "orders", f"order {row[0]}", row[1:], ORDER_FIELDS, expected
                )
    for key, order in orders.items():
        if order.status is not None and key not in seen:
            problems.append(_missing("orders", f"order {show_id(key)}", order.status))
    return problems


VIDEO_FIELDS = (
    "user_id",
    "status",
    "cost",
    "duration",
    "video_key",
    "thumbnail_key",
    "created_at",
)


def _videos(fold: Fold, batches: Iterator[list[tuple]]) -> list[Problem]:
    """A deleted video leaves the read models: only the others are expected there."""
    problems, seen = [], set()
    videos = fold.videos
    for rows in batches:
        for row in rows:
            key = _key(row[0])
            video = videos.get(key) if key else None
            what = f"video {row[0]}"
            if video is None or video.status is None:
                problems.append(_extra("videos", what))
                continue
            if video.deleted:
                problems.append(
                    Problem(
                        "read-model",
                        f"rm_videos {what}: in the read model, but deleted in the log",
                    )
                )
                continue
            seen.add(key)
            expected = (
                video.user,
                video.status,
                video.cost,
                video.duration,
                video.video_key,
                video.thumbnail_key,
                video.created_at,
            )
            if (_key(row[1]), *row[2:]) != expected:
                problems += _differences("videos", what, row[1:], VIDEO_FIELDS, expected)
    for key, video in videos.items():
        if video.status is not None and not video.deleted and key not in seen:
            problems.append(_missing("videos", f"video {show_id(key)}", video.status))
    return problems
