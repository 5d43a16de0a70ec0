"""What a valid email, username and password look like; shared by the domain and the API schema."""

import re

from sora2.domain.errors import InvalidInput

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
USERNAME_PATTERN = r"^[A-Za-z0-9_-]{3,32}$"
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
EMAIL_MAX_LENGTH = 254

_email = re.compile(EMAIL_PATTERN)
_username = re.compile(USERNAME_PATTERN)


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not _email.match(email):
        raise InvalidInput("email must be a valid email address")
    return email


def check_username(username: str) -> str:
    if not _username.fullmatch(username):  # `$` alone lets a trailing newline through
        raise InvalidInput("username must be 3-32 letters, digits, '_' or '-'")
    return username


def check_password(password: str) -> str:
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters"
        )
    return password
