"""A seeded market simulator with known positions — the ground truth for the model.

Traders open leveraged positions (leverage mix with log-normal spread, log-normal sizes,
entries at the prices they trade at), close them with a leverage-dependent hazard, and are
liquidated by the simulator's own engine with each venue's exact margin maths whenever the
price path crosses them; liquidations push the price further (``impact``), so moves cascade.
It emits bars, trades, open interest and liquidation events, and the TRUE liquidation map at
any step (the book itself). The same generator is the offline data source of the server demo.

    sim = Simulator(SimConfig(seed=7))
    run = sim.run(n_bars=2_000, bar_ms=300_000, grid=grid)
    run.bars["binance-usdm"]        # liqfast.model.Bars, ready for replay / backtest
    run.true_long[-1]               # the true long map after the last bar
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from . import _core
from .errors import InvalidArrayError, InvalidInputError
from .model import Bars, _whole
from .maps import _check_grid
from .venues import margin_model, number

__all__ = ["SimConfig", "SimRun", "Simulator", "histogram_intersection"]

F64 = npt.NDArray[np.float64]


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Simulator settings (the defaults match the model's default assumptions)."""

    seed: int = 1
    #: Start time (UTC ms, 1970 to 9999) and step length (at most a day).
    start_ms: int = 1_767_225_600_000
    step_ms: int = 60_000
    #: In [1e-9, 1e12].
    start_price: float = 90_000.0
    #: σ of ln(price) per √hour; jumps per hour and their ln-size σ; intra-step wick (× step σ).
    vol_per_sqrt_hour: float = 0.006
    jumps_per_hour: float = 0.02
    jump_size: float = 0.02
    wick: float = 0.5
    #: Cascades: ln-price move per unit of (net liquidated USD / open interest).
    impact: float = 0.05
    #: Open interest (USD, single side, all venues) at the start; its ln-drift per hour (in
    #: [-1, 1]) and σ per √hour.
    start_oi_usd: float = 5e8
    oi_drift_per_hour: float = 0.0
    oi_vol_per_sqrt_hour: float = 0.004
    #: (leverage >= 1, weight >= 0) pairs, the weights not all 0.
    leverage_mix: tuple[tuple[float, float], ...] = ((5.0, 0.15), (10.0, 0.30), (25.0, 0.25), (50.0, 0.20), (100.0, 0.10))
    leverage_spread: float = 0.2
    #: Share of positions closed per hour at 10x, × (leverage/10)^exponent (in [-4, 4]).
    turnover_per_hour: float = 0.05
    turnover_leverage_exponent: float = 0.5
    #: Position size: log-normal, median (USD) and σ.
    size_median_usd: float = 10_000.0
    size_sigma: float = 0.0
    #: Trades per step (each opens positions at its price).
    trades_per_step: int = 8

    def to_core(self) -> dict[str, Any]:
        d: dict[str, Any] = msgspec.structs.asdict(self)
        try:
            d["leverage_mix"] = [tuple(x) for x in self.leverage_mix]
        except TypeError:
            raise InvalidInputError(f"leverage_mix must be (leverage, weight) pairs, got {self.leverage_mix!r}") from None
        return d


@dataclass(frozen=True)
class SimRun:
    """Bars per venue, what really happened per bar, and the true maps."""

    bars: dict[str, Bars]
    #: Realized liquidations per bar and venue (USD).
    realized_long: dict[str, F64]
    realized_short: dict[str, F64]
    #: Traded (price, volume) per bar and venue: rows offsets[i]..offsets[i+1].
    profiles: dict[str, tuple[F64, F64, npt.NDArray[np.int64]]]
    grid: _core.PriceGrid | None
    #: Bar index after which each true map was taken, and the maps (snapshots × buckets).
    snapshot_at: npt.NDArray[np.int64]
    true_long: F64
    true_short: F64


class Simulator:
    def __init__(self, config: SimConfig | None = None, venues: Mapping[str, float] | None = None, *, symbol: str = "BTC") -> None:
        if config is not None and not isinstance(config, SimConfig):
            raise InvalidInputError(f"config must be a SimConfig, got {type(config).__name__}")
        self.config = config or SimConfig()
        # (Only None means the default: an empty mapping used to fall back to it silently.)
        if venues is not None and not isinstance(venues, Mapping):
            raise InvalidInputError(f"venues must be a mapping {{venue: weight}}, got {type(venues).__name__}")
        self.venues = dict(venues) if venues is not None else {"binance-usdm": 1.0}
        if not self.venues:
            raise InvalidInputError("the simulator needs at least one venue")
        models = [margin_model(v, symbol) for v in self.venues]
        # (A string weight raised ValueError, None TypeError; a bool is not a weight.)
        weights = [_weight(v, w) for v, w in self.venues.items()]
        self._core = _core.Simulator(self.config.to_core(), models, weights)

    @property
    def price(self) -> float:
        return float(self._core.price)

    def step(self) -> dict[str, Any]:
        """One step: ts_ms, open/high/low/close, oi_usd per venue, trades
        ``(venue, price, qty, side)`` and liquidations ``(venue, price, usd, side)`` with venue
        names."""
        st: dict[str, Any] = self._core.step()
        names = list(self.venues)
        st["oi_usd"] = dict(zip(names, st["oi_usd"]))
        st["trades"] = [(names[v], p, q, s) for v, p, q, s in st["trades"]]
        st["liquidations"] = [(names[v], p, u, s) for v, p, u, s in st["liquidations"]]
        return st

    def run(self, n_bars: int, *, bar_ms: int = 300_000, grid: _core.PriceGrid | None = None, every: int = 1) -> SimRun:
        """Simulate ``n_bars`` (an int >= 0) bars of ``bar_ms`` (a multiple of the step),
        recording the true map on ``grid`` after every ``every``-th bar."""
        step = self.config.step_ms
        # (Whole numbers only: 1.5 bars used to run 1, -1 to raise an OverflowError.)
        if not (_whole(n_bars) and n_bars >= 0):
            raise InvalidInputError(f"n_bars must be a whole number >= 0, got {n_bars!r}")
        if not (_whole(every) and every >= 1):
            raise InvalidInputError(f"every must be a whole number >= 1, got {every!r}")
        if not (_whole(bar_ms) and bar_ms > 0 and bar_ms % step == 0):
            raise InvalidInputError(f"bar_ms must be a positive multiple of step_ms ({step}), got {bar_ms!r}")
        if grid is not None:
            _check_grid(grid)
        out = self._core.run(int(n_bars), int(bar_ms) // step, grid, int(every))
        bars, real_l, real_s, prof = {}, {}, {}, {}
        for name, v in zip(self.venues, out["venues"]):
            bars[name] = Bars.of(v["ts_ms"], v["open"], v["high"], v["low"], v["close"], v["oi_close_usd"], v["taker_net_base"])
            real_l[name], real_s[name] = v["liq_long_usd"], v["liq_short_usd"]
            prof[name] = (v["profile_price"], v["profile_volume"], v["profile_offsets"])
        empty = np.zeros((0, len(grid) if grid is not None else 0))
        return SimRun(bars, real_l, real_s, prof, grid, out.get("snapshot_at", np.zeros(0, np.int64)),
                      out.get("true_long", empty), out.get("true_short", empty))

    def true_map(self, grid: _core.PriceGrid, venue: str | None = None) -> tuple[F64, F64]:
        _check_grid(grid)
        names = list(self.venues)
        if venue is not None and venue not in names:
            raise InvalidInputError(f"venue {venue!r} is not simulated ({', '.join(names)})")
        return self._core.true_map(grid, None if venue is None else names.index(venue))


def _weight(venue: str, w: Any) -> float:
    try:
        return number(w, f"weight of {venue}")
    except OverflowError:
        raise InvalidInputError(f"weight of {venue} must be a finite number, got {w!r}") from None


def histogram_intersection(a: F64, b: F64) -> float:
    """Σ min(a/Σa, b/Σb): 1 for identical shapes, 0 for disjoint ones."""
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        # (Strings raised numpy's TypeError from inside the sum.)
        raise InvalidArrayError("histogram_intersection needs two arrays of numbers") from None
    if a.shape != b.shape:
        raise InvalidArrayError(f"histogram_intersection needs arrays of one shape, got {a.shape} and {b.shape}")
    sa, sb = float(np.sum(a)), float(np.sum(b))
    if sa <= 0 or sb <= 0:
        return float("nan")
    return float(np.minimum(a / sa, b / sb).sum())
