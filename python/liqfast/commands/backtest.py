"""`liqfast backtest`: score the model against realized liquidations, beside the baselines."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from .. import venues


def register(sub: Any) -> None:
    p = sub.add_parser("backtest", help="score predicted vs realized liquidations per bar (with baselines)")
    p.add_argument("--bars", required=True, help="CSV(.gz): ts_ms,open,high,low,close,oi_close_usd[,taker_net_base]")
    p.add_argument("--realized", required=True, help="CSV(.gz): ts_ms,long_usd,short_usd")
    p.add_argument("--profile", default="builtin:btc-1h",
                   help="profile from `liqfast calibrate`, `builtin:btc-1h` (default, shipped) or `none` (plain defaults, scale 1)")
    p.add_argument("--venue", default=None, choices=venues(), help="venue of the bars (default: profile's or binance-usdm)")
    p.add_argument("--symbol", default=None)
    p.add_argument("--scale", type=float, default=None,
                   help="USD scale of the predictions (default: the profile's for the venue; 1 with --profile none)")
    p.add_argument("--score-from", type=int, default=None, metavar="TS_MS", help="earlier bars only build the book (warm-up)")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="add 90%% intervals of Spearman and top-decile hit from N block resamples (e.g. 1000)")
    p.add_argument("--plot", metavar="PNG", help="write a plot of predicted vs realized (a .png file)")
    p.set_defaults(func=run)


def _fmt(v: float) -> str:
    return "   —" if not math.isfinite(v) else f"{v:6.3f}"


def _span(ci: list[float]) -> str:
    return f"[{ci[0]:5.3f}, {ci[1]:5.3f}]" if all(map(math.isfinite, ci)) else f"{'—':>15}"


def _need_matplotlib() -> None:
    import importlib.util

    from ..errors import InvalidInputError

    if importlib.util.find_spec("matplotlib") is None:
        raise InvalidInputError("--plot needs matplotlib: pip install matplotlib")


def run(args: argparse.Namespace) -> int:
    from ..backtest import backtest, plot
    from ..calibrate import load_profile
    from ..errors import InvalidInputError
    from ..model import Bars, read_realized
    from ._output import output_file

    if args.plot:
        # Before the backtest: a bad path used to fail (with a traceback) only after it.
        output_file(args.plot, "--plot", (".png",))
        _need_matplotlib()
    params, scale, venue, symbol = None, 1.0, args.venue or "binance-usdm", args.symbol or "BTC"
    if args.profile and args.profile != "none":
        prof = load_profile(args.profile)
        params, venue, symbol = prof.params, args.venue or prof.venue, args.symbol or prof.symbol
        if venue in prof.scale:
            scale = prof.scale[venue]
        elif args.scale is None:
            # (It used to fall back to scale 1 silently: dollar amounts off by the whole scale.)
            raise InvalidInputError(
                f"profile {args.profile} has no scale for {venue} (it has {', '.join(sorted(prof.scale)) or 'none'}); "
                "pass --scale, or --venue one of those")
    if args.scale is not None:
        if not (math.isfinite(args.scale) and args.scale > 0):
            raise InvalidInputError(f"--scale must be a finite number > 0, got {args.scale}")
        scale = args.scale
    bars = Bars.from_csv(args.bars)
    report = backtest(bars, read_realized(args.realized), params=params, venue=venue, symbol=symbol, scale=scale,
                      score_from=args.score_from, bootstrap=args.bootstrap)
    series = report.pop("series")
    if args.plot:
        report["series"] = series
        plot(report, args.plot)
        report.pop("series")
    if args.json:
        print(json.dumps(report, allow_nan=True))
        return 0
    print(f"{report['bars_scored']} bars scored ({report['gaps']} gaps in the series), venue {venue}, scale {scale:.4g}")
    print(f"{'predictor':12} {'side':6} {'spearman':>9} {'top10%hit':>9} {'capture':>9} {'pred/real':>9}"
          + (f"   {'spearman 90%':>15} {'top10%hit 90%':>15}" if args.bootstrap else ""))
    for name in ("model", "wick_oi", "return_oi"):
        for side in ("long", "short"):
            s = report[name][side]
            print(f"{name:12} {side:6} {_fmt(s['spearman']):>9} {_fmt(s['top_decile_hit']):>9} {_fmt(s['capture']):>9} {_fmt(s['ratio']):>9}"
                  + (f"   {_span(s['spearman_ci'])} {_span(s['top_decile_hit_ci'])}" if args.bootstrap else ""))
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
