"""`liqfast map`: print a liquidation map of a book of positions (a CSV file, or a seeded
sample book) as a text chart with cumulative totals."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from .. import liquidation_map, liquidation_prices, max_leverage, venues
from ..errors import InvalidInputError
from ..maps import LiquidationMap, grid_around


def register(sub: Any) -> None:
    p = sub.add_parser("map", help="print a liquidation map of a book (CSV or --sample)")
    p.add_argument("csv", nargs="?", help="CSV with columns entry,qty,side,leverage (side: long/short or 1/-1)")
    p.add_argument("--sample", action="store_true", help="use a seeded sample book instead of a CSV")
    p.add_argument("--positions", type=int, default=1_000_000, help="sample book size (default 1,000,000)")
    p.add_argument("--price", type=float, default=90_000.0, help="sample book price / map centre")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--venue", default="binance-usdm", choices=venues())
    p.add_argument("--symbol", default="BTC")
    p.add_argument("--span", type=float, default=0.15, help="map covers price·(1 ± span)")
    p.add_argument("--rows", type=int, default=30, help="rows of the text chart")
    p.set_defaults(func=run)


def sample_book(n: int, price: float, seed: int, venue: str = "binance-usdm", symbol: str = "BTC") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A plausible book: entries spread around the price, log-normal USD sizes (mostly
    retail), the default leverage mix 5x 15 %, 10x 30 %, 25x 25 %, 50x 20 %, 100x 10 %, capped
    at what the venue allows for each position's size."""
    from ..venues import margin_model

    rng = np.random.default_rng(seed)
    entry = price * np.exp(rng.normal(0.0, 0.03, n))
    usd = np.exp(rng.normal(np.log(5_000), 1.2, n))
    model = margin_model(venue, symbol)
    qty = (usd / entry if model.kind == "linear" else usd) / model.contract_size
    side = rng.choice(np.array([1, -1], dtype=np.int8), n)
    lev = rng.choice(np.array([5.0, 10.0, 25.0, 50.0, 100.0]), n, p=[0.15, 0.30, 0.25, 0.20, 0.10])
    lev = np.minimum(lev, max_leverage(venue, entry, qty, symbol=symbol))
    return entry, qty, side, lev


def read_book(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import csv

    entry, qty, side, lev = [], [], [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"entry", "qty", "side", "leverage"} - set(reader.fieldnames or [])
            if missing:
                raise InvalidInputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            for i, row in enumerate(reader, start=2):
                if any(row[c] is None for c in ("entry", "qty", "side", "leverage")):
                    raise InvalidInputError(f"{path}:{i}: the row has fewer fields than the header")
                try:
                    entry.append(float(row["entry"]))
                    qty.append(float(row["qty"]))
                    s = row["side"].strip().lower()
                    side.append(1 if s in ("long", "buy", "1", "+1") else -1 if s in ("short", "sell", "-1") else 0)
                    lev.append(float(row["leverage"]))
                except ValueError as e:
                    raise InvalidInputError(f"{path}:{i}: {e}") from None
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InvalidInputError(f"{path}: not a CSV text file ({e})") from None
    return np.array(entry), np.array(qty), np.array(side, dtype=np.int8), np.array(lev)


def render(m: LiquidationMap, rows: int, width: int = 28) -> str:
    """Text chart: buckets merged into `rows` bands, highest price first."""
    edges = np.linspace(0, len(m.grid), rows + 1).astype(int)
    centers = m.grid.centers()
    ref = m.grid.locate(m.ref_price)
    bands = [(centers[a:b].mean(), m.long[a:b].sum(), m.short[a:b].sum(), a <= ref < b) for a, b in zip(edges, edges[1:]) if b > a]
    peak = max(max(lg, sh) for _, lg, sh, _ in bands) or 1.0
    lines = [f"{'price':>10}  {'longs liquidated':>{width}} | {'shorts liquidated':<{width}}"]
    for price, lg, sh, here in reversed(bands):
        mark = " <" if here else ""
        lbar = "█" * round(lg / peak * width)
        sbar = "█" * round(sh / peak * width)
        lines.append(f"{price:>10,.0f}  {lbar:>{width}} | {sbar:<{width}}{mark}")
    return "\n".join(lines)


def _usd(x: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"${x / div:,.2f}{unit}"
    return f"${x:,.0f}"


def run(args: argparse.Namespace) -> int:
    if args.sample == bool(args.csv):
        print("liqfast map: give a CSV file or --sample", file=sys.stderr)
        return 2
    # (Each of these ended in a numpy traceback.)
    for option, value, low in (("--positions", args.positions, 0), ("--rows", args.rows, 1), ("--seed", args.seed, 0)):
        if value < low:
            raise InvalidInputError(f"{option} must be >= {low}, got {value}")
    if args.sample:
        entry, qty, side, lev = sample_book(args.positions, args.price, args.seed, args.venue, args.symbol)
        centre = args.price
        # A live book holds no position the current price has already liquidated.
        lp = liquidation_prices(args.venue, side, entry, qty, leverage=lev, symbol=args.symbol)
        alive = np.where(side > 0, ~(lp >= centre), ~(lp <= centre))
        entry, qty, side, lev = entry[alive], qty[alive], side[alive], lev[alive]
    else:
        entry, qty, side, lev = read_book(args.csv)
        # (Weights summing to 0 raised ZeroDivisionError; the map names the bad rows.)
        centre = float(np.average(entry, weights=qty)) if len(entry) and qty.sum() > 0 else args.price
    grid = grid_around(centre, span=args.span, venue=args.venue, symbol=args.symbol)
    t = time.perf_counter()
    m = liquidation_map(entry, qty, side, lev, grid, venue=args.venue, symbol=args.symbol, ref_price=centre)
    dt = time.perf_counter() - t
    print(render(m, args.rows))
    k = grid.locate(centre)
    tot = m.totals
    print(
        f"\n{len(entry):,} positions on {args.venue} {args.symbol}, {len(grid)} buckets of {grid.step:g}"
        f" ({dt * 1e3:.1f} ms). Reference price {centre:,.0f} (<)."
    )
    for pct in (0.02, 0.05, 0.10):
        down = grid.locate(centre * (1 - pct))
        up = grid.locate(centre * (1 + pct))
        lc = m.long_cumulative[max(down, 0)] if down <= k else 0.0
        sc = m.short_cumulative[min(up, len(grid) - 1)] if up >= k else 0.0
        print(f"  price -{pct:.0%}: {_usd(lc)} of longs liquidated   price +{pct:.0%}: {_usd(sc)} of shorts liquidated")
    print(f"  outside the chart: longs {_usd(tot['below'][0] + tot['above'][0])}, shorts {_usd(tot['below'][1] + tot['above'][1])};"
          f" never liquidated: {_usd(tot['never'][0] + tot['never'][1])}")
    return 0
