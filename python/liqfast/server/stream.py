"""WebSocket push of grid updates with bounded memory per client.

Each client has exactly one slot: the newest frame not yet sent. A new frame overwrites an
unsent one (the client skips to the present instead of queueing the past), so memory per
client is one frame whatever its speed. A client that keeps skipping (``max_skipped``
frames in a row) or whose send blocks longer than ``send_timeout`` is closed with 1008
("policy violation: too slow"). Frames are encoded once per distinct subscription and shared
by all clients holding the same one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .params import Query

__all__ = ["StreamClient", "StreamHub"]

log = logging.getLogger("liqfast.server")


class StreamClient:
    """One WebSocket client (see the module docstring)."""

    def __init__(self, ws: web.WebSocketResponse, query: Query, peer: str, *, max_skipped: int, send_timeout: float) -> None:
        self.ws = ws
        self.query = query
        self.peer = peer
        self.max_skipped = max_skipped
        self.send_timeout = send_timeout
        self._pending: bytes | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        self.skipped = 0
        self.skipped_in_row = 0
        self.dropped = False
        self.closed = False

    def offer(self, frame: bytes) -> bool:
        """Make ``frame`` the next to send; False when the client was dropped as too slow."""
        if self.dropped or self.closed:
            return False
        if self._pending is not None:
            self.skipped += 1
            self.skipped_in_row += 1
            if self.skipped_in_row >= self.max_skipped:
                self.drop("did not keep up with updates")
                return False
        self._pending = frame
        self._wake.set()
        return True

    def drop(self, why: str) -> None:
        if self.dropped:
            return
        self.dropped = True
        self._pending = None
        self._wake.set()
        log.info("stream client %s dropped: %s", self.peer, why)

    async def writer(self) -> None:
        ws = self.ws
        while not ws.closed:
            await self._wake.wait()
            self._wake.clear()
            if self.dropped:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too slow"), 1.0)
                return
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            try:
                await asyncio.wait_for(ws.send_frame(frame, WSMsgType.TEXT), self.send_timeout)
            except asyncio.TimeoutError:
                self.drop(f"a send blocked for more than {self.send_timeout:g} s")
                continue
            except (ConnectionResetError, RuntimeError):
                return
            self.sent += 1
            self.skipped_in_row = 0


class StreamHub:
    """All stream clients; :meth:`publish` fans a symbol's update out to them."""

    def __init__(self, *, max_clients: int = 256, max_skipped: int = 20, send_timeout: float = 5.0) -> None:
        self.max_clients = max_clients
        self.max_skipped = max_skipped
        self.send_timeout = send_timeout
        self.clients: set[StreamClient] = set()
        self.frames = 0
        self.dropped = 0

    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    def add(self, ws: web.WebSocketResponse, query: Query, peer: str) -> StreamClient:
        c = StreamClient(ws, query, peer, max_skipped=self.max_skipped, send_timeout=self.send_timeout)
        self.clients.add(c)
        return c

    def remove(self, c: StreamClient) -> None:
        if c in self.clients:
            self.clients.discard(c)
            if c.dropped:
                self.dropped += 1

    def queries(self, symbol: str) -> set[Query]:
        return {c.query for c in self.clients if c.query.symbol == symbol and not c.dropped}

    def publish(self, symbol: str, frame_for: Callable[[Query], bytes | None]) -> int:
        """Offer each client of ``symbol`` the frame of its query (built once per query)."""
        frames: dict[Query, bytes | None] = {}
        n = 0
        for c in list(self.clients):
            if c.query.symbol != symbol or c.dropped:
                continue
            if c.query not in frames:
                frames[c.query] = frame_for(c.query)
            f = frames[c.query]
            if f is not None and c.offer(f):
                n += 1
        self.frames += n
        return n

    async def close_all(self) -> None:
        for c in list(self.clients):
            with contextlib.suppress(Exception):
                await c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    def stats(self) -> dict[str, Any]:
        return {"clients": len(self.clients), "frames": self.frames, "dropped": self.dropped}
