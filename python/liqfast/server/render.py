"""Encoding (JSON, .npy, .npz, Arrow IPC) and the response cache.

Every response body is encoded once per (route, query, model version) and kept as bytes
together with its gzip form and a strong ETag (a hash of the body), so a GET of a cached
window is a dict lookup. After each model update the server re-renders the *hot* keys (those
requested or streamed recently) before anyone asks, and forgets the rest."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from ..events import COMPLETENESS_NOTES
from .engine import HeatResult, MapResult
from .params import Query, leverage_label
from .schema import (
    HeatmapData,
    HeatmapResponse,
    Level,
    LevelsData,
    LevelsResponse,
    LiquidationsData,
    LiquidationsResponse,
    MapData,
    MapResponse,
    VenueCompleteness,
)

__all__ = ["Rendered", "RenderCache", "arrow_available", "heatmap_body", "levels_of", "map_body"]

JSON = "application/json"
NPY = "application/x-npy"
NPZ = "application/x-npz"
ARROW = "application/vnd.apache.arrow.stream"

_encoder = msgspec.json.Encoder()
#: Feeds that undercount by construction.
LOWER_BOUND = frozenset({"snapshot_1s", "partial", "aggregated", "none", ""})


@dataclass
class Rendered:
    """An encoded response."""

    body: bytes
    content_type: str
    etag: str
    version: int
    gz: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    used: float = 0.0
    #: The numeric result behind it (stream frames are cut from heatmaps).
    result: Any = None


def make_rendered(body: bytes, content_type: str, version: int, *, compress: bool, headers: dict[str, str] | None = None,
                  result: Any = None) -> Rendered:
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    gz = gzip.compress(body, 1, mtime=0) if compress and len(body) > 512 else None
    return Rendered(body, content_type, etag, version, gz, headers or {}, time.monotonic(), result)


def _f(x: float) -> str:
    return "" if not math.isfinite(x) else repr(round(float(x), 8))


def heatmap_json(h: HeatResult, q: Query) -> bytes:
    total = h.long.astype(np.float64) + h.short
    xs, ys = np.nonzero(total >= 1.0)
    vals = np.round(total[xs, ys])
    triples = np.stack([xs, ys, vals.astype(np.int64)], axis=1).tolist()
    candles = [
        (int(c[0] // 1000), _f(c[1]), _f(c[2]), _f(c[3]), _f(c[4]), _f(c[5]))
        for c in h.candles if math.isfinite(c[4])
    ]
    data = HeatmapData(
        symbol=h.symbol, venue=q.venue, window=q.window, side=q.side, leverage=leverage_label(q.lev),
        resolution_ms=h.resolution_ms, x_axis=h.x.tolist(), y_axis=np.round(h.y_axis(), 8).tolist(), y_step=h.y_step,
        liquidation_leverage_data=triples, price_candlesticks=candles,
        max_usd=float(total.max()) if total.size else 0.0, missing=np.flatnonzero(h.missing).tolist(),
        live=h.live, end_ms=h.end_ms, version=h.version,
    )
    return _encoder.encode(HeatmapResponse("0", "success", data))


def heatmap_axes_headers(h: HeatResult, q: Query) -> dict[str, str]:
    return {
        "X-Liqfast-Layout": "side,time,price" if q.side == "both" else "time,price",
        "X-Liqfast-Sides": "long,short" if q.side == "both" else q.side,
        "X-Liqfast-X0-Ms": str(int(h.x[0])) if len(h.x) else "0",
        "X-Liqfast-Resolution-Ms": str(h.resolution_ms),
        "X-Liqfast-Y-Lo": repr(h.y_lo),
        "X-Liqfast-Y-Step": repr(h.y_step),
        "X-Liqfast-Units": "USD",
        "X-Liqfast-Version": str(h.version),
    }


def _dense(h: HeatResult, q: Query) -> np.ndarray:
    if q.side == "long":
        return h.long
    if q.side == "short":
        return h.short
    return np.stack([h.long, h.short])


def heatmap_npy(h: HeatResult, q: Query) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(_dense(h, q), dtype="<f4"), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def heatmap_npz(h: HeatResult, q: Query) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf, long=h.long.astype("<f4"), short=h.short.astype("<f4"), x_axis=h.x.astype("<i8"),
        y_axis=h.y_axis().astype("<f8"), candles=h.candles.astype("<f8"), missing=h.missing,
        resolution_ms=np.int64(h.resolution_ms), version=np.int64(h.version),
    )
    return buf.getvalue()


def arrow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def heatmap_arrow(h: HeatResult, q: Query) -> bytes:
    """Long-format table of the non-zero cells: ts (timestamp ms), price, long_usd, short_usd."""
    import importlib

    pa: Any = importlib.import_module("pyarrow")
    total = h.long + h.short
    xs, ys = np.nonzero(total > 0)
    table = pa.table({
        "ts": pa.array(h.x[xs].astype("datetime64[ms]")),
        "price": pa.array(h.y_lo + h.y_step * ys.astype(np.float64)),
        "long_usd": pa.array(h.long[xs, ys]),
        "short_usd": pa.array(h.short[xs, ys]),
    })
    meta = {b"resolution_ms": str(h.resolution_ms).encode(), b"y_step": repr(h.y_step).encode(),
            b"symbol": h.symbol.encode(), b"units": b"USD", b"version": str(h.version).encode()}
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def heatmap_body(h: HeatResult, q: Query) -> tuple[bytes, str, dict[str, str]]:
    if q.format == "json":
        return heatmap_json(h, q), JSON, {}
    if q.format == "npy":
        return heatmap_npy(h, q), NPY, heatmap_axes_headers(h, q)
    if q.format == "npz":
        return heatmap_npz(h, q), NPZ, heatmap_axes_headers(h, q)
    return heatmap_arrow(h, q), ARROW, heatmap_axes_headers(h, q)


def _r(a: np.ndarray) -> list[float]:
    out: list[float] = np.round(a, 2).tolist()
    return out


def map_body(m: MapResult, q: Query) -> bytes:
    data = MapData(
        symbol=m.symbol, venue=q.venue, side=q.side, leverage=leverage_label(q.lev), ts_ms=m.ts_ms,
        price=m.price if math.isfinite(m.price) else 0.0, y_step=m.y_step, prices=np.round(m.prices(), 8).tolist(),
        long=_r(m.long), short=_r(m.short), long_cumulative=_r(m.long_cumulative), short_cumulative=_r(m.short_cumulative),
        total_long_usd=float(m.long.sum()), total_short_usd=float(m.short.sum()), version=m.version,
    )
    return _encoder.encode(MapResponse("0", "success", data))


def levels_of(m: MapResult, q: Query) -> list[Level]:
    """The ``q.n`` largest clusters: peaks of the 3-bucket smoothed map, each with the USD
    within ±2 buckets, non-overlapping, largest first."""
    out: list[Level] = []
    if not len(m.long) or not math.isfinite(m.price):
        return out
    prices = m.prices()
    cands: list[tuple[float, str, int]] = []
    for side, arr in (("long", m.long), ("short", m.short)):
        if q.side not in ("both", side) or not arr.any():
            continue
        pad = np.r_[0.0, 0.0, arr, 0.0, 0.0]
        win = np.convolve(pad, np.ones(5), mode="valid")
        for i in np.argsort(win)[::-1][: q.n * 8]:
            if win[i] <= 0:
                break
            cands.append((float(win[i]), side, int(i)))
    cands.sort(reverse=True)
    taken: dict[str, list[int]] = {"long": [], "short": []}
    for usd, side, i in cands:
        if any(abs(i - j) <= 4 for j in taken[side]):
            continue
        taken[side].append(i)
        lo, hi = max(i - 2, 0), min(i + 2, len(prices) - 1)
        centre = float(prices[i] + m.y_step / 2)
        cum = float(m.long_cumulative[i] if side == "long" else m.short_cumulative[i])
        out.append(Level(side=side, price=round(centre, 8), price_low=float(prices[lo]), price_high=float(prices[hi] + m.y_step),
                         usd=round(usd, 2), distance_pct=round((centre / m.price - 1) * 100, 4), cumulative_usd=round(cum, 2)))
        if len(out) >= q.n:
            break
    return out


def levels_body(m: MapResult, q: Query) -> bytes:
    data = LevelsData(symbol=m.symbol, venue=q.venue, side=q.side, leverage=leverage_label(q.lev), ts_ms=m.ts_ms,
                      price=m.price if math.isfinite(m.price) else 0.0, levels=levels_of(m, q), version=m.version)
    return _encoder.encode(LevelsResponse("0", "success", data))


def liquidations_body(symbol: str, q: Query, h: HeatResult, events: list[tuple[str, int, int, float, float]],
                      completeness: dict[str, str], gaps: list[tuple[str, int, int, str]], venues: list[str]) -> bytes:
    per: dict[str, VenueCompleteness] = {}
    for v in venues:
        code = completeness.get(v, "")
        note = COMPLETENESS_NOTES.get(code, "no realized liquidation seen from this venue yet" if not code else code)
        per[v] = VenueCompleteness(completeness=code or "unknown", note=note, lower_bound=code in LOWER_BOUND,
                                   gaps=[(a, b, r) for gv, a, b, r in gaps if gv == v])
    data = LiquidationsData(
        symbol=symbol, venue=q.venue, window=q.window, start_ms=int(h.x[0]) if len(h.x) else 0, end_ms=h.end_ms,
        resolution_ms=h.resolution_ms,
        events=[(t, v, "long" if s > 0 else "short", p, round(u, 2)) for v, t, s, p, u in events],
        truncated=len(events) >= q.limit, x_axis=h.x.tolist(), long_usd=_r(h.liq_long), short_usd=_r(h.liq_short),
        venues=per,
    )
    return _encoder.encode(LiquidationsResponse("0", "success", data))


class RenderCache:
    """Rendered responses by key, valid for one version of their symbol. Bounded (LRU by
    bytes); keys used within ``hot_s`` are re-rendered eagerly on updates."""

    def __init__(self, max_bytes: int = 128 << 20, hot_s: float = 120.0, max_hot: int = 64) -> None:
        self.max_bytes = max_bytes
        self.hot_s = hot_s
        self.max_hot = max_hot
        self._items: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        #: key -> (symbol, render function) for eager refresh
        self._makers: dict[Hashable, tuple[str, Callable[[], Rendered]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, version: int) -> Rendered | None:
        r = self._items.get(key)
        if r is None or r.version != version:
            self.misses += 1
            return None
        self.hits += 1
        r.used = time.monotonic()
        self._items.move_to_end(key)
        return r

    def put(self, key: Hashable, symbol: str, r: Rendered, maker: Callable[[], Rendered]) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= _size(old)
        self._items[key] = r
        self._makers[key] = (symbol, maker)
        self._bytes += _size(r)
        while self._bytes > self.max_bytes and len(self._items) > 1:
            k, o = self._items.popitem(last=False)
            self._bytes -= _size(o)
            self._makers.pop(k, None)

    def get_or_render(self, key: Hashable, symbol: str, version: int, maker: Callable[[], Rendered]) -> Rendered:
        r = self.get(key, version)
        if r is None:
            r = maker()
            self.put(key, symbol, r, maker)
        return r

    def refresh(self, symbol: str, *, keep: set[Hashable] | None = None) -> int:
        """Re-render the hot keys of ``symbol`` (and ``keep``), forget its cold ones."""
        now = time.monotonic()
        hot: list[Hashable] = []
        for key, r in list(self._items.items()):
            sym, _ = self._makers.get(key, ("", None))
            if sym != symbol:
                continue
            if (now - r.used <= self.hot_s or (keep is not None and key in keep)) and len(hot) < self.max_hot:
                hot.append(key)
            else:
                self._bytes -= _size(r)
                del self._items[key]
                self._makers.pop(key, None)
        for key in hot:
            _, maker = self._makers[key]
            used = self._items[key].used
            r = maker()
            r.used = used
            self.put(key, symbol, r, maker)
        return len(hot)


def _size(r: Rendered) -> int:
    return len(r.body) + (len(r.gz) if r.gz else 0) + 256 + int(getattr(r.result, "nbytes", 0))
