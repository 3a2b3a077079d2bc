"""Hyperliquid perpetuals (``hyperliquid``; USDC-margined, sizes in coin).

Frames are a tagged union on ``channel``:

* ``trades`` — ``side`` ``B`` = the taker bought, ``A`` = the taker sold::

    {"channel":"trades","data":[{"coin":"BTC","side":"B","px":"105056.0","sz":"0.00219",
     "time":1737918794873,"hash":"0x…","tid":121451470284048,"users":["0x…","0x…"]}]}

* ``activeAssetCtx`` — mark and oracle price, funding (an **hourly** rate) and
  ``openInterest`` in coin. We treat it as single-sided (one side of the book), which matches
  its magnitude against other venues; no official statement settles it (unverified).

**No public market-wide liquidation stream exists**: liquidation fills are only visible in
per-user channels, so the Hyperliquid map is modelled (completeness ``none``). Positions,
however, are public (``clearinghouseState``) — a different data source, not a feed.

Keepalive: ``{"method":"ping"}`` (answered ``{"channel":"pong"}``); the server closes
connections silent for about a minute. One subscription message per coin and channel.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Union

import msgspec
from aiohttp import web

from ..events import Event, MarkFunding, OpenInterest, Trade
from .base import ConnContext, Instrument, Normalizer
from .connector import Conn, Connector, SocketPlan, VenueUrls
from .fake import FakeClient, FakeVenue, num

__all__ = ["Hyperliquid", "HyperliquidNormalizer"]

NAN = math.nan


class HlTrade(msgspec.Struct, gc=False):
    coin: str
    side: Literal["B", "A"]
    px: float
    sz: float
    time: int
    tid: int = 0


class AssetCtx(msgspec.Struct, gc=False):
    funding: float | None = None
    openInterest: float | None = None
    markPx: float | None = None
    oraclePx: float | None = None


class ActiveAssetCtxData(msgspec.Struct, gc=False):
    coin: str
    ctx: AssetCtx


class Trades(msgspec.Struct, tag_field="channel", tag="trades", gc=False):
    data: list[HlTrade]


class ActiveAssetCtx(msgspec.Struct, tag_field="channel", tag="activeAssetCtx", gc=False):
    data: ActiveAssetCtxData


class AllDexsData(msgspec.Struct, gc=False):
    ctxs: list[tuple[str, list[AssetCtx]]]


class AllDexsAssetCtxs(msgspec.Struct, tag_field="channel", tag="allDexsAssetCtxs", gc=False):
    data: AllDexsData


class SubscriptionResponse(msgspec.Struct, tag_field="channel", tag="subscriptionResponse"):
    pass


class PongMsg(msgspec.Struct, tag_field="channel", tag="pong"):
    pass


class ErrorMsg(msgspec.Struct, tag_field="channel", tag="error"):
    data: Any = None


class _L2(msgspec.Struct, tag_field="channel", tag="l2Book"):
    pass


class _Bbo(msgspec.Struct, tag_field="channel", tag="bbo"):
    pass


class _Candle(msgspec.Struct, tag_field="channel", tag="candle"):
    pass


class _Mids(msgspec.Struct, tag_field="channel", tag="allMids"):
    pass


class _Notification(msgspec.Struct, tag_field="channel", tag="notification"):
    pass


Frame = Union[Trades, ActiveAssetCtx, AllDexsAssetCtxs, SubscriptionResponse, PongMsg, ErrorMsg, _L2, _Bbo, _Candle,
              _Mids, _Notification]


class UniverseRow(msgspec.Struct):
    name: str
    szDecimals: int = 0
    maxLeverage: int = 0


class Meta(msgspec.Struct):
    universe: list[UniverseRow]


class HyperliquidNormalizer(Normalizer):
    """Hyperliquid frames -> events (sizes in coin, funding hourly)."""

    venue: ClassVar[str] = "hyperliquid"
    liquidation_completeness: ClassVar[str] = "none"
    fast_path: ClassVar[bool] = True

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        super().__init__(instruments)
        self._frame = msgspec.json.Decoder(Frame, strict=False)
        self._meta = msgspec.json.Decoder(Meta, strict=False)
        #: main-dex coin names by asset index (from ``meta``), to read positional ctx lists
        self.universe: list[str] = []
        self.venue_errors: list[str] = []

    def _on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        f = self._frame.decode(data)
        t = type(f)
        venue = self.venue
        if t is Trades:
            assert isinstance(f, Trades)
            append = out.append
            for tr in f.data:
                px, sz = tr.px, tr.sz
                append(Trade(venue, tr.coin, tr.time, recv_ms, px, sz, sz * px, "buy" if tr.side == "B" else "sell",
                             tr.tid or None))
            return True
        if t is ActiveAssetCtx:
            assert isinstance(f, ActiveAssetCtx)
            self._ctx(f.data.coin, f.data.ctx, recv_ms, out)
            return True
        if t is AllDexsAssetCtxs:
            assert isinstance(f, AllDexsAssetCtxs)
            for dex, ctxs in f.data.ctxs:
                # Positional: index i is the i-th asset of that dex's universe. Only the main dex
                # is mapped, and only when the universe we know has the same length.
                if dex == "" and len(ctxs) == len(self.universe):
                    for coin, c in zip(self.universe, ctxs):
                        if not self._skip_symbol(coin):
                            self._ctx(coin, c, recv_ms, out)
            return True
        if t is ErrorMsg:
            self.venue_errors.append(str(f.data))
            del self.venue_errors[:-20]
            return self._control()
        if t is SubscriptionResponse or t is PongMsg:
            return self._control()
        return self._unhandled()

    def _ctx(self, coin: str, c: AssetCtx, recv_ms: int, out: list[Event]) -> None:
        mark = c.markPx if c.markPx is not None else NAN
        if mark == mark:
            self.marks[coin] = mark
            out.append(MarkFunding(self.venue, coin, recv_ms, recv_ms, mark,
                                   c.oraclePx if c.oraclePx is not None else NAN,
                                   c.funding if c.funding is not None else NAN, 0, 1.0))
        if c.openInterest is not None:
            ref = self.ref_price(coin)
            out.append(OpenInterest(self.venue, coin, recv_ms, recv_ms, c.openInterest, c.openInterest * ref, ref, "ws"))

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        if tag == "meta":
            meta = self._meta.decode(body)
            self.universe = [u.name for u in meta.universe]
            for u in meta.universe:
                self.instruments[u.name] = Instrument(self.venue, u.name, "linear", 1.0, u.name, "USD")
            return []
        return super()._on_rest(tag, body, recv_ms)


class Hyperliquid(Connector):
    """Hyperliquid connector (trades, mark/funding/OI; no public liquidations)."""

    family: ClassVar[str] = "hyperliquid"
    venues: ClassVar[tuple[str, ...]] = ("hyperliquid",)
    default_urls: ClassVar[VenueUrls] = VenueUrls("wss://api.hyperliquid.xyz", "https://api.hyperliquid.xyz")
    supported_channels: ClassVar[frozenset[str]] = frozenset({"trades", "open_interest", "mark_funding"})
    unavailable: ClassVar[dict[str, str]] = {
        "liquidations": "Hyperliquid has no public market-wide liquidation stream (only per-user fills); its map "
        "is modelled",
    }
    default_ping_interval: ClassVar[float | None] = 30.0
    rest_limit: ClassVar[tuple[float, float]] = (600.0, 60.0)  # 1,200 weight/min per IP
    normalizer_cls: ClassVar[type[Normalizer]] = HyperliquidNormalizer
    subscribe_pace: ClassVar[float] = 0.02

    def socket_plans(self) -> list[SocketPlan]:
        subs: list[dict[str, str]] = []
        for s in self.symbols:
            if "trades" in self.channels:
                subs.append({"type": "trades", "coin": s})
            if "mark_funding" in self.channels or "open_interest" in self.channels:
                subs.append({"type": "activeAssetCtx", "coin": s})
        if not subs:
            return []
        pairs = tuple((self.venues[0], s) for s in self.symbols)
        return [SocketPlan("market", self.channels, pairs, subs, "/ws",
                           continuous=any(x["type"] == "activeAssetCtx" for x in subs))]

    async def subscribe(self, conn: Conn) -> None:
        await self.send_batched(conn, [
            msgspec.json.encode({"method": "subscribe", "subscription": s}).decode() for s in conn.plan.subscriptions
        ])

    def ping_message(self, conn: Conn) -> str | None:
        return '{"method":"ping"}'

    async def load_instruments(self) -> None:
        self.feed_rest("meta", await self.rest.post("/info", {"type": "meta"}, weight=20))


class Fake(FakeVenue):
    """Hyperliquid server side: method subscribe/ping, channel frames, POST /info meta."""

    venue_ids: ClassVar[tuple[str, ...]] = ("hyperliquid",)
    prefix: ClassVar[str] = "hyperliquid"
    ws_paths: ClassVar[dict[str, str]] = {"ws": "/ws"}

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [msgspec.json.encode({"channel": "error", "data": "Invalid JSON"}).decode()], False
        if not isinstance(msg, dict):
            return [], False
        if msg.get("method") == "ping":
            return ['{"channel":"pong"}'], True
        if msg.get("method") == "subscribe":
            sub = msg.get("subscription", {})
            client.subs.add(f"{sub.get('type')}:{sub.get('coin')}")
            return [msgspec.json.encode({"channel": "subscriptionResponse", "data": msg}).decode()], False
        return [], False

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        enc = msgspec.json.encode
        s = ev.symbol
        if isinstance(ev, Trade):
            tid = ev.trade_id if isinstance(ev.trade_id, int) else ev.exchange_ts_ms
            d = {"coin": s, "side": "B" if ev.side == "buy" else "A", "px": num(ev.price), "sz": num(ev.size_base),
                 "time": ev.exchange_ts_ms, "hash": "0x0", "tid": tid, "users": ["0x1", "0x2"]}
            return [(f"trades:{s}", enc({"channel": "trades", "data": [d]}).decode())]
        if isinstance(ev, MarkFunding | OpenInterest):
            m = self.x.marks.get((ev.venue, s))
            oi = self.x.oi.get((ev.venue, s))
            ctx: dict[str, Any] = {"prevDayPx": "0", "dayNtlVlm": "0", "premium": None, "midPx": None,
                                   "impactPxs": None}
            if m is not None:
                ctx["markPx"] = num(m.mark_price)
                ctx["oraclePx"] = num(m.index_price if m.index_price == m.index_price else m.mark_price)
                ctx["funding"] = num(m.funding_rate if m.funding_rate == m.funding_rate else 0.0)
            if oi is not None:
                ctx["openInterest"] = num(oi.oi_base)
            if isinstance(ev, MarkFunding) and oi is None:
                ctx.pop("openInterest", None)
            return [(f"activeAssetCtx:{s}", enc({"channel": "activeAssetCtx", "data": {"coin": s, "ctx": ctx}}).decode())]
        return []

    def rest_routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", "/info", self._info)]

    async def _info(self, request: web.Request) -> web.Response:
        body = await request.json()
        typ = body.get("type") if isinstance(body, dict) else None
        syms = self.symbols_of("hyperliquid")
        if typ == "meta":
            return self.json({"universe": [{"name": s, "szDecimals": 4, "maxLeverage": 40} for s in syms]})
        if typ == "metaAndAssetCtxs":
            ctxs = []
            for s in syms:
                m = self.x.marks.get(("hyperliquid", s))
                oi = self.x.oi.get(("hyperliquid", s))
                ctxs.append({"funding": num(m.funding_rate) if m and m.funding_rate == m.funding_rate else "0",
                             "openInterest": num(oi.oi_base) if oi else "0",
                             "markPx": num(m.mark_price) if m else "0", "oraclePx": num(m.mark_price) if m else "0"})
            return self.json([{"universe": [{"name": s, "szDecimals": 4, "maxLeverage": 40} for s in syms]}, ctxs])
        return self.json({"error": f"unknown type {typ!r}"}, status=422)
