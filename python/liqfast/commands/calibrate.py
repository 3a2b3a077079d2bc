"""`liqfast calibrate`: fit the model's free parameters on one period and write a profile."""

from __future__ import annotations

import argparse
from typing import Any

from .. import venues


def register(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="fit model parameters and per-venue scale; write a profile")
    p.add_argument("--bars", required=True)
    p.add_argument("--realized", required=True)
    p.add_argument("--out", required=True, help="profile JSON to write")
    p.add_argument("--venue", default="binance-usdm", choices=venues())
    p.add_argument("--symbol", default="BTC")
    p.add_argument("--fit-until", type=int, default=None, metavar="TS_MS", help="fit only on bars before this time")
    p.add_argument("--rounds", type=int, default=3, help="coordinate-search rounds (default 3; 0 fits only the scale)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..calibrate import calibrate, save_profile
    from ..errors import InvalidInputError
    from ..model import Bars, read_realized
    from ..progress import Progress
    from ._output import output_file

    # Checked before the fit, which can take minutes: these used to fail only after it.
    output_file(args.out, "--out")
    if args.rounds < 0:
        raise InvalidInputError(f"--rounds must be >= 0, got {args.rounds}")
    bars = Bars.from_csv(args.bars)
    realized = read_realized(args.realized)
    with Progress(None, "calibrating", unit="fits") as bar:

        def tick(done: int, total: int, best: float) -> None:
            bar.total = total
            bar.update(1, f"objective {best:.3f}")

        prof = calibrate(bars, realized, venue=args.venue, symbol=args.symbol, fit_until=args.fit_until, rounds=args.rounds,
                         progress=tick)
    save_profile(prof, args.out)
    ins = prof.in_sample
    print(f"profile written to {args.out}: objective {prof.objective:.3f} on {prof.bars} bars; "
          f"Spearman long {ins['long']['spearman']:.3f} short {ins['short']['spearman']:.3f}, "
          f"top-decile long {ins['long']['top_decile_hit']:.0%} short {ins['short']['top_decile_hit']:.0%}, "
          f"scale {prof.scale[args.venue]:.4g}")
    return 0
