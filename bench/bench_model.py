"""Model replay vs a straightforward Python/numpy implementation of the same model.

1. Replay 30 days of 5-minute bars (8,640 bars, one venue; simulated market) with consume +
   close + open, liqfast (Rust book) against tests/model_reference.py (numpy, rescans the book
   every bar). Both run with ``prune_below=0`` so they do exactly the same work, and the
   per-bar predictions are checked to agree before any time is reported.
2. Per-bar update cost with about 1e4 and 1e6 live cohorts (same bars, same parameters, only
   the size of the book differs).

Run: `python -m bench model` (release build required).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from liqfast.model import LiveModel, ModelParams, replay
from liqfast.sim import SimConfig, Simulator

from .common import record, require_release, table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from model_reference import ReferenceModel  # noqa: E402

BAR_MS = 300_000


def thirty_days() -> object:
    return Simulator(SimConfig(seed=11, start_oi_usd=5e9)).run(8_640, bar_ms=BAR_MS).bars["binance-usdm"]


def grown_book(target: int, bars: object) -> tuple[LiveModel, int]:
    """A model whose book has grown to about `target` cohorts on the first bars of `bars`."""
    b = bars  # type: ignore[assignment]
    # More strata and entry points build the book faster; the time per bar depends on the
    # book's size through its index, not on these.
    params = ModelParams(prune_below=0.0, turnover_per_hour=0.002, leverage_points=15, entry_points=8)
    live = LiveModel(params=params, bar_ms=BAR_MS)
    i = 0
    while live._core.cohort_count(0) < target and i < len(b.ts_ms) - 400:
        live.step("binance-usdm", int(b.ts_ms[i]), b.open[i], b.high[i], b.low[i], b.close[i], b.oi_close_usd[i])
        i += 1
    return live, int(b.ts_ms[i - 1])


def per_bar_costs(targets: list[int], bars: object, chunks: int = 6, chunk: int = 50, warm: int = 10) -> list[tuple[float, int]]:
    """Per-bar update time of books of each size on the same bars, measured in alternating
    chunks so machine noise hits all sizes alike; the first `warm` bars of every chunk are not
    timed (they re-warm the caches the other book evicted). Median of the chunks."""
    b = bars  # type: ignore[assignment]
    books = [grown_book(t, bars) for t in targets]
    sizes = [live._core.cohort_count(0) for live, _ in books]
    start = len(b.ts_ms) - chunks * chunk - 10
    times: list[list[float]] = [[] for _ in books]
    for c in range(chunks):
        for n, (live, ts0) in enumerate(books):
            for k in range(c * chunk, (c + 1) * chunk):
                if k == c * chunk + warm:
                    t = time.perf_counter()
                j = start + k
                live.step("binance-usdm", ts0 + (k + 1) * BAR_MS, b.open[j], b.high[j], b.low[j], b.close[j], b.oi_close_usd[j])
            times[n].append((time.perf_counter() - t) / (chunk - warm))
    return [(float(np.median(ts)), size) for ts, size in zip(times, sizes)]


def main() -> None:
    require_release()
    bars = thirty_days()
    params = ModelParams(prune_below=0.0)
    rows = []
    # Correctness and speed of the full replay, side by side.
    t = time.perf_counter()
    fast = replay(bars, params=params, grid=None)  # type: ignore[arg-type]
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    ref = ReferenceModel(params, bar_ms=BAR_MS)
    pl, ps = ref.replay(bars)  # type: ignore[arg-type]
    t_ref = time.perf_counter() - t
    live = ~fast.warmup
    np.testing.assert_allclose(fast.long_usd[live], pl[live], rtol=1e-6, atol=1e-2)
    np.testing.assert_allclose(fast.short_usd[live], ps[live], rtol=1e-6, atol=1e-2)
    cohorts = fast.model._core.cohort_count(0)
    # The same replay with a heatmap (a column per hour on an automatic grid).
    t = time.perf_counter()
    replay(bars, params=params, resolution_ms=3_600_000)  # type: ignore[arg-type]
    t_heat = time.perf_counter() - t
    rows.append({"case": "30 d × 5 m replay (8,640 bars)", "liqfast s": t_fast, "numpy s": t_ref, "speed-up": t_ref / t_fast,
                 "live cohorts": cohorts})
    rows.append({"case": "  same, with hourly heatmap", "liqfast s": t_heat, "live cohorts": cohorts})
    print(f"  replay: liqfast {t_fast:.3f} s, numpy {t_ref:.1f} s ({t_ref / t_fast:.0f}x), {cohorts:,} live cohorts", flush=True)
    # Per-bar update cost against book size.
    (small, n_small), (large, n_large) = per_bar_costs([10_000, 1_000_000], bars)
    rows.append({"case": f"per-bar update at {n_small:,} cohorts", "liqfast s": small, "live cohorts": n_small,
                 "cost vs smallest": 1.0})
    rows.append({"case": f"per-bar update at {n_large:,} cohorts", "liqfast s": large, "live cohorts": n_large,
                 "cost vs smallest": large / small})
    print(f"  per bar: {small * 1e6:.0f} µs at {n_small:,} cohorts, {large * 1e6:.0f} µs at {n_large:,} ({large / small:.2f}x)")
    print()
    print(table(rows, ["case", "liqfast s", "numpy s", "speed-up", "live cohorts", "cost vs smallest"]))
    record("model", rows, {"per_bar_ratio_1e6_vs_1e4": large / small})


if __name__ == "__main__":
    main()
