"""`liqfast live`: connect to the real venues and print normalised events, bars and stats.

With no network it says so within seconds (a parallel DNS + TCP check of every venue host)
instead of retrying in silence; once running it never gives up on a venue (outages become
gap events)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any


def register(sub: Any) -> None:
    from ..exchanges.clitools import add_venue_args

    p = sub.add_parser("live", help="stream normalised events from the real exchanges")
    add_venue_args(p)
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: run)")
    p.add_argument("--show", default="liquidation,gap,bar",
                   help="kinds to print: trade, liquidation, open_interest, mark_funding, gap, bar, or 'all' "
                   "(default liquidation,gap,bar)")
    p.add_argument("--bar", default="5m", help="bar interval (default 5m)")
    p.add_argument("--record", default=None, metavar="DIR", help="also record raw traffic to DIR")
    p.add_argument("--connect-timeout", type=float, default=15.0, metavar="S",
                   help="report venues not connected after S seconds (default 15)")
    p.add_argument("--stats-every", type=float, default=60.0, metavar="S", help="print counters every S s (0: never)")
    p.add_argument("--skip-network-check", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _line(item: Any) -> str:
    from ..events import Bar, Gap, Liquidation, MarkFunding, OpenInterest, Trade

    t = time.strftime("%H:%M:%S", time.gmtime(getattr(item, "exchange_ts_ms", getattr(item, "ts_ms", 0)) / 1000))
    if isinstance(item, Liquidation):
        return (f"{t} LIQ   {item.venue:<14} {item.symbol:<14} {item.side:<5} {item.size_base:>12.6g} @ {item.price:<10g} "
                f"${item.size_usd:>12,.0f}  [{item.completeness}]")
    if isinstance(item, Trade):
        return f"{t} TRADE {item.venue:<14} {item.symbol:<14} {item.side:<5} {item.size_base:>12.6g} @ {item.price:g}"
    if isinstance(item, OpenInterest):
        return f"{t} OI    {item.venue:<14} {item.symbol:<14} {item.oi_base:,.4f} base  ${item.oi_usd:,.0f}"
    if isinstance(item, MarkFunding):
        return f"{t} MARK  {item.venue:<14} {item.symbol:<14} {item.mark_price:g} funding {item.funding_rate:g}"
    if isinstance(item, Gap):
        state = "ongoing" if item.ongoing else f"{(item.end_ms - item.start_ms) / 1000:.1f} s"
        return f"{t} GAP   {item.venue:<14} {item.symbol:<14} {state} ({item.reason}) {','.join(item.channels)}"
    if isinstance(item, Bar):
        return (f"{t} BAR   {item.venue:<14} {item.symbol:<14} O {item.open:g} H {item.high:g} L {item.low:g} C {item.close:g} "
                f"OI ${item.oi_close_usd:,.0f} net {item.taker_net_base:+.4g} liq L ${item.liq_long_usd:,.0f} "
                f"S ${item.liq_short_usd:,.0f}{' GAP' if item.gap else ''}{' rev' + str(item.revision) if item.revision else ''}")
    return repr(item)


async def _live(args: argparse.Namespace) -> int:
    from ..exchanges import Ingest, check_network
    from ..exchanges.backfill import parse_interval
    from ..exchanges.clitools import connector_kwargs
    from ..exchanges.errors import NetworkUnavailableError

    kw = connector_kwargs(args)
    ing = Ingest(bar_interval_ms=parse_interval(args.bar), record_dir=args.record, **kw)
    if not args.skip_network_check:
        try:
            status = await check_network(ing.urls(), timeout=4.0)
        except NetworkUnavailableError as e:
            print(f"liqfast live: {e}", file=sys.stderr)
            print("liqfast live: nothing to stream without a network (`liqfast replay` of a recording works "
                  "offline)", file=sys.stderr)
            return 3
        for host, err in status.items():
            if err:
                print(f"liqfast live: warning: {err} (that venue will keep retrying)", file=sys.stderr)
    show = None if args.show.strip() == "all" else {s.strip() for s in args.show.split(",") if s.strip()}
    sub = ing.hub.subscribe(kinds=show, maxsize=50_000)
    async with ing:
        ready = await ing.wait_ready(args.connect_timeout)
        for c in ing.connectors:
            if c.family not in ready:
                print(f"liqfast live: {c.family} not connected after {args.connect_timeout:.0f} s: "
                      f"{'; '.join(f'{k}: {v}' for k, v in c.status.items()) or 'starting'} (still retrying)",
                      file=sys.stderr)
        print(f"liqfast live: streaming {', '.join(ready) or 'nothing yet'} — Ctrl-C to stop", file=sys.stderr)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        next_stats = time.monotonic() + args.stats_every if args.stats_every else None
        while True:
            timeout = 1.0
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    break
            try:
                item = await asyncio.wait_for(sub.get(), timeout)
                print(_line(item), flush=True)
            except asyncio.TimeoutError:
                pass
            if next_stats is not None and time.monotonic() >= next_stats:
                next_stats = time.monotonic() + args.stats_every
                _print_stats(ing)
    _print_stats(ing)
    return 0


def _print_stats(ing: Any) -> None:
    for s in ing.stats()["connectors"]:
        c, d = s["connection"], s["decode"]
        print(f"[{s['family']}] status {s['status']} messages {d['messages']} events {c['events']} "
              f"decode_errors {d['decode_errors']} reconnects {c['reconnects']} gaps {c['gaps']} "
              f"rotations {c['rotations']}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_live(args))
    except KeyboardInterrupt:
        return 130
