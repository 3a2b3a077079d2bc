"""Server configuration (one msgspec Struct; the CLI fills it from flags)."""

from __future__ import annotations

from typing import Literal

import msgspec

from ..model import ModelParams

__all__ = ["DEMO_VENUES", "ServerConfig"]

#: Venues (and their share of open interest) of the offline demo.
DEMO_VENUES: dict[str, float] = {"binance-usdm": 0.5, "bybit-linear": 0.3, "okx-linear": 0.2}


class ServerConfig(msgspec.Struct, kw_only=True):
    """Everything ``liqfast serve`` can be told. Defaults are safe: loopback only, no CORS,
    no admin routes, rate-limited."""

    host: str = "127.0.0.1"
    port: int = 8000
    venues: tuple[str, ...] = tuple(DEMO_VENUES)
    #: Coins served ("BTC", "ETH"); each venue's native symbol is derived.
    symbols: tuple[str, ...] = ("BTC",)
    #: SQLite file; ":memory:" keeps nothing across restarts.
    db: str = ":memory:"
    #: Where bars come from: the real venues, the offline demo, or nothing (bars published on
    #: the hub by the embedding program or a test).
    feed: Literal["live", "demo", "none"] = "live"
    #: Bar interval (the model's step).
    bar_ms: int = 300_000
    #: Model checkpoint period (seconds of wall time).
    checkpoint_s: float = 60.0
    #: How long to wait for the other venues' bar of the same time before updating the grid.
    venue_wait_s: float = 0.05
    #: A venue with no event for this long is stale (/readyz answers 503).
    stale_after_s: float = 30.0
    default_bins: int = 400
    max_bins: int = 2_000
    max_liquidations: int = 10_000
    #: Per-client request budget (token bucket per IP): rate per second and burst; 0 = off.
    rate_per_s: float = 50.0
    rate_burst: float = 200.0
    #: Origins allowed by CORS (empty: CORS off).
    cors_origins: tuple[str, ...] = ()
    #: Bearer token of the admin routes (None: no admin routes).
    admin_token: str | None = None
    ws_max_clients: int = 256
    ws_heartbeat_s: float = 20.0
    ws_max_skipped: int = 20
    ws_send_timeout_s: float = 5.0
    #: Memory budget of decoded heatmap columns and of rendered responses (MiB).
    column_cache_mb: int = 256
    response_cache_mb: int = 128
    params: ModelParams | None = None
    #: Realized liquidations reported by a venue remove the matching positions near their
    #: price from that venue's book (within this relative price tolerance); 0 turns it off.
    evidence_tolerance: float = 0.005
    #: Per-venue USD scale of the model (from a calibrated profile).
    scale: dict[str, float] = {}
    #: Demo: simulated seconds per real second, history simulated at start, seed.
    demo_speed: float = 60.0
    demo_history_ms: int = 3 * 86_400_000
    demo_seed: int = 7
    #: Demo: venue shares of open interest.
    demo_venues: dict[str, float] = {}
