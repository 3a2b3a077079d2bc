"""The aiohttp application: :func:`create_app` (factory with typed state), routes,
middleware (errors, rate limit, CORS, metrics), static page, WebSocket stream.

Every GET of the API is answered from :class:`~liqfast.server.render.RenderCache` (bytes
encoded once per model update), with a strong ETag (304 on If-None-Match), Cache-Control
tied to the update period and pre-compressed gzip for JSON."""

from __future__ import annotations

import asyncio
import gc
import contextlib
import hmac
import importlib.resources
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from ..errors import LiqfastError
from ..exchanges.hub import Hub
from .config import ServerConfig
from .metrics import HINT as METRICS_HINT
from .metrics import Metrics, load_metrics
from .openapi import build_openapi
from .params import BadRequest, Query, parse_query
from .render import JSON, Rendered, arrow_available, make_rendered
from .schema import ErrorResponse, ReadyStatus
from .service import Service
from .store import SQLiteStore, Store

__all__ = ["CONFIG", "METRICS", "SERVICE", "create_app", "run_server"]

log = logging.getLogger("liqfast.server")

SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
CONFIG: web.AppKey[ServerConfig] = web.AppKey("config", ServerConfig)
METRICS: web.AppKey[Metrics | None] = web.AppKey("metrics")
STATIC: web.AppKey[dict[str, Rendered]] = web.AppKey("static", dict)
OPENAPI: web.AppKey[Rendered] = web.AppKey("openapi", Rendered)
LIMITER: web.AppKey[RateLimiter | None] = web.AppKey("limiter")
QUERIES: web.AppKey[dict[tuple[str, str], Query]] = web.AppKey("queries", dict)

#: Parsed queries kept per (route, raw query string): clients repeat the same few URLs, and a
#: dict lookup is far cheaper than validating every parameter again.
QUERY_MEMO = 4_096

_enc = msgspec.json.Encoder()
#: Packaged page files: URL name -> (resource file, content type). Nothing else is served.
_STATIC_FILES: dict[str, tuple[str, str]] = {
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}
_UNLIMITED = frozenset({"/livez", "/readyz", "/metrics"})


def error(status: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_enc.encode(ErrorResponse(str(status), msg)), content_type=JSON,
                        headers=headers)


class RateLimiter:
    """Token bucket per client address: ``rate`` requests per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: float, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_clients = max_clients
        self._buckets: dict[str, list[float]] = {}
        self.limited = 0

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_clients:
                # Forget buckets that are full again (idle clients); then the oldest.
                for k in [k for k, v in self._buckets.items() if v[0] + (now - v[1]) * self.rate >= self.burst]:
                    del self._buckets[k]
                while len(self._buckets) >= self.max_clients:
                    del self._buckets[next(iter(self._buckets))]
            b = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return 0.0
        b[0] = tokens
        self.limited += 1
        return (1.0 - tokens) / self.rate


def _max_age(app: web.Application, q: Query | None = None) -> int:
    cfg = app[CONFIG]
    if q is not None and q.end is not None:
        svc = app[SERVICE]
        eng = svc.engines[q.symbol]
        if len(eng.times) and q.end < int(eng.times[-1]):
            return 3600
    speed = cfg.demo_speed if cfg.feed == "demo" else 1.0
    period = cfg.bar_ms / 1000.0 / max(speed, 1e-9)
    return max(1, min(int(period), 300))


def send(request: web.Request, r: Rendered, max_age: int) -> web.Response:
    headers = {"ETag": r.etag, "Cache-Control": f"public, max-age={max_age}", "Vary": "Accept-Encoding"}
    inm = request.headers.get("If-None-Match")
    if inm is not None and (inm.strip() == "*" or r.etag in [t.strip().removeprefix("W/") for t in inm.split(",")]):
        return web.Response(status=304, headers=headers)
    headers.update(r.headers)
    headers["Content-Type"] = r.content_type
    body = r.body
    if r.gz is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = r.gz
    return web.Response(body=body, headers=headers)


def _query(request: web.Request, route: str) -> Query:
    memo = request.app[QUERIES]
    key = (route, request.query_string)
    q = memo.get(key)
    if q is not None:
        return q
    svc = request.app[SERVICE]
    mq = request.query
    multi = {k: len(mq.getall(k)) for k in mq} if len(mq) != len(set(mq)) else None
    q = parse_query(route, mq, svc.limits, multi=multi)
    if len(memo) >= QUERY_MEMO:
        memo.clear()
    memo[key] = q
    return q


# -- handlers ----------------------------------------------------------------------------------


async def heatmap(request: web.Request) -> web.StreamResponse:
    q = _query(request, "heatmap")
    if q.format == "arrow" and not arrow_available():
        return error(406, "format=arrow needs pyarrow on the server (pip install pyarrow); use json, npy or npz")
    r = request.app[SERVICE].heatmap_result(q)
    return send(request, r, _max_age(request.app, q))


async def live_map(request: web.Request) -> web.StreamResponse:
    q = _query(request, "map")
    return send(request, request.app[SERVICE].map_result(q), _max_age(request.app))


async def levels(request: web.Request) -> web.StreamResponse:
    q = _query(request, "levels")
    return send(request, request.app[SERVICE].levels_result(q), _max_age(request.app))


async def liquidations(request: web.Request) -> web.StreamResponse:
    q = _query(request, "liquidations")
    return send(request, request.app[SERVICE].liquidations_result(q), _max_age(request.app, q))


async def stream(request: web.Request) -> web.StreamResponse:
    q = _query(request, "stream")
    app = request.app
    svc, cfg = app[SERVICE], app[CONFIG]
    ws = web.WebSocketResponse(heartbeat=cfg.ws_heartbeat_s, max_msg_size=4096, compress=False, writer_limit=1 << 20)
    if not ws.can_prepare(request).ok:
        raise BadRequest("this route speaks WebSocket only: send a WebSocket upgrade request (GET with Upgrade: websocket)")
    if svc.streams.full():
        return error(503, f"too many stream clients (limit {svc.streams.max_clients})")
    await ws.prepare(request)
    client = svc.streams.add(ws, q, request.remote or "?")
    writer = asyncio.create_task(client.writer())
    try:
        first = svc.frame(q, [])
        if first is not None:
            client.offer(first)
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
            # Clients have nothing to say; anything but pings (handled by aiohttp) is ignored.
    finally:
        svc.streams.remove(client)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
    return ws


async def livez(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    stale = svc.stale_venues()
    body = _enc.encode(ReadyStatus(ready=not stale, stale=stale, age_s=svc.staleness()))
    return web.Response(status=200 if not stale else 503, body=body, content_type=JSON,
                        headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.StreamResponse:
    m = request.app[METRICS]
    if m is None:
        return web.Response(status=503, text=METRICS_HINT + "\n")
    return web.Response(body=m.render(), headers={"Content-Type": m.content_type, "Cache-Control": "no-store"})


async def openapi(request: web.Request) -> web.StreamResponse:
    return send(request, request.app[OPENAPI], 3600)


async def page(request: web.Request) -> web.StreamResponse:
    return _static_response(request, "index.html")


async def static(request: web.Request) -> web.StreamResponse:
    return _static_response(request, request.match_info["name"])


def _static_response(request: web.Request, name: str) -> web.StreamResponse:
    r = request.app[STATIC].get(name)
    if r is None:
        return error(404, "no such file")
    resp = send(request, r, 300)
    if name == "index.html":
        host = request.host
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


async def admin_checkpoint(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    token = cfg.admin_token or ""
    auth = request.headers.get("Authorization", "")
    given = auth[7:] if auth.startswith("Bearer ") else ""
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        log.warning("admin: rejected %s %s from %s", request.method, request.path, request.remote)
        return error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    svc = request.app[SERVICE]
    t = time.perf_counter()
    await svc.checkpoint()
    return web.json_response({"ok": True, "seconds": round(time.perf_counter() - t, 3),
                              "symbols": list(svc.engines)})


# -- middleware --------------------------------------------------------------------------------


def _cors(request: web.Request, resp: web.StreamResponse, origins: tuple[str, ...]) -> None:
    origin = request.headers.get("Origin")
    if origin and origin in origins and not resp.prepared:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Vary"] = (resp.headers.get("Vary", "") + ", Origin").lstrip(", ")
        resp.headers["Access-Control-Expose-Headers"] = "ETag, Retry-After, X-Liqfast-Layout, X-Liqfast-Sides, " \
            "X-Liqfast-X0-Ms, X-Liqfast-Resolution-Ms, X-Liqfast-Y-Lo, X-Liqfast-Y-Step, X-Liqfast-Units, X-Liqfast-Version"


@web.middleware
async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    started = time.perf_counter()
    app = request.app
    cfg = app[CONFIG]
    route = request.match_info.route.name or "unmatched"
    resp: web.StreamResponse
    limiter: RateLimiter | None = app[LIMITER]
    if limiter is not None and request.path not in _UNLIMITED:
        wait = limiter.take(request.remote or "?")
        if wait > 0:
            secs = max(1, math.ceil(wait))
            resp = error(429, f"rate limit of {cfg.rate_per_s:g} requests/s per client exceeded; retry in {secs} s",
                         {"Retry-After": str(secs)})
            _finish(request, resp, route, started)
            return resp
    if request.method == "OPTIONS" and cfg.cors_origins:
        origin = request.headers.get("Origin")
        if origin in cfg.cors_origins:
            resp = web.Response(status=204, headers={
                "Access-Control-Allow-Methods": "GET", "Access-Control-Allow-Headers": "If-None-Match",
                "Access-Control-Max-Age": "600"})
            _cors(request, resp, cfg.cors_origins)
            return resp
    try:
        resp = await handler(request)
    except BadRequest as e:
        resp = error(400, str(e))
    except web.HTTPException as e:
        if e.status >= 400:
            resp = error(e.status, e.reason, {k: v for k, v in e.headers.items() if k in ("Allow",)})
        else:
            raise
    except LiqfastError as e:
        resp = error(400, str(e))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("error serving %s", request.path_qs)
        resp = error(500, "internal error (logged on the server)")
    if cfg.cors_origins:
        _cors(request, resp, cfg.cors_origins)
    _finish(request, resp, route, started)
    return resp


def _finish(request: web.Request, resp: web.StreamResponse, route: str, started: float) -> None:
    m = request.app[METRICS]
    if m is not None:
        m.observe(route, request.method, resp.status, started)


# -- app ---------------------------------------------------------------------------------------


def _load_static() -> dict[str, Rendered]:
    out: dict[str, Rendered] = {}
    root = importlib.resources.files("liqfast.server").joinpath("static")
    for name, (fname, ctype) in _STATIC_FILES.items():
        body = root.joinpath(fname).read_bytes()
        out[name] = make_rendered(body, ctype, 0, compress=True)
    return out


def create_app(config: ServerConfig | None = None, *, store: Store | None = None, hub: Hub | None = None,
               demo_source: Any = None) -> web.Application:
    """The application. Background work (restoring from the store, the hub consumer,
    checkpoints, retention, the feed) starts with the app and stops with it."""
    cfg = config or ServerConfig()
    st: Store = store if store is not None else SQLiteStore(cfg.db)
    svc = Service(cfg, st, hub)
    app = web.Application(middlewares=[middleware], client_max_size=4096, handler_args={"max_field_size": 8190})
    app[CONFIG] = cfg
    app[SERVICE] = svc
    app[METRICS] = load_metrics(svc)
    if app[METRICS] is None:
        log.warning("%s; /metrics answers 503", METRICS_HINT)
    app[STATIC] = _load_static()
    app[LIMITER] = RateLimiter(cfg.rate_per_s, cfg.rate_burst) if cfg.rate_per_s > 0 else None
    app[QUERIES] = {}
    spec = build_openapi(svc.limits, admin=bool(cfg.admin_token), arrow=arrow_available())
    app[OPENAPI] = make_rendered(msgspec.json.encode(spec), JSON, 0, compress=True)
    r = app.router
    r.add_get("/api/v1/heatmap", heatmap, name="heatmap", allow_head=False)
    r.add_get("/api/v1/map", live_map, name="map", allow_head=False)
    r.add_get("/api/v1/levels", levels, name="levels", allow_head=False)
    r.add_get("/api/v1/liquidations", liquidations, name="liquidations", allow_head=False)
    r.add_get("/api/v1/stream", stream, name="stream", allow_head=False)
    r.add_get("/livez", livez, name="livez", allow_head=False)
    r.add_get("/readyz", readyz, name="readyz", allow_head=False)
    r.add_get("/metrics", metrics, name="metrics", allow_head=False)
    r.add_get("/openapi.json", openapi, name="openapi", allow_head=False)
    r.add_get("/", page, name="page", allow_head=False)
    r.add_get("/static/{name}", static, name="static", allow_head=False)
    if cfg.admin_token:
        r.add_post("/api/v1/admin/checkpoint", admin_checkpoint, name="admin")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        svc.start()
        tasks = [
            asyncio.create_task(svc.consume(), name="serve:consume"),
            asyncio.create_task(svc.checkpoint_loop(), name="serve:checkpoints"),
            asyncio.create_task(svc.maintenance_loop(), name="serve:maintenance"),
        ]
        if cfg.feed == "demo":
            from .demo import run_demo

            tasks.append(asyncio.create_task(run_demo(svc, source=demo_source), name="serve:demo"))
        elif cfg.feed == "live":
            from .demo import run_live

            tasks.append(asyncio.create_task(run_live(svc), name="serve:live"))
        try:
            yield
        finally:
            for t in reversed(tasks):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await svc.close()
            st.close()

    async def on_shutdown(app: web.Application) -> None:
        await svc.streams.close_all()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    return app


def run_server(config: ServerConfig, *, print_url: Callable[[str], None] | None = None) -> None:
    """Run until interrupted (uses uvloop when installed)."""
    loop_factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    app = create_app(config)
    # Request handling allocates many short-lived objects; with the default thresholds the
    # collector runs every few hundred requests and its pauses show up in the p99 latency.
    # Older objects (the model, caches) are frozen out of the young generations at start.
    gc.set_threshold(50_000, 50, 100)

    async def freeze(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze)

    def _print(_: object) -> None:
        if print_url is not None:
            print_url(f"http://{config.host}:{config.port}/")

    loop = loop_factory() if loop_factory is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(app, host=config.host, port=config.port, access_log=None, print=_print, loop=loop,
                handle_signals=True, shutdown_timeout=5.0)
