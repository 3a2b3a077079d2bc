"""Query parameters: every one is checked against the known venues, symbols, windows and
limits; anything else is a :class:`BadRequest` (HTTP 400 with a message naming the
parameter and what is allowed). Unknown parameters are rejected too, so a typo
(``windw=7d``) never silently serves the default."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import msgspec

from ..model import WINDOWS

__all__ = [
    "BANDS",
    "BadRequest",
    "FORMATS",
    "LEVERAGE_EDGES",
    "Limits",
    "Query",
    "ROUTE_PARAMS",
    "SIDES",
    "leverage_label",
    "parse_query",
]

#: Leverage band edges. Heatmap columns are stored per band, so filters are unions of
#: adjacent bands: ``leverage=LO-HI`` with LO, HI among these labels (``max`` = no limit).
LEVERAGE_EDGES: tuple[tuple[str, float], ...] = (("0", 0.0), ("7", 7.0), ("15", 15.0), ("35", 35.0), ("70", 70.0), ("max", math.inf))
BANDS: tuple[tuple[float, float], ...] = tuple(
    (LEVERAGE_EDGES[i][1], LEVERAGE_EDGES[i + 1][1]) for i in range(len(LEVERAGE_EDGES) - 1)
)
_EDGE_INDEX = {label: i for i, (label, _) in enumerate(LEVERAGE_EDGES)}
SIDES = ("both", "long", "short")
FORMATS = ("json", "npy", "npz", "arrow")
_INT = re.compile(r"^-?[0-9]{1,16}$")
_NUM = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6})?$")

#: Parameters each route accepts.
ROUTE_PARAMS: dict[str, frozenset[str]] = {
    "heatmap": frozenset({"symbol", "venue", "window", "side", "leverage", "bins", "format", "end", "span"}),
    "map": frozenset({"symbol", "venue", "side", "leverage", "bins", "span"}),
    "levels": frozenset({"symbol", "venue", "side", "leverage", "span", "n"}),
    "liquidations": frozenset({"symbol", "venue", "window", "end", "limit"}),
    "stream": frozenset({"symbol", "venue", "window", "side", "leverage", "bins", "span"}),
}


class BadRequest(Exception):
    """A query the server refuses (HTTP 400)."""


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What queries may ask for (from the server configuration)."""

    venues: tuple[str, ...]
    symbols: tuple[str, ...]
    default_bins: int = 400
    max_bins: int = 2_000
    min_bins: int = 20
    max_liquidations: int = 10_000
    default_liquidations: int = 1_000
    max_levels: int = 50


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """A validated query. ``venue`` is a venue id or "all"; ``lev`` the band index range
    ``[lo, hi)``; ``end`` (ms, exclusive) None means "now"."""

    symbol: str
    venue: str = "all"
    window: str = "24h"
    side: str = "both"
    lev: tuple[int, int] = (0, len(BANDS))
    bins: int = 400
    format: str = "json"
    end: int | None = None
    span: float = 0.15
    n: int = 10
    limit: int = 1_000

    def leverage(self) -> tuple[float, float]:
        return LEVERAGE_EDGES[self.lev[0]][1], LEVERAGE_EDGES[self.lev[1]][1]


def leverage_label(lev: tuple[int, int]) -> str:
    if lev == (0, len(BANDS)):
        return "all"
    return f"{LEVERAGE_EDGES[lev[0]][0]}-{LEVERAGE_EDGES[lev[1]][0]}"


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise BadRequest(f"{name}={shown!r} is not allowed; use one of: {', '.join(allowed)}")
    return value


def _int(name: str, value: str, lo: int, hi: int) -> int:
    if not _INT.fullmatch(value):  # (match let a trailing newline through: $ matches before it)
        raise BadRequest(f"{name} must be an integer in [{lo}, {hi}]")
    v = int(value)
    if not lo <= v <= hi:
        raise BadRequest(f"{name}={v} is out of range; allowed [{lo}, {hi}]")
    return v


def _leverage(value: str) -> tuple[int, int]:
    if value == "all":
        return (0, len(BANDS))
    lo, sep, hi = value.partition("-")
    edges = ", ".join(label for label, _ in LEVERAGE_EDGES)
    if not sep or lo not in _EDGE_INDEX or hi not in _EDGE_INDEX or _EDGE_INDEX[lo] >= _EDGE_INDEX[hi]:
        raise BadRequest(f"leverage must be 'all' or 'LO-HI' with LO < HI among {edges} (e.g. 25x and up: '15-max')")
    return (_EDGE_INDEX[lo], _EDGE_INDEX[hi])


def parse_query(route: str, q: Mapping[str, str], limits: Limits, *, multi: Mapping[str, int] | None = None) -> Query:
    """Validate the query string of ``route`` (``multi``: parameter -> times given)."""
    allowed = ROUTE_PARAMS[route]
    for key in q:
        if key not in allowed:
            shown = key if len(key) <= 40 else key[:40] + "…"
            raise BadRequest(f"unknown parameter {shown!r}; {route} accepts: {', '.join(sorted(allowed))}")
    if multi:
        for key, count in multi.items():
            if count > 1:
                raise BadRequest(f"parameter {key!r} given {count} times")
    kw: dict[str, object] = {}
    symbol = q.get("symbol", limits.symbols[0])
    kw["symbol"] = _choice("symbol", symbol.upper() if symbol.isascii() else symbol, limits.symbols)
    if "venue" in q:
        kw["venue"] = _choice("venue", q["venue"], ("all", *limits.venues))
    if "window" in q:
        kw["window"] = _choice("window", q["window"], tuple(WINDOWS))
    if "side" in q:
        kw["side"] = _choice("side", q["side"], SIDES)
    if "leverage" in q:
        kw["lev"] = _leverage(q["leverage"])
    kw["bins"] = _int("bins", q["bins"], limits.min_bins, limits.max_bins) if "bins" in q else limits.default_bins
    if "format" in q:
        kw["format"] = _choice("format", q["format"], FORMATS)
    if "end" in q:
        # Epoch milliseconds between 2009 and 2100.
        kw["end"] = _int("end", q["end"], 1_230_768_000_000, 4_102_444_800_000)
    if "span" in q:
        if not _NUM.fullmatch(q["span"]):
            raise BadRequest("span must be a number in [0.01, 0.5] (fraction of the price each side)")
        span = float(q["span"])
        if not 0.01 <= span <= 0.5:
            raise BadRequest(f"span={span} is out of range; allowed [0.01, 0.5]")
        kw["span"] = span
    if "n" in q:
        kw["n"] = _int("n", q["n"], 1, limits.max_levels)
    kw["limit"] = (_int("limit", q["limit"], 1, limits.max_liquidations) if "limit" in q
                   else min(limits.default_liquidations, limits.max_liquidations))
    return Query(**kw)  # type: ignore[arg-type]
