"""Realized liquidations reported by a venue take the matching positions out of the book."""

from __future__ import annotations

import asyncio

import pytest

from liqfast.events import Liquidation
from liqfast.server.config import ServerConfig
from liqfast.server.service import Service
from liqfast.server.store import SQLiteStore


def test_liquidation_event_removes_modelled_positions() -> None:
    async def run() -> None:
        from liqfast.sim import SimConfig, Simulator

        cfg = ServerConfig(feed="none", venues=("binance-usdm",), symbols=("BTC",))
        svc = Service(cfg, SQLiteStore(":memory:"))
        eng = svc.engines["BTC"]
        bars = Simulator(SimConfig(seed=3)).run(100).bars["binance-usdm"]
        for i in range(len(bars)):
            eng.apply_bar("binance-usdm", int(bars.ts_ms[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                          bars.oi_close_usd[i])
        before = eng.model._core.side_usd(0)[0]
        cohorts = eng.model.cohorts("binance-usdm")
        near = float(cohorts["liq"][cohorts["side"] > 0].max())
        ev = Liquidation("binance-usdm", "BTCUSDT", int(bars.ts_ms[-1]), int(bars.ts_ms[-1]), "long", near, 1.0, 250_000.0,
                         "snapshot_1s")
        svc.on_liquidation(ev)
        assert svc.evidence_usd == pytest.approx(250_000.0)
        assert eng.model._core.side_usd(0)[0] == pytest.approx(before - 250_000.0, rel=1e-9)

    asyncio.run(run())
