"""Shared argument handling of the ingestion subcommands (`liqfast record`, `live`, `replay`, `backfill`)."""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .. import venues


def add_venue_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venues", default="all",
                   help="comma-separated venue ids, or 'all' (default); known: " + ", ".join(venues()))
    p.add_argument("--coins", default="BTC", help="comma-separated coins (BTC,ETH) or native symbols (default BTC)")
    p.add_argument("--channels", default="trades,liquidations,open_interest,mark_funding",
                   help="comma-separated channels (default: all four)")
    p.add_argument("--all-liquidations", action="store_true",
                   help="keep liquidations of every symbol on venues with a market-wide liquidation stream")
    p.add_argument("--url", action="append", default=[], metavar="VENUE=WS|REST",
                   help="base URLs for a venue (mirror, proxy, fake exchange), e.g. "
                   "binance-usdm=ws://127.0.0.1:8080/binance-usdm|http://127.0.0.1:8080/binance-usdm; repeatable")


def venue_list(text: str) -> list[str]:
    from ..errors import UnknownVenueError

    known = venues()
    if text.strip() in ("", "all"):
        return known
    out = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in out if v not in known]
    if bad:
        raise UnknownVenueError(f"unknown venue(s) {', '.join(bad)}; known: {', '.join(known)}")
    return out


def parse_urls(items: list[str]) -> dict[str, Any]:
    """``VENUE=WS|REST`` options -> {venue: VenueUrls}."""
    from ..errors import InvalidInputError
    from .connector import VenueUrls

    out: dict[str, Any] = {}
    for item in items:
        venue, sep, rest = item.partition("=")
        ws, sep2, http = rest.partition("|")
        if not sep or not sep2 or not venue:
            raise InvalidInputError(f"--url expects VENUE=WS_URL|REST_URL, got {item!r}")
        out[venue.strip()] = VenueUrls(ws.strip(), http.strip())
    return out


def connector_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "venues": venue_list(args.venues),
        "coins": [c.strip() for c in args.coins.split(",") if c.strip()],
        "channels": [c.strip() for c in args.channels.split(",") if c.strip()],
        "urls": parse_urls(getattr(args, "url", []) or []),
        "all_liquidations": bool(getattr(args, "all_liquidations", False)),
    }


@contextmanager
def open_out(path: str | None) -> Iterator[IO[bytes] | None]:
    """A binary output file (gzip when the name ends in .gz), or None."""
    if not path:
        yield None
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    f: IO[bytes] = gzip.open(p, "wb") if p.suffix == ".gz" else open(p, "wb")  # type: ignore[assignment]  # noqa: SIM115
    try:
        yield f
    finally:
        f.close()
