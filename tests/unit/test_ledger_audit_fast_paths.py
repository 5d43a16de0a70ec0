"""The audit's fast paths give what their plain forms give.

Export lines against `json.dumps(entry.as_record())`, the entry id against `uuid5`, and
the chain check's inline walk (events and links in batches of different sizes) against
its event-by-event walk, over logs with events changed, inserted and removed.
"""

from __future__ import annotations

import json
import random
from uuid import UUID, uuid4, uuid5

import pytest

from sora2.application.audit.chain_check import ChainCheck
from sora2.application.audit.export import jsonl_lines
from sora2.application.audit.fold import Entry
from sora2.application.ledger_chain import GENESIS, link_hash

LEDGER, USER, VIDEO = uuid4().bytes, uuid4().bytes, uuid4().bytes


def entry(**changes: object) -> Entry:
    fields = {
        "position": 7,
        "ledger": LEDGER,
        "version": 3,
        "user": USER,
        "type": "CONSUME",
        "amount": -5,
        "balance": 95,
        "recorded_balance": 95,
        "reference": VIDEO,
        "timestamp": "2026-12-02T04:09:37.095296+00:00",
    }
    return Entry(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"reference": None, "type": "REWARD", "amount": 10},
        {"reference": b"", "type": "ADJUSTMENT", "admin": USER, "reason": "why"},
        {"timestamp": "2026-12-02T04:09:37+05:30"},
        {"timestamp": 'quote " and \\ and\ttab'},
        {"timestamp": "caf\u00e9 \u2603 \x7f"},
        {"type": "NEW\u00e9KIND", "amount": 0},
    ],
)
def test_export_lines_are_json_dumps_of_the_record(changes: dict[str, object]) -> None:
    one = entry(**changes)
    assert list(jsonl_lines([one, one])) == [json.dumps(one.as_record()) + "\n"] * 2


def test_the_entry_id_is_uuid5_of_its_ledger_and_version() -> None:
    for version in (1, 9, 10, 12345):
        expected = uuid5(UUID(bytes=LEDGER), str(version))
        assert entry(version=version).id == expected


def stored_log(n: int, seed: int) -> tuple[list[tuple], list[tuple]]:
    """n events and their links, then tampered with at random (seeded)."""
    rng = random.Random(seed)
    topics = ["a:Ledger.Reserved", "b:Video.Requested", "c:Caf\u00e9.Made"]
    events, links, previous, before = [], [], GENESIS, 0
    for position in range(1, n + 1):
        event = (position, uuid4().bytes, rng.randint(1, 9), rng.choice(topics), b'{"x":1}')
        previous = link_hash(previous, *event)
        events.append(event)
        links.append((position, before, previous))
        before = position
    for _ in range(rng.randint(0, 4)):
        i = rng.randrange(len(events))
        what = rng.choice(["change", "drop event", "drop link", "insert"])
        if what == "change":
            p, o, v, t, _ = events[i]
            events[i] = (p, o, v, t, b'{"x":2}')
        elif what == "drop event" and len(events) > 1:
            del events[i]
        elif what == "drop link" and len(links) > 1:
            del links[rng.randrange(len(links))]
        elif what == "insert":
            p = events[i][0]
            if all(e[0] != p + 10_000 for e in events):
                events.append((p + 10_000, uuid4().bytes, 1, topics[0], b"{}"))
    events.sort()
    return events, links


def batched(rows: list, size: int) -> list[list]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


@pytest.mark.parametrize("seed", range(40))
def test_the_inline_chain_walk_finds_what_the_event_by_event_walk_finds(seed: int) -> None:
    events, links = stored_log(60, seed)
    inline = ChainCheck(iter(batched(links, 7)), None)
    for batch in batched(events, 11):
        inline.check(batch)
    inline.finish()
    plain = ChainCheck(iter([links]), None)
    for event in events:
        plain.event(*event)
    plain.finish()
    assert [(p.kind, p.message, p.position) for p in inline.problems] == [
        (p.kind, p.message, p.position) for p in plain.problems
    ]
    assert inline.head == plain.head
    assert inline.last_position == plain.last_position
