"""Response types of the HTTP API (msgspec Structs: the encoder and the OpenAPI schemas
both come from these, so the documentation cannot drift from what is sent).

JSON responses use CoinGlass's envelope ``{"code": "0", "msg": "success", "data": ...}``;
errors carry the HTTP status as ``code`` and the reason in ``msg``."""

from __future__ import annotations

import msgspec

__all__ = [
    "ErrorResponse",
    "HeatmapData",
    "HeatmapResponse",
    "Level",
    "LevelsData",
    "LevelsResponse",
    "LiquidationsData",
    "LiquidationsResponse",
    "MapData",
    "MapResponse",
    "ReadyStatus",
    "StreamFrame",
    "VenueCompleteness",
]


class HeatmapData(msgspec.Struct, kw_only=True):
    """A liquidation heatmap window (CoinGlass ``liquidation/heatmap`` shape plus axes)."""

    symbol: str
    venue: str
    window: str
    side: str
    leverage: str
    #: Unit of every value in ``liquidation_leverage_data``.
    units: str = "USD"
    #: Column width; column i covers ``[x_axis[i], x_axis[i] + resolution_ms)``.
    resolution_ms: int
    #: Column start times (UTC epoch ms).
    x_axis: list[int]
    #: Lower edge of each price bucket (quote currency); buckets are ``y_step`` wide.
    y_axis: list[float]
    y_step: float
    #: Sparse ``[x_index, y_index, usd]`` triples (cells with at least 1 USD): the notional
    #: that would be liquidated at that price, as estimated at the end of that column.
    liquidation_leverage_data: list[tuple[int, int, float]]
    #: ``[ts_seconds, open, high, low, close, volume_usd]`` per column (numbers as strings,
    #: as CoinGlass sends them); columns without bars are left out.
    price_candlesticks: list[tuple[int, str, str, str, str, str]]
    max_usd: float
    #: Indices of columns with no stored state (outside the kept history).
    missing: list[int]
    #: True when the window ends at the live column.
    live: bool
    end_ms: int
    version: int


class HeatmapResponse(msgspec.Struct):
    code: str
    msg: str
    data: HeatmapData


class MapData(msgspec.Struct, kw_only=True):
    """The live liquidation map: USD per price bucket now, per side, and cumulative curves
    (longs liquidated if the price falls from ``price`` to a bucket, shorts if it rises)."""

    symbol: str
    venue: str
    side: str
    leverage: str
    units: str = "USD"
    ts_ms: int
    price: float
    y_step: float
    #: Lower edge of each bucket.
    prices: list[float]
    long: list[float]
    short: list[float]
    long_cumulative: list[float]
    short_cumulative: list[float]
    total_long_usd: float
    total_short_usd: float
    version: int


class MapResponse(msgspec.Struct):
    code: str
    msg: str
    data: MapData


class Level(msgspec.Struct, kw_only=True):
    """A cluster of liquidation levels: its peak bucket and the USD within ±2 buckets."""

    side: str
    price: float
    price_low: float
    price_high: float
    usd: float
    #: Signed distance from the current price, percent.
    distance_pct: float
    #: USD of that side liquidated on the way from the current price to this cluster.
    cumulative_usd: float


class LevelsData(msgspec.Struct, kw_only=True):
    symbol: str
    venue: str
    side: str
    leverage: str
    units: str = "USD"
    ts_ms: int
    price: float
    levels: list[Level]
    version: int


class LevelsResponse(msgspec.Struct):
    code: str
    msg: str
    data: LevelsData


class VenueCompleteness(msgspec.Struct, kw_only=True):
    """How complete a venue's realized liquidation feed is."""

    #: Completeness code of the feed (see ``liqfast.events.COMPLETENESS_NOTES``).
    completeness: str
    note: str
    #: True when the feed is known to undercount (snapshots, subsets, no feed).
    lower_bound: bool
    #: Downtime windows ``[start_ms, end_ms, reason]`` in the requested range.
    gaps: list[tuple[int, int, str]]


class LiquidationsData(msgspec.Struct, kw_only=True):
    """Realized liquidations: individual events (newest ``limit`` in the window) and
    totals per column (same columns as the heatmap of that window)."""

    symbol: str
    venue: str
    window: str
    units: str = "USD"
    start_ms: int
    end_ms: int
    resolution_ms: int
    #: ``[ts_ms, venue, side of the liquidated position, price, usd]``.
    events: list[tuple[int, str, str, float, float]]
    truncated: bool
    x_axis: list[int]
    long_usd: list[float]
    short_usd: list[float]
    venues: dict[str, VenueCompleteness]


class LiquidationsResponse(msgspec.Struct):
    code: str
    msg: str
    data: LiquidationsData


class ErrorResponse(msgspec.Struct):
    code: str
    msg: str
    data: None = None


class ReadyStatus(msgspec.Struct, kw_only=True):
    ready: bool
    #: Venues without a fresh event, and why.
    stale: dict[str, str]
    #: Seconds since each venue's last event (null: none yet).
    age_s: dict[str, float | None]


class StreamFrame(msgspec.Struct, kw_only=True):
    """A WebSocket push (``type="update"``): the newest heatmap column on the subscribed
    window's grid, the live 1-D map and new realized liquidations. A client whose grid
    (``y_lo``/``y_step``/``y_n``) or column times do not line up refetches the heatmap."""

    type: str = "update"
    symbol: str
    venue: str
    window: str
    side: str
    leverage: str
    version: int
    resolution_ms: int
    x0_ms: int
    x_ms: int
    y_lo: float
    y_step: float
    y_n: int
    long: list[float]
    short: list[float]
    #: ``[ts_seconds, open, high, low, close, volume_usd]`` of the newest column.
    candle: list[float | None]
    price: float
    map_y_lo: float
    map_y_step: float
    map_long: list[float]
    map_short: list[float]
    liquidations: list[tuple[int, str, str, float, float]]
    sent_ms: int
