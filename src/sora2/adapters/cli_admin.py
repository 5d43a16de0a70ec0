"""`sora2 admin grant|revoke --email E`: make or unmake an ADMIN, from the operator's shell.

The change is an event on the User naming `cli` as who made it, and it ends the user's
sessions. It works while servers run on the same store: they read the new epoch from the
shared read models (or the log) on the user's next request, whose old token answers 401.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

from sora2.application.admin import CLI
from sora2.domain.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sora2.bootstrap import Sora2

EXIT_OK, EXIT_USAGE = 0, 2
ROLE_OF = {"grant": "ADMIN", "revoke": "USER"}


def add_admin_commands(subparsers: Any) -> None:
    admin = subparsers.add_parser(
        "admin",
        help="grant or revoke the ADMIN role",
        description="Make a user an ADMIN or a USER again; their sessions end.",
    )
    commands = admin.add_subparsers(dest="admin_command", required=True)
    for name, what in (("grant", "make the user an ADMIN"), ("revoke", "make the ADMIN a USER")):
        command = commands.add_parser(name, help=what, description=f"{what.capitalize()}.")
        command.add_argument("--email", required=True, help="the account's email")


def run_admin_command(args: argparse.Namespace, sora2: Sora2, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    role = ROLE_OF[args.admin_command]
    try:
        change = sora2.admin.set_role(args.email, role, by=CLI)
    except (InvalidInput, NotFound) as error:
        print(f"sora2 admin: {error}", file=sys.stderr)
        return EXIT_USAGE
    user = change.user
    if change.changed:
        print(f"{user.email} (user {user.id}) is now {role}; their sessions were ended", file=out)
    else:
        print(f"{user.email} (user {user.id}) is already {role}; nothing changed", file=out)
    return EXIT_OK
