"""Sending over SMTP with aiosmtplib: one connection per batch, plain / STARTTLS / TLS,
optional credentials.

Failures are classified for the consumer: a 5xx answer (the relay or the recipient's
server refused: unknown mailbox, policy) is :class:`PermanentSendError` — it goes to
the dead-letter queue at once; anything else (4xx, connection refused, timeouts, TLS
trouble) is :class:`TemporarySendError`, retried with back-off.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
from aiosmtplib.errors import SMTPRecipientsRefused, SMTPResponseException

Security = Literal["none", "starttls", "tls"]


class SendError(Exception):
    """Sending one message failed."""


class PermanentSendError(SendError):
    """The server refused for good (5xx)."""


class TemporarySendError(SendError):
    """Worth trying again later."""


@dataclass(frozen=True)
class Relay:
    """Where and how to send."""

    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    validate_certs: bool = True
    ca_file: str | None = None


def classify(exc: BaseException) -> SendError:
    """The consumer's view of an SMTP failure."""
    if isinstance(exc, SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if codes and all(code >= 500 for code in codes):
            return PermanentSendError(f"refused: {text}")
        return TemporarySendError(f"refused for now: {text}")
    if isinstance(exc, SMTPResponseException):
        kind = PermanentSendError if exc.code >= 500 else TemporarySendError
        return kind(f"SMTP {exc.code} {exc.message}")
    return TemporarySendError(f"{type(exc).__name__}: {exc}")


class Sender:
    """Sends messages through one relay."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def _client(self) -> aiosmtplib.SMTP:
        r = self.relay
        context = ssl.create_default_context(cafile=r.ca_file) if r.ca_file else None
        return aiosmtplib.SMTP(
            hostname=r.host,
            port=r.port,
            username=r.username,
            password=r.password,
            timeout=r.timeout,
            use_tls=r.security == "tls",
            start_tls=True if r.security == "starttls" else False,
            validate_certs=r.validate_certs,
            tls_context=context,
        )

    async def send_all(
        self, messages: Sequence[tuple[EmailMessage, str]]
    ) -> list[SendError | None]:
        """Send each ``(message, recipient)`` over one connection; per message None
        (accepted by the relay) or the classified error. A connection failure fails
        every message not sent yet (temporarily)."""
        results: list[SendError | None] = [None] * len(messages)
        if not messages:
            return results
        client = self._client()
        try:
            await client.connect()
        except Exception as exc:  # noqa: BLE001 - classified and reported per message
            error = classify(exc)
            return [error] * len(messages)
        try:
            for i, (message, recipient) in enumerate(messages):
                try:
                    await client.send_message(message, recipients=[recipient])
                except Exception as exc:  # noqa: BLE001 - classified and reported per message
                    results[i] = classify(exc)
                    if not client.is_connected:
                        try:
                            await client.connect()
                        except Exception as again:  # noqa: BLE001 - the rest fail for now
                            for j in range(i + 1, len(messages)):
                                results[j] = classify(again)
                            return results
                    else:
                        # Clear the failed transaction before the next message.
                        await _reset(client)
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except Exception:  # noqa: BLE001 - the messages are sent; closing is best effort
                    client.close()
        return results


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except Exception:  # noqa: BLE001 - a broken connection shows on the next send
        client.close()
