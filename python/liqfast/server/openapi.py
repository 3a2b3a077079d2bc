"""The OpenAPI 3.1 document of the server, built from the route table, the validation
rules (enums come from the configured venues / symbols) and the msgspec response types."""

from __future__ import annotations

from typing import Any

import msgspec

from .. import __version__
from ..model import WINDOWS
from .params import FORMATS, LEVERAGE_EDGES, ROUTE_PARAMS, SIDES, Limits
from .schema import (
    ErrorResponse,
    HeatmapResponse,
    LevelsResponse,
    LiquidationsResponse,
    MapResponse,
    ReadyStatus,
    StreamFrame,
)

__all__ = ["build_openapi", "API_ROUTES"]

#: route name -> (path, summary)
API_ROUTES: dict[str, tuple[str, str]] = {
    "heatmap": ("/api/v1/heatmap", "Liquidation heatmap of a window (CoinGlass-compatible JSON, .npy, .npz, Arrow IPC)"),
    "map": ("/api/v1/map", "Live 1-D liquidation map with cumulative curves from the current price"),
    "levels": ("/api/v1/levels", "The largest liquidation clusters of the live map"),
    "liquidations": ("/api/v1/liquidations", "Realized liquidations (events and per-column totals) with per-venue completeness"),
    "stream": ("/api/v1/stream", "WebSocket push of grid updates (the latest frame per client)"),
}

_LEVERAGE_PATTERN = "^(all|(" + "|".join(e for e, _ in LEVERAGE_EDGES[:-1]) + ")-(" + "|".join(e for e, _ in LEVERAGE_EDGES[1:]) + "))$"


def _param(name: str, limits: Limits) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": "query", "required": False}
    s: dict[str, Any]
    if name == "symbol":
        s = {"type": "string", "enum": list(limits.symbols), "default": limits.symbols[0]}
        d = "Coin served by this server."
    elif name == "venue":
        s = {"type": "string", "enum": ["all", *limits.venues], "default": "all"}
        d = "One venue, or all configured venues aggregated."
    elif name == "window":
        s = {"type": "string", "enum": list(WINDOWS), "default": "24h"}
        d = "Time window (column width is chosen for at most 500 columns)."
    elif name == "side":
        s = {"type": "string", "enum": list(SIDES), "default": "both"}
        d = "Liquidated position side; both = long + short."
    elif name == "leverage":
        s = {"type": "string", "pattern": _LEVERAGE_PATTERN, "default": "all"}
        d = ("Leverage filter: 'all' or 'LO-HI' with LO < HI among " + ", ".join(e for e, _ in LEVERAGE_EDGES)
             + " ('max' = no upper limit), e.g. '15-max' for 15x and above.")
    elif name == "bins":
        s = {"type": "integer", "minimum": limits.min_bins, "maximum": limits.max_bins, "default": limits.default_bins}
        d = "Maximum number of price buckets."
    elif name == "format":
        s = {"type": "string", "enum": list(FORMATS), "default": "json"}
        d = ("json: CoinGlass-compatible; npy: dense float32 (side, time, price) with axes in X-Liqfast-* headers; "
             "npz: arrays long, short, x_axis, y_axis, candles; arrow: Arrow IPC stream of non-zero cells "
             "(406 when pyarrow is not installed).")
    elif name == "end":
        s = {"type": "integer", "minimum": 1_230_768_000_000, "maximum": 4_102_444_800_000}
        d = "End of the window (UTC epoch ms, exclusive) to scrub back in time; default: now."
    elif name == "span":
        s = {"type": "number", "minimum": 0.01, "maximum": 0.5, "default": 0.15}
        d = "Price range around the current price (map) or the window's price range (heatmap), as a fraction."
    elif name == "n":
        s = {"type": "integer", "minimum": 1, "maximum": limits.max_levels, "default": 10}
        d = "Number of clusters."
    else:
        s = {"type": "integer", "minimum": 1, "maximum": limits.max_liquidations, "default": limits.default_liquidations}
        d = "Maximum number of events (the newest are kept)."
    p["schema"] = s
    p["description"] = d
    return p


def _json(ref: str, desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _err(desc: str) -> dict[str, Any]:
    return _json("ErrorResponse", desc)


_LIMITED = {"description": "Too many requests from this client (see Retry-After)",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def build_openapi(limits: Limits, *, admin: bool = False, arrow: bool = True) -> dict[str, Any]:
    types = [HeatmapResponse, MapResponse, LevelsResponse, LiquidationsResponse, ErrorResponse, ReadyStatus, StreamFrame]
    _, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    paths: dict[str, Any] = {}
    ok = {"heatmap": "HeatmapResponse", "map": "MapResponse", "levels": "LevelsResponse",
          "liquidations": "LiquidationsResponse"}
    for name, (path, summary) in API_ROUTES.items():
        params = [_param(p, limits) for p in sorted(ROUTE_PARAMS[name])]
        responses: dict[str, Any] = {"400": _err("Invalid query parameter"), "429": _LIMITED}
        if name == "stream":
            responses["101"] = {"description": "Switching to WebSocket; frames are StreamFrame JSON texts "
                                "(schema: #/components/schemas/StreamFrame)"}
            responses["503"] = _err("Too many stream clients")
        else:
            r = _json(ok[name], "OK")
            if name == "heatmap":
                r["content"].update({
                    "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                    "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
                    "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
                })
                responses["406"] = _err("format=arrow without pyarrow installed")
            r["headers"] = {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}}
            responses["200"] = r
            responses["304"] = {"description": "Not modified (If-None-Match matched the ETag)"}
        paths[path] = {"get": {"operationId": name, "summary": summary, "parameters": params, "responses": responses}}
    text = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    paths["/livez"] = {"get": {"operationId": "livez", "summary": "The process answers (checks no dependency)",
                               "responses": {"200": text}}}
    paths["/readyz"] = {"get": {"operationId": "readyz", "summary": "Ready when every configured venue is fresh",
                                "responses": {"200": _json("ReadyStatus", "Ready"),
                                              "503": _json("ReadyStatus", "Not ready; the stale venues are named")}}}
    paths["/metrics"] = {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                                 "responses": {"200": text, "503": text}}}
    paths["/openapi.json"] = {"get": {"operationId": "openapi", "summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    html = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}
    paths["/"] = {"get": {"operationId": "page", "summary": "The web page", "responses": {"200": html}}}
    paths["/static/app.js"] = {"get": {"operationId": "app_js", "summary": "Page script",
                                       "responses": {"200": {"description": "OK", "content": {"text/javascript": {"schema": {"type": "string"}}}}}}}
    paths["/static/app.css"] = {"get": {"operationId": "app_css", "summary": "Page style",
                                        "responses": {"200": {"description": "OK", "content": {"text/css": {"schema": {"type": "string"}}}}}}}
    if admin:
        paths["/api/v1/admin/checkpoint"] = {"post": {
            "operationId": "admin_checkpoint", "summary": "Write a model checkpoint now (bearer token)",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "Checkpoint written", "content": {"application/json": {"schema": {"type": "object"}}}},
                          "401": _err("Missing or wrong token"), "429": _LIMITED},
        }}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "liqfast", "version": __version__,
                 "description": "Liquidation maps and heatmaps. JSON bodies use CoinGlass's envelope "
                 "{code, msg, data}; values are USD notional."},
        "paths": paths,
        "components": {"schemas": components},
    }
    if admin:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
