"""`liqfast record`: write the venues' raw traffic (every frame, with its receive time) to
compressed files that `liqfast replay` feeds back through the same decoders."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any


def register(sub: Any) -> None:
    from ..exchanges.clitools import add_venue_args

    p = sub.add_parser("record", help="record raw exchange traffic to compressed files")
    add_venue_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the *.lfr.gz files")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: run)")
    p.add_argument("--rotate", type=float, default=3600.0, metavar="S", help="start a new file every S s (default 3600)")
    p.add_argument("--stats-every", type=float, default=30.0, metavar="S", help="print progress every S s (0: never)")
    p.add_argument("--skip-network-check", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


async def _record(args: argparse.Namespace) -> int:
    from ..exchanges import Ingest, Recorder, check_network
    from ..exchanges.clitools import connector_kwargs
    from ..exchanges.errors import NetworkUnavailableError

    kw = connector_kwargs(args)
    ing = Ingest(bars=False, **kw)
    for c in ing.connectors:
        rec = Recorder(args.out, c.family, meta=c.recording_meta(), rotate_s=args.rotate or None)
        c.attach_recorder(rec)
        ing.recorders.append(rec)
    if not args.skip_network_check:
        try:
            await check_network(ing.urls(), timeout=4.0)
        except NetworkUnavailableError as e:
            print(f"liqfast record: {e}", file=sys.stderr)
            return 3
    start = time.monotonic()
    async with ing:
        ready = await ing.wait_ready(15.0)
        print(f"liqfast record: recording {', '.join(ready) or 'nothing yet (retrying)'} to {args.out}",
              file=sys.stderr)
        while args.duration is None or time.monotonic() - start < args.duration:
            step = args.stats_every or 1.0
            if args.duration is not None:
                step = min(step, max(0.05, args.duration - (time.monotonic() - start)))
            await asyncio.sleep(step)
            if args.stats_every:
                recs = sum(r.records for r in ing.recorders)
                mb = sum(r.bytes for r in ing.recorders) / 1e6
                print(f"liqfast record: {recs} records, {mb:.1f} MB raw, {ing.events} events", file=sys.stderr)
    files = [str(f) for r in ing.recorders for f in r.files]
    print("\n".join(files))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_record(args))
    except KeyboardInterrupt:
        return 130
