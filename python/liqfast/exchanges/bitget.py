"""Bitget USDT-M futures (``bitget-linear``) through the v3 "UTA" public WebSocket, the only
Bitget API with a public liquidation channel.

Subscriptions are ``{"instType":"usdt-futures","topic":…,"symbol":…}``; frames route by
``arg.topic``. Quantities are in base coin.

* ``publicTrade`` — ``S`` is the taker side::

    {"action":"update","arg":{"instType":"usdt-futures","topic":"publicTrade","symbol":"BTCUSDT"},
     "data":[{"i":"1234","p":"60000.5","v":"0.01","S":"buy","T":"1791500000000","L":"1"}],"ts":1791500000001}

* ``liquidation`` (no symbol: every contract) — ``side`` is taken as the **position** side
  (``buy`` = a long was liquidated), the reading of the independent implementations we could
  check; ``amount`` is taken as quote currency (USDT) by default (``liq_amount="base"``
  switches). Neither is stated in an official document we could read: **unverified**, the
  completeness code is ``aggregated``::

    {"action":"update","arg":{"instType":"usdt-futures","topic":"liquidation"},
     "data":[{"symbol":"BTCUSDT","side":"buy","price":"60000","amount":"150000","ts":"1791500000000"}]}

* ``ticker`` — mark/index price, funding, ``openInterest`` (base coin).

Keepalive: text ``ping`` every 25 s, answered ``pong``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import msgspec
from aiohttp import web

from ..events import Event, Liquidation, MarkFunding, OpenInterest, Trade
from .base import ConnContext, Instrument, Normalizer, ms
from .connector import Conn, Connector, SocketPlan, VenueUrls
from .fake import FakeClient, FakeVenue, num

__all__ = ["Bitget", "BitgetNormalizer"]

NAN = math.nan
INST_TYPE = "usdt-futures"


class Arg(msgspec.Struct, gc=False):
    instType: str = ""
    topic: str = ""
    symbol: str = ""
    channel: str = ""  # v2 naming, in case a v2 socket is pointed here
    instId: str = ""


class Envelope(msgspec.Struct, gc=False):
    arg: Arg | None = None
    action: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    ts: int = 0
    event: str = ""
    code: str | int = ""
    msg: str = ""


class PublicTrade(msgspec.Struct, gc=False):
    i: str
    p: float
    v: float
    S: Literal["buy", "sell"]
    T: int


class TradeFrame(msgspec.Struct, gc=False):
    """A whole ``publicTrade`` frame in one pass (fast path)."""

    arg: Arg
    data: list[PublicTrade]


class LiqRow(msgspec.Struct, gc=False):
    symbol: str
    side: Literal["buy", "sell"]
    price: float
    amount: float
    ts: int


class TickerRow(msgspec.Struct, gc=False):
    markPrice: str | None = None
    indexPrice: str | None = None
    fundingRate: str | None = None
    nextFundingTime: str | None = None
    openInterest: str | None = None
    lastPrice: str | None = None
    symbol: str = ""


class ContractRow(msgspec.Struct):
    symbol: str
    baseCoin: str = ""
    quoteCoin: str = ""


class ContractsAnswer(msgspec.Struct):
    data: list[ContractRow]
    code: str = ""


def _f(s: str | None) -> float:
    return float(s) if s else NAN


class BitgetNormalizer(Normalizer):
    """Bitget v3 (UTA) public frames -> events; quantities in base coin."""

    venue: ClassVar[str] = "bitget-linear"
    liquidation_completeness: ClassVar[str] = "aggregated"
    fast_path: ClassVar[bool] = True

    def __init__(self, instruments: dict[str, Instrument] | None = None,
                 liq_amount: Literal["quote", "base"] = "quote") -> None:
        super().__init__(instruments)
        self.liq_amount = liq_amount
        self._env = msgspec.json.Decoder(Envelope, strict=False)
        self._trades = msgspec.json.Decoder(list[PublicTrade], strict=False)
        self._trade_frame = msgspec.json.Decoder(TradeFrame, strict=False).decode
        self._liqs = msgspec.json.Decoder(list[LiqRow], strict=False)
        self._tickers = msgspec.json.Decoder(list[TickerRow], strict=False)
        self._contracts = msgspec.json.Decoder(ContractsAnswer, strict=False)
        self.venue_errors: list[str] = []

    def on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        """Fast path: a frame whose head names the ``publicTrade`` topic is decoded in one
        pass by the channel's frame decoder (checked after decoding); anything else takes the
        general route (envelope with raw ``data``, then the topic's decoder)."""
        if type(data) is bytes and data.find(b'"topic":"publicTrade"', 0, 120) >= 0:
            try:
                f = self._trade_frame(data)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                f = None
            if f is not None and f.arg.topic == "publicTrade":
                sym, trades = f.arg.symbol, f.data
                return self._emit_decoded(lambda: self._emit_trades(sym, trades, recv_ms, out), data, out)
        return super().on_message(data, recv_ms, ctx, out)

    def _emit_trades(self, sym: str, trades: list[PublicTrade], recv_ms: int, out: list[Event]) -> None:
        venue = self.venue
        append = out.append
        for t in trades:
            p, v = t.p, t.v
            append(Trade(venue, sym, t.T, recv_ms, p, v, v * p, "buy" if t.S == "buy" else "sell", t.i))

    def _on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        if data == b"pong" or data == "pong":
            return self._control()
        env = self._env.decode(data)
        if env.event:
            if env.event == "error":
                self.venue_errors.append(f"{env.code} {env.msg}")
                del self.venue_errors[:-20]
            return self._control()
        if env.arg is None:
            return self._unhandled()
        topic = env.arg.topic or env.arg.channel
        venue = self.venue
        if topic == "publicTrade":
            self._emit_trades(env.arg.symbol, self._trades.decode(env.data), recv_ms, out)
            return True
        if topic == "liquidation":
            for q in self._liqs.decode(env.data):
                if self._skip_symbol(q.symbol):
                    continue
                if q.side == "buy":
                    pos = "long"
                elif q.side == "sell":
                    pos = "short"
                else:
                    raise ValueError(f"unknown liquidation side {q.side!r}")
                if self.liq_amount == "quote":
                    usd, base = q.amount, q.amount / q.price
                else:
                    base, usd = q.amount, q.amount * q.price
                out.append(Liquidation(venue, q.symbol, ms(q.ts), recv_ms, pos, q.price, base, usd,  # type: ignore[arg-type]
                                       self.liquidation_completeness, "order"))
            return True
        if topic == "ticker":
            sym = env.arg.symbol or env.arg.instId
            ts = env.ts or recv_ms
            for r in self._tickers.decode(env.data):
                s = sym or r.symbol
                mark = _f(r.markPrice)
                if mark == mark:
                    self.marks[s] = mark
                    nft = _f(r.nextFundingTime)
                    out.append(MarkFunding(venue, s, ts, recv_ms, mark, _f(r.indexPrice), _f(r.fundingRate),
                                           int(nft) if nft == nft and nft > 0 else 0))
                oi = _f(r.openInterest)
                if oi == oi:
                    ref = self.ref_price(s)
                    out.append(OpenInterest(venue, s, ts, recv_ms, oi, oi * ref, ref, "ws"))
            return True
        return self._unhandled()

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        if tag.startswith("instruments"):
            for r in self._contracts.decode(body).data:
                self.instruments[r.symbol] = Instrument(self.venue, r.symbol, "linear", 1.0, r.baseCoin, r.quoteCoin)
            return []
        return super()._on_rest(tag, body, recv_ms)


class Bitget(Connector):
    """Bitget USDT-M connector (v3 public WebSocket, v2 REST for metadata)."""

    family: ClassVar[str] = "bitget-linear"
    venues: ClassVar[tuple[str, ...]] = ("bitget-linear",)
    default_urls: ClassVar[VenueUrls] = VenueUrls("wss://ws.bitget.com", "https://api.bitget.com")
    default_ping_interval: ClassVar[float | None] = 25.0
    rest_limit: ClassVar[tuple[float, float]] = (10.0, 1.0)  # ~20 req/s per endpoint per IP
    normalizer_cls: ClassVar[type[Normalizer]] = BitgetNormalizer
    batch: ClassVar[int] = 20
    path: ClassVar[str] = "/v3/ws/public"

    def __init__(self, symbols: Any, *, liq_amount: Literal["quote", "base"] = "quote", **kw: Any) -> None:
        super().__init__(symbols, **kw)
        n = self.normalizer
        assert isinstance(n, BitgetNormalizer)
        n.liq_amount = liq_amount

    def socket_plans(self) -> list[SocketPlan]:
        args: list[dict[str, str]] = []
        for s in self.symbols:
            if "trades" in self.channels:
                args.append({"instType": INST_TYPE, "topic": "publicTrade", "symbol": s})
            if "mark_funding" in self.channels or "open_interest" in self.channels:
                args.append({"instType": INST_TYPE, "topic": "ticker", "symbol": s})
        pairs = tuple((self.venues[0], s) for s in self.symbols)
        plans = []
        if args:
            chans = tuple(c for c in self.channels if c != "liquidations")
            plans.append(SocketPlan("market", chans, pairs, args, self.path,
                                    continuous=any(a["topic"] == "ticker" for a in args)))
        if "liquidations" in self.channels:
            plans.append(SocketPlan("liquidations", ("liquidations",), pairs,
                                    [{"instType": INST_TYPE, "topic": "liquidation"}], self.path))
        return plans

    async def subscribe(self, conn: Conn) -> None:
        await self.subscribe_ops(conn, self.batch)

    def ping_message(self, conn: Conn) -> str | None:
        return "ping"

    async def load_instruments(self) -> None:
        self.feed_rest("instruments", await self.rest.get(
            "/api/v2/mix/market/contracts", {"productType": "USDT-FUTURES"}))


class Fake(FakeVenue):
    """Bitget v3 server side: text ping, op subscribe, topic frames, v2 REST contracts."""

    venue_ids: ClassVar[tuple[str, ...]] = ("bitget-linear",)
    prefix: ClassVar[str] = "bitget-linear"
    ws_paths: ClassVar[dict[str, str]] = {"public": "/v3/ws/public"}

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        if text == "ping":
            return ["pong"], True
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [msgspec.json.encode({"event": "error", "code": 30001, "msg": "bad request"}).decode()], False
        if isinstance(msg, dict) and msg.get("op") == "subscribe":
            out = []
            for a in msg.get("args", []):
                client.subs.add(f"{a.get('topic')}:{a.get('symbol', '')}")
                out.append(msgspec.json.encode({"event": "subscribe", "arg": a}).decode())
            return out, False
        return [], False

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        enc = msgspec.json.encode
        s = ev.symbol
        if isinstance(ev, Trade):
            arg = {"instType": INST_TYPE, "topic": "publicTrade", "symbol": s}
            d = {"i": str(ev.trade_id or ev.exchange_ts_ms), "p": num(ev.price), "v": num(ev.size_base),
                 "S": ev.side, "T": str(ev.exchange_ts_ms), "L": "1"}
            return [(f"publicTrade:{s}", enc({"action": "update", "arg": arg, "data": [d],
                                             "ts": ev.exchange_ts_ms}).decode())]
        if isinstance(ev, Liquidation):
            arg = {"instType": INST_TYPE, "topic": "liquidation"}
            d = {"symbol": s, "side": "buy" if ev.side == "long" else "sell", "price": num(ev.price),
                 "amount": num(ev.size_usd), "ts": str(ev.exchange_ts_ms)}
            return [("liquidation:", enc({"action": "update", "arg": arg, "data": [d], "ts": ev.exchange_ts_ms}).decode())]
        if isinstance(ev, MarkFunding | OpenInterest):
            arg = {"instType": INST_TYPE, "topic": "ticker", "symbol": s}
            d2: dict[str, str] = {}
            if isinstance(ev, MarkFunding):
                d2["markPrice"] = num(ev.mark_price)
                d2["indexPrice"] = num(ev.index_price) if ev.index_price == ev.index_price else ""
                d2["fundingRate"] = num(ev.funding_rate) if ev.funding_rate == ev.funding_rate else ""
                d2["nextFundingTime"] = str(ev.next_funding_ms)
            else:
                d2["openInterest"] = num(ev.oi_base)
            return [(f"ticker:{s}", enc({"action": "update", "arg": arg, "data": [d2], "ts": ev.exchange_ts_ms}).decode())]
        return []

    def rest_routes(self) -> list[tuple[str, str, Any]]:
        return [("GET", "/api/v2/mix/market/contracts", self._contracts)]

    async def _contracts(self, request: web.Request) -> web.Response:
        rows = [{"symbol": s, "baseCoin": s.removesuffix("USDT"), "quoteCoin": "USDT"}
                for s in self.symbols_of(self.venue_ids[0])]
        return self.json({"code": "00000", "msg": "success", "data": rows})
