"""Development mail: each message becomes a file in a folder instead of leaving the machine."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path


class OutboxMailer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, to: str, subject: str, body: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        temporary = self.folder / f".{name}.tmp"
        temporary.write_text(json.dumps({"to": to, "subject": subject, "body": body}))
        os.replace(temporary, self.folder / name)

    def messages(self) -> list[dict[str, str]]:
        """Every message sent so far, oldest first."""
        if not self.folder.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))]
