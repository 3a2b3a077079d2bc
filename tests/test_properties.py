"""Hypothesis: the Rust results match the slow search-based oracle (tests/oracle.py) for every
venue formula and shipped table, including tier hops and never-liquidated positions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import liqfast as lf
import oracle

FORMULAS = [(v, f) for v in oracle.RULES for f in oracle.RULES[v]]


def _symbols(venue: str) -> list[str]:
    return lf.symbols(venue)


@st.composite
def positions(draw: st.DrawFn) -> tuple:
    venue, formula = draw(st.sampled_from(FORMULAS))
    symbol = draw(st.sampled_from(_symbols(venue)))
    model = lf.margin_model(venue, symbol, formula=formula)
    entry = draw(st.floats(50.0, 250_000.0))
    # Notional spread over nine decades so every tier of every table is reached.
    usd = 10 ** draw(st.floats(0.5, 9.3))
    size = usd / entry if model.kind == "linear" else usd
    qty = size / model.contract_size
    side = draw(st.sampled_from([1, -1]))
    use_margin = draw(st.booleans())
    return venue, formula, symbol, model, side, entry, qty, use_margin, draw(st.floats(1.0, 150.0)), draw(st.floats(0.002, 1.2))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(positions())
def test_matches_oracle(case: tuple) -> None:
    venue, formula, symbol, model, side, entry, qty, use_margin, lev, margin_frac = case
    spec = oracle.spec_of(model, oracle.RULES[venue][formula])
    kw: dict = {}
    if use_margin:
        n0 = qty * model.contract_size * (entry if model.kind == "linear" else 1 / entry)
        kw["margin"] = n0 * margin_frac
    else:
        kw["leverage"] = lev
    try:
        want = oracle.liquidation_price(spec, side, entry, qty, **kw)
    except ValueError:
        with pytest.raises(lf.InvalidPositionError):
            lf.liquidation_price(venue, side, entry, qty, symbol=symbol, formula=formula, **kw)
        return
    got = lf.liquidation_price(venue, side, entry, qty, symbol=symbol, formula=formula, **kw)
    if math.isnan(want):
        # The oracle stops searching at 1e-12·entry / 1e12·entry; the closed form may find a
        # root out there, or none at all.
        assert math.isnan(got) or got < 1e-11 * entry or got > 1e11 * entry
        return
    assert got == pytest.approx(want, rel=1e-9), (venue, formula, symbol, side, entry, qty, kw)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FORMULAS), st.integers(0, 2**32 - 1))
def test_batch_equals_scalar(vf: tuple[str, str], seed: int) -> None:
    venue, formula = vf
    rng = np.random.default_rng(seed)
    model = lf.margin_model(venue, formula=formula)
    n = 300
    entry = rng.uniform(1_000, 150_000, n)
    usd = 10 ** rng.uniform(1, 7, n)
    qty = (usd / entry if model.kind == "linear" else usd) / model.contract_size
    side = rng.choice(np.array([1, -1], dtype=np.int8), n)
    cap = np.array([model.tiers[model.tier_at(q, e)][4] for q, e in zip(qty, entry)])
    lev = rng.uniform(1.0, np.minimum(cap, 20.0))
    batch = lf.liquidation_prices(venue, side, entry, qty, leverage=lev, formula=formula)
    for i in range(n):
        one = lf.liquidation_price(venue, int(side[i]), entry[i], qty[i], leverage=lev[i], formula=formula)
        assert (math.isnan(one) and math.isnan(batch[i])) or one == batch[i]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_higher_leverage_moves_towards_entry(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    entry = rng.uniform(10_000, 150_000, n)
    qty = 10 ** rng.uniform(-3, 0.5, n)
    side = rng.choice(np.array([1, -1], dtype=np.int8), n)
    lev = rng.uniform(1.5, 10.0, n)
    a = lf.liquidation_prices("binance-usdm", side, entry, qty, leverage=lev)
    b = lf.liquidation_prices("binance-usdm", side, entry, qty, leverage=lev * 1.5)
    ok = ~np.isnan(a) & ~np.isnan(b)
    assert np.all(np.abs(b - entry)[ok] <= np.abs(a - entry)[ok] * (1 + 1e-12))
    assert np.all(a[side > 0] < entry[side > 0]) and np.all(a[side < 0] > entry[side < 0])
