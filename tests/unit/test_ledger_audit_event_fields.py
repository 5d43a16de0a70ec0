"""The fold decodes only the fields its handlers read, and finds what the whole decode finds.

A log of each event kind the fold reads, each event also stored edited in ways a
tamperer or a bug could (a field of another type, missing, repeated, an id that is no
object, broken JSON), folded with the shaped decode and with every event decoded whole:
the two folds must hold the same entries, facts and problems.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import msgspec
import pytest

from sora2.application.audit.event_fields import LEDGER, ORDER, SESSION, USER, VIDEO
from sora2.application.audit.fold import Fold

USER_ID, LEDGER_ID, VIDEO_ID, ORDER_ID = (uuid4() for _ in range(4))
NOW = {"_type_": "datetime_iso", "_data_": "2026-12-04T01:14:34.828557+00:00"}


def uid(value: Any) -> dict[str, str]:
    return {"_type_": "uuid_hex", "_data_": value.hex}


EVENTS: list[tuple[bytes, str, dict[str, Any]]] = [
    (USER_ID.bytes, USER + "Registered",
     {"timestamp": NOW, "email": "a@b.c", "username": "a", "password_hash": "x", "role": "USER"}),
    (USER_ID.bytes, USER + "RoleChanged", {"timestamp": NOW, "role": "ADMIN"}),
    (uuid4().bytes, SESSION + "Started", {"timestamp": NOW, "user_id": uid(USER_ID)}),
    (LEDGER_ID.bytes, LEDGER + "Opened", {"timestamp": NOW, "user_id": uid(USER_ID)}),
    (LEDGER_ID.bytes, LEDGER + "Rewarded",
     {"timestamp": NOW, "user_id": uid(USER_ID), "amount": 10, "balance": 10}),
    (ORDER_ID.bytes, ORDER + "Created",
     {"timestamp": NOW, "user_id": uid(USER_ID), "credits": 100, "amount": "10.00"}),
    (ORDER_ID.bytes, ORDER + "Paid", {"timestamp": NOW}),
    (LEDGER_ID.bytes, LEDGER + "Recharged",
     {"timestamp": NOW, "user_id": uid(USER_ID), "order_id": uid(ORDER_ID), "amount": 100,
      "balance": 110}),
    (VIDEO_ID.bytes, VIDEO + "Requested",
     {"timestamp": NOW, "user_id": uid(USER_ID), "cost": 5, "duration": 5, "prompt": "p"}),
    (LEDGER_ID.bytes, LEDGER + "Reserved",
     {"timestamp": NOW, "user_id": uid(USER_ID), "video_id": uid(VIDEO_ID), "amount": 5,
      "balance": 105}),
    (VIDEO_ID.bytes, VIDEO + "Completed",
     {"timestamp": NOW, "video_key": "v.mp4", "thumbnail_key": "t.jpg"}),
    (LEDGER_ID.bytes, LEDGER + "Adjusted",
     {"timestamp": NOW, "user_id": uid(USER_ID), "admin_id": uid(USER_ID), "amount": -5,
      "balance": 100, "reason": "why"}),
    (LEDGER_ID.bytes, LEDGER + "Settled",
     {"timestamp": NOW, "user_id": uid(USER_ID), "video_id": uid(VIDEO_ID)}),
    (VIDEO_ID.bytes, VIDEO + "Deleted", {"timestamp": NOW}),
    (uuid4().bytes, "sora2.domain.users.claim:Claim.Made", {"timestamp": NOW}),
    (uuid4().bytes, "sora2.domain.nowhere:Gone.Event", {"timestamp": NOW}),
]  # fmt: skip


def edits(state: dict[str, Any]) -> list[bytes]:
    """The event as stored, and edited: each field of another type or gone, repeated."""
    encoded = json.dumps(state).encode()
    out = [encoded, encoded[:-1], b"[1, 2]", b"null", encoded[:-1] + b', "timestamp": 5}']
    for name in state:
        for value in ("7", 7, 7.0, True, None, {}, [], {"_data_": 7}, {"_data_": "zz"}):
            out.append(json.dumps({**state, name: value}).encode())
        out.append(json.dumps({k: v for k, v in state.items() if k != name}).encode())
    return out


class WholeFold(Fold):
    """The fold as it was: every event decoded whole."""

    def _fields_decoder(self, topic: str) -> Any:
        return self._decode


def folded(kind: type[Fold], log: list[tuple]) -> dict[str, Any]:
    fold = kind()
    fold.fold(log)
    return {
        "entries": [msgspec.structs.asdict(e) for e in fold.entries],
        "problems": [(p.kind, p.message, p.position) for p in fold.problems],
        **{
            name: repr(getattr(fold, name))
            for name in ("balances", "recorded", "users", "sessions", "videos", "orders")
        },
    }


@pytest.mark.parametrize("edited", range(len(EVENTS)))
def test_the_shaped_decode_folds_as_the_whole_decode(edited: int) -> None:
    originator, topic, state = EVENTS[edited]
    for variant in edits(state):
        log, version = [], {}
        for position, (o, t, s) in enumerate(EVENTS, 1):
            version[o] = version.get(o, 0) + 1
            body = variant if position - 1 == edited else json.dumps(s).encode()
            log.append((position, o, version[o], t, body))
        assert folded(Fold, log) == folded(WholeFold, log), (topic, variant)


@pytest.mark.parametrize("edited", range(len(EVENTS)))
def test_an_entries_only_fold_holds_the_whole_folds_entries(edited: int) -> None:
    """Export, history and balances read an entries-only fold: the same entries, each with
    its running balance, whatever the events it skips hold."""
    originator, topic, state = EVENTS[edited]
    for variant in edits(state):
        log, version = [], {}
        for position, (o, t, s) in enumerate(EVENTS * 2, 1):
            version[o] = version.get(o, 0) + 1
            body = variant if position - 1 == edited else json.dumps(s).encode()
            log.append((position, o, version[o], t, body))
        whole, entries_only = Fold(), Fold(entries_only=True)
        whole.fold(log)
        entries_only.fold(log)
        assert [msgspec.structs.asdict(e) for e in entries_only.entries] == [
            msgspec.structs.asdict(e) for e in whole.entries
        ], (topic, variant)
        assert entries_only.by_user.keys() == whole.by_user.keys()
        assert (entries_only.events, entries_only.position) == (whole.events, whole.position)
