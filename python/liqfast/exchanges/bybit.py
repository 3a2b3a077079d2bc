"""Bybit v5 linear (``bybit-linear``: USDT/USDC contracts, quantities in base coin) and
inverse (``bybit-inverse``: quantities in 1-USD contracts).

Frames route by ``topic`` (envelope decoded with ``data`` kept as raw bytes, then one typed
decoder per topic):

* ``publicTrade.{symbol}`` — ``S`` is the taker side::

    {"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,
     "s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f4…","BT":false}]}

* ``allLiquidation.{symbol}`` (one topic per symbol, every liquidation, pushed every 500 ms).
  **``S`` is the side of the liquidated position** — "Buy" means a long was liquidated, the
  opposite convention to Binance; ``p`` is the bankruptcy price::

    {"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,
     "data":[{"T":1739502302929,"s":"ROSEUSDT","S":"Sell","v":"20000","p":"0.04499"}]}

* ``tickers.{symbol}`` — a snapshot, then deltas carrying only the fields that changed
  (merged here): mark/index price, funding, and open interest. Since the 2026-06-11 API
  change ``openInterest`` counts both sides and ``singleOpenInterest`` one side; we use the
  single side (the map compares it with other venues' single-sided OI) and fall back to
  ``openInterest`` only for data from before the change, when it was single-sided.

Keepalive: ``{"op":"ping"}`` every 20 s (idle connections are cut after 10 min).
Subscriptions are sent 10 topics per message.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import msgspec
from aiohttp import web

from ..events import Event, Liquidation, MarkFunding, OpenInterest, Trade
from .base import ConnContext, Instrument, Normalizer
from .connector import Conn, Connector, SocketPlan, VenueUrls
from .fake import FakeClient, FakeVenue, num, synthetic_oi, synthetic_price

__all__ = ["BybitInverse", "BybitLinear", "BybitNormalizer"]

NAN = math.nan


class Envelope(msgspec.Struct, gc=False):
    topic: str = ""
    type: str = ""
    ts: int = 0
    data: msgspec.Raw = msgspec.Raw(b"null")
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""


class PublicTrade(msgspec.Struct, gc=False):
    T: int
    s: str
    S: Literal["Buy", "Sell"]
    v: float
    p: float
    i: str = ""


class TradeFrame(msgspec.Struct, gc=False):
    """A whole ``publicTrade`` frame in one pass (fast path, see BybitNormalizer.on_message)."""

    topic: str
    data: list[PublicTrade]


class AllLiquidation(msgspec.Struct, gc=False):
    T: int
    s: str
    S: Literal["Buy", "Sell"]
    v: float
    p: float


class LiqFrame(msgspec.Struct, gc=False):
    """A whole ``allLiquidation`` frame in one pass (fast path)."""

    topic: str
    data: list[AllLiquidation]


class LegacyLiquidation(msgspec.Struct, gc=False):
    updatedTime: int
    symbol: str
    side: str
    size: float
    price: float


class Ticker(msgspec.Struct, gc=False):
    symbol: str
    markPrice: str | None = None
    indexPrice: str | None = None
    fundingRate: str | None = None
    nextFundingTime: str | None = None
    fundingIntervalHour: str | None = None
    openInterest: str | None = None
    singleOpenInterest: str | None = None
    lastPrice: str | None = None


class InstrumentRow(msgspec.Struct):
    symbol: str
    contractType: str = ""
    baseCoin: str = ""
    quoteCoin: str = ""
    status: str = ""


class InstrumentList(msgspec.Struct):
    rows: list[InstrumentRow] = msgspec.field(name="list")
    category: str = ""


class InstrumentsAnswer(msgspec.Struct):
    retCode: int
    result: InstrumentList


def _f(s: str | None) -> float:
    if s is None or s == "":
        return NAN
    return float(s)


class BybitNormalizer(Normalizer):
    """Bybit v5 linear frames -> events (quantities in base coin). Ticker deltas are merged
    into a per-symbol snapshot so every MarkFunding/OpenInterest carries full values."""

    venue: ClassVar[str] = "bybit-linear"
    liquidation_completeness: ClassVar[str] = "all_500ms"
    fast_path: ClassVar[bool] = True
    inverse: ClassVar[bool] = False

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        super().__init__(instruments)
        self._env = msgspec.json.Decoder(Envelope, strict=False)
        self._trades = msgspec.json.Decoder(list[PublicTrade], strict=False)
        self._liqs = msgspec.json.Decoder(list[AllLiquidation], strict=False)
        self._legacy = msgspec.json.Decoder(LegacyLiquidation, strict=False)
        self._ticker = msgspec.json.Decoder(Ticker, strict=False)
        self._instruments = msgspec.json.Decoder(InstrumentsAnswer, strict=False)
        self._frames = (
            (b'{"topic":"publicTrade.', msgspec.json.Decoder(TradeFrame, strict=False).decode, "_emit_trades"),
            (b'{"topic":"allLiquidation.', msgspec.json.Decoder(LiqFrame, strict=False).decode, "_emit_liqs"),
        )
        #: merged ticker state per symbol: field -> float
        self.tickers: dict[str, dict[str, float]] = {}
        self.venue_errors: list[str] = []

    def on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        """Fast path for the bulk of the traffic: a frame that starts like a ``publicTrade``
        frame is decoded in one pass by its channel's frame decoder (instead of envelope +
        raw payload + payload). Anything else, or anything that does not decode that way,
        takes the general route (envelope with raw ``data``, then the topic's decoder)."""
        done = self._whole_frame(data, recv_ms, out, self._frames)
        return super().on_message(data, recv_ms, ctx, out) if done is None else done

    def _emit_liqs(self, liqs: list[AllLiquidation], recv_ms: int, out: list[Event]) -> None:
        venue, comp, inverse = self.venue, self.liquidation_completeness, self.inverse
        for q in liqs:
            # S is the side of the liquidated POSITION on Bybit ("Buy" = a long)
            v, p = q.v, q.p
            if inverse:
                base, usd = v / p, v
            else:
                base, usd = v, v * p
            out.append(Liquidation(venue, q.s, q.T, recv_ms, "long" if q.S == "Buy" else "short", p, base, usd, comp,
                                   "bankruptcy"))

    def _emit_trades(self, trades: list[PublicTrade], recv_ms: int, out: list[Event]) -> None:
        venue = self.venue
        append = out.append
        if self.inverse:
            for t in trades:
                p, v = t.p, t.v
                append(Trade(venue, t.s, t.T, recv_ms, p, v / p, v, "buy" if t.S == "Buy" else "sell", t.i))
        else:
            for t in trades:
                p, v = t.p, t.v
                append(Trade(venue, t.s, t.T, recv_ms, p, v, v * p, "buy" if t.S == "Buy" else "sell", t.i))

    def _on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        env = self._env.decode(data)
        topic = env.topic
        if not topic:
            if env.success is False:
                self.venue_errors.append(env.ret_msg)
                del self.venue_errors[:-20]
            return self._control()  # pong / subscribe ack
        kind, _, _sym = topic.partition(".")
        if kind == "publicTrade":
            self._emit_trades(self._trades.decode(env.data), recv_ms, out)
            return True
        if kind == "allLiquidation":
            self._emit_liqs(self._liqs.decode(env.data), recv_ms, out)
            return True
        if kind == "tickers":
            self._tick(self._ticker.decode(env.data), env.type, env.ts or recv_ms, recv_ms, out)
            return True
        if kind == "liquidation":
            q2 = self._legacy.decode(env.data)
            self._liq(q2.symbol, q2.updatedTime, q2.side, q2.size, q2.price, recv_ms, out)
            return True
        return self._unhandled()

    def _liq(self, sym: str, ts: int, side: str, v: float, p: float, recv_ms: int, out: list[Event]) -> None:
        if side == "Buy":
            pos = "long"
        elif side == "Sell":
            pos = "short"
        else:
            raise ValueError(f"unknown liquidation side {side!r}")
        if self.inverse:
            base, usd = v / p, v
        else:
            base, usd = v, v * p
        out.append(Liquidation(self.venue, sym, ts, recv_ms, pos, p, base, usd,  # type: ignore[arg-type]
                               self.liquidation_completeness, "bankruptcy"))

    def _tick(self, t: Ticker, typ: str, ts: int, recv_ms: int, out: list[Event]) -> None:
        sym = t.symbol
        st = self.tickers.get(sym)
        if st is None or typ == "snapshot":
            st = self.tickers[sym] = {}
        mark_changed = False
        for name in ("markPrice", "indexPrice", "fundingRate", "nextFundingTime", "fundingIntervalHour"):
            val = getattr(t, name)
            if val is not None:
                st[name] = _f(val)
                mark_changed = True
        oi_changed = False
        if t.singleOpenInterest is not None:
            st["single"] = _f(t.singleOpenInterest)
            oi_changed = True
        if t.openInterest is not None:
            st["oi"] = _f(t.openInterest)
            oi_changed = True
        mark = st.get("markPrice", NAN)
        if mark == mark:
            self.marks[sym] = mark
        if mark_changed:
            nft = st.get("nextFundingTime", NAN)
            out.append(MarkFunding(
                self.venue, sym, ts, recv_ms, mark, st.get("indexPrice", NAN), st.get("fundingRate", NAN),
                int(nft) if nft == nft else 0, st.get("fundingIntervalHour", NAN),
            ))
        if oi_changed:
            single = st.get("single")
            oi = single if single is not None else st.get("oi", NAN)
            ref = self.ref_price(sym)
            if self.inverse:
                usd = oi
                base = usd / ref if ref > 0 else NAN
            else:
                base, usd = oi, oi * ref
            out.append(OpenInterest(self.venue, sym, ts, recv_ms, base, usd, ref, "ws"))

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        if tag.startswith("instruments"):
            ans = self._instruments.decode(body)
            for r in ans.result.rows:
                self.instruments[r.symbol] = Instrument(
                    self.venue, r.symbol, "inverse" if self.inverse else "linear", 1.0, r.baseCoin, r.quoteCoin,
                )
            return []
        return super()._on_rest(tag, body, recv_ms)


class BybitInverseNormalizer(BybitNormalizer):
    """Bybit v5 inverse frames: quantities in 1-USD contracts."""

    venue: ClassVar[str] = "bybit-inverse"
    inverse: ClassVar[bool] = True


class BybitLinear(Connector):
    """Bybit v5 linear connector."""

    family: ClassVar[str] = "bybit-linear"
    venues: ClassVar[tuple[str, ...]] = ("bybit-linear",)
    default_urls: ClassVar[VenueUrls] = VenueUrls("wss://stream.bybit.com", "https://api.bybit.com")
    default_ping_interval: ClassVar[float | None] = 20.0
    rest_limit: ClassVar[tuple[float, float]] = (100.0, 5.0)  # venue: 600 per 5 s per IP
    normalizer_cls: ClassVar[type[Normalizer]] = BybitNormalizer
    category: ClassVar[str] = "linear"
    #: topics per subscribe message
    batch: ClassVar[int] = 10

    def socket_plans(self) -> list[SocketPlan]:
        topics: list[str] = []
        for s in self.symbols:
            if "trades" in self.channels:
                topics.append(f"publicTrade.{s}")
            if "mark_funding" in self.channels or "open_interest" in self.channels:
                topics.append(f"tickers.{s}")
        pairs = tuple((self.venues[0], s) for s in self.symbols)
        path = f"/v5/public/{self.category}"
        plans = []
        if topics:
            chans = tuple(c for c in self.channels if c != "liquidations")
            plans.append(SocketPlan("market", chans, pairs, topics, path, continuous=any("tickers" in t for t in topics)))
        if "liquidations" in self.channels:
            plans.append(SocketPlan("liquidations", ("liquidations",), pairs,
                                    [f"allLiquidation.{s}" for s in self.symbols], path))
        return plans

    async def subscribe(self, conn: Conn) -> None:
        await self.subscribe_ops(conn, self.batch, req_id=lambda i: f"{conn.id}-{i}")

    def ping_message(self, conn: Conn) -> str | None:
        return '{"op":"ping"}'

    async def load_instruments(self) -> None:
        for s in self.symbols:
            tag = f"instruments:{s}"
            self.feed_rest(tag, await self.rest.get(
                "/v5/market/instruments-info", {"category": self.category, "symbol": s}))


class BybitInverse(BybitLinear):
    """Bybit v5 inverse connector (``/v5/public/inverse``)."""

    family: ClassVar[str] = "bybit-inverse"
    venues: ClassVar[tuple[str, ...]] = ("bybit-inverse",)
    normalizer_cls: ClassVar[type[Normalizer]] = BybitInverseNormalizer
    category: ClassVar[str] = "inverse"


# -- fake exchange protocol -------------------------------------------------------------------


class Fake(FakeVenue):
    """Bybit v5 server side: op subscribe/ping, topic frames, ticker snapshot then deltas,
    REST instruments, open-interest and kline history, risk-limit tiers."""

    venue_ids: ClassVar[tuple[str, ...]] = ("bybit-linear",)
    prefix: ClassVar[str] = "bybit-linear"
    ws_paths: ClassVar[dict[str, str]] = {"public": "/v5/public/linear"}
    inverse: ClassVar[bool] = False
    category: ClassVar[str] = "linear"

    def __init__(self, exchange: Any) -> None:
        super().__init__(exchange)
        self._seq = 0

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [], False
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == "ping":
            return [msgspec.json.encode({"success": True, "ret_msg": "pong", "conn_id": str(client.id), "req_id": "",
                                         "op": "ping"}).decode()], True
        if op == "subscribe":
            args = list(msg.get("args", []))
            client.subs.update(args)
            replies = [msgspec.json.encode({"success": True, "ret_msg": "", "conn_id": str(client.id),
                                            "req_id": msg.get("req_id", ""), "op": "subscribe"}).decode()]
            for a in args:
                if a.startswith("tickers."):
                    snap = self._ticker(self.venue_ids[0], a.split(".", 1)[1], "snapshot")
                    if snap is not None:
                        replies.append(snap)
                        client.state[a] = True
            return replies, False
        return [], False

    def _ticker(self, venue: str, sym: str, typ: str) -> str | None:
        m = self.x.marks.get((venue, sym))
        oi = self.x.oi.get((venue, sym))
        if m is None and oi is None:
            return None
        data: dict[str, Any] = {"symbol": sym}
        ts = 0
        if m is not None:
            ts = m.exchange_ts_ms
            data["markPrice"] = num(m.mark_price)
            if m.index_price == m.index_price:
                data["indexPrice"] = num(m.index_price)
            if m.funding_rate == m.funding_rate:
                data["fundingRate"] = num(m.funding_rate)
            if m.next_funding_ms:
                data["nextFundingTime"] = str(m.next_funding_ms)
        if oi is not None:
            ts = max(ts, oi.exchange_ts_ms)
            single = oi.oi_usd if self.inverse else oi.oi_base
            data["singleOpenInterest"] = num(single)
            data["openInterest"] = num(2 * single)
        self._seq += 1
        return msgspec.json.encode({"topic": f"tickers.{sym}", "type": typ, "data": data, "cs": self._seq,
                                    "ts": ts}).decode()

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        enc = msgspec.json.encode
        inv = self.inverse
        if isinstance(ev, Trade):
            self._seq += 1
            t = {"T": ev.exchange_ts_ms, "s": ev.symbol, "S": "Buy" if ev.side == "buy" else "Sell",
                 "v": num(ev.size_usd if inv else ev.size_base), "p": num(ev.price), "L": "PlusTick",
                 "i": str(ev.trade_id if ev.trade_id is not None else self._seq), "BT": False, "seq": self._seq}
            topic = f"publicTrade.{ev.symbol}"
            return [(topic, enc({"topic": topic, "type": "snapshot", "ts": ev.exchange_ts_ms, "data": [t]}).decode())]
        if isinstance(ev, Liquidation):
            q = {"T": ev.exchange_ts_ms, "s": ev.symbol, "S": "Buy" if ev.side == "long" else "Sell",
                 "v": num(ev.size_usd if inv else ev.size_base), "p": num(ev.price)}
            topic = f"allLiquidation.{ev.symbol}"
            return [(topic, enc({"topic": topic, "type": "snapshot", "ts": ev.exchange_ts_ms, "data": [q]}).decode())]
        if isinstance(ev, MarkFunding | OpenInterest):
            topic = f"tickers.{ev.symbol}"
            # Deltas would need per-client state; a full "snapshot" is valid Bybit traffic too,
            # but send a delta with only the changed fields to exercise the merge path.
            data: dict[str, Any] = {"symbol": ev.symbol}
            if isinstance(ev, MarkFunding):
                data["markPrice"] = num(ev.mark_price)
                if ev.index_price == ev.index_price:
                    data["indexPrice"] = num(ev.index_price)
                if ev.funding_rate == ev.funding_rate:
                    data["fundingRate"] = num(ev.funding_rate)
                if ev.next_funding_ms:
                    data["nextFundingTime"] = str(ev.next_funding_ms)
            else:
                single = ev.oi_usd if inv else ev.oi_base
                data["singleOpenInterest"] = num(single)
                data["openInterest"] = num(2 * single)
            self._seq += 1
            return [(topic, enc({"topic": topic, "type": "delta", "data": data, "cs": self._seq,
                                 "ts": ev.exchange_ts_ms}).decode())]
        return []

    def rest_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/v5/market/instruments-info", self._instruments),
            ("GET", "/v5/market/open-interest", self._oi_history),
            ("GET", "/v5/market/kline", self._klines),
            ("GET", "/v5/market/risk-limit", self._risk_limit),
        ]

    async def _risk_limit(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        rows = [{"id": i + 1, "symbol": sym, "riskLimitValue": num(t.cap if t.cap is not None else 1e12),
                 "maintenanceMargin": num(t.mmr), "initialMargin": num(round(1 / t.max_leverage, 6)),
                 "isLowestRisk": int(i == 0), "maxLeverage": f"{t.max_leverage:.2f}",
                 "mmDeduction": "" if not t.maint_amount else num(t.maint_amount)}
                for i, t in enumerate(self.tier_rows(self.venue_ids[0], sym))]
        return self.json({"retCode": 0, "retMsg": "OK", "result": {"category": self.category, "list": rows,
                                                                    "nextPageCursor": ""}, "time": 0})

    def _times(self, lo: int, hi: int, step: int, limit: int) -> list[int]:
        a, b = self.x.history_range
        lo, hi = max(lo, a), min(hi, b)
        t = hi - hi % step
        out: list[int] = []
        while t >= lo and len(out) < limit:
            out.append(t)
            t -= step
        return out

    async def _oi_history(self, request: web.Request) -> web.Response:
        q = request.query
        step = {"5min": 300_000, "15min": 900_000, "1h": 3_600_000}.get(q.get("intervalTime", "5min"), 300_000)
        rows = []
        for t in self._times(int(q.get("startTime", 0)), int(q.get("endTime", 2**62)), step,
                             min(200, int(q.get("limit", 50)))):
            single = synthetic_oi(t) * (synthetic_price(t) if self.inverse else 1.0)
            rows.append({"openInterest": num(2 * single), "singleOpenInterest": num(single), "timestamp": str(t)})
        return self.json({"retCode": 0, "retMsg": "OK", "result": {"symbol": q.get("symbol"), "category": self.category,
                                                                    "list": rows, "nextPageCursor": ""}, "time": 0})

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        step = {"1": 60_000, "5": 300_000, "15": 900_000, "60": 3_600_000}.get(q.get("interval", "1"), 60_000)
        rows = []
        for t in self._times(int(q.get("start", 0)), int(q.get("end", 2**62)), step, min(1000, int(q.get("limit", 200)))):
            o, c = synthetic_price(t), synthetic_price(t + step)
            vol = 10.0 + (t // step) % 7
            rows.append([str(t), num(o), num(max(o, c) + 5), num(min(o, c) - 5), num(c), num(vol),
                         num(round(vol * c, 2))])
        return self.json({"retCode": 0, "retMsg": "OK", "result": {"symbol": q.get("symbol"), "category": self.category,
                                                                    "list": rows}, "time": 0})

    async def _instruments(self, request: web.Request) -> web.Response:
        venue = self.venue_ids[0]
        want = request.query.get("symbol")
        syms = [want] if want else self.symbols_of(venue)
        rows = [{"symbol": s, "contractType": "InversePerpetual" if self.inverse else "LinearPerpetual",
                 "status": "Trading", "baseCoin": self.instrument(venue, s).base or s[:3],
                 "quoteCoin": "USD" if self.inverse else "USDT"} for s in syms]
        return self.json({"retCode": 0, "retMsg": "OK", "result": {"category": self.category, "list": rows,
                                                                    "nextPageCursor": ""}, "time": 0})


class FakeInverse(Fake):
    """Bybit v5 inverse server side."""

    venue_ids: ClassVar[tuple[str, ...]] = ("bybit-inverse",)
    prefix: ClassVar[str] = "bybit-inverse"
    ws_paths: ClassVar[dict[str, str]] = {"public": "/v5/public/inverse"}
    inverse: ClassVar[bool] = True
    category: ClassVar[str] = "inverse"
