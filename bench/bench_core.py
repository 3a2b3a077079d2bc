"""Core kernels vs a straightforward numpy implementation of the same maths, side by side.

For 1e6 and 1e7 positions: (a) liquidation prices, (b) the 1-D map (2 × 2,000 buckets),
(c) the 2-D heatmap (288 × 2,000). Also measures the memory-bandwidth floor: the time to
stream the same input bytes on the same threads, doing nothing else. Every liqfast result
is checked against the numpy one before a number is reported.

Run: `python -m bench core` (release build required).
"""

from __future__ import annotations

import os

import numpy as np

import liqfast as lf
from liqfast import _core

from .common import record, require_release, table, timeit

VENUE = "binance-usdm"
BUCKETS = 2_000
TIMES = 288


def make_book(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """A realistic book: entries around 90k, log-normal USD sizes (retail-heavy, with a tail
    into the higher tiers), the default leverage mix capped by each size's tier."""
    rng = np.random.default_rng(seed)
    entry = 90_000.0 * np.exp(rng.normal(0, 0.04, n))
    usd = np.exp(rng.normal(np.log(8_000), 1.3, n))
    qty = usd / entry
    side = rng.choice(np.array([1, -1], dtype=np.int8), n)
    lev = rng.choice(np.array([5.0, 10.0, 25.0, 50.0, 100.0]), n, p=[0.15, 0.30, 0.25, 0.20, 0.10])
    lev = np.minimum(lev, lf.max_leverage(VENUE, entry, qty))
    time_index = np.sort(rng.integers(0, TIMES, n)).astype(np.int64)
    return {"entry": entry, "qty": qty, "side": side, "lev": lev, "time": time_index}


class NumpyReference:
    """The same maths, written the obvious way with numpy: tier at entry by searchsorted,
    closed form per tier, re-solve the rows whose tier at the liquidation price differs."""

    def __init__(self, venue: str) -> None:
        model = lf.margin_model(venue)
        assert model.kind == "linear" and model.tier_unit == "quote" and model.fee_rate == 0.0
        rows = np.array(model.tiers)
        self.caps = rows[:-1, 1]
        self.mmr = rows[:, 2]
        self.cum = rows[:, 3]
        self.maxlev = rows[:, 4]

    def prices(self, entry: np.ndarray, qty: np.ndarray, side: np.ndarray, lev: np.ndarray) -> np.ndarray:
        s = side.astype(np.float64)
        notional = qty * entry
        k = np.searchsorted(self.caps, notional, side="right")
        if np.any(lev > self.maxlev[k] * (1 + 1e-9)):
            raise ValueError("leverage above tier maximum")
        margin = notional / lev
        p = (margin + self.cum[k] - s * notional) / (qty * (self.mmr[k] - s))
        for _ in range(len(self.mmr)):
            k2 = np.searchsorted(self.caps, qty * p, side="right")
            moved = (k2 != k) & (p > 0)
            if not moved.any():
                break
            step = np.sign(k2 - k)
            k = np.where(moved, k + step, k)
            p = np.where(moved, (margin + self.cum[k] - s * notional) / (qty * (self.mmr[k] - s)), p)
        return np.where(p > 0, p, np.nan)

    def buckets(self, p: np.ndarray, grid: lf.PriceGrid) -> np.ndarray:
        return np.floor((p - grid.lo) / grid.step)

    def map(self, book: dict[str, np.ndarray], grid: lf.PriceGrid) -> tuple[np.ndarray, np.ndarray]:
        p = self.prices(book["entry"], book["qty"], book["side"], book["lev"])
        k = self.buckets(p, grid)
        ok = (k >= 0) & (k < len(grid))
        usd = book["qty"] * p
        longs = ok & (book["side"] > 0)
        shorts = ok & (book["side"] < 0)
        n = len(grid)
        return (
            np.bincount(k[longs].astype(np.int64), weights=usd[longs], minlength=n),
            np.bincount(k[shorts].astype(np.int64), weights=usd[shorts], minlength=n),
        )

    def heatmap(self, book: dict[str, np.ndarray], grid: lf.PriceGrid) -> tuple[np.ndarray, np.ndarray]:
        p = self.prices(book["entry"], book["qty"], book["side"], book["lev"])
        k = self.buckets(p, grid)
        n = len(grid)
        ok = (k >= 0) & (k < n)
        cell = book["time"] * n + k
        usd = book["qty"] * p
        out = []
        for mask in (ok & (book["side"] > 0), ok & (book["side"] < 0)):
            out.append(np.bincount(cell[mask].astype(np.int64), weights=usd[mask], minlength=TIMES * n).reshape(TIMES, n))
        return out[0], out[1]


def grid_for() -> lf.PriceGrid:
    step = 25.0
    lo = 90_000.0 - step * BUCKETS / 2
    return lf.PriceGrid(lo, lo + step * BUCKETS, step)


def main() -> None:
    require_release()
    ref = NumpyReference(VENUE)
    grid = grid_for()
    rows = []
    sizes = [int(x) for x in os.environ.get("LIQFAST_BENCH_SIZES", "1000000,10000000").split(",")]
    for n in sizes:
        book = make_book(n)
        e, q, s, l, t = book["entry"], book["qty"], book["side"], book["lev"], book["time"]
        # Correctness first: liqfast vs numpy on this very book.
        p_fast = lf.liquidation_prices(VENUE, s, e, q, leverage=l)
        p_ref = ref.prices(e, q, s, l)
        np.testing.assert_allclose(p_fast, p_ref, rtol=1e-9)
        m = lf.liquidation_map(e, q, s, l, grid, venue=VENUE)
        mr = ref.map(book, grid)
        np.testing.assert_allclose(m.long, mr[0], rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(m.short, mr[1], rtol=1e-6, atol=1e-3)
        h = lf.liquidation_heatmap(e, q, s, l, t, TIMES, grid, venue=VENUE)
        hr = ref.heatmap(book, grid)
        np.testing.assert_allclose(h.long, hr[0], rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(h.short, hr[1], rtol=1e-6, atol=1e-3)

        models, since = [lf.margin_model(VENUE)], [None]
        kernels = {
            "prices": (lambda: _core.liquidation_prices(models, since, e, q, s, l, "leverage"),
                       lambda: ref.prices(e, q, s, l), [e, q, s, l]),
            "map 2×2000": (lambda: _core.liquidation_map(models, since, e, q, s, l, "leverage", grid),
                           lambda: ref.map(book, grid), [e, q, s, l]),
            f"heatmap {TIMES}×2000": (lambda: _core.liquidation_heatmap(models, since, e, q, s, l, "leverage", t, TIMES, grid),
                                     lambda: ref.heatmap(book, grid), [e, q, s, l, t]),
        }
        for name, (fast, slow, inputs) in kernels.items():
            bufs = [np.ascontiguousarray(x).view(np.uint8) for x in inputs]
            # The floor and the kernel alternate, so load from elsewhere on the machine drifts
            # into both alike; best of 7 each.
            floor, t_fast = float("inf"), float("inf")
            for _ in range(7):
                floor = min(floor, timeit(lambda: _core._stream_read(bufs), repeat=1))
                t_fast = min(t_fast, timeit(fast, repeat=1))
            t_slow = timeit(slow, repeat=2 if n >= 10_000_000 else 3)
            nbytes = sum(b.nbytes for b in bufs)
            rows.append({
                "positions": f"{n:.0e}",
                "kernel": name,
                "liqfast ms": t_fast * 1e3,
                "numpy ms": t_slow * 1e3,
                "speed-up": t_slow / t_fast,
                "bytes/pos": nbytes / n,
                "floor ms": floor * 1e3,
                "× floor": t_fast / floor,
                "ns/pos": t_fast / n * 1e9,
            })
            print(f"  {n:.0e} {name}: liqfast {t_fast * 1e3:.1f} ms, numpy {t_slow * 1e3:.0f} ms, "
                  f"{t_slow / t_fast:.0f}x, floor {floor * 1e3:.1f} ms ({t_fast / floor:.2f}x floor)", flush=True)
    print()
    print(table(rows, ["positions", "kernel", "liqfast ms", "numpy ms", "speed-up", "bytes/pos", "floor ms", "× floor"]))
    record("core", rows)


if __name__ == "__main__":
    main()
