"""`sora2 ledger …`: the auditors' commands, over a replay of the event log.

Everything shown here comes from `LedgerAudit`'s own fold of the events, not from the
read models the API serves, so an auditor can check the API's numbers against it.
`python -m sora2.adapters.cli_ledger ledger …` runs the same commands without `sora2`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from uuid import UUID

from sora2.application.audit import Entry, LedgerAudit, Report, iso
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

    commands.add_parser(
        "verify",
        help="check read models and ledger invariants against the replay (exit 1 on problems)",
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
    out = out or sys.stdout
    audit = LedgerAudit(sora2.log, sora2.views)
    try:
        if args.ledger_command == "verify":
            return _verify(audit, out)
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


def _verify(audit: LedgerAudit, out: TextIO) -> int:
    report = audit.verify()
    for problem in report.problems:
        print(f"PROBLEM: {problem}", file=out)
    print(summary(report), file=out)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def summary(report: Report) -> str:
    counts = (
        f"{report.users:,} users, {report.entries:,} entries, {report.events:,} events replayed"
    )
    lag = ""
    if report.read_model_position < report.log_position:
        lag = f" (read models at log position {report.read_model_position:,}"
        lag += f" of {report.log_position:,})"
    if report.ok:
        return f"OK: {counts}; read models match{lag}"
    found = len(report.problems)
    return f"FAILED: {found:,} problem{'' if found == 1 else 's'}; {counts}{lag}"


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
        str(entry.reference) if entry.reference else "-",
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


# --- standalone entry point ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m sora2.adapters.cli_ledger ledger …`, configured from the environment."""
    from sora2.bootstrap import bootstrap
    from sora2.config import ConfigError, Settings

    parser = argparse.ArgumentParser(prog="sora2", description="Sora2 credit-ledger audit")
    add_ledger_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"sora2: configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE
    sora2 = bootstrap(settings)
    try:
        return run_ledger_command(args, sora2)
    finally:
        sora2.close()


if __name__ == "__main__":
    sys.exit(main())
