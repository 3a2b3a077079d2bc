"""Maintenance-margin tier tables: data, never constants.

Tables ship as JSON files (``liqfast/data/tiers/<venue>/<SYMBOL>.json``, format in
``data/README.md``), each with its source and date. A table saved under the user data
directory (``$LIQFAST_DATA_DIR``, default ``~/.local/share/liqfast``) wins over the shipped
one, so ``liqfast tiers refresh`` updates a stale table without a release. A table can also be
built from a venue's own REST payload (``from_payload``) or passed in directly by the caller.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import ExchangeError, InvalidTierTableError, UnknownSymbolError

__all__ = [
    "Tier",
    "TierTable",
    "fetch_table",
    "from_payload",
    "load_table",
    "save_table",
    "user_data_dir",
]

Unit = Literal["quote", "base", "contracts"]


class Tier(msgspec.Struct, frozen=True):
    """One tier. ``cap`` None means unbounded. ``maint_amount`` is the deduction in the margin
    currency (quote for linear, coin for inverse)."""

    floor: float
    cap: float | None
    mmr: float
    maint_amount: float = 0.0
    max_leverage: float = math.inf


class TierTable(msgspec.Struct, frozen=True):
    venue: str
    symbol: str
    unit: Unit
    tiers: tuple[Tier, ...]
    source: str = ""
    as_of: str = ""
    confidence: str = ""
    notes: str = ""

    def rows(self) -> list[tuple[float, float, float, float, float]]:
        """Rows as the Rust core takes them: (floor, cap, mmr, maint_amount, max_leverage)."""
        return [
            (t.floor, math.inf if t.cap is None else t.cap, t.mmr, t.maint_amount, t.max_leverage)
            for t in self.tiers
        ]

    @classmethod
    def from_rows(
        cls,
        venue: str,
        symbol: str,
        unit: Unit,
        rows: Iterable[Mapping[str, Any] | Sequence[Any]],
        *,
        source: str = "user",
        as_of: str | None = None,
    ) -> TierTable:
        """Build a table from dicts with ``floor``/``cap``/``mmr`` (optional ``maint_amount``,
        ``max_leverage``) or tuples in that order. A missing ``maint_amount`` is derived so
        maintenance is continuous: ``d_k = d_{k-1} + floor_k·(mmr_k − mmr_{k-1})``."""
        parsed: list[dict[str, Any]] = []
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise InvalidTierTableError(f"rows must be a list of tier rows, got {type(rows).__name__}")
        for i, r in enumerate(rows):
            if isinstance(r, Mapping):
                d = dict(r)
            elif isinstance(r, str | bytes | AbstractSet) or not (hasattr(r, "__len__") and hasattr(r, "__iter__")):
                raise InvalidTierTableError(f"tier row {i} must be a mapping or a (floor, cap, mmr, ...) sequence, got {r!r}")
            else:
                keys = ("floor", "cap", "mmr", "maint_amount", "max_leverage")
                if not 3 <= len(r) <= 5:
                    raise InvalidTierTableError(f"tier row {i} must have 3 to 5 values, got {len(r)}")
                d = dict(zip(keys, r))
            missing = {"floor", "cap", "mmr"} - d.keys()
            if missing:
                raise InvalidTierTableError(f"tier row {i} lacks {', '.join(sorted(missing))}")
            parsed.append(d)
        return _table(venue, symbol, unit, parsed, source=source, as_of=as_of or _today())


def _today() -> str:
    return _dt.datetime.now(_dt.UTC).date().isoformat()


def _num(v: Any, what: str) -> float:
    # (A bool is no rate or leverage: True read as a 1x maximum.)
    if type(v).__name__ in ("bool", "bool_"):
        raise InvalidTierTableError(f"{what} must be a number, got {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        raise InvalidTierTableError(f"{what} must be a number, got {v!r}") from None
    if math.isnan(x):
        raise InvalidTierTableError(f"{what} must be a number, got NaN")
    return x


def _table(
    venue: str,
    symbol: str,
    unit: Unit,
    rows: list[dict[str, Any]],
    *,
    source: str,
    as_of: str,
    confidence: str = "doc",
    notes: str = "",
) -> TierTable:
    """Normalise rows (numbers, derived deductions), check them, build the table."""
    if not rows:
        raise InvalidTierTableError(f"{venue} {symbol}: empty tier table")
    rows = sorted(rows, key=lambda r: _num(r["floor"], "floor"))
    tiers: list[Tier] = []
    prev_mmr, prev_d = 0.0, 0.0
    for k, r in enumerate(rows):
        floor = _num(r["floor"], f"tier {k + 1} floor")
        cap_raw = r.get("cap")
        cap = None if cap_raw in (None, "", math.inf) else _num(cap_raw, f"tier {k + 1} cap")
        mmr = _num(r["mmr"], f"tier {k + 1} mmr")
        d_raw = r.get("maint_amount")
        d = prev_d + floor * (mmr - prev_mmr) if d_raw in (None, "") else _num(d_raw, f"tier {k + 1} maint_amount")
        lev_raw = r.get("max_leverage")
        lev = math.inf if lev_raw in (None, "") else _num(lev_raw, f"tier {k + 1} max_leverage")
        tiers.append(Tier(floor=floor, cap=cap, mmr=mmr, maint_amount=d, max_leverage=lev))
        prev_mmr, prev_d = mmr, d
    table = TierTable(
        venue=venue, symbol=symbol, unit=unit, tiers=tuple(tiers), source=source, as_of=as_of,
        confidence=confidence, notes=notes,
    )
    check_table(table)
    return table


def check_table(table: TierTable) -> None:
    """Raise InvalidTierTableError unless the table is usable. The rules are the Rust core's
    (``TierTable::new``, which re-checks), so a table this accepts always builds a model."""
    where = f"{table.venue} {table.symbol}"
    if table.unit not in ("quote", "base", "contracts"):
        raise InvalidTierTableError(f"{where}: unit must be quote, base or contracts, got {table.unit!r}")
    if not table.tiers:
        raise InvalidTierTableError(f"{where}: empty tier table")
    for k, t in enumerate(table.tiers):
        n = k + 1
        if not (0.0 <= t.mmr < 1.0):
            raise InvalidTierTableError(f"{where}: tier {n} mmr must be in [0, 1), got {t.mmr}")
        if t.floor < 0 or not math.isfinite(t.floor):
            raise InvalidTierTableError(f"{where}: tier {n} floor must be finite and >= 0, got {t.floor}")
        # Every venue starts at 0; smaller sizes would land in tier 1 anyway, and a deduction
        # derived from a higher first floor would be wrong.
        if k == 0 and t.floor != 0:
            raise InvalidTierTableError(f"{where}: tier 1 floor must be 0, got {t.floor}")
        if t.cap is not None and not t.cap > t.floor:
            raise InvalidTierTableError(f"{where}: tier {n} cap {t.cap} must be above floor {t.floor}")
        if not t.max_leverage > 0:
            raise InvalidTierTableError(f"{where}: tier {n} max_leverage must be > 0, got {t.max_leverage}")
        if k:
            prev = table.tiers[k - 1]
            if prev.cap is None or abs(t.floor - prev.cap) > 1e-9 * max(abs(prev.cap), 1.0):
                raise InvalidTierTableError(
                    f"{where}: tier {n} floor {t.floor} does not continue tier {k} cap {prev.cap}"
                )
            if t.mmr < prev.mmr:
                raise InvalidTierTableError(f"{where}: tier {n} mmr {t.mmr} is below tier {k}'s {prev.mmr}")
        # A negative deduction would add maintenance; no venue publishes one. (After the rate
        # order: a derived deduction only turns negative where a rate decreases.)
        if not (math.isfinite(t.maint_amount) and t.maint_amount >= 0):
            raise InvalidTierTableError(f"{where}: tier {n} maint_amount must be finite and >= 0, got {t.maint_amount}")


# --------------------------------------------------------------------------------------------
# Files: shipped and user tables
# --------------------------------------------------------------------------------------------

_decoder = msgspec.json.Decoder(TierTable)


def user_data_dir() -> Path:
    """Where refreshed tables are written and looked up first."""
    env = os.environ.get("LIQFAST_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "liqfast"


def _decode(raw: bytes, where: str) -> TierTable:
    try:
        table = _decoder.decode(raw)
    except msgspec.DecodeError as e:
        raise InvalidTierTableError(f"{where}: {e}") from None
    check_table(table)
    return table


def load_table(venue: str, symbol: str) -> TierTable:
    """The user's saved table for ``venue``/``symbol`` if any, else the shipped one."""
    user = user_data_dir() / "tiers" / venue / f"{symbol}.json"
    if user.is_file():
        return _decode(user.read_bytes(), str(user))
    shipped = resources.files("liqfast") / "data" / "tiers" / venue / f"{symbol}.json"
    if not shipped.is_file():
        raise UnknownSymbolError(f"no tier table for {venue} {symbol}")
    return _decode(shipped.read_bytes(), f"shipped {venue}/{symbol}.json")


def save_table(table: TierTable, directory: Path | None = None) -> Path:
    """Write ``table`` under the user data directory (atomically) and return the path."""
    check_table(table)
    root = (directory or user_data_dir()) / "tiers" / table.venue
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{table.symbol}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(table), indent=2) + b"\n")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
# Venue REST payloads
# --------------------------------------------------------------------------------------------


def _unwrap(payload: Any, *keys: str) -> list[dict[str, Any]]:
    """Dig the row list out of an exchange envelope ({"data": ...}, {"result": {"list": ...}})."""
    node = payload
    for key in keys:
        if isinstance(node, dict) and key in node:
            node = node[key]
    if not isinstance(node, list) or not all(isinstance(r, dict) for r in node):
        raise InvalidTierTableError(f"expected a list of tier objects, got {type(node).__name__}")
    return node


def _binance(payload: Any, venue: str, symbol: str) -> list[dict[str, Any]]:
    entries = payload if isinstance(payload, list) else [payload]
    for e in entries:
        if isinstance(e, dict) and e.get("symbol") == symbol and isinstance(e.get("brackets"), list):
            coin = venue == "binance-coinm"
            return [
                {
                    "floor": b["qtyFloor" if "qtyFloor" in b else "qtylFloor"] if coin else b["notionalFloor"],
                    "cap": b["qtyCap"] if coin else b["notionalCap"],
                    "mmr": b["maintMarginRatio"],
                    "maint_amount": b.get("cum"),
                    "max_leverage": b["initialLeverage"],
                }
                for b in e["brackets"]
            ]
    raise InvalidTierTableError(f"payload has no brackets for {symbol}")


def _bybit(payload: Any, venue: str, symbol: str) -> list[dict[str, Any]]:
    rows = [r for r in _unwrap(payload, "result", "list") if r.get("symbol", symbol) == symbol]
    out = []
    floor = 0.0
    for r in sorted(rows, key=lambda r: float(r["riskLimitValue"])):
        lev = float(r["maxLeverage"])
        mmr, imr = float(r["maintenanceMargin"]), float(r["initialMargin"])
        # The docs show percent strings ("0.5" = 0.5 %), live answers fractions ("0.005"):
        # initial margin is 1/maxLeverage as a fraction, 100/maxLeverage as a percent.
        if abs(imr * lev - 100.0) < abs(imr * lev - 1.0):
            mmr /= 100.0
        cap = float(r["riskLimitValue"])
        out.append({"floor": floor, "cap": cap, "mmr": mmr, "maint_amount": r.get("mmDeduction"), "max_leverage": lev})
        floor = cap
    return out


def _okx(payload: Any, venue: str, symbol: str) -> list[dict[str, Any]]:
    rows = _unwrap(payload, "data")
    return [
        {"floor": r["minSz"], "cap": r["maxSz"], "mmr": r["mmr"], "maint_amount": 0.0, "max_leverage": r["maxLever"]}
        for r in rows
    ]


def _bitget(payload: Any, venue: str, symbol: str) -> list[dict[str, Any]]:
    rows = _unwrap(payload, "data")
    return [
        {"floor": r["startUnit"], "cap": r["endUnit"], "mmr": r["keepMarginRate"], "max_leverage": r["leverage"]}
        for r in rows
    ]


def _gate(payload: Any, venue: str, symbol: str) -> list[dict[str, Any]]:
    rows = [r for r in _unwrap(payload) if r.get("contract", symbol) == symbol]
    out = []
    floor = 0.0
    for r in sorted(rows, key=lambda r: float(r["risk_limit"])):
        cap = float(r["risk_limit"])
        out.append({
            "floor": floor, "cap": cap, "mmr": r["maintenance_rate"], "maint_amount": r.get("deduction"),
            "max_leverage": r["leverage_max"],
        })
        floor = cap
    return out


def _kucoin(payload: Any, venue: str, symbol: str) -> list[dict[str, Any]]:
    rows = [r for r in _unwrap(payload, "data") if r.get("symbol", symbol) == symbol]
    return [
        {"floor": r["minRiskLimit"], "cap": r["maxRiskLimit"], "mmr": r["maintainMargin"], "max_leverage": r["maxLeverage"]}
        for r in rows
    ]


def _hyperliquid(payload: Any, venue: str, symbol: str) -> list[dict[str, Any]]:
    # {"type": "marginTable"} answer: lower bounds with max leverage; MMR = 1/(2·max leverage).
    tiers = payload.get("marginTiers") if isinstance(payload, dict) else None
    if not isinstance(tiers, list) or not tiers:
        raise InvalidTierTableError("expected a marginTable object with marginTiers")
    bounds = [float(t["lowerBound"]) for t in tiers]
    return [
        {
            "floor": lo,
            "cap": bounds[i + 1] if i + 1 < len(bounds) else None,
            "mmr": 1.0 / (2.0 * float(t["maxLeverage"])),
            "max_leverage": t["maxLeverage"],
        }
        for i, (lo, t) in enumerate(zip(bounds, tiers))
    ]


_PARSERS: dict[str, tuple[Any, Unit]] = {
    "binance-usdm": (_binance, "quote"),
    "binance-coinm": (_binance, "base"),
    "bybit-linear": (_bybit, "quote"),
    "bybit-inverse": (_bybit, "base"),
    "okx-linear": (_okx, "contracts"),
    "okx-inverse": (_okx, "contracts"),
    "bitget-linear": (_bitget, "quote"),
    "gate-linear": (_gate, "quote"),
    "gate-inverse": (_gate, "base"),
    "kucoin-linear": (_kucoin, "quote"),
    "kucoin-inverse": (_kucoin, "base"),
    "hyperliquid": (_hyperliquid, "quote"),
}


def from_payload(venue: str, symbol: str, payload: Any, *, source: str | None = None, as_of: str | None = None) -> TierTable:
    """Table from a venue's own tier endpoint answer (decoded JSON), in that endpoint's shape:
    Binance ``leverageBracket``, Bybit ``risk-limit``, OKX ``position-tiers``, Bitget
    ``query-position-lever``, Gate ``risk_limit_tiers``, KuCoin ``risk-limit``, Hyperliquid
    ``marginTable``."""
    try:
        parse, unit = _PARSERS[venue]
    except KeyError:
        from .errors import UnknownVenueError

        raise UnknownVenueError(f"no tier payload parser for venue {venue!r}") from None
    try:
        rows = parse(payload, venue, symbol)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, InvalidTierTableError):
            raise
        raise InvalidTierTableError(f"{venue} {symbol}: unexpected tier payload ({type(e).__name__}: {e})") from None
    return _table(
        venue, symbol, unit, rows, source=source or f"{venue} tier endpoint", as_of=as_of or _today(),
    )


# --------------------------------------------------------------------------------------------
# Refresh from the exchange
# --------------------------------------------------------------------------------------------

# Public endpoints (Binance's are signed: they need an API key, see fetch_table).
_ENDPOINTS: dict[str, tuple[str, str, dict[str, str] | None]] = {
    "binance-usdm": ("GET", "https://fapi.binance.com/fapi/v1/leverageBracket", None),
    "binance-coinm": ("GET", "https://dapi.binance.com/dapi/v2/leverageBracket", None),
    "bybit-linear": ("GET", "https://api.bybit.com/v5/market/risk-limit", {"category": "linear"}),
    "bybit-inverse": ("GET", "https://api.bybit.com/v5/market/risk-limit", {"category": "inverse"}),
    "okx-linear": ("GET", "https://www.okx.com/api/v5/public/position-tiers", {"instType": "SWAP", "tdMode": "isolated"}),
    "okx-inverse": ("GET", "https://www.okx.com/api/v5/public/position-tiers", {"instType": "SWAP", "tdMode": "isolated"}),
    "bitget-linear": ("GET", "https://api.bitget.com/api/v2/mix/market/query-position-lever", {"productType": "USDT-FUTURES"}),
    "gate-linear": ("GET", "https://api.gateio.ws/api/v4/futures/usdt/risk_limit_tiers", None),
    "gate-inverse": ("GET", "https://api.gateio.ws/api/v4/futures/btc/risk_limit_tiers", None),
    "kucoin-linear": ("GET", "https://api-futures.kucoin.com/api/v1/contracts/risk-limit/{symbol}", None),
    "kucoin-inverse": ("GET", "https://api-futures.kucoin.com/api/v1/contracts/risk-limit/{symbol}", None),
    "hyperliquid": ("POST", "https://api.hyperliquid.xyz/info", None),
}


def _request_for(venue: str, symbol: str, base_url: str | None) -> tuple[str, str, dict[str, str], Any]:
    method, url, params = _ENDPOINTS[venue]
    params = dict(params or {})
    body: Any = None
    if venue.startswith("okx"):
        params["instFamily"] = symbol.removesuffix("-SWAP")
    elif venue.startswith("kucoin"):
        url = url.format(symbol=symbol)
    elif venue.startswith("gate"):
        params["contract"] = symbol
    elif venue == "hyperliquid":
        body = {"type": "meta"}
    else:
        params["symbol"] = symbol
    if base_url:
        # Tests and mirrors: keep the path, swap scheme and host.
        from urllib.parse import urlsplit

        url = base_url.rstrip("/") + urlsplit(url).path
    return method, url, params, body


async def fetch_table(
    venue: str,
    symbol: str,
    *,
    session: Any = None,
    base_url: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    timeout: float = 10.0,
) -> TierTable:
    """Download the live tier table of ``venue``/``symbol`` from the exchange.

    Binance's bracket endpoints are signed (USER_DATA): pass ``api_key``/``api_secret`` or set
    ``LIQFAST_BINANCE_API_KEY``/``LIQFAST_BINANCE_API_SECRET``; any read-only key works.
    ``base_url`` replaces scheme and host (for tests against a local fake exchange)."""
    import aiohttp

    if venue not in _ENDPOINTS:
        from .errors import UnknownVenueError

        raise UnknownVenueError(f"no tier endpoint for venue {venue!r}")
    method, url, params, body = _request_for(venue, symbol, base_url)
    headers: dict[str, str] = {}
    if venue.startswith("binance"):
        key = api_key or os.environ.get("LIQFAST_BINANCE_API_KEY")
        secret = api_secret or os.environ.get("LIQFAST_BINANCE_API_SECRET")
        if not key or not secret:
            raise InvalidTierTableError(
                "Binance leverage brackets need a signed request: set LIQFAST_BINANCE_API_KEY and "
                "LIQFAST_BINANCE_API_SECRET (a read-only key is enough), or import a saved answer "
                "with `liqfast tiers import`"
            )
        params["timestamp"] = str(int(time.time() * 1000))
        query = "&".join(f"{k}={v}" for k, v in params.items())
        params["signature"] = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        headers["X-MBX-APIKEY"] = key
    own = session is None
    sess = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    try:
        async with sess.request(method, url, params=None if body else params, json=body, headers=headers) as r:
            if r.status >= 400:
                err = ExchangeError(f"{venue}: {method} {url} answered HTTP {r.status}: {(await r.text())[:200]}")
                err.status = r.status
                if "Retry-After" in r.headers:
                    try:
                        err.retry_after = float(r.headers["Retry-After"])
                    except ValueError:
                        pass
                raise err
            payload = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ExchangeError(f"{venue}: cannot fetch tiers from {url}: {type(e).__name__}: {e}") from None
    except ValueError as e:
        raise InvalidTierTableError(f"{venue}: tier endpoint answer is not JSON: {e}") from None
    finally:
        if own:
            await sess.close()
    if venue == "hyperliquid":
        payload = _hyperliquid_table_for(payload, symbol)
    return from_payload(venue, symbol, payload, source=f"{method} {url} {params or ''}".strip(), as_of=_today())


def _hyperliquid_table_for(meta: Any, symbol: str) -> Any:
    """Pick ``symbol``'s margin table out of a ``meta`` answer (which lists every table)."""
    try:
        asset = next(a for a in meta["universe"] if a["name"] == symbol)
        tables = {tid: t for tid, t in meta["marginTables"]}
        if "marginTableId" in asset and asset["marginTableId"] in tables:
            return tables[asset["marginTableId"]]
        return {"marginTiers": [{"lowerBound": "0", "maxLeverage": asset["maxLeverage"]}]}
    except (KeyError, TypeError, StopIteration, ValueError):
        raise InvalidTierTableError(f"hyperliquid meta answer has no margin table for {symbol}") from None


def loads(raw: bytes | str) -> Any:
    """Decode a JSON payload (helper for ``liqfast tiers import``)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidTierTableError(f"payload is not JSON: {e}") from None
