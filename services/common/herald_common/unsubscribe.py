"""Signed one-click unsubscribe tokens (RFC 8058 ``List-Unsubscribe``).

The notifications service puts a token in every promotional email's link; the gateway
serves the link and hands the token to the users service, which verifies it and turns
the named type off for the user. Both sides share one secret
(``HERALD_UNSUBSCRIBE_SECRET``; the chart generates it once and keeps it across
upgrades). Locally and in tests a fixed development secret stands in; production has
no default.

A token is ``<payload>.<signature>``: the payload is URL-safe base64 of
``[user_id, type]`` (JSON), the signature the first 128 bits of its HMAC-SHA256. The
link works as long as the secret is unchanged (mail sits in mailboxes for years, and
unsubscribing twice is harmless), and it can only ever turn a type *off*.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from pydantic import SecretStr

from herald_common.errors import BadUserInput

# Only ever used when environment is local/test.
LOCAL_SECRET = "herald-local-unsubscribe-secret"
UNSUBSCRIBABLE = ("promotion", "recommendation")
MAX_TOKEN = 1000


def secret_for(value: SecretStr | None, environment: str) -> bytes:
    """The configured secret; the development one locally and in tests."""
    if value is not None and value.get_secret_value():
        return value.get_secret_value().encode()
    if environment in ("local", "test"):
        return LOCAL_SECRET.encode()
    raise ValueError("unsubscribe_secret is required in production (HERALD_UNSUBSCRIBE_SECRET)")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:16])


def sign(secret: bytes, user_id: str, type_: str) -> str:
    """A token that unsubscribes ``user_id`` from ``type_``."""
    if type_ not in UNSUBSCRIBABLE:
        raise ValueError(f"{type_!r} cannot be unsubscribed from")
    payload = _b64(json.dumps([user_id, type_], separators=(",", ":")).encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: bytes, token: str) -> tuple[str, str]:
    """``(user_id, type)`` of a valid token; :class:`BadUserInput` otherwise."""
    invalid = BadUserInput("not a valid unsubscribe link", field="token")
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise invalid
    payload, signature = token.split(".")
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        raise invalid
    try:
        user_id, type_ = json.loads(_unb64(payload))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid from exc
    if not isinstance(user_id, str) or type_ not in UNSUBSCRIBABLE:
        raise invalid
    return user_id, type_
