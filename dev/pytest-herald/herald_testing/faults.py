"""Fault injection for tests: a TCP proxy whose connections can be cut at will.

Put it between a client and a real server (RabbitMQ, Redis, MongoDB) and call
:meth:`TcpProxy.drop_all` to sever every open connection abruptly, as a network failure
or a server restart would; the proxy keeps accepting new connections, so clients can
reconnect. ``pause()`` refuses new connections until ``resume()``. :meth:`TcpProxy.stall`
stops forwarding on the open connections without closing them (a peer gone silent).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlparse, urlunparse


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections_made = 0
        self.drops = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._accepting = True

    @classmethod
    def for_url(cls, url: str, default_port: int) -> TcpProxy:
        parsed = urlparse(url)
        return cls(parsed.hostname or "127.0.0.1", parsed.port or default_port)

    def url_through(self, url: str) -> str:
        """``url`` rewritten to go through the proxy."""
        parsed = urlparse(url)
        netloc = f"127.0.0.1:{self.port}"
        if parsed.username:
            auth = parsed.username + (f":{parsed.password}" if parsed.password else "")
            netloc = f"{auth}@{netloc}"
        return urlunparse(parsed._replace(netloc=netloc))

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections_made += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def drop_all(self) -> int:
        """Cut every open connection now (both directions, no goodbye); returns how many."""
        pairs = list(self._pairs)
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        self.drops += len(pairs)
        return len(pairs)

    def stall(self) -> int:
        """Stop forwarding on every open connection, both ways, without closing it (as a
        network that drops everything silently would); returns how many. New
        connections are forwarded as usual."""
        pairs = list(self._pairs)
        for client, upstream in pairs:
            client.transport.pause_reading()
            upstream.transport.pause_reading()
        return len(pairs)

    def pause(self) -> None:
        self._accepting = False

    def resume(self) -> None:
        self._accepting = True

    async def close(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class ProxyThread:
    """:class:`TcpProxy` instances served by their own event loop in a thread.

    For servers used by processes that outlive one test's event loop (module or session
    fixtures that start Herald): ``add`` returns a started proxy; ``cut`` makes its
    server unreachable (new connections refused, open ones severed) until ``restore``.
    """

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.proxies: list[TcpProxy] = []

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def add(self, url: str, default_port: int) -> TcpProxy:
        proxy = self._run(TcpProxy.for_url(url, default_port).start())
        self.proxies.append(proxy)
        return proxy

    def cut(self, proxy: TcpProxy) -> int:
        """Refuse new connections and sever the open ones; returns how many were cut."""

        async def cut() -> int:
            proxy.pause()
            return proxy.drop_all()

        return int(self._run(cut()))

    def restore(self, proxy: TcpProxy) -> None:
        self.loop.call_soon_threadsafe(proxy.resume)

    def close(self) -> None:
        for proxy in self.proxies:
            self._run(proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
