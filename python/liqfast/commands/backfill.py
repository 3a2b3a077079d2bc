"""`liqfast backfill`: import history (Binance public data files, OKX/Bybit REST) into the
normalised event stream, with a progress bar."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import sys
from typing import Any

_KINDS = {
    "binance-usdm": "klines,metrics", "binance-coinm": "klines,metrics",
    "okx-linear": "oi,klines", "okx-inverse": "oi,klines", "bybit-linear": "oi,klines", "bybit-inverse": "oi,klines",
}


def register(sub: Any) -> None:
    p = sub.add_parser("backfill", help="import history (Binance data files, OKX/Bybit REST) as events/bars")
    p.add_argument("venue", choices=sorted(_KINDS))
    p.add_argument("symbol", help="native symbol or coin (BTC)")
    p.add_argument("--start", required=True, help="first UTC day, YYYY-MM-DD")
    p.add_argument("--end", default=None, help="last UTC day (inclusive), default = start")
    p.add_argument("--kinds", default=None,
                   help="Binance: klines,metrics,aggTrades; OKX: oi,klines,liquidations; Bybit: oi,klines "
                   "(default: klines + open interest)")
    p.add_argument("--interval", default="5m", help="kline / OI interval (default 5m)")
    p.add_argument("--out", default=None, help="events as JSON lines (.gz to compress)")
    p.add_argument("--bars-out", default=None, help="bars built from the history, as JSON lines")
    p.add_argument("--bar", default=None, help="bar interval (default: --interval)")
    p.add_argument("--base-url", default=None, help="replace the history host (mirror, fake exchange)")
    p.add_argument("--no-verify", action="store_true", help="skip .CHECKSUM verification of Binance files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


async def _backfill(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from ..events import BarSet, encode_event
    from ..exchanges.backfill import BackfillStats, backfill, parse_interval
    from ..exchanges.base import native_symbol
    from ..exchanges.clitools import open_out

    try:
        start = _dt.date.fromisoformat(args.start)
        end = _dt.date.fromisoformat(args.end) if args.end else start
    except ValueError as e:
        raise InvalidInputError(f"dates must be YYYY-MM-DD: {e}") from None
    symbol = native_symbol(args.venue, args.symbol)
    kinds = [k.strip() for k in (args.kinds or _KINDS[args.venue]).split(",") if k.strip()]
    bars = BarSet(parse_interval(args.bar or args.interval), grace_ms=0) if args.bars_out else None
    stats = BackfillStats()
    n = 0
    nbars = 0
    with open_out(args.out) as out, open_out(args.bars_out) as bout:
        async for item in backfill(args.venue, symbol, start, end, kinds, interval=args.interval,
                                   base_url=args.base_url, stats=stats, progress=not args.quiet,
                                   verify_checksums=not args.no_verify):
            n += 1
            if out is not None:
                out.write(encode_event(item) + b"\n")
            if bars is not None:
                for b in bars.add(item):
                    nbars += 1
                    if bout is not None:
                        bout.write(encode_event(b) + b"\n")
        if bars is not None:
            for b in bars.flush():
                nbars += 1
                if bout is not None:
                    bout.write(encode_event(b) + b"\n")
    print(f"backfill {args.venue} {symbol} {start}..{end}: {n} items "
          f"({', '.join(f'{k} {v}' for k, v in sorted(stats.items.items())) or 'none'}), {stats.files} files, "
          f"{len(stats.missing)} missing, {stats.checksum_verified} checksums verified"
          + (f", {nbars} bars" if bars is not None else ""), file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_backfill(args))
    except KeyboardInterrupt:
        return 130
