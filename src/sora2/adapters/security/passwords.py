"""argon2id password hashing (argon2-cffi's defaults follow RFC 9106's recommendations)."""

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2PasswordHasher:
    def __init__(self, time_cost: int | None = None, memory_cost: int | None = None) -> None:
        options = {k: v for k, v in (("time_cost", time_cost), ("memory_cost", memory_cost)) if v}
        if memory_cost:
            options["parallelism"] = 1
        self._argon2 = _Argon2(**options)

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
