"""The serving engine: one :class:`~liqfast.model.LiveModel` per symbol fed bar by bar,
heatmap columns kept in the store, and the numeric side of every endpoint (windows,
re-binning, candles, live maps, levels).

After each bar the model's map is snapshotted as a *column* on the symbol's price lattice
(per venue, per leverage band, per side), written to the store and kept in a bounded
in-memory LRU. A heatmap window is then the last column of each resolution interval in the
window (the same semantics as :func:`liqfast.model.replay`), summed over the requested
venues / bands / sides and re-binned onto the output grid — numpy work of a few milliseconds
per window, done once per update (see :mod:`liqfast.server.render` for the caching).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from .. import _core
from ..errors import CheckpointError, LiqfastError
from ..maps import cumulative_from
from ..model import WINDOWS, LiveModel, ModelParams, auto_resolution
from .params import BANDS, Query
from .store import HOUR_MS, BarRow, Column, Store, keep_times

__all__ = ["HeatResult", "MapResult", "SymbolEngine", "retention_levels"]

log = logging.getLogger("liqfast.server")

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: Columns cover the price ± this fraction (the widest liquidation levels of a 5x position
#: are ~20 % away; beyond that the map is negligible).
COLUMN_SPAN = 0.30
#: Base bars are kept this long; windows reaching further use hourly aggregates.
BASE_BARS_MS = 8 * 86_400_000
#: Realized liquidation events are kept this long (the hourly totals stay).
EVENTS_MS = 8 * 86_400_000


def retention_levels(bar_ms: int) -> list[tuple[int, int]]:
    """(resolution, reach) per heatmap window: which columns the windows need."""
    return [(auto_resolution(w, bar_ms), w) for w in WINDOWS.values()]


@dataclass(frozen=True)
class HeatResult:
    """A heatmap window ready to encode: ``long[t, k]``/``short[t, k]`` USD on buckets
    ``[y_lo + k·y_step, y_lo + (k+1)·y_step)`` at the end of column t, which covers
    ``[x[t], x[t] + resolution_ms)``; candles per column (ts, o, h, l, c, volume USD, NaN
    without bars); realized liquidation totals per column; ``missing[t]`` when no stored
    state falls in the column (scrubbed windows older than the fine retention)."""

    symbol: str
    x: npt.NDArray[np.int64]
    y_lo: float
    y_step: float
    long: F32
    short: F32
    candles: F64
    liq_long: F64
    liq_short: F64
    missing: npt.NDArray[np.bool_]
    resolution_ms: int
    end_ms: int
    live: bool
    version: int

    @property
    def k(self) -> int:
        return int(self.long.shape[1])

    def y_axis(self) -> F64:
        return self.y_lo + self.y_step * np.arange(self.k, dtype=np.float64)


@dataclass(frozen=True)
class MapResult:
    """The live 1-D map on ``grid`` with cumulative curves from ``price``."""

    symbol: str
    ts_ms: int
    price: float
    y_lo: float
    y_step: float
    long: F64
    short: F64
    long_cumulative: F64
    short_cumulative: F64
    version: int

    def prices(self) -> F64:
        return self.y_lo + self.y_step * np.arange(len(self.long), dtype=np.float64)


def lattice_step(price: float) -> float:
    """The storage lattice step of a symbol: a round ~0.1 % of price."""
    return float(_core.auto_step(2.0 * price, 0.0))


class _CheckpointHead(msgspec.Struct):
    last_ts: dict[str, int]
    last_close: dict[str, float]


class SymbolEngine:
    """State of one symbol: the model, its bars and columns (see the module docstring)."""

    def __init__(
        self,
        symbol: str,
        venues: Sequence[str],
        store: Store,
        *,
        params: ModelParams | None = None,
        scale: Mapping[str, float] | None = None,
        bar_ms: int = 300_000,
        cache_bytes: int = 256 << 20,
    ) -> None:
        self.symbol = symbol
        self.venues = list(venues)
        self.store = store
        self.params = params or ModelParams()
        self.scale = {v: float((scale or {}).get(v, 1.0)) for v in self.venues}
        self.bar_ms = int(bar_ms)
        self.model = LiveModel(self.venues, params=self.params, symbol=symbol, bar_ms=self.bar_ms, scale=self.scale)
        self.last_ts: dict[str, int] = {}
        self.last_close: dict[str, float] = {}
        self.last_oi: dict[str, float] = {}
        self.times = np.zeros(0, np.int64)
        self.latest: Column | None = None
        self.version = 0
        self.updated_ms = 0
        self.step: float | None = None
        s = store.meta_get(f"lattice_step:{symbol}")
        if s is not None:
            self.step = float(s)
        self._lru: OrderedDict[int, Column] = OrderedDict()
        self._lru_bytes = 0
        self._cache_bytes = cache_bytes
        self._levels = retention_levels(self.bar_ms)
        self._pending_ts: int | None = None

    # -- model --------------------------------------------------------------------------------

    def ensure_lattice(self, price: float) -> float:
        if self.step is None:
            self.step = lattice_step(price)
            self.store.meta_set(f"lattice_step:{self.symbol}", repr(self.step))
        return self.step

    def apply_bar(self, venue: str, ts: int, o: float, h: float, low: float, c: float, oi_usd: float,
                  taker_net: float = math.nan, profile: list[tuple[float, float]] | None = None) -> bool:
        """Step the model with one bar; False (nothing done) for a bar at or before the last
        one of that venue (a duplicate, or already in the restored checkpoint)."""
        if ts <= self.last_ts.get(venue, -1):
            return False
        if not (o > 0 and h > 0 and low > 0 and c > 0):
            return False
        self.model.step(venue, ts, o, h, low, c, oi_usd, taker_net, profile or None)
        self.last_ts[venue] = ts
        self.last_close[venue] = c
        if oi_usd == oi_usd:
            self.last_oi[venue] = oi_usd
        self.ensure_lattice(c)
        return True

    def price(self, venue: str = "all") -> float:
        if venue != "all":
            return self.last_close.get(venue, math.nan)
        for v in self.venues:
            if v in self.last_close:
                return self.last_close[v]
        return math.nan

    def compute_column(self, ts: int) -> Column | None:
        """The model's current maps on the lattice (venues × bands × sides)."""
        p = self.price()
        if not (p > 0) or self.step is None:
            return None
        step = self.step
        k_lo = math.floor(p * (1 - COLUMN_SPAN) / step)
        k_hi = math.ceil(p * (1 + COLUMN_SPAN) / step)
        grid = _core.PriceGrid(k_lo * step, k_hi * step, step)
        n = len(grid)
        data = np.zeros((len(self.venues), len(BANDS), 2, n), dtype=np.float32)
        for vi, v in enumerate(self.venues):
            lg, sh = self.model.map_bands(grid, BANDS, venue=v)
            data[vi, :, 0] = lg
            data[vi, :, 1] = sh
        nz = np.flatnonzero(data.reshape(-1, n).any(axis=0))
        if len(nz):
            a, b = int(nz[0]), int(nz[-1]) + 1
            data = np.ascontiguousarray(data[..., a:b])
            k_lo += a
        else:
            data = data[..., :0]
        return Column(ts, k_lo, data)

    def commit_column(self, ts: int) -> Column | None:
        """Snapshot the model at bar ``ts`` into the store; bumps the version."""
        col = self.compute_column(ts)
        if col is None:
            return None
        self.store.put_column(self.symbol, col)
        self._remember(col)
        if not len(self.times) or ts > self.times[-1]:
            self.times = np.append(self.times, np.int64(ts))
        elif ts not in self.times:
            self.times = np.sort(np.append(self.times, np.int64(ts)))
        self.latest = col if self.latest is None or ts >= self.latest.ts else self.latest
        self.version += 1
        self.updated_ms = int(time.time() * 1000)
        return col

    def _remember(self, col: Column) -> None:
        old = self._lru.pop(col.ts, None)
        if old is not None:
            self._lru_bytes -= old.nbytes
        self._lru[col.ts] = col
        self._lru_bytes += col.nbytes
        while self._lru_bytes > self._cache_bytes and len(self._lru) > 1:
            _, c = self._lru.popitem(last=False)
            self._lru_bytes -= c.nbytes

    def columns(self, ts: Iterable[int]) -> dict[int, Column]:
        want = list(dict.fromkeys(int(t) for t in ts))
        out: dict[int, Column] = {}
        missing: list[int] = []
        for t in want:
            c = self._lru.get(t)
            if c is None:
                missing.append(t)
            else:
                self._lru.move_to_end(t)
                out[t] = c
        if missing:
            got = self.store.get_columns(self.symbol, missing, (len(self.venues), len(BANDS), 2))
            for t, c in got.items():
                self._remember(c)
                out[t] = c
        return out

    # -- checkpoints and restart ----------------------------------------------------------------

    def checkpoint_bytes(self) -> tuple[int, bytes]:
        head = msgspec.json.encode(_CheckpointHead(dict(self.last_ts), dict(self.last_close)))
        ts = max(self.last_ts.values()) if self.last_ts else 0
        return ts, len(head).to_bytes(4, "little") + head + self.model.checkpoint()

    def restore(self) -> int:
        """Load the last checkpoint and re-step the stored bars after it; returns the number
        of bars re-stepped (-1: nothing to restore)."""
        self.times = self.store.column_times(self.symbol)
        if len(self.times):
            got = self.columns([int(self.times[-1])])
            self.latest = got.get(int(self.times[-1]))
        ck = self.store.checkpoint(self.symbol)
        if ck is not None:
            _, data = ck
            try:
                n = int.from_bytes(data[:4], "little")
                head = msgspec.json.decode(data[4:4 + n], type=_CheckpointHead)
                model = LiveModel.restore(data[4 + n:])
                _complete_restored(model)
                if model.venues != self.venues:
                    raise CheckpointError(f"checkpoint venues {model.venues} differ from the configured {self.venues}")
                self.model = model
                self.last_ts = dict(head.last_ts)
                self.last_close = dict(head.last_close)
            except (LiqfastError, msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
                log.warning("%s: cannot restore the model checkpoint (%s); starting a fresh book", self.symbol, e)
                self.model = LiveModel(self.venues, params=self.params, symbol=self.symbol, bar_ms=self.bar_ms,
                                       scale=self.scale)
                self.last_ts, self.last_close = {}, {}
        stepped = 0
        for v in self.venues:
            for row in self.store.bars_after(self.symbol, v, self.last_ts.get(v, -1)):
                _, ts, o, h, low, c, _vol, oi, taker = row[:9]
                if self.apply_bar(v, ts, o, h, low, c, oi, taker):
                    stepped += 1
        if ck is None and stepped == 0:
            return -1
        self.version += 1
        self.updated_ms = int(time.time() * 1000)
        return stepped

    def thin(self) -> int:
        """Drop columns no window needs any more (keeps the newest)."""
        if not len(self.times):
            return 0
        latest = int(self.times[-1])
        keep = keep_times(self.times, self._levels, latest)
        horizon = latest - max(WINDOWS.values()) - 86_400_000
        keep = keep[keep >= horizon]
        older = latest - min(r for r, _ in self._levels)
        dropped = self.store.thin(self.symbol, keep, older)
        self.times = np.unique(np.concatenate([keep, self.times[self.times >= older]]))
        for t in [t for t in self._lru if t < older and t not in set(keep.tolist())]:
            c = self._lru.pop(t)
            self._lru_bytes -= c.nbytes
        return dropped

    # -- queries ------------------------------------------------------------------------------

    def _venue_index(self, venue: str) -> list[int]:
        return list(range(len(self.venues))) if venue == "all" else [self.venues.index(venue)]

    def heatmap(self, q: Query) -> HeatResult:
        window = WINDOWS[q.window]
        res = auto_resolution(window, self.bar_ms)
        latest_end = (int(self.times[-1]) + self.bar_ms) if len(self.times) else int(time.time() * 1000)
        end = latest_end if q.end is None else min(q.end, latest_end)
        live = end >= latest_end
        last_start = ((end - 1) // res) * res
        count = window // res
        x = last_start - res * np.arange(count - 1, -1, -1, dtype=np.int64)
        # The last column at or before each interval's end (forward-filled across thinned history).
        idx = np.searchsorted(self.times, x + res, side="left") - 1
        have = idx >= 0
        col_ts = np.where(have, self.times[np.maximum(idx, 0)], -1)
        # A column older than its interval is the carried state of a thinned stretch: use it
        # unless it is from before the window.
        usable = have & (col_ts >= x[0] - res)
        cols = self.columns(int(t) for t in col_ts[usable])
        # Candles and realized totals.
        venues = self._venue_index(q.venue)
        names = [self.venues[i] for i in venues]
        price_venue = names[0] if q.venue != "all" else self._price_venue()
        hourly = res % HOUR_MS == 0 and window > 7 * 86_400_000
        bars = self.store.bars(self.symbol, list(dict.fromkeys([price_venue, *names])), int(x[0]), int(x[-1] + res), hourly=hourly)
        candles, liq_l, liq_s = _aggregate_bars(bars, x, res, price_venue_index=0, venue_set=names, all_names=list(dict.fromkeys([price_venue, *names])))
        # Output price axis.
        step = self.step or 1.0
        lows = candles[:, 3][np.isfinite(candles[:, 3])]
        highs = candles[:, 2][np.isfinite(candles[:, 2])]
        span = q.span
        if len(lows):
            lo_p, hi_p = float(lows.min()) * (1 - span), float(highs.max()) * (1 + span)
        elif cols:
            ks = [(c.k0, c.k0 + c.n) for c in cols.values()]
            lo_p, hi_p = min(a for a, _ in ks) * step, max(b for _, b in ks) * step
        else:
            p = self.price()
            p = p if p > 0 else 1.0
            lo_p, hi_p = p * (1 - span), p * (1 + span)
        k_lo, k_hi = math.floor(lo_p / step), max(math.ceil(hi_p / step), math.floor(lo_p / step) + 1)
        m = max(1, math.ceil((k_hi - k_lo) / q.bins))
        k_lo = (k_lo // m) * m
        kk = max(1, math.ceil((k_hi - k_lo) / m))
        b0, b1 = q.lev
        # All columns' buckets go through one bincount per side over (row, output bucket)
        # cells: a bincount per column was most of a stream frame's cost (288 for 24 h).
        rows: list[int] = []
        local: list[npt.NDArray[np.int64]] = []
        weights: list[npt.NDArray[np.float64]] = []
        for t in np.flatnonzero(usable):
            c = cols.get(int(col_ts[t]))
            if c is None or c.n == 0:
                continue
            d = c.data[venues] if len(venues) < len(self.venues) else c.data
            rows.append(int(t))
            # Lattice bucket k0 + i is output bucket (k0 + i − k_lo) // m.
            local.append((c.k0 + np.arange(c.n) - k_lo) // m)
            weights.append(d[:, b0:b1].sum(axis=(0, 1), dtype=np.float64))
        long = np.zeros((count, kk), np.float32)
        short = np.zeros((count, kk), np.float32)
        if rows:
            out_bucket = np.concatenate(local)
            row = np.repeat(np.asarray(rows, np.int64), [len(a) for a in local])
            w = np.concatenate(weights, axis=1)
            # (Buckets outside the output range are dropped, not spilled into the next row.)
            ok = (out_bucket >= 0) & (out_bucket < kk)
            cell = row[ok] * kk + out_bucket[ok]
            if q.side in ("both", "long"):
                long = np.bincount(cell, weights=w[0][ok], minlength=count * kk).reshape(count, kk).astype(np.float32)
            if q.side in ("both", "short"):
                short = np.bincount(cell, weights=w[1][ok], minlength=count * kk).reshape(count, kk).astype(np.float32)
        return HeatResult(
            self.symbol, x, k_lo * step, m * step, long, short, candles, liq_l, liq_s, ~usable,
            res, end, live, self.version,
        )

    def _price_venue(self) -> str:
        for v in self.venues:
            if v in self.last_close:
                return v
        return self.venues[0]

    def live_map(self, q: Query) -> MapResult:
        """The live 1-D map around the current price (exact leverage filter)."""
        venue = None if q.venue == "all" else q.venue
        p = self.price(q.venue) if venue else self.price()
        step = self.step
        if not (p > 0) or step is None:
            z = np.zeros(0)
            return MapResult(self.symbol, 0, math.nan, 0.0, 0.0, z, z, z, z, self.version)
        k_lo = math.floor(p * (1 - q.span) / step)
        k_hi = math.ceil(p * (1 + q.span) / step)
        m = max(1, math.ceil((k_hi - k_lo) / q.bins))
        k_lo = (k_lo // m) * m
        kk = max(1, math.ceil((k_hi - k_lo) / m))
        grid = _core.PriceGrid(k_lo * step, (k_lo + kk * m) * step, m * step)
        lo_lev, hi_lev = q.leverage()
        lg, sh = self.model.map(grid, venue=venue, leverage=(lo_lev, hi_lev))
        if q.side == "long":
            sh = np.zeros_like(sh)
        elif q.side == "short":
            lg = np.zeros_like(lg)
        lc, sc = cumulative_from(grid, lg, sh, p)
        ts = max(self.last_ts.values()) if self.last_ts else 0
        return MapResult(self.symbol, ts, p, k_lo * step, m * step, lg, sh, lc, sc, self.version)


def _complete_restored(model: LiveModel) -> None:
    """Work around ``LiveModel.restore`` not rebuilding the realized-liquidation feedback
    state of the model in progress (its ``step`` needs it)."""
    import importlib

    fb = getattr(importlib.import_module("liqfast.model"), "Feedback", None)
    if fb is not None and not hasattr(model, "feedback"):
        setattr(model, "feedback", fb(getattr(model.params, "feedback_half_life_hours", 0.0)))


def _aggregate_bars(bars: Mapping[str, F64], x: npt.NDArray[np.int64], res: int, *, price_venue_index: int,
                    venue_set: Sequence[str], all_names: Sequence[str]) -> tuple[F64, F64, F64]:
    """Candles (ts, o, h, l, c, volume) of the price venue and realized totals of the venue
    set, per heatmap column."""
    count = len(x)
    candles = np.full((count, 6), np.nan)
    candles[:, 0] = x
    liq_l = np.zeros(count)
    liq_s = np.zeros(count)
    if not len(bars["ts"]):
        return candles, liq_l, liq_s
    col = ((bars["ts"] - x[0]) // res).astype(np.int64)
    ok = (col >= 0) & (col < count)
    vi = bars["venue"].astype(np.int64)
    in_set = np.isin(vi, [all_names.index(v) for v in venue_set])
    sel = ok & in_set
    np.add.at(liq_l, col[sel], np.nan_to_num(bars["liq_long"][sel]))
    np.add.at(liq_s, col[sel], np.nan_to_num(bars["liq_short"][sel]))
    vol = np.zeros(count)
    np.add.at(vol, col[sel], np.nan_to_num(bars["volume_usd"][sel]))
    p = ok & (vi == price_venue_index) & np.isfinite(bars["close"])
    if p.any():
        c = col[p]
        o, h, low, cl = bars["open"][p], bars["high"][p], bars["low"][p], bars["close"][p]
        starts = np.r_[True, c[1:] != c[:-1]]
        ends = np.r_[c[1:] != c[:-1], True]
        first = np.flatnonzero(starts)
        cols = c[first]
        candles[cols, 1] = o[first]
        candles[cols, 4] = cl[ends]
        candles[cols, 2] = np.maximum.reduceat(h, first)
        candles[cols, 3] = np.minimum.reduceat(low, first)
        candles[cols, 5] = vol[cols]
    return candles, liq_l, liq_s


def bar_row(bar: Any) -> BarRow:
    """A store row of a :class:`liqfast.events.Bar`."""
    return (bar.venue, int(bar.ts_ms), float(bar.open), float(bar.high), float(bar.low), float(bar.close),
            float(bar.volume_usd), float(bar.oi_close_usd), float(bar.taker_net_base), float(bar.liq_long_usd),
            float(bar.liq_short_usd), int(bar.liq_count), bool(bar.gap), str(bar.liq_completeness), int(bar.revision))
