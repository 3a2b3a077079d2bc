"""Tier tables are data: shipped files with sources, venue payload parsers, user tables,
and refresh from a (loopback) exchange without a release."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from aiohttp import web

import liqfast as lf
from liqfast import tiers
from liqfast.venues import _cached_model


def test_every_venue_ships_btc_and_dated_sourced_tables() -> None:
    for venue in lf.venues():
        syms = lf.symbols(venue)
        assert any(lf.venue_info(venue).symbols), venue
        for sym in syms:
            t = tiers.load_table(venue, sym)
            assert t.venue == venue and t.symbol == sym
            assert t.source and t.as_of and t.confidence in ("doc", "3p", "derived", "mem")
            assert t.tiers[0].floor == 0
            # Rust accepts it too.
            lf.margin_model(venue, sym)
        assert any(lf.venue_info(venue).symbols[0].startswith(p) for p in ("BTC", "XBT")), venue


def test_progressive_deductions_are_continuous() -> None:
    # Published "cum" values satisfy d_k = d_{k-1} + floor_k·(mmr_k − mmr_{k-1}).
    for venue in ("binance-usdm", "bybit-linear", "bitget-linear", "hyperliquid"):
        for sym in lf.symbols(venue):
            t = tiers.load_table(venue, sym).tiers
            for a, b in zip(t, t[1:]):
                assert b.maint_amount == pytest.approx(a.maint_amount + b.floor * (b.mmr - a.mmr), rel=1e-6, abs=1e-6), (venue, sym)


def test_from_rows_derives_deductions() -> None:
    t = lf.TierTable.from_rows("binance-usdm", "BTCUSDT", "quote", [(0, 50_000, 0.004), (50_000, None, 0.005)])
    assert t.tiers[1].maint_amount == pytest.approx(50.0)
    assert t.tiers[1].cap is None


@pytest.mark.parametrize(
    "rows,words",
    [
        ([(0, 10, 0.01), (12, None, 0.02)], "does not continue"),
        ([(0, 10, 0.02), (10, None, 0.01)], "below tier"),
        ([(0, 10, 1.5)], "mmr must be in"),
        ([(0, 10, "x")], "must be a number"),
        ([], "empty"),
        ([(0, 10)], "3 to 5 values"),
        ([{"floor": 0, "mmr": 0.01}], "lacks cap"),
    ],
)
def test_bad_user_tables(rows: list, words: str) -> None:
    with pytest.raises(lf.InvalidTierTableError, match=words):
        lf.TierTable.from_rows("binance-usdm", "BTCUSDT", "quote", rows)


def test_user_table_overrides_per_call() -> None:
    t = lf.TierTable.from_rows("binance-usdm", "BTCUSDT", "quote", [(0, None, 0.01, 0, 50)])
    p = lf.liquidation_price("binance-usdm", "long", 60_000, 1, leverage=10, tiers=t)
    assert p == pytest.approx((60_000 - 6_000) / (1 - 0.01))
    with pytest.raises(lf.LeverageTooHighError):
        lf.liquidation_price("binance-usdm", "long", 60_000, 1, leverage=60, tiers=t)


# --- Venue payload shapes (written here from each venue's documented field names) ---------

BINANCE = [{"symbol": "BTCUSDT", "brackets": [
    {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0},
    {"bracket": 2, "initialLeverage": 100, "notionalCap": 600000, "notionalFloor": 50000, "maintMarginRatio": 0.005, "cum": 50.0},
]}]
BINANCE_COINM = [{"symbol": "BTCUSD_PERP", "brackets": [
    {"bracket": 1, "initialLeverage": 125, "qtyCap": 5, "qtylFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0},
    {"bracket": 2, "initialLeverage": 100, "qtyCap": 10, "qtylFloor": 5, "maintMarginRatio": 0.005, "cum": 0.005},
]}]
BYBIT_PERCENT = {"retCode": 0, "result": {"category": "inverse", "list": [
    {"id": 1, "symbol": "BTCUSD", "riskLimitValue": "150", "maintenanceMargin": "0.5", "initialMargin": "1", "maxLeverage": "100.00", "mmDeduction": ""},
    {"id": 2, "symbol": "BTCUSD", "riskLimitValue": "300", "maintenanceMargin": "1", "initialMargin": "1.5", "maxLeverage": "66.67", "mmDeduction": ""},
]}}
BYBIT_FRACTION = {"retCode": 0, "result": {"category": "linear", "list": [
    {"id": 2, "symbol": "BTCUSDT", "riskLimitValue": "2000000", "maintenanceMargin": "0.005", "initialMargin": "0.01", "maxLeverage": "100.00", "mmDeduction": "510"},
    {"id": 1, "symbol": "BTCUSDT", "riskLimitValue": "300000", "maintenanceMargin": "0.0033", "initialMargin": "0.0066", "maxLeverage": "150.00", "mmDeduction": ""},
]}}
OKX = {"code": "0", "data": [
    {"tier": "1", "minSz": "0", "maxSz": "1000", "mmr": "0.004", "imr": "0.01", "maxLever": "100", "instFamily": "BTC-USDT"},
    {"tier": "2", "minSz": "1000", "maxSz": "11000", "mmr": "0.01", "imr": "0.015", "maxLever": "66.67", "instFamily": "BTC-USDT"},
]}
BITGET = {"code": "00000", "data": [
    {"symbol": "BTCUSDT", "level": "1", "startUnit": "0", "endUnit": "200000", "leverage": "150", "keepMarginRate": "0.004"},
    {"symbol": "BTCUSDT", "level": "2", "startUnit": "200000", "endUnit": "1000000", "leverage": "100", "keepMarginRate": "0.005"},
]}
GATE = [
    {"tier": 1, "risk_limit": "1000000", "initial_rate": "0.01", "maintenance_rate": "0.005", "leverage_max": "100", "contract": "BTC_USDT", "deduction": "0"},
    {"tier": 2, "risk_limit": "2000000", "initial_rate": "0.015", "maintenance_rate": "0.0075", "leverage_max": "66", "contract": "BTC_USDT", "deduction": "2500"},
]
KUCOIN = {"code": "200000", "data": [
    {"symbol": "XBTUSDTM", "level": 1, "maxRiskLimit": 500000, "minRiskLimit": 0, "maxLeverage": 125, "initialMargin": 0.008, "maintainMargin": 0.004},
    {"symbol": "XBTUSDTM", "level": 2, "maxRiskLimit": 1000000, "minRiskLimit": 500000, "maxLeverage": 100, "initialMargin": 0.01, "maintainMargin": 0.005},
]}
HL_TABLE = {"description": "tiered 40x", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 40}, {"lowerBound": "150000000.0", "maxLeverage": 20}]}


@pytest.mark.parametrize(
    "venue,symbol,payload,expect",
    [
        ("binance-usdm", "BTCUSDT", BINANCE, [(0, 50000, 0.004, 0, 125), (50000, None, 0.005, 50, 100)]),
        ("binance-coinm", "BTCUSD_PERP", BINANCE_COINM, [(0, 5, 0.004, 0, 125), (5, None, 0.005, 0.005, 100)]),
        ("bybit-inverse", "BTCUSD", BYBIT_PERCENT, [(0, 150, 0.005, 0, 100), (150, None, 0.01, 0.75, 66.67)]),
        ("bybit-linear", "BTCUSDT", BYBIT_FRACTION, [(0, 300000, 0.0033, 0, 150), (300000, None, 0.005, 510, 100)]),
        ("okx-linear", "BTC-USDT-SWAP", OKX, [(0, 1000, 0.004, 0, 100), (1000, None, 0.01, 0, 66.67)]),
        ("bitget-linear", "BTCUSDT", BITGET, [(0, 200000, 0.004, 0, 150), (200000, None, 0.005, 200, 100)]),
        ("gate-linear", "BTC_USDT", GATE, [(0, 1000000, 0.005, 0, 100), (1000000, None, 0.0075, 2500, 66)]),
        ("kucoin-linear", "XBTUSDTM", KUCOIN, [(0, 500000, 0.004, 0, 125), (500000, None, 0.005, 500, 100)]),
        ("hyperliquid", "BTC", HL_TABLE, [(0, 150e6, 0.0125, 0, 40), (150e6, None, 0.025, 1_875_000, 20)]),
    ],
)
def test_payload_parsers(venue: str, symbol: str, payload: object, expect: list) -> None:
    t = tiers.from_payload(venue, symbol, payload)
    got = [(r.floor, r.cap, r.mmr, r.maint_amount, r.max_leverage) for r in t.tiers]
    # The last published cap is kept; compare the shape up to it.
    assert len(got) == len(expect)
    for g, e in zip(got, expect):
        assert g[0] == pytest.approx(e[0]) and g[2] == pytest.approx(e[2]) and g[3] == pytest.approx(e[3]) and g[4] == pytest.approx(e[4])
        if e[1] is not None:
            assert g[1] == pytest.approx(e[1])
    lf.margin_model(venue, symbol, tiers=t)


def test_payload_parsers_on_reference_fixtures(shared: Path) -> None:
    fx = shared / "reference" / "fixtures"
    cases = [
        ("binance-usdm", "BTCUSDT", "binance_usdm_leverageBracket_BTCUSDT_snapshot.json", 7),
        ("bybit-linear", "BTCUSDT", "bybit_v5_risk_limit_BTCUSDT_capture.json", 2),
        ("bybit-inverse", "BTCUSD", "bybit_v5_risk_limit.json", 1),
        ("gate-linear", "BTC_USDT", "gate_futures_risk_limit_tiers.json", 1),
        ("kucoin-linear", "XBTUSDTM", "kucoin_futures_risk_limit.json", 3),
        ("hyperliquid", "BTC", "hyperliquid_marginTable.json", 2),
        ("binance-coinm", "BTCUSD_PERP", "binance_coinm_leverageBracket_v2.json", 1),
    ]
    for venue, sym, name, n in cases:
        t = tiers.from_payload(venue, sym, json.loads((fx / name).read_text()))
        assert len(t.tiers) == n, name
    bybit = tiers.from_payload("bybit-inverse", "BTCUSD", json.loads((fx / "bybit_v5_risk_limit.json").read_text()))
    assert bybit.tiers[0].mmr == pytest.approx(0.005)  # percent string normalised


@pytest.mark.parametrize("payload", [{}, [], {"data": "x"}, [{"symbol": "ETHUSDT", "brackets": []}], {"marginTiers": []}])
def test_bad_payloads(payload: object) -> None:
    for venue, sym in (("binance-usdm", "BTCUSDT"), ("okx-linear", "BTC-USDT-SWAP"), ("hyperliquid", "BTC")):
        with pytest.raises(lf.InvalidTierTableError):
            tiers.from_payload(venue, sym, payload)


def test_saved_user_table_wins_without_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQFAST_DATA_DIR", str(tmp_path))
    _cached_model.cache_clear()
    before = lf.liquidation_price("binance-usdm", "long", 60_000, 0.1, leverage=20)
    t = lf.TierTable.from_rows("binance-usdm", "BTCUSDT", "quote", [(0, None, 0.02, 0, 125)])
    path = tiers.save_table(t)
    assert path == tmp_path / "tiers" / "binance-usdm" / "BTCUSDT.json"
    _cached_model.cache_clear()
    after = lf.liquidation_price("binance-usdm", "long", 60_000, 0.1, leverage=20)
    assert after != before and after == pytest.approx((6000 - 300) / (0.1 * 0.98))
    path.write_text("{not json")
    _cached_model.cache_clear()
    with pytest.raises(lf.InvalidTierTableError, match="BTCUSDT.json"):
        lf.liquidation_price("binance-usdm", "long", 60_000, 0.1, leverage=20)
    _cached_model.cache_clear()


# --- Refresh against a loopback fake exchange -----------------------------------------------


async def _serve(routes: web.RouteTableDef) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_refresh_from_loopback_exchange() -> None:
    seen: dict[str, object] = {}
    routes = web.RouteTableDef()

    @routes.get("/v5/market/risk-limit")
    async def bybit(req: web.Request) -> web.Response:
        seen["bybit"] = dict(req.query)
        return web.json_response(BYBIT_FRACTION)

    @routes.get("/api/v5/public/position-tiers")
    async def okx(req: web.Request) -> web.Response:
        seen["okx"] = dict(req.query)
        return web.json_response(OKX)

    @routes.post("/info")
    async def hl(req: web.Request) -> web.Response:
        seen["hl"] = await req.json()
        meta = {"universe": [{"name": "BTC", "maxLeverage": 40, "marginTableId": 56}], "marginTables": [[56, HL_TABLE]]}
        return web.json_response(meta)

    @routes.get("/fapi/v1/leverageBracket")
    async def binance(req: web.Request) -> web.Response:
        seen["binance"] = (dict(req.query), req.headers.get("X-MBX-APIKEY"))
        return web.json_response(BINANCE)

    @routes.get("/api/v4/futures/usdt/risk_limit_tiers")
    async def gate(req: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "1"})

    async def run() -> None:
        runner, base = await _serve(routes)
        try:
            t = await tiers.fetch_table("bybit-linear", "BTCUSDT", base_url=base)
            assert seen["bybit"] == {"category": "linear", "symbol": "BTCUSDT"}
            assert t.tiers[1].maint_amount == 510
            t = await tiers.fetch_table("okx-linear", "BTC-USDT-SWAP", base_url=base)
            assert seen["okx"]["instFamily"] == "BTC-USDT"  # type: ignore[index]
            t = await tiers.fetch_table("hyperliquid", "BTC", base_url=base)
            assert seen["hl"] == {"type": "meta"} and t.tiers[1].mmr == 0.025
            with pytest.raises(lf.InvalidTierTableError, match="LIQFAST_BINANCE_API_KEY"):
                await tiers.fetch_table("binance-usdm", "BTCUSDT", base_url=base)
            t = await tiers.fetch_table("binance-usdm", "BTCUSDT", base_url=base, api_key="k", api_secret="s")
            query, key = seen["binance"]  # type: ignore[misc]
            assert key == "k" and len(query["signature"]) == 64 and query["symbol"] == "BTCUSDT"
            with pytest.raises(lf.ExchangeError, match="HTTP 429") as info:
                await tiers.fetch_table("gate-linear", "BTC_USDT", base_url=base)
            assert info.value.status == 429 and info.value.retry_after == 1.0
        finally:
            await runner.cleanup()
        with pytest.raises(lf.ExchangeError, match="cannot fetch"):
            await tiers.fetch_table("bybit-linear", "BTCUSDT", base_url=base, timeout=2)

    asyncio.run(run())



@pytest.mark.parametrize(
    "rows,words",
    [
        ([(100, None, 0.01, 0, 10)], "tier 1 floor must be 0"),
        ([(0, None, 0.01, -5, 10)], "maint_amount must be finite and >= 0"),
        ([(0, None, 0.01, math.inf, 10)], "maint_amount must be finite and >= 0"),
        ([(0, 10, 0.01, 0, 10), (10, None, 0.02, -1, 10)], "tier 2 maint_amount"),
    ],
)
def test_tables_python_and_rust_agree_on(rows: list, words: str) -> None:
    # The first floor is 0 and deductions are finite and >= 0, in Python and in the core.
    with pytest.raises(lf.InvalidTierTableError, match=words):
        lf.TierTable.from_rows("binance-usdm", "BTCUSDT", "quote", rows)
    core_rows = [(r[0], math.inf if r[1] is None else r[1], *r[2:]) for r in rows]
    with pytest.raises(lf.InvalidTierTableError, match=words.replace("tier 1 floor", "tier 1: floor").replace("tier 2 maint", "tier 2: maint")):
        lf._core.MarginModel("binance-usdm", "standard", 1.0, 0.0, "quote", core_rows)


def test_payloads_go_through_the_same_rules() -> None:
    okx = json.loads(json.dumps(OKX))
    okx["data"][0]["minSz"] = "5"
    with pytest.raises(lf.InvalidTierTableError, match="tier 1 floor must be 0"):
        tiers.from_payload("okx-linear", "BTC-USDT-SWAP", okx)
    gate = json.loads(json.dumps(GATE))
    gate[1]["deduction"] = "-2500"
    with pytest.raises(lf.InvalidTierTableError, match="tier 2 maint_amount must be finite and >= 0"):
        tiers.from_payload("gate-linear", "BTC_USDT", gate)


@pytest.mark.parametrize(
    "rows,words",
    [
        (None, "rows must be a list of tier rows"),
        ("0,inf,0.01", "rows must be a list of tier rows"),
        ([5], "tier row 0 must be a mapping or a"),
        ([{0, 1, 2}], "tier row 0 must be a mapping or a"),
        ([(0, None, True)], "mmr must be a number, got True"),
        ([(0, None, 0.01, 0, True)], "max_leverage must be a number, got True"),
        ([(0, 10**400, 0.01), (10**400, None, 0.02)], "must be a number, got 1000"),
    ],
)
def test_from_rows_refuses_rows_of_the_wrong_kind(rows: object, words: str) -> None:
    # These raised TypeError/OverflowError, or read True as a 1x maximum leverage.
    with pytest.raises(lf.InvalidTierTableError, match=words):
        lf.TierTable.from_rows("binance-usdm", "BTCUSDT", "quote", rows)  # type: ignore[arg-type]
    import numpy as np

    table = lf.TierTable.from_rows("binance-usdm", "BTCUSDT", "quote", np.array([[0.0, np.inf, 0.01]]))
    assert table.tiers[0].mmr == 0.01


def test_user_table_symbol_must_match_an_explicit_symbol() -> None:
    t = lf.TierTable.from_rows("binance-usdm", "ETHUSDT", "quote", [(0, None, 0.01, 0, 50)])
    # Left out, or naming the table's instrument in any spelling: the table's symbol is used.
    for symbol in (None, "ETHUSDT", "ETH", "ethusdt"):
        p = lf.liquidation_price("binance-usdm", "long", 3_000, 1, leverage=10, tiers=t, symbol=symbol)
        assert p == pytest.approx((3_000 - 300) / (1 - 0.01))
    # Another instrument than the table's used to be overridden silently by the table.
    with pytest.raises(lf.InvalidInputError, match="does not match the tier table's symbol 'ETHUSDT'"):
        lf.liquidation_price("binance-usdm", "long", 3_000, 1, leverage=10, tiers=t, symbol="BTC")
    with pytest.raises(lf.InvalidInputError, match="does not match"):
        lf.liquidation_prices("binance-usdm", [1], [3_000.0], [1.0], leverage=[10.0], tiers=t, symbol="BTCUSDT")
    with pytest.raises(lf.InvalidInputError, match="does not match"):
        lf.margin_model("binance-usdm", "NOPE", tiers=t)
    # Without a table the default is still BTC.
    assert lf.margin_model("binance-usdm").liquidation_price(1, 60_000, 1, leverage=10) == pytest.approx(
        lf.margin_model("binance-usdm", "BTCUSDT").liquidation_price(1, 60_000, 1, leverage=10))
