"""Rendering an email from a notification: subject, text part, HTML part, headers.

Templates live beside this module, one text and one HTML template per type
(``<type>.txt.j2``, ``<type>.html.j2``, extending ``_base``); HTML is autoescaped, so
content from campaigns or products cannot inject markup. A campaign overrides them by
putting template sources in its content's ``data.email`` (``subject``, ``text``,
``html``); those run in Jinja2's sandbox with the same variables.

Promotions and recommendations carry RFC 8058 one-click unsubscribe headers
(``List-Unsubscribe`` with the signed HTTPS link, ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``); the link is also in both parts' footer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from herald_common.unsubscribe import UNSUBSCRIBABLE, sign
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from herald_notifications.reasons import TYPE_WORDS, reason_for

TEMPLATES = Path(__file__).parent / "templates"
MAX_SUBJECT = 200

_files = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html.j2"]),
    keep_trailing_newline=True,
)
_text_sandbox = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
_html_sandbox = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


class RenderError(Exception):
    """A template (a campaign's override) cannot be rendered: retrying will not help."""


@dataclass
class Rendered:
    subject: str
    text: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)


def _parts(content: Any) -> tuple[str, str, dict[str, Any]]:
    if isinstance(content, dict):
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        title = str(content.get("title") or "")
        body = str(content.get("body") or "")
        return title, body, data or {}
    return "", str(content), {}


def unsubscribe_url(public_url: str, secret: bytes, user_id: str, type_: str) -> str:
    return f"{public_url.rstrip('/')}/unsubscribe/{sign(secret, user_id, type_)}"


def render(doc: dict[str, Any], *, name: str | None, public_url: str, secret: bytes) -> Rendered:
    """Render a stored notification (``notification.created`` payload fields)."""
    type_ = str(doc["type"])
    title, body, data = _parts(doc.get("content"))
    reason = reason_for(doc)
    link = (
        unsubscribe_url(public_url, secret, str(doc["user_id"]), type_)
        if type_ in UNSUBSCRIBABLE
        else None
    )
    values = {
        "title": title or TYPE_WORDS.get(type_, type_).capitalize(),
        "body": body,
        "data": data,
        "name": name or "there",
        "type": type_,
        "type_words": TYPE_WORDS.get(type_, type_),
        "reason": reason,
        "unsubscribe_url": link,
    }
    values["subject"] = str(values["title"])
    raw = data.get("email")
    override: dict[str, Any] = raw if isinstance(raw, dict) else {}
    try:
        if override.get("subject"):
            values["subject"] = _text_sandbox.from_string(str(override["subject"])).render(values)
        subject = " ".join(str(values["subject"]).split())[:MAX_SUBJECT]
        values["subject"] = subject
        text = (
            _text_sandbox.from_string(str(override["text"])).render(values)
            if override.get("text")
            else _files.get_template(_name(type_, "txt")).render(values)
        )
        html = (
            _html_sandbox.from_string(str(override["html"])).render(values)
            if override.get("html")
            else _files.get_template(_name(type_, "html")).render(values)
        )
    except TemplateError as exc:
        raise RenderError(f"cannot render the {type_} email: {exc}") from exc
    if override.get("text") or override.get("html"):
        # A campaign's own template still ends with the reason and the unsubscribe link.
        footer = _files.get_template("_footer.txt.j2").render(values)
        text = text.rstrip("\n") + "\n\n" + footer
        html_footer = _files.get_template("_footer.html.j2").render(values)
        html = (
            html.replace("</body>", html_footer + "</body>")
            if "</body>" in html
            else html + html_footer
        )
    headers = {}
    if link:
        headers["List-Unsubscribe"] = f"<{link}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return Rendered(subject=subject, text=text, html=html, headers=headers)


def _name(type_: str, kind: str) -> str:
    name = f"{type_}.{kind}.j2"
    return name if (TEMPLATES / name).is_file() else f"promotion.{kind}.j2"


def build_message(
    rendered: Rendered,
    *,
    doc: dict[str, Any],
    sender: str,
    to: str,
    to_name: str | None,
    domain: str,
) -> EmailMessage:
    """The MIME message: text and HTML alternatives, a Message-ID derived from the
    notification (a resend after a crash is recognisable as the same message)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((to_name or "", to))
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(doc["sent_at"])
    message["Message-ID"] = f"<{doc['_id']}@{domain}>"
    message["X-Herald-Notification-Id"] = str(doc["_id"])
    message["X-Herald-Type"] = str(doc["type"])
    message["X-Herald-Reason"] = reason_for(doc)["code"]
    for key, value in rendered.headers.items():
        message[key] = value
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
