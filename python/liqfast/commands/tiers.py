"""`liqfast tiers`: show shipped/saved tier tables, refresh them from the exchanges, or import
a saved endpoint answer (e.g. Binance's signed leverageBracket)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from .. import symbols, venues
from ..errors import ExchangeError, InvalidTierTableError
from ..tiers import fetch_table, from_payload, load_table, loads, save_table, user_data_dir


def register(sub: Any) -> None:
    p = sub.add_parser("tiers", help="show, refresh or import maintenance-margin tier tables")
    tsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = tsub.add_parser("show", help="print the table in use (saved one if any, else shipped)")
    show.add_argument("venue", choices=venues())
    show.add_argument("symbol")
    show.set_defaults(func=_show)
    ls = tsub.add_parser("list", help="list every table with its date and source")
    ls.set_defaults(func=_list)
    ref = tsub.add_parser("refresh", help="download live tables and save them over the shipped ones")
    ref.add_argument("--venue", action="append", choices=venues(), help="venue(s) to refresh (default: all)")
    ref.add_argument("--symbol", action="append", help="native symbol(s) (default: every shipped symbol)")
    ref.add_argument("--base-url", help="replace the exchange host (mirrors, tests)")
    ref.set_defaults(func=_refresh)
    imp = tsub.add_parser("import", help="save a table from a file holding the venue's endpoint answer")
    imp.add_argument("venue", choices=venues())
    imp.add_argument("symbol")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=_import)


def _show(args: argparse.Namespace) -> int:
    t = load_table(args.venue, args.symbol)
    print(f"{t.venue} {t.symbol}: unit {t.unit}, as of {t.as_of} [{t.confidence}]\nsource: {t.source}")
    if t.notes:
        print(f"notes: {t.notes}")
    print(f"{'tier':>4} {'floor':>16} {'cap':>16} {'max lev':>8} {'mmr':>8} {'deduction':>14}")
    for k, r in enumerate(t.tiers, 1):
        cap = "∞" if r.cap is None else f"{r.cap:,.0f}"
        print(f"{k:>4} {r.floor:>16,.0f} {cap:>16} {r.max_leverage:>8g} {r.mmr:>8.4%} {r.maint_amount:>14,.4f}")
    return 0


def _list(args: argparse.Namespace) -> int:
    saved = user_data_dir() / "tiers"
    for v in venues():
        for s in symbols(v):
            t = load_table(v, s)
            where = "saved" if (saved / v / f"{s}.json").is_file() else "shipped"
            print(f"{v:15} {s:14} {len(t.tiers):>3} tiers  {t.as_of}  [{t.confidence}] {where}")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    pairs = [(v, s) for v in (args.venue or venues()) for s in (args.symbol or symbols(v))]

    async def go() -> int:
        failed = 0
        for v, s in pairs:
            try:
                t = await fetch_table(v, s, base_url=args.base_url)
            except (ExchangeError, InvalidTierTableError) as e:
                print(f"{v} {s}: not refreshed: {e}", file=sys.stderr)
                failed += 1
                continue
            print(f"{v} {s}: {len(t.tiers)} tiers saved to {save_table(t)}")
        return 1 if failed == len(pairs) else 0

    return asyncio.run(go())


def _import(args: argparse.Namespace) -> int:
    try:
        raw = args.file.read_bytes()
    except OSError as e:
        raise InvalidTierTableError(f"cannot read {args.file}: {e.strerror}") from None
    t = from_payload(args.venue, args.symbol, loads(raw), source=f"imported from {args.file.name}")
    print(f"{len(t.tiers)} tiers saved to {save_table(t)}")
    return 0
