"""GraphiQL in a real browser with no internet: Debian's chromium, headless, driven over
the DevTools protocol (``websockets``). Every host but loopback is unreachable (a
resolver that answers nothing and a dead proxy for everything else), so the page works
only if the gateway serves every file it loads.

The test signs a user in, opens ``/graphql``, runs ``{ me { name } }`` with the token in
GraphiQL's headers and sees the answer, checks that every request the page made went to
the gateway, then runs a subscription in GraphiQL and sees an ORDER_UPDATE arrive after
a purchase. ``HERALD_GRAPHIQL_SCREENSHOT=<file.png>`` saves a screenshot of the answer
(the one in gateway/README.md).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from herald_testing import eventually
from websockets.asyncio.client import ClientConnection, connect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # No internet: names other than loopback resolve to nothing, and anything not on
    # loopback would go through a proxy that does not exist.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1;localhost",
    "--window-size=1280,800",
    "--remote-debugging-port=0",
]


class Browser:
    """One DevTools connection to a page target (flat session)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.session: str | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result(message)
            else:
                self.events.append(message)

    async def send(self, method: str, session: bool = True, **params: Any) -> Any:
        ident = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        await self.ws.send(json.dumps(message))
        answer = await asyncio.wait_for(future, 60)
        assert "error" not in answer, answer
        return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def requested(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def failed(self) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e.get("method") == "Network.loadingFailed"]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `dev/tools.sh browser`", pytrace=False)
    profile = tmp_path / "profile"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        await eventually(port_file.exists, timeout=60)
        lines = await eventually(lambda: port_file.read_text().split() or None, timeout=30)
        url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        async with connect(url, max_size=64 * 1024 * 1024) as ws:
            b = Browser(ws)
            target = await b.send("Target.createTarget", session=False, url="about:blank")
            attached = await b.send(
                "Target.attachToTarget", session=False, targetId=target["targetId"], flatten=True
            )
            b.session = attached["sessionId"]
            for domain in ("Network", "Page", "Runtime"):
                await b.send(f"{domain}.enable")
            try:
                yield b
            finally:
                b.reader.cancel()
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
RESPONSE = (
    "(document.querySelector('.graphiql-response .CodeMirror') || {CodeMirror: null}).CodeMirror"
)


async def response_text(b: Browser) -> str:
    value = await b.evaluate(
        f"(() => {{ const cm = {RESPONSE}; return cm ? cm.getValue() : ''; }})()"
    )
    return str(value or "")


async def run_in_graphiql(b: Browser, query: str) -> None:
    """Type ``query`` into GraphiQL's editor and press run, once GraphiQL has taken the
    new text in (it stores the editor's text after parsing it; pressing run earlier
    would run the previous operation)."""
    await b.evaluate(f"{EDITOR}.setValue({json.dumps(query)})")

    async def taken() -> bool:
        stored = await b.evaluate("localStorage.getItem('graphiql:query')")
        return bool(stored == query)

    await eventually(taken, timeout=30)
    await b.evaluate("document.querySelector('.graphiql-execute-button').click()")


async def test_graphiql_works_offline_with_a_token(herald, gql, browser) -> None:
    b = browser
    grace = await gql.register("Grace", {"timezone": "UTC"})
    token = grace["accessToken"]

    # Open GraphiQL once to reach its origin, put the token in its headers, reload.
    await b.send("Page.navigate", url=herald.graphql)
    await eventually(lambda: b.evaluate("!!document.querySelector('.graphiql-container')"), 60)
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    await b.evaluate(f"localStorage.setItem('graphiql:headers', {json.dumps(headers)})")
    await b.send("Page.reload", ignoreCache=True)

    async def ready() -> bool:
        return bool(
            await b.evaluate(
                "!!document.querySelector('.graphiql-query-editor .CodeMirror') && "
                "!!document.querySelector('.graphiql-execute-button')"
            )
        )

    await eventually(ready, timeout=60)
    await run_in_graphiql(b, "{ me { name } }")

    async def answered() -> str | None:
        text = await response_text(b)
        return text if '"Grace"' in text else None

    text = await eventually(answered, timeout=60)
    assert json.loads(text) == {"data": {"me": {"name": "Grace"}}}
    shot = os.environ.get("HERALD_GRAPHIQL_SCREENSHOT")
    if shot:
        png = await b.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(Path(shot).write_bytes, base64.b64decode(png["data"]))

    # Every request of the page went to the gateway (and none failed).
    urls = b.requested()
    assert urls, "the page made no requests"
    outside = [u for u in urls if not u.startswith(herald.url) and not u.startswith("data:")]
    assert outside == [], outside
    assert any(u.endswith("/graphql/static/graphiql.min.js") for u in urls)
    assert b.failed() == []

    # A subscription in GraphiQL (graphql-transport-ws, the token in connection_init):
    # a purchase's order update arrives in the response pane.
    await run_in_graphiql(b, "subscription { notificationAdded { type content } }")

    async def subscribed() -> bool:
        sockets = [e for e in b.events if e.get("method") == "Network.webSocketCreated"]
        frames = [e for e in b.events if e.get("method") == "Network.webSocketFrameReceived"]
        return bool(sockets) and any(
            "connection_ack" in f["params"]["response"]["payloadData"] for f in frames
        )

    await eventually(subscribed, timeout=60)
    product = "p-00003"  # of the seeded catalog

    async def order_update() -> bool:
        return "ORDER_UPDATE" in await response_text(b)

    await gql(
        "mutation($p: ID!) { trackActivity(events: [{kind: PURCHASE, productId: $p}]) }",
        {"p": product},
        token=token,
    )
    try:
        await eventually(order_update, timeout=90)
    except AssertionError as exc:
        frames = [
            (e["method"], e["params"]["response"]["payloadData"][:300])
            for e in b.events
            if e.get("method", "").startswith("Network.webSocketFrame")
        ]
        inbox = await gql("{ notifications(first: 3) { edges { node { type } } } }", token=token)
        raise AssertionError(
            f"no ORDER_UPDATE in GraphiQL: {await response_text(b)!r}; frames {frames}; "
            f"inbox {inbox}"
        ) from exc
    [socket] = [e for e in b.events if e.get("method") == "Network.webSocketCreated"]
    assert socket["params"]["url"].startswith(herald.ws_url.split("/graphql")[0])
    sent = [
        e["params"]["response"]["payloadData"]
        for e in b.events
        if e.get("method") == "Network.webSocketFrameSent"
    ]
    init = json.loads(sent[0])
    assert init["type"] == "connection_init"
    assert init["payload"]["authorization"] == f"Bearer {token}"
