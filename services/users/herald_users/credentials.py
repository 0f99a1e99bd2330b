"""Email normalization and validation, the password policy and password hashing.

Errors are :class:`~herald_common.errors.BadUserInput` naming the field. Passwords are
hashed with argon2id and never returned, logged or put in an event.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from herald_common.errors import BadUserInput

MIN_PASSWORD = 10
MAX_PASSWORD = 128
MAX_NAME = 100

# Pragmatic address syntax (RFC 5321 sizes, dot-atom local part, DNS-style domain with
# a TLD); deliverability is not checked here.
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^[a-z]{2,63}$|^xn--[a-z0-9-]{1,59}$")


def normalize_email(raw: str, field: str = "email") -> str:
    """The canonical form of an email address (stripped, lower-cased), or BadUserInput."""
    if not isinstance(raw, str):
        raise BadUserInput("email must be a string", field=field)
    email = raw.strip().lower()
    if not email:
        raise BadUserInput("email is required", field=field)
    if len(email) > 254 or email.count("@") != 1:
        raise BadUserInput("not a valid email address", field=field)
    local, domain = email.split("@")
    labels = domain.split(".")
    valid = (
        0 < len(local) <= 64
        and _LOCAL.match(local) is not None
        and len(labels) >= 2
        and all(_LABEL.match(label) for label in labels)
        and _TLD.match(labels[-1]) is not None
    )
    if not valid:
        raise BadUserInput("not a valid email address", field=field)
    return email


def normalize_name(raw: str, field: str = "name") -> str:
    name = " ".join(raw.split()) if isinstance(raw, str) else ""
    if not name:
        raise BadUserInput("name must not be empty", field=field)
    if len(name) > MAX_NAME:
        raise BadUserInput(f"name must be at most {MAX_NAME} characters", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadUserInput("name must not contain control characters", field=field)
    return name


def _classes(password: str) -> int:
    lower = any(c.islower() for c in password)
    upper = any(c.isupper() for c in password)
    digit = any(c.isdigit() for c in password)
    symbol = any(not c.isalnum() for c in password)
    return sum((lower, upper, digit, symbol))


def check_password_policy(password: str, email: str | None = None, field: str = "password") -> None:
    """Refuse a weak password with a message that says what to change."""
    if not isinstance(password, str):
        raise BadUserInput("password must be a string", field=field)
    if len(password) < MIN_PASSWORD:
        raise BadUserInput(f"password must be at least {MIN_PASSWORD} characters", field=field)
    if len(password) > MAX_PASSWORD:
        raise BadUserInput(f"password must be at most {MAX_PASSWORD} characters", field=field)
    if _classes(password) < 2:
        raise BadUserInput(
            "password must mix at least two of: lower-case, upper-case, digits, symbols",
            field=field,
        )
    if email is not None and password.strip().lower() == email.strip().lower():
        raise BadUserInput("password must not be the email address", field=field)


class Passwords:
    """argon2id hashing with a constant-time answer for unknown accounts."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified against when the account does not exist, so a login for an unknown
        # email costs as much as one for a known email.
        self._decoy = self._hasher.hash("decoy password that never matches")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; always spends one argon2 verification."""
        if len(password) > MAX_PASSWORD:
            return False  # no account can have it; do not hash unbounded input
        try:
            return self._hasher.verify(stored_hash or self._decoy, password) and bool(stored_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
