"""Processes started together on a fresh SQLite file (`serve --workers N`, a worker beside
the API) take turns creating its tables: none of them fails on the other's migration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.backends import base_env

SORA2 = Path(sys.executable).with_name("sora2")


def test_processes_started_at_once_on_a_fresh_sqlite_file_all_set_it_up(tmp_path: Path) -> None:
    for attempt in range(3):  # three fresh files, six processes racing on each
        folder = tmp_path / str(attempt)
        folder.mkdir()
        env = {**os.environ, **base_env(folder)}
        env.pop("DATABASE_URL", None)
        starts = [
            subprocess.Popen(
                [str(SORA2), "ledger", "verify"],
                env=env,
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(6)
        ]
        outputs = [p.communicate(timeout=300)[0] for p in starts]
        assert [p.returncode for p in starts] == [0] * 6, "\n".join(outputs)
        assert all("read models match" in out for out in outputs), "\n".join(outputs)
