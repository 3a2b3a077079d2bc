"""Venues, symbols and their margin models.

The formulas (what is code) live in the Rust core; contract sizes, fee rates and tier
tables (what is data) come from ``liqfast/data`` and the user's refreshed tables. This module
joins the two into ``MarginModel`` objects, cached per venue, symbol and formula.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from . import _core
from .errors import InvalidInputError, InvalidTierTableError, UnknownSymbolError, UnknownVenueError
from .tiers import TierTable, load_table

__all__ = [
    "Formula",
    "VenueInfo",
    "margin_model",
    "margin_models",
    "resolve_symbol",
    "symbols",
    "to_epoch_ms",
    "venue_info",
    "venues",
]


@dataclass(frozen=True, slots=True)
class Formula:
    name: str
    #: Positions opened at or after this instant (UTC epoch ms) use it; None: no start date.
    since_ms: int | None
    description: str


@dataclass(frozen=True, slots=True)
class VenueInfo:
    venue: str
    kind: str
    #: Oldest first; the last one is current.
    formulas: tuple[Formula, ...]
    fee_rate: float
    fee_note: str
    symbols: tuple[str, ...]


@functools.cache
def _instruments() -> dict[str, Any]:
    raw = (resources.files("liqfast") / "data" / "instruments.json").read_text()
    data: dict[str, Any] = json.loads(raw)
    data.pop("_about", None)
    return data


def venues() -> list[str]:
    """The venue ids liqfast models."""
    return list(_core.venues())


def _venue_data(venue: str) -> dict[str, Any]:
    if not isinstance(venue, str):
        raise UnknownVenueError(f"venue must be a venue id (str), got {venue!r}; known venues: {', '.join(venues())}")
    try:
        data: dict[str, Any] = _instruments()[venue]
        return data
    except KeyError:
        raise UnknownVenueError(f"unknown venue {venue!r}; known venues: {', '.join(venues())}") from None


def symbols(venue: str) -> list[str]:
    """Native symbols with shipped data for ``venue``."""
    return list(_venue_data(venue)["symbols"])


def resolve_symbol(venue: str, symbol: str) -> str:
    """Native symbol for ``symbol``, which may be native ("BTCUSDT") or a base coin ("BTC")."""
    syms = _venue_data(venue)["symbols"]
    if not isinstance(symbol, str):
        raise InvalidInputError(f"symbol must be a str, got {symbol!r}")
    if symbol in syms:
        return symbol
    wanted = symbol.upper()
    for native, meta in syms.items():
        if native.upper() == wanted or meta["base"] == wanted:
            return str(native)
    raise UnknownSymbolError(f"unknown symbol {symbol!r} for {venue}; known: {', '.join(syms)}")


def _native_or_none(venue: str, symbol: str) -> str | None:
    try:
        return resolve_symbol(venue, symbol)
    except UnknownSymbolError:
        return None


def instrument(venue: str, symbol: str) -> dict[str, Any]:
    native = resolve_symbol(venue, symbol)
    meta: dict[str, Any] = _venue_data(venue)["symbols"][native]
    return meta


def venue_info(venue: str) -> VenueInfo:
    """Kind, formulas (with their start dates), fee and symbols of a venue."""
    data = _venue_data(venue)
    return VenueInfo(
        venue=venue,
        kind=_core.venue_kind(venue),
        formulas=tuple(Formula(n, s, d) for n, s, d in _core.venue_formulas(venue)),
        fee_rate=float(data["fee_rate"]),
        fee_note=str(data.get("fee_note", "")),
        symbols=tuple(data["symbols"]),
    )


def to_epoch_ms(t: int | float | _dt.datetime | str) -> int:
    """Epoch milliseconds from ms, a datetime (naive = UTC) or an ISO string."""
    if isinstance(t, str):
        try:
            t = _dt.datetime.fromisoformat(t)
        except ValueError:
            raise InvalidInputError(f"open_time {t!r} is not an ISO date/time") from None
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.UTC)
        return int(t.timestamp() * 1000)
    if not is_real(t):
        raise InvalidInputError(f"open_time must be epoch ms, a datetime or an ISO string, got {t!r}")
    # The core takes int64 ms; NaN, ±inf and ints past it have no instant.
    if not (math.isfinite(t) and -(2**63) <= t < 2**63):
        raise InvalidInputError(f"open_time must be finite epoch ms within the int64 range, got {t!r}")
    return int(t)


def is_real(x: Any) -> bool:
    """An int, float or numpy scalar of either; not a bool (which would count as 1), not a
    string."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


def number(value: Any, name: str) -> float:
    """``value`` as a float if it is a number (int, float or numpy scalar), else
    InvalidInputError naming ``name``: a string, None or a bool (which would count as 1) is
    a mistake, not something to convert."""
    if not is_real(value):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    return float(value)


@functools.lru_cache(maxsize=256)
def _cached_model(venue: str, native: str, formula: str, contract_size: float | None, fee_rate: float | None) -> _core.MarginModel:
    return _build(venue, native, formula, load_table(venue, native), contract_size, fee_rate)


def _build(venue: str, native: str, formula: str, table: TierTable, contract_size: float | None, fee_rate: float | None) -> _core.MarginModel:
    data = _venue_data(venue)
    meta = data["symbols"].get(native, {})
    cs = contract_size if contract_size is not None else meta.get("contract_size")
    if cs is None:
        raise UnknownSymbolError(f"no contract size known for {venue} {native}; pass contract_size=")
    fee = fee_rate if fee_rate is not None else float(data["fee_rate"])
    return _core.MarginModel(venue, formula, float(cs), float(fee), table.unit, table.rows())


def margin_models(
    venue: str,
    symbol: str | None = None,
    *,
    formula: str | None = None,
    tiers: TierTable | None = None,
    contract_size: float | None = None,
    fee_rate: float | None = None,
) -> tuple[list[_core.MarginModel], list[int | None]]:
    """Models for every formula of ``venue`` (oldest first) with the instant each applies
    from, or just the named ``formula`` — what the batch kernels take. ``symbol`` defaults to
    the tier table's symbol when ``tiers`` is given, else to BTC; one that names another
    symbol than the table is refused."""
    info = venue_info(venue)
    # (Checked here, before they reach the model cache as keys.)
    contract_size = None if contract_size is None else number(contract_size, "contract_size")
    fee_rate = None if fee_rate is None else number(fee_rate, "fee_rate")
    chosen = [f for f in info.formulas if formula is None or f.name == formula]
    if not chosen:
        known = ", ".join(f.name for f in info.formulas)
        raise InvalidInputError(f"venue {venue} has no formula {formula!r}; known: {known}")
    if tiers is not None:
        if not isinstance(tiers, TierTable):
            raise InvalidTierTableError(f"tiers must be a liqfast.TierTable, got {type(tiers).__name__}")
        if tiers.venue != venue and tiers.venue:
            raise InvalidInputError(f"tier table is for {tiers.venue}, not {venue}")
        native = tiers.symbol
        # (A symbol naming another instrument than the table's was silently overridden.)
        if symbol is not None and symbol != native and _native_or_none(venue, symbol) != native:
            raise InvalidInputError(
                f"symbol {symbol!r} does not match the tier table's symbol {native!r}; pass that one or leave symbol out")
        models = [_build(venue, native, f.name, tiers, contract_size, fee_rate) for f in chosen]
    else:
        native = resolve_symbol(venue, "BTC" if symbol is None else symbol)
        models = [_cached_model(venue, native, f.name, contract_size, fee_rate) for f in chosen]
    since = [None if formula is not None else f.since_ms for f in chosen]
    return models, since


def margin_model(
    venue: str,
    symbol: str | None = None,
    *,
    formula: str | None = None,
    open_time: int | float | _dt.datetime | str | None = None,
    tiers: TierTable | None = None,
    contract_size: float | None = None,
    fee_rate: float | None = None,
) -> _core.MarginModel:
    """The margin model of one venue formula: the named one, else the one in force at
    ``open_time``, else the current one."""
    if formula is None and open_time is not None:
        _venue_data(venue)  # (names a bad venue before the core is asked about it)
        formula = _core.formula_at(venue, to_epoch_ms(open_time))
    models, _ = margin_models(venue, symbol, formula=formula, tiers=tiers, contract_size=contract_size, fee_rate=fee_rate)
    return models[-1]
