"""Serving liquidation maps over HTTP: ``liqfast serve`` (see :func:`create_app`).

Routes (all GET; JSON in CoinGlass's ``{code, msg, data}`` envelope): ``/api/v1/heatmap``
(JSON, ``.npy``, ``.npz``, Arrow IPC), ``/api/v1/map``, ``/api/v1/levels``,
``/api/v1/liquidations``, ``/api/v1/stream`` (WebSocket), ``/openapi.json``, ``/metrics``,
``/livez``, ``/readyz`` and the page at ``/``. The server keeps one model per symbol fed by
the live (or demo) event stream and persists columns, bars, realized liquidations and model
checkpoints in SQLite (:mod:`liqfast.server.store`).
"""

from __future__ import annotations

from .app import create_app, run_server
from .config import ServerConfig
from .store import SQLiteStore, Store

__all__ = ["SQLiteStore", "ServerConfig", "Store", "create_app", "run_server"]
