"""`liqfast plot`: write the heatmap and the live map as PNG (matplotlib) for reports, from
a server's store (``--db``) or from a freshly simulated market (``--demo``, no network)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("plot", help="write the liquidation heatmap and map as PNG (from a serve store or --demo)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", help="SQLite store written by `liqfast serve`")
    src.add_argument("--demo", action="store_true", help="simulate a market (as `liqfast serve --demo`) and plot it")
    p.add_argument("--symbol", default="BTC")
    p.add_argument("--venues", default=None, help="venues of the store (default: binance-usdm,bybit-linear,okx-linear)")
    p.add_argument("--venue", default="all", help="one venue or all (default)")
    p.add_argument("--window", default="24h", help="12h, 24h, 3d, 7d, 30d, 90d, 180d or 1y (default 24h)")
    p.add_argument("--side", default="both", choices=["both", "long", "short"])
    p.add_argument("--leverage", default="all", help="'all' or LO-HI among 0,7,15,35,70,max (e.g. 15-max)")
    p.add_argument("--bins", type=int, default=400)
    p.add_argument("--bar", default="5m", help="bar interval of the store (default 5m)")
    p.add_argument("--history", default="3d", help="--demo: simulated history (default 3d)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=".", help="output directory (default: current)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import InvalidInputError
    from ..exchanges.backfill import parse_interval
    from ..exchanges.clitools import venue_list
    from ..server.config import DEMO_VENUES, ServerConfig
    from ..server.params import BadRequest, parse_query
    from ..server.service import Service
    from ..server.store import SQLiteStore
    from ._output import output_dir

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("liqfast plot: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 2
    out = output_dir(args.out, "--out")  # before the (demo) history is built
    venues = tuple(venue_list(args.venues)) if args.venues else tuple(DEMO_VENUES)
    sym = args.symbol.upper()
    if args.db and not Path(args.db).is_file():
        raise InvalidInputError(f"no store at {args.db}")
    cfg = ServerConfig(venues=venues, symbols=(sym,), db=args.db or ":memory:", feed="none", bar_ms=parse_interval(args.bar),
                       demo_history_ms=parse_interval(args.history), demo_seed=args.seed)
    store = SQLiteStore(cfg.db)
    svc = Service(cfg, store)
    for eng in svc.engines.values():
        eng.restore()
    eng = svc.engines[sym]
    if args.demo:
        from ..server.demo import _venues, bootstrap_history
        from ..sim import SimConfig, Simulator

        n = int(cfg.demo_history_ms // cfg.bar_ms)
        import time

        start = (int(time.time() * 1000) // cfg.bar_ms) * cfg.bar_ms - n * cfg.bar_ms
        sim = Simulator(SimConfig(seed=args.seed, start_ms=start), venues=_venues(svc), symbol=sym)
        asyncio.run(bootstrap_history(svc, sim, sym, n))
    if not len(eng.times):
        raise InvalidInputError(f"the store has no heatmap columns for {sym}")
    try:
        q = parse_query("heatmap", {"symbol": sym, "venue": args.venue, "window": args.window, "side": args.side,
                                    "leverage": args.leverage, "bins": str(args.bins)}, svc.limits)
    except BadRequest as e:
        raise InvalidInputError(str(e)) from None
    h = eng.heatmap(q)
    m = eng.live_map(q)
    title = f"{sym} {args.venue} {args.window} side={args.side} leverage={args.leverage}"

    total = (h.long.astype(np.float64) + h.short).T
    fig, ax = plt.subplots(figsize=(12, 6), dpi=110)
    day = 86_400_000.0  # matplotlib dates: days since 1970-01-01
    extent = (float(h.x[0]) / day, float(h.x[-1] + h.resolution_ms) / day, h.y_lo, h.y_lo + h.y_step * h.k)
    vmax = float(np.quantile(total[total > 0], 0.995)) if (total > 0).any() else 1.0
    im = ax.imshow(np.sqrt(total / vmax).clip(0, 1), origin="lower", aspect="auto", extent=extent, cmap="viridis",
                   interpolation="nearest")
    closes = h.candles[:, 4]
    ax.plot((h.x + h.resolution_ms / 2) / day, closes, color="white", lw=1.0)
    ax.xaxis_date()
    ax.set_ylabel("price")
    ax.set_title(f"Liquidation heatmap — {title}")
    cb = fig.colorbar(im, ax=ax)
    ticks = np.linspace(0, 1, 5)
    cb.set_ticks(list(ticks))
    cb.set_ticklabels([f"${(t * t * vmax) / 1e6:,.1f}M" for t in ticks])
    cb.set_label("USD per bucket (sqrt scale)")
    fig.autofmt_xdate()
    fig.tight_layout()
    heat_path = out / f"heatmap-{sym}-{args.window}.png"
    fig.savefig(heat_path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 7), dpi=110)
    prices = m.prices()
    ax.barh(prices, m.long, height=m.y_step, color="#e0455a", label="longs")
    ax.barh(prices, m.short, height=m.y_step, color="#2bb673", label="shorts")
    ax2 = ax.twiny()
    ax2.plot(m.long_cumulative, prices + m.y_step / 2, color="#c99a00", lw=1)
    ax2.plot(m.short_cumulative, prices + m.y_step / 2, color="#c99a00", lw=1)
    ax2.set_xlabel("cumulative USD from the current price")
    ax.axhline(m.price, color="black", lw=0.8)
    ax.set_xlabel("USD per bucket")
    ax.set_ylabel("price")
    ax.legend(loc="lower right")
    ax.set_title(f"Live liquidation map — {sym} {args.venue}", pad=28)
    fig.tight_layout()
    map_path = out / f"map-{sym}.png"
    fig.savefig(map_path)
    plt.close(fig)
    store.close()
    print(f"wrote {heat_path} and {map_path}")
    return 0
