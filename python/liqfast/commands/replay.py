"""`liqfast replay`: feed recorded frames through the same decoders, deterministically, and
write the normalised events (and optionally bars) as JSON lines."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="decode recorded traffic into normalised events/bars")
    p.add_argument("files", nargs="+", help="*.lfr.gz recordings (merged by receive time)")
    p.add_argument("--out", default=None, help="write events as JSON lines (.gz to compress); '-' for stdout")
    p.add_argument("--bars", default=None, metavar="INTERVAL", help="also build bars of this interval (e.g. 5m)")
    p.add_argument("--bars-out", default=None, help="write bars as JSON lines (default: summary only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..events import BarSet, encode_event
    from ..exchanges.backfill import parse_interval
    from ..exchanges.clitools import open_out
    from ..exchanges.replay import ReplayStats, replay
    from ..progress import Progress

    stats = ReplayStats()
    bars = BarSet(parse_interval(args.bars)) if args.bars else None
    kinds: dict[str, int] = {}
    nbars = 0
    to_stdout = args.out == "-"
    with open_out(None if to_stdout else args.out) as out, open_out(args.bars_out) as bout, \
            Progress(None, "replay", unit="events", enabled=not to_stdout) as prog:
        def write_bars(items: list[Any]) -> None:
            nonlocal nbars
            nbars += len(items)
            if bout is not None:
                for b in items:
                    bout.write(encode_event(b) + b"\n")

        for ev in replay(args.files, stats=stats):
            k = type(ev).__name__
            kinds[k] = kinds.get(k, 0) + 1
            if to_stdout:
                sys.stdout.buffer.write(encode_event(ev) + b"\n")
            elif out is not None:
                out.write(encode_event(ev) + b"\n")
            if bars is not None:
                write_bars(bars.add(ev))
            prog.update(1)
        if bars is not None:
            write_bars(bars.flush())
    s = stats.as_dict()
    print(f"replayed {s['files']} file(s): {s['frames']} frames, {s['events']} events "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'}), {s['gaps']} gap(s)"
          + (f", {nbars} bars" if bars is not None else ""), file=sys.stderr)
    errors = 0
    for fam, d in s["decode"].items():
        errors += d["decode_errors"]
        print(f"  {fam}: {d['messages']} messages, {d['decode_errors']} decode errors, {d['unhandled']} unhandled",
              file=sys.stderr)
    return 0
