"""A real SMTP server for local runs and tests (aiosmtpd) that keeps every message.

Each accepted message is written as one ``.eml`` file (RFC 5322, as received, with a
``X-Herald-Envelope-To`` header naming the envelope recipients) into a directory:
written under a temporary name, then renamed, so a reader never sees half a message.

``make up`` runs it as its own process on 127.0.0.1:2525 writing to ``.run/mail/``::

    python -m herald_testing.mailbox --host 127.0.0.1 --port 2525 --dir .run/mail

Tests get one per session (the ``smtp_server`` fixture, a :class:`Mailbox`). A test can
make the server refuse mail for one recipient (:meth:`Mailbox.refuse`): permanently
(``550``), or temporarily a given number of times (``451``), which is how the sender's
dead-lettering and retries are tested over a real SMTP conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from herald_testing import eventually

ENVELOPE_TO = "X-Herald-Envelope-To"


@dataclass
class Refusal:
    """How the server answers mail for one recipient: ``code`` and ``text``, ``times``
    more times (None: always)."""

    code: int
    text: str
    times: int | None


class _Handler:
    """aiosmtpd handler: refusals per recipient at RCPT, every message to a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.refusals: dict[str, Refusal] = {}
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        with self.lock:
            refusal = self.refusals.get(address.lower())
            if refusal is not None:
                if refusal.times is not None:
                    refusal.times -= 1
                    if refusal.times <= 0:
                        del self.refusals[address.lower()]
                return f"{refusal.code} {refusal.text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        header = f"{ENVELOPE_TO}: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(header + content)
        tmp.rename(self.directory / f"{name}.eml")
        return "250 Message accepted for delivery"


class Mailbox:
    """A running SMTP server and the messages it kept."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._handler = _Handler(self.directory)
        if port == 0:
            port = _free_port(host)
        # A generous start-up timeout: the machine may be busy.
        self._controller = Controller(self._handler, hostname=host, port=port, ready_timeout=30)
        self.host = host
        self.port = port

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    # --- behaviour ----------------------------------------------------------------------

    def refuse(
        self, recipient: str, code: int = 550, text: str = "", times: int | None = None
    ) -> None:
        """Answer RCPT for ``recipient`` with ``code`` (``times`` times, None: always)."""
        default = "mailbox unavailable" if code >= 500 else "try again later"
        with self._handler.lock:
            self._handler.refusals[recipient.lower()] = Refusal(code, text or default, times)

    def accept(self, recipient: str) -> None:
        """Stop refusing ``recipient``."""
        with self._handler.lock:
            self._handler.refusals.pop(recipient.lower(), None)

    # --- messages -------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"))

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        """Every kept message (oldest first), or those whose envelope went to ``to``."""
        found = []
        for path in self.files():
            message = read_message(path)
            recipients = [r.strip().lower() for r in str(message[ENVELOPE_TO] or "").split(",")]
            if to is None or to.lower() in recipients:
                found.append(message)
        return found

    async def wait_for(self, to: str, count: int = 1, timeout: float = 90.0) -> list[EmailMessage]:
        """Wait until at least ``count`` messages for ``to`` were kept; return them."""

        def arrived() -> list[EmailMessage] | None:
            messages = self.messages(to)
            return messages if len(messages) >= count else None

        result: list[EmailMessage] = await eventually(arrived, timeout=timeout)
        return result


def _free_port(host: str) -> int:
    # aiosmtpd's controller checks its server by connecting to the configured port, so
    # it needs a real one, not 0.
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def read_message(path: Path) -> EmailMessage:
    """Parse one ``.eml`` file."""
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailbox]:
    """A real SMTP server on a free loopback port for the whole session; messages are
    told apart by recipient (tests use unique addresses)."""
    mailbox = Mailbox(tmp_path_factory.mktemp("mail")).start()
    try:
        yield mailbox
    finally:
        mailbox.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SMTP server keeping every message as .eml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, default=Path(".run/mail"))
    args = parser.parse_args(argv)
    mailbox = Mailbox(args.dir, args.host, args.port).start()
    print(f"smtp: listening on {args.host}:{mailbox.port}, keeping mail in {args.dir}", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the local server ends
            asyncio.run(_forever())
    finally:
        mailbox.stop()


async def _forever() -> None:
    # Blocks without waking up until the process is stopped (idle means idle).
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
