"""A real EventSource for tests: npm `eventsource` 4 run by node, installed on first use.

The package is installed with npm into `.venv/node/` (this worktree's own, ignored by
git) and kept there, so only the first run needs the registry. Tests run
`eventsource_client.mjs` against the API and read what it saw, one JSON record a line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EVENTSOURCE_VERSION = "4.1.1"
ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / ".venv" / "node"
CLIENT = Path(__file__).with_name("eventsource_client.mjs")


@dataclass
class EventSourceRun:
    """What one EventSource saw, from its first connection until it closed itself."""

    records: list[dict[str, Any]]
    exit_code: int

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.of("status")

    @property
    def statuses(self) -> list[int]:
        return [r["status"] for r in self.of("response")]


class EventSourceClient:
    def __init__(self, package: Path) -> None:
        self.package = package

    def run(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: Any = None,
        timeout: float = 60,
    ) -> EventSourceRun:
        config = {
            "url": url,
            "method": method,
            "headers": headers or {},
            "body": None if body is None else json.dumps(body),
            "timeoutMs": int(timeout * 1000),
        }
        done = subprocess.run(
            ["node", str(CLIENT), json.dumps(config)],
            env={"PATH": os.environ.get("PATH", ""), "EVENTSOURCE_MODULE": str(self.package)},
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
        records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert done.returncode != 3, f"the EventSource never closed: {records}"
        assert done.returncode == 0, done.stderr
        return EventSourceRun(records, done.returncode)


def install_eventsource() -> Path:
    package = NODE_DIR / "node_modules" / "eventsource"
    manifest = package / "package.json"
    if manifest.is_file() and json.loads(manifest.read_text())["version"] == EVENTSOURCE_VERSION:
        return package
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are needed for the EventSource tests (node 20+)")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(NODE_DIR),
            "--no-audit",
            "--no-fund",
            "--silent",
            f"eventsource@{EVENTSOURCE_VERSION}",
        ],
        check=True,
        timeout=300,
    )
    return package


@pytest.fixture(scope="session")
def eventsource() -> EventSourceClient:
    return EventSourceClient(install_eventsource())
