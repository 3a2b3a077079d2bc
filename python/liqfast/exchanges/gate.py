"""Gate futures API v4: USDT-settled (``gate-linear``, ``/v4/ws/usdt``) and BTC-settled
inverse (``gate-inverse``, ``/v4/ws/btc``).

Frames route by ``channel`` (envelope with raw ``result``). Sizes are **contracts**:
``quanto_multiplier`` base coin each for USDT contracts (0.0001 BTC for BTC_USDT), 1 USD each
for inverse ones. With the request header ``X-Gate-Size-Decimal: 1`` sizes arrive as decimal
strings; both forms decode.

* ``futures.trades`` — ``size`` < 0 means the taker sold::

    {"time":1541503698,"time_ms":1541503698123,"channel":"futures.trades","event":"update",
     "result":[{"size":-108,"id":27753479,"create_time":1545136464,"create_time_ms":1545136464123,
     "price":"96.4","contract":"BTC_USDT"}]}

* ``futures.public_liquidates`` with payload ``["!all"]`` — since 2026-08-20 all liquidation
  orders of a contract within a ~1 s cycle arrive batched (completeness ``batched_1s``;
  before, at most one per contract per second: ``snapshot_1s``). The sign of ``size`` gives
  the side: **negative = a long was liquidated** (the forced order sells). Gate's WS document
  does not state this; it is the convention of every independent implementation we could
  check and matches Gate's REST ``liq_orders`` (``order_size`` negative for a long) —
  unverified against a labelled live sample::

    {"channel":"futures.public_liquidates","event":"update","time":1541505434,"time_ms":1541505434123,
     "result":[{"price":"215.1","size":"-124.5","time_ms":1541486601123,"contract":"BTC_USDT"}]}

* ``futures.tickers`` — mark/index price, funding, ``total_size`` (open interest, contracts);
  ``result`` is a list, or a single object in some versions.

Keepalive: ``{"time":…,"channel":"futures.ping"}`` answered by ``futures.pong``.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import msgspec
from aiohttp import web

from ..events import Event, Liquidation, MarkFunding, OpenInterest, Trade
from .base import ConnContext, Instrument, Normalizer, ms
from .connector import Conn, Connector, SocketPlan, VenueUrls
from .fake import FakeClient, FakeVenue, num

__all__ = ["GateInverse", "GateLinear", "GateNormalizer"]

NAN = math.nan
#: Gate batches public liquidations per contract and cycle since this instant (UTC ms).
BATCHED_SINCE_MS = 1_787_184_000_000  # 2026-08-20T00:00:00Z


class Envelope(msgspec.Struct, gc=False):
    channel: str = ""
    event: str = ""
    time: int = 0
    time_ms: int = 0
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: Any = None


class GateTrade(msgspec.Struct, gc=False):
    size: float
    id: int
    price: float
    contract: str
    create_time: int = 0
    create_time_ms: int = 0


class TradesFrame(msgspec.Struct, gc=False):
    """A whole ``futures.trades`` update in one pass (fast path)."""

    channel: str
    event: str
    result: list[GateTrade]


class GateLiq(msgspec.Struct, gc=False):
    price: float
    size: float
    contract: str
    time_ms: int = 0
    time: int = 0


class GateTicker(msgspec.Struct, gc=False):
    contract: str
    mark_price: str | float | None = None
    index_price: str | float | None = None
    funding_rate: str | float | None = None
    total_size: str | float | None = None
    last: str | float | None = None


class ContractRow(msgspec.Struct):
    name: str
    quanto_multiplier: str = ""
    type: str = ""


def _f(v: str | float | None) -> float:
    if v is None or v == "":
        return NAN
    return float(v)


class GateNormalizer(Normalizer):
    """Gate futures v4 frames -> events; contracts converted with ``quanto_multiplier``
    (USDT-settled) or as 1-USD contracts (BTC-settled)."""

    venue: ClassVar[str] = "gate-linear"
    liquidation_completeness: ClassVar[str] = "batched_1s"
    fast_path: ClassVar[bool] = True
    inverse: ClassVar[bool] = False

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        super().__init__(instruments)
        self._env = msgspec.json.Decoder(Envelope, strict=False)
        self._trades = msgspec.json.Decoder(list[GateTrade], strict=False)
        self._trades_frame = msgspec.json.Decoder(TradesFrame, strict=False).decode
        self._liqs = msgspec.json.Decoder(list[GateLiq] | GateLiq, strict=False)
        self._tickers = msgspec.json.Decoder(list[GateTicker] | GateTicker, strict=False)
        self._contracts = msgspec.json.Decoder(list[ContractRow], strict=False)
        self.venue_errors: list[str] = []

    def _inst(self, contract: str) -> Instrument | None:
        inst = self.instrument(contract)
        if inst is None:
            self.counters.missing_metadata += 1
        return inst

    def on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        """Fast path: a frame whose head names ``futures.trades`` is decoded in one pass by
        the channel's frame decoder (checked after decoding); anything else takes the general
        route (envelope with raw ``result``, then the channel's decoder)."""
        if type(data) is bytes and data.find(b'"channel":"futures.trades"', 0, 100) >= 0:
            try:
                f = self._trades_frame(data)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                f = None
            if f is not None and f.channel == "futures.trades" and f.event == "update":
                trades = f.result
                return self._emit_decoded(lambda: self._emit_trades(trades, recv_ms, out), data, out)
        return super().on_message(data, recv_ms, ctx, out)

    def _emit_trades(self, trades: list[GateTrade], recv_ms: int, out: list[Event]) -> None:
        venue = self.venue
        insts = self.instruments
        append = out.append
        for t in trades:
            inst = insts.get(t.contract) or self._inst(t.contract)
            if inst is None:
                continue
            size, p = t.size, t.price
            if inst.kind == "linear":
                b = (size if size >= 0 else -size) * inst.contract_size
                usd = b * p
            else:
                usd = (size if size >= 0 else -size) * inst.contract_size
                b = usd / p
            append(Trade(venue, t.contract, t.create_time_ms or t.create_time * 1000, recv_ms, p, b, usd,
                         "sell" if size < 0 else "buy", t.id))

    def _on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        env = self._env.decode(data)
        ch = env.channel
        if env.event != "update" and env.event != "all":
            if env.error is not None:
                self.venue_errors.append(str(env.error))
                del self.venue_errors[:-20]
            return self._control()  # subscribe ack, pong, errors
        venue = self.venue
        if ch == "futures.trades":
            self._emit_trades(self._trades.decode(env.result), recv_ms, out)
            return True
        if ch == "futures.public_liquidates":
            res = self._liqs.decode(env.result)
            for q in res if isinstance(res, list) else [res]:
                if self._skip_symbol(q.contract):
                    continue
                inst = self._inst(q.contract)
                if inst is None:
                    continue
                if q.size == 0:
                    raise ValueError("liquidation with size 0")
                base, usd = inst.base_usd(abs(q.size), q.price)
                ts = q.time_ms or ms(q.time)
                comp = self.liquidation_completeness if ts >= BATCHED_SINCE_MS else "snapshot_1s"
                out.append(Liquidation(venue, q.contract, ts, recv_ms, "long" if q.size < 0 else "short", q.price,
                                       base, usd, comp, "order"))
            return True
        if ch == "futures.tickers":
            res2 = self._tickers.decode(env.result)
            ts = env.time_ms or env.time * 1000
            for t2 in res2 if isinstance(res2, list) else [res2]:
                sym = t2.contract
                mark = _f(t2.mark_price)
                if mark == mark:
                    self.marks[sym] = mark
                    out.append(MarkFunding(venue, sym, ts, recv_ms, mark, _f(t2.index_price), _f(t2.funding_rate)))
                size = _f(t2.total_size)
                if size == size:
                    inst = self._inst(sym)
                    if inst is None:
                        continue
                    ref = self.ref_price(sym)
                    base, usd = inst.base_usd(size, ref)
                    out.append(OpenInterest(venue, sym, ts, recv_ms, base, usd, ref, "ws"))
            return True
        return self._unhandled()

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        if tag.startswith("instruments"):
            for r in self._contracts.decode(body):
                qm = float(r.quanto_multiplier) if r.quanto_multiplier else 0.0
                if self.inverse or r.type == "inverse":
                    self.instruments[r.name] = Instrument(self.venue, r.name, "inverse", 1.0, r.name.split("_")[0], "USD")
                elif qm > 0:
                    self.instruments[r.name] = Instrument(self.venue, r.name, "linear", qm, r.name.split("_")[0],
                                                          r.name.split("_")[-1])
            return []
        return super()._on_rest(tag, body, recv_ms)


class GateInverseNormalizer(GateNormalizer):
    """Gate BTC-settled (inverse) futures: 1-USD contracts."""

    venue: ClassVar[str] = "gate-inverse"
    inverse: ClassVar[bool] = True


class GateLinear(Connector):
    """Gate USDT-settled futures connector."""

    family: ClassVar[str] = "gate-linear"
    venues: ClassVar[tuple[str, ...]] = ("gate-linear",)
    default_urls: ClassVar[VenueUrls] = VenueUrls("wss://fx-ws.gateio.ws", "https://api.gateio.ws")
    default_ping_interval: ClassVar[float | None] = 15.0
    rest_limit: ClassVar[tuple[float, float]] = (100.0, 10.0)  # measured header limit: 200 per 10 s
    normalizer_cls: ClassVar[type[Normalizer]] = GateNormalizer
    settle: ClassVar[str] = "usdt"
    batch: ClassVar[int] = 50

    def ws_headers(self) -> dict[str, str]:
        return {"X-Gate-Size-Decimal": "1"}

    def socket_plans(self) -> list[SocketPlan]:
        subs: list[tuple[str, list[str]]] = []
        syms = list(self.symbols)
        for i in range(0, len(syms), self.batch):
            chunk = syms[i : i + self.batch]
            if "trades" in self.channels:
                subs.append(("futures.trades", chunk))
            if "mark_funding" in self.channels or "open_interest" in self.channels:
                subs.append(("futures.tickers", chunk))
        pairs = tuple((self.venues[0], s) for s in self.symbols)
        path = f"/v4/ws/{self.settle}"
        plans = []
        if subs:
            chans = tuple(c for c in self.channels if c != "liquidations")
            plans.append(SocketPlan("market", chans, pairs, subs, path,
                                    continuous=any(c == "futures.tickers" for c, _ in subs)))
        if "liquidations" in self.channels:
            plans.append(SocketPlan("liquidations", ("liquidations",), pairs,
                                    [("futures.public_liquidates", ["!all"])], path))
        return plans

    async def subscribe(self, conn: Conn) -> None:
        now = int(time.time())
        await self.send_batched(conn, [
            msgspec.json.encode({"time": now, "channel": ch, "event": "subscribe", "payload": payload}).decode()
            for ch, payload in conn.plan.subscriptions
        ])

    def ping_message(self, conn: Conn) -> str | None:
        return msgspec.json.encode({"time": int(time.time()), "channel": "futures.ping"}).decode()

    async def load_instruments(self) -> None:
        self.feed_rest("instruments", await self.rest.get(f"/api/v4/futures/{self.settle}/contracts"))


class GateInverse(GateLinear):
    """Gate BTC-settled futures connector (``/v4/ws/btc``)."""

    family: ClassVar[str] = "gate-inverse"
    venues: ClassVar[tuple[str, ...]] = ("gate-inverse",)
    normalizer_cls: ClassVar[type[Normalizer]] = GateInverseNormalizer
    settle: ClassVar[str] = "btc"


class Fake(FakeVenue):
    """Gate futures server side: futures.ping, channel subscribe with payload lists, update
    frames, REST contracts and risk-limit tiers."""

    venue_ids: ClassVar[tuple[str, ...]] = ("gate-linear",)
    prefix: ClassVar[str] = "gate-linear"
    ws_paths: ClassVar[dict[str, str]] = {"usdt": "/v4/ws/usdt"}
    settle: ClassVar[str] = "usdt"

    def __init__(self, exchange: Any) -> None:
        super().__init__(exchange)
        self._id = 0

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [], False
        if not isinstance(msg, dict):
            return [], False
        ch = msg.get("channel", "")
        now = int(time.time())
        if ch == "futures.ping":
            return [msgspec.json.encode({"time": now, "time_ms": now * 1000, "channel": "futures.pong", "event": "",
                                         "result": None}).decode()], True
        if msg.get("event") == "subscribe":
            for p in msg.get("payload", []):
                client.subs.add(f"{ch}:{p}")
            return [msgspec.json.encode({"time": now, "time_ms": now * 1000, "channel": ch, "event": "subscribe",
                                         "result": {"status": "success"}}).decode()], False
        return [], False

    def _contracts(self, venue: str, sym: str, base: float, usd: float) -> float:
        inst = self.instrument(venue, sym)
        return round((base if inst.kind == "linear" else usd) / inst.contract_size, 8)

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        enc = msgspec.json.encode
        s = ev.symbol
        t_s = ev.exchange_ts_ms // 1000
        if isinstance(ev, Trade):
            self._id += 1
            size = self._contracts(ev.venue, s, ev.size_base, ev.size_usd)
            r = {"size": num(-size if ev.side == "sell" else size),
                 "id": ev.trade_id if isinstance(ev.trade_id, int) else self._id, "create_time": t_s,
                 "create_time_ms": ev.exchange_ts_ms, "price": num(ev.price), "contract": s}
            return [(f"futures.trades:{s}", enc({"time": t_s, "time_ms": ev.exchange_ts_ms, "channel": "futures.trades",
                                                 "event": "update", "result": [r]}).decode())]
        if isinstance(ev, Liquidation):
            size = self._contracts(ev.venue, s, ev.size_base, ev.size_usd)
            r = {"price": num(ev.price), "size": num(-size if ev.side == "long" else size),
                 "time_ms": ev.exchange_ts_ms, "contract": s}
            frame = enc({"channel": "futures.public_liquidates", "event": "update", "time": t_s,
                         "time_ms": ev.exchange_ts_ms, "result": [r]}).decode()
            return [("futures.public_liquidates:!all", frame), (f"futures.public_liquidates:{s}", frame)]
        if isinstance(ev, MarkFunding | OpenInterest):
            r2: dict[str, Any] = {"contract": s}
            if isinstance(ev, MarkFunding):
                r2["mark_price"] = num(ev.mark_price)
                if ev.index_price == ev.index_price:
                    r2["index_price"] = num(ev.index_price)
                if ev.funding_rate == ev.funding_rate:
                    r2["funding_rate"] = num(ev.funding_rate)
            else:
                r2["total_size"] = num(self._contracts(ev.venue, s, ev.oi_base, ev.oi_usd))
            return [(f"futures.tickers:{s}", enc({"time": t_s, "time_ms": ev.exchange_ts_ms, "channel": "futures.tickers",
                                                  "event": "update", "result": [r2]}).decode())]
        return []

    def rest_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", f"/api/v4/futures/{self.settle}/contracts", self._contracts_rest),
            ("GET", f"/api/v4/futures/{self.settle}/risk_limit_tiers", self._tiers),
        ]

    async def _tiers(self, request: web.Request) -> web.Response:
        sym = request.query.get("contract", "")
        rows = [{"tier": i + 1, "risk_limit": num(t.cap if t.cap is not None else 1e12),
                 "initial_rate": num(round(1 / t.max_leverage, 6)), "maintenance_rate": num(t.mmr),
                 "leverage_max": num(t.max_leverage), "contract": sym, "deduction": num(t.maint_amount)}
                for i, t in enumerate(self.tier_rows(self.venue_ids[0], sym))]
        return self.json(rows)

    async def _contracts_rest(self, request: web.Request) -> web.Response:
        venue = self.venue_ids[0]
        rows = []
        for s in self.symbols_of(venue):
            inst = self.instrument(venue, s)
            rows.append({"name": s, "type": "inverse" if inst.kind == "inverse" else "direct",
                         "quanto_multiplier": "0" if inst.kind == "inverse" else num(inst.contract_size)})
        return self.json(rows)


class FakeInverse(Fake):
    """Gate BTC-settled server side."""

    venue_ids: ClassVar[tuple[str, ...]] = ("gate-inverse",)
    prefix: ClassVar[str] = "gate-inverse"
    ws_paths: ClassVar[dict[str, str]] = {"btc": "/v4/ws/btc"}
    settle: ClassVar[str] = "btc"
