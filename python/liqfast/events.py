"""One normalised event model for every venue, and fixed-interval bars built from it.

Every connector in :mod:`liqfast.exchanges` turns its venue's wire messages into the five
event types below, so everything downstream (bars, the model, the map, a trading system
subscribed to the hub) is written once and never learns a venue's quirks:

* :class:`Trade` — one public trade (or one aggregated trade where the venue aggregates).
* :class:`Liquidation` — one realised liquidation. ``side`` is always the side of the
  **position** that was liquidated ("long"/"short"): Binance and OKX publish the side of the
  liquidation *order* (SELL closes a long), Bybit and Bitget the side of the position, Gate a
  signed size — the connectors undo each convention so no consumer has to.
* :class:`OpenInterest` — single-sided open interest (one side of the book, as Binance
  reports it; Bybit's ``singleOpenInterest``), converted from contracts with instrument
  metadata.
* :class:`MarkFunding` — mark/index price and funding.
* :class:`Gap` — a window in which a feed was down or data was lost. Liquidation feeds have no
  sequence numbers, so downtime is the only gap we can detect; it travels in the same stream
  so bars and maps can mark the affected time as degraded instead of showing "no
  liquidations".

All sizes are given in base units *and* USD, prices in the quote currency (USD-like), and
every event carries the exchange's timestamp and our receive timestamp (UTC epoch ms).
Structs are frozen (events are facts) and ``gc=False`` (they hold no references to other
containers, and millions of them must not slow the cyclic GC).

:class:`BarBuilder` turns a venue/symbol's event stream into fixed-interval :class:`Bar`\\ s
(OHLC, closing open interest, taker flow, realised liquidations, volume profile, gap flag) —
the input of the model. Bars close on a *watermark* (the newest receive time seen, or the
clock passed to :meth:`BarBuilder.advance`), never on wall-clock reads of its own, so
replaying a recording yields exactly the same bars every time.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final, Literal, TypeAlias

import msgspec

__all__ = [
    "COMPLETENESS_NOTES",
    "Bar",
    "BarBuilder",
    "BarSet",
    "Candle",
    "Event",
    "Gap",
    "Liquidation",
    "MarkFunding",
    "OpenInterest",
    "PositionSide",
    "Side",
    "Trade",
    "decode_event",
    "decode_events",
    "encode_event",
    "event_key",
]

NAN: Final = math.nan

Side: TypeAlias = Literal["buy", "sell"]
PositionSide: TypeAlias = Literal["long", "short"]


class Trade(msgspec.Struct, frozen=True, gc=False, tag="trade", tag_field="kind"):
    """A public trade. ``side`` is the *taker* (aggressor) side."""

    venue: str
    symbol: str
    exchange_ts_ms: int
    recv_ts_ms: int
    price: float
    size_base: float
    size_usd: float
    side: Side
    #: Venue trade id (aggregate id on Binance); used to de-duplicate overlapping connections.
    trade_id: int | str | None = None


class Liquidation(msgspec.Struct, frozen=True, gc=False, tag="liquidation", tag_field="kind"):
    """A realised liquidation. ``side`` is the liquidated **position** side."""

    venue: str
    symbol: str
    exchange_ts_ms: int
    recv_ts_ms: int
    side: PositionSide
    price: float
    size_base: float
    size_usd: float
    #: Code of the feed's completeness limit (see :data:`COMPLETENESS_NOTES`), e.g.
    #: "snapshot_1s" for Binance, which publishes at most one liquidation per symbol per second.
    completeness: str
    #: What ``price`` is: "avg_fill", "order" (limit price of the liquidation order) or
    #: "bankruptcy" — venues publish different ones.
    price_kind: str = ""


class OpenInterest(msgspec.Struct, frozen=True, gc=False, tag="open_interest", tag_field="kind"):
    """Single-sided open interest in base units and USD (at ``price``)."""

    venue: str
    symbol: str
    exchange_ts_ms: int
    recv_ts_ms: int
    oi_base: float
    oi_usd: float
    #: Price used between base and USD (mark if known, else last trade); NaN if none yet.
    price: float
    #: "ws" or "rest" (polled).
    source: str = "ws"


class MarkFunding(msgspec.Struct, frozen=True, gc=False, tag="mark_funding", tag_field="kind"):
    """Mark price and funding. Fields a message did not carry are NaN (or 0 for times)."""

    venue: str
    symbol: str
    exchange_ts_ms: int
    recv_ts_ms: int
    mark_price: float
    index_price: float = NAN
    #: Rate per funding interval, as the venue quotes it (Hyperliquid: hourly).
    funding_rate: float = NAN
    next_funding_ms: int = 0
    funding_interval_h: float = NAN


class Gap(msgspec.Struct, frozen=True, gc=False, tag="gap", tag_field="kind"):
    """A window ``[start_ms, end_ms]`` in which the listed channels of a venue/symbol were
    down (``reason``: "disconnect", "stale", "idle", "overflow", "recording", ...).

    A connector emits an *ongoing* gap (``ongoing=True``, ``end_ms`` = detection time) as soon
    as it detects the outage, and the final gap once data flows again, so consumers can mark
    time as degraded while the outage lasts. ``exchange_ts_ms`` is ``end_ms`` (local clock:
    a gap is not an exchange event)."""

    venue: str
    symbol: str
    exchange_ts_ms: int
    recv_ts_ms: int
    start_ms: int
    end_ms: int
    reason: str
    channels: tuple[str, ...] = ()
    ongoing: bool = False


Event: TypeAlias = Trade | Liquidation | OpenInterest | MarkFunding | Gap


class Candle(msgspec.Struct, frozen=True, gc=False, tag="candle", tag_field="kind"):
    """A venue kline (backfill only): lets bars be built from history without every trade.
    ``taker_buy_base`` is NaN when the venue does not publish it."""

    venue: str
    symbol: str
    ts_ms: int
    interval_ms: int
    open: float
    high: float
    low: float
    close: float
    volume_base: float
    volume_usd: float
    taker_buy_base: float = NAN
    trades: int = 0


#: Liquidation-feed completeness codes and what they mean; the map shows these per venue.
COMPLETENESS_NOTES: Final[dict[str, str]] = {
    "all_500ms": "every liquidation, batched every 500 ms (Bybit allLiquidation)",
    "snapshot_1s": "at most the latest liquidation per symbol per second; cascades are undercounted "
    "(Binance forceOrder, Gate before 2026-08-20)",
    "batched_1s": "all liquidations of a contract batched per ~1 s cycle (Gate since 2026-08-20)",
    "partial": "a subset of liquidation orders, not time-ordered (OKX liquidation-orders)",
    "aggregated": "aggregated per symbol and side; exact semantics unverified (Bitget v3 liquidation)",
    "none": "the venue publishes no public liquidation feed (KuCoin, Hyperliquid)",
    "history": "imported from a REST history endpoint",
}


# --------------------------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------------------------

_event_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(Event)
_KIND_TYPES: dict[str, type] = {
    "trade": Trade, "liquidation": Liquidation, "open_interest": OpenInterest, "mark_funding": MarkFunding,
    "gap": Gap, "candle": Candle,
}


def _float_fields(t: type) -> frozenset[str]:
    return frozenset(f.name for f in msgspec.structs.fields(t) if f.type is float)


_FLOATS: dict[str, frozenset[str]] = {k: _float_fields(t) for k, t in _KIND_TYPES.items()}


def encode_event(ev: Event | Candle | Bar) -> bytes:
    """JSON of an event/bar, tagged with its ``kind``. NaN (an unknown value) becomes null."""
    return _event_encoder.encode(ev)


def _from_builtins(obj: object) -> Event:
    if isinstance(obj, dict):
        floats = _FLOATS.get(str(obj.get("kind")), frozenset())
        for k in floats:
            if obj.get(k, 0.0) is None:
                obj[k] = NAN
    ev: Event = msgspec.convert(obj, Event)
    return ev


def decode_event(raw: bytes | str) -> Event:
    """Inverse of :func:`encode_event` for the five event kinds (null back to NaN)."""
    try:
        ev: Event = _event_decoder.decode(raw)
        return ev
    except msgspec.ValidationError:
        return _from_builtins(msgspec.json.decode(raw))


def decode_events(raw: bytes | str) -> list[Event]:
    """A JSON array of events (see :func:`decode_event`)."""
    items = msgspec.json.decode(raw)
    if not isinstance(items, list):
        raise msgspec.ValidationError("expected a JSON array of events")
    return [_from_builtins(x) for x in items]


def event_key(ev: Event) -> tuple[object, ...]:
    """Identity of an event for de-duplication across overlapping connections (receive time
    excluded: the same exchange event arrives twice at slightly different times)."""
    t = type(ev)
    if t is Trade:
        assert isinstance(ev, Trade)
        if ev.trade_id is not None:
            return ("t", ev.venue, ev.symbol, ev.trade_id)
        return ("t", ev.venue, ev.symbol, ev.exchange_ts_ms, ev.price, ev.size_base, ev.side)
    if t is Liquidation:
        assert isinstance(ev, Liquidation)
        return ("l", ev.venue, ev.symbol, ev.exchange_ts_ms, ev.side, ev.price, ev.size_base)
    if t is OpenInterest:
        assert isinstance(ev, OpenInterest)
        return ("o", ev.venue, ev.symbol, ev.exchange_ts_ms, ev.oi_base)
    if t is MarkFunding:
        assert isinstance(ev, MarkFunding)
        return ("m", ev.venue, ev.symbol, ev.exchange_ts_ms, ev.mark_price, ev.funding_rate)
    assert isinstance(ev, Gap)
    return ("g", ev.venue, ev.symbol, ev.start_ms, ev.end_ms, ev.reason, ev.ongoing)


# --------------------------------------------------------------------------------------------
# Bars
# --------------------------------------------------------------------------------------------


class Bar(msgspec.Struct, frozen=True, gc=False, tag="bar", tag_field="kind"):
    """One closed interval of one venue/symbol: what the model consumes.

    ``ts_ms`` is the bar's open time (UTC epoch ms), the bar covers
    ``[ts_ms, ts_ms + interval_ms)`` in *exchange* time. OHLC come from trades, falling back
    to mark prices, falling back to the previous close (a flat bar). ``oi_close_*`` is the last
    single-sided open interest at or before the bar's close, carried forward; NaN until the
    first value. ``volume_profile`` is ``((bucket_low_price, base_volume), ...)`` sorted by
    price, with buckets ``profile_step`` wide. ``gap`` is true when the bar overlaps a
    downtime window. A bar can be re-emitted with a higher ``revision`` when late data (a late
    liquidation, a gap reported after the bar closed) changes it: key bars by
    ``(venue, symbol, ts_ms)`` and keep the highest revision."""

    venue: str
    symbol: str
    ts_ms: int
    interval_ms: int
    open: float
    high: float
    low: float
    close: float
    oi_close_usd: float
    oi_close_base: float
    taker_buy_base: float
    taker_sell_base: float
    taker_net_base: float
    volume_usd: float
    trades: int
    liq_long_usd: float
    liq_short_usd: float
    liq_long_base: float
    liq_short_base: float
    liq_count: int
    mark_close: float
    funding_rate: float
    volume_profile: tuple[tuple[float, float], ...]
    profile_step: float
    gap: bool
    liq_completeness: str = ""
    revision: int = 0


class _Acc:
    """Mutable accumulator of one bar (internal; bars are emitted as frozen Structs)."""

    __slots__ = (
        "ts", "o", "h", "l", "c", "mo", "mh", "ml", "mc", "buy", "sell", "vusd", "n",
        "ll_usd", "ls_usd", "ll_base", "ls_base", "nliq", "oi_usd", "oi_base", "oi_ts",
        "funding", "profile", "gap", "emitted", "dirty", "revision", "candle",
    )

    def __init__(self, ts: int) -> None:
        self.ts = ts
        self.o = self.h = self.l = self.c = NAN
        self.mo = self.mh = self.ml = self.mc = NAN
        self.buy = self.sell = self.vusd = 0.0
        self.n = 0
        self.ll_usd = self.ls_usd = self.ll_base = self.ls_base = 0.0
        self.nliq = 0
        self.oi_usd = self.oi_base = NAN
        self.oi_ts = -1
        self.funding = NAN
        self.profile: dict[int, float] = {}
        self.gap = False
        self.emitted = False
        self.dirty = False
        self.revision = 0
        self.candle = False


class BarBuilder:
    """Fixed-interval bars of one venue/symbol from its event stream.

    Feed events with :meth:`add`; it returns the bars that became final. Call
    :meth:`advance` from a timer with the current time so bars also close when no events
    arrive (quiet markets, dead feeds). A bar ``[t, t+I)`` closes once the watermark passes
    ``t + I + grace_ms``; the grace absorbs small exchange/receive clock differences and
    venues that publish slightly out of order. Events older than every open bar revise the
    already-emitted bar if it is still among the last ``history`` bars (its ``revision``
    goes up), else they are counted in ``late_dropped``.

    Gaps: a :class:`Gap` marks every bar it overlaps; an *ongoing* gap marks bars until the
    final gap for the same outage arrives. Bars already emitted that a gap overlaps are
    re-emitted with ``gap=True``.
    """

    def __init__(
        self,
        venue: str,
        symbol: str,
        interval_ms: int = 300_000,
        *,
        grace_ms: int = 2_000,
        profile_step: float | None = None,
        history: int = 12,
        emit_empty: bool = True,
    ) -> None:
        if interval_ms <= 0:
            from .errors import InvalidInputError

            raise InvalidInputError(f"bar interval must be > 0 ms, got {interval_ms}")
        self.venue = venue
        self.symbol = symbol
        self.interval_ms = int(interval_ms)
        self.grace_ms = int(grace_ms)
        self.profile_step = profile_step
        self.history = history
        self.emit_empty = emit_empty
        self._open: dict[int, _Acc] = {}
        self._done: OrderedDict[int, _Acc] = OrderedDict()
        self._next_close = -1  # ts of the oldest bar not yet closed (after the first event)
        self._watermark = 0
        self._carry_close = NAN
        self._carry_oi_usd = NAN
        self._carry_oi_base = NAN
        self._carry_mark = NAN
        self._carry_funding = NAN
        #: Ongoing outages by channel set -> start ms (several sockets can be down at once).
        self._open_gaps: dict[tuple[str, ...], int] = {}
        #: finished outages (start, end) that bars not yet created may still overlap
        self._windows: list[tuple[int, int]] = []
        self._dirty = 0
        self._completeness = ""
        self.late_dropped = 0
        self.future_dropped = 0
        #: how far an exchange timestamp may run ahead of the receive time
        self.max_skew_ms = 3_600_000
        self.events = 0

    # -- public -------------------------------------------------------------------------------

    def add(self, ev: Event | Candle) -> list[Bar]:
        """Account one event; returns bars closed (or revised) as a consequence."""
        self.events += 1
        if isinstance(ev, Gap):
            self._on_gap(ev)
            return self._collect(max(self._watermark, ev.recv_ts_ms))
        if isinstance(ev, Candle):
            end = ev.ts_ms + ev.interval_ms - 1
            acc = self._acc_for(ev.ts_ms, end)
            if acc is not None:
                self._apply_candle(acc, ev)
            return self._collect(max(self._watermark, end))
        # Open interest stamped exactly on a bar boundary is that bar's *closing* value (venue
        # OI history is sampled at bar ends): it belongs to the bar that ends there.
        ts = ev.exchange_ts_ms - 1 if isinstance(ev, OpenInterest) else ev.exchange_ts_ms
        acc = self._acc_for(ts, ev.recv_ts_ms)
        if acc is not None:
            self._apply(acc, ev)
        return self._collect(max(self._watermark, ev.recv_ts_ms))

    def advance(self, now_ms: int) -> list[Bar]:
        """Close every bar whose end plus grace is at or before ``now_ms``."""
        return self._collect(max(self._watermark, int(now_ms)))

    def flush(self) -> list[Bar]:
        """Close every open bar now (end of a replay or backfill)."""
        if not self._open:
            return self._collect(self._watermark)
        last = max(self._open)
        return self._collect(last + self.interval_ms + self.grace_ms)

    @property
    def watermark(self) -> int:
        return self._watermark

    # -- internals ----------------------------------------------------------------------------

    def _bucket(self, ts: int) -> int:
        return ts - ts % self.interval_ms

    def _acc_for(self, ts: int, recv: int) -> _Acc | None:
        b = self._bucket(ts)
        acc = self._open.get(b)
        if acc is not None:
            return acc
        if ts > recv + self.max_skew_ms:
            # An exchange time far ahead of our clock is a bad timestamp: it must not open a
            # bar in the future (which would later emit every interval up to it).
            self.future_dropped += 1
            return None
        if self._next_close < 0:
            # Start at the first event, but no earlier than the kept history before "now".
            self._next_close = max(b, self._bucket(recv) - self.history * self.interval_ms)
        if b >= self._next_close:
            acc = _Acc(b)
            acc.gap = self._in_gap(b)
            self._open[b] = acc
            return acc
        done = self._done.get(b)
        if done is not None:
            if not done.dirty:
                done.dirty = True
                self._dirty += 1
            return done
        self.late_dropped += 1
        return None

    def _apply(self, acc: _Acc, ev: Event) -> None:
        t = type(ev)
        if t is Trade:
            assert isinstance(ev, Trade)
            p = ev.price
            if acc.n == 0 and not acc.candle:
                acc.o = acc.h = acc.l = p
            elif p > acc.h:
                acc.h = p
            elif p < acc.l:
                acc.l = p
            acc.c = p
            acc.n += 1
            if ev.side == "buy":
                acc.buy += ev.size_base
            else:
                acc.sell += ev.size_base
            acc.vusd += ev.size_usd
            step = self._step(p)
            k = math.floor(p / step)
            prof = acc.profile
            prof[k] = prof.get(k, 0.0) + ev.size_base
        elif t is Liquidation:
            assert isinstance(ev, Liquidation)
            if ev.side == "long":
                acc.ll_usd += ev.size_usd
                acc.ll_base += ev.size_base
            else:
                acc.ls_usd += ev.size_usd
                acc.ls_base += ev.size_base
            acc.nliq += 1
            self._completeness = ev.completeness
        elif t is OpenInterest:
            assert isinstance(ev, OpenInterest)
            if ev.exchange_ts_ms >= acc.oi_ts:
                acc.oi_ts = ev.exchange_ts_ms
                acc.oi_base = ev.oi_base
                acc.oi_usd = ev.oi_usd
        elif t is MarkFunding:
            assert isinstance(ev, MarkFunding)
            m = ev.mark_price
            if m == m:  # not NaN
                if acc.mo != acc.mo:
                    acc.mo = acc.mh = acc.ml = m
                else:
                    if m > acc.mh:
                        acc.mh = m
                    if m < acc.ml:
                        acc.ml = m
                acc.mc = m
            if ev.funding_rate == ev.funding_rate:
                acc.funding = ev.funding_rate

    def _apply_candle(self, acc: _Acc, c: Candle) -> None:
        if acc.n == 0:
            acc.candle = True
            acc.o, acc.h, acc.l, acc.c = c.open, c.high, c.low, c.close
        else:
            acc.h = max(acc.h, c.high)
            acc.l = min(acc.l, c.low)
            acc.c = c.close
        acc.n += c.trades
        if c.taker_buy_base == c.taker_buy_base:
            acc.buy += c.taker_buy_base
            acc.sell += c.volume_base - c.taker_buy_base
        acc.vusd += c.volume_usd

    def _step(self, price: float) -> float:
        step = self.profile_step
        if step is None or step <= 0:
            from . import _core

            step = float(_core.auto_step(price, 0.0)) if price > 0 and math.isfinite(price) else 1.0
            self.profile_step = step
        return step

    def _in_gap(self, ts: int) -> bool:
        """Whether a bar starting at ``ts`` overlaps an ongoing or a recorded outage."""
        end = ts + self.interval_ms
        if self._open_gaps and end > min(self._open_gaps.values()):
            return True
        return any(s < end and e >= ts for s, e in self._windows)

    def _on_gap(self, g: Gap) -> None:
        key = g.channels
        if g.ongoing:
            prev = self._open_gaps.get(key)
            self._open_gaps[key] = g.start_ms if prev is None else min(prev, g.start_ms)
            start, end = g.start_ms, max(g.end_ms, self._watermark)
        else:
            prev = self._open_gaps.pop(key, None)
            start = g.start_ms if prev is None else min(g.start_ms, prev)
            end = g.end_ms
            self._windows.append((start, end))
            horizon = self._next_close
            self._windows = [w for w in self._windows if w[1] >= horizon][-64:]
        iv = self.interval_ms
        for acc in self._open.values():
            if acc.ts + iv > start and (g.ongoing or acc.ts <= end):
                acc.gap = True
        for acc in self._done.values():
            if acc.ts <= end and acc.ts + iv > start and not acc.gap:
                acc.gap = True
                if not acc.dirty:
                    acc.dirty = True
                    self._dirty += 1

    def _collect(self, watermark: int) -> list[Bar]:
        self._watermark = watermark
        out: list[Bar] = []
        # Revisions of already-emitted bars first (older data first).
        if self._dirty:
            self._dirty = 0
            for acc in self._done.values():
                if acc.dirty:
                    acc.dirty = False
                    acc.revision += 1
                    out.append(self._bar(acc, recompute_carry=False))
        if self._next_close < 0:
            return out
        iv = self.interval_ms
        while self._next_close + iv + self.grace_ms <= watermark:
            ts = self._next_close
            cur = self._open.pop(ts) if ts in self._open else None
            if cur is None:
                if not self.emit_empty:
                    self._next_close += iv
                    if not self._open:
                        # Jump over a long silence instead of iterating every interval.
                        nxt = self._bucket(watermark - self.grace_ms) - iv
                        if nxt > self._next_close:
                            self._next_close = nxt
                    continue
                cur = _Acc(ts)
                cur.gap = self._in_gap(ts)
            bar = self._bar(cur, recompute_carry=True)
            # Before the first price there is nothing a model can use: not emitted.
            if bar.close == bar.close or bar.liq_count:
                out.append(bar)
            cur.emitted = True
            self._done[ts] = cur
            while len(self._done) > self.history:
                _, old = self._done.popitem(last=False)
                if old.dirty:
                    self._dirty -= 1
            self._next_close += iv
        return out

    def _bar(self, acc: _Acc, *, recompute_carry: bool) -> Bar:
        if recompute_carry:
            # Fill what the bar lacks from the carried state, then update the carry.
            if acc.oi_ts < 0:
                acc.oi_usd, acc.oi_base = self._carry_oi_usd, self._carry_oi_base
            else:
                self._carry_oi_usd, self._carry_oi_base = acc.oi_usd, acc.oi_base
            if acc.mc == acc.mc:
                self._carry_mark = acc.mc
            if acc.funding == acc.funding:
                self._carry_funding = acc.funding
            else:
                acc.funding = self._carry_funding
            if acc.mc != acc.mc:
                acc.mc = self._carry_mark
        if acc.n > 0 or acc.candle:
            o, h, low, c = acc.o, acc.h, acc.l, acc.c
        elif acc.mo == acc.mo:
            o, h, low, c = acc.mo, acc.mh, acc.ml, acc.mc
        else:
            o = h = low = c = self._carry_close
        if recompute_carry and c == c:
            self._carry_close = c
        step = self.profile_step or 0.0
        profile = tuple((k * step, v) for k, v in sorted(acc.profile.items()))
        return Bar(
            self.venue, self.symbol, acc.ts, self.interval_ms, o, h, low, c,
            acc.oi_usd, acc.oi_base, acc.buy, acc.sell, acc.buy - acc.sell, acc.vusd, acc.n,
            acc.ll_usd, acc.ls_usd, acc.ll_base, acc.ls_base, acc.nliq, acc.mc, acc.funding,
            profile, step, acc.gap, self._completeness, acc.revision,
        )


class BarSet:
    """One :class:`BarBuilder` per venue/symbol, created on first sight, same settings."""

    def __init__(
        self,
        interval_ms: int = 300_000,
        *,
        grace_ms: int = 2_000,
        profile_steps: dict[tuple[str, str], float] | None = None,
        on_bar: Callable[[Bar], None] | None = None,
        history: int = 12,
    ) -> None:
        self.interval_ms = interval_ms
        self.grace_ms = grace_ms
        self.history = history
        self._steps = dict(profile_steps or {})
        self.builders: dict[tuple[str, str], BarBuilder] = {}
        self.on_bar = on_bar
        self._sweep_at = 0

    def builder(self, venue: str, symbol: str) -> BarBuilder:
        key = (venue, symbol)
        b = self.builders.get(key)
        if b is None:
            b = BarBuilder(
                venue, symbol, self.interval_ms, grace_ms=self.grace_ms,
                profile_step=self._steps.get(key), history=self.history,
            )
            self.builders[key] = b
        return b

    def add(self, ev: Event | Candle) -> list[Bar]:
        bars = self.builder(ev.venue, ev.symbol).add(ev)
        # Other builders learn the time too, so a quiet symbol closes its bars as the feed
        # moves. Swept at most every 250 ms of receive time: the cost stays off the hot path
        # and the result still depends on the data only (deterministic in replay).
        if not isinstance(ev, Candle) and ev.recv_ts_ms >= self._sweep_at:
            wm = ev.recv_ts_ms
            self._sweep_at = wm + 250
            for b in self.builders.values():
                if b.watermark < wm:
                    bars.extend(b.advance(wm))
        return self._emit(bars)

    def add_many(self, events: Iterable[Event | Candle]) -> list[Bar]:
        out: list[Bar] = []
        for ev in events:
            out.extend(self.add(ev))
        return out

    def advance(self, now_ms: int) -> list[Bar]:
        out: list[Bar] = []
        for b in self.builders.values():
            out.extend(b.advance(now_ms))
        return self._emit(out)

    def flush(self) -> list[Bar]:
        out: list[Bar] = []
        for b in self.builders.values():
            out.extend(b.flush())
        return self._emit(out)

    def _emit(self, bars: list[Bar]) -> list[Bar]:
        if self.on_bar is not None:
            for bar in bars:
                self.on_bar(bar)
        return bars
