"""The running service behind the HTTP app: hub consumer, per-symbol engines, the store,
the response cache and the stream fan-out, plus the background loops (checkpoints,
realized-liquidation writes, retention).

Data path (the same for live venues and the demo)::

    connectors → Hub ─ "bar" ────────→ model.step → column → store → cache refresh → WebSocket
                    ├ "liquidation" ──→ store (events) + next stream frame
                    ├ "gap" ──────────→ store (gaps, per-venue completeness)
                    └ any event ──────→ per-venue freshness (/readyz, staleness metric)

Bars re-emitted with a higher ``revision`` (late data) update the stored bar — realized
liquidation totals, gap flag — but are not stepped again: the model is sequential and the
bar's effect on the book is already taken (the correction is logged as such).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from ..errors import LiqfastError
from ..events import Bar, Gap, Liquidation
from ..exchanges.base import native_symbol
from ..exchanges.hub import Hub
from ..model import WINDOWS
from .config import ServerConfig
from .engine import BASE_BARS_MS, EVENTS_MS, HeatResult, MapResult, SymbolEngine, bar_row
from .params import Limits, Query, leverage_label
from .render import (
    JSON,
    Rendered,
    RenderCache,
    heatmap_body,
    levels_body,
    liquidations_body,
    make_rendered,
    map_body,
)
from .schema import StreamFrame
from .store import BarRow, LiqRow, Store
from .stream import StreamHub

__all__ = ["Service"]

log = logging.getLogger("liqfast.server")

_frame_encoder = msgspec.json.Encoder()


class Service:
    """See the module docstring. Create, :meth:`start` (restores from the store), feed bars
    through :attr:`hub`, :meth:`close`."""

    def __init__(self, config: ServerConfig, store: Store, hub: Hub | None = None) -> None:
        self.config = config
        self.store = store
        self.hub = hub or Hub()
        self.limits = Limits(venues=tuple(config.venues), symbols=tuple(config.symbols), default_bins=config.default_bins,
                             max_bins=config.max_bins, max_liquidations=config.max_liquidations)
        cache_bytes = config.column_cache_mb << 20
        self.engines: dict[str, SymbolEngine] = {
            s: SymbolEngine(s, config.venues, store, params=config.params, scale=config.scale, bar_ms=config.bar_ms,
                            cache_bytes=cache_bytes // max(1, len(config.symbols)))
            for s in config.symbols
        }
        #: (venue, native or coin symbol) -> coin
        self.symbol_of: dict[tuple[str, str], str] = {}
        for s in config.symbols:
            for v in config.venues:
                self.symbol_of[(v, s)] = s
                with contextlib.suppress(Exception):
                    self.symbol_of[(v, native_symbol(v, s))] = s
        self.cache = RenderCache(max_bytes=config.response_cache_mb << 20)
        self.streams = StreamHub(max_clients=config.ws_max_clients, max_skipped=config.ws_max_skipped,
                                 send_timeout=config.ws_send_timeout_s)
        #: venue -> wall time (s) of its last event
        self.seen: dict[str, float] = {}
        #: (symbol, venue) -> completeness code of its liquidation feed
        self.completeness: dict[tuple[str, str], str] = {}
        self._liq_buffer: dict[str, list[LiqRow]] = {s: [] for s in config.symbols}
        self._recent_liqs: dict[str, deque[LiqRow]] = {s: deque(maxlen=2_000) for s in config.symbols}
        self._frame_liqs: dict[str, list[LiqRow]] = {s: [] for s in config.symbols}
        self._bar_buffer: dict[str, list[BarRow]] = {s: [] for s in config.symbols}
        self._due: dict[str, int] = {}
        self._numeric: dict[Any, Any] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._sub: Any = None
        self._unsub: Callable[[], None] | None = None
        self.started = False
        self.warming = False
        self.bars_stepped = 0
        #: USD of modelled positions removed by realized-liquidation evidence.
        self.evidence_usd = 0.0
        self.bars_revised = 0
        self.bars_late = 0
        self.updates = 0
        self.last_update_s = 0.0
        #: called after each grid update with (symbol, seconds it took)
        self.on_update: list[Callable[[str, float], None]] = []
        #: the ingestion object (for stats), set by the feed
        self.ingest: Any = None
        self.ingest_stats: Callable[[], dict[str, Any]] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Restore every symbol from the store and subscribe to the hub."""
        for s, eng in self.engines.items():
            n = eng.restore()
            if n >= 0:
                log.info("%s: restored the model from the store (%d bar(s) re-stepped after the checkpoint, "
                         "%d heatmap column(s))", s, n, len(eng.times))
        self._sub = self.hub.subscribe(kinds={"bar", "liquidation", "gap"}, maxsize=100_000)
        self._unsub = self.hub.on(self._seen)
        self.started = True

    def _seen(self, item: Any) -> None:
        v = getattr(item, "venue", None)
        if isinstance(v, str) and not isinstance(item, Gap):
            self.seen[v] = time.time()

    async def consume(self) -> None:
        """Process hub items until cancelled."""
        sub = self._sub
        while True:
            try:
                item = await sub.get()
            except StopAsyncIteration:
                return
            try:
                self.handle(item)
            except Exception:  # noqa: BLE001 - one bad item must not stop the service
                log.exception("failed to process %r", type(item).__name__)

    def handle(self, item: Any) -> None:
        if isinstance(item, Bar):
            self.on_bar(item)
        elif isinstance(item, Liquidation):
            self.on_liquidation(item)
        elif isinstance(item, Gap):
            self.on_gap(item)

    def coin(self, venue: str, symbol: str) -> str | None:
        if venue not in self.config.venues:
            return None
        return self.symbol_of.get((venue, symbol))

    def on_bar(self, bar: Bar) -> None:
        sym = self.coin(bar.venue, bar.symbol)
        if sym is None:
            return
        eng = self.engines[sym]
        row = bar_row(bar)
        self._bar_buffer[sym].append(row)
        if bar.revision > 0 or bar.ts_ms <= eng.last_ts.get(bar.venue, -1):
            if bar.revision > 0:
                self.bars_revised += 1
                log.debug("%s %s bar %d revised (rev %d): stored, not re-stepped", bar.venue, sym, bar.ts_ms, bar.revision)
            else:
                self.bars_late += 1
            self._write_bars(sym)
            return
        if bar.interval_ms != self.config.bar_ms:
            log.warning("%s: bar interval %d ms differs from the configured %d ms; ignored", bar.venue, bar.interval_ms,
                        self.config.bar_ms)
            return
        prof = list(bar.volume_profile) if bar.volume_profile else None
        if not eng.apply_bar(bar.venue, bar.ts_ms, bar.open, bar.high, bar.low, bar.close, bar.oi_close_usd,
                             bar.taker_net_base, prof):
            return
        self.bars_stepped += 1
        self._due[sym] = max(self._due.get(sym, 0), bar.ts_ms)
        # Wait (at most venue_wait_s) for the other venues' bar of the same time: one update per bar time.
        waiting = [v for v in eng.venues if v in eng.last_ts and eng.last_ts[v] < bar.ts_ms]
        if not waiting:
            self.update(sym)
        elif sym not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[sym] = loop.call_later(self.config.venue_wait_s, self.update, sym)

    def _fresh(self, venue: str) -> bool:
        t = self.seen.get(venue)
        return t is not None and time.time() - t < self.config.stale_after_s

    def on_liquidation(self, ev: Liquidation) -> None:
        sym = self.coin(ev.venue, ev.symbol)
        if sym is None:
            return
        row: LiqRow = (ev.venue, int(ev.exchange_ts_ms), 1 if ev.side == "long" else -1, float(ev.price), float(ev.size_usd))
        self._liq_buffer[sym].append(row)
        self._recent_liqs[sym].append(row)
        fl = self._frame_liqs[sym]
        if len(fl) < 1_000:
            fl.append(row)
        self.completeness[(sym, ev.venue)] = ev.completeness
        tol = self.config.evidence_tolerance
        eng = self.engines[sym]
        if tol > 0 and ev.venue in eng.venues and ev.price > 0 and ev.size_usd > 0:
            # The position is gone: take it out of the estimated book now, so the map does not
            # keep showing it until the bar closes (and no sweep counts it twice).
            try:
                self.evidence_usd += eng.model.evidence(ev.venue, ev.side, float(ev.price), float(ev.size_usd), tolerance=tol)
            except LiqfastError as e:
                log.debug("evidence of %s %s ignored: %s", ev.venue, ev.side, e)

    def on_gap(self, g: Gap) -> None:
        sym = self.coin(g.venue, g.symbol)
        if sym is None or g.ongoing:
            return
        self.store.put_gap(sym, g.venue, int(g.start_ms), int(g.end_ms), g.reason)

    def _write_bars(self, sym: str) -> None:
        rows, self._bar_buffer[sym] = self._bar_buffer[sym], []
        self.store.put_bars(sym, rows)

    def update(self, sym: str) -> None:
        """Snapshot the model of ``sym`` into a new column, refresh the hot responses, push."""
        t0 = time.perf_counter()
        timer = self._timers.pop(sym, None)
        if timer is not None:
            timer.cancel()
        ts = self._due.pop(sym, None)
        if ts is None:
            return
        eng = self.engines[sym]
        self._write_bars(sym)
        eng.commit_column(ts)
        self.refresh(sym)
        dt = time.perf_counter() - t0
        self.updates += 1
        self.last_update_s = dt
        for cb in self.on_update:
            cb(sym, dt)

    def refresh(self, sym: str) -> None:
        """Push stream frames first (numeric results only), then re-render the hot response
        bodies once the writers have sent the frames."""
        keep: set[Any] = set()
        for q in self.streams.queries(sym):
            keep.add(("heatmap", msgspec.structs.replace(q, format="json")))
            keep.add(("map", self._map_query(q)))
        liqs, self._frame_liqs[sym] = self._frame_liqs[sym], []
        self.streams.publish(sym, lambda q: self.frame(q, liqs))
        try:
            asyncio.get_running_loop().call_soon(lambda: self.cache.refresh(sym, keep=keep))
        except RuntimeError:  # no loop (offline tools): render now
            self.cache.refresh(sym, keep=keep)

    # -- rendering ----------------------------------------------------------------------------

    def version(self, sym: str) -> int:
        return self.engines[sym].version

    def _map_query(self, q: Query) -> Query:
        return Query(symbol=q.symbol, venue=q.venue, side=q.side, lev=q.lev, bins=q.bins, span=q.span)

    def heat_numeric(self, q: Query) -> HeatResult:
        """The heatmap window as arrays (shared by every format and the stream frames)."""
        eng = self.engines[q.symbol]
        key = ("heat#", msgspec.structs.replace(q, format="json"))
        h = self._numeric.get(key)
        if h is None or h.version != eng.version:
            h = eng.heatmap(q)
            self._numeric[key] = h
            if len(self._numeric) > 256:
                self._numeric.pop(next(iter(self._numeric)))
        return h

    def map_numeric(self, q: Query) -> MapResult:
        eng = self.engines[q.symbol]
        key = ("map#", self._map_query(q))
        m = self._numeric.get(key)
        if m is None or m.version != eng.version:
            m = eng.live_map(self._map_query(q))
            self._numeric[key] = m
        return m

    def heatmap_result(self, q: Query) -> Rendered:
        eng = self.engines[q.symbol]

        def make() -> Rendered:
            h = self.heat_numeric(q)
            body, ctype, headers = heatmap_body(h, q)
            return make_rendered(body, ctype, h.version, compress=ctype == JSON, headers=headers, result=h)

        return self.cache.get_or_render(("heatmap", q), q.symbol, eng.version, make)

    def map_result(self, q: Query) -> Rendered:
        eng = self.engines[q.symbol]
        q = self._map_query(q)

        def make() -> Rendered:
            m = self.map_numeric(q)
            return make_rendered(map_body(m, q), JSON, m.version, compress=True, result=m)

        return self.cache.get_or_render(("map", q), q.symbol, eng.version, make)

    def levels_result(self, q: Query) -> Rendered:
        eng = self.engines[q.symbol]
        q = Query(symbol=q.symbol, venue=q.venue, side=q.side, lev=q.lev, span=q.span, n=q.n, bins=self.limits.default_bins)

        def make() -> Rendered:
            m = eng.live_map(q)
            return make_rendered(levels_body(m, q), JSON, m.version, compress=True)

        return self.cache.get_or_render(("levels", q), q.symbol, eng.version, make)

    def liquidations_result(self, q: Query) -> Rendered:
        eng = self.engines[q.symbol]
        q = Query(symbol=q.symbol, venue=q.venue, window=q.window, end=q.end, limit=q.limit, bins=self.limits.min_bins)

        def make() -> Rendered:
            self.flush_liquidations(q.symbol)
            h = eng.heatmap(q)
            venues = list(eng.venues) if q.venue == "all" else [q.venue]
            start = int(h.x[0]) if len(h.x) else 0
            events = self.store.liquidations(q.symbol, venues, start, h.end_ms + eng.bar_ms, q.limit)
            gaps = self.store.gaps(q.symbol, venues, start, h.end_ms + eng.bar_ms)
            comp = {v: c for (s, v), c in self.completeness.items() if s == q.symbol}
            body = liquidations_body(q.symbol, q, h, events, comp, gaps, venues)
            return make_rendered(body, JSON, h.version, compress=True)

        return self.cache.get_or_render(("liquidations", q), q.symbol, eng.version, make)

    def frame(self, q: Query, liqs: list[LiqRow]) -> bytes | None:
        """The stream frame of a subscription after an update."""
        h = self.heat_numeric(q)
        m = self.map_numeric(q)
        if not len(h.x):
            return None
        c = h.candles[-1]
        candle: list[float | None] = [float(c[0] // 1000)]
        candle.extend(None if not math.isfinite(v) else float(v) for v in c[1:])
        liq = [(t, v, "long" if s > 0 else "short", p, round(u, 2)) for v, t, s, p, u in liqs
               if q.venue in ("all", v)]
        f = StreamFrame(
            symbol=q.symbol, venue=q.venue, window=q.window, side=q.side, leverage=leverage_label(q.lev),
            version=h.version, resolution_ms=h.resolution_ms, x0_ms=int(h.x[0]), x_ms=int(h.x[-1]),
            y_lo=h.y_lo, y_step=h.y_step, y_n=h.k, long=np.round(h.long[-1], 0).tolist(),
            short=np.round(h.short[-1], 0).tolist(), candle=candle,
            price=m.price if math.isfinite(m.price) else 0.0, map_y_lo=m.y_lo, map_y_step=m.y_step,
            map_long=np.round(m.long, 0).tolist(), map_short=np.round(m.short, 0).tolist(), liquidations=liq,
            sent_ms=int(time.time() * 1000),
        )
        return _frame_encoder.encode(f)

    # -- background work ----------------------------------------------------------------------

    def flush_liquidations(self, sym: str | None = None) -> None:
        for s in [sym] if sym else list(self._liq_buffer):
            rows, self._liq_buffer[s] = self._liq_buffer[s], []
            if rows:
                self.store.put_liquidations(s, rows)

    async def checkpoint(self) -> None:
        """Write a model checkpoint of every symbol (serialised here, compressed and written
        in a worker thread)."""
        for sym, eng in self.engines.items():
            if not eng.last_ts:
                continue
            ts, data = eng.checkpoint_bytes()
            await asyncio.to_thread(self.store.put_checkpoint, sym, ts, data)

    async def checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_s)
            try:
                await self.checkpoint()
            except Exception:  # noqa: BLE001
                log.exception("checkpoint failed")

    async def maintenance_loop(self, every_s: float = 1.0, thin_every_s: float = 600.0) -> None:
        last_thin = time.monotonic()
        while True:
            await asyncio.sleep(every_s)
            try:
                self.flush_liquidations()
                if time.monotonic() - last_thin >= thin_every_s:
                    last_thin = time.monotonic()
                    await self.retention()
            except Exception:  # noqa: BLE001
                log.exception("maintenance failed")

    async def retention(self) -> None:
        newest = 0
        for eng in self.engines.values():
            await asyncio.to_thread(eng.thin)
            if len(eng.times):
                newest = max(newest, int(eng.times[-1]))
        if newest:
            await asyncio.to_thread(self.store.prune, newest - BASE_BARS_MS, newest - EVENTS_MS)

    async def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        for sym in list(self._due):
            self.update(sym)
        for sym in self.engines:
            self._write_bars(sym)
        self.flush_liquidations()
        with contextlib.suppress(Exception):
            await self.checkpoint()
        if self._unsub is not None:
            self._unsub()
        if self._sub is not None:
            self._sub.close()

    # -- health -------------------------------------------------------------------------------

    def staleness(self) -> dict[str, float | None]:
        now = time.time()
        return {v: (None if v not in self.seen else round(now - self.seen[v], 3)) for v in self.config.venues}

    def stale_venues(self) -> dict[str, str]:
        out: dict[str, str] = {}
        limit = self.config.stale_after_s
        for v, age in self.staleness().items():
            if age is None:
                out[v] = "no event received yet"
            elif age > limit:
                out[v] = f"no event for {age:.0f} s (limit {limit:g} s)"
        if self.warming:
            out["*"] = "simulating the demo history"
        return out

    def windows(self) -> list[str]:
        return list(WINDOWS)
