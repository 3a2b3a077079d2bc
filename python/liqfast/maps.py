"""Liquidation prices, maps and heatmaps: the public compute API.

Array contract (all batch functions): ``entry`` and ``qty`` are float64, ``side`` is int8
(+1 long, −1 short), per-position ``leverage``/``margin`` a float or a float64 array,
``open_time``/``time_index`` an int or an int64 array; arrays are 1-D, C-contiguous and of
equal length. numpy arrays of another dtype or layout raise ``InvalidArrayError`` rather than
being converted silently (Python lists are converted element by element: a string or a bool
where a number belongs is refused, and so is a ``time_index`` that is not a whole int64).
Inputs must not be modified by another thread while a call runs (the GIL is released for
large calls).

Bad rows raise ``InvalidPositionError`` (``.index`` names the first bad row); positions that
no price can liquidate (a 1x linear long, a fully collateralised inverse short) are not
errors: their liquidation price is NaN and maps count them under ``totals["never"]``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from .errors import GridError, InvalidArrayError, InvalidInputError
from .tiers import TierTable
from .venues import instrument, is_real, margin_model, margin_models, number, to_epoch_ms

__all__ = [
    "LiquidationHeatmap",
    "LiquidationMap",
    "PriceGrid",
    "grid_around",
    "grid_step",
    "hedge_liquidation_price",
    "liquidation_heatmap",
    "liquidation_map",
    "liquidation_price",
    "liquidation_prices",
    "max_leverage",
]

PriceGrid = _core.PriceGrid
F64 = npt.NDArray[np.float64]
Side = Literal["long", "short", "buy", "sell"] | int
TimeLike = int | float | _dt.datetime | str


def _overridden(model: _core.MarginModel, mmr: float | None, maint_amount: float | None, size_hint: float) -> _core.MarginModel:
    if mmr is None and maint_amount is None:
        return model
    return model.with_overrides(mmr=mmr, maint_amount=maint_amount, size_hint=size_hint)


def _margin_arg(leverage: Any, margin: Any) -> tuple[Any, str]:
    if (leverage is None) == (margin is None):
        raise InvalidInputError("give exactly one of leverage= or margin=")
    return (leverage, "leverage") if margin is None else (margin, "margin")


def liquidation_price(
    venue: str,
    side: Side,
    entry: float,
    qty: float,
    *,
    leverage: float | None = None,
    margin: float | None = None,
    mmr: float | None = None,
    maint_amount: float | None = None,
    fee_rate: float | None = None,
    tiers: TierTable | None = None,
    contract_size: float | None = None,
    formula: str | None = None,
    symbol: str | None = None,
    open_time: TimeLike | None = None,
    mode: Literal["isolated", "cross"] = "isolated",
    other_maint_margin: float = 0.0,
    other_upnl: float = 0.0,
) -> float:
    """Liquidation (mark) price of one position; NaN when no price can liquidate it.

    ``qty`` is in the venue's own unit (coin, contracts or lots; see ``venue_info``), scaled by
    ``contract_size`` (default: the symbol's). ``margin`` is the posted isolated margin, or for
    ``mode="cross"`` the wallet balance, in the margin currency (quote for linear, coin for
    inverse); without it the margin follows from ``leverage``. In cross mode the other cross
    positions' maintenance margin and unrealised PnL enter as ``other_maint_margin`` and
    ``other_upnl`` (Binance's TMM1/UPNL1). ``mmr``/``maint_amount``/``fee_rate``/``tiers``
    override the shipped data; ``formula`` (or ``open_time``) picks a dated formula version.
    ``symbol`` defaults to the tier table's symbol with ``tiers``, else to BTC.
    """
    model = margin_model(
        venue, symbol, formula=formula, open_time=open_time, tiers=tiers, contract_size=contract_size, fee_rate=fee_rate,
    )
    value, kind = _margin_arg(leverage, margin)
    # Numbers before any arithmetic on them (a str entry, a bool leverage are refused).
    entry, qty, value = number(entry, "entry"), number(qty, "qty"), number(value, kind)
    other_maint_margin, other_upnl = number(other_maint_margin, "other_maint_margin"), number(other_upnl, "other_upnl")
    if mode == "cross":
        if kind != "margin":
            raise InvalidInputError("cross mode needs margin= (the wallet balance); leverage does not set it")
        value = value - other_maint_margin + other_upnl
    elif mode != "isolated":
        raise InvalidInputError(f"mode must be 'isolated' or 'cross', got {mode!r}")
    elif other_maint_margin or other_upnl:
        raise InvalidInputError("other_maint_margin/other_upnl only apply to mode='cross'")
    model = _overridden(model, mmr, maint_amount, _size_hint(model, entry, qty))
    if kind == "leverage":
        return float(model.liquidation_price(side, entry, qty, leverage=value))
    return float(model.liquidation_price(side, entry, qty, margin=value))


def _size_hint(model: _core.MarginModel, entry: float, qty: float) -> float:
    """Tier measure at entry, to pick the table rate when only a deduction is overridden."""
    unit = model.tier_unit
    if not entry > 0:
        return 0.0  # (the core refuses the entry; a division by it raised ZeroDivisionError)
    size = qty * model.contract_size
    if unit == "contracts":
        return qty
    linear = model.kind == "linear"
    if unit == "quote":
        return size * entry if linear else size
    return size if linear else size / entry


def _is_number(x: Any) -> bool:
    """An int, float or numpy number that a float holds (not a bool, not an int past 1e308)."""
    if not is_real(x):
        return False
    try:
        float(x)
    except OverflowError:
        return False
    return True


def _finite(x: Any, name: str) -> float:
    """``number``, with an int too large for a float named rather than an OverflowError."""
    try:
        return number(x, name)
    except OverflowError:
        raise InvalidInputError(f"{name} must be a finite number, got an int of {x.bit_length()} bits") from None


def _f64(x: Any, name: str) -> Any:
    """Lists of numbers become float64 arrays; numpy arrays pass through untouched (the core
    checks them). A string or a bool in a list is named rather than converted (True would be
    a leverage of 1x)."""
    if isinstance(x, list | tuple):
        for i, v in enumerate(x):
            if not is_real(v):
                raise InvalidArrayError(f"{name}[{i}] must be a number, got {v!r}")
        try:
            return np.asarray(x, dtype=np.float64)
        except OverflowError:
            raise InvalidArrayError(f"{name} holds an int too large for float64") from None
    return x


def _i64(x: Any, name: str) -> Any:
    """Lists of ints become int64 arrays, element by element: a float, a bool or an int
    outside int64 is named rather than truncated, wrapped or raised as OverflowError."""
    if not isinstance(x, list | tuple):
        return x
    out = np.empty(len(x), dtype=np.int64)
    for i, v in enumerate(x):
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) or not -(2**63) <= v < 2**63:
            raise InvalidArrayError(f"{name}[{i}] must be an int64, got {v!r}")
        out[i] = v
    return out


def _each(values: list[Any] | tuple[Any, ...], name: str, dtype: Any, convert: Any) -> Any:
    """A list converted element by element as the scalar call takes each, its errors naming
    the element (``side[2]: ...``)."""
    out = np.empty(len(values), dtype=dtype)
    for i, v in enumerate(values):
        try:
            out[i] = convert(v)
        except InvalidInputError as e:
            raise InvalidInputError(f"{name}[{i}]: {e}") from None
    return out


def _side_array(side: Any) -> Any:
    if isinstance(side, list | tuple):
        # Each element as the scalar call takes it ("long", +1, ...): 1.9 or 300 is an error,
        # not a truncated or wrapped int8.
        return _each(side, "side", np.int8, _side_value)
    if isinstance(side, str | int):
        raise InvalidArrayError("side must be an int8 array of +1/-1 in batch calls")
    return side


def _side_value(s: Any) -> int:
    if isinstance(s, str):
        v = {"long": 1, "buy": 1, "short": -1, "sell": -1}.get(s.lower())
        if v is None:
            raise InvalidInputError(f"side must be 'long'/'short' or +1/-1, got {s!r}")
        return v
    # Exactly ±1 (an int, a float or a numpy number); bools and 1.9 are not sides.
    if not is_real(s) or s not in (1, -1):
        raise InvalidInputError(f"side must be 'long'/'short' or +1/-1, got {s!r}")
    return int(s)


def _time_arg(open_time: Any) -> Any:
    if open_time is None or isinstance(open_time, np.ndarray):
        return open_time
    if isinstance(open_time, list | tuple):
        return _each(open_time, "open_time", np.int64, to_epoch_ms)
    return to_epoch_ms(open_time)


def _models(
    venue: str,
    symbol: str | None,
    formula: str | None,
    open_time: Any,
    tiers: TierTable | None,
    contract_size: float | None,
    fee_rate: float | None,
    mmr: float | None,
    maint_amount: float | None,
) -> tuple[list[_core.MarginModel], list[int | None]]:
    since: list[int | None]
    if open_time is None and formula is None:
        models, since = [margin_model(venue, symbol, tiers=tiers, contract_size=contract_size, fee_rate=fee_rate)], [None]
    else:
        models, since = margin_models(venue, symbol, formula=formula, tiers=tiers, contract_size=contract_size, fee_rate=fee_rate)
    if mmr is not None or maint_amount is not None:
        models = [_overridden(m, mmr, maint_amount, 0.0) for m in models]
    return models, since


def liquidation_prices(
    venue: str,
    side: Any,
    entry: Any,
    qty: Any,
    *,
    leverage: Any = None,
    margin: Any = None,
    mmr: float | None = None,
    maint_amount: float | None = None,
    fee_rate: float | None = None,
    tiers: TierTable | None = None,
    contract_size: float | None = None,
    formula: str | None = None,
    symbol: str | None = None,
    open_time: Any = None,
) -> F64:
    """Liquidation price per position (float64 array; NaN where no price liquidates).

    ``open_time`` (epoch ms, scalar or int64 array) picks each position's formula version on
    venues that changed theirs; default is the current formula. With only ``maint_amount``
    overridden, the rate comes from the first tier.
    """
    value, kind = _margin_arg(leverage, margin)
    models, since = _models(venue, symbol, formula, open_time, tiers, contract_size, fee_rate, mmr, maint_amount)
    return _core.liquidation_prices(
        models, since, _f64(entry, "entry"), _f64(qty, "qty"), _side_array(side), _f64(value, kind), kind,
        open_time=_time_arg(open_time),
    )


@dataclass(frozen=True, slots=True)
class LiquidationMap:
    """USD notional liquidated per price bucket, per side, plus cumulative curves.

    ``long_cumulative[k]``: longs liquidated if price falls from ``ref_price`` to bucket k
    (zero above the reference bucket); ``short_cumulative[k]``: shorts liquidated if it rises
    to bucket k (zero below). ``totals``: USD per side (long, short) inside the grid, below,
    above, with no liquidation price ("never", at entry notional), and position counts.
    """

    grid: _core.PriceGrid
    long: F64
    short: F64
    ref_price: float
    long_cumulative: F64
    short_cumulative: F64
    totals: dict[str, tuple[float, float]]

    @property
    def prices(self) -> F64:
        """Bucket mid-points."""
        return self.grid.centers()


@dataclass(frozen=True, slots=True)
class LiquidationHeatmap:
    """USD notional per (time row, price bucket), per side; arrays are ``n_times × buckets``."""

    grid: _core.PriceGrid
    long: F64
    short: F64
    totals: dict[str, tuple[float, float]]


def _check_grid(grid: Any) -> None:
    if not isinstance(grid, _core.PriceGrid):
        raise GridError(f"grid must be a liqfast.PriceGrid, got {type(grid).__name__}")


def cumulative_from(grid: _core.PriceGrid, long: F64, short: F64, ref_price: float) -> tuple[F64, F64]:
    """Cumulative long curve from ``ref_price`` downwards and short curve upwards."""
    n = len(grid)
    k = int(np.clip(grid.locate(ref_price), 0, n - 1))
    long_cum = np.zeros(n)
    short_cum = np.zeros(n)
    long_cum[: k + 1] = np.cumsum(long[: k + 1][::-1])[::-1]
    short_cum[k:] = np.cumsum(short[k:])
    return long_cum, short_cum


def liquidation_map(
    entry: Any,
    qty: Any,
    side: Any,
    leverage: Any,
    grid: _core.PriceGrid,
    *,
    venue: str = "binance-usdm",
    symbol: str | None = None,
    margin: Any = None,
    ref_price: float | None = None,
    mmr: float | None = None,
    maint_amount: float | None = None,
    fee_rate: float | None = None,
    tiers: TierTable | None = None,
    contract_size: float | None = None,
    formula: str | None = None,
    open_time: Any = None,
) -> LiquidationMap:
    """Liquidation map of a book of positions on ``grid``, in one fused pass.

    Each position adds its USD notional at its liquidation price (size × price for linear
    contracts, face value for inverse) to that price's bucket. Pass ``leverage=None`` and
    ``margin=`` to give posted margins instead. ``ref_price`` (default: the qty-weighted mean
    entry) anchors the cumulative curves.
    """
    value, kind = _margin_arg(leverage, margin)
    _check_grid(grid)
    models, since = _models(venue, symbol, formula, open_time, tiers, contract_size, fee_rate, mmr, maint_amount)
    entry, qty = _f64(entry, "entry"), _f64(qty, "qty")
    long, short, totals = _core.liquidation_map(
        models, since, entry, qty, _side_array(side), _f64(value, kind), kind, grid, open_time=_time_arg(open_time),
    )
    # The kernel sums the qty-weighted entry in its pass (another pass over 1e7 rows in
    # numpy would cost more than the map itself).
    mean_entry = float(totals.pop("mean_entry"))
    if ref_price is None:
        ref_price = mean_entry if len(entry) else float(grid.lo + grid.hi) / 2
    elif not (math.isfinite(ref_price := _finite(ref_price, "ref_price")) and ref_price > 0):
        raise InvalidInputError(f"ref_price must be a finite price > 0, got {ref_price!r}")
    long_cum, short_cum = cumulative_from(grid, long, short, ref_price)
    return LiquidationMap(grid, long, short, float(ref_price), long_cum, short_cum, totals)


def liquidation_heatmap(
    entry: Any,
    qty: Any,
    side: Any,
    leverage: Any,
    time_index: Any,
    n_times: int,
    grid: _core.PriceGrid,
    *,
    venue: str = "binance-usdm",
    symbol: str | None = None,
    margin: Any = None,
    mmr: float | None = None,
    maint_amount: float | None = None,
    fee_rate: float | None = None,
    tiers: TierTable | None = None,
    contract_size: float | None = None,
    formula: str | None = None,
    open_time: Any = None,
) -> LiquidationHeatmap:
    """2-D liquidation heatmap: row ``time_index[i]`` (0 ≤ t < n_times), column = bucket of
    the liquidation price, in one fused pass."""
    value, kind = _margin_arg(leverage, margin)
    _check_grid(grid)
    models, since = _models(venue, symbol, formula, open_time, tiers, contract_size, fee_rate, mmr, maint_amount)
    time_index = _i64(time_index, "time_index")
    if isinstance(n_times, bool) or not isinstance(n_times, int | np.integer) or n_times < 1:
        raise InvalidInputError(f"n_times must be a positive int, got {n_times!r}")
    long, short, totals = _core.liquidation_heatmap(
        models, since, _f64(entry, "entry"), _f64(qty, "qty"), _side_array(side), _f64(value, kind), kind,
        time_index, int(n_times), grid, open_time=_time_arg(open_time),
    )
    del totals["mean_entry"]
    return LiquidationHeatmap(grid, long, short, totals)


def hedge_liquidation_price(
    venue: str,
    wallet: float,
    *,
    long_entry: float | None = None,
    long_qty: float | None = None,
    short_entry: float | None = None,
    short_qty: float | None = None,
    other_maint_margin: float = 0.0,
    other_upnl: float = 0.0,
    symbol: str | None = None,
    formula: str | None = None,
    tiers: TierTable | None = None,
    contract_size: float | None = None,
    fee_rate: float | None = None,
) -> float:
    """Cross-margin liquidation price of a hedge-mode long/short pair sharing one wallet
    (Binance FAQ: both legs share one price; each pays its own tier's maintenance there).

    ``wallet`` is the cross wallet balance (>= 0). It must cover the legs' maintenance, net
    of their PnL, at one leg's entry price at least: the later leg was opened there."""
    model = margin_model(venue, symbol, formula=formula, tiers=tiers, contract_size=contract_size, fee_rate=fee_rate)
    wallet = number(wallet, "wallet")
    # A balance is never negative (losses beyond it are a liquidation already); what the
    # other positions owe or earn enters through other_maint_margin / other_upnl.
    if not (math.isfinite(wallet) and wallet >= 0):
        raise InvalidInputError(f"wallet must be a finite balance >= 0, got {wallet!r}")
    legs = {
        k: None if v is None else number(v, k)
        for k, v in (("long_entry", long_entry), ("long_qty", long_qty), ("short_entry", short_entry), ("short_qty", short_qty))
    }
    net = wallet - number(other_maint_margin, "other_maint_margin") + number(other_upnl, "other_upnl")
    return float(_core.hedge_liquidation_price(model, net, **legs))


def max_leverage(venue: str, entry: Any, qty: Any, *, symbol: str = "BTC", formula: str | None = None) -> F64:
    """Highest leverage the venue allows for each position: the max leverage of the tier at
    its entry notional (handy to cap assumed leverage mixes). ``entry``/``qty`` follow the
    array contract of the batch functions; bad rows raise ``InvalidPositionError``."""
    model = margin_model(venue, symbol, formula=formula)
    out: F64 = _core.max_leverages(model, _f64(entry, "entry"), _f64(qty, "qty"))
    return out


def grid_step(price: float, *, venue: str | None = None, symbol: str | None = None) -> float:
    """A round bucket width for ``symbol`` around ``price``: about 0.05 % of price, rounded to
    1/2/2.5/5 × 10^k and to a whole number of ticks of the symbol (when venue and symbol are
    given)."""
    tick = 0.0
    if venue is not None and symbol is not None:
        tick = float(instrument(venue, symbol).get("tick_size", 0.0))
    return float(_core.auto_step(price, tick))


def grid_around(
    price: float, *, span: float = 0.3, step: float | None = None, venue: str | None = None, symbol: str | None = None,
) -> _core.PriceGrid:
    """A grid covering ``price·(1 ± span)`` with ``step`` (default ``grid_step``), edges on
    whole multiples of the step."""
    price = number(price, "price")
    # (numpy numbers as everywhere else; a bool is no step of 1, nor a string a span.)
    if not (_is_number(span) and 0 < span < 1):
        raise InvalidInputError(f"span must be in (0, 1), got {span!r}")
    step = step if step is not None else grid_step(price, venue=venue, symbol=symbol)
    if not (_is_number(step) and math.isfinite(float(step)) and step > 0):
        raise GridError(f"grid step must be a finite number > 0, got {step!r}")
    lo = np.floor(price * (1 - span) / step) * step
    hi = np.ceil(price * (1 + span) / step) * step
    return _core.PriceGrid(float(lo), float(hi), float(step))
