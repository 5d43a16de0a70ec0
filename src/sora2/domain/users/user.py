"""A user account: identity, profile, password, role, and the epoch that invalidates sessions.

Role changes and suspensions are an operator's decisions: their events name who made them
(an admin's id, or "cli" for `sora2 admin grant|revoke`), and they bump the epoch, so every
session started before them ends (a token carries the role it was issued with).

The password hash lives in the events so the account can be rebuilt from the log;
the NATS publisher leaves it out of what it publishes.
"""

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import Conflict, InvalidInput, NotAuthenticated
from sora2.domain.flat_copy import FlatCopy
from sora2.domain.users.rules import check_username, normalize_email

ROLES = ("USER", "ADMIN")


class User(FlatCopy, Aggregate):
    suspended = False  # for snapshots taken before suspension existed

    class Registered(Aggregate.Created):
        email: str
        username: str
        password_hash: str
        role: str

    class EmailChanged(Aggregate.Event):
        email: str

    class UsernameChanged(Aggregate.Event):
        username: str

    class AvatarChanged(Aggregate.Event):
        avatar_key: str

    class PasswordChanged(Aggregate.Event):
        """A new password; every session started before it is revoked."""

        password_hash: str
        session_epoch: int

    class PasswordResetRequested(Aggregate.Event):
        token_hash: str
        expires_at: datetime

    class PasswordReset(Aggregate.Event):
        """The reset token was spent; every session started before it is revoked."""

        password_hash: str
        session_epoch: int

    class RoleChanged(Aggregate.Event):
        """USER ↔ ADMIN, by an operator; every session started before it is revoked."""

        role: str
        by: str  # who decided: an admin's user id, or "cli"
        session_epoch: int

    class Suspended(Aggregate.Event):
        """An admin stopped the account: its sessions end and it cannot sign in."""

        admin_id: UUID
        reason: str
        session_epoch: int

    class Unsuspended(Aggregate.Event):
        admin_id: UUID

    @event(Registered)
    def __init__(
        self,
        id: UUID,
        email: str,
        username: str,
        password_hash: str,
        role: str,
        timestamp: datetime,
    ) -> None:
        self.email = email
        self.username = username
        self.password_hash = password_hash
        self.role = role
        self.avatar_key: str | None = None
        self.session_epoch = 0
        self.reset_token_hash: str | None = None
        self.reset_expires_at: datetime | None = None
        self.suspended = False

    @classmethod
    def register(
        cls,
        user_id: UUID,
        email: str,
        username: str,
        password_hash: str,
        timestamp: datetime,
        role: str = "USER",
    ) -> "User":
        return cls(
            id=user_id,
            email=normalize_email(email),
            username=check_username(username),
            password_hash=password_hash,
            role=role,
            timestamp=timestamp,
        )

    def change_email(self, email: str, timestamp: datetime) -> None:
        email = normalize_email(email)
        if email != self.email:
            self._email_changed(email, timestamp)

    def change_username(self, username: str, timestamp: datetime) -> None:
        username = check_username(username)
        if username != self.username:
            self._username_changed(username, timestamp)

    def change_avatar(self, avatar_key: str, timestamp: datetime) -> None:
        self._avatar_changed(avatar_key, timestamp)

    def change_password(self, password_hash: str, timestamp: datetime) -> None:
        self._password_changed(password_hash, self.session_epoch + 1, timestamp)

    def request_password_reset(
        self, token_hash: str, expires_at: datetime, timestamp: datetime
    ) -> None:
        self._password_reset_requested(token_hash, expires_at, timestamp)

    def reset_password(self, token_hash: str, password_hash: str, timestamp: datetime) -> None:
        """Spend the reset token: it must be the latest one issued and not expired."""
        if (
            self.reset_token_hash is None
            or self.reset_token_hash != token_hash
            or self.reset_expires_at is None
            or timestamp >= self.reset_expires_at
        ):
            raise NotAuthenticated("the reset link is invalid or has expired")
        self._password_reset(password_hash, self.session_epoch + 1, timestamp)

    def change_role(self, role: str, by: str, timestamp: datetime) -> bool:
        """Make the user `role`; False (nothing recorded) if they already are."""
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if not by:
            raise InvalidInput("a role change must name who made it")
        if role == self.role:
            return False
        self._role_changed(role, by, self.session_epoch + 1, timestamp)
        return True

    def suspend(self, admin_id: UUID, reason: str, timestamp: datetime) -> None:
        if self.suspended:
            raise Conflict("the account is already suspended")
        self._suspended(admin_id, reason, self.session_epoch + 1, timestamp)

    def unsuspend(self, admin_id: UUID, timestamp: datetime) -> None:
        if not self.suspended:
            raise Conflict("the account is not suspended")
        self._unsuspended(admin_id, timestamp)

    @event(RoleChanged)
    def _role_changed(self, role: str, by: str, session_epoch: int, timestamp: datetime) -> None:
        self.role = role
        self.session_epoch = session_epoch

    @event(Suspended)
    def _suspended(
        self, admin_id: UUID, reason: str, session_epoch: int, timestamp: datetime
    ) -> None:
        self.suspended = True
        self.session_epoch = session_epoch

    @event(Unsuspended)
    def _unsuspended(self, admin_id: UUID, timestamp: datetime) -> None:
        self.suspended = False

    @event(EmailChanged)
    def _email_changed(self, email: str, timestamp: datetime) -> None:
        self.email = email
        self.reset_token_hash = None  # a link mailed to the old address must not work
        self.reset_expires_at = None

    @event(UsernameChanged)
    def _username_changed(self, username: str, timestamp: datetime) -> None:
        self.username = username

    @event(AvatarChanged)
    def _avatar_changed(self, avatar_key: str, timestamp: datetime) -> None:
        self.avatar_key = avatar_key

    @event(PasswordChanged)
    def _password_changed(
        self, password_hash: str, session_epoch: int, timestamp: datetime
    ) -> None:
        self.password_hash = password_hash
        self.session_epoch = session_epoch
        self.reset_token_hash = None  # an earlier reset link must not undo the new password
        self.reset_expires_at = None

    @event(PasswordResetRequested)
    def _password_reset_requested(
        self, token_hash: str, expires_at: datetime, timestamp: datetime
    ) -> None:
        self.reset_token_hash = token_hash
        self.reset_expires_at = expires_at

    @event(PasswordReset)
    def _password_reset(self, password_hash: str, session_epoch: int, timestamp: datetime) -> None:
        self.password_hash = password_hash
        self.session_epoch = session_epoch
        self.reset_token_hash = None
        self.reset_expires_at = None
