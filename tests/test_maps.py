"""Fused map and heatmap against a numpy reference; grids; conservation; cumulative curves."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import liqfast as lf
from oracle import map_reference


def book(n: int, seed: int = 0, price: float = 90_000.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    entry = price * rng.uniform(0.9, 1.1, n)
    qty = 10 ** rng.uniform(-3, 0.3, n)
    side = rng.choice(np.array([1, -1], dtype=np.int8), n)
    lev = rng.choice([2.0, 5.0, 10.0, 25.0, 50.0, 100.0], n)
    return entry, qty, side, lev


@pytest.mark.parametrize("n", [0, 1, 1000, 100_000])
@pytest.mark.parametrize("venue", ["binance-usdm", "binance-coinm", "okx-linear", "hyperliquid"])
def test_map_matches_numpy_reference(n: int, venue: str) -> None:
    entry, qty, side, lev = book(n)
    model = lf.margin_model(venue)
    qty = qty / model.contract_size * (1 if model.kind == "linear" else 90_000)
    lev = np.minimum(lev, 20.0)
    grid = lf.grid_around(90_000, span=0.4, venue=venue, symbol="BTC")
    m = lf.liquidation_map(entry, qty, side, lev, grid, venue=venue)
    prices = lf.liquidation_prices(venue, side, entry, qty, leverage=lev)
    usd = np.array([model.usd_notional(q, p) for q, p in zip(qty, prices)]) if n else np.zeros(0)
    want_long, want_short = map_reference(prices, usd, side, grid.edges())
    np.testing.assert_allclose(m.long, want_long, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(m.short, want_short, rtol=1e-9, atol=1e-6)
    # Conservation: every position's notional is in exactly one place.
    tot = m.totals
    for s, name in ((1, "long"), (-1, "short")):
        i = 0 if s > 0 else 1
        counted = tot["in_grid"][i] + tot["below"][i] + tot["above"][i] + tot["never"][i]
        assert counted == pytest.approx(usd[side == s].sum(), rel=1e-9, abs=1e-6), name
        assert tot["count"][i] == int((side == s).sum())
    assert m.long.sum() == pytest.approx(tot["in_grid"][0], rel=1e-9, abs=1e-6)


def test_heatmap_rows_sum_to_map() -> None:
    entry, qty, side, lev = book(50_000, seed=3)
    lev = np.minimum(lev, 50.0)
    grid = lf.grid_around(90_000, span=0.3)
    t = np.random.default_rng(1).integers(0, 24, len(entry))
    h = lf.liquidation_heatmap(entry, qty, side, lev, t, 24, grid)
    m = lf.liquidation_map(entry, qty, side, lev, grid)
    assert h.long.shape == (24, len(grid))
    np.testing.assert_allclose(h.long.sum(axis=0), m.long, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(h.short.sum(axis=0), m.short, rtol=1e-9, atol=1e-6)
    # Row t holds only the positions with time index t.
    sel = t == 5
    m5 = lf.liquidation_map(entry[sel], qty[sel], side[sel], lev[sel], grid)
    np.testing.assert_allclose(h.long[5], m5.long, rtol=1e-9, atol=1e-6)


def test_cumulative_curves() -> None:
    grid = lf.PriceGrid(0, 10, 1)
    long = np.arange(10, dtype=float)
    short = np.arange(10, dtype=float)[::-1].copy()
    from liqfast.maps import cumulative_from

    lc, sc = cumulative_from(grid, long, short, 5.5)
    # Longs below 5.5: falling to bucket k liquidates buckets k..5.
    assert lc.tolist() == [15, 15, 14, 12, 9, 5, 0, 0, 0, 0]
    # Shorts above: rising to bucket k liquidates buckets 5..k.
    assert sc.tolist() == [0, 0, 0, 0, 0, 4, 7, 9, 10, 10]


def test_map_reference_price_default_and_explicit() -> None:
    entry, qty, side, lev = book(1000, seed=9)
    lev = np.minimum(lev, 20.0)
    grid = lf.grid_around(90_000)
    m = lf.liquidation_map(entry, qty, side, lev, grid)
    assert m.ref_price == pytest.approx(np.average(entry, weights=qty))
    m2 = lf.liquidation_map(entry, qty, side, lev, grid, ref_price=85_000)
    k = grid.locate(85_000)
    assert m2.short_cumulative[:k].sum() == 0 and m2.long_cumulative[k + 1:].sum() == 0
    assert m2.long_cumulative[0] == pytest.approx(m2.long[: k + 1].sum())


def test_map_with_margins_and_open_time() -> None:
    entry, qty, side, lev = book(2000, seed=4)
    lev = np.minimum(lev, 20.0)
    margin = entry * qty / lev
    grid = lf.grid_around(90_000)
    a = lf.liquidation_map(entry, qty, side, None, grid, margin=margin)
    b = lf.liquidation_map(entry, qty, side, lev, grid)
    np.testing.assert_allclose(a.long, b.long, rtol=1e-9)
    # Bitget: positions opened before 2025-11-10 use flat tiers, after it tiered.
    t = np.where(np.arange(len(entry)) % 2 == 0, 1_700_000_000_000, 1_800_000_000_000).astype(np.int64)
    mixed = lf.liquidation_prices("bitget-linear", side, entry, qty, leverage=lev, open_time=t)
    flat = lf.liquidation_prices("bitget-linear", side, entry, qty, leverage=lev, formula="flat")
    tiered = lf.liquidation_prices("bitget-linear", side, entry, qty, leverage=lev, formula="tiered")
    np.testing.assert_array_equal(mixed[::2], flat[::2])
    np.testing.assert_array_equal(mixed[1::2], tiered[1::2])


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1e6), st.floats(1e-3, 1e4), st.integers(1, 5000), st.floats(-10.0, 1e7))
def test_grid_locate_agrees_with_edges(lo: float, step: float, n: int, price: float) -> None:
    grid = lf.PriceGrid(lo, lo + n * step, step)
    edges = grid.edges()
    k = grid.locate(price)
    want = int(np.searchsorted(edges, price, side="right")) - 1
    want = -1 if want < 0 else min(want, len(grid))
    assert k == want


def test_grid_helpers() -> None:
    assert lf.grid_step(90_000) == 50.0
    assert lf.grid_step(3_000, venue="binance-usdm", symbol="ETH") == 2.0
    assert lf.grid_step(0.16) == 0.0001
    g = lf.grid_around(90_000, span=0.25)
    assert g.lo <= 67_500 and g.hi >= 112_500 and g.step == 50.0
    assert g.lo % g.step == 0
    assert pickle.loads(pickle.dumps(g)) == g
    # Equal grids hash equal, so a grid can key a cache (-0.0 == 0.0 as well).
    assert hash(pickle.loads(pickle.dumps(g))) == hash(g) and len({g, lf.PriceGrid(g.lo, g.hi, g.step)}) == 1
    assert hash(lf.PriceGrid(-0.0, 10.0, 1.0)) == hash(lf.PriceGrid(0.0, 10.0, 1.0))
    assert len(g.centers()) == len(g) and len(g.edges()) == len(g) + 1


def test_inverse_map_counts_face_value() -> None:
    # 10 BTCUSD_PERP contracts = 1,000 USD wherever they liquidate.
    grid = lf.grid_around(60_000, span=0.5)
    m = lf.liquidation_map(np.array([60_000.0]), np.array([10.0]), np.array([1], dtype=np.int8), 10.0, grid, venue="binance-coinm")
    assert m.long.sum() == pytest.approx(1_000.0)


def test_threads_and_large_batch_consistent() -> None:
    # Large batches run on the pool; the result must not depend on the split.
    entry, qty, side, lev = book(300_000, seed=11)
    lev = np.minimum(lev, 20.0)
    grid = lf.grid_around(90_000)
    full = lf.liquidation_map(entry, qty, side, lev, grid)
    cuts = [0, 1, 40_000, 250_000, len(entry)]
    parts = [lf.liquidation_map(entry[a:b], qty[a:b], side[a:b], lev[a:b], grid) for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_allclose(sum(p.long for p in parts), full.long, rtol=1e-9)
    assert lf._core.thread_count() >= 1
