"""What a valid email, username and password look like; shared by the domain and the API schema."""

import re

from sora2.domain.errors import InvalidInput
from sora2.domain.text import CONTROL, check_text

# `$(?!\n)`: the end of the string in Python's `re` as in JSON Schema (see domain/text.py)
EMAIL_PATTERN = rf"^[^@\s{CONTROL}]+@[^@\s{CONTROL}]+\.[^@\s.{CONTROL}]+$(?!\n)"
USERNAME_PATTERN = r"^[A-Za-z0-9_-]{3,32}$(?!\n)"
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
EMAIL_MAX_LENGTH = 254

_email = re.compile(EMAIL_PATTERN)
_username = re.compile(USERNAME_PATTERN)


def normalize_email(email: str) -> str:
    email = check_text(email, "email").strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not _email.match(email):
        raise InvalidInput("email must be a valid email address")
    return email


def check_username(username: str) -> str:
    check_text(username, "username")
    if not _username.fullmatch(username):
        raise InvalidInput("username must be 3-32 letters, digits, '_' or '-'")
    return username


def check_password(password: str) -> str:
    check_text(password, "password")
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters"
        )
    return password
