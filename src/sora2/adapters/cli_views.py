"""`sora2 views rebuild`: the read models rebuilt from the log, swapped in while serving."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.rebuild import RebuildFailed, rebuild_read_models

if TYPE_CHECKING:
    from sora2.bootstrap import Sora2


def add_views_commands(subparsers: Any) -> None:
    views = subparsers.add_parser(
        "views",
        help="operate the read models",
        description="Operate the read models the API serves.",
    )
    commands = views.add_subparsers(dest="views_command", required=True)
    commands.add_parser(
        "rebuild",
        help="rebuild the read models from the log into fresh tables and swap them in",
        description="Replay the whole event log into fresh tables, then swap them in in one "
        "transaction. Running servers keep serving the old tables until the swap.",
    )


def run_views_command(args: argparse.Namespace, sora2: Sora2, out: TextIO = sys.stderr) -> int:
    bar = ProgressBar(out)
    try:
        result = rebuild_read_models(LogReader(sora2.log), sora2.views, bar)
    except RebuildFailed as failure:  # the live tables are untouched
        bar.close()
        print(f"sora2 views rebuild: {failure}; the read models were left as they were", file=out)
        return 1
    bar.close()
    print(
        f"rebuilt the read models from {result.events:,} events up to position "
        f"{result.position:,} in {result.seconds:.1f} s ({result.events_per_second:,.0f} events/s)",
        file=out,
    )
    return 0


class ProgressBar:
    """`[#####.....] 52% 51,200/98,000 events, 12,300/s` on one line (a terminal) or a line
    every few seconds (a log file)."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.began = time.perf_counter()
        self.shown_at = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.shown_at < (0.1 if self.tty else 2.0):
            return
        self.shown_at = now
        share = done / total if total else 1.0
        filled = round(self.WIDTH * share)
        rate = done / max(now - self.began, 1e-9)
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} "
            f"{done:,}/{total:,} events, {rate:,.0f}/s"
        )
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=self.out)
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            print(file=self.out)
