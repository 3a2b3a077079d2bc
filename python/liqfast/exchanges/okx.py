"""OKX v5 swaps: USDT/USDC-margined (``okx-linear``) and coin-margined (``okx-inverse``), on
one connection.

Frames route by ``arg.channel`` (envelope with raw ``data``, then one decoder per channel).
Sizes are in **contracts**: ``ctVal`` base coin each for linear swaps (0.01 BTC for
BTC-USDT-SWAP), ``ctVal`` USD each for inverse ones (100 USD for BTC-USD-SWAP), read from
``GET /api/v5/public/instruments`` at start-up.

* ``trades`` (per instId; aggregated per taker order and price)::

    {"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",
     "tradeId":"130639474","px":"42219.9","sz":"12","side":"buy","ts":"1630048897897","count":"3"}]}

* ``liquidation-orders`` — one subscription (instType SWAP) covers every swap. ``side`` is
  the liquidation *order* side, ``posSide`` the position side (long/short, or "net" in
  one-way mode, where a sell order means a long was liquidated). ``bkPx`` is the bankruptcy
  price. OKX states the feed does not carry every liquidation and is not time-ordered
  (completeness ``partial``); after (re)subscribing it re-sends recent ones, which are
  de-duplicated here::

    {"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0",
     "bkPx":"0.007831","ccy":"","posSide":"short","side":"buy","sz":"13","ts":"1692266434010"}],
     "instFamily":"IOST-USDT","instId":"IOST-USDT-SWAP","instType":"SWAP","uly":"IOST-USDT"}]}

* ``open-interest`` (``oi`` contracts, ``oiCcy`` coin), ``mark-price``, ``funding-rate``.

Keepalive: the text frame ``ping`` (answer ``pong``); OKX closes connections silent for 30 s.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import msgspec
from aiohttp import web

from .._core import SeenSet
from ..events import Event, Liquidation, MarkFunding, OpenInterest, PositionSide, Trade
from .base import ConnContext, Instrument, Normalizer
from .connector import Conn, Connector, SocketPlan, VenueUrls
from .fake import FakeClient, FakeVenue, num, synthetic_oi, synthetic_price

__all__ = ["Okx", "OkxNormalizer"]

NAN = math.nan


class Arg(msgspec.Struct, gc=False):
    channel: str = ""
    instId: str = ""
    instType: str = ""


class Envelope(msgspec.Struct, gc=False):
    arg: Arg | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")
    event: str = ""
    code: str = ""
    msg: str = ""


class OkxTrade(msgspec.Struct, gc=False):
    instId: str
    tradeId: str
    px: float
    sz: float
    side: Literal["buy", "sell"]
    ts: int


class TradesFrame(msgspec.Struct, gc=False):
    """A whole ``trades`` frame in one pass (fast path)."""

    arg: Arg
    data: list[OkxTrade]


class LiqFrame(msgspec.Struct, gc=False):
    """A whole ``liquidation-orders`` frame in one pass (fast path)."""

    arg: Arg
    data: list[LiqGroup]


class LiqDetail(msgspec.Struct, gc=False):
    side: Literal["buy", "sell"]
    posSide: Literal["long", "short", "net"]
    bkPx: float
    sz: float
    ts: int


class LiqGroup(msgspec.Struct, gc=False):
    instId: str
    details: list[LiqDetail]
    instType: str = ""


class MarkPx(msgspec.Struct, gc=False):
    instId: str
    markPx: float
    ts: int


class FundingRate(msgspec.Struct, gc=False):
    instId: str
    fundingRate: str = ""
    fundingTime: str = ""
    nextFundingTime: str = ""
    ts: str = ""


class OiRow(msgspec.Struct, gc=False):
    instId: str
    oi: float
    oiCcy: float
    ts: int


class InstrumentRow(msgspec.Struct):
    instId: str
    instType: str = ""
    ctVal: str = ""
    ctType: str = ""
    ctValCcy: str = ""
    settleCcy: str = ""
    uly: str = ""
    state: str = ""


class InstrumentsAnswer(msgspec.Struct):
    code: str
    data: list[InstrumentRow]


def _fl(s: str) -> float:
    return float(s) if s else NAN


_IGNORED = frozenset({"tickers", "books", "books5", "books-l2-tbt", "books50-l2-tbt", "bbo-tbt", "index-tickers",
                      "price-limit", "estimated-price", "opt-summary", "instruments", "status"})


class OkxNormalizer(Normalizer):
    """OKX v5 frames -> events; contract sizes (``ctVal``) and linear/inverse per instrument
    come from the instruments answer, so one normaliser serves both venue ids."""

    venue: ClassVar[str] = "okx-linear"
    liquidation_completeness: ClassVar[str] = "partial"
    fast_path: ClassVar[bool] = True

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        super().__init__(instruments)
        self._env = msgspec.json.Decoder(Envelope, strict=False)
        self._trades = msgspec.json.Decoder(list[OkxTrade], strict=False)
        self._liqs = msgspec.json.Decoder(list[LiqGroup], strict=False)
        self._marks = msgspec.json.Decoder(list[MarkPx], strict=False)
        self._funding = msgspec.json.Decoder(list[FundingRate], strict=False)
        self._oi = msgspec.json.Decoder(list[OiRow], strict=False)
        self._instruments = msgspec.json.Decoder(InstrumentsAnswer, strict=False)
        # OKX re-sends recent liquidations after a (re)subscribe: the identities of the last
        # 20,000 (shared with the Rust decoder, which checks them natively)
        self._seen_liqs = SeenSet(20_000)
        self._frames = (
            (b'{"arg":{"channel":"trades"', msgspec.json.Decoder(TradesFrame, strict=False).decode, "_emit_trades"),
            (b'{"arg":{"channel":"liquidation-orders"', msgspec.json.Decoder(LiqFrame, strict=False).decode,
             "_emit_liqs"),
        )
        self.duplicates = 0
        self.venue_errors: list[str] = []

    def venue_of(self, inst_id: str) -> str:
        inst = self.instruments.get(inst_id)
        if inst is not None:
            return inst.venue
        return "okx-inverse" if "-USD-" in inst_id else "okx-linear"

    def _inst(self, inst_id: str) -> Instrument | None:
        inst = self.instruments.get(inst_id)
        if inst is None:
            inst = self.instrument(inst_id, self.venue_of(inst_id))
            if inst is None:
                self.counters.missing_metadata += 1
        return inst

    def on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        """Fast path: a frame that starts like a ``trades`` frame is decoded in one pass by
        its channel's frame decoder; anything else takes the general route (envelope with
        raw ``data``, then the channel's decoder)."""
        done = self._whole_frame(data, recv_ms, out, self._frames)
        return super().on_message(data, recv_ms, ctx, out) if done is None else done

    def _emit_trades(self, trades: list[OkxTrade], recv_ms: int, out: list[Event]) -> None:
        insts = self.instruments
        append = out.append
        for t in trades:
            inst = insts.get(t.instId) or self._inst(t.instId)
            if inst is None:
                continue
            px, sz = t.px, t.sz
            if inst.kind == "linear":
                b = sz * inst.contract_size
                append(Trade(inst.venue, t.instId, t.ts, recv_ms, px, b, b * px, "buy" if t.side == "buy" else "sell",
                             t.tradeId))
            else:
                usd = sz * inst.contract_size
                append(Trade(inst.venue, t.instId, t.ts, recv_ms, px, usd / px, usd,
                             "buy" if t.side == "buy" else "sell", t.tradeId))

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
        ch = env.arg.channel
        if ch == "trades" or ch == "trades-all":
            self._emit_trades(self._trades.decode(env.data), recv_ms, out)
            return True
        if ch == "liquidation-orders":
            self._emit_liqs(self._liqs.decode(env.data), recv_ms, out)
            return True
        if ch == "mark-price":
            for m in self._marks.decode(env.data):
                self.marks[m.instId] = m.markPx
                out.append(MarkFunding(self.venue_of(m.instId), m.instId, m.ts, recv_ms, m.markPx))
            return True
        if ch == "funding-rate":
            for f in self._funding.decode(env.data):
                ft, nft = _fl(f.fundingTime), _fl(f.nextFundingTime)
                interval = (nft - ft) / 3_600_000 if ft == ft and nft == nft else NAN
                ts = int(f.ts) if f.ts else recv_ms
                out.append(MarkFunding(
                    self.venue_of(f.instId), f.instId, ts, recv_ms, self.marks.get(f.instId, NAN), NAN,
                    _fl(f.fundingRate), int(ft) if ft == ft else 0, interval,
                ))
            return True
        if ch == "open-interest":
            for o in self._oi.decode(env.data):
                inst = self._inst(o.instId)
                if inst is None:
                    continue
                ref = self.ref_price(o.instId)
                if inst.kind == "linear":
                    base, usd = o.oiCcy, o.oiCcy * ref
                else:
                    usd = o.oi * inst.contract_size
                    base = o.oiCcy
                out.append(OpenInterest(inst.venue, o.instId, o.ts, recv_ms, base, usd, ref, "ws"))
            return True
        if ch in _IGNORED or ch.startswith("candle") or ch.startswith("books"):
            return self._unhandled()
        return self._unhandled()

    def _emit_liqs(self, groups: list[LiqGroup], recv_ms: int, out: list[Event]) -> None:
        seen_before = self._seen_liqs.check_add
        symbols = self.symbols
        comp = self.liquidation_completeness
        for g in groups:
            inst_id = g.instId
            if symbols is not None and inst_id not in symbols:
                continue
            inst = self.instruments.get(inst_id) or self._inst(inst_id)
            if inst is None:
                continue
            cs, linear, venue = inst.contract_size, inst.kind == "linear", inst.venue
            for d in g.details:
                # OKX re-sends recent liquidations after a (re)subscribe: de-duplicated on
                # their identity (bounded: the oldest are forgotten first)
                px, sz = d.bkPx, d.sz
                if seen_before(inst_id, d.ts, d.side, d.posSide, sz, px):
                    self.duplicates += 1
                    continue
                # posSide is the position side (hedge mode); in one-way mode ("net") the
                # order side tells it: a forced sell closes a long.
                pos: PositionSide
                if d.posSide == "long" or d.posSide == "short":
                    pos = d.posSide
                else:
                    pos = "long" if d.side == "sell" else "short"
                if linear:
                    base = sz * cs
                    usd = base * px
                else:
                    usd = sz * cs
                    base = usd / px
                out.append(Liquidation(venue, inst_id, d.ts, recv_ms, pos, px, base, usd, comp, "bankruptcy"))

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        if tag.startswith("instruments"):
            ans = self._instruments.decode(body)
            for r in ans.data:
                if not r.ctVal or r.instType not in ("SWAP", "FUTURES"):
                    continue
                inverse = r.ctType == "inverse"
                self.instruments[r.instId] = Instrument(
                    "okx-inverse" if inverse else "okx-linear", r.instId, "inverse" if inverse else "linear",
                    float(r.ctVal), r.instId.split("-")[0], r.settleCcy,
                )
            return []
        return super()._on_rest(tag, body, recv_ms)


class Okx(Connector):
    """OKX v5 swap connector (linear and inverse on one connection)."""

    family: ClassVar[str] = "okx"
    venues: ClassVar[tuple[str, ...]] = ("okx-linear", "okx-inverse")
    default_urls: ClassVar[VenueUrls] = VenueUrls("wss://ws.okx.com:8443", "https://www.okx.com")
    default_ping_interval: ClassVar[float | None] = 20.0
    rest_limit: ClassVar[tuple[float, float]] = (10.0, 2.0)  # public endpoints: 20 per 2 s
    normalizer_cls: ClassVar[type[Normalizer]] = OkxNormalizer
    batch: ClassVar[int] = 20
    path: ClassVar[str] = "/ws/v5/public"

    def venue_of(self, symbol: str) -> str:
        n = self.normalizer
        assert isinstance(n, OkxNormalizer)
        return n.venue_of(symbol)

    def socket_plans(self) -> list[SocketPlan]:
        args: list[dict[str, str]] = []
        for s in self.symbols:
            if "trades" in self.channels:
                args.append({"channel": "trades", "instId": s})
            if "mark_funding" in self.channels or "open_interest" in self.channels:
                # the mark price also converts open interest to USD
                args.append({"channel": "mark-price", "instId": s})
            if "mark_funding" in self.channels:
                args.append({"channel": "funding-rate", "instId": s})
            if "open_interest" in self.channels:
                args.append({"channel": "open-interest", "instId": s})
        pairs = tuple((self.venue_of(s), s) for s in self.symbols)
        plans = []
        if args:
            chans = tuple(c for c in self.channels if c != "liquidations")
            plans.append(SocketPlan("market", chans, pairs, args, self.path,
                                    continuous=any(a["channel"] == "mark-price" for a in args)))
        if "liquidations" in self.channels:
            plans.append(SocketPlan("liquidations", ("liquidations",), pairs,
                                    [{"channel": "liquidation-orders", "instType": "SWAP"}], self.path))
        return plans

    async def subscribe(self, conn: Conn) -> None:
        await self.subscribe_ops(conn, self.batch)

    def ping_message(self, conn: Conn) -> str | None:
        return "ping"

    async def load_instruments(self) -> None:
        self.feed_rest("instruments:SWAP", await self.rest.get(
            "/api/v5/public/instruments", {"instType": "SWAP"}))


# -- fake exchange protocol -------------------------------------------------------------------


class Fake(FakeVenue):
    """OKX v5 server side: text ping, op subscribe with per-arg acks, channel frames, REST
    instruments, open-interest/candle/liquidation history, position tiers."""

    venue_ids: ClassVar[tuple[str, ...]] = ("okx-linear", "okx-inverse")
    prefix: ClassVar[str] = "okx"
    ws_paths: ClassVar[dict[str, str]] = {"public": "/ws/v5/public"}

    def on_text(self, client: FakeClient, text: str) -> tuple[list[str], bool]:
        if text == "ping":
            return ["pong"], True
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return [msgspec.json.encode({"event": "error", "code": "60012", "msg": "Invalid request"}).decode()], False
        if isinstance(msg, dict) and msg.get("op") == "subscribe":
            replies = []
            for a in msg.get("args", []):
                key = f"{a.get('channel')}:{a.get('instId') or a.get('instType')}"
                client.subs.add(key)
                replies.append(msgspec.json.encode({"event": "subscribe", "arg": a, "connId": str(client.id)}).decode())
            return replies, False
        return [], False

    def _contracts(self, ev_venue: str, sym: str, base: float, usd: float) -> float:
        inst = self.instrument(ev_venue, sym)
        return round((base if inst.kind == "linear" else usd) / inst.contract_size, 8)

    def encode(self, ev: Event) -> list[tuple[str, str]]:
        enc = msgspec.json.encode
        s = ev.symbol
        if isinstance(ev, Trade):
            arg = {"channel": "trades", "instId": s}
            d = {"instId": s, "tradeId": str(ev.trade_id or ev.exchange_ts_ms), "px": num(ev.price),
                 "sz": num(self._contracts(ev.venue, s, ev.size_base, ev.size_usd)), "side": ev.side,
                 "ts": str(ev.exchange_ts_ms), "count": "1"}
            return [(f"trades:{s}", enc({"arg": arg, "data": [d]}).decode())]
        if isinstance(ev, Liquidation):
            arg = {"channel": "liquidation-orders", "instType": "SWAP"}
            det = {"bkLoss": "0", "bkPx": num(ev.price), "ccy": "", "posSide": ev.side,
                   "side": "sell" if ev.side == "long" else "buy",
                   "sz": num(self._contracts(ev.venue, s, ev.size_base, ev.size_usd)), "ts": str(ev.exchange_ts_ms)}
            fam = s.removesuffix("-SWAP")
            g = {"details": [det], "instFamily": fam, "instId": s, "instType": "SWAP", "uly": fam}
            return [("liquidation-orders:SWAP", enc({"arg": arg, "data": [g]}).decode())]
        if isinstance(ev, MarkFunding):
            frames = [(f"mark-price:{s}", enc({"arg": {"channel": "mark-price", "instId": s}, "data": [
                {"instType": "SWAP", "instId": s, "markPx": num(ev.mark_price), "ts": str(ev.exchange_ts_ms)}]}).decode())]
            if ev.funding_rate == ev.funding_rate:
                nft = ev.next_funding_ms or ev.exchange_ts_ms
                frames.append((f"funding-rate:{s}", enc({"arg": {"channel": "funding-rate", "instId": s}, "data": [{
                    "fundingRate": num(ev.funding_rate), "fundingTime": str(nft),
                    "nextFundingTime": str(nft + 8 * 3_600_000), "instId": s, "instType": "SWAP",
                    "ts": str(ev.exchange_ts_ms)}]}).decode()))
            return frames
        if isinstance(ev, OpenInterest):
            inst = self.instrument(ev.venue, s)
            oi = self._contracts(ev.venue, s, ev.oi_base, ev.oi_usd)
            return [(f"open-interest:{s}", enc({"arg": {"channel": "open-interest", "instId": s}, "data": [{
                "instId": s, "instType": "SWAP", "oi": num(oi), "oiCcy": num(ev.oi_base),
                "oiUsd": num(ev.oi_usd if inst.kind == "linear" else ev.oi_usd), "ts": str(ev.exchange_ts_ms)}]}).decode())]
        return []

    def rest_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/api/v5/public/instruments", self._instruments),
            ("GET", "/api/v5/rubik/stat/contracts/open-interest-history", self._oi_history),
            ("GET", "/api/v5/market/history-candles", self._candles),
            ("GET", "/api/v5/public/liquidation-orders", self._liq_history),
            ("GET", "/api/v5/public/position-tiers", self._position_tiers),
        ]

    async def _position_tiers(self, request: web.Request) -> web.Response:
        fam = request.query.get("instFamily", "")
        inst_id = f"{fam}-SWAP"
        venue = "okx-inverse" if fam.endswith("-USD") else "okx-linear"
        rows = [{"tier": str(i + 1), "minSz": num(t.floor), "maxSz": num(t.cap if t.cap is not None else 1e12),
                 "mmr": num(t.mmr), "imr": num(round(1 / t.max_leverage, 6)), "maxLever": num(t.max_leverage),
                 "instFamily": fam, "uly": fam, "instId": ""}
                for i, t in enumerate(self.tier_rows(venue, inst_id))]
        return self.json({"code": "0", "msg": "", "data": rows})

    def _times(self, lo: int, hi: int, step: int, limit: int) -> list[int]:
        """Bar times in [lo, hi] within the fake's history range, newest first."""
        a, b = self.x.history_range
        lo, hi = max(lo, a), min(hi, b)
        if hi < lo:
            return []
        t = hi - hi % step
        out: list[int] = []
        while t >= lo and len(out) < limit:
            out.append(t)
            t -= step
        return out

    async def _oi_history(self, request: web.Request) -> web.Response:
        q = request.query
        inst = self.instrument("okx-inverse" if "-USD-" in q["instId"] else "okx-linear", q["instId"])
        rows = []
        for t in self._times(int(q.get("begin", 0)), int(q.get("end", 2**62)), 300_000, min(100, int(q.get("limit", 100)))):
            base = synthetic_oi(t)
            px = synthetic_price(t)
            usd = base * px
            contracts = base / inst.contract_size if inst.kind == "linear" else usd / inst.contract_size
            rows.append([str(t), num(contracts), num(base), num(round(usd, 2))])
        return self.json({"code": "0", "msg": "", "data": rows})

    async def _candles(self, request: web.Request) -> web.Response:
        q = request.query
        step = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1H": 3_600_000}.get(q.get("bar", "1m"), 60_000)
        hi = int(q["after"]) - 1 if "after" in q else 2**62
        rows = []
        for t in self._times(0, hi, step, min(100, int(q.get("limit", 100)))):
            o, c = synthetic_price(t), synthetic_price(t + step)
            vol_ccy = 10.0 + (t // step) % 7
            rows.append([str(t), num(o), num(max(o, c) + 5), num(min(o, c) - 5), num(c), num(vol_ccy * 100),
                         num(vol_ccy), num(round(vol_ccy * c, 2)), "1"])
        return self.json({"code": "0", "msg": "", "data": rows})

    async def _liq_history(self, request: web.Request) -> web.Response:
        q = request.query
        fam = q.get("instFamily") or q.get("uly") or "BTC-USDT"
        inst_id = f"{fam}-SWAP"
        hi = int(q["after"]) - 1 if "after" in q else 2**62
        details = []
        for t in self._times(0, hi, 3_600_000, min(100, int(q.get("limit", 100)))):
            long = (t // 3_600_000) % 2 == 0
            details.append({"bkLoss": "0", "bkPx": num(synthetic_price(t)), "ccy": "", "posSide": "long" if long else
                            "short", "side": "sell" if long else "buy", "sz": "3", "ts": str(t)})
        data = [{"details": details, "instFamily": fam, "instId": inst_id, "instType": "SWAP", "uly": fam}] if details else []
        return self.json({"code": "0", "msg": "", "data": data})

    async def _instruments(self, request: web.Request) -> web.Response:
        rows = []
        for venue in self.venue_ids:
            for s in self.symbols_of(venue):
                inst = self.instrument(venue, s)
                rows.append({"instId": s, "instType": "SWAP", "ctVal": num(inst.contract_size), "ctMult": "1",
                             "ctType": inst.kind, "ctValCcy": "USD" if inst.kind == "inverse" else s.split("-")[0],
                             "settleCcy": s.split("-")[0] if inst.kind == "inverse" else "USDT",
                             "uly": s.removesuffix("-SWAP"), "state": "live"})
        return self.json({"code": "0", "msg": "", "data": rows})
