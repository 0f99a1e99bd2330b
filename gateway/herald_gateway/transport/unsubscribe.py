"""One-click unsubscribe links of promotional emails (RFC 8058), served by the gateway
because it is the only public entry point.

* ``GET /unsubscribe/{token}`` — a page with one button; it changes nothing (mail
  scanners and link previews follow GET links).
* ``POST /unsubscribe/{token}`` — what the button and mail clients' one-click
  unsubscribe (``List-Unsubscribe-Post: List-Unsubscribe=One-Click``) send: the users
  service verifies the signed token and turns the type off. HTML for a browser, JSON
  otherwise; a bad token is a 400, an unknown user a 404, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from fastapi import FastAPI, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from herald_gateway.clients.base import CallContext
from herald_gateway.errors import GraphQLFailure
from herald_gateway.gateway import Gateway

STATUS = {"BAD_USER_INPUT": 400, "NOT_FOUND": 404, "RATE_LIMITED": 429, "UNAVAILABLE": 503}
WORDS = {"promotion": "promotions", "recommendation": "recommendations"}
TOKEN = Path(min_length=1, max_length=1000, pattern=r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+$")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto;">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def make_unsubscribe_routes(app: FastAPI, gateway_of: Callable[[Request], Gateway]) -> None:
    @app.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def unsubscribe_page(token: str = TOKEN) -> Response:
        """The confirmation page: a button that POSTs to the same address."""
        action = f"/unsubscribe/{escape(token)}"
        return _page(
            "Unsubscribe",
            "<p>Stop getting these emails? You can turn them on again in your "
            "preferences at any time.</p>"
            f'<form method="post" action="{action}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>',
        )

    @app.post("/unsubscribe/{token}", include_in_schema=False)
    async def unsubscribe(request: Request, token: str = TOKEN) -> Response:
        """Turn the token's type off for its user (through the users service)."""
        gateway = gateway_of(request)
        try:
            result: Any = await gateway.services.users.request(
                "POST", f"/v1/users/unsubscribe/{token}", CallContext()
            )
        except GraphQLFailure as exc:
            status = STATUS.get(exc.code, 503)
            if _wants_html(request):
                return _page(
                    "This link does not work",
                    f"<p>{escape(exc.message)}</p>",
                    status,
                )
            return JSONResponse(
                {"error": {"code": exc.code, "message": exc.message}}, status_code=status
            )
        words = WORDS.get(str(result.get("type")), str(result.get("type")))
        if _wants_html(request):
            return _page(
                "You are unsubscribed",
                f"<p>You will not get {escape(words)} any more.</p>",
            )
        return JSONResponse({"unsubscribed": result.get("type"), "user_id": result.get("user_id")})
