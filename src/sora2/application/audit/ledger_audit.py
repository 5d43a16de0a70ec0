"""The auditors' replay of the log: verify, history, balances and export from one fold.

Everything here reads one snapshot of the database (`AuditStore.reading`): the log through
a server-side cursor, folded in one pass, with the chain checked beside it; when the fold
stands at the read models' own position, each read-model table is compared in one scan.
"""

from __future__ import annotations

import csv
import gc
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from typing import TextIO
from uuid import UUID

from sora2.application.audit.chain_check import ChainCheck, Checkpoint
from sora2.application.audit.export import jsonl_lines
from sora2.application.audit.fold import KINDS, Entry, Fold
from sora2.application.audit.read_models import compare_read_models
from sora2.application.audit.report import KINDS as PROBLEM_KINDS
from sora2.application.audit.report import Report, Totals
from sora2.application.audit.rules import check_rules
from sora2.application.audit.store import AuditReading, AuditStore
from sora2.application.ledger_chain import ChainLink
from sora2.application.projections.read_models import FOLLOWER_NAME

EXPORT_COLUMNS = ("id", "userId", "type", "amount", "balance", "reference", "createdAt")
BATCH = 5_000
_position = itemgetter(0)

Progress = Callable[[int, int], None]  # (events done, events in the log)


class LedgerAudit:
    def __init__(self, store: AuditStore, batch: int = BATCH) -> None:
        self.store = store
        self.batch = batch
        self._fold: Fold | None = None

    # --- what an auditor asks ----------------------------------------------------------

    def verify(
        self, against: Checkpoint | None = None, on_progress: Progress | None = None
    ) -> Report:
        """Fold the log, check its chain, rules and every read model; what was found."""
        began = time.perf_counter()
        report = Report()
        with self.store.reading() as reading, _no_cyclic_gc():
            report.read_model_position = at = reading.position_of(FOLLOWER_NAME)
            total = reading.head()
            fold, chain = Fold(), ChainCheck(reading.links(self.batch), against)
            compared = False
            if on_progress:
                on_progress(0, total)
            for batch in reading.events(0, self.batch):
                if not compared and batch[-1][0] > at:  # the read models stand in this batch
                    split = bisect_right(batch, at, key=_position)
                    chain.check(batch[:split])
                    fold.fold(batch[:split])
                    compared = True
                    self._compare(fold, reading, report)
                    batch = batch[split:]
                chain.check(batch)
                fold.fold(batch)
                if on_progress:
                    on_progress(fold.position, max(total, fold.position))
            if not compared:
                self._compare(fold, reading, report)
            chain.finish()
        self._fold = fold
        report.problems = _ordered(
            fold.problems
            + chain.problems
            + chain.checkpoint_problems()
            + check_rules(fold)
            + report.problems
        )
        report.events, report.log_position = fold.events, fold.position
        report.users, report.entries = len(fold.users), len(fold.entries)
        report.totals = _totals(fold.entries)
        report.balances_sum = sum(fold.balances.values())
        report.recorded_balances_sum = sum(fold.recorded.values())
        if chain.head is not None:
            report.chain_head, report.chained_up_to = chain.head.hash.hex(), chain.head.position
        report.seconds = time.perf_counter() - began
        return report

    def history(self, user_id: UUID) -> list[Entry]:
        """The user's entries, oldest first, with the fold's running balances."""
        return list(self._folded().by_user.get(user_id.bytes, []))

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

    def export(self, fmt: str, out: TextIO, user_id: UUID | None = None) -> int:
        """Write the entries (all users in log order, or one user's); how many."""
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
        entries = self.history(user_id) if user_id else self._folded().entries
        if fmt == "jsonl":
            out.writelines(jsonl_lines(entries))
        else:
            writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
            writer.writeheader()
            for entry in entries:
                record = entry.as_record()
                writer.writerow({**record, "reference": record["reference"] or ""})
        return len(entries)

    def checkpoint_head(self) -> ChainLink | None:
        """Link anything unlinked, then the chain's head: what a checkpoint signs."""
        return self.store.chain_backlog()

    # --- inside ---------------------------------------------------------------------------

    def _compare(self, fold: Fold, reading: AuditReading, report: Report) -> None:
        problems, read_model_sum = compare_read_models(fold, reading)
        report.problems += problems
        report.read_model_balances_sum = read_model_sum
        report.log_balances_sum_at_read_models = sum(fold.balances.values())

    def _folded(self) -> Fold:
        if self._fold is None:  # what was asked of it needs the entries alone
            fold = Fold(entries_only=True)
            with self.store.reading() as reading, _no_cyclic_gc():
                for batch in reading.events(0, self.batch):
                    fold.fold(batch)
            self._fold = fold
        return self._fold


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The fold allocates hundreds of thousands of small objects and frees none: the cyclic
    collector would walk them again and again (a third of the time), finding nothing.
    After it, what survived goes straight to the oldest generation (freeze, then unfreeze:
    two list splices), not through the young ones' collections, one walk of it each."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _totals(entries: list[Entry]) -> dict[str, Totals]:
    totals = {kind: Totals() for kind, _ in KINDS.values()}
    for entry in entries:
        totals.setdefault(entry.type, Totals())
        t = totals[entry.type]
        t.count += 1
        t.sum += entry.amount
    known = {kind for kind, _ in KINDS.values()}
    return {k: t for k, t in totals.items() if t.count or k in known}


def _ordered(problems: list) -> list:
    rank = {kind: i for i, kind in enumerate(PROBLEM_KINDS)}
    return sorted(problems, key=lambda p: rank.get(p.kind, len(rank)))


def iso(instant: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as the API writes timestamps."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
