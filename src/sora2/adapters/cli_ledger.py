"""`sora2 ledger …`: the auditors' commands, over a replay of the event log.

Everything shown here comes from `LedgerAudit`'s own fold of the events, not from the
read models the API serves, so an auditor can check the API's numbers against it.
`python -m sora2 ledger …` runs the same commands where `sora2` is not on PATH.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from uuid import UUID

import psycopg

from sora2.adapters.cli_views import ProgressBar
from sora2.application.audit import Checkpoint, CheckpointResult, Entry, LedgerAudit, Report, iso
from sora2.domain.errors import InvalidInput
from sora2.domain.users.claim import Claim
from sora2.domain.users.rules import normalize_email
from sora2.domain.users.user import User

if TYPE_CHECKING:
    from sora2.bootstrap import Sora2

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command cannot run as asked; the message says why."""


def add_ledger_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add `ledger history|balance|verify|export` to a `sora2` command's subparsers."""
    ledger = subparsers.add_parser(
        "ledger",
        help="replay the credit ledger from the event log and audit it",
        description="Replay the credit ledger from the event log: history, balances, checks.",
    )
    commands = ledger.add_subparsers(dest="ledger_command", required=True)
    user_help = "the user's id (UUID) or email"

    history = commands.add_parser("history", help="a user's credit entries with running balances")
    history.add_argument("--user", required=True, help=user_help)

    balance = commands.add_parser("balance", help="a user's balance, now or at an instant")
    balance.add_argument("--user", required=True, help=user_help)
    balance.add_argument(
        "--at",
        type=parse_instant,
        default=None,
        help="ISO 8601 instant, e.g. 2025-01-31T23:59:59Z (no offset means UTC)",
    )

    verify = commands.add_parser(
        "verify",
        help="check the log's chain, the ledger's rules and every read model against the "
        "replay (exit 1 on problems)",
    )
    verify.add_argument(
        "--against",
        type=Path,
        default=None,
        help="a checkpoint file (`ledger checkpoint`): prove the log up to it is unchanged",
    )
    verify.add_argument(
        "--report", type=Path, default=None, help="also write the auditor's report as JSON here"
    )

    checkpoint = commands.add_parser(
        "checkpoint",
        help="sign the head of the log's hash chain (LEDGER_SIGNING_KEY) and publish it to "
        "NATS and a file",
    )
    checkpoint.add_argument(
        "--output",
        type=Path,
        default=None,
        help="file to write (default var/checkpoints/checkpoint-<position>.json)",
    )

    export = commands.add_parser("export", help="write every credit entry as JSON lines or CSV")
    export.add_argument("--format", required=True, choices=("jsonl", "csv"))
    export.add_argument("--user", default=None, help=f"{user_help} (default: every user)")
    export.add_argument("--output", type=Path, default=None, help="file to write (default stdout)")
    return ledger


def parse_instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 instant: {text!r} (e.g. 2025-01-31T23:59:59Z)"
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def run_ledger_command(args: argparse.Namespace, sora2: Sora2, out: TextIO | None = None) -> int:
    """Run the parsed `ledger` command; the process exit code."""
    from sora2.bootstrap import audit_store

    out = out or sys.stdout
    audit = LedgerAudit(audit_store(sora2))
    try:
        if args.ledger_command == "verify":
            return _verify(audit, sora2, args.against, args.report, out)
        if args.ledger_command == "checkpoint":
            return _checkpoint(audit, sora2, args.output, out)
        if args.ledger_command == "history":
            return _history(audit, sora2, resolve_user(sora2, args.user), out)
        if args.ledger_command == "balance":
            return _balance(audit, sora2, resolve_user(sora2, args.user), args.at, out)
        if args.ledger_command == "export":
            user_id = resolve_user(sora2, args.user) if args.user else None
            return _export(audit, args.format, user_id, args.output)
    except UsageError as error:
        print(f"sora2 ledger: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (psycopg.OperationalError, sqlite3.OperationalError) as error:
        print(f"sora2 ledger: the database cannot be read: {error}".rstrip(), file=sys.stderr)
        return EXIT_USAGE
    print(f"sora2 ledger: unknown command {args.ledger_command!r}", file=sys.stderr)
    return EXIT_USAGE


def resolve_user(sora2: Sora2, text: str) -> UUID:
    """A user id from a UUID or an email (through the email's claim in the log)."""
    text = text.strip()
    user_id = _uuid(text)
    if user_id is None:
        return _user_by_email(sora2, text)
    if sora2.log.find(User, user_id) is None:
        raise UsageError(f"no user has the id {user_id}")
    return user_id


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _user_by_email(sora2: Sora2, text: str) -> UUID:
    if "@" not in text:
        raise UsageError(f"--user must be a user id (UUID) or an email, not {text!r}")
    try:
        email = normalize_email(text)
    except InvalidInput:
        raise UsageError(f"not a valid email: {text!r}") from None
    claim = sora2.log.find(Claim, Claim.create_id("email", email))
    if claim is None or claim.owner_id is None:
        raise UsageError(f"no user has the email {email}")
    return claim.owner_id


# --- the commands ------------------------------------------------------------------------


def _verify(
    audit: LedgerAudit, sora2: Sora2, against: Path | None, report_path: Path | None, out: TextIO
) -> int:
    checkpoint, proof = None, None
    if against is not None:
        checkpoint, proof = _read_checkpoint(sora2, against)
    bar = ProgressBar(sys.stderr)
    report = audit.verify(checkpoint, on_progress=bar)
    bar.close()
    if proof is not None:
        report.problems[:0] = proof.problems
        report.checkpoint = proof.result
        proof.result.proven = proof.result.signature_valid and not any(
            p.kind == "checkpoint" for p in report.problems
        )
    for problem in report.problems:
        print(f"PROBLEM: {problem.message} [{problem.kind}]", file=out)
    print(summary(report, _backend(sora2)), file=out)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
        print(f"report written to {report_path}", file=out)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


class _Proof:
    """What the checkpoint file itself says before the log is read: its signature."""

    def __init__(self, result: CheckpointResult, problems: list[Any]) -> None:
        self.result, self.problems = result, problems


def _read_checkpoint(sora2: Sora2, path: Path) -> tuple[Checkpoint, _Proof]:
    from sora2.adapters import ledger_checkpoints
    from sora2.adapters.security.ledger_keys import LedgerKeyError, fingerprint, public_key
    from sora2.adapters.security.ledger_keys import signing_key as load_signing_key
    from sora2.application.audit import Problem

    try:
        signed = ledger_checkpoints.read(path)
    except ledger_checkpoints.CheckpointUnreadable as error:
        raise UsageError(str(error)) from None
    settings = sora2.settings
    try:
        if settings.ledger_public_key:
            pinned = public_key(settings.ledger_public_key)
        elif settings.ledger_signing_key:
            pinned = load_signing_key(settings.ledger_signing_key).public_key()
        else:
            pinned = None
    except LedgerKeyError as error:
        raise UsageError(str(error)) from None
    key = pinned or signed.key
    valid = signed.signature_valid(key)
    problems = []
    if not valid:
        whose = "the configured key" if pinned else "the key the file names"
        problems.append(
            Problem(
                "checkpoint",
                f"the checkpoint {path} is not validly signed by {whose} ({fingerprint(key)}):"
                " it was altered or signed by someone else",
                signed.position,
            )
        )
    result = CheckpointResult(
        file=str(path),
        position=signed.position,
        hash=signed.hash.hex(),
        signed_at=signed.signed_at,
        key=fingerprint(key),
        key_pinned=pinned is not None,
        signature_valid=valid,
    )
    return Checkpoint(signed.position, signed.hash), _Proof(result, problems)


def _checkpoint(audit: LedgerAudit, sora2: Sora2, output: Path | None, out: TextIO) -> int:
    from sora2.adapters import ledger_checkpoints
    from sora2.adapters.security.ledger_keys import LedgerKeyError, signing_key

    settings = sora2.settings
    if not settings.ledger_signing_key:
        raise UsageError("LEDGER_SIGNING_KEY is not set: a checkpoint must be signed")
    try:
        key = signing_key(settings.ledger_signing_key)
    except LedgerKeyError as error:
        raise UsageError(str(error)) from None
    head = audit.checkpoint_head()
    if head is None:
        raise UsageError("the log is empty: there is nothing to checkpoint yet")
    document = ledger_checkpoints.sign(head, key, sora2.log.name)
    path = output or settings.var_dir / "checkpoints" / f"checkpoint-{head.position}.json"
    ledger_checkpoints.write(document, path)
    print(f"checkpoint of event {head.position:,}: {head.hash.hex()}", file=out)
    print(f"signed by {document['checkpoint']['key']}, written to {path}", file=out)
    if not settings.nats_url:
        print("NATS_URL is not set: the checkpoint went to the file only", file=out)
        return EXIT_OK
    try:
        subject = ledger_checkpoints.publish(
            document, settings.nats_url, settings.nats_stream, settings.nats_subject_prefix
        )
    except Exception as error:  # the file is written; say what NATS answered
        print(
            f"sora2 ledger: publishing to NATS failed: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    print(f"published to NATS JetStream, subject {subject}", file=out)
    return EXIT_OK


def _backend(sora2: Sora2) -> str:
    return "PostgreSQL" if sora2.settings.database_url else "SQLite"


def summary(report: Report, backend: str = "") -> str:
    """The auditor's summary: what was read, the totals, what was proven, what was found."""
    counts = (
        f"{report.users:,} users, {report.entries:,} entries, {report.events:,} events replayed"
    )
    if report.ok:
        verdict = f"OK: {counts}; read models match"
    else:
        n = len(report.problems)
        verdict = f"FAILED: {n:,} problem{'' if n == 1 else 's'}; {counts}"
    lines = [verdict, f"Ledger verification{f' ({backend})' if backend else ''}"]
    lag = ""
    if report.read_model_position < report.log_position:
        lag = f"; read models at {report.read_model_position:,}"
    row = "  {:<18} {}".format
    lines.append(
        row("events read", f"{report.events:,} (log position {report.log_position:,}{lag})")
    )
    lines.append(row("users", f"{report.users:,}"))
    lines.append(row("entries", f"{report.entries:,}"))
    for kind, totals in report.totals.items():
        lines.append(f"    {kind:<12} {totals.count:>10,}  {totals.sum:>+14,}")
    holds = report.balances_sum == sum(t.sum for t in report.totals.values())
    lines.append(
        row("sum of balances", f"{report.equation()} ({'holds' if holds else 'DOES NOT HOLD'})")
    )
    lines.append(
        row(
            "read models",
            f"balances sum to {report.read_model_balances_sum:,} at position "
            f"{report.read_model_position:,} (the log: {report.log_balances_sum_at_read_models:,})",
        )
    )
    if report.chain_head:
        chain = f"linked up to event {report.chained_up_to:,}, head {report.chain_head[:16]}…"
    else:
        chain = "no links"
    lines.append(row("hash chain", chain))
    cp = report.checkpoint
    if cp is None:
        lines.append(
            row("checkpoint", "none given (--against): the chain proves no more than itself")
        )
    else:
        state = "PROVEN" if cp.proven else "NOT PROVEN"
        pinned = "" if cp.key_pinned else " (key not pinned: set LEDGER_PUBLIC_KEY)"
        lines.append(
            row(
                "checkpoint",
                f"{state}: event {cp.position:,}, {cp.hash[:16]}…, signed {cp.signed_at} "
                f"by {cp.key}{pinned}",
            )
        )
    kinds = report.by_kind()
    found = ", ".join(f"{kind} {n:,}" for kind, n in kinds.items()) or "none"
    lines.append(row("problems", found))
    lines.append(row("time", f"{report.seconds:.2f} s ({report.events_per_second:,.0f} events/s)"))
    return "\n".join(lines)


HISTORY_COLUMNS = ("#", "createdAt", "type", "amount", "balance", "reference", "entry")
HISTORY_FORMAT = "{:>4}  {:<32}  {:<8}  {:>8}  {:>8}  {:<36}  {}"


def _history(audit: LedgerAudit, sora2: Sora2, user_id: UUID, out: TextIO) -> int:
    entries = audit.history(user_id)
    print(f"Credit history of {_label(sora2, user_id)}", file=out)
    print(HISTORY_FORMAT.format(*HISTORY_COLUMNS), file=out)
    for number, entry in enumerate(entries, start=1):
        print(_history_row(number, entry), file=out)
    balance = entries[-1].balance if entries else 0
    print(f"Balance: {balance} credits after {len(entries)} entries", file=out)
    return EXIT_OK


def _history_row(number: int, entry: Entry) -> str:
    row = HISTORY_FORMAT.format(
        number,
        iso(entry.created_at),
        entry.type,
        f"{entry.amount:+d}",
        entry.balance,
        str(entry.reference_id) if entry.reference else "-",
        entry.id,
    )
    if entry.type == "ADJUSTMENT":  # who corrected the balance, and why
        row += f"  by admin {entry.admin_id or '(none)'}: {entry.reason or ''}"
    if entry.recorded_balance != entry.balance:  # `ledger verify` explains; flag it here too
        row += f"  ! the event records balance {entry.recorded_balance}"
    return row


def _balance(
    audit: LedgerAudit, sora2: Sora2, user_id: UUID, at: datetime | None, out: TextIO
) -> int:
    if at is None:
        balance, when = audit.balance(user_id), "now"
    else:
        balance, when = audit.balance_at(user_id, at), f"at {iso(at)}"
    print(f"Balance of {_label(sora2, user_id)} {when}: {balance} credits", file=out)
    return EXIT_OK


def _export(audit: LedgerAudit, fmt: str, user_id: UUID | None, output: Path | None) -> int:
    if output is None:
        audit.export(fmt, sys.stdout, user_id)
        return EXIT_OK
    with output.open("w", encoding="utf-8", newline="") as file:
        count = audit.export(fmt, file, user_id)
    print(f"exported {count} entries to {output}", file=sys.stderr)
    return EXIT_OK


def _label(sora2: Sora2, user_id: UUID) -> str:
    user = sora2.log.find(User, user_id)
    return f"{user.email} (user {user_id})" if user else f"user {user_id}"
