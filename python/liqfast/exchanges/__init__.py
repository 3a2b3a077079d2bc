"""Live exchange ingestion: one connector per venue, one normalised event model.

Venues (venue ids as in :func:`liqfast.venues`): Binance USD-M and COIN-M, Bybit linear and
inverse, OKX linear and inverse swaps, Bitget USDT-M, Gate USDT and BTC futures, KuCoin
linear and inverse, Hyperliquid. Channels: ``trades``, ``liquidations`` (none on KuCoin and
Hyperliquid: they publish no public liquidation feed), ``open_interest``, ``mark_funding``.

Layers, each usable alone:

* **Normalisers** (:class:`Normalizer` subclasses, one per venue module): typed msgspec
  decoding of the venue's bytes into :mod:`liqfast.events`, side and unit normalisation.
  Pure and deterministic — the same object decodes live frames, recordings and benchmarks.
  The hot channels (every venue's trades; Binance, Bybit, OKX, Bitget and Gate liquidations)
  take a Rust fast path, ``liqfast._core.FrameDecoder``, on by default: it parses the frame
  bytes and builds the very same event objects, about 3x faster than the msgspec path and
  8-12x faster than ``json.loads`` + the same normalisation (``python -m bench decode``).
  Anything it does not handle exactly like the msgspec normaliser — other channels, control
  frames, garbage, unknown instruments — it hands to that normaliser, which stays the
  reference (:meth:`Normalizer.use_fast_path`, ``LIQFAST_FAST_DECODE=0``). Events stay one
  object per trade on purpose: every consumer (bars, hub subscribers, the model) works per
  event, and the fast path already makes building them the larger part of the cost.
  :meth:`Normalizer.feed_many` decodes a burst of frames in one call; Binance ``aggTrades``
  history files are parsed in Rust too (:mod:`~liqfast.exchanges.backfill`).
* **Connectors** (:class:`Connector` subclasses): connections, subscriptions, keepalive,
  reconnects with backoff, stale/idle detection, 24 h rotation, gap events, REST polling
  within rate limits. Base URLs are configurable (:class:`VenueUrls`).
* :class:`Hub`: in-process fan-out to subscribers with bounded queues.
* :class:`Ingest`: connectors → hub → bars (the live path in one object).
* :mod:`~liqfast.exchanges.recording` / :mod:`~liqfast.exchanges.replay`: raw traffic to
  compressed files and back through the same normalisers.
* :mod:`~liqfast.exchanges.backfill`: Binance public data files, OKX/Bybit REST history.
* :mod:`~liqfast.exchanges.fake`: a loopback fake exchange speaking every venue's protocol.

Quick start::

    import asyncio
    from liqfast.exchanges import Ingest

    async def main():
        async with Ingest(venues=["binance-usdm", "bybit-linear"], coins=["BTC"]) as ing:
            async for item in ing.hub.subscribe(kinds={"liquidation", "bar"}):
                print(item)

    asyncio.run(main())
"""

from __future__ import annotations

from .base import ConnContext, Counters, Instrument, Normalizer, fallback_instrument, native_symbol
from .binance import BinanceCoinm, BinanceUsdm
from .bitget import Bitget
from .bybit import BybitInverse, BybitLinear
from .connector import ALL_CHANNELS, Connector, Policy, SocketPlan, VenueUrls
from .errors import (
    BackfillError,
    ExchangeError,
    FeedConnectionError,
    FeedError,
    NetworkUnavailableError,
    RateLimitedError,
    RecordingError,
    SlowConsumerError,
    SubscriptionError,
)
from .fake import FakeExchange, RawFrame
from .gate import GateInverse, GateLinear
from .hub import Hub, Subscription
from .hyperliquid import Hyperliquid
from .ingest import Ingest, check_network
from .kucoin import Kucoin
from .okx import Okx
from .recording import Recorder, read_recording
from .registry import connector_class, make_connectors, normalizer_for
from .replay import replay, replay_bars

__all__ = [
    "ALL_CHANNELS",
    "BackfillError",
    "BinanceCoinm",
    "BinanceUsdm",
    "Bitget",
    "BybitInverse",
    "BybitLinear",
    "ConnContext",
    "Connector",
    "Counters",
    "ExchangeError",
    "FakeExchange",
    "FeedConnectionError",
    "FeedError",
    "GateInverse",
    "GateLinear",
    "Hub",
    "Hyperliquid",
    "Ingest",
    "Instrument",
    "Kucoin",
    "NetworkUnavailableError",
    "Normalizer",
    "Okx",
    "Policy",
    "RateLimitedError",
    "RawFrame",
    "Recorder",
    "RecordingError",
    "SlowConsumerError",
    "SocketPlan",
    "Subscription",
    "SubscriptionError",
    "VenueUrls",
    "check_network",
    "connector_class",
    "fallback_instrument",
    "make_connectors",
    "native_symbol",
    "normalizer_for",
    "read_recording",
    "replay",
    "replay_bars",
]
