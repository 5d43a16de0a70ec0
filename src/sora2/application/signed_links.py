"""Links that work without a header for a while: `<video src>`, `<img src>` and EventSource
cannot send `Authorization`, so the URL itself carries the permission.

A link is a path plus `expires` (Unix seconds) and `signature` (HMAC-SHA256 over path and
expiry with a server secret). Whoever holds the link may GET that one path until it
expires; changing either the path or the expiry breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import timedelta

from sora2.application.ports import Clock
from sora2.domain.errors import Forbidden


class SignedLinks:
    def __init__(self, secret: bytes, ttl: timedelta, clock: Clock) -> None:
        self._secret = secret
        self.ttl = ttl
        self._clock = clock

    def sign(self, path: str) -> str:
        """`path?expires=…&signature=…`, valid for at least the TTL."""
        expires = self._expiry()
        return f"{path}?expires={expires}&signature={self._signature(path, expires)}"

    def check(self, path: str, expires: int | None, signature: str | None) -> float:
        """Seconds the link has left; Forbidden if it is unsigned, tampered with or expired."""
        if expires is None or not signature:
            raise Forbidden("this link is not signed")
        # compared as bytes: compare_digest refuses str with non-ASCII characters (a 500)
        presented = signature.encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(presented, self._signature(path, expires).encode()):
            raise Forbidden("this link's signature is not valid")
        left = expires - self._clock.now().timestamp()
        if left <= 0:
            raise Forbidden("this link has expired; ask the API for a fresh one")
        return left

    def _expiry(self) -> int:
        # Rounded up to a tenth of the TTL, so links handed out within that step are the same
        # URL and a browser's cache (ETag, If-None-Match) works across page loads.
        step = max(1, int(self.ttl.total_seconds()) // 10)
        earliest = self._clock.now().timestamp() + self.ttl.total_seconds()
        return math.ceil(earliest / step) * step

    def _signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
