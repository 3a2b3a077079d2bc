"""The offline main job: simulator → fake exchange on loopback → real connectors → hub →
bars → model → store → stream; and `liqfast plot`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from liqfast.cli import main
from liqfast.server import create_app
from liqfast.server.app import SERVICE
from liqfast.server.config import ServerConfig

@pytest.mark.asyncio
async def test_demo_streams_live_bars_through_the_fake_exchange(aiohttp_client: Any, tmp_path: Path) -> None:
    cfg = ServerConfig(feed="demo", db=str(tmp_path / "demo.sqlite"), demo_speed=1200.0, demo_history_ms=6 * 3_600_000,
                       rate_per_s=0.0, checkpoint_s=3600.0)
    c = await aiohttp_client(create_app(cfg))
    svc = c.app[SERVICE]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not svc.engines["BTC"].last_ts:
        await asyncio.sleep(0.1)
    hist_end = max(svc.engines["BTC"].last_ts.values())
    ws = await c.ws_connect("/api/v1/stream", params={"window": "12h"})
    first = (await ws.receive_json(timeout=10))["version"]
    # Bars built from the fake exchange's trades/OI by the live path arrive and step the model.
    while time.monotonic() < deadline and (svc.bars_stepped < 6 or max(svc.engines["BTC"].last_ts.values()) <= hist_end):
        await asyncio.sleep(0.1)
    assert svc.bars_stepped >= 6
    frame = await ws.receive_json(timeout=10)
    while frame["version"] <= first:
        frame = await ws.receive_json(timeout=10)
    assert frame["x_ms"] > hist_end - 3_600_000 and frame["price"] > 0
    r = await c.get("/readyz")
    assert r.status == 200, await r.text()
    m = await (await c.get("/metrics")).text()
    line = next(x for x in m.splitlines() if x.startswith('liqfast_ws_messages_total{exchange="binance-usdm"}'))
    assert float(line.split()[-1]) > 0
    hm = (await (await c.get("/api/v1/heatmap", params={"window": "12h"})).json())["data"]
    assert hm["x_axis"][-1] >= hist_end
    await ws.close()


def test_plot_writes_pngs(tmp_path: Path) -> None:
    assert main(["plot", "--demo", "--history", "12h", "--window", "12h", "--out", str(tmp_path)]) == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["heatmap-BTC-12h.png", "map-BTC.png"]
    for p in tmp_path.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_plot_from_a_store_and_errors(tmp_path: Path, populated_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "--db", str(populated_db), "--window", "24h", "--side", "short", "--leverage", "15-max",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "heatmap-BTC-24h.png").is_file()
    assert main(["plot", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert main(["plot", "--db", str(populated_db), "--window", "2d"]) == 2
    assert "window='2d' is not allowed" in capsys.readouterr().err
    # An --out that is a file: refused before any work (it used to end in a FileExistsError).
    (tmp_path / "file").write_text("")
    assert main(["plot", "--db", str(populated_db), "--out", str(tmp_path / "file")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_serve_profile_scale_covers_every_venue(capsys: pytest.CaptureFixture[str]) -> None:
    from liqfast.calibrate import builtin_profile
    from liqfast.cli import build_parser
    from liqfast.commands.serve import config_from_args

    own = builtin_profile().scale["binance-usdm"]
    args = build_parser().parse_args(["serve", "--offline", "--db", ":memory:", "--profile", "builtin:btc-1h",
                                      "--venues", "binance-usdm,bybit-linear,okx-linear"])
    cfg = config_from_args(args)
    # Venues the profile was not fitted on get its own venue's scale (not scale 1, the model's
    # raw units, which swamped the aggregate), and the operator is told.
    assert cfg.scale == {"binance-usdm": own, "bybit-linear": own, "okx-linear": own}
    assert "no scale for bybit-linear, okx-linear" in capsys.readouterr().err
    args = build_parser().parse_args(["serve", "--offline", "--db", ":memory:", "--profile", "builtin:btc-1h",
                                      "--venues", "binance-usdm"])
    assert config_from_args(args).scale == {"binance-usdm": own} and capsys.readouterr().err == ""
