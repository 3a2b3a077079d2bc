"""WebSocket push: frames after updates, latest-frame-only per client, slow clients dropped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest
from aiohttp import WSMsgType

from liqfast.server import create_app
from liqfast.server.app import SERVICE
from liqfast.server.params import Query
from liqfast.server.schema import StreamFrame
from liqfast.server.stream import StreamClient, StreamHub

from .conftest import BAR_MS, next_bars

pytestmark = pytest.mark.asyncio


async def test_stream_pushes_each_update(aiohttp_client: Any, config: Any) -> None:
    c = await aiohttp_client(create_app(config()))
    svc = c.app[SERVICE]
    ws = await c.ws_connect("/api/v1/stream", params={"window": "12h", "bins": "120", "side": "long"})
    first = msgspec.json.decode((await ws.receive(timeout=5)).data, type=StreamFrame)
    assert first.window == "12h" and first.side == "long" and first.y_n <= 120 and len(first.long) == first.y_n
    assert all(v == 0 for v in first.short)
    # The frame's column equals the last column of the heatmap it belongs to.
    hm = await (await c.get("/api/v1/heatmap", params={"window": "12h", "bins": "120", "side": "long"})).json()
    assert hm["data"]["x_axis"][-1] == first.x_ms and hm["data"]["y_step"] == pytest.approx(first.y_step)
    for bar in next_bars(svc):
        t0 = time.perf_counter()
        svc.hub.publish(bar)
    msg = await ws.receive(timeout=5)
    latency = time.perf_counter() - t0
    f = msgspec.json.decode(msg.data, type=StreamFrame)
    assert f.version == first.version + 1 and f.x_ms == first.x_ms + BAR_MS
    assert f.price > 0 and len(f.map_long) == len(f.map_short) > 0
    assert latency < 1.0
    await ws.close()
    await asyncio.sleep(0.05)
    assert not svc.streams.clients


async def test_stream_client_limit(aiohttp_client: Any, config: Any) -> None:
    c = await aiohttp_client(create_app(config(ws_max_clients=1)))
    ws = await c.ws_connect("/api/v1/stream")
    await ws.receive(timeout=5)
    r = await c.get("/api/v1/stream", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status == 503
    await ws.close()


class _StuckWS:
    """A WebSocket whose sends never complete (a client that stopped reading)."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.close_code: int | None = None

    async def send_frame(self, data: bytes, opcode: WSMsgType) -> None:
        self.sent.append(data)
        await asyncio.sleep(3600)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> None:
        self.close_code = code
        self.closed = True


async def test_slow_client_holds_one_frame_then_is_dropped() -> None:
    ws = _StuckWS()
    c = StreamClient(ws, Query(symbol="BTC"), "test", max_skipped=5, send_timeout=60.0)  # type: ignore[arg-type]
    writer = asyncio.create_task(c.writer())
    assert c.offer(b"frame-0")
    await asyncio.sleep(0.01)  # the writer took frame 0 and is stuck sending it
    for i in range(1, 6):
        assert c.offer(f"frame-{i}".encode())
        assert c._pending == f"frame-{i}".encode()  # only the newest is held
    assert c.skipped == 4
    assert not c.offer(b"frame-6")  # fifth unsent frame overwritten in a row: dropped
    assert c.dropped and c._pending is None
    writer.cancel()


async def test_blocked_send_times_out_and_drops() -> None:
    ws = _StuckWS()
    c = StreamClient(ws, Query(symbol="BTC"), "test", max_skipped=100, send_timeout=0.05)  # type: ignore[arg-type]
    writer = asyncio.create_task(c.writer())
    c.offer(b"x")
    await asyncio.wait_for(writer, 2)
    assert c.dropped and ws.close_code == 1008


async def test_hub_encodes_once_per_query() -> None:
    hub = StreamHub()
    calls: list[Query] = []

    class _WS:
        closed = False

    qa, qb = Query(symbol="BTC", window="12h"), Query(symbol="BTC", window="7d")
    for q in (qa, qa, qa, qb):
        hub.add(_WS(), q, "p")  # type: ignore[arg-type]

    def frame(q: Query) -> bytes:
        calls.append(q)
        return q.window.encode()

    assert hub.publish("BTC", frame) == 4
    assert sorted(q.window for q in calls) == ["12h", "7d"]
    assert hub.publish("ETH", frame) == 0
