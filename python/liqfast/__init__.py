"""liqfast: exact, fast liquidation maps and heatmaps for crypto futures.

The compute core is a Rust extension (``liqfast._core``); this package is its public API.
Submodules: ``liqfast.model`` (position book and estimation model), ``liqfast.backtest`` and
``liqfast.calibrate`` (scoring against realized liquidations), ``liqfast.sim`` (market
simulator with known positions), ``liqfast.events`` and ``liqfast.exchanges`` (live
ingestion), ``liqfast.live`` (ingestion + model in-process), ``liqfast.server`` (HTTP API).
"""

from __future__ import annotations

import os as _os

from . import _core
from .errors import (
    CheckpointError,
    ExchangeError,
    GridError,
    InvalidArrayError,
    InvalidBarsError,
    InvalidInputError,
    InvalidPositionError,
    InvalidTierTableError,
    LeverageTooHighError,
    LiqfastError,
    UnknownSymbolError,
    UnknownVenueError,
)
from .maps import (
    LiquidationHeatmap,
    LiquidationMap,
    PriceGrid,
    grid_around,
    grid_step,
    hedge_liquidation_price,
    liquidation_heatmap,
    liquidation_map,
    liquidation_price,
    liquidation_prices,
    max_leverage,
)
from .tiers import Tier, TierTable
from .venues import VenueInfo, margin_model, symbols, venue_info, venues

__version__: str = _core.__version__
#: "release" or "debug": benchmarks refuse debug builds.
build_profile: str = _core.build_profile

# The core's worker threads do not survive fork(); give a forked child a fresh pool.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_core._reset_pool_after_fork)

__all__ = [
    "CheckpointError",
    "ExchangeError",
    "GridError",
    "InvalidArrayError",
    "InvalidBarsError",
    "InvalidInputError",
    "InvalidPositionError",
    "InvalidTierTableError",
    "LeverageTooHighError",
    "LiqfastError",
    "LiquidationHeatmap",
    "LiquidationMap",
    "PriceGrid",
    "Tier",
    "TierTable",
    "UnknownSymbolError",
    "UnknownVenueError",
    "VenueInfo",
    "__version__",
    "build_profile",
    "grid_around",
    "grid_step",
    "hedge_liquidation_price",
    "liquidation_heatmap",
    "liquidation_map",
    "liquidation_price",
    "liquidation_prices",
    "margin_model",
    "max_leverage",
    "symbols",
    "venue_info",
    "venues",
]
