"""Domain errors: raised by aggregates when a command breaks a rule.

Their messages are safe to show to users; the HTTP edge maps each class to a status.
"""


class DomainError(Exception):
    """A command was refused; nothing was recorded."""


class NotFound(DomainError):
    """The thing asked for does not exist (or is not the caller's to see)."""


class Conflict(DomainError):
    """The command clashes with the current state (duplicate, already done, wrong state)."""


class InsufficientCredits(DomainError):
    """The ledger holds fewer credits than the command needs."""


class NotAuthenticated(DomainError):
    """Credentials or a session token were wrong, expired or revoked."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class InvalidInput(DomainError):
    """A value breaks a domain rule that the request schema cannot express."""


class UnsupportedMedia(DomainError):
    """An upload is not of a type we accept (checked by content, not by name)."""


class TooLarge(DomainError):
    """An upload is larger than allowed."""


class Unavailable(DomainError):
    """A service the command needs (a payment provider) cannot be used right now."""


class PromptBlocked(DomainError):
    """The prompt breaks the platform's content policy (a blocked term); nothing is charged."""


class TooManyAttempts(DomainError):
    """Too many tries of something guarded (sign-in to one account); try after a while."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
