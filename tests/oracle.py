"""Slow, obviously correct references for the Rust kernels.

The liquidation price here is found by *searching* for the first price, moving away from the
entry in the position's losing direction, at which equity no longer exceeds the maintenance
requirement — with the tier looked up at each candidate price. No closed form, no tier walk:
it shares nothing with the Rust solver but the definitions of equity and maintenance, which
are written out per venue formula below from `reference/exchanges.md`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# venue -> formula -> (kind, maintenance basis, fee mode, tier maths)
RULES: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "binance-usdm": {"standard": ("linear", "mark", "none", "progressive")},
    "binance-coinm": {"standard": ("inverse", "mark", "none", "progressive")},
    "bybit-linear": {
        "entry-mm": ("linear", "entry", "bankruptcy", "progressive"),
        "mark-mm": ("linear", "mark", "bankruptcy", "progressive"),
    },
    "bybit-inverse": {
        "entry-mm": ("inverse", "entry", "bankruptcy", "progressive"),
        "mark-mm": ("inverse", "mark", "bankruptcy", "progressive"),
    },
    "okx-linear": {"standard": ("linear", "mark", "in_mm", "whole")},
    "okx-inverse": {"standard": ("inverse", "mark", "in_mm", "whole")},
    "bitget-linear": {"flat": ("linear", "mark", "in_mm", "whole"), "tiered": ("linear", "mark", "in_mm", "progressive")},
    "gate-linear": {"flat": ("linear", "mark", "in_mm", "whole"), "gradient": ("linear", "mark", "in_mm", "progressive")},
    "gate-inverse": {"flat": ("inverse", "mark", "in_mm", "whole"), "gradient": ("inverse", "mark", "in_mm", "progressive")},
    "kucoin-linear": {"legacy": ("linear", "entry", "none", "whole"), "standard": ("linear", "mark", "in_mm", "whole")},
    "kucoin-inverse": {"legacy": ("inverse", "entry", "none", "whole"), "standard": ("inverse", "mark", "in_mm", "whole")},
    "hyperliquid": {"standard": ("linear", "mark", "none", "progressive")},
}


@dataclass(frozen=True)
class Spec:
    kind: str
    basis: str
    fee_mode: str
    tier_math: str
    contract_size: float
    fee: float
    unit: str
    tiers: list[tuple[float, float, float, float, float]]  # floor, cap, mmr, maint_amount, max_leverage


def spec_of(model: object, rules: tuple[str, str, str, str]) -> Spec:
    """Spec from a liqfast MarginModel's data (contract size, fee, tiers) and the rules above."""
    kind, basis, fee_mode, tier_math = rules
    return Spec(kind, basis, fee_mode, tier_math, model.contract_size, model.fee_rate, model.tier_unit, model.tiers)  # type: ignore[attr-defined]


def _tier(spec: Spec, measure: float) -> tuple[float, float, float, float, float]:
    for t in spec.tiers[:-1]:
        if measure < t[1]:
            return t
    return spec.tiers[-1]


def _measure(spec: Spec, size: float, qty: float, price: float) -> float:
    if spec.unit == "contracts":
        return qty
    if spec.unit == "quote":
        return size * price if spec.kind == "linear" else size
    return size if spec.kind == "linear" else size / price


def _notional(spec: Spec, size: float, price: float) -> float:
    """Notional in the margin currency."""
    return size * price if spec.kind == "linear" else size / price


def liquidation_price(spec: Spec, side: int, entry: float, qty: float, *, leverage: float | None = None, margin: float | None = None) -> float:
    """Liquidation price by search; NaN when no price liquidates. Raises ValueError for a
    position that is below maintenance at entry or above the tier's leverage cap."""
    size = qty * spec.contract_size
    entry_tier = _tier(spec, _measure(spec, size, qty, entry))
    fee_cancels = leverage is not None
    if leverage is not None:
        if leverage > entry_tier[4] * (1 + 1e-9):
            raise ValueError("leverage above tier maximum")
        m = _notional(spec, size, entry) / leverage
    else:
        assert margin is not None
        m = margin

    def equity(p: float) -> float:
        if spec.kind == "linear":
            return m + side * size * (p - entry)
        return m + side * size * (1 / entry - 1 / p)

    # Bybit: fee to close at the bankruptcy price (cancels when margin follows from leverage).
    fee_const = 0.0
    if spec.fee_mode == "bankruptcy" and not fee_cancels:
        bp = _bisect(lambda p: equity(p) - spec.fee * _notional(spec, size, p), side, entry)
        fee_const = spec.fee * _notional(spec, size, bp) if not math.isnan(bp) else 0.0

    def maintenance(p: float) -> float:
        t = entry_tier if spec.basis == "entry" else _tier(spec, _measure(spec, size, qty, p))
        fee_in = spec.fee if spec.fee_mode == "in_mm" else 0.0
        d = t[3] if spec.tier_math == "progressive" else 0.0
        if spec.basis == "entry":
            return _notional(spec, size, entry) * t[2] + _notional(spec, size, p) * fee_in - d + fee_const
        return _notional(spec, size, p) * (t[2] + fee_in) - d + fee_const

    if not equity(entry) > maintenance(entry):
        raise ValueError("below maintenance at entry")
    return _first_crossing(lambda p: equity(p) - maintenance(p), side, entry, _boundaries(spec, size))


def _boundaries(spec: Spec, size: float) -> list[float]:
    """Prices where the tier changes (empty when the tier does not depend on price)."""
    if spec.basis == "entry" or (spec.unit, spec.kind) not in (("quote", "linear"), ("base", "inverse")):
        return []
    bounds = [t[1] for t in spec.tiers[:-1]]
    return [b / size if spec.kind == "linear" else size / b for b in bounds]


def _bisect(f, side: int, entry: float) -> float:  # type: ignore[no-untyped-def]
    """Root of a function that is positive at entry and continuous, in the losing direction."""
    return _first_crossing(f, side, entry, [])


def _first_crossing(f, side: int, entry: float, boundaries: list[float]) -> float:  # type: ignore[no-untyped-def]
    """sup{p < entry: f(p) <= 0} for longs, inf{p > entry: f(p) <= 0} for shorts.

    Scans away from the entry over a fine geometric grid plus every tier boundary (and the
    float just past it), so a crossing confined to one tier segment is never stepped over;
    then bisects the first bracket to the last bit."""
    toward = 0.0 if side > 0 else math.inf
    pts = set()
    step = 1e-5
    p = entry
    while True:
        step *= 1.01
        p = entry * math.exp(-step if side > 0 else step)
        if step > 28:  # e^28 ≈ 1.4e12: prices this far from entry count as never
            break
        pts.add(p)
    for b in boundaries:
        if (side > 0 and 0 < b < entry) or (side < 0 and b > entry):
            pts.add(b)
            pts.add(math.nextafter(b, toward))
    inside = entry
    for p in sorted(pts, reverse=side > 0):
        if f(p) <= 0:
            outside = p
            break
        inside = p
    else:
        return math.nan
    # f(inside) > 0 >= f(outside), both in one tier segment: bisect to the last bit.
    for _ in range(200):
        mid = (inside + outside) / 2
        if mid in (inside, outside):
            break
        if f(mid) <= 0:
            outside = mid
        else:
            inside = mid
    return outside


def map_reference(prices: np.ndarray, usd: np.ndarray, side: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Long/short USD per bucket by searchsorted + bincount (prices NaN or outside: dropped)."""
    n = len(edges) - 1
    k = np.searchsorted(edges, prices, side="right") - 1
    ok = (k >= 0) & (k < n) & ~np.isnan(prices)
    long = np.bincount(k[ok & (side > 0)], weights=usd[ok & (side > 0)], minlength=n)
    short = np.bincount(k[ok & (side < 0)], weights=usd[ok & (side < 0)], minlength=n)
    return long, short
