"""The live path in one object: connectors → hub → bars, plus a network check that answers
within seconds when there is no network at all.

::

    async with Ingest(venues=["binance-usdm", "bybit-linear", "okx-linear"], coins=["BTC"]) as ing:
        sub = ing.hub.subscribe(kinds={"liquidation", "bar"})
        async for item in sub:
            ...

Every normalised event is published on the hub and fed to a :class:`~liqfast.events.BarSet`
(one :class:`~liqfast.events.BarBuilder` per venue/symbol); closed bars are published too
(kind ``"bar"``). A timer advances the bars every ``tick_s`` so they close when no events
arrive. The model (OI into bars, trades into the entry profile, realised liquidations as
evidence) subscribes to ``"bar"`` items, per venue and symbol, and aggregates across venues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..events import Bar, BarSet, Event
from .connector import Connector, Policy, VenueUrls
from .errors import NetworkUnavailableError
from .hub import Hub
from .recording import Recorder
from .registry import make_connectors

__all__ = ["Ingest", "check_network"]

log = logging.getLogger("liqfast.exchanges")


async def check_network(urls: Iterable[str], timeout: float = 4.0) -> dict[str, str | None]:
    """Resolve and TCP-connect to each URL's host in parallel, within ``timeout`` seconds.
    Returns {host: None if reachable else the reason}. Raises NetworkUnavailableError when
    *no* host is reachable — the machine has no usable network — so the caller can say so
    immediately instead of retrying forever in silence."""
    hosts: dict[str, int] = {}
    for u in urls:
        parts = urlsplit(u)
        if parts.hostname:
            default = 443 if parts.scheme in ("https", "wss") else 80
            hosts[parts.hostname] = parts.port or default
    loop = asyncio.get_running_loop()

    async def one(host: str, port: int) -> str | None:
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except asyncio.TimeoutError:
            return f"DNS lookup of {host} timed out"
        except OSError as e:
            return f"cannot resolve {host}: {e.strerror or e}"
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        except asyncio.TimeoutError:
            return f"TCP connect to {host}:{port} timed out ({len(infos)} address(es))"
        except OSError as e:
            return f"cannot connect to {host}:{port}: {e.strerror or e}"
        return None

    names = list(hosts)
    results = await asyncio.gather(*(one(h, hosts[h]) for h in names))
    status = dict(zip(names, results))
    if status and all(r is not None for r in status.values()):
        first = next(iter(status.values()))
        more = f" and {len(status) - 1} other host(s) likewise" if len(status) > 1 else ""
        raise NetworkUnavailableError(f"no exchange host is reachable — no network? ({first}{more})")
    return status


class Ingest:
    """Run connectors, publish their events and bars on a hub."""

    def __init__(
        self,
        connectors: Sequence[Connector] | None = None,
        *,
        venues: Mapping[str, Sequence[str]] | Iterable[str] | None = None,
        coins: Sequence[str] = ("BTC",),
        hub: Hub | None = None,
        bar_interval_ms: int = 300_000,
        bar_grace_ms: int = 2_000,
        bars: bool = True,
        urls: Mapping[str, VenueUrls] | None = None,
        policy: Policy | None = None,
        channels: Iterable[str] | None = None,
        record_dir: str | Path | None = None,
        tick_s: float = 1.0,
        **connector_kw: Any,
    ) -> None:
        self.hub = hub or Hub()
        self.bars: BarSet | None = BarSet(bar_interval_ms, grace_ms=bar_grace_ms) if bars else None
        self.tick_s = tick_s
        if connectors is None:
            if venues is None:
                from ..errors import InvalidInputError

                raise InvalidInputError("Ingest needs connectors or venues")
            connectors = make_connectors(venues, coins, urls=urls, policy=policy, channels=channels, **connector_kw)
        self.connectors = list(connectors)
        self.recorders: list[Recorder] = []
        for c in self.connectors:
            c.sink = self._on_event
            if record_dir is not None:
                rec = Recorder(record_dir, c.family, meta=c.recording_meta())
                c.attach_recorder(rec)
                self.recorders.append(rec)
        self.events = 0
        self.bars_published = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: asyncio.Task[None] | None = None

    def _on_event(self, ev: Event) -> None:
        self.events += 1
        self.hub.publish(ev)
        if self.bars is not None:
            for bar in self.bars.add(ev):
                self._publish_bar(bar)

    def _publish_bar(self, bar: Bar) -> None:
        self.bars_published += 1
        self.hub.publish(bar)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            if self.bars is not None:
                for bar in self.bars.advance(int(time.time() * 1000)):
                    self._publish_bar(bar)

    async def run(self) -> None:
        """Run every connector until cancelled."""
        try:
            self._tasks = [asyncio.create_task(c.run(), name=f"ingest:{c.family}") for c in self.connectors]
            self._tasks.append(asyncio.create_task(self._ticker(), name="ingest:bars"))
            # wait (not gather): a cancellation of run() must reach each connector exactly once,
            # below, so its own cleanup (closing sockets and its HTTP session) is not interrupted.
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for rec in self.recorders:
                rec.close()

    async def wait_ready(self, timeout: float) -> list[str]:
        """Wait until every connector has a live connection or ``timeout`` passes; returns the
        families that are connected."""
        async def one(c: Connector) -> None:
            await c.ready.wait()

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(one(c) for c in self.connectors)), timeout)
        return [c.family for c in self.connectors if c.ready.is_set()]

    async def __aenter__(self) -> Ingest:
        self._runner = asyncio.create_task(self.run(), name="ingest")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner

    def stats(self) -> dict[str, Any]:
        """Counters for metrics export: per connector (connection, decoding, REST), hub."""
        return {
            "events": self.events,
            "bars": self.bars_published,
            "connectors": [c.stats() for c in self.connectors],
            "hub": self.hub.stats(),
        }

    async def fetch_tiers(self, *, save: bool = False) -> dict[tuple[str, str], Any]:
        """Live maintenance-margin tier tables of every connector's symbols, from the venues'
        public endpoints ({(venue, symbol): TierTable}). With ``save=True`` each is written to
        the user data directory (``liqfast.tiers.save_table``), where the margin models look
        first — how live ingestion keeps the core's tier data current. Tables a venue does
        not publish (Binance's brackets are signed) are skipped with a warning."""
        from ..tiers import save_table

        out: dict[tuple[str, str], Any] = {}
        for c in self.connectors:
            for sym, table in (await c.fetch_tiers()).items():
                out[(c.venue_of(sym), sym)] = table
                if save:
                    path = save_table(table)
                    log.info("saved live tier table %s %s to %s", table.venue, sym, path)
        return out

    def urls(self) -> list[str]:
        out: list[str] = []
        for c in self.connectors:
            out.extend(u for u in (c.urls.ws, c.urls.rest) if u)
        return out
