"""Honest scoring: predicted vs realized liquidations per bar, next to no-model baselines.

The model runs strictly causally: bar t's prediction uses the book built from bars before t
and bar t's own range (what the bar swept), never later data. Scores per side:

* ``spearman``: rank correlation of predicted and realized USD per bar;
* ``top_decile_hit``: share of the 10 % largest realized bars that are also among the 10 %
  largest predicted;
* ``capture``: share of realized USD that falls in the predicted top-decile bars;
* ``ratio``: total predicted / total realized (only meaningful for the model, in USD).

With ``bootstrap=N`` every Spearman and top-decile hit also gets a 90 % interval
(``spearman_ci``, ``top_decile_hit_ci``) from N moving-block resamples of the scored bars
(:func:`intervals`): a few hundred bars leave the top decile only some dozens of bars, so a
point or two either way is within the noise, and the interval says how much.

Baselines on the same bars: ``wick_oi`` (longs: (open − low)/open × OI at the bar's open;
shorts: (high − open)/open × OI) and ``return_oi`` (|close/open − 1| × OI, both sides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArrayError, InvalidBarsError, InvalidInputError
from .model import Bars, ModelParams, _whole, check_realized, replay

__all__ = ["Score", "backtest", "baselines", "intervals", "rank", "score", "spearman"]

F64 = npt.NDArray[np.float64]


def rank(x: F64) -> F64:
    """Ranks from 0 with ties averaged (what Spearman's coefficient needs)."""
    # Equal values share the mean of the positions they occupy in sorted order.
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse.reshape(-1)]


def spearman(a: F64, b: F64) -> float:
    if len(a) < 3:
        return math.nan
    ra, rb = rank(a), rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def _top(x: F64, k: int) -> npt.NDArray[np.intp]:
    # Stable: among equal values the earlier bar ranks first, so results are reproducible.
    return np.argsort(-x, kind="stable")[:k]


@dataclass(frozen=True)
class Score:
    spearman: float
    top_decile_hit: float
    capture: float
    ratio: float
    #: Bars in the realized top decile (k) and how many of them the predictor also ranks there.
    top_decile_bars: int = 0
    top_decile_hits: int = 0

    def as_dict(self) -> dict[str, float]:
        return {"spearman": self.spearman, "top_decile_hit": self.top_decile_hit, "capture": self.capture,
                "ratio": self.ratio, "top_decile_bars": self.top_decile_bars, "top_decile_hits": self.top_decile_hits}


def _top_k(n: int) -> int:
    return max(1, math.ceil(0.1 * n))


def _hits(pred: F64, real: F64, k: int) -> int:
    """Bars among the ``k`` largest realized that are also among the ``k`` largest predicted."""
    return len(set(_top(real, k).tolist()) & set(_top(pred, k).tolist()))


def _pair(pred: Any, real: Any) -> tuple[F64, F64]:
    """Predicted and realized USD per bar as float64 arrays of one length (any sequences)."""
    out = []
    for name, x in (("predicted", pred), ("realized", real)):
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidArrayError(f"{name} must be a sequence of numbers, got {type(x).__name__}") from None
        if a.ndim != 1:
            raise InvalidArrayError(f"{name} must be 1-D, got shape {a.shape}")
        # (NaN sorts as the largest value and would take a top-decile place.)
        if not np.isfinite(a).all():
            raise InvalidInputError(f"{name} must be finite (bar {int(np.argmin(np.isfinite(a)))})")
        out.append(a)
    if out[0].shape != out[1].shape:
        raise InvalidInputError(f"predicted has {out[0].shape} bars, realized {out[1].shape}")
    return out[0], out[1]


def score(pred: F64, real: F64) -> Score:
    """Scores of one predictor against realized USD on the same bars (arrays or sequences)."""
    pred, real = _pair(pred, real)
    n = len(real)
    if n == 0:
        return Score(math.nan, math.nan, math.nan, math.nan)
    k = _top_k(n)
    hits = _hits(pred, real, k)
    top_pred = _top(pred, k)
    total = real.sum()
    capture = float(real[top_pred].sum() / total) if total > 0 else math.nan
    ratio = float(pred.sum() / total) if total > 0 else math.nan
    return Score(spearman(pred, real), hits / k, capture, ratio, k, hits)


def intervals(
    pred: F64, real: F64, *, reps: int = 1000, block: int = 24, level: float = 0.9, seed: int = 0
) -> dict[str, list[float]]:
    """Percentile intervals (``level``, default 90 %) of Spearman and the top-decile hit by a
    moving-block bootstrap: each of ``reps`` resamples strings together randomly placed runs
    of ``block`` consecutive bars (a day of hourly bars by default) until it is as long as the
    series, and is scored like the series. Runs rather than single bars because liquidations
    cluster in time (a cascade spans several bars), which single-bar resampling would hide,
    making the intervals too narrow. Deterministic for a given ``seed`` (an int >= 0)."""
    pred, real = _pair(pred, real)
    if not (_whole(seed) and seed >= 0):
        raise InvalidInputError(f"seed must be a whole number >= 0, got {seed!r}")
    if not (_whole(reps) and 10 <= reps <= 1_000_000):
        raise InvalidInputError(f"bootstrap resamples must be a whole number in [10, 1e6], got {reps!r}")
    if not (_whole(block) and block >= 1):
        raise InvalidInputError(f"bootstrap block must be a whole number of bars >= 1, got {block!r}")
    if not (isinstance(level, (int, float, np.floating)) and not isinstance(level, bool) and 0.0 < level < 1.0):
        raise InvalidInputError(f"interval level must be a number in (0, 1), got {level!r}")
    n = len(real)
    if n < 10:
        raise InvalidInputError(f"need at least 10 scored bars for intervals, got {n}")
    block = min(int(block), n)
    rng = np.random.default_rng(seed)
    runs = -(-n // block)
    k = _top_k(n)
    rho = np.empty(int(reps))
    hit = np.empty(int(reps))
    for r in range(int(reps)):
        # One resample's bar indices (drawn per resample: all at once would take reps × n).
        idx = (rng.integers(0, n - block + 1, size=runs)[:, None] + np.arange(block)).reshape(-1)[:n]
        p, y = pred[idx], real[idx]
        rho[r] = spearman(p, y)
        # Positions in the resample, so a bar drawn twice counts as two bars, as it is scored.
        hit[r] = _hits(p, y, k) / k
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def span(v: F64) -> list[float]:
        v = v[np.isfinite(v)]
        return [float(x) for x in np.percentile(v, q)] if len(v) else [math.nan, math.nan]

    return {"spearman_ci": span(rho), "top_decile_hit_ci": span(hit)}


def baselines(bars: Bars) -> dict[str, tuple[F64, F64]]:
    """No-model predictors (long, short) per bar, using only the bar and the OI at its open."""
    if not isinstance(bars, Bars):
        raise InvalidInputError(f"bars must be a liqfast.model.Bars, got {type(bars).__name__}")
    oi_open = np.r_[np.nan, bars.oi_close_usd[:-1]]
    o = bars.open
    down = (o - bars.low) / o
    up = (bars.high - o) / o
    ret = np.abs(bars.close / o - 1)
    return {"wick_oi": (down * oi_open, up * oi_open), "return_oi": (ret * oi_open, ret * oi_open)}


def backtest(
    bars: Bars,
    realized: tuple[npt.NDArray[np.int64], F64, F64],
    *,
    params: ModelParams | None = None,
    venue: str = "binance-usdm",
    symbol: str = "BTC",
    scale: float = 1.0,
    score_from: int | None = None,
    bootstrap: int = 0,
) -> dict[str, Any]:
    """Run the model over ``bars`` and score it and the baselines against ``realized``
    (``(ts_ms, long_usd, short_usd)``). Bars before ``score_from`` (ms) only build the book.
    Returns a JSON-ready report: ``{"model": {"long": {...}, "short": {...}}, "wick_oi": ...,
    "return_oi": ..., "bars_scored": n, ...}`` plus the per-bar ``series`` for plotting.
    ``bootstrap`` > 0 adds 90 % intervals from that many resamples (:func:`intervals`)."""
    if not isinstance(bars, Bars):
        raise InvalidInputError(f"bars must be a liqfast.model.Bars, got {type(bars).__name__}")
    if len(bars) == 0:
        raise InvalidBarsError("no bars")
    if not (_whole(bootstrap) and (bootstrap == 0 or 10 <= bootstrap <= 1_000_000)):
        raise InvalidInputError(f"bootstrap must be 0 (off) or a number of resamples in [10, 1e6], got {bootstrap!r}")
    if not (score_from is None or _whole(score_from)):
        raise InvalidInputError(f"score_from must be a time in ms (int) or None, got {score_from!r}")
    # Unsorted, NaN or negative realized values used to score silently, unequal lengths to
    # fail with an IndexError.
    r_ts, r_long, r_short = check_realized(realized)
    res = replay(bars, params=params, venue=venue, symbol=symbol, scale=scale, grid=None)
    # Join realized on bar time; bars without a realized row are not scored.
    pos = np.searchsorted(r_ts, bars.ts_ms)
    pos_c = np.minimum(pos, max(len(r_ts) - 1, 0))
    have = (len(r_ts) > 0) & (r_ts[pos_c] == bars.ts_ms) if len(r_ts) else np.zeros(len(bars), bool)
    oi_known = np.r_[False, np.isfinite(bars.oi_close_usd[:-1])]
    pred_l, pred_s = res.long_usd, res.short_usd
    hl = (params.feedback_half_life_hours if params is not None else 0.0)
    if hl > 0:
        from .model import apply_feedback

        real_by_ts = {int(t): (float(a), float(b)) for t, a, b in zip(r_ts, r_long, r_short)}
        pred_l, pred_s = apply_feedback(bars.ts_ms, pred_l, pred_s, real_by_ts, hl)
    mask = have & ~res.warmup & oi_known
    if score_from is not None:
        mask &= bars.ts_ms >= score_from
    if not mask.any():
        raise InvalidBarsError("no bar has both a prediction and a realized value to score")
    real_l, real_s = r_long[pos_c][mask], r_short[pos_c][mask]
    report: dict[str, Any] = {
        "bars_scored": int(mask.sum()),
        "first_scored_ms": int(bars.ts_ms[mask][0]),
        "last_scored_ms": int(bars.ts_ms[mask][-1]),
        "gaps": int(res.gap.sum()),
        "venue": venue,
        "scale": scale,
    }
    preds = {"model": (pred_l, pred_s), **baselines(bars)}
    for name, (pl, ps) in preds.items():
        report[name] = {}
        for side, p, y in (("long", np.nan_to_num(pl[mask]), real_l), ("short", np.nan_to_num(ps[mask]), real_s)):
            report[name][side] = score(p, y).as_dict()
            if bootstrap:
                report[name][side].update(intervals(p, y, reps=int(bootstrap)))
        if name != "model":
            for side in ("long", "short"):
                report[name][side]["ratio"] = math.nan  # unitless predictors
    report["series"] = {
        "ts_ms": bars.ts_ms[mask], "close": bars.close[mask],
        "real_long": real_l, "real_short": real_s,
        "pred_long": pred_l[mask], "pred_short": pred_s[mask],
    }
    return report


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """PNG: price, realized vs predicted longs and shorts per bar, and the score table."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidInputError("plotting needs matplotlib: pip install matplotlib") from None
    s = report["series"]
    t = (s["ts_ms"] - s["ts_ms"][0]) / 86_400_000
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [1.2, 1, 1]})
    axes[0].plot(t, s["close"], lw=0.8, color="black")
    axes[0].set_ylabel("close")
    for ax, side, colour in ((axes[1], "long", "tab:red"), (axes[2], "short", "tab:green")):
        ax.bar(t, s[f"real_{side}"] / 1e6, width=t[1] - t[0] if len(t) > 1 else 0.04, color=colour, alpha=0.6, label="realized")
        ax.plot(t, s[f"pred_{side}"] / 1e6, lw=0.8, color="tab:blue", label="predicted")
        m = report["model"][side]
        b = report["wick_oi"][side]
        ax.set_title(f"{side}s: model Spearman {m['spearman']:.2f}, top-decile {m['top_decile_hit']:.0%}, "
                     f"ratio {m['ratio']:.2f} | wick×OI Spearman {b['spearman']:.2f}, top-decile {b['top_decile_hit']:.0%}",
                     fontsize=9)
        ax.set_ylabel("USD M")
        ax.legend(loc="upper right", fontsize=8)
    axes[2].set_xlabel("days")
    fig.tight_layout()
    out = Path(path)
    try:
        # PNG whatever the name: left to guess, matplotlib wrote "<path>.png" for a name
        # without a suffix and failed on unknown ones.
        fig.savefig(out, dpi=110, format="png")
    except OSError as e:
        raise InvalidInputError(f"cannot write {out}: {e.strerror}") from None
    finally:
        plt.close(fig)
    return out
