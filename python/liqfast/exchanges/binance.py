"""Binance USDⓈ-M (``binance-usdm``) and COIN-M (``binance-coinm``) futures.

Streams (combined-stream URL ``/stream?streams=…``, payload ``{"stream", "data"}``; ``data``
is a tagged union on ``"e"``):

* trades ``<sym>@aggTrade`` — ``m=true`` means the buyer was the maker, i.e. the taker sold::

    {"e":"aggTrade","E":1723161255123,"s":"BTCUSDT","a":2234567890,"p":"61234.50",
     "q":"0.015","f":4123456789,"l":4123456791,"T":1723161255120,"m":true}

* liquidations ``!forceOrder@arr`` (every symbol, one stream). ``o.S`` is the side of the
  liquidation **order**: SELL closes a long, so a SELL means a long was liquidated. Snapshot
  semantics: at most the latest liquidation per symbol per 1000 ms is pushed, so cascades
  are undercounted (completeness ``snapshot_1s``)::

    {"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",
     "q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}

* mark price and funding ``<sym>@markPrice@1s`` (``p`` mark, ``i`` index, ``r`` funding,
  ``T`` next funding time).

Open interest has no stream: ``GET /fapi/v1/openInterest`` (weight 1, base coin on USD-M,
contracts on COIN-M) is polled every ``oi_poll_interval`` within the 2,400 weight/min
budget. Quantities: USD-M in base coin; COIN-M in contracts of ``contractSize`` USD (100 for
BTC, 10 for most others), converted with the mark price. Connections live at most 24 h:
the connector rotates them after 23 h with an overlap. The server pings every 3 minutes
(answered); we also send protocol pings to detect half-open sockets.

Since 2026-04-23 USD-M market streams are served under ``wss://fstream.binance.com/market``
(the legacy ``/stream`` host was retired); COIN-M stays on ``wss://dstream.binance.com``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Union

import msgspec
from aiohttp import web

from ..events import Event, Liquidation, MarkFunding, OpenInterest, Trade
from .base import ConnContext, Instrument, Normalizer
from .connector import Conn, Connector, SocketPlan, VenueUrls
from .fake import FakeClient, FakeVenue, num

__all__ = ["BinanceCoinm", "BinanceCoinmNormalizer", "BinanceNormalizer", "BinanceUsdm"]

NAN = math.nan


# -- wire types -------------------------------------------------------------------------------


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    s: str
    a: int
    p: float
    q: float
    T: int
    m: bool


class RawTrade(msgspec.Struct, tag_field="e", tag="trade", gc=False):
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool
    X: str = "MARKET"


class MarkPriceUpdate(msgspec.Struct, tag_field="e", tag="markPriceUpdate", gc=False):
    E: int
    s: str
    p: float
    i: str = ""
    r: str = ""
    T: int = 0


class ForceOrderBody(msgspec.Struct, gc=False):
    s: str
    S: Literal["BUY", "SELL"]
    q: float
    p: float
    T: int
    ap: float = 0.0
    z: float = 0.0
    X: str = ""


class ForceOrder(msgspec.Struct, tag_field="e", tag="forceOrder", gc=False):
    E: int
    o: ForceOrderBody


# Streams we recognise but do not use (a capture or a shared connection may carry them):
# decoded as known-and-ignored, never counted as decode errors.
class _Depth(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    pass


class _BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker"):
    pass


class _Kline(msgspec.Struct, tag_field="e", tag="kline"):
    pass


class _ContKline(msgspec.Struct, tag_field="e", tag="continuous_kline"):
    pass


class _Ticker(msgspec.Struct, tag_field="e", tag="24hrTicker"):
    pass


class _MiniTicker(msgspec.Struct, tag_field="e", tag="24hrMiniTicker"):
    pass


class _IndexPrice(msgspec.Struct, tag_field="e", tag="indexPriceUpdate"):
    pass


class _ContractInfo(msgspec.Struct, tag_field="e", tag="contractInfo"):
    pass


class ApiError(msgspec.Struct):
    code: int = 0
    msg: str = ""


_Data = Union[
    AggTrade, RawTrade, MarkPriceUpdate, ForceOrder, _Depth, _BookTicker, _Kline, _ContKline, _Ticker,
    _MiniTicker, _IndexPrice, _ContractInfo, list[MarkPriceUpdate], None,
]


class Envelope(msgspec.Struct, gc=False):
    """Combined-stream wrapper; also matches subscribe acks ``{"result":null,"id":1}`` and
    errors ``{"error":{...},"id":1}``."""

    data: _Data = None
    id: int | str | None = None
    error: ApiError | None = None


class OpenInterestRest(msgspec.Struct):
    openInterest: float
    symbol: str
    time: int = 0


class ExchangeInfoSymbol(msgspec.Struct):
    symbol: str
    contractType: str = ""
    contractSize: float = 1.0
    baseAsset: str = ""
    quoteAsset: str = ""
    status: str = ""
    contractStatus: str = ""


class ExchangeInfo(msgspec.Struct):
    symbols: list[ExchangeInfoSymbol]


# -- normaliser -------------------------------------------------------------------------------


class BinanceNormalizer(Normalizer):
    """USD-M: quantities in base coin."""

    venue: ClassVar[str] = "binance-usdm"
    liquidation_completeness: ClassVar[str] = "snapshot_1s"
    fast_path: ClassVar[bool] = True
    inverse: ClassVar[bool] = False

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        super().__init__(instruments)
        self._decode = msgspec.json.Decoder(Envelope, strict=False).decode
        # instance copies of class constants: cheaper to read on the hot path
        self._linear = not self.inverse
        self._venue = self.venue
        self._many = msgspec.json.Decoder(list[Envelope], strict=False)
        self._oi = msgspec.json.Decoder(OpenInterestRest, strict=False)
        self._info = msgspec.json.Decoder(ExchangeInfo, strict=False)

    def on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        """Hot path: aggTrade is most of Binance's traffic, so it is handled inline (one
        decode, one Trade, two counter bumps); everything else goes through :meth:`_one`."""
        c = self.counters
        c._messages += 1
        try:
            d: Any = self._decode(data).data
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as e:
            return self._decode_error(e, data)
        if d.__class__ is AggTrade and self._linear:
            p = d.p
            q = d.q
            out.append(Trade(self._venue, d.s, d.T, recv_ms, p, q, p * q, "sell" if d.m else "buy", d.a))
            c._events += 1
            return True
        n = len(out)
        try:
            is_data = self._one(d, recv_ms, out)
        except (ValueError, TypeError, KeyError, ZeroDivisionError, OverflowError) as e:
            del out[n:]
            return self._decode_error(e, data)
        c._events += len(out) - n
        return is_data

    def _on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        return self._one(self._decode(data).data, recv_ms, out)

    def feed_many(self, frames: list[bytes], recv_ms: list[int] | int, ctx: ConnContext | None = None) -> list[Event]:
        """Decode many frames in one call (replay/backfill). With the fast path, the Rust loop
        of :meth:`Normalizer.feed_many`; without, one msgspec pass over the joined frames
        amortises the per-call overhead, falling back to frame-by-frame if the batch does not
        decode, so one bad frame only costs itself."""
        if self.fast is not None or isinstance(recv_ms, int):
            return super().feed_many(frames, recv_ms, ctx)
        out: list[Event] = []
        try:
            envs = self._many.decode(b"[" + b",".join(frames) + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            ctx = ctx or ConnContext()
            for f, r in zip(frames, recv_ms):
                self.on_message(f, r, ctx, out)
            return out
        c = self.counters
        c._messages += len(frames)
        append = out.append
        venue = self.venue
        linear = not self.inverse
        one = self._one
        for env, r in zip(envs, recv_ms):
            d: Any = env.data
            if d.__class__ is AggTrade and linear:
                p = d.p
                q = d.q
                append(Trade(venue, d.s, d.T, r, p, q, p * q, "sell" if d.m else "buy", d.a))
            else:
                try:
                    one(d, r, out)
                except (ValueError, TypeError, KeyError, ZeroDivisionError, OverflowError) as e:
                    c.decode_errors += 1
                    self._errlog("frame", e, b"")
        c._events += len(out)
        return out

    def _one(self, d: Any, recv_ms: int, out: list[Event]) -> bool:
        t = type(d)
        if t is AggTrade:
            p = d.p
            if self.inverse:
                usd = d.q * self._size(d.s)
                out.append(Trade(self.venue, d.s, d.T, recv_ms, p, usd / p, usd, "sell" if d.m else "buy", d.a))
            else:
                q = d.q
                out.append(Trade(self.venue, d.s, d.T, recv_ms, p, q, p * q, "sell" if d.m else "buy", d.a))
            return True
        if t is ForceOrder:
            self._liquidation(d, recv_ms, out)
            return True
        if t is MarkPriceUpdate:
            self._mark(d, recv_ms, out)
            return True
        if t is list:
            for m in d:
                self._mark(m, recv_ms, out)
            return True
        if t is RawTrade:
            p = d.p
            if self.inverse:
                usd = d.q * self._size(d.s)
                base = usd / p
            else:
                base, usd = d.q, d.q * p
            out.append(Trade(self.venue, d.s, d.T, recv_ms, p, base, usd, "sell" if d.m else "buy", d.t))
            self.last_prices[d.s] = p
            return True
        if d is None:
            return self._control()  # ack / error / non-stream answer
        return self._unhandled()

    def _size(self, symbol: str) -> float:
        inst = self.instrument(symbol)
        if inst is None:
            raise ValueError(f"no contract size for {symbol}")
        return inst.contract_size

    def _liquidation(self, d: ForceOrder, recv_ms: int, out: list[Event]) -> None:
        o = d.o
        if self._skip_symbol(o.s):
            return
        if o.S == "SELL":
            side = "long"
        elif o.S == "BUY":
            side = "short"
        else:
            raise ValueError(f"unknown forceOrder side {o.S!r}")
        if o.ap > 0:
            price, kind = o.ap, "avg_fill"
        else:
            price, kind = o.p, "order"
        qty = o.z if o.z > 0 else o.q
        if self.inverse:
            usd = qty * self._size(o.s)
            base = usd / price
        else:
            base, usd = qty, qty * price
        out.append(Liquidation(self.venue, o.s, o.T, recv_ms, side, price, base, usd,  # type: ignore[arg-type]
                               self.liquidation_completeness, kind))

    def _mark(self, m: MarkPriceUpdate, recv_ms: int, out: list[Event]) -> None:
        if self._skip_symbol(m.s):
            return
        self.marks[m.s] = m.p
        out.append(MarkFunding(
            self.venue, m.s, m.E, recv_ms, m.p, float(m.i) if m.i else NAN, float(m.r) if m.r else NAN, m.T,
        ))

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        if tag == "instruments":
            info = self._info.decode(body)
            for s in info.symbols:
                self.instruments[s.symbol] = Instrument(
                    self.venue, s.symbol, "inverse" if self.inverse else "linear",
                    s.contractSize if self.inverse else 1.0, s.baseAsset, s.quoteAsset,
                )
            return []
        if tag.startswith("oi:"):
            oi = self._oi.decode(body)
            ref = self.ref_price(oi.symbol)
            if self.inverse:
                usd = oi.openInterest * self._size(oi.symbol)
                base = usd / ref if ref > 0 else NAN
            else:
                base = oi.openInterest
                usd = base * ref
            return [OpenInterest(self.venue, oi.symbol, oi.time or recv_ms, recv_ms, base, usd, ref, "rest")]
        return super()._on_rest(tag, body, recv_ms)


class BinanceCoinmNormalizer(BinanceNormalizer):
    """COIN-M: quantities in contracts of ``contractSize`` USD."""

    venue: ClassVar[str] = "binance-coinm"
    inverse: ClassVar[bool] = True


# -- connectors -------------------------------------------------------------------------------


class BinanceUsdm(Connector):
    """Binance USDⓈ-M futures connector (see the module docstring)."""

    family: ClassVar[str] = "binance-usdm"
    venues: ClassVar[tuple[str, ...]] = ("binance-usdm",)
    default_urls: ClassVar[VenueUrls] = VenueUrls("wss://fstream.binance.com/market", "https://fapi.binance.com")
    default_ping_interval: ClassVar[float | None] = 30.0  # protocol pings: elicit pongs
    default_max_lifetime: ClassVar[float | None] = 23 * 3600.0
    rest_limit: ClassVar[tuple[float, float]] = (1200.0, 60.0)  # half the 2,400/min budget
    rest_weight_header: ClassVar[str | None] = "X-MBX-USED-WEIGHT-1M"
    rest_weight_limit: ClassVar[float | None] = 2400.0
    subscribe_pace: ClassVar[float] = 0.25  # <= 10 incoming messages/s per connection
    normalizer_cls: ClassVar[type[Normalizer]] = BinanceNormalizer
    api_prefix: ClassVar[str] = "/fapi/v1"
    #: streams per connection (venue max 1,024; kept low so one socket's loss is contained)
    max_streams: ClassVar[int] = 200
    #: streams put in the URL; the rest are SUBSCRIBEd in batches
    url_streams: ClassVar[int] = 50

    def socket_plans(self) -> list[SocketPlan]:
        plans: list[SocketPlan] = []
        streams: list[str] = []
        for s in self.symbols:
            low = s.lower()
            if "trades" in self.channels:
                streams.append(f"{low}@aggTrade")
            if "mark_funding" in self.channels or "open_interest" in self.channels:
                streams.append(f"{low}@markPrice@1s")
        chans = tuple(c for c in self.channels if c != "liquidations")
        pairs = tuple((self.venues[0], s) for s in self.symbols)
        for i in range(0, len(streams), self.max_streams):
            chunk = streams[i : i + self.max_streams]
            plans.append(SocketPlan(
                f"market-{i // self.max_streams}" if len(streams) > self.max_streams else "market",
                chans, pairs, chunk, continuous=any("markPrice" in x for x in chunk),
            ))
        if "liquidations" in self.channels:
            plans.append(SocketPlan("liquidations", ("liquidations",), pairs, ["!forceOrder@arr"]))
        return plans

    async def ws_url(self, plan: SocketPlan, conn_id: int) -> str:
        first = plan.subscriptions[: self.url_streams]
        return f"{self.urls.ws.rstrip('/')}/stream?streams={'/'.join(first)}"

    async def subscribe(self, conn: Conn) -> None:
        rest = conn.plan.subscriptions[self.url_streams :]
        msgs = [
            msgspec.json.encode({"method": "SUBSCRIBE", "params": rest[i : i + 50], "id": conn.id * 1000 + i}).decode()
            for i in range(0, len(rest), 50)
        ]
        await self.send_batched(conn, msgs)

    async def load_instruments(self) -> None:
        self.feed_rest("instruments", await self.rest.get(f"{self.api_prefix}/exchangeInfo", weight=1))

    def extra_tasks(self) -> list[Any]:
        if "open_interest" not in self.channels:
            return []

        async def poll_all() -> None:
            for s in self.symbols:
                tag = f"oi:{s}"
                self.feed_rest(tag, await self.rest.get(f"{self.api_prefix}/openInterest", {"symbol": s}))

        return [lambda: self.poll("open interest", self.policy.oi_poll_interval, poll_all, channels=("open_interest",))]


class BinanceCoinm(BinanceUsdm):
    """Binance COIN-M (inverse) futures connector."""

    family: ClassVar[str] = "binance-coinm"
    venues: ClassVar[tuple[str, ...]] = ("binance-coinm",)
    default_urls: ClassVar[VenueUrls] = VenueUrls("wss://dstream.binance.com", "https://dapi.binance.com")
    normalizer_cls: ClassVar[type[Normalizer]] = BinanceCoinmNormalizer
    api_prefix: ClassVar[str] = "/dapi/v1"


# -- fake exchange protocol -------------------------------------------------------------------


class Fake(FakeVenue):
    """Binance USD-M server side: combined streams from the URL, SUBSCRIBE, REST
    exchangeInfo/openInterest; protocol pings answered by aiohttp."""

    venue_ids: ClassVar[tuple[str, ...]] = ("binance-usdm",)
    prefix: ClassVar[str] = "binance-usdm"
    ws_paths: ClassVar[dict[str, str]] = {"stream": "/stream", "raw": "/ws"}
    api: ClassVar[str] = "/fapi/v1"
    inverse: ClassVar[bool] = False

    def __init__(self, exchange: Any) -> None:
        super().__init__(exchange)
        self._agg = 0

    async def on_open(self, client: FakeClient) -> None:
        streams = client.request.query.get("streams", "")
        client.subs.update(s for s in streams.split("/") if s)

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [msgspec.json.encode({"error": {"code": 3, "msg": "Invalid JSON"}}).decode()], False
        if isinstance(msg, dict) and msg.get("method") == "SUBSCRIBE":
            client.subs.update(msg.get("params", []))
            return [msgspec.json.encode({"result": None, "id": msg.get("id")}).decode()], False
        if isinstance(msg, dict) and msg.get("method") == "UNSUBSCRIBE":
            client.subs.difference_update(msg.get("params", []))
            return [msgspec.json.encode({"result": None, "id": msg.get("id")}).decode()], False
        return [], False

    def _qty(self, venue: str, symbol: str, base: float, usd: float) -> float:
        if self.inverse:
            return round(usd / self.instrument(venue, symbol).contract_size, 8)
        return base

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        low = ev.symbol.lower()
        enc = msgspec.json.encode
        if isinstance(ev, Trade):
            self._agg += 1
            tid = ev.trade_id if isinstance(ev.trade_id, int) else self._agg
            stream = f"{low}@aggTrade"
            data = {
                "e": "aggTrade", "E": ev.exchange_ts_ms, "s": ev.symbol, "a": tid, "p": num(ev.price),
                "q": num(self._qty(ev.venue, ev.symbol, ev.size_base, ev.size_usd)), "f": tid * 3, "l": tid * 3 + 2,
                "T": ev.exchange_ts_ms, "m": ev.side == "sell",
            }
            return [(stream, enc({"stream": stream, "data": data}).decode())]
        if isinstance(ev, Liquidation):
            q = num(self._qty(ev.venue, ev.symbol, ev.size_base, ev.size_usd))
            body: dict[str, Any] = {
                "s": ev.symbol, "S": "SELL" if ev.side == "long" else "BUY", "o": "LIMIT", "f": "IOC", "q": q,
                "p": num(ev.price), "ap": num(ev.price), "X": "FILLED", "l": q, "z": q, "T": ev.exchange_ts_ms,
            }
            if self.inverse:
                body["ps"] = ev.symbol.split("_")[0]
            data = {"e": "forceOrder", "E": ev.exchange_ts_ms, "o": body}
            return [
                (s, enc({"stream": s, "data": data}).decode()) for s in ("!forceOrder@arr", f"{low}@forceOrder")
            ]
        if isinstance(ev, MarkFunding):
            m = self.x.marks.get((ev.venue, ev.symbol), ev)
            data = {
                "e": "markPriceUpdate", "E": ev.exchange_ts_ms, "s": ev.symbol, "p": num(m.mark_price),
                "i": num(m.index_price) if m.index_price == m.index_price else "",
                "P": num(m.mark_price), "r": num(m.funding_rate) if m.funding_rate == m.funding_rate else "",
                "T": m.next_funding_ms,
            }
            frames = []
            for s in (f"{low}@markPrice@1s", f"{low}@markPrice"):
                frames.append((s, enc({"stream": s, "data": data}).decode()))
            for s in ("!markPrice@arr@1s", "!markPrice@arr"):
                frames.append((s, enc({"stream": s, "data": [data]}).decode()))
            return frames
        return []

    def rest_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", f"{self.api}/exchangeInfo", self._exchange_info),
            ("GET", f"{self.api}/openInterest", self._open_interest),
        ]

    async def _exchange_info(self, request: web.Request) -> web.Response:
        venue = self.venue_ids[0]
        syms = []
        for s in self.symbols_of(venue):
            inst = self.instrument(venue, s)
            row: dict[str, Any] = {
                "symbol": s, "contractType": "PERPETUAL", "baseAsset": inst.base or s[:3],
                "quoteAsset": "USD" if self.inverse else "USDT", "status": "TRADING",
            }
            if self.inverse:
                row["contractSize"] = inst.contract_size
                row["contractStatus"] = "TRADING"
            syms.append(row)
        return self.json({"timezone": "UTC", "serverTime": 0, "symbols": syms})

    async def _open_interest(self, request: web.Request) -> web.Response:
        venue = self.venue_ids[0]
        sym = request.query.get("symbol", "")
        oi = self.x.oi.get((venue, sym))
        if oi is None:
            return self.json({"code": -1121, "msg": "Invalid symbol."}, status=400)
        qty = self._qty(venue, sym, oi.oi_base, oi.oi_usd)
        return self.json({"openInterest": num(qty), "symbol": sym, "time": oi.exchange_ts_ms})


class FakeCoinm(Fake):
    """Binance COIN-M server side (contracts of ``contractSize`` USD)."""

    venue_ids: ClassVar[tuple[str, ...]] = ("binance-coinm",)
    prefix: ClassVar[str] = "binance-coinm"
    api: ClassVar[str] = "/dapi/v1"
    inverse: ClassVar[bool] = True
