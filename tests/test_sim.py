"""The simulator is the ground truth: deterministic, internally consistent, and the model's
estimated map matches its true map when the model's assumptions match the simulator's."""

from __future__ import annotations

import math

import numpy as np
import pytest

import liqfast as lf
from liqfast.model import ModelParams, replay
from liqfast.sim import SimConfig, Simulator, histogram_intersection

DAY = 86_400_000


def test_deterministic_per_seed() -> None:
    a = Simulator(SimConfig(seed=5)).run(200)
    b = Simulator(SimConfig(seed=5)).run(200)
    c = Simulator(SimConfig(seed=6)).run(200)
    np.testing.assert_array_equal(a.bars["binance-usdm"].close, b.bars["binance-usdm"].close)
    assert not np.array_equal(a.bars["binance-usdm"].close, c.bars["binance-usdm"].close)


def test_bars_events_and_open_interest_are_consistent() -> None:
    sim = Simulator(SimConfig(seed=2, jumps_per_hour=0.5, jump_size=0.03))
    steps = [sim.step() for _ in range(600)]
    liq = [l for st in steps for l in st["liquidations"]]
    assert liq, "a jumpy market liquidates someone"
    for st in steps:
        assert st["low"] <= min(st["open"], st["close"]) and st["high"] >= max(st["open"], st["close"])
        for venue, price, usd, side in st["liquidations"]:
            assert usd > 0 and venue == "binance-usdm"
            assert (price >= st["low"]) if side > 0 else (price <= st["high"])
        assert st["oi_usd"]["binance-usdm"] > 0
    run = Simulator(SimConfig(seed=2)).run(100, bar_ms=300_000)
    b = run.bars["binance-usdm"]
    assert len(b) == 100 and np.all(np.diff(b.ts_ms) == 300_000)
    assert np.all(b.high >= b.low) and np.all(run.realized_long["binance-usdm"] >= 0)
    price, vol, off = run.profiles["binance-usdm"]
    assert off[0] == 0 and off[-1] == len(price) == len(vol) and np.all(np.diff(off) > 0)


def test_true_map_sides() -> None:
    sim = Simulator(SimConfig(seed=4))
    sim.run(50)
    grid = lf.grid_around(sim.price, span=0.5)
    long, short = sim.true_map(grid)
    c = grid.centers()
    assert long.sum() > 0 and short.sum() > 0
    assert long[c > sim.price * 1.01].sum() == 0  # no long is liquidated above the price
    assert short[c < sim.price * 0.99].sum() == 0


def test_multi_venue_flow_split() -> None:
    sim = Simulator(SimConfig(seed=8), venues={"binance-usdm": 3.0, "bybit-linear": 1.0})
    run = sim.run(50)
    oi_a = run.bars["binance-usdm"].oi_close_usd[-1]
    oi_b = run.bars["bybit-linear"].oi_close_usd[-1]
    assert oi_a / oi_b == pytest.approx(3.0, rel=0.3)


def test_bad_config() -> None:
    with pytest.raises(lf.InvalidInputError, match="step_ms"):
        Simulator(SimConfig(step_ms=0))
    with pytest.raises(lf.InvalidInputError, match="leverage_mix"):
        Simulator(SimConfig(leverage_mix=((0.5, 1.0),)))
    with pytest.raises(lf.InvalidInputError, match="multiple of step_ms"):
        Simulator(SimConfig()).run(10, bar_ms=90_000)
    with pytest.raises(lf.UnknownVenueError):
        Simulator(SimConfig(), venues={"nope": 1.0})
    # Settings that used to panic (a NaN cascade) or exhaust memory (a day-long step's flow).
    with pytest.raises(lf.InvalidInputError, match="impact"):
        Simulator(SimConfig(impact=1e9))
    with pytest.raises(lf.InvalidInputError, match="step_ms"):
        Simulator(SimConfig(step_ms=10**12))
    big = Simulator(SimConfig(), venues={"binance-usdm": 1e308})
    assert big.run(3).bars["binance-usdm"].oi_close_usd[-1] > 0


@pytest.mark.slow
def test_estimated_map_matches_true_map_when_assumptions_match() -> None:
    """The model fed with the simulator's bars (and trade profiles) recovers the true map:
    histogram intersection ≥ 0.9 at every daily snapshot of a 10-day run."""
    grid = lf.PriceGrid(30_000, 160_000, 50)
    sim = Simulator(SimConfig(seed=3))
    run = sim.run(288 * 10, bar_ms=300_000, grid=grid, every=288)
    bars = run.bars["binance-usdm"]
    for params, profiles in ((ModelParams(), None), (ModelParams(entry_rule="profile", entry_points=8, leverage_points=15), run.profiles)):
        res = replay(bars, params=params, grid=grid, resolution_ms=DAY, profiles=profiles)
        assert res.heatmap is not None and len(res.heatmap.ts_ms) == len(run.snapshot_at)
        hi = [histogram_intersection(np.r_[res.heatmap.long[k], res.heatmap.short[k]], np.r_[run.true_long[k], run.true_short[k]])
              for k in range(len(run.snapshot_at))]
        assert min(hi) >= 0.9, (params, np.round(hi, 3))
        # Mass is right too: the book follows the open interest.
        assert res.heatmap.long[-1].sum() == pytest.approx(run.true_long[-1].sum(), rel=0.05)


def test_mismatched_assumptions_degrade() -> None:
    grid = lf.PriceGrid(30_000, 160_000, 50)
    run = Simulator(SimConfig(seed=3)).run(288 * 3, bar_ms=300_000, grid=grid, every=288)
    bars = run.bars["binance-usdm"]

    def overlap(p: ModelParams) -> float:
        h = replay(bars, params=p, grid=grid, resolution_ms=DAY).heatmap
        assert h is not None
        return histogram_intersection(np.r_[h.long[-1], h.short[-1]], np.r_[run.true_long[-1], run.true_short[-1]])

    good = overlap(ModelParams())
    assert overlap(ModelParams(leverage_mix=((2.0, 1.0),))) < good - 0.3
    assert overlap(ModelParams(leverage_spread=0.0)) < good - 0.1


def test_run_and_config_arguments_are_checked() -> None:
    sim = Simulator(SimConfig(seed=2))
    for kw, words in ((dict(n_bars=-1), "n_bars"), (dict(n_bars=1.5), "n_bars"), (dict(n_bars="3"), "n_bars"),
                      (dict(n_bars=3, every=0), "every"), (dict(n_bars=3, every=1.5), "every"),
                      (dict(n_bars=3, bar_ms=300_000.0), "bar_ms"), (dict(n_bars=3, bar_ms="x"), "bar_ms")):
        with pytest.raises(lf.InvalidInputError, match=words):
            sim.run(**kw)  # type: ignore[arg-type]
    assert len(sim.run(0).bars["binance-usdm"]) == 0
    for cfg, words in ((SimConfig(turnover_leverage_exponent=math.nan), "turnover_leverage_exponent"),
                       (SimConfig(turnover_leverage_exponent=1e6), "turnover_leverage_exponent"),
                       (SimConfig(oi_drift_per_hour=math.nan), "oi_drift_per_hour"),
                       (SimConfig(oi_drift_per_hour=math.inf), "oi_drift_per_hour"),
                       (SimConfig(leverage_mix=((10.0, 0.0), (50.0, 0.0))), "weights must not all be 0"),
                       (SimConfig(start_price=5e-324), r"start_price must be in \[1e-9, 1e12\], got 5e-324"),
                       (SimConfig(start_price=math.inf), "start_price"),
                       (SimConfig(start_ms=2**63 - 10), "start_ms"),
                       (SimConfig(trades_per_step=True), "trades_per_step must not be a bool"),  # type: ignore[arg-type]
                       (SimConfig(leverage_mix=((True, 1.0), (10.0, 1.0))), "leverage_mix must be")):
        with pytest.raises(lf.InvalidInputError, match=words):
            Simulator(cfg)
    # An empty venue mapping used to fall back to binance-usdm.
    with pytest.raises(lf.InvalidInputError, match="at least one venue"):
        Simulator(venues={})
    with pytest.raises(lf.InvalidInputError, match="config must be a SimConfig"):
        Simulator({"seed": 1})  # type: ignore[arg-type]


def test_venues_grids_and_spreads_of_the_wrong_kind() -> None:
    for venues, words in (({"binance-usdm": "x"}, "weight of binance-usdm must be a number"),
                          ({"binance-usdm": None}, "weight of binance-usdm must be a number"),
                          ({"binance-usdm": True}, "weight of binance-usdm must be a number")):
        with pytest.raises(lf.InvalidInputError, match=words):
            Simulator(venues=venues)  # type: ignore[arg-type]
    sim = Simulator(SimConfig(seed=4))
    grid = lf.grid_around(90_000)
    with pytest.raises(lf.InvalidInputError, match="venue 'bybit-linear' is not simulated"):
        sim.true_map(grid, venue="bybit-linear")
    for bad in (None, 5):
        with pytest.raises(lf.GridError, match="grid must be a liqfast.PriceGrid"):
            sim.true_map(bad)  # type: ignore[arg-type]
    with pytest.raises(lf.GridError, match="grid must be a liqfast.PriceGrid"):
        sim.run(2, grid=5)  # type: ignore[arg-type]
    # A spread past float range panicked in the price path (NaN prices).
    for name in ("vol_per_sqrt_hour", "jump_size", "oi_vol_per_sqrt_hour", "wick", "leverage_spread", "size_sigma",
                 "start_oi_usd"):
        with pytest.raises(lf.InvalidInputError, match=f"{name} must be <="):
            Simulator(SimConfig(**{name: 1e300}))
    wild = Simulator(SimConfig(vol_per_sqrt_hour=1.0, jumps_per_hour=5.0, jump_size=1.0, step_ms=86_400_000))
    bars = wild.run(200, bar_ms=86_400_000).bars["binance-usdm"]
    assert np.isfinite(bars.close).all() and (bars.close > 0).all()


def test_histogram_intersection_checks_its_arrays() -> None:
    assert histogram_intersection(np.ones(3), np.ones(3)) == pytest.approx(1.0)
    for a, b in (("ab", "cd"), (np.ones(3), np.ones(4))):
        with pytest.raises(lf.InvalidArrayError, match="histogram_intersection needs"):
            histogram_intersection(a, b)  # type: ignore[arg-type]
