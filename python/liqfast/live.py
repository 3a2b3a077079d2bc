"""Live maps in-process: ingestion + the model, for trading systems that import liqfast.

    async with LiveMaps(venues=["binance-usdm", "bybit-linear"], coins=["BTC"]) as lm:
        async for item in lm.subscribe(kinds={"map", "liquidation"}):
            ...                      # MapUpdate after every bar, normalised events as they come

Every closed bar of a venue steps that venue's book (``LiveModel``); once all venues of a coin
have stepped a bar time (or ``venue_wait_s`` passed) a :class:`MapUpdate` with the aggregated
live map is published on the hub, next to the normalised events. Realized liquidations remove
the matching positions from the book as evidence. No HTTP server involved: ``liqfast serve``
adds storage and the API on top of the same pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from .errors import InvalidInputError, LiqfastError
from .events import Bar, Liquidation
from .exchanges import Hub, Ingest
from .exchanges.base import native_symbol
from .maps import grid_around
from .model import LiveModel, ModelParams

__all__ = ["LiveMaps", "MapUpdate"]

log = logging.getLogger("liqfast.live")


class MapUpdate(msgspec.Struct, frozen=True, gc=False):
    """The live liquidation map of one coin after a bar (all venues, USD per bucket)."""

    coin: str
    ts_ms: int
    price: float
    #: Grid: bucket k covers [lo + k·step, lo + (k+1)·step).
    lo: float
    step: float
    long: npt.NDArray[np.float64]
    short: npt.NDArray[np.float64]
    kind: str = "map"


class LiveMaps:
    def __init__(
        self,
        venues: Sequence[str] = ("binance-usdm",),
        coins: Sequence[str] = ("BTC",),
        *,
        params: ModelParams | None = None,
        bar_ms: int = 300_000,
        span: float = 0.3,
        venue_wait_s: float = 2.0,
        evidence_tolerance: float = 0.005,
        hub: Hub | None = None,
        **ingest_kw: Any,
    ) -> None:
        if not venues or not coins:
            raise InvalidInputError("LiveMaps needs at least one venue and one coin")
        self.venues = list(venues)
        self.coins = list(coins)
        self.span = span
        self.venue_wait_s = venue_wait_s
        self.evidence_tolerance = evidence_tolerance
        self.hub = hub or Hub()
        self.models = {c: LiveModel(self.venues, params=params, symbol=c, bar_ms=bar_ms) for c in self.coins}
        self._coin_of = {(v, native_symbol(v, c)): c for v in self.venues for c in self.coins}
        self.ingest = Ingest(venues={v: [native_symbol(v, c) for c in self.coins] for v in self.venues}, coins=self.coins,
                             hub=self.hub, bar_interval_ms=bar_ms, **ingest_kw)
        self._stepped: dict[str, dict[str, int]] = {c: {} for c in self.coins}
        self._price: dict[str, float] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._published: dict[str, int] = {}
        self._unsub = self.hub.on(self._on_item, kinds={"bar", "liquidation"})
        self.bars_stepped = 0
        self.updates = 0

    def subscribe(self, kinds: Iterable[str] | None = None, *, maxsize: int = 10_000, **kw: Any) -> Any:
        """An async iterator of hub items (normalised events, bars, ``MapUpdate``)."""
        return self.hub.subscribe(kinds=kinds, maxsize=maxsize, **kw)

    def map(self, coin: str, *, span: float | None = None, venue: str | None = None,
            side: str | None = None, leverage: tuple[float, float] = (0.0, math.inf)) -> MapUpdate:
        """The live map of ``coin`` now (optionally one venue, one side, a leverage range)."""
        live = self._model(coin)
        price = self._price.get(coin, math.nan)
        if not price > 0:
            raise InvalidInputError(f"no bar of {coin} yet")
        grid = grid_around(price, span=span or self.span)
        long, short = live.map(grid, venue=venue, side=side, leverage=leverage)  # type: ignore[arg-type]
        ts = max(self._stepped[coin].values())
        return MapUpdate(coin, ts, price, grid.lo, grid.step, long, short)

    def _model(self, coin: str) -> LiveModel:
        try:
            return self.models[coin]
        except KeyError:
            raise InvalidInputError(f"coin {coin!r} is not followed ({', '.join(self.coins)})") from None

    def _on_item(self, item: Any) -> None:
        coin = self._coin_of.get((item.venue, item.symbol))
        if coin is None:
            return
        if isinstance(item, Bar):
            self._on_bar(coin, item)
        elif isinstance(item, Liquidation) and self.evidence_tolerance > 0 and item.price > 0 and item.size_usd > 0:
            with contextlib.suppress(LiqfastError):
                self.models[coin].evidence(item.venue, item.side, item.price, item.size_usd, self.evidence_tolerance)

    def _on_bar(self, coin: str, bar: Bar) -> None:
        done = self._stepped[coin]
        if bar.revision > 0 or bar.ts_ms <= done.get(bar.venue, -1) or not bar.low > 0:
            return
        try:
            self.models[coin].step(bar.venue, bar.ts_ms, bar.open, bar.high, bar.low, bar.close, bar.oi_close_usd,
                                   bar.taker_net_base, list(bar.volume_profile) or None)
        except LiqfastError as e:
            log.warning("%s %s bar %d not stepped: %s", bar.venue, coin, bar.ts_ms, e)
            return
        done[bar.venue] = bar.ts_ms
        self._price[coin] = bar.close
        self.bars_stepped += 1
        if all(done.get(v, -1) >= bar.ts_ms for v in self.venues):
            self._publish(coin)
        elif coin not in self._pending:
            self._pending[coin] = asyncio.get_running_loop().call_later(self.venue_wait_s, self._publish, coin)

    def _publish(self, coin: str) -> None:
        handle = self._pending.pop(coin, None)
        if handle is not None:
            handle.cancel()
        ts = max(self._stepped[coin].values())
        if self._published.get(coin) == ts:
            return
        self._published[coin] = ts
        self.hub.publish(self.map(coin))
        self.updates += 1

    async def __aenter__(self) -> LiveMaps:
        await self.ingest.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for h in self._pending.values():
            h.cancel()
        self._unsub()
        await self.ingest.__aexit__(*exc)

    async def run(self) -> None:
        """Run until cancelled."""
        async with self:
            await asyncio.Event().wait()
