"""Feeds of the server: the real venues (:func:`run_live`) and the offline demo
(:func:`run_demo`).

The demo runs the market simulator (:mod:`liqfast.sim`) as a fake exchange on loopback and
ingests it through the live path — venue connectors → hub → bars → model → store → stream:

1. a history (``demo_history_ms``, default 3 days of 5-minute bars) is simulated in one
   batch and written into the model and the store, so the page has a heatmap at once;
2. the simulator then steps minute by minute; each step becomes normalised events (trades,
   liquidations, open interest, mark price) that :class:`~liqfast.exchanges.fake.FakeExchange`
   re-encodes into each venue's wire format and serves, paced at ``demo_speed`` simulated
   seconds per real second (60: a simulated minute per second);
3. the real connectors decode them and publish on the hub. Bars are closed on the *simulated*
   clock: the same :class:`~liqfast.events.BarSet` as live ingestion, fed with receive times
   mapped through :class:`SimClock` (live ingestion uses the wall clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec


from ..events import BarSet, Gap, Liquidation, MarkFunding, OpenInterest, Trade
from ..exchanges.base import native_symbol
from ..sim import SimConfig, Simulator
from .config import DEMO_VENUES
from .engine import retention_levels
from .store import BarRow, keep_times

__all__ = ["SimClock", "bootstrap_history", "run_demo", "run_live", "sim_events"]

log = logging.getLogger("liqfast.server")


class SimClock:
    """Simulated time as a linear function of wall time, anchored when the first simulated
    event is published (the fake exchange paces from the same moment)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.sim0: float | None = None
        self.wall0 = 0.0

    def anchor(self, sim_ms: int) -> None:
        if self.sim0 is None:
            self.sim0 = float(sim_ms)
            self.wall0 = time.time() * 1000.0

    def sim(self, wall_ms: float) -> int:
        if self.sim0 is None:
            return int(wall_ms)
        return int(self.sim0 + (wall_ms - self.wall0) * self.speed)

    def now(self) -> int:
        return self.sim(time.time() * 1000.0)


def _venues(svc: Any) -> dict[str, float]:
    cfg = svc.config
    shares = dict(cfg.demo_venues) if cfg.demo_venues else {v: DEMO_VENUES.get(v, 1.0) for v in cfg.venues}
    return {v: shares.get(v, 1.0) for v in cfg.venues}


async def bootstrap_history(svc: Any, sim: Simulator, symbol: str, n_bars: int) -> int:
    """Simulate ``n_bars`` bars in one batch and write them into the model and the store
    (columns only where the heatmap windows need them). Returns the last bar time."""
    cfg = svc.config
    eng = svc.engines[symbol]
    run = sim.run(n_bars, bar_ms=cfg.bar_ms)
    names = list(run.bars)
    ts = run.bars[names[0]].ts_ms
    keep = set(keep_times(ts, retention_levels(cfg.bar_ms), int(ts[-1])).tolist())
    rows: list[BarRow] = []
    for i in range(len(ts)):
        for v in names:
            b = run.bars[v]
            eng.apply_bar(v, int(b.ts_ms[i]), float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i]),
                          float(b.oi_close_usd[i]), float(b.taker_net_base[i]))
            rows.append((v, int(b.ts_ms[i]), float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i]),
                         float("nan"), float(b.oi_close_usd[i]), float(b.taker_net_base[i]),
                         float(run.realized_long[v][i]), float(run.realized_short[v][i]), 0, False, "history", 0))
        if int(ts[i]) in keep:
            eng.commit_column(int(ts[i]))
        if i % 32 == 31:
            await asyncio.sleep(0)  # keep serving while the history is built
    svc.store.put_bars(symbol, rows)
    return int(ts[-1])


def _events(st: dict[str, Any], natives: dict[str, str], step_ms: int) -> list[Any]:
    """Normalised events of one simulator step, in exchange-time order."""
    ts = int(st["ts_ms"])
    out: list[Any] = []
    trades = st["trades"]
    n = max(1, len(trades))
    for i, (v, price, qty, side) in enumerate(trades):
        t = ts + 1 + (i * (step_ms - 2)) // n
        out.append(Trade(v, natives[v], t, t, float(price), float(qty), float(qty * price), "buy" if side > 0 else "sell"))
    for j, (v, price, usd, side) in enumerate(st["liquidations"]):
        t = ts + 1 + (j * (step_ms - 2)) // max(1, len(st["liquidations"]))
        out.append(Liquidation(v, natives[v], t, t, "long" if side > 0 else "short", float(price), float(usd / price),
                               float(usd), ""))
    close = float(st["close"])
    end = ts + step_ms
    for v, oi in st["oi_usd"].items():
        out.append(MarkFunding(v, natives[v], end - 1, end - 1, close, close, 0.0001))
        out.append(OpenInterest(v, natives[v], end, end, float(oi) / close, float(oi), close))
    out.sort(key=lambda e: e.exchange_ts_ms)
    return out


async def sim_events(sim: Simulator, clock: SimClock, natives: dict[str, str], *, steps: int | None = None) -> AsyncIterator[Any]:
    """The simulator as an endless (or ``steps``-long) stream of normalised events."""
    step_ms = sim.config.step_ms
    k = 0
    while steps is None or k < steps:
        k += 1
        evs = _events(sim.step(), natives, step_ms)
        if evs:
            clock.anchor(evs[0].exchange_ts_ms)
        for ev in evs:
            yield ev
        await asyncio.sleep(0)


class ScaledBars:
    """Bars on the simulated clock: events from the hub, receive times mapped through the
    clock, bars published back on the hub (the live path uses :class:`Ingest`'s own bars)."""

    def __init__(self, hub: Any, clock: SimClock, bar_ms: int, grace_ms: int) -> None:
        self.hub = hub
        self.clock = clock
        self.bars = BarSet(bar_ms, grace_ms=grace_ms)
        self.unsub = hub.on(self._on, kinds={"trade", "liquidation", "open_interest", "mark_funding", "gap"})

    def _on(self, ev: Any) -> None:
        c = self.clock
        if c.sim0 is None:
            return
        if isinstance(ev, Gap):
            ev = msgspec.structs.replace(ev, recv_ts_ms=c.sim(ev.recv_ts_ms), exchange_ts_ms=c.sim(ev.exchange_ts_ms),
                                         start_ms=c.sim(ev.start_ms), end_ms=c.sim(ev.end_ms))
        else:
            ev = msgspec.structs.replace(ev, recv_ts_ms=c.sim(ev.recv_ts_ms))
        for bar in self.bars.add(ev):
            self.hub.publish(bar)

    async def tick(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            if self.clock.sim0 is not None:
                for bar in self.bars.advance(self.clock.now()):
                    self.hub.publish(bar)


async def run_demo(svc: Any, *, source: Any = None, history: bool = True) -> None:
    """The offline demo feed (see the module docstring); runs until cancelled."""
    from ..exchanges import Ingest
    from ..exchanges.connector import Policy
    from ..exchanges.fake import FakeExchange

    cfg = svc.config
    symbol = cfg.symbols[0]
    if len(cfg.symbols) > 1:
        log.warning("the demo simulates %s only", symbol)
    venues = _venues(svc)
    natives = {v: native_symbol(v, symbol) for v in venues}
    eng = svc.engines[symbol]
    bar_ms = cfg.bar_ms
    now = int(time.time() * 1000)
    if eng.last_ts:
        # Continue a stored demo: the simulated market starts where the store ends.
        start_ms = max(eng.last_ts.values()) + bar_ms
        start_price = eng.price()
        n_hist = 0
    else:
        n_hist = int(cfg.demo_history_ms // bar_ms) if history else 0
        start_ms = (now // bar_ms) * bar_ms - n_hist * bar_ms
        start_price = 90_000.0
    sim = Simulator(SimConfig(seed=cfg.demo_seed, start_ms=start_ms, start_price=start_price), venues=venues, symbol=symbol)
    if n_hist:
        svc.warming = True
        t = time.perf_counter()
        try:
            await bootstrap_history(svc, sim, symbol, n_hist)
        finally:
            svc.warming = False
        svc.refresh(symbol)
        await svc.checkpoint()  # the history is the expensive part of a restart
        log.info("demo: simulated %d bars of history in %.1f s", n_hist, time.perf_counter() - t)
    clock = SimClock(cfg.demo_speed)
    fx = FakeExchange(speed=cfg.demo_speed, venues=list(venues))
    for v, s in natives.items():
        fx.add_symbols(v, [s])
    await fx.start()
    # The venues' REST open interest exists before the first step (as on a real exchange).
    st0 = {"ts_ms": start_ms + n_hist * bar_ms - sim.config.step_ms, "close": sim.price, "trades": [], "liquidations": [],
           "oi_usd": {v: eng.last_oi.get(v, sim.config.start_oi_usd * w / sum(venues.values())) for v, w in venues.items()}}
    for ev in _events(st0, natives, sim.config.step_ms):
        fx.encode(ev)
    policy = Policy(oi_poll_interval=max(0.2, 60.0 / cfg.demo_speed), instruments_timeout=5.0, backoff_max=2.0,
                    heartbeat_timeout=30.0, idle_timeout=None)
    ing = Ingest(venues={v: [s] for v, s in natives.items()}, hub=svc.hub, bars=False,
                 urls={v: fx.urls(v) for v in venues}, policy=policy)
    svc.ingest = ing
    svc.ingest_stats = ing.stats
    # Grace: half a real second of simulated time absorbs loop hiccups.
    scaled = ScaledBars(svc.hub, clock, bar_ms, grace_ms=int(max(2_000, cfg.demo_speed * 500)))
    ticker = asyncio.create_task(scaled.tick(0.1))
    pump: asyncio.Task[None] | None = None
    try:
        async with ing:
            ready = await ing.wait_ready(15.0)
            if len(ready) < len(ing.connectors):
                log.warning("demo: only %s connected to the fake exchange", ready)
            src = source if source is not None else sim_events(sim, clock, natives)
            if source is not None and hasattr(source, "bind"):
                source.bind(clock)
            pump = asyncio.create_task(fx.pump(src))
            await asyncio.Event().wait()
    finally:
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        ticker.cancel()
        scaled.unsub()
        await fx.stop()


async def run_live(svc: Any) -> None:
    """Ingest the real venues (bars closed on the wall clock); runs until cancelled."""
    from ..exchanges import Ingest

    cfg = svc.config
    ing = Ingest(venues=list(cfg.venues), coins=list(cfg.symbols), hub=svc.hub, bar_interval_ms=cfg.bar_ms)
    svc.ingest = ing
    svc.ingest_stats = ing.stats
    await ing.run()


