"""The blocked terms of `MODERATION_BLOCKLIST`: a text file, one term per line.

Blank lines and lines starting with `#` are left out. The file is read again when it
changes, so an operator can add a term without a restart; if it becomes unreadable, the
terms last read stay in force.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sora2.application.moderation import BlockedTerms

log = logging.getLogger("sora2.moderation")


def read_terms(path: Path) -> BlockedTerms:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return BlockedTerms(line for line in lines if not line.lstrip().startswith("#"))


class BlocklistFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._terms = read_terms(path)
        log.info("moderation: %d blocked terms from %s", len(self._terms.terms), path)

    def check(self, prompt: str) -> None:
        self._current().check(prompt)

    def _current(self) -> BlockedTerms:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                try:
                    self._terms, self._stamp = read_terms(self.path), stamp
                except (OSError, UnicodeDecodeError):
                    log.warning("moderation: could not read %s; keeping the last terms", self.path)
        return self._terms

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size
