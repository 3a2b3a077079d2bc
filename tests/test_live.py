"""LiveMaps in-process: a fake exchange on loopback → real connectors → bars → model → map
updates on the hub, plus liquidation evidence."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from liqfast.events import Liquidation, MarkFunding, OpenInterest, Trade
from liqfast.exchanges.connector import Policy
from liqfast.exchanges.fake import FakeExchange
from liqfast.live import LiveMaps, MapUpdate


def test_live_maps_publish_updates_from_a_loopback_exchange() -> None:
    async def run() -> None:
        venue, sym = "binance-usdm", "BTCUSDT"
        fx = FakeExchange(venues=[venue])
        fx.add_symbols(venue, [sym])
        await fx.start()
        now = int(time.time() * 1000)
        fx.encode(OpenInterest(venue, sym, now, now, 50_000.0, 50_000.0 * 90_000, 90_000.0))
        policy = Policy(oi_poll_interval=0.2, instruments_timeout=5.0, backoff_max=1.0, heartbeat_timeout=30.0, idle_timeout=None)
        lm = LiveMaps([venue], ["BTC"], bar_ms=1_000, venue_wait_s=0.2, urls={venue: fx.urls(venue)}, policy=policy,
                      bar_grace_ms=300, tick_s=0.1)
        updates = lm.subscribe(kinds={"map"})
        try:
            async with lm:
                assert await lm.ingest.wait_ready(10.0)

                async def source():  # type: ignore[no-untyped-def]
                    rng = np.random.default_rng(1)
                    price = 90_000.0
                    for i in range(400):
                        t = int(time.time() * 1000)
                        price *= float(np.exp(rng.normal(0, 0.0005)))
                        yield Trade(venue, sym, t, t, price, 0.01, price * 0.01, "buy" if i % 2 else "sell", i + 1)
                        if i % 20 == 0:
                            yield MarkFunding(venue, sym, t, t, price, price, 0.0001)
                            fx.encode(OpenInterest(venue, sym, t, t, 50_000.0 + i, (50_000.0 + i) * price, price))
                        if i == 200:
                            yield Liquidation(venue, sym, t, t, "long", price * 0.99, 1.0, price * 0.99, "snapshot_1s")
                        await asyncio.sleep(0.01)

                pump = asyncio.create_task(fx.pump(source()))
                got: list[MapUpdate] = []
                deadline = time.monotonic() + 20
                while len(got) < 3 and time.monotonic() < deadline:
                    item = await asyncio.wait_for(updates.get(), timeout=deadline - time.monotonic())
                    got.append(item)
                pump.cancel()
                assert len(got) >= 3, "map updates arrive bar by bar"
                last = got[-1]
                assert last.coin == "BTC" and last.long.sum() > 0 and last.short.sum() > 0
                centres = last.lo + (np.arange(len(last.long)) + 0.5) * last.step
                assert last.long[centres > last.price * 1.01].sum() == 0
                now_map = lm.map("BTC", side="long")
                assert now_map.short.sum() == 0 and now_map.long.sum() > 0
                assert lm.bars_stepped >= 3
        finally:
            await fx.stop()

    asyncio.run(run())
