"""What an audit found: problems by kind, the ledger's totals, and how it went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# every kind of problem, in the order a summary lists them
KINDS = (
    "undecodable",  # a stored event that cannot be read
    "chain",  # an event changed, inserted or removed since it was stored
    "checkpoint",  # the log does not match a signed checkpoint
    "sequence",  # an aggregate's versions skip or repeat
    "ledger",  # an entry's amount or balance is wrong
    "rule",  # an entry without the video or order that justifies it
    "read-model",  # a read-model row that is not what the log says
)


LABELS = {
    "REWARD": "rewards",
    "RECHARGE": "recharges",
    "CONSUME": "consumes",
    "REFUND": "refunds",
    "ADJUSTMENT": "adjustments",
    "REVERSAL": "reversals",
}


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    position: int | None = None  # the log position it is about, if one

    def __str__(self) -> str:
        return self.message


@dataclass
class Totals:
    count: int = 0
    sum: int = 0  # signed


@dataclass
class CheckpointResult:
    file: str
    position: int
    hash: str
    signed_at: str
    key: str  # the public key's fingerprint
    key_pinned: bool  # the key is the one configured, not only the one the file names
    signature_valid: bool
    proven: bool = False


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    events: int = 0
    users: int = 0
    entries: int = 0
    log_position: int = 0
    read_model_position: int = 0
    totals: dict[str, Totals] = field(default_factory=dict)
    balances_sum: int = 0  # the log's own running balances, summed
    recorded_balances_sum: int = 0  # the balances the users' last entries record
    read_model_balances_sum: int = 0  # rm_balances, at the read models' position
    log_balances_sum_at_read_models: int = 0  # the log's sum at that same position
    chain_head: str | None = None  # hex hash of the last link
    chained_up_to: int = 0
    checkpoint: CheckpointResult | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def by_kind(self) -> dict[str, int]:
        counts = {kind: 0 for kind in KINDS}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        return {kind: n for kind, n in counts.items() if n}

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def equation(self) -> str:
        """`sum of balances = rewards + recharges − consumes + refunds …`, with figures."""
        terms = []
        for kind, totals in self.totals.items():
            if totals.count:
                sign = "−" if totals.sum < 0 else "+"
                terms.append(f"{sign} {abs(totals.sum):,} {LABELS.get(kind, kind.lower())}")
        right = " ".join(terms).removeprefix("+ ") if terms else "0"
        return f"{self.balances_sum:,} = {right}"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "users": self.users,
            "entries": self.entries,
            "logPosition": self.log_position,
            "readModelPosition": self.read_model_position,
            "totals": {k: {"count": t.count, "sum": t.sum} for k, t in self.totals.items()},
            "balances": {
                "sum": self.balances_sum,
                "equation": self.equation(),
                "holds": self.balances_sum == sum(t.sum for t in self.totals.values()),
                "recordedSum": self.recorded_balances_sum,
                "readModelSum": self.read_model_balances_sum,
                "logSumAtReadModelPosition": self.log_balances_sum_at_read_models,
            },
            "chain": {"head": self.chain_head, "chainedUpTo": self.chained_up_to},
            "checkpoint": None if self.checkpoint is None else vars(self.checkpoint),
            "problemsByKind": self.by_kind(),
            "problems": [
                {"kind": p.kind, "position": p.position, "message": p.message}
                for p in self.problems
            ],
            "seconds": round(self.seconds, 3),
            "eventsPerSecond": round(self.events_per_second),
        }
