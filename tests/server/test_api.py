"""Every route and every error of the HTTP API, through aiohttp's test client."""

from __future__ import annotations

import asyncio
import gzip
import io
from typing import Any

import msgspec
import numpy as np
import pytest

from liqfast.server import create_app
from liqfast.server.app import SERVICE
from liqfast.server.openapi import API_ROUTES

from .conftest import BAR_MS, make_bar, next_bars

pytestmark = pytest.mark.asyncio


async def client_for(aiohttp_client: Any, cfg: Any) -> Any:
    return await aiohttp_client(create_app(cfg))


async def test_heatmap_json_is_coinglass_shaped(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    r = await c.get("/api/v1/heatmap", params={"window": "12h", "bins": "200"})
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = await r.json()
    assert body["code"] == "0" and body["msg"] == "success"
    d = body["data"]
    assert d["units"] == "USD" and d["window"] == "12h" and d["resolution_ms"] == BAR_MS
    assert len(d["x_axis"]) == 144 and d["x_axis"] == sorted(d["x_axis"])
    assert 0 < len(d["y_axis"]) <= 200
    assert np.allclose(np.diff(d["y_axis"]), d["y_step"])
    cells = np.array(d["liquidation_leverage_data"])
    assert cells.shape[1] == 3 and len(cells) > 1000
    assert cells[:, 0].max() < len(d["x_axis"]) and cells[:, 1].max() < len(d["y_axis"])
    assert (cells[:, 2] >= 1).all() and cells[:, 2].max() == pytest.approx(d["max_usd"], rel=1e-6, abs=1)
    candle = d["price_candlesticks"][-1]
    assert isinstance(candle[0], int) and all(isinstance(v, str) for v in candle[1:])
    assert float(candle[3]) <= float(candle[4]) <= float(candle[2])  # low <= close <= high
    assert d["live"] is True and d["missing"] == []


async def test_heatmap_filters_add_up(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())

    async def dense(**p: str) -> np.ndarray:
        r = await c.get("/api/v1/heatmap", params={"window": "12h", "bins": "150", "format": "npy", **p})
        assert r.status == 200
        return np.load(io.BytesIO(await r.read()))

    both = await dense()
    assert both.shape[0] == 2 and both.dtype == np.float32
    long, short = await dense(side="long"), await dense(side="short")
    np.testing.assert_allclose(long, both[0], rtol=1e-5)
    np.testing.assert_allclose(short, both[1], rtol=1e-5)
    low, high = await dense(leverage="0-15"), await dense(leverage="15-max")
    np.testing.assert_allclose(low + high, both, rtol=1e-4, atol=1.0)
    per_venue = [await dense(venue=v) for v in ("binance-usdm", "bybit-linear", "okx-linear")]
    np.testing.assert_allclose(sum(per_venue), both, rtol=1e-4, atol=1.0)
    assert (both[0] > 0).any() and (both[1] > 0).any()


async def test_heatmap_binary_formats(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    r = await c.get("/api/v1/heatmap", params={"window": "12h", "format": "npy", "side": "long", "bins": "100"})
    arr = np.load(io.BytesIO(await r.read()))
    assert arr.ndim == 2 and r.headers["X-Liqfast-Layout"] == "time,price"
    assert float(r.headers["X-Liqfast-Y-Step"]) > 0 and int(r.headers["X-Liqfast-Resolution-Ms"]) == BAR_MS
    r = await c.get("/api/v1/heatmap", params={"window": "12h", "format": "npz", "bins": "100"})
    z = np.load(io.BytesIO(await r.read()))
    assert z["long"].shape == arr.shape and len(z["x_axis"]) == arr.shape[0] and len(z["y_axis"]) == arr.shape[1]
    np.testing.assert_allclose(z["long"], arr)
    pa = pytest.importorskip("pyarrow")
    r = await c.get("/api/v1/heatmap", params={"window": "12h", "format": "arrow", "bins": "100"})
    assert r.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    t = pa.ipc.open_stream(await r.read()).read_all()
    assert t.column_names == ["ts", "price", "long_usd", "short_usd"]
    assert float(np.sum(t.column("long_usd").to_numpy())) == pytest.approx(float(z["long"].sum()), rel=1e-4)


async def test_arrow_without_pyarrow_is_406(aiohttp_client: Any, config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import liqfast.server.app as app_mod

    monkeypatch.setattr(app_mod, "arrow_available", lambda: False)
    c = await client_for(aiohttp_client, config())
    r = await c.get("/api/v1/heatmap", params={"format": "arrow"})
    assert r.status == 406 and "pyarrow" in (await r.json())["msg"]


async def test_map_levels_liquidations(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    d = (await (await c.get("/api/v1/map", params={"bins": "200", "span": "0.2"})).json())["data"]
    n = len(d["prices"])
    assert 0 < n <= 200 and len(d["long"]) == len(d["short"]) == len(d["long_cumulative"]) == n
    price = d["price"]
    k = int((price - d["prices"][0]) // d["y_step"])
    lc, sc = np.array(d["long_cumulative"]), np.array(d["short_cumulative"])
    assert lc[0] == pytest.approx(sum(d["long"][: k + 1]), rel=1e-6, abs=1)
    assert sc[-1] == pytest.approx(sum(d["short"][k:]), rel=1e-6, abs=1)
    assert (np.diff(lc[: k + 1]) <= 1e-6).all() and (np.diff(sc[k:]) >= -1e-6).all()
    assert (lc[k + 1:] == 0).all() and (sc[:k] == 0).all()
    lv = (await (await c.get("/api/v1/levels", params={"n": "6"})).json())["data"]
    assert 1 <= len(lv["levels"]) <= 6
    usd = [x["usd"] for x in lv["levels"]]
    assert usd == sorted(usd, reverse=True)
    for x in lv["levels"]:
        assert (x["price"] < lv["price"]) == (x["side"] == "long")
        assert x["price_low"] < x["price"] < x["price_high"]
    short_only = (await (await c.get("/api/v1/levels", params={"side": "short"})).json())["data"]["levels"]
    assert short_only and all(x["side"] == "short" for x in short_only)
    li = (await (await c.get("/api/v1/liquidations", params={"window": "12h"})).json())["data"]
    assert len(li["x_axis"]) == len(li["long_usd"]) == 144
    assert sum(li["long_usd"]) + sum(li["short_usd"]) > 0  # simulated history has realized totals
    assert set(li["venues"]) == {"binance-usdm", "bybit-linear", "okx-linear"}
    assert all(v["lower_bound"] for v in li["venues"].values())  # nothing seen live yet: unknown


async def test_live_bars_update_versions_and_realized(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    svc = c.app[SERVICE]
    v0 = svc.version("BTC")
    r0 = await c.get("/api/v1/map")
    etag0 = r0.headers["ETag"]
    for bar in next_bars(svc):
        svc.hub.publish(bar)
    await asyncio.sleep(0.2)
    assert svc.version("BTC") == v0 + 1
    r1 = await c.get("/api/v1/map")
    assert r1.headers["ETag"] != etag0
    # A realized liquidation event is stored with its venue's completeness.
    from liqfast.events import Liquidation

    ts = max(svc.engines["BTC"].last_ts.values())
    svc.hub.publish(Liquidation("bybit-linear", "BTCUSDT", ts + 1000, ts + 1000, "long", 80_000.0, 0.5, 40_000.0, "all_500ms"))
    bars = next_bars(svc)
    bars[1] = make_bar("bybit-linear", bars[1].ts_ms, bars[1].close, liq_long=40_000.0)
    for bar in bars:
        svc.hub.publish(bar)
    await asyncio.sleep(0.2)
    li = (await (await c.get("/api/v1/liquidations", params={"window": "12h", "venue": "bybit-linear"})).json())["data"]
    assert [e[1:] for e in li["events"]][-1] == ["bybit-linear", "long", 80_000.0, 40_000.0]
    assert li["venues"]["bybit-linear"]["completeness"] == "all_500ms"
    assert li["venues"]["bybit-linear"]["lower_bound"] is False
    assert li["long_usd"][-1] == pytest.approx(40_000.0)
    # A revised bar corrects the stored realized total but does not step the model again.
    stepped = svc.bars_stepped
    rev = make_bar("bybit-linear", bars[1].ts_ms, bars[1].close, liq_long=55_000.0, revision=1)
    svc.hub.publish(rev)
    await asyncio.sleep(0.1)
    assert svc.bars_stepped == stepped and svc.bars_revised == 1
    for bar in next_bars(svc):
        svc.hub.publish(bar)
    await asyncio.sleep(0.2)
    li = (await (await c.get("/api/v1/liquidations", params={"window": "12h", "venue": "bybit-linear"})).json())["data"]
    assert li["long_usd"][-2] == pytest.approx(55_000.0)


async def test_etag_304_cache_control_and_gzip(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    r = await c.get("/api/v1/heatmap", params={"window": "12h"}, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    raw = await r.read()
    assert r.headers["Content-Encoding"] == "gzip"
    assert msgspec.json.decode(gzip.decompress(raw))["code"] == "0"
    etag = r.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert r.headers["Cache-Control"] == "public, max-age=300"  # the bar period
    r2 = await c.get("/api/v1/heatmap", params={"window": "12h"}, headers={"If-None-Match": etag})
    assert r2.status == 304 and await r2.read() == b""
    r3 = await c.get("/api/v1/heatmap", params={"window": "12h", "format": "npy"}, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in r3.headers  # binary grids are not compressed
    r4 = await c.get("/api/v1/heatmap", params={"window": "12h"}, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r4.headers


async def test_scrub_back_in_time(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    now = (await (await c.get("/api/v1/heatmap", params={"window": "12h", "format": "npz"})).read())
    z = np.load(io.BytesIO(now))
    end = int(z["x_axis"][-1]) - 3 * 3_600_000
    r = await c.get("/api/v1/heatmap", params={"window": "12h", "end": str(end)})
    d = (await r.json())["data"]
    assert d["live"] is False and d["x_axis"][-1] == end - BAR_MS and d["end_ms"] == end
    assert r.headers["Cache-Control"] == "public, max-age=3600"
    assert d["missing"] == list(range(37))  # the columns before the stored history began


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/api/v1/heatmap", {"window": "2d"}, "window='2d' is not allowed"),
        ("/api/v1/heatmap", {"venue": "ftx"}, "venue='ftx' is not allowed"),
        ("/api/v1/heatmap", {"symbol": "DOGE"}, "symbol='DOGE' is not allowed"),
        ("/api/v1/heatmap", {"side": "up"}, "side='up'"),
        ("/api/v1/heatmap", {"leverage": "5-10"}, "leverage must be"),
        ("/api/v1/heatmap", {"leverage": "15-7"}, "leverage must be"),
        ("/api/v1/heatmap", {"bins": "100000"}, "bins=100000 is out of range"),
        ("/api/v1/heatmap", {"bins": "ten"}, "bins must be an integer"),
        ("/api/v1/heatmap", {"bins": "100\n"}, "bins must be an integer"),
        ("/api/v1/heatmap", {"end": "1700000000000\n"}, "end must be an integer"),
        ("/api/v1/map", {"span": "0.1\n"}, "span must be a number"),
        ("/api/v1/heatmap", {"format": "csv"}, "format='csv'"),
        ("/api/v1/heatmap", {"end": "12"}, "end=12 is out of range"),
        ("/api/v1/heatmap", {"windw": "7d"}, "unknown parameter 'windw'"),
        ("/api/v1/map", {"window": "7d"}, "unknown parameter 'window'"),
        ("/api/v1/map", {"span": "2"}, "span=2.0 is out of range"),
        ("/api/v1/map", {"span": "nan"}, "span must be a number"),
        ("/api/v1/levels", {"n": "0"}, "n=0 is out of range"),
        ("/api/v1/liquidations", {"limit": "99999999"}, "limit=99999999 is out of range"),
        ("/api/v1/liquidations", {"side": "long"}, "unknown parameter 'side'"),
        ("/api/v1/stream", {"window": "5y"}, "window='5y'"),
    ],
)
async def test_bad_parameters_are_400(aiohttp_client: Any, config: Any, path: str, params: dict[str, str], fragment: str) -> None:
    c = await client_for(aiohttp_client, config())
    r = await c.get(path, params=params)
    assert r.status == 400
    body = await r.json()
    assert body["code"] == "400" and fragment in body["msg"] and body["data"] is None


async def test_repeated_parameter_and_unknown_route(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    r = await c.get("/api/v1/heatmap?window=12h&window=24h")
    assert r.status == 400 and "given 2 times" in (await r.json())["msg"]
    r = await c.get("/api/v2/heatmap")
    assert r.status == 404 and (await r.json())["code"] == "404"
    r = await c.post("/api/v1/heatmap")
    assert r.status == 405
    r = await c.get("/api/v1/stream")  # not a WebSocket upgrade
    assert r.status == 400 and "WebSocket" in (await r.json())["msg"]


async def test_rate_limit_429_with_retry_after(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config(rate_per_s=1.0, rate_burst=3.0))
    codes = [(await c.get("/api/v1/map")).status for _ in range(3)]
    assert codes == [200, 200, 200]
    r = await c.get("/api/v1/map")
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1 and "rate limit" in (await r.json())["msg"]
    assert (await c.get("/livez")).status == 200  # health checks are never limited


async def test_static_files_only_from_the_package(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    r = await c.get("/")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    html = await r.text()
    assert "/static/app.js" in html and "http" not in html.replace("http-equiv", "")  # no CDN
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = await c.get(f"/static/{name}")
        assert r.status == 200 and r.headers["Content-Type"].startswith(ctype)
    js = await (await c.get("/static/app.js")).text()
    assert "https://" not in js and "http://" not in js
    for bad in ("/static/..%2fapp.py", "/static/%2e%2e/store.py", "/static/index.htm", "/static/__init__.py",
                "/static/../server/app.py"):
        assert (await c.get(bad)).status == 404


async def test_cors_off_by_default_and_allowlist(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    r = await c.get("/api/v1/map", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    c2 = await client_for(aiohttp_client, config(cors_origins=("https://dash.example",)))
    r = await c2.get("/api/v1/map", headers={"Origin": "https://dash.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    r = await c2.get("/api/v1/map", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = await c2.options("/api/v1/map", headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Methods"] == "GET"


async def test_admin_route_token(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    assert (await c.post("/api/v1/admin/checkpoint")).status == 404  # off without a token
    token = "s3cret-token-0123456789"
    c = await client_for(aiohttp_client, config(admin_token=token))
    assert (await c.post("/api/v1/admin/checkpoint")).status == 401
    r = await c.post("/api/v1/admin/checkpoint", headers={"Authorization": "Bearer wrong"})
    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    r = await c.post("/api/v1/admin/checkpoint", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200 and (await r.json())["ok"] is True


async def test_health_and_metrics(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config(stale_after_s=5.0))
    assert (await c.get("/livez")).status == 200
    r = await c.get("/readyz")
    body = await r.json()
    assert r.status == 503 and body["ready"] is False
    assert set(body["stale"]) == {"binance-usdm", "bybit-linear", "okx-linear"}
    svc = c.app[SERVICE]
    svc.hub.publish(make_bar("binance-usdm", max(svc.engines["BTC"].last_ts.values()) + BAR_MS, 90_000.0))
    body = await (await c.get("/readyz")).json()
    assert set(body["stale"]) == {"bybit-linear", "okx-linear"}
    for bar in next_bars(svc)[1:]:
        svc.hub.publish(bar)
    await asyncio.sleep(0.1)
    r = await c.get("/readyz")
    assert r.status == 200 and (await r.json())["ready"] is True
    await c.get("/api/v1/map")
    m = await (await c.get("/metrics")).text()
    for name in ("liqfast_http_request_duration_seconds_bucket", "liqfast_grid_update_seconds_count",
                 "liqfast_feed_staleness_seconds", "liqfast_ws_messages_total", "liqfast_ws_reconnects_total",
                 "liqfast_decode_errors_total", 'liqfast_bars_total{outcome="stepped"}'):
        assert name in m, name
    assert 'route="map"' in m


async def test_openapi_covers_every_route(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config(admin_token="0123456789abcdef0123"))
    spec = await (await c.get("/openapi.json")).json()
    routes = {r.resource.canonical for r in c.app.router.routes() if r.method != "HEAD"}  # type: ignore[union-attr]
    documented = set(spec["paths"])
    assert {"/static/app.js", "/static/app.css"} <= documented
    assert routes - {"/static/{name}"} <= documented
    assert {path for path, _ in API_ROUTES.values()} <= documented
    for name in ("HeatmapData", "MapData", "LevelsData", "LiquidationsData", "StreamFrame", "ErrorResponse"):
        assert name in spec["components"]["schemas"]
    venue = next(p for p in spec["paths"]["/api/v1/heatmap"]["get"]["parameters"] if p["name"] == "venue")
    assert venue["schema"]["enum"] == ["all", "binance-usdm", "bybit-linear", "okx-linear"]


async def test_internal_errors_are_500_json(aiohttp_client: Any, config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    c = await client_for(aiohttp_client, config())
    svc = c.app[SERVICE]

    def boom(q: Any) -> Any:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(svc, "map_result", boom)
    r = await c.get("/api/v1/map")
    assert r.status == 500 and "kaboom" not in await r.text()


async def test_bar_time_of_unknown_symbol_is_ignored(aiohttp_client: Any, config: Any) -> None:
    c = await client_for(aiohttp_client, config())
    svc = c.app[SERVICE]
    v = svc.version("BTC")
    svc.hub.publish(make_bar("binance-usdm", 1_800_000_000_000, 3000.0, symbol="ETH"))
    await asyncio.sleep(0.05)
    assert svc.version("BTC") == v
