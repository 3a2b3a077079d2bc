"""KuCoin Futures: USDT-margined (``kucoin-linear``, e.g. XBTUSDTM, lots of ``multiplier``
base coin) and inverse (``kucoin-inverse``, e.g. XBTUSDM, lots of 1 USD), on one connection.

**KuCoin publishes no public liquidation feed** (every liquidation topic answers "topic does
not exist"); its part of the map is modelled from open interest and trades only
(completeness ``none``).

The WebSocket needs a token: ``POST /api/v1/bullet-public`` returns the endpoint, a token and
the ``pingInterval``/``pingTimeout`` to use (fetched again for every connection). The server
sends ``{"type":"welcome"}`` first; subscriptions follow, one topic with up to 100 symbols
per message. Frames are a tagged union on ``type`` (welcome, ack, pong, error, message);
messages route by ``subject``:

* ``/contractMarket/execution:{symbol}`` subject ``match`` — ``side`` is the taker side,
  ``size`` in lots, ``ts`` in **nanoseconds**::

    {"topic":"/contractMarket/execution:XBTUSDTM","type":"message","subject":"match","sn":1,
     "data":{"symbol":"XBTUSDTM","sequence":1,"side":"buy","size":102,"price":"57.75",
     "tradeId":"1694749771273","ts":1705708799996000000}}

* ``/contract/instrument:{symbol}`` subjects ``mark.index.price`` and ``funding.rate``.

Open interest has no stream: ``GET /api/v1/contracts/active`` (every contract, with
``openInterest`` in lots) is polled.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from typing import Any, ClassVar, Literal, Union

import msgspec
from aiohttp import web

from ..events import Event, MarkFunding, OpenInterest, Trade
from .base import ConnContext, Instrument, Normalizer, ms
from .connector import Conn, Connector, SocketPlan, VenueUrls
from .errors import ExchangeError
from .fake import FakeClient, FakeVenue, num

__all__ = ["Kucoin", "KucoinNormalizer"]

NAN = math.nan
log = logging.getLogger("liqfast.exchanges")


class Welcome(msgspec.Struct, tag_field="type", tag="welcome", gc=False):
    id: str = ""


class Ack(msgspec.Struct, tag_field="type", tag="ack", gc=False):
    id: str = ""


class Pong(msgspec.Struct, tag_field="type", tag="pong", gc=False):
    id: str = ""


class Error(msgspec.Struct, tag_field="type", tag="error", gc=False):
    id: str = ""
    code: int | str = 0
    data: str = ""


class Notice(msgspec.Struct, tag_field="type", tag="notice", gc=False):
    pass


class Message(msgspec.Struct, tag_field="type", tag="message", gc=False):
    topic: str
    subject: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


Frame = Union[Welcome, Ack, Pong, Error, Notice, Message]


class Match(msgspec.Struct, gc=False):
    symbol: str
    side: Literal["buy", "sell"]
    size: float
    price: float
    ts: int
    tradeId: str = ""


class MatchFrame(msgspec.Struct, gc=False):
    """A whole execution (``match``) message in one pass (fast path)."""

    type: str
    subject: str
    data: Match


class MarkIndex(msgspec.Struct, gc=False):
    markPrice: float
    timestamp: int
    indexPrice: float = NAN


class Funding(msgspec.Struct, gc=False):
    fundingRate: float
    timestamp: int
    granularity: int = 0


class ContractRow(msgspec.Struct):
    symbol: str
    multiplier: float = 1.0
    isInverse: bool = False
    openInterest: str | float | None = None
    markPrice: float | None = None
    baseCurrency: str = ""
    quoteCurrency: str = ""
    status: str = ""


class ContractsAnswer(msgspec.Struct):
    code: str
    data: list[ContractRow]


class InstanceServer(msgspec.Struct):
    endpoint: str
    pingInterval: int = 18000
    pingTimeout: int = 10000


class BulletData(msgspec.Struct):
    token: str
    instanceServers: list[InstanceServer]


class Bullet(msgspec.Struct):
    code: str
    data: BulletData


_IGNORED_SUBJECTS = frozenset({
    "tickerV2", "ticker", "level2", "level2Snapshot", "level3", "candle.stick", "contractDetails", "snapshot.24h",
    # spot subjects (shared envelope)
    "trade.l2update", "trade.ticker", "trade.l3match", "trade.candles.update", "trade.snapshot", "level1",
})


class KucoinNormalizer(Normalizer):
    """KuCoin Futures frames -> events; lots converted with each contract's ``multiplier``
    (inverse contracts report -1: 1 USD per lot)."""

    venue: ClassVar[str] = "kucoin-linear"
    liquidation_completeness: ClassVar[str] = "none"
    fast_path: ClassVar[bool] = True

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        super().__init__(instruments)
        self._frame = msgspec.json.Decoder(Frame, strict=False)
        self._match = msgspec.json.Decoder(Match, strict=False)
        self._match_frame = msgspec.json.Decoder(MatchFrame, strict=False).decode
        self._mark = msgspec.json.Decoder(MarkIndex, strict=False)
        self._funding = msgspec.json.Decoder(Funding, strict=False)
        self._contracts = msgspec.json.Decoder(ContractsAnswer, strict=False)
        self.venue_errors: list[str] = []

    def venue_of(self, symbol: str) -> str:
        inst = self.instruments.get(symbol)
        if inst is not None:
            return inst.venue
        return "kucoin-inverse" if symbol.endswith("USDM") and not symbol.endswith("USDTM") else "kucoin-linear"

    def _inst(self, symbol: str) -> Instrument | None:
        inst = self.instruments.get(symbol) or self.instrument(symbol, self.venue_of(symbol))
        if inst is None:
            self.counters.missing_metadata += 1
        return inst

    def on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        """Fast path: a message whose head names the ``match`` subject is decoded in one pass
        (checked after decoding); anything else takes the general route (tagged union on
        ``type``, raw ``data``, then the subject's decoder)."""
        if type(data) is bytes and data.find(b'"subject":"match"', 0, 160) >= 0:
            try:
                f = self._match_frame(data)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                f = None
            if f is not None and f.type == "message" and f.subject == "match":
                m = f.data
                return self._emit_decoded(lambda: self._emit_match(m, recv_ms, out), data, out)
        return super().on_message(data, recv_ms, ctx, out)

    def _emit_match(self, m: Match, recv_ms: int, out: list[Event]) -> bool:
        inst = self.instruments.get(m.symbol) or self._inst(m.symbol)
        if inst is None:
            return False
        p = m.price
        if inst.kind == "linear":
            b = m.size * inst.contract_size
            usd = b * p
        else:
            usd = m.size * inst.contract_size
            b = usd / p
        out.append(Trade(inst.venue, m.symbol, ms(m.ts), recv_ms, p, b, usd, "sell" if m.side == "sell" else "buy",
                         m.tradeId or None))
        return True

    def _on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        f = self._frame.decode(data)
        if type(f) is not Message:
            if type(f) is Error:
                self.venue_errors.append(f"{f.code} {f.data}")
                del self.venue_errors[:-20]
            return self._control()
        assert isinstance(f, Message)
        subj = f.subject
        if subj == "match":
            self._emit_match(self._match.decode(f.data), recv_ms, out)
            return True
        if subj == "mark.index.price":
            sym = f.topic.rpartition(":")[2]
            mi = self._mark.decode(f.data)
            self.marks[sym] = mi.markPrice
            out.append(MarkFunding(self.venue_of(sym), sym, mi.timestamp, recv_ms, mi.markPrice, mi.indexPrice))
            return True
        if subj == "funding.rate":
            sym = f.topic.rpartition(":")[2]
            fr = self._funding.decode(f.data)
            out.append(MarkFunding(self.venue_of(sym), sym, fr.timestamp, recv_ms, self.marks.get(sym, NAN), NAN,
                                   fr.fundingRate, 0, fr.granularity / 3_600_000 if fr.granularity > 60_000 else NAN))
            return True
        if subj in _IGNORED_SUBJECTS:
            return self._unhandled()
        return self._unhandled()

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        if tag == "contracts":
            ans = self._contracts.decode(body)
            out: list[Event] = []
            for r in ans.data:
                inverse = r.isInverse
                venue = "kucoin-inverse" if inverse else "kucoin-linear"
                inst = Instrument(venue, r.symbol, "inverse" if inverse else "linear", abs(r.multiplier),
                                  r.baseCurrency, r.quoteCurrency)
                self.instruments[r.symbol] = inst
                if r.markPrice:
                    self.marks[r.symbol] = float(r.markPrice)
                if self.symbols is not None and r.symbol not in self.symbols:
                    continue
                if r.openInterest is None or r.openInterest == "":
                    continue
                lots = float(r.openInterest)
                ref = self.ref_price(r.symbol)
                base, usd = inst.base_usd(lots, ref)
                out.append(OpenInterest(venue, r.symbol, recv_ms, recv_ms, base, usd, ref, "rest"))
            return out
        return super()._on_rest(tag, body, recv_ms)


class Kucoin(Connector):
    """KuCoin Futures connector (no liquidations: the venue has no public feed)."""

    family: ClassVar[str] = "kucoin"
    venues: ClassVar[tuple[str, ...]] = ("kucoin-linear", "kucoin-inverse")
    default_urls: ClassVar[VenueUrls] = VenueUrls("", "https://api-futures.kucoin.com")
    supported_channels: ClassVar[frozenset[str]] = frozenset({"trades", "open_interest", "mark_funding"})
    unavailable: ClassVar[dict[str, str]] = {
        "liquidations": "KuCoin publishes no public liquidation feed; its map is modelled from open interest and "
        "trades only",
    }
    default_ping_interval: ClassVar[float | None] = 18.0
    rest_limit: ClassVar[tuple[float, float]] = (10.0, 1.0)
    normalizer_cls: ClassVar[type[Normalizer]] = KucoinNormalizer
    batch: ClassVar[int] = 100
    _req = itertools.count(1)

    def venue_of(self, symbol: str) -> str:
        n = self.normalizer
        assert isinstance(n, KucoinNormalizer)
        return n.venue_of(symbol)

    def socket_plans(self) -> list[SocketPlan]:
        topics: list[str] = []
        syms = list(self.symbols)
        for i in range(0, len(syms), self.batch):
            chunk = ",".join(syms[i : i + self.batch])
            if "trades" in self.channels:
                topics.append(f"/contractMarket/execution:{chunk}")
            if "mark_funding" in self.channels:
                topics.append(f"/contract/instrument:{chunk}")
        if not topics:
            return []
        pairs = tuple((self.venue_of(s), s) for s in self.symbols)
        chans = tuple(c for c in self.channels if c in ("trades", "mark_funding"))
        return [SocketPlan("market", chans, pairs, topics, continuous=any("instrument" in t for t in topics))]

    async def ws_url(self, plan: SocketPlan, conn_id: int) -> str:
        body = await self.rest.post("/api/v1/bullet-public", {})
        try:
            b = msgspec.json.decode(body, type=Bullet, strict=False)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ExchangeError(f"kucoin: unexpected bullet-public answer: {e}") from None
        if not b.data.instanceServers:
            raise ExchangeError("kucoin: bullet-public returned no instance server")
        srv = b.data.instanceServers[0]
        self._ping[conn_id] = srv.pingInterval / 1000.0
        sep = "&" if "?" in srv.endpoint else "?"
        return f"{srv.endpoint}{sep}token={b.data.token}&connectId=liqfast-{conn_id}"

    async def subscribe(self, conn: Conn) -> None:
        conn.ping_interval = self._ping.pop(conn.id, None) or None
        await conn.welcome.wait()
        msgs = []
        for topic in conn.plan.subscriptions:
            msgs.append(msgspec.json.encode({"id": str(next(self._req)), "type": "subscribe", "topic": topic,
                                             "privateChannel": False, "response": True}).decode())
        await self.send_batched(conn, msgs)

    def on_control(self, conn: Conn, data: bytes | str) -> None:
        conn.welcome.set()
        raw = data if isinstance(data, bytes) else data.encode()
        if b'"type":"error"' in raw:
            # A refused subscription is logged and counted; reconnecting would not fix it.
            self.counters.subscribe_errors += 1
            log.warning("kucoin: venue error %s", raw[:200].decode("utf-8", "replace"))

    def ping_message(self, conn: Conn) -> str | None:
        return msgspec.json.encode({"id": str(int(time.time() * 1000)), "type": "ping"}).decode()

    async def load_instruments(self) -> None:
        self.feed_rest("contracts", await self.rest.get("/api/v1/contracts/active", weight=3))

    def extra_tasks(self) -> list[Any]:
        if "open_interest" not in self.channels:
            return []

        async def poll() -> None:
            self.feed_rest("contracts", await self.rest.get("/api/v1/contracts/active", weight=3))

        return [lambda: self.poll("open interest", self.policy.oi_poll_interval, poll, channels=("open_interest",))]

    def __init__(self, symbols: Any, **kw: Any) -> None:
        super().__init__(symbols, **kw)
        self._ping: dict[int, float] = {}


class Fake(FakeVenue):
    """KuCoin Futures server side: bullet-public token + endpoint, welcome, subscribe/ack,
    ping/pong, execution and instrument messages, REST active contracts with open interest."""

    venue_ids: ClassVar[tuple[str, ...]] = ("kucoin-linear", "kucoin-inverse")
    prefix: ClassVar[str] = "kucoin"
    ws_paths: ClassVar[dict[str, str]] = {"ws": "/endpoint"}
    ping_interval_ms: ClassVar[int] = 18000

    async def on_open(self, client: FakeClient) -> None:
        if client.request.query.get("token") != "fake-token":
            client.push(msgspec.json.encode({"id": "0", "type": "error", "code": 401, "data": "token is invalid"}).decode())
            return
        client.push(msgspec.json.encode({"id": client.request.query.get("connectId", ""), "type": "welcome"}).decode())

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [], False
        if not isinstance(msg, dict):
            return [], False
        if msg.get("type") == "ping":
            return [msgspec.json.encode({"id": msg.get("id", ""), "type": "pong",
                                         "timestamp": int(time.time() * 1000)}).decode()], True
        if msg.get("type") == "subscribe":
            topic = str(msg.get("topic", ""))
            prefix, _, syms = topic.partition(":")
            for s in syms.split(","):
                client.subs.add(f"{prefix}:{s}")
            return [msgspec.json.encode({"id": msg.get("id", ""), "type": "ack"}).decode()], False
        return [], False

    def _lots(self, venue: str, sym: str, base: float, usd: float) -> float:
        inst = self.instrument(venue, sym)
        return round((base if inst.kind == "linear" else usd) / inst.contract_size, 8)

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        enc = msgspec.json.encode
        s = ev.symbol
        if isinstance(ev, Trade):
            topic = f"/contractMarket/execution:{s}"
            d = {"symbol": s, "sequence": ev.exchange_ts_ms, "side": ev.side,
                 "size": self._lots(ev.venue, s, ev.size_base, ev.size_usd), "price": num(ev.price),
                 "tradeId": str(ev.trade_id or ev.exchange_ts_ms), "ts": ev.exchange_ts_ms * 1_000_000}
            return [(topic, enc({"topic": topic, "type": "message", "subject": "match", "sn": ev.exchange_ts_ms,
                                 "data": d}).decode())]
        if isinstance(ev, MarkFunding):
            topic = f"/contract/instrument:{s}"
            frames = [(topic, enc({"topic": topic, "type": "message", "subject": "mark.index.price", "data": {
                "markPrice": ev.mark_price, "indexPrice": ev.index_price if ev.index_price == ev.index_price else
                ev.mark_price, "granularity": 1000, "timestamp": ev.exchange_ts_ms}}).decode())]
            if ev.funding_rate == ev.funding_rate:
                frames.append((topic, enc({"topic": topic, "type": "message", "subject": "funding.rate", "data": {
                    "granularity": 28_800_000, "fundingRate": ev.funding_rate,
                    "timestamp": ev.exchange_ts_ms}}).decode()))
            return frames
        return []

    def rest_routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", "/api/v1/bullet-public", self._bullet), ("GET", "/api/v1/contracts/active", self._contracts)]

    async def _bullet(self, request: web.Request) -> web.Response:
        host = request.host
        endpoint = f"ws://{host}/{self.prefix}/endpoint"
        return self.json({"code": "200000", "data": {"token": "fake-token", "instanceServers": [{
            "endpoint": endpoint, "encrypt": False, "protocol": "websocket", "pingInterval": self.ping_interval_ms,
            "pingTimeout": 10000}]}})

    async def _contracts(self, request: web.Request) -> web.Response:
        rows = []
        for venue in self.venue_ids:
            for s in self.symbols_of(venue):
                inst = self.instrument(venue, s)
                oi = self.x.oi.get((venue, s))
                row: dict[str, Any] = {
                    "symbol": s, "multiplier": -1 if inst.kind == "inverse" else inst.contract_size,
                    "isInverse": inst.kind == "inverse", "baseCurrency": "XBT" if s.startswith("XBT") else inst.base,
                    "quoteCurrency": "USD" if inst.kind == "inverse" else "USDT", "status": "Open",
                }
                if oi is not None:
                    row["openInterest"] = num(self._lots(venue, s, oi.oi_base, oi.oi_usd))
                mark = self.x.ref_price(venue, s)
                if mark == mark:
                    row["markPrice"] = mark
                rows.append(row)
        return self.json({"code": "200000", "data": rows})
