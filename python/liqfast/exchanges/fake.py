"""A fake exchange on loopback that speaks every supported venue's WebSocket and REST
protocol — for tests, chaos drills and the offline demo.

Why it exists: a feed handler is only as good as its behaviour when the venue misbehaves,
and real venues cannot be told to reset a socket on cue. The fake serves the same URL paths,
subscribe/ack/ping messages and payload shapes as the real venues (each venue module
defines its protocol next to its decoder, as ``Fake`` — the encoder is the exact inverse of
the normaliser), plus chaos controls: abort TCP, close with a code, go half-open (answer
pings, send no data), close every connection after a fixed lifetime (Binance's 24 h, in
seconds), answer REST with 429/418 + Retry-After, refuse connections, inject raw bytes.

The data source is pluggable: any (async) iterable or async-generator function yielding
normalised :mod:`liqfast.events` (each venue re-encodes them into its wire format, so what
comes out of the connectors equals what went in, up to unit-conversion rounding) or
:class:`RawFrame` (exact bytes, e.g. garbage for fuzzing). ``liqfast serve --demo`` drives
it with a market simulator and ingests it through the live path::

    async with FakeExchange(source=my_simulator) as fx:
        conn = BinanceUsdm(["BTCUSDT"], urls=fx.urls("binance-usdm"), sink=hub.publish)
        ...

Venue URL layout: ``http://127.0.0.1:<port>/<venue-id>/...`` (REST paths as on the venue)
and ``ws://127.0.0.1:<port>/<venue-id>/ws...``; :meth:`FakeExchange.urls` returns the pair
a connector needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeAlias

from aiohttp import WSMsgType, web

from ..events import Event, Liquidation, MarkFunding, OpenInterest, Trade
from .base import Instrument, fallback_instrument

__all__ = ["FakeClient", "FakeExchange", "FakeVenue", "RawFrame", "Source", "fake_instrument"]

log = logging.getLogger("liqfast.exchanges.fake")


class RawFrame(NamedTuple):
    """Exact bytes to push to clients of ``venue`` (all its sockets, or only ``socket``)."""

    venue: str
    data: str | bytes
    socket: str | None = None


SourceItem: TypeAlias = Event | RawFrame
Source: TypeAlias = (
    Callable[[], AsyncIterable[SourceItem]] | AsyncIterable[SourceItem] | Iterable[SourceItem]
)

#: Contract sizes the fake uses for venues whose size differs per contract (what a real
#: instrument endpoint would say; the fake serves them through its own instrument REST).
_FAKE_SIZES: dict[str, dict[str, float]] = {
    "okx-linear": {"BTC": 0.01, "ETH": 0.1},
    "okx-inverse": {"BTC": 100.0},
    "gate-linear": {"BTC": 0.0001, "ETH": 0.01},
    "kucoin-linear": {"BTC": 0.001, "XBT": 0.001, "ETH": 0.01},
}


def fake_instrument(venue: str, symbol: str) -> Instrument:
    """Instrument metadata the fake exchange serves for ``symbol``."""
    inst = fallback_instrument(venue, symbol)
    if inst is not None:
        return inst
    sizes = _FAKE_SIZES.get(venue, {})
    base = symbol.replace("-", "_").split("_")[0]
    for suffix in ("USDTM", "USDM", "USDT", "USD"):
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    inverse = venue.endswith("inverse") or venue == "binance-coinm"
    default = 10.0 if inverse else 1.0
    return Instrument(venue, symbol, "inverse" if inverse else "linear", sizes.get(base, default), base, source="fake")


def synthetic_price(ts_ms: int) -> float:
    """Deterministic price path of the fake's REST history."""
    return round(60_000.0 + 1_500.0 * math.sin(ts_ms / 7_200_000.0), 1)


def synthetic_oi(ts_ms: int) -> float:
    """Deterministic single-sided open interest (base coin) of the fake's REST history."""
    return 50_000.0 + float((ts_ms // 300_000) % 977)


def num(x: float) -> str:
    """Decimal string of a float as venues send it (shortest repr, no exponent)."""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    s = repr(x)
    if "e" in s or "E" in s:
        s = f"{x:.12f}".rstrip("0").rstrip(".")
    return s


class FakeClient:
    """One WebSocket client of the fake; frames go through a bounded queue (a client that
    does not read is dropped, as real venues do) and a writer task."""

    _ids = itertools.count(1)

    def __init__(self, venue: FakeVenue, socket: str, ws: web.WebSocketResponse, request: web.Request,
                 maxsize: int) -> None:
        self.id = next(self._ids)
        self.venue = venue
        self.socket = socket
        self.ws = ws
        self.request = request
        self.subs: set[str] = set()
        self.state: dict[str, Any] = {}
        self.opened = time.time()
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue(maxsize)
        self.sent = 0
        self.dropped = False

    def push(self, frame: str | bytes) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True
            log.info("fake %s: client %d too slow, dropping it", self.venue.prefix, self.id)
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    def abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()


Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeVenue:
    """Server side of one venue's protocol. Subclasses (``<venue module>.Fake``) implement
    the subscribe/ping handling, the encoders and the REST routes."""

    #: venue ids served (the events this protocol encodes)
    venue_ids: ClassVar[tuple[str, ...]] = ()
    #: URL prefix
    prefix: ClassVar[str] = ""
    #: WebSocket paths under the prefix ({socket name: path})
    ws_paths: ClassVar[dict[str, str]] = {"main": "/ws"}

    def __init__(self, exchange: FakeExchange) -> None:
        self.x = exchange

    # -- protocol -------------------------------------------------------------------------

    async def on_open(self, client: FakeClient) -> None:
        """Called when a client connects (parse URL subscriptions, send a welcome...)."""

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        """Handle a client message: (replies, was_it_a_ping). Replies are sent even in
        half-open mode when it was a ping."""
        return [], False

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        """Wire frames for a normalised event: [(subscription key, frame text)]."""
        return []

    def rest_routes(self) -> list[tuple[str, str, Handler]]:
        return []

    # -- helpers ------------------------------------------------------------------------------

    def instrument(self, venue: str, symbol: str) -> Instrument:
        return self.x.instrument(venue, symbol)

    def json(self, payload: Any, status: int = 200) -> web.Response:
        return web.json_response(payload, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))

    def symbols_of(self, venue: str) -> list[str]:
        return self.x.symbols_of(venue)

    def tier_rows(self, venue: str, symbol: str) -> list[Any]:
        """The shipped tier table of ``venue``/``symbol`` (what the fake's tier endpoint
        serves, in the venue's own shape); empty when none is shipped."""
        from ..errors import LiqfastError
        from ..tiers import load_table

        try:
            return list(load_table(venue, symbol).tiers)
        except LiqfastError:
            return []


@dataclass
class _RestFailure:
    status: int
    retry_after: float | None
    times: int


class FakeExchange:
    """The loopback server. See the module docstring."""

    def __init__(
        self,
        source: Source | None = None,
        *,
        venues: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_conn_lifetime: float | None = None,
        client_queue: int = 100_000,
        symbols: dict[str, list[str]] | None = None,
        speed: float | None = None,
    ) -> None:
        from .registry import fake_protocols

        self.source = source
        #: pace the source in exchange time: 1.0 real time, 60.0 a minute per second;
        #: None publishes as fast as the source yields
        self.speed = speed
        self.host = host
        self.port = port
        self.max_conn_lifetime = max_conn_lifetime
        self.client_queue = client_queue
        protos = fake_protocols()
        wanted = set(venues) if venues is not None else None
        self.protocols: dict[str, FakeVenue] = {}
        self._by_venue: dict[str, FakeVenue] = {}
        for cls in protos:
            if wanted is not None and not (wanted & set(cls.venue_ids)):
                continue
            proto = cls(self)
            self.protocols[cls.prefix] = proto
            for v in cls.venue_ids:
                self._by_venue[v] = proto
        self.clients: set[FakeClient] = set()
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.oi: dict[tuple[str, str], OpenInterest] = {}
        self.marks: dict[tuple[str, str], MarkFunding] = {}
        self.last_price: dict[tuple[str, str], float] = {}
        self._symbols: dict[str, list[str]] = {k: list(v) for k, v in (symbols or {}).items()}
        #: venue ids in half-open mode: pings answered, no data sent
        self.half_open: set[str] = set()
        #: venue ids gone silent: no data and no answer to pings (a dead peer behind a live TCP)
        self.silent: set[str] = set()
        #: venue ids refusing new connections (HTTP 503 on the upgrade)
        self.refusing: set[str] = set()
        #: venue ids answering the WebSocket upgrade with 429 + Retry-After (1 s)
        self.throttling: set[str] = set()
        self._rest_fail: dict[str, _RestFailure] = {}
        self.stats: dict[str, int] = {"connections": 0, "frames": 0, "rest": 0, "rest_failed": 0, "pings": 0}
        self.rest_log: list[tuple[float, str, str, int]] = []
        #: static files served under /vision/<path> (data.binance.vision layout), for backfill
        self.files: dict[str, bytes] = {}
        #: time range of the synthetic REST history (OKX/Bybit history endpoints)
        self.history_range: tuple[int, int] = (1_722_470_400_000, 1_722_729_600_000)  # 2024-08-01..04
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._source_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.source_done = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def create_app(self) -> web.Application:
        app = web.Application()
        for prefix, proto in self.protocols.items():
            for name, path in proto.ws_paths.items():
                app.router.add_get(f"/{prefix}{path}", self._ws_handler(proto, name))
            for method, path, handler in proto.rest_routes():
                app.router.add_route(method, f"/{prefix}{path}", self._rest_wrap(proto, handler))
        app.router.add_get("/vision/{tail:.*}", self._static)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _static(self, request: web.Request) -> web.StreamResponse:
        self.stats["rest"] += 1
        path = "/" + request.match_info["tail"]
        fail = self._rest_fail.get("vision")
        if fail is not None and fail.times > 0:
            fail.times -= 1
            self.stats["rest_failed"] += 1
            self.rest_log.append((time.time(), "vision", path, fail.status))
            headers = {} if fail.retry_after is None else {"Retry-After": num(fail.retry_after)}
            return web.Response(status=fail.status, text="rate limited", headers=headers)
        data = self.files.get(path)
        self.rest_log.append((time.time(), "vision", path, 200 if data is not None else 404))
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="application/zip")

    def vision_url(self) -> str:
        """Base URL of the fake data.binance.vision (files in :attr:`files`)."""
        return f"http://{self.host}:{self.port}/vision"

    async def start(self) -> FakeExchange:
        self._runner = web.AppRunner(self.create_app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        server = self._site._server
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
        if self.source is not None:
            self._source_task = asyncio.create_task(self.pump(self.source))
        log.info("fake exchange on http://%s:%d (%s)", self.host, self.port, ", ".join(self.protocols))
        return self

    async def stop(self) -> None:
        if self._source_task is not None:
            self._source_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._source_task
        for t in list(self._tasks):
            t.cancel()
        for c in list(self.clients):
            c.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeExchange:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_shutdown(self, app: web.Application) -> None:
        for c in list(self.clients):
            with contextlib.suppress(Exception):
                await c.ws.close()

    def urls(self, venue: str) -> Any:
        """``VenueUrls`` pointing a connector of ``venue`` at this server."""
        from .connector import VenueUrls

        proto = self._by_venue[venue]
        base = f"http://{self.host}:{self.port}/{proto.prefix}"
        return VenueUrls(ws=f"ws://{self.host}:{self.port}/{proto.prefix}", rest=base)

    # -- data ---------------------------------------------------------------------------------

    def instrument(self, venue: str, symbol: str) -> Instrument:
        key = (venue, symbol)
        inst = self.instruments.get(key)
        if inst is None:
            inst = fake_instrument(venue, symbol)
            self.instruments[key] = inst
        return inst

    def symbols_of(self, venue: str) -> list[str]:
        syms = set(self._symbols.get(venue, []))
        syms.update(s for (v, s) in self.instruments if v == venue)
        syms.update(s for (v, s) in self.oi if v == venue)
        syms.update(s for (v, s) in self.marks if v == venue)
        return sorted(syms)

    def add_symbols(self, venue: str, symbols: Iterable[str]) -> None:
        self._symbols.setdefault(venue, []).extend(symbols)
        for s in symbols:
            self.instrument(venue, s)

    def publish(self, item: SourceItem) -> int:
        """Encode and send one item to every subscribed client now; returns frames queued."""
        if isinstance(item, RawFrame):
            n = 0
            for c in list(self.clients):
                if item.venue in c.venue.venue_ids and (item.socket is None or item.socket == c.socket):
                    if item.venue not in self.half_open and item.venue not in self.silent:
                        c.push(item.data)
                        n += 1
            self.stats["frames"] += n
            return n
        frames = self.encode(item)
        proto = self._by_venue.get(item.venue)
        if proto is None or item.venue in self.half_open or item.venue in self.silent:
            return 0
        n = 0
        if frames:
            for c in list(self.clients):
                if c.venue is not proto:
                    continue
                for sub, frame in frames:
                    if sub in c.subs:
                        c.push(frame)
                        n += 1
        self.stats["frames"] += n
        return n

    def encode(self, item: Event) -> list[tuple[str, str]]:
        """Update the venue state with ``item`` (latest OI/mark for REST answers) and return
        its wire frames as ``[(subscription key, frame)]`` without sending them."""
        key = (item.venue, item.symbol)
        if isinstance(item, OpenInterest):
            self.oi[key] = item
        elif isinstance(item, MarkFunding):
            prev = self.marks.get(key)
            if prev is not None:
                # Keep fields this update lacks (funding arrives less often than marks).
                item = MarkFunding(
                    item.venue, item.symbol, item.exchange_ts_ms, item.recv_ts_ms,
                    item.mark_price if item.mark_price == item.mark_price else prev.mark_price,
                    item.index_price if item.index_price == item.index_price else prev.index_price,
                    item.funding_rate if item.funding_rate == item.funding_rate else prev.funding_rate,
                    item.next_funding_ms or prev.next_funding_ms,
                    item.funding_interval_h if item.funding_interval_h == item.funding_interval_h
                    else prev.funding_interval_h,
                )
            self.marks[key] = item
        elif isinstance(item, Trade):
            self.last_price[key] = item.price
        self.instrument(item.venue, item.symbol)
        proto = self._by_venue.get(item.venue)
        if proto is None:
            return []
        return proto.encode(item)

    def ref_price(self, venue: str, symbol: str) -> float:
        m = self.marks.get((venue, symbol))
        if m is not None and m.mark_price == m.mark_price:
            return m.mark_price
        return self.last_price.get((venue, symbol), math.nan)

    async def _pace(self, item: SourceItem, clock: list[float]) -> None:
        """Sleep until ``item``'s exchange time is due at :attr:`speed` (clock = [t0 exchange
        ms, t0 monotonic s])."""
        ts = getattr(item, "exchange_ts_ms", None)
        if self.speed is None or not isinstance(ts, int):
            return
        if not clock:
            clock.extend((float(ts), time.monotonic()))
            return
        due = clock[1] + (ts - clock[0]) / 1000.0 / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def pump(self, source: Source) -> None:
        """Publish every item of ``source`` (paced by :attr:`speed`). Called at :meth:`start`
        when a source was given; call it yourself to start feeding once clients subscribed."""
        clock: list[float] = []
        try:
            if callable(source) and not isinstance(source, AsyncIterable | Iterable):
                src: Any = source()
            else:
                src = source
            if isinstance(src, AsyncIterable):
                async for item in src:
                    await self._pace(item, clock)
                    self.publish(item)
            elif inspect.isawaitable(src):
                await src
            else:
                for item in src:
                    await self._pace(item, clock)
                    self.publish(item)
                    await asyncio.sleep(0)
        finally:
            self.source_done.set()

    # -- chaos --------------------------------------------------------------------------------

    def _clients_of(self, venue: str | None, socket: str | None = None) -> list[FakeClient]:
        return [
            c for c in self.clients
            if (venue is None or venue in c.venue.venue_ids) and (socket is None or c.socket == socket)
        ]

    async def drop(self, venue: str | None = None, *, code: int | None = None, socket: str | None = None) -> int:
        """Disconnect clients: ``code`` None aborts the TCP connection (the client sees 1006),
        else a close frame with that code (e.g. 1008)."""
        clients = self._clients_of(venue, socket)
        for c in clients:
            if code is None:
                c.abort()
            else:
                with contextlib.suppress(Exception):
                    await c.ws.close(code=code, message=b"fake exchange chaos")
        return len(clients)

    def fail_rest(self, venue: str, status: int = 429, *, retry_after: float | None = 1.0, times: int = 1) -> None:
        """Answer the next ``times`` REST requests of ``venue`` (or ``"vision"``, the static
        history files) with ``status``."""
        key = "vision" if venue == "vision" else self._by_venue[venue].prefix
        self._rest_fail[key] = _RestFailure(status, retry_after, times)

    def connected(self, venue: str | None = None, socket: str | None = None) -> int:
        return len(self._clients_of(venue, socket))

    # -- plumbing -----------------------------------------------------------------------------

    def _ws_handler(self, proto: FakeVenue, socket: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if set(proto.venue_ids) & self.refusing:
                return web.Response(status=503, text="fake exchange refusing connections")
            if set(proto.venue_ids) & self.throttling:
                return web.Response(status=429, text="too many connection attempts", headers={"Retry-After": "1"})
            ws = web.WebSocketResponse(autoping=False, heartbeat=None, max_msg_size=16 * 1024 * 1024)
            await ws.prepare(request)
            client = FakeClient(proto, socket, ws, request, self.client_queue)
            self.clients.add(client)
            self.stats["connections"] += 1
            writer = asyncio.create_task(self._writer(client))
            lifetime: asyncio.Task[None] | None = None
            if self.max_conn_lifetime:
                lifetime = asyncio.create_task(self._expire(client, self.max_conn_lifetime))
            try:
                await proto.on_open(client)
                async for msg in ws:
                    silent = any(v in self.silent for v in proto.venue_ids)
                    if msg.type == WSMsgType.PING:
                        self.stats["pings"] += 1
                        if not silent:
                            await ws.pong(msg.data)
                    elif msg.type == WSMsgType.TEXT:
                        replies, was_ping = proto.on_text(client, msg.data)
                        if was_ping:
                            self.stats["pings"] += 1
                        if silent or (any(v in self.half_open for v in proto.venue_ids) and not was_ping):
                            continue
                        for r in replies:
                            client.push(r)
                    elif msg.type == WSMsgType.ERROR:
                        break
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            finally:
                self.clients.discard(client)
                writer.cancel()
                if lifetime is not None:
                    lifetime.cancel()
            return ws

        return handler

    async def _writer(self, client: FakeClient) -> None:
        ws = client.ws
        try:
            while True:
                frame = await client.queue.get()
                if frame is None or ws.closed:
                    return
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                client.sent += 1
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return

    async def _expire(self, client: FakeClient, after: float) -> None:
        await asyncio.sleep(after)
        with contextlib.suppress(Exception):
            await client.ws.close(code=1001, message=b"connection lifetime reached")

    def _rest_wrap(self, proto: FakeVenue, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.stats["rest"] += 1
            fail = self._rest_fail.get(proto.prefix)
            status = 200
            try:
                if fail is not None and fail.times > 0:
                    fail.times -= 1
                    self.stats["rest_failed"] += 1
                    headers = {} if fail.retry_after is None else {"Retry-After": num(fail.retry_after)}
                    status = fail.status
                    return web.json_response({"code": -1003, "msg": "fake rate limit"}, status=fail.status,
                                             headers=headers)
                resp = await handler(request)
                status = resp.status
                return resp
            finally:
                self.rest_log.append((time.time(), proto.prefix, request.path_qs, status))

        return wrapped
