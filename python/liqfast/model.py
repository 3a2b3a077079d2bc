"""The estimation model: from bars of price and open interest to liquidation maps over time.

Exchanges do not publish positions, so the model infers them. Per bar and venue (all in the
Rust core, see ``rust/src/model.rs``):

1. the bar's low liquidates every long cohort whose liquidation price it reaches and its high
   every short — that is the bar's *predicted liquidation* (plus, optionally, shares of the
   OI for liquidations the book does not hold: ``background`` for the excursion from the open,
   ``swing`` for the bar's path-aware largest fall / rise);
2. a share of the book closes (``turnover_per_hour``, faster for high leverage:
   ``× (leverage/10)^turnover_leverage_exponent``) and decays (``decay_per_hour``);
3. the book is brought to the bar's closing open interest on both sides (every contract has a
   long and a short): a drop closes all cohorts pro rata; a rise, and the turnover, opens new
   cohorts at entries from the bar (``entry_rule``) for each point of the leverage mix (spread
   log-normally by ``leverage_spread``), with the venue's exact liquidation price for a
   ``position_usd`` position; new cohorts whose liquidation the bar itself crossed are partly
   (``intrabar``) liquidated within the bar.

Predicted USD = model notional × the venue's ``scale`` (fit by ``liqfast calibrate``: OI of one
venue stands for liquidations that happen on several) × the venue's weight.

Bars: ``ts_ms`` (bar open, UTC ms, strictly increasing), ``open/high/low/close`` (> 0, low ≤
open, close ≤ high), ``oi_close_usd`` (single-sided OI at bar close, ≥ 0; empty/NaN = unknown,
the book keeps its size), optional ``taker_net_base``. Bad bars raise ``InvalidBarsError``
naming the bar; gaps (a step longer than the bar interval) are marked in the output, never
interpolated: the bar after a gap only sweeps its own range.
"""

from __future__ import annotations

import csv
import decimal
import gzip
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from . import _core
from .errors import InvalidArrayError, InvalidBarsError, InvalidInputError
from .maps import _check_grid, grid_step
from .venues import margin_models

__all__ = [
    "Bars",
    "Heatmap",
    "LiveModel",
    "ModelParams",
    "ReplayResult",
    "WINDOWS",
    "auto_grid",
    "auto_resolution",
    "replay",
]

F64 = npt.NDArray[np.float64]


class ModelParams(msgspec.Struct, frozen=True, kw_only=True):
    """Every free choice of the model, with its default. Load/save with msgspec JSON."""

    #: (leverage, weight) pairs; weights are normalised. Default: 5x 15 %, 10x 30 %, 25x 25 %,
    #: 50x 20 %, 100x 10 %.
    leverage_mix: tuple[tuple[float, float], ...] = ((5.0, 0.15), (10.0, 0.30), (25.0, 0.25), (50.0, 0.20), (100.0, 0.10))
    #: σ of ln(leverage) around each mix point (real traders do not all pick exactly 10x).
    leverage_spread: float = 0.2
    #: Points per mix leverage when spread.
    leverage_points: int = 7
    #: "typical" ((h+l+c)/3), "close", "range" (``entry_points`` spread over [low, high], offset
    #: from bar to bar) or "profile" (the volume-weighted prices of ``entry_points``
    #: equal-volume slices of the bar's trades; range without them). A bar's profile prices
    #: must lie in its [low, high] (bucket edges up to 1 % outside are clamped into it) and
    #: its volumes be finite and >= 0, else ``InvalidBarsError``.
    entry_rule: Literal["typical", "close", "range", "profile"] = "range"
    entry_points: int = 3
    #: "even": both sides fully leveraged; "taker": the passive side of the net taker flow is
    #: hedged (never liquidated) in proportion ``taker_tilt × |flow share|``.
    side_rule: Literal["even", "taker"] = "even"
    taker_tilt: float = 0.5
    #: Share of positions (at 10x) closed and re-opened per hour.
    turnover_per_hour: float = 0.05
    #: Turnover × (leverage/10)^this: high leverage is held for shorter.
    turnover_leverage_exponent: float = 0.5
    #: Share of the book vanishing per hour without re-opening.
    decay_per_hour: float = 0.0
    #: Share of new positions already crossed by their own bar that liquidate within it.
    intrabar: float = 0.5
    #: Representative position (USD) used to pick the maintenance tier.
    position_usd: float = 10_000.0
    #: Cohorts below this share of their band's notional are dropped.
    prune_below: float = 1e-9
    #: Tilts the mix weights by (leverage/10)^leverage_tilt (negative: fewer high leverage);
    #: in [-4, 4] (at ±4 a 100x point already weighs 10,000 times its 10x neighbour).
    leverage_tilt: float = 0.0
    #: Liquidations the book does not hold (cross margin, odd leverage): per bar,
    #: background × OI × the bar's excursion below (longs) / above (shorts) its open.
    background: float = 0.0
    #: Liquidations of positions opened and liquidated within the bar (gross flow the closing
    #: OI does not show): per bar, swing × OI × w × (w / 1 %)^(swing_exponent − 1), with w the
    #: bar's largest fall (longs) / rise (shorts) relative to its open under the usual OHLC
    #: path: an up bar (close ≥ open) runs open → low → high → close, a down bar open → high →
    #: low → close. So the rebound after a crash's low liquidates shorts opened on the way
    #: down, which the excursion above the open (``background``) misses. 0 turns it off.
    swing: float = 0.0
    #: Exponent of the swing term (1: linear in the swing).
    swing_exponent: float = 1.0
    #: Realized-liquidation feedback: predictions are multiplied by (recent realized / recent
    #: predicted), an average with this half-life over past bars only; 0 turns it off. Needs
    #: the realized liquidations of past bars (``LiveModel.observe_realized``, or the
    #: backtest's realized series).
    feedback_half_life_hours: float = 0.0

    def to_core(self) -> dict[str, Any]:
        d: dict[str, Any] = msgspec.structs.asdict(self)
        d.pop("feedback_half_life_hours")
        tilt = d.pop("leverage_tilt")
        # Checked here because the tilt never reaches the core: unbounded, (lev/10)^tilt
        # overflowed (a raw OverflowError) or turned every weight into NaN or 0.
        if not (isinstance(tilt, (int, float)) and not isinstance(tilt, bool) and -4.0 <= tilt <= 4.0):
            raise InvalidInputError(f"leverage_tilt must be a number in [-4, 4], got {tilt!r}")
        try:
            # (The core checks the pairs' values; a leverage <= 0 is left for it to refuse.)
            d["leverage_mix"] = [(lev, w * (lev / 10.0) ** tilt if lev > 0 else w) for lev, w in self.leverage_mix]
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(
                f"leverage_mix must be (leverage, weight) pairs of numbers, got {self.leverage_mix!r}") from None
        return d


def _f64(x: Any, n: int, name: str) -> F64:
    if x is None:
        return np.full(n, np.nan)
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidBarsError(f"{name} must be numbers") from None
    if a.shape != (n,):
        raise InvalidBarsError(f"{name} has shape {a.shape}, expected ({n},)")
    return a


def _whole(v: object) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _bad_row(message: str, index: int | None) -> InvalidBarsError:
    err = InvalidBarsError(message)
    err.index = index
    return err


def _timestamps(x: Any, name: str = "ts_ms") -> npt.NDArray[np.int64]:
    """Epoch-ms timestamps as int64: integers, or floats that are exact integers in the int64
    range. A plain cast truncated 1.5 to 1 and turned NaN or 1e30 into INT64_MIN."""
    try:
        a = np.asarray(x)
    except (TypeError, ValueError):
        raise InvalidBarsError(f"{name} must be a 1-D sequence of integers (UTC ms)") from None
    if a.ndim != 1:
        raise InvalidBarsError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind == "u" and len(a) and a.max() > np.iinfo(np.int64).max:
        i = int(np.argmax(a > np.iinfo(np.int64).max))
        raise _bad_row(f"{name}[{i}] = {a[i]} is outside the int64 range", i)
    if a.dtype.kind in "iu":
        return np.ascontiguousarray(a, dtype=np.int64)
    if a.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(a) & (a == np.trunc(a)) & (a >= -(2.0**63)) & (a < 2.0**63)
        if not ok.all():
            i = int(np.argmin(ok))
            raise _bad_row(f"{name}[{i}] = {float(a[i])!r} is not a whole number of ms within int64", i)
        return np.ascontiguousarray(a.astype(np.int64))
    if len(a) == 0:
        return np.zeros(0, np.int64)
    kind = {"U": "strings", "S": "bytes", "O": "objects", "b": "booleans"}.get(a.dtype.kind, f"{a.dtype} values")
    raise InvalidBarsError(f"{name} must be integers (UTC ms), got {kind}")


@dataclass(frozen=True)
class Bars:
    """Bar series of one venue (columns as numpy arrays; validated on construction)."""

    ts_ms: npt.NDArray[np.int64]
    open: F64
    high: F64
    low: F64
    close: F64
    oi_close_usd: F64
    taker_net_base: F64

    @classmethod
    def of(
        cls,
        ts_ms: Any,
        open: Any,
        high: Any,
        low: Any,
        close: Any,
        oi_close_usd: Any = None,
        taker_net_base: Any = None,
    ) -> Bars:
        ts = _timestamps(ts_ms)
        n = len(ts)
        b = cls(ts, _f64(open, n, "open"), _f64(high, n, "high"), _f64(low, n, "low"), _f64(close, n, "close"),
                _f64(oi_close_usd, n, "oi_close_usd"), _f64(taker_net_base, n, "taker_net_base"))
        _core.check_bars(b.ts_ms, b.open, b.high, b.low, b.close, b.oi_close_usd, b.taker_net_base)
        return b

    @classmethod
    def from_csv(cls, path: str | Path) -> Bars:
        """Read ``ts_ms,open,high,low,close,oi_close_usd[,taker_net_base]`` (plain or .gz)."""
        cols = _read_csv(path, ["ts_ms", "open", "high", "low", "close", "oi_close_usd"], ["taker_net_base"])
        return cls.of(cols["ts_ms"], cols["open"], cols["high"], cols["low"], cols["close"],
                      cols["oi_close_usd"], cols.get("taker_net_base"))

    def __len__(self) -> int:
        return len(self.ts_ms)

    def interval_ms(self) -> int:
        """The bar interval: the most common step between bars."""
        if len(self.ts_ms) < 2:
            return 3_600_000
        steps, counts = np.unique(np.diff(self.ts_ms), return_counts=True)
        return int(steps[np.argmax(counts)])

    def slice(self, start: int, stop: int) -> Bars:
        return Bars(*(np.ascontiguousarray(getattr(self, f)[start:stop]) for f in
                      ("ts_ms", "open", "high", "low", "close", "oi_close_usd", "taker_net_base")))

    def columns(self) -> tuple[Any, ...]:
        return (self.ts_ms, self.open, self.high, self.low, self.close, self.oi_close_usd, self.taker_net_base)


def _int_field(text: str) -> int:
    """An integer CSV field: digits, or a number like 1.7e12 that is exactly an integer (read
    exactly, not through a float); within int64."""
    s = text.strip()
    try:
        v = int(s)
    except ValueError:
        try:
            d = decimal.Decimal(s)
        except decimal.InvalidOperation:
            raise ValueError(f"ts_ms {s!r} is not a number") from None
        if not d.is_finite() or d != d.to_integral_value():
            raise ValueError(f"ts_ms {s!r} is not a whole number of ms") from None
        v = int(d)
    if not -(2**63) <= v < 2**63:
        raise ValueError(f"ts_ms {s!r} is outside the int64 range")
    return v


def _read_csv(path: str | Path, required: list[str], optional: list[str]) -> dict[str, Any]:
    """The columns by name: ``ts_ms`` as int64 (exact), the others float64 (empty = NaN)."""
    if not isinstance(path, (str, Path)):
        raise InvalidInputError(f"path must be a str or a Path, got {type(path).__name__}")
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"cannot read {p}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InvalidBarsError(f"{p}: corrupt gzip ({e})") from None
    try:
        text = raw.decode("utf-8-sig")  # (a spreadsheet's byte-order mark is not part of "ts_ms")
    except UnicodeDecodeError:
        raise InvalidBarsError(f"{p}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise InvalidBarsError(f"{p}: empty file")
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise InvalidBarsError(f"{p}: missing column(s) {', '.join(missing)} (header: {','.join(header)})")
    want = [c for c in required + optional if c in header and c != "ts_ms"]
    idx = [header.index(c) for c in want]
    t_idx = header.index("ts_ms")
    ts: list[int] = []
    rows: list[list[float]] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            if t_idx >= len(row) or row[t_idx].strip() == "":
                raise ValueError("ts_ms is empty")
            ts.append(_int_field(row[t_idx]))
            rows.append([float(row[i]) if i < len(row) and row[i].strip() != "" else math.nan for i in idx])
        except ValueError as e:
            raise _bad_row(f"{p}:{line}: {e}", len(rows)) from None
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), len(want))
    out: dict[str, Any] = {c: np.ascontiguousarray(arr[:, j]) for j, c in enumerate(want)}
    out["ts_ms"] = np.array(ts, dtype=np.int64)
    return out


def read_realized(path: str | Path) -> tuple[npt.NDArray[np.int64], F64, F64]:
    """Realized liquidations ``ts_ms,long_usd,short_usd`` (plain or .gz)."""
    cols = _read_csv(path, ["ts_ms", "long_usd", "short_usd"], [])
    return check_realized((cols["ts_ms"], cols["long_usd"], cols["short_usd"]), where=f"{path}: ")


def check_realized(realized: Any, *, where: str = "") -> tuple[npt.NDArray[np.int64], F64, F64]:
    """Realized liquidations ``(ts_ms, long_usd, short_usd)`` as arrays: one length, strictly
    increasing integer timestamps, finite USD >= 0; else ``InvalidBarsError`` naming the row
    (``where`` prefixes the message)."""
    if isinstance(realized, (str, bytes)) or not isinstance(realized, (tuple, list)) or len(realized) != 3:
        raise InvalidInputError(f"{where}realized must be a (ts_ms, long_usd, short_usd) tuple of arrays")
    ts = _timestamps(realized[0], "realized ts_ms")
    long_usd, short_usd = (_f64(realized[k], len(ts), f"realized {name}") for k, name in ((1, "long_usd"), (2, "short_usd")))
    back = np.diff(ts) <= 0
    if back.any():
        i = int(np.argmax(back)) + 1
        raise _bad_row(f"{where}realized timestamps must increase (row {i})", i)
    for name, v in (("long_usd", long_usd), ("short_usd", short_usd)):
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise _bad_row(f"{where}{name} must be finite and >= 0 (row {i}: {v[i]})", i)
    return ts, long_usd, short_usd


# ---------------------------------------------------------------------------------------------
# Windows, grids, time resolution
# ---------------------------------------------------------------------------------------------

#: Heatmap windows (ms).
WINDOWS: dict[str, int] = {
    "12h": 12 * 3_600_000,
    "24h": 24 * 3_600_000,
    "3d": 3 * 86_400_000,
    "7d": 7 * 86_400_000,
    "30d": 30 * 86_400_000,
    "90d": 90 * 86_400_000,
    "180d": 180 * 86_400_000,
    "1y": 365 * 86_400_000,
}

_RESOLUTIONS_MS = [60_000 * m for m in (1, 5, 15, 30, 60, 120, 240, 480, 720, 1440)]


def auto_resolution(window_ms: int, bar_ms: int, max_columns: int = 500) -> int:
    """Column width (a multiple of the bar interval) giving at most ``max_columns`` columns."""
    for r in _RESOLUTIONS_MS:
        if r >= bar_ms and r % bar_ms == 0 and window_ms / r <= max_columns:
            return r
    return max(bar_ms, int(math.ceil(window_ms / max_columns / bar_ms)) * bar_ms)


def auto_grid(low: float, high: float, *, max_buckets: int = 2_000, venue: str | None = None, symbol: str | None = None) -> _core.PriceGrid:
    """A grid covering the window's price range with room for the liquidation levels below
    and above it (±25 %), with a round step of about 0.05 % of price, coarsened to at most
    ``max_buckets`` buckets."""
    if not (0 < low <= high and math.isfinite(high)):
        raise InvalidInputError(f"bad price range [{low}, {high}]")
    lo, hi = low * 0.75, high * 1.25
    step = grid_step((low + high) / 2, venue=venue, symbol=symbol)
    while (hi - lo) / step > max_buckets:
        step = _next_round(step)
    lo = math.floor(lo / step) * step
    hi = math.ceil(hi / step) * step
    return _core.PriceGrid(lo, hi, step)


def _next_round(step: float) -> float:
    e = 10.0 ** math.floor(math.log10(step))
    for m in (2, 2.5, 5, 10):
        if m * e > step * (1 + 1e-9):
            return m * e
    return 10 * e


# ---------------------------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heatmap:
    """Live liquidation notional over time: ``long[i, k]`` / ``short[i, k]`` = USD that would be
    liquidated at bucket k of ``grid`` at the end of column i, which covers
    ``[ts_ms[i], ts_ms[i] + resolution_ms)``."""

    ts_ms: npt.NDArray[np.int64]
    grid: _core.PriceGrid
    long: F64
    short: F64
    resolution_ms: int


@dataclass(frozen=True)
class ReplayResult:
    """Per-bar predicted liquidations (USD) on the merged timeline, flags and the heatmap."""

    ts_ms: npt.NDArray[np.int64]
    long_usd: F64
    short_usd: F64
    gap: npt.NDArray[np.bool_]
    warmup: npt.NDArray[np.bool_]
    heatmap: Heatmap | None
    model: LiveModel = field(repr=False)

    def map_at(self, i: int) -> tuple[F64, F64]:
        """The live map of heatmap column ``i`` (long, short)."""
        if self.heatmap is None:
            raise InvalidInputError("replay was run without a grid")
        n = len(self.heatmap.ts_ms)
        if not (_whole(i) and -n <= i < n):
            raise InvalidInputError(f"column must be an int in [-{n}, {n}), got {i!r}")
        return self.heatmap.long[i], self.heatmap.short[i]


class Feedback:
    """Multiplier from realized vs predicted liquidations of past bars (exponential average
    with a half-life in hours). Starts at 1; only past bars move it."""

    def __init__(self, half_life_hours: float) -> None:
        if not (isinstance(half_life_hours, (int, float, np.integer, np.floating)) and not isinstance(half_life_hours, (bool, np.bool_))
                and half_life_hours >= 0 and math.isfinite(half_life_hours)):
            raise InvalidInputError(f"feedback_half_life_hours must be >= 0, got {half_life_hours}")
        self.half_life = half_life_hours
        self.num = 0.0
        self.den = 0.0
        self.last_ts: int | None = None

    def multiplier(self) -> float:
        return self.num / self.den if self.half_life > 0 and self.den > 0 and self.num > 0 else 1.0

    def observe(self, ts_ms: int, predicted_usd: float, realized_usd: float) -> None:
        if self.half_life <= 0 or not (math.isfinite(predicted_usd) and math.isfinite(realized_usd)):
            return
        num, den = self.num, self.den
        if self.last_ts is not None:
            decay = 0.5 ** (max(ts_ms - self.last_ts, 0) / 3_600_000 / self.half_life)
            num *= decay
            den *= decay
        num += realized_usd
        den += predicted_usd
        # (Sums past float range were checkpointed as null, which no restore could read.)
        if not (math.isfinite(num) and math.isfinite(den)):
            raise InvalidInputError(f"realized feedback sums overflow: predicted {predicted_usd!r}, realized {realized_usd!r}")
        self.num, self.den, self.last_ts = num, den, int(ts_ms)


def apply_feedback(ts_ms: Any, pred_long: F64, pred_short: F64, real: Mapping[int, tuple[float, float]], half_life_hours: float) -> tuple[F64, F64]:
    """Predictions scaled by the feedback multiplier built from the realized liquidations of
    earlier bars (``real``: ts → (long, short)); bar t never sees its own realized value."""
    fb = Feedback(half_life_hours)
    out_l, out_s = pred_long.copy(), pred_short.copy()
    for i, t in enumerate(ts_ms):
        m = fb.multiplier()
        out_l[i] *= m
        out_s[i] *= m
        r = real.get(int(t))
        if r is not None:
            fb.observe(int(t), pred_long[i] + pred_short[i], r[0] + r[1])
    return out_l, out_s


class LiveModel:
    """The model for incremental use: one book per venue, updated bar by bar (from ingestion or
    a replay), with maps, evidence and checkpoints."""

    def __init__(
        self,
        venues: Iterable[str] = ("binance-usdm",),
        *,
        params: ModelParams | None = None,
        symbol: str = "BTC",
        bar_ms: int | Mapping[str, int] = 300_000,
        scale: float | Mapping[str, float] = 1.0,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        """``bar_ms``, ``scale``: one value, or one per venue (a mapping naming every venue);
        ``weights``: per venue, default 1. Mappings naming other venues are refused."""
        if params is not None and not isinstance(params, ModelParams):
            raise InvalidInputError(f"params must be a ModelParams, got {type(params).__name__}")
        self.params = params or ModelParams()
        if not isinstance(symbol, str):
            raise InvalidInputError(f"symbol must be a string, got {type(symbol).__name__}")
        self.symbol = symbol
        if isinstance(venues, (str, bytes)) or not isinstance(venues, Iterable):
            raise InvalidInputError(f"venues must be a list of venue ids, got {venues!r}")
        self.venues = list(venues)
        if not self.venues or len(set(self.venues)) != len(self.venues) or not all(isinstance(v, str) for v in self.venues):
            raise InvalidInputError("venues must be a non-empty list of distinct venue ids")
        bars = _per_venue("bar_ms", bar_ms, self.venues)
        scales = _per_venue("scale", scale, self.venues)
        ws = _per_venue("weights", 1.0 if weights is None else weights, self.venues, default=1.0)
        for v, ms in bars.items():
            if not (_whole(ms) and 0 < ms <= np.iinfo(np.int64).max):
                raise InvalidInputError(f"bar_ms of {v} must be a whole number of ms > 0, got {ms!r}")
        try:
            # (A string "2" or a bool is not a scale.)
            if any(isinstance(x, (str, bytes, bool, np.bool_)) for x in (*scales.values(), *ws.values())):
                raise TypeError
            self.scale = {v: float(x) for v, x in scales.items()}
            self.weights = {v: float(x) for v, x in ws.items()}
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(f"scale and weights must be numbers, got {scale!r} and {weights!r}") from None
        _check_factors(self.scale, self.weights, InvalidInputError)
        self._core = _core.Model(self.params.to_core())
        for v in self.venues:
            models, since = margin_models(v, symbol)
            self._core.add_venue(models, since, int(bars[v]))
        self.feedback = Feedback(self.params.feedback_half_life_hours)

    def _scales(self) -> list[float]:
        return [self.scale[v] * self.weights[v] for v in self.venues]

    def index(self, venue: str) -> int:
        try:
            return self.venues.index(venue)
        except ValueError:
            raise InvalidInputError(f"venue {venue!r} is not in this model ({', '.join(self.venues)})") from None

    def step(self, venue: str, ts_ms: int, open: float, high: float, low: float, close: float, oi_close_usd: float,
             taker_net_base: float = math.nan, profile: list[tuple[float, float]] | None = None) -> tuple[float, float, bool]:
        """One bar of one venue; returns predicted (long_usd, short_usd, gap) for it."""
        v = self.index(venue)
        lg, sh, gap, warm = self._core.step(v, ts_ms, open, high, low, close, oi_close_usd, taker_net_base, profile)
        k = self.scale[venue] * self.weights[venue] * self.feedback.multiplier()
        return (0.0 if warm else float(lg) * k, 0.0 if warm else float(sh) * k, bool(gap))

    def observe_realized(self, ts_ms: int, predicted_usd: float, realized_usd: float) -> None:
        """Tell the feedback what a past bar predicted (before feedback) and what was realized
        (all venues together); no effect unless ``feedback_half_life_hours`` > 0. ``ts_ms`` is an
        int64 time in ms, the USD amounts numbers >= 0 (NaN: unknown, ignored)."""
        # (A float or str time was kept and made the checkpoint unrestorable; a str amount
        # raised TypeError, a negative one turned the multiplier silently.)
        if not (_whole(ts_ms) and -(2**63) <= ts_ms < 2**63):
            raise InvalidInputError(f"ts_ms must be an int within int64, got {ts_ms!r}")
        for name, x in (("predicted_usd", predicted_usd), ("realized_usd", realized_usd)):
            if not isinstance(x, (int, float, np.integer, np.floating)) or isinstance(x, (bool, np.bool_)) \
                    or not (math.isnan(x) or 0 <= x < math.inf):
                raise InvalidInputError(f"{name} must be a finite number >= 0 (or NaN: unknown), got {x!r}")
        self.feedback.observe(int(ts_ms), float(predicted_usd), float(realized_usd))

    def map(self, grid: _core.PriceGrid, *, venue: str | None = None, side: Literal["long", "short"] | None = None,
            leverage: tuple[float, float] = (0.0, math.inf)) -> tuple[F64, F64]:
        """The live liquidation map (USD per bucket) now, optionally filtered (``leverage``:
        keep leverage points within (low, high), 0 <= low <= high)."""
        _check_grid(grid)
        v = None if venue is None else self.index(venue)
        long, short = self._core.snapshot(grid, self._scales(), v, side, [_leverage_bounds(leverage)])
        return long[0], short[0]

    def map_bands(self, grid: _core.PriceGrid, bands: Sequence[tuple[float, float]], *, venue: str | None = None,
                  side: Literal["long", "short"] | None = None) -> tuple[F64, F64]:
        """:meth:`map` for several leverage bands at once, in one scan of the book: arrays of
        ``len(bands) × buckets``, row b = the cohorts whose leverage lies in ``bands[b]``
        (``(low, high)``, ends included); a cohort on the shared end of two bands counts in
        the first only, so the rows add up to the map of their union."""
        _check_grid(grid)
        if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence) or not bands:
            raise InvalidInputError(f"bands must be a non-empty sequence of (low, high) pairs, got {bands!r}")
        v = None if venue is None else self.index(venue)
        return self._core.snapshot(grid, self._scales(), v, side, [_leverage_bounds(b) for b in bands])

    def evidence(self, venue: str, side: Literal["long", "short"], price: float, usd: float, tolerance: float = 0.002) -> float:
        """A realized liquidation reported by ``venue``: remove matching mass near ``price``.
        ``usd`` is real USD; it is converted to model notional with the venue's scale."""
        i = self.index(venue)
        k = self.scale[venue] * self.weights[venue]
        if not isinstance(usd, (int, float, np.number)) or isinstance(usd, bool):
            raise InvalidInputError(f"usd must be a number, got {type(usd).__name__}")
        return self._core.evidence(i, side, price, usd / k if k else usd, tolerance) * k

    def cohorts(self, venue: str) -> dict[str, Any]:
        return self._core.cohorts(self.index(venue))

    def checkpoint(self) -> bytes:
        fb = self.feedback
        head = msgspec.json.encode({"params": self.params, "symbol": self.symbol, "venues": self.venues,
                                    "scale": self.scale, "weights": self.weights,
                                    "feedback": [fb.num, fb.den, fb.last_ts]})
        return len(head).to_bytes(4, "little") + head + self._core.checkpoint()

    @classmethod
    def restore(cls, data: bytes | bytearray | memoryview) -> LiveModel:
        """The model from :meth:`checkpoint`'s bytes (any bytes-like object)."""
        from .errors import CheckpointError

        try:
            data = bytes(memoryview(data))
        except TypeError:
            raise CheckpointError(f"cannot restore checkpoint: expected bytes, got {type(data).__name__}") from None
        if len(data) < 4:
            raise CheckpointError("cannot restore checkpoint: truncated")
        n = int.from_bytes(data[:4], "little")
        try:
            head = msgspec.json.decode(data[4:4 + n], type=_Header)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise CheckpointError(f"cannot restore checkpoint: bad header ({e})") from None
        core_bytes = data[4 + n:]
        core = _core.Model.restore(core_bytes)  # checksummed: raises CheckpointError if corrupt
        # The JSON header has no checksum of its own: check it against itself and the core.
        bad = head.check(core, core_bytes)
        if bad:
            raise CheckpointError(f"cannot restore checkpoint: header does not match the model ({bad})")
        self = cls.__new__(cls)
        self.params = head.params
        self.symbol, self.venues, self.scale, self.weights = head.symbol, head.venues, head.scale, head.weights
        self.feedback = Feedback(head.params.feedback_half_life_hours)
        self.feedback.num, self.feedback.den, self.feedback.last_ts = head.feedback
        self._core = core
        return self


def _per_venue(name: str, value: Any, venues: list[str], default: Any = None) -> dict[str, Any]:
    """One value per venue from a single value or a mapping; a mapping must not name other
    venues (a misspelt key silently fell back to the default) and, without a default, must
    name them all."""
    if not isinstance(value, Mapping):
        return dict.fromkeys(venues, value)
    extra = [k for k in value if k not in venues]
    if extra:
        raise InvalidInputError(f"{name} names venues not in the model: {', '.join(map(str, extra))}")
    missing = [v for v in venues if v not in value]
    if missing and default is None:
        raise InvalidInputError(f"{name} has no value for {', '.join(missing)}")
    return {v: value.get(v, default) for v in venues}


def _leverage_bounds(leverage: Any) -> tuple[float, float]:
    """A leverage filter as (low, high) floats (the core checks 0 <= low <= high)."""
    try:
        lo, hi = leverage
        # (A string "5" or a bool is no leverage; an int past float raised OverflowError.)
        if any(isinstance(x, (str, bytes, bool, np.bool_)) for x in (lo, hi)):
            raise TypeError
        return float(lo), float(hi)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(f"leverage must be a (low, high) pair of numbers, got {leverage!r}") from None


def _check_factors(scale: Mapping[str, float], weights: Mapping[str, float], error: type[Exception]) -> None:
    for name, d in (("scale", scale), ("weights", weights)):
        for v, x in d.items():
            if not (math.isfinite(x) and x >= 0):
                raise error(f"{name} of {v} must be a finite number >= 0, got {x}")


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    """What a LiveModel checkpoint holds beside the core's bytes."""

    params: ModelParams
    symbol: str
    venues: list[str]
    scale: dict[str, float]
    weights: dict[str, float]
    feedback: tuple[float, float, int | None]

    def check(self, core: _core.Model, core_bytes: bytes) -> str | None:
        """What is inconsistent, or None."""
        from .venues import venues as known

        if not self.venues or len(set(self.venues)) != len(self.venues) or not set(self.venues) <= set(known()):
            return f"venues {self.venues}"
        if set(self.scale) != set(self.venues) or set(self.weights) != set(self.venues):
            return "scale or weights do not name the model's venues"
        try:
            _check_factors(self.scale, self.weights, ValueError)
            fresh = _core.Model(self.params.to_core())
            for v in self.venues:
                margin_models(v, self.symbol)
        except (ValueError, LookupError) as e:
            return str(e)
        num, den, last_ts = self.feedback
        if not (math.isfinite(num) and math.isfinite(den)) or (last_ts is not None and not -(2**63) <= last_ts < 2**63):
            return "feedback sums"
        if core.venue_count() != len(self.venues):
            return f"{len(self.venues)} venues in the header, {core.venue_count()} in the model"
        # A current-format core checkpoint starts with its magic and parameters, exactly as a
        # fresh model with the header's parameters writes them (empty: its venue count is
        # zero, then the checksum). Older formats are laid out differently: only the counts.
        prefix = fresh.checkpoint()[:-16]
        if core_bytes[:8] == prefix[:8] and core_bytes[:len(prefix)] != prefix:
            return "parameters differ from the model's"
        return None


#: Longest window (and heatmap resolution) of a replay: 100 years of ms.
_MAX_WINDOW_MS = 100 * 366 * 86_400_000


def _check_profile_venues(profiles: Any, names: list[str]) -> None:
    """Refuses profiles of venues not replayed (they used to be ignored without a word)."""
    if not isinstance(profiles, Mapping):
        raise InvalidInputError(f"profiles must be a mapping {{venue: (prices, volumes, offsets)}}, got {type(profiles).__name__}")
    extra = [k for k in profiles if k not in names]
    if extra:
        raise InvalidInputError(f"profiles for venues not replayed: {', '.join(map(str, extra))} (replayed: {', '.join(names)})")


def _profile_arrays(venue: str, p: Any) -> tuple[Any, ...] | None:
    if p is None:
        return None
    if isinstance(p, (str, bytes)) or not isinstance(p, (tuple, list)) or len(p) != 3:
        raise InvalidInputError(f"profile of {venue} must be a (prices, volumes, offsets) tuple of arrays")
    try:
        prices, volumes = (np.ascontiguousarray(x, dtype=np.float64) for x in p[:2])
        offsets = np.asarray(p[2])
    except (TypeError, ValueError):
        raise InvalidArrayError(f"profile of {venue}: prices and volumes must be numbers, offsets integers") from None
    if prices.ndim != 1 or volumes.ndim != 1 or offsets.ndim != 1:
        raise InvalidArrayError(f"profile of {venue}: prices, volumes and offsets must be 1-D arrays")
    if offsets.dtype.kind not in "iu":  # (a float cast would truncate)
        raise InvalidArrayError(f"profile offsets of {venue} must be integers, got {offsets.dtype}")
    return prices, volumes, np.ascontiguousarray(offsets, dtype=np.int64)


def replay(
    bars: Bars | Mapping[str, Bars],
    *,
    params: ModelParams | None = None,
    venue: str = "binance-usdm",
    symbol: str = "BTC",
    scale: float | Mapping[str, float] = 1.0,
    weights: Mapping[str, float] | None = None,
    grid: _core.PriceGrid | Literal["auto"] | None = "auto",
    window: str | int | None = None,
    resolution_ms: int | None = None,
    leverage: tuple[float, float] = (0.0, math.inf),
    profiles: Mapping[str, tuple[Any, Any, Any]] | None = None,
) -> ReplayResult:
    """Replay bar series (one venue, or ``{venue: Bars}``) through the model.

    Returns per-bar predicted liquidations on the merged timeline and, unless ``grid=None``,
    the heatmap: a column per ``resolution_ms`` of time, aligned to its multiples and taken
    after that interval's last bar (``None``, the default: automatic for ``window`` or the
    span, ≤ 500 columns; else a multiple of the bar interval, at most the window) on ``grid``
    (default: automatic from the price range, ≤ 2,000 buckets). ``window`` ("12h" … "1y", or
    ms > 0, at most 100 years; ``None``: the whole span) keeps only the heatmap columns inside
    the last ``window`` of the series (the book is still built from all bars). ``leverage``
    ``(low, high)``, 0 <= low <= high, filters the heatmap to leverage points within the
    range. ``profiles`` gives, per venue of ``bars``, the traded volume by price of every bar
    as ``(prices, volumes, offsets)`` (bar i = rows ``offsets[i]:offsets[i+1]``) for
    ``entry_rule="profile"`` (see :class:`ModelParams` for what a profile must hold).
    """
    series = dict(bars) if isinstance(bars, Mapping) else {venue: bars}
    if not series:
        raise InvalidInputError("no bars")
    for v, b in series.items():
        if not isinstance(b, Bars):
            raise InvalidInputError(f"bars for {v} must be a liqfast.model.Bars")
    names = list(series)
    bar_ms = {v: series[v].interval_ms() for v in names}
    live = LiveModel(names, params=params, symbol=symbol, bar_ms=bar_ms, scale=scale, weights=weights)
    all_ts = np.unique(np.concatenate([series[v].ts_ms for v in names]))
    span = int(all_ts[-1] - all_ts[0]) + min(bar_ms.values()) if len(all_ts) else 0
    if isinstance(window, str) and window not in WINDOWS:
        raise InvalidInputError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
    if not (window is None or isinstance(window, str) or (_whole(window) and 0 < window <= _MAX_WINDOW_MS)):
        raise InvalidInputError(f"window must be one of {', '.join(WINDOWS)}, ms in 1..={_MAX_WINDOW_MS} (100 years) "
                                f"or None, got {window!r}")
    win = WINDOWS[window] if isinstance(window, str) else int(window) if window is not None else span
    step_ms = min(bar_ms.values())
    # (0 used to mean "auto" and a negative value reached the core: only None means auto.)
    if resolution_ms is not None and not (_whole(resolution_ms) and 0 < resolution_ms <= _MAX_WINDOW_MS):
        raise InvalidInputError(f"resolution_ms must be ms in 1..={_MAX_WINDOW_MS} or None (auto), got {resolution_ms!r}")
    res = int(resolution_ms) if resolution_ms is not None else auto_resolution(win, step_ms)
    if res % step_ms:
        raise InvalidInputError(f"resolution_ms {res} must be a multiple of the bar interval {step_ms}")
    lev_lo, lev_hi = _leverage_bounds(leverage)
    g: _core.PriceGrid | None
    if isinstance(grid, str):
        if grid != "auto":
            raise InvalidInputError(f"grid must be a PriceGrid, 'auto' or None, got {grid!r}")
        start = int(all_ts[-1]) - win if len(all_ts) else 0
        lows = np.concatenate([series[v].low[series[v].ts_ms >= start] for v in names])
        highs = np.concatenate([series[v].high[series[v].ts_ms >= start] for v in names])
        g = auto_grid(float(lows.min()), float(highs.max()), venue=names[0], symbol=symbol) if len(lows) else None
    else:
        if grid is not None:
            _check_grid(grid)
        g = grid
    if g is not None and res > win and len(all_ts):
        # Columns are aligned to multiples of the resolution: one longer than the window
        # starts before it and is dropped, which left an empty heatmap.
        raise InvalidInputError(f"resolution_ms {res} is longer than the window ({win} ms): no column would fit")
    prof: list[Any] | None = None
    if profiles is not None:
        _check_profile_venues(profiles, names)
        prof = [_profile_arrays(v, profiles.get(v)) for v in names]
    out: dict[str, Any] = live._core.replay([series[v].columns() for v in names], live._scales(), g, res, lev_lo, lev_hi, prof)
    heat = None
    if g is not None and "heatmap_at" in out:
        at = out["heatmap_at"]
        col_ts = (out["ts_ms"][at] // res) * res
        keep = col_ts >= (int(out["ts_ms"][-1]) - win) if len(at) else np.zeros(0, bool)
        heat = Heatmap(col_ts[keep], g, out["heatmap_long"][keep], out["heatmap_short"][keep], res)
    return ReplayResult(out["ts_ms"], out["long_usd"], out["short_usd"], out["gap"], out["warmup"], heat, live)
