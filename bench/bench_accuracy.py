"""Accuracy on real data, out of sample: fit on the first 60 % of the bars, score the last 40 %.

Reads the development data next to the repository (`../shared/data/real-dev`, or the paths in
LIQFAST_BARS / LIQFAST_REALIZED); nothing from it is stored. Scores the calibrated model, the
consensus recipe of the public tools (entry at the close, the discrete leverage mix, no
turnover) and the no-model baselines on the same held-back bars, each with 90 % intervals from
1,000 block-bootstrap resamples of those bars.

Run: `python -m bench accuracy`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from liqfast.backtest import backtest
from liqfast.calibrate import calibrate
from liqfast.model import Bars, ModelParams, read_realized

from .common import record, require_release, table

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dev"


def _ci(ci: list[float]) -> str:
    """A 90 % block-bootstrap interval (see `liqfast.backtest.intervals`) as text."""
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def main() -> None:
    require_release()
    bars_path = Path(os.environ.get("LIQFAST_BARS", DEV / "bars_1h.csv.gz"))
    real_path = Path(os.environ.get("LIQFAST_REALIZED", DEV / "realized_1h.csv.gz"))
    if not bars_path.is_file() or not real_path.is_file():
        print(f"  skipped: no data at {bars_path} / {real_path}")
        return
    bars = Bars.from_csv(bars_path)
    real = read_realized(real_path)
    cut = int(bars.ts_ms[int(len(bars) * 0.6)])
    t = time.perf_counter()
    prof = calibrate(bars, real, fit_until=cut)
    fit_s = time.perf_counter() - t
    scale = prof.scale["binance-usdm"]
    recipe = ModelParams(entry_rule="close", leverage_spread=0.0, turnover_per_hour=0.0, intrabar=0.0)
    rows = []
    for name, params, s in (("liqfast model (calibrated)", prof.params, scale), ("consensus recipe", recipe, 1.0)):
        rep = backtest(bars, real, params=params, scale=s, score_from=cut, bootstrap=1000)
        for side in ("long", "short"):
            m = rep["model"][side]
            rows.append({"predictor": name, "side": side, "spearman": m["spearman"], "spearman 90 %": _ci(m["spearman_ci"]),
                         "top-decile hit": m["top_decile_hit"], "hit 90 %": _ci(m["top_decile_hit_ci"]),
                         "hits": f"{m['top_decile_hits']}/{m['top_decile_bars']}",
                         "capture": m["capture"], "pred/real": m["ratio"] if name.startswith("liqfast") else float("nan")})
        if name.startswith("liqfast"):
            for base in ("wick_oi", "return_oi"):
                for side in ("long", "short"):
                    b = rep[base][side]
                    rows.append({"predictor": base, "side": side, "spearman": b["spearman"], "spearman 90 %": _ci(b["spearman_ci"]),
                                 "top-decile hit": b["top_decile_hit"], "hit 90 %": _ci(b["top_decile_hit_ci"]),
                                 "hits": f"{b['top_decile_hits']}/{b['top_decile_bars']}",
                                 "capture": b["capture"], "pred/real": float("nan")})
    print(f"  fitted on {prof.bars} bars in {fit_s:.1f} s (in-sample objective {prof.objective:.3f}); "
          f"scored {int(np.sum(bars.ts_ms >= cut))} held-back bars", file=sys.stderr)
    print(table(rows, ["predictor", "side", "spearman", "spearman 90 %", "top-decile hit", "hit 90 %", "hits", "capture", "pred/real"]))
    record("accuracy", rows, {"in_sample": prof.in_sample, "params": {k: getattr(prof.params, k) for k in prof.params.__struct_fields__}})


if __name__ == "__main__":
    main()
