"""How well the model recovers the TRUE liquidation map of the simulator, when its assumptions
match the simulator's and when they do not.

Each scenario simulates 10 days of 5-minute bars (seeded), feeds the bars to the model, and
compares the model's map with the simulator's true map at every daily snapshot by histogram
intersection (1 = identical shapes; long and short together, 50-USD buckets). Not a speed
benchmark: a measurement of the model's error, reported beside the speed tables.

Run: `python -m bench fidelity`.
"""

from __future__ import annotations

import numpy as np

import liqfast as lf
from liqfast.model import ModelParams, replay
from liqfast.sim import SimConfig, Simulator, histogram_intersection

from .common import record, require_release, table

DAY = 86_400_000

SCENARIOS: list[tuple[str, SimConfig, ModelParams, bool]] = [
    ("assumptions match (defaults)", SimConfig(), ModelParams(), False),
    ("match, trade-profile entries, 15 strata", SimConfig(), ModelParams(entry_rule="profile", entry_points=8, leverage_points=15), True),
    ("model enters at the close", SimConfig(), ModelParams(entry_rule="close"), False),
    ("model ignores the leverage spread", SimConfig(), ModelParams(leverage_spread=0.0), False),
    ("traders use more high leverage", SimConfig(leverage_mix=((10.0, 0.2), (25.0, 0.2), (50.0, 0.3), (100.0, 0.3))), ModelParams(), False),
    ("position sizes vary (σ = 1.5)", SimConfig(size_sigma=1.5), ModelParams(), False),
    ("traders hold longer (turnover 1 %/h)", SimConfig(turnover_per_hour=0.01), ModelParams(), False),
    ("strong cascades (impact 0.3)", SimConfig(impact=0.3, jumps_per_hour=0.1), ModelParams(), False),
    ("model assumes 2x only", SimConfig(), ModelParams(leverage_mix=((2.0, 1.0),)), False),
]


def main() -> None:
    require_release()
    grid = lf.PriceGrid(30_000, 160_000, 50)
    rows = []
    for name, cfg, params, use_profile in SCENARIOS:
        sim = Simulator(cfg)
        run = sim.run(288 * 10, bar_ms=300_000, grid=grid, every=288)
        bars = run.bars["binance-usdm"]
        res = replay(bars, params=params, grid=grid, resolution_ms=DAY, profiles=run.profiles if use_profile else None)
        assert res.heatmap is not None and len(res.heatmap.ts_ms) == len(run.snapshot_at)
        hi = np.array([
            histogram_intersection(np.r_[res.heatmap.long[k], res.heatmap.short[k]], np.r_[run.true_long[k], run.true_short[k]])
            for k in range(len(run.snapshot_at))
        ])
        rows.append({"scenario": name, "mean HI": float(hi.mean()), "min HI": float(hi.min()), "after day 3": float(hi[3:].mean())})
        print(f"  {name}: mean {hi.mean():.3f}, min {hi.min():.3f}", flush=True)
    print()
    print(table(rows, ["scenario", "mean HI", "min HI", "after day 3"]))
    record("fidelity", rows)


if __name__ == "__main__":
    main()
