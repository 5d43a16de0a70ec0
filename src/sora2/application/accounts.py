"""Accounts: register, sign in, sessions, password reset and profile changes.

Sessions are aggregates (see `domain/users/session.py`); the HTTP edge wraps their ids
in signed tokens. A password change or reset bumps the user's epoch, which ends every
session started before it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from sora2.application.answers import user_row
from sora2.application.event_log import EventLog, retry_on_conflict
from sora2.application.media import sniff_image
from sora2.application.ports import AttemptCounter, BlobStorage, Clock, Mailer, PasswordHasher
from sora2.application.processing.consistency import ReadYourWrites
from sora2.application.projections.rows import Access, UserRow
from sora2.application.projections.view import ReadModelView
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    TooLarge,
    TooManyAttempts,
)
from sora2.domain.users.claim import Claim
from sora2.domain.users.rules import check_password, check_username, normalize_email
from sora2.domain.users.session import Session
from sora2.domain.users.user import User

log = logging.getLogger("sora2.accounts")

RESET_TOKEN_TTL = timedelta(minutes=30)
LOGIN_FAILURES_ALLOWED = 10  # per account, from any address, in
LOGIN_WINDOW = timedelta(minutes=15)
RESET_MAILS_ALLOWED = 3  # to one recipient, in
RESET_MAIL_WINDOW = timedelta(hours=1)
AVATAR_MAX_BYTES = 5 * 1024 * 1024
SIGNUP_BONUS_REASON = "Signup bonus"


@dataclass(frozen=True)
class SessionGrant:
    """What a successful sign-in or refresh gives the edge to put in tokens."""

    user: UserRow
    session_id: UUID
    token_id: UUID
    epoch: int


class Accounts:
    def __init__(
        self,
        log: EventLog,
        views: ReadModelView,
        seen: ReadYourWrites,
        hasher: PasswordHasher,
        mailer: Mailer,
        storage: BlobStorage,
        clock: Clock,
        signup_bonus: int,
        reset_link_base: str,
        session_lifetime: timedelta = timedelta(days=30),
        report_link: str = "",
        attempts: AttemptCounter | None = None,
    ) -> None:
        self.log = log
        self.views = views
        self.seen = seen
        self.hasher = hasher
        self.mailer = mailer
        self.storage = storage
        self.clock = clock
        self.signup_bonus = signup_bonus
        self.reset_link_base = reset_link_base
        self.session_lifetime = session_lifetime  # however often its tokens rotate
        self.report_link = report_link  # where a notice's reader says "it was not me"
        self.attempts = attempts or NoAttempts()
        self._dummy: str | None = None  # made on first use, so CLI start-up stays quick

    # --- sign up and sign in -----------------------------------------------------------

    def register(self, email: str, username: str, password: str) -> SessionGrant:
        email, username = normalize_email(email), check_username(username)
        password_hash = self.hasher.hash(check_password(password))
        user_id = uuid4()

        def decide() -> tuple[int | None, Session, User]:
            now = self.clock.now()
            user = User.register(user_id, email, username, password_hash, now)
            claims = [
                self._take_claim(kind, value, user_id)
                for kind, value in (("email", email), ("username", username))
            ]
            ledger = CreditLedger(user_id=user_id, timestamp=now)
            if self.signup_bonus > 0:
                ledger.reward(self.signup_bonus, SIGNUP_BONUS_REASON, now)
            session = Session(id=uuid4(), user_id=user_id, token_id=uuid4(), epoch=0, timestamp=now)
            return self.log.commit(user, *claims, ledger, session), session, user

        return self._grant(*retry_on_conflict(decide))

    def login(self, email: str, password: str) -> SessionGrant:
        """Sign in. Failures are counted per account, whatever address they come from:
        after LOGIN_FAILURES_ALLOWED in LOGIN_WINDOW the account refuses sign-ins (429)
        until the window ends, and its owner is told. Unknown emails are counted alike,
        so a refusal says nothing about which accounts exist."""
        now = self.clock.now()
        key = f"login:{normalize_email(email)}"
        failures, until = self.attempts.count(key, LOGIN_WINDOW, now)
        if failures >= LOGIN_FAILURES_ALLOWED:
            raise TooManyAttempts(
                "too many failed sign-ins for this account; try again later",
                retry_after=max(1, math.ceil((until - now).total_seconds())),
            )
        user = self._user_by_email(email)
        stored_hash = user.password_hash if user else self._dummy_hash()
        # verify even for unknown emails, so timing does not reveal which accounts exist
        if not self.hasher.verify(stored_hash, password) or user is None:
            if self.attempts.add(key, LOGIN_WINDOW, now) == LOGIN_FAILURES_ALLOWED and user:
                self._tell_owner(
                    user.email,
                    "Sign-ins to your Sora2 account are paused",
                    f"{LOGIN_FAILURES_ALLOWED} sign-ins with a wrong password were tried on "
                    f"your Sora2 account by {_when(now)}; sign-ins are paused for up to "
                    f"{int(LOGIN_WINDOW.total_seconds() // 60)} minutes.",
                )
            raise NotAuthenticated("invalid email or password")
        self.attempts.clear(key)
        if user.suspended:
            raise Forbidden("this account is suspended; contact support")
        session = Session(
            id=uuid4(),
            user_id=user.id,
            token_id=uuid4(),
            epoch=user.session_epoch,
            timestamp=self.clock.now(),
        )
        return self._grant(self.log.commit(session), session, user)

    def refresh(self, session_id: UUID, token_id: UUID) -> SessionGrant:
        """Rotate the refresh token; a replayed one ends the whole session."""

        def decide() -> tuple[int | None, Session, User]:
            session = self.log.find(Session, session_id)
            if session is None:
                raise NotAuthenticated("invalid refresh token")
            user = self.log.load(User, session.user_id, "user")
            if user.suspended:
                raise Forbidden("this account is suspended; contact support")
            if session.epoch != user.session_epoch:
                raise NotAuthenticated("this session was revoked; sign in again")
            now = self.clock.now()
            if not session.ended and now - session.created_on > self.session_lifetime:
                session.end("expired", now)  # rotation never makes a sign-in last for ever
                self.seen.note(session.user_id, self.log.commit(session), revokes=True)
                raise NotAuthenticated("this session has expired; sign in again")
            fresh = session.rotate(token_id, uuid4(), now)
            position = self.log.commit(session)
            if not fresh:
                self.seen.note(session.user_id, position, revokes=True)
                raise NotAuthenticated("refresh token reuse detected; the session was revoked")
            return position, session, user

        return self._grant(*retry_on_conflict(decide))

    def logout(self, session_id: UUID) -> None:
        def decide() -> None:
            session = self.log.find(Session, session_id)
            if session is not None:
                session.end("logout", self.clock.now())
                self.seen.note(session.user_id, self.log.commit(session), revokes=True)

        retry_on_conflict(decide)

    def authenticate(self, user_id: UUID, session_id: UUID, epoch: int) -> UserRow:
        """The user behind an access token, unless its session ended (logout, token reuse)
        or the account's sessions were revoked (password change or reset).

        One row answers it (the user's epoch and the session's end, read together) once the
        read models hold the user's last revocation; a session or user they do not hold yet
        is read from the log itself."""
        access = self._access(user_id, session_id)
        if access is not None and access.user.session_epoch == epoch:
            if access.session_ended is True or access.session_user not in (None, user_id):
                raise NotAuthenticated("this session has ended; sign in again")
            if access.session_ended is False:
                return access.user
        user = self._user_row(user_id)  # not in the read models yet: the log decides
        if user is None:
            raise NotAuthenticated("the account no longer exists")
        if epoch != user.session_epoch:
            raise NotAuthenticated("this session was revoked; sign in again")
        session = self.log.find(Session, session_id)
        if session is None or session.ended or session.user_id != user_id:
            raise NotAuthenticated("this session has ended; sign in again")
        return user

    def _access(self, user_id: UUID, session_id: UUID) -> Access | None:
        if not self.seen.follows_head:
            self.seen.wait_revocations(user_id)
            return self.views.access(user_id, session_id)
        found = self.views.access_at_head(user_id, session_id)
        if self.seen.covered(found.head, found.position, found.moved):  # one statement
            return found.access
        return self.views.access(user_id, session_id)  # read again once they hold the head

    # --- passwords -----------------------------------------------------------------------

    def forgot_password(self, email: str) -> None:
        """Mail a single-use reset link if the account exists; say nothing either way."""
        try:
            user = self._user_by_email(email)
        except Exception:  # an invalid email gets the same silent answer
            return
        if user is None:
            return
        now = self.clock.now()
        sent = self.attempts.add(f"reset:{user.email.lower()}", RESET_MAIL_WINDOW, now)
        if sent > RESET_MAILS_ALLOWED:  # no flood of mails to one inbox; the same answer
            log.info("reset mail not sent: %s already this hour", RESET_MAILS_ALLOWED)
            return
        secret = secrets.token_urlsafe(32)

        def decide() -> None:
            fresh = self.log.load(User, user.id, "user")
            fresh.request_password_reset(_digest(secret), now + RESET_TOKEN_TTL, now)
            self.log.commit(fresh)

        retry_on_conflict(decide)
        link = f"{self.reset_link_base}?token={user.id.hex}.{secret}"
        try:
            self.mailer.send(
                user.email,
                "Reset your Sora2 password",
                f"Someone asked to reset the password of your Sora2 account.\n\n"
                f"Open this link within 30 minutes to choose a new one:\n{link}\n\n"
                f"If it was not you, ignore this message.",
            )
        except Exception:  # an error answer would tell that the account exists
            log.exception("could not mail a password-reset link")

    def reset_password(self, token: str, password: str) -> None:
        check_password(password)
        user_hex, _, secret = token.partition(".")
        try:
            user_id = UUID(hex=user_hex)
        except ValueError:
            raise NotAuthenticated("the reset link is invalid or has expired") from None
        password_hash = self.hasher.hash(password)

        def decide() -> int | None:
            user = self.log.find(User, user_id)
            if user is None:
                raise NotAuthenticated("the reset link is invalid or has expired")
            user.reset_password(_digest(secret), password_hash, self.clock.now())
            return self.log.commit(user)

        self.seen.note(user_id, retry_on_conflict(decide), revokes=True)

    def change_password(self, user_id: UUID, current: str, new: str) -> SessionGrant:
        """Set a new password, end every session, and open a fresh one for the caller."""
        check_password(new)
        user = self.log.load(User, user_id, "user")
        if not self.hasher.verify(user.password_hash, current):
            raise NotAuthenticated("the current password is wrong")
        password_hash = self.hasher.hash(new)

        def decide() -> tuple[int | None, Session, User]:
            fresh = self.log.load(User, user_id, "user")
            now = self.clock.now()
            fresh.change_password(password_hash, now)
            session = Session(
                id=uuid4(),
                user_id=user_id,
                token_id=uuid4(),
                epoch=fresh.session_epoch,
                timestamp=now,
            )
            return self.log.commit(fresh, session), session, fresh

        grant = self._grant(*retry_on_conflict(decide), revokes=True)
        self._tell_owner(
            user.email,
            "Your Sora2 password was changed",
            f"The password of your Sora2 account was changed at {_when(self.clock.now())}.",
        )
        return grant

    # --- profile -------------------------------------------------------------------------

    def profile(self, user_id: UUID) -> UserRow:
        user = self._user_row(user_id)
        if user is None:
            raise NotFound("user not found")
        return user

    def update_profile(
        self,
        user_id: UUID,
        username: str | None,
        email: str | None,
        current_password: str | None = None,
    ) -> UserRow:
        """Change the username and/or email. A new email needs the current password (a
        stolen access token alone must not move the account, and with it its password
        resets, to another address), and the old address is told."""
        email = normalize_email(email) if email is not None else None
        username = check_username(username) if username is not None else None
        before = self.log.load(User, user_id, "user")
        if email is not None and email.lower() != before.email.lower():
            if not current_password:
                raise InvalidInput("currentPassword: is required to change the email")
            if not self.hasher.verify(before.password_hash, current_password):
                raise NotAuthenticated("the current password is wrong")

        def decide() -> tuple[int | None, User]:
            user = self.log.load(User, user_id, "user")
            now, changed = self.clock.now(), []
            for kind, new, old in (
                ("email", email, user.email),
                ("username", username, user.username),
            ):
                if new is None or new.lower() == old.lower():
                    continue
                changed.append(self._take_claim(kind, new, user_id))
                old_claim = self.log.find(Claim, Claim.create_id(kind, old))
                if old_claim is not None:
                    old_claim.release(user_id, now)
                    changed.append(old_claim)
            if email is not None:
                user.change_email(email, now)
            if username is not None:
                user.change_username(username, now)
            return self.log.commit(user, *changed), user

        position, user = retry_on_conflict(decide)
        self.seen.note(user_id, position)
        if user.email.lower() != before.email.lower():
            self._tell_owner(
                before.email,
                "The email of your Sora2 account was changed",
                f"The email of your Sora2 account was changed to {_masked(user.email)} "
                f"at {_when(self.clock.now())}.",
            )
        return user_row(user)

    def set_avatar(self, user_id: UUID, data: bytes) -> UserRow:
        if len(data) > AVATAR_MAX_BYTES:
            raise TooLarge("the avatar must be at most 5 MB")
        kind = sniff_image(data)
        key = f"avatars/{user_id}/{hashlib.sha256(data).hexdigest()[:16]}.{kind.extension}"
        self.storage.put_bytes(key, data, kind.content_type)

        def decide() -> tuple[int | None, str | None, User]:
            user = self.log.load(User, user_id, "user")
            previous = user.avatar_key
            user.change_avatar(key, self.clock.now())
            return self.log.commit(user), previous, user

        position, previous, user = retry_on_conflict(decide)
        self.seen.note(user_id, position)
        if previous and previous != key:  # the old picture is no longer anyone's
            try:
                self.storage.delete(previous)
            except Exception:
                log.exception("could not remove the old avatar %s", previous)
        return user_row(user)

    # --- helpers -------------------------------------------------------------------------

    def _tell_owner(self, address: str, subject: str, what: str) -> None:
        """A security notice: what changed, when, and what to do if it was not the owner."""
        try:
            self.mailer.send(
                address,
                subject,
                f"{what}\n\nIf this was you, there is nothing to do.\n\n"
                f"If it was not you, report it and take your account back at once:\n"
                f"{self.report_link}\n"
                f"(ask for a password reset there with this address; every session of the "
                f"account ends when the password is reset).",
            )
        except Exception:  # the change stands; only the notice is lost
            log.exception("could not send a security notice")

    def _take_claim(self, kind: str, value: str, owner: UUID) -> Claim:
        claim = self.log.find(Claim, Claim.create_id(kind, value))
        now = self.clock.now()
        if claim is None:
            return Claim(kind=kind, value=value, owner_id=owner, timestamp=now)
        claim.take(owner, now)
        return claim

    def _user_by_email(self, email: str) -> User | None:
        claim = self.log.find(Claim, Claim.create_id("email", normalize_email(email)))
        if claim is None or claim.owner_id is None:
            return None
        return self.log.find(User, claim.owner_id)

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    def _grant(
        self, position: int | None, session: Session, user: User, revokes: bool = False
    ) -> SessionGrant:
        self.seen.note(user.id, position, revokes)
        return SessionGrant(user_row(user), session.id, session.token_id, session.epoch)

    def _user_row(self, user_id: UUID) -> UserRow | None:
        """The user's row once it holds their own last command; from the log itself if the
        read models do not have it yet (another process registered it a moment ago)."""
        self.seen.wait(user_id)
        row = self.views.user(user_id)
        if row is None and (user := self.log.find(User, user_id)) is not None:
            return user_row(user)
        return row


class NoAttempts:
    """Counts nothing (a container built without a counter: unit tests of other rules)."""

    def count(self, key: str, window: timedelta, now: datetime) -> tuple[int, datetime]:
        return 0, now + window

    def add(self, key: str, window: timedelta, now: datetime) -> int:
        return 0

    def clear(self, key: str) -> None:
        return None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _masked(email: str) -> str:
    """Enough of the new address for its owner to recognise, not for a reader to learn."""
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


__all__ = ["Accounts", "Conflict", "SessionGrant"]
