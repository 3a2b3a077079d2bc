from __future__ import annotations

import asyncio
import math
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from liqfast.events import Bar
from liqfast.exchanges.base import native_symbol
from liqfast.server.config import DEMO_VENUES, ServerConfig

BAR_MS = 300_000
HISTORY_BARS = 144  # 12 h of 5-minute bars


@pytest.fixture(scope="session")
def populated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with 12 h of simulated history (3 venues) and a model checkpoint."""
    from liqfast.server.demo import _venues, bootstrap_history
    from liqfast.server.service import Service
    from liqfast.server.store import SQLiteStore
    from liqfast.sim import SimConfig, Simulator

    path = tmp_path_factory.mktemp("store") / "base.sqlite"
    cfg = ServerConfig(db=str(path), feed="none")
    store = SQLiteStore(path)
    svc = Service(cfg, store)
    start = (int(time.time() * 1000) // BAR_MS) * BAR_MS - HISTORY_BARS * BAR_MS
    sim = Simulator(SimConfig(seed=11, start_ms=start), venues=_venues(svc), symbol="BTC")

    async def fill() -> None:
        await bootstrap_history(svc, sim, "BTC", HISTORY_BARS)
        await svc.checkpoint()

    asyncio.run(fill())
    store.close()
    return path


@pytest.fixture
def db_copy(populated_db: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "serve.sqlite"
    shutil.copy(populated_db, dst)
    return dst


@pytest.fixture
def config(db_copy: Path) -> Callable[..., ServerConfig]:
    def make(**kw: Any) -> ServerConfig:
        base: dict[str, Any] = {"db": str(db_copy), "feed": "none", "rate_per_s": 0.0, "stale_after_s": 30.0}
        base.update(kw)
        return ServerConfig(**base)

    return make


def make_bar(venue: str, ts: int, price: float, *, oi_usd: float = 1.5e8, revision: int = 0, liq_long: float = 0.0,
             liq_short: float = 0.0, symbol: str = "BTC") -> Bar:
    return Bar(
        venue, native_symbol(venue, symbol), ts, BAR_MS, price, price * 1.002, price * 0.997, price * 1.001, oi_usd,
        oi_usd / price, 1.0, 1.0, 0.0, 1e6, 10, liq_long, liq_short, liq_long / price, liq_short / price,
        1 if liq_long or liq_short else 0, price, 0.0001, (), 0.0, False, "all_500ms", revision,
    )


def next_bars(svc: Any, price: float | None = None) -> list[Bar]:
    """One bar per venue right after the newest stepped bar."""
    eng = svc.engines["BTC"]
    ts = max(eng.last_ts.values()) + BAR_MS
    p = price if price is not None else eng.price()
    return [make_bar(v, ts, p * (1 + 0.001 * i)) for i, v in enumerate(DEMO_VENUES)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThreadedServer:
    """The app on a real loopback port in a background thread (for the browser and
    schemathesis); ``call(fn, *args)`` runs ``fn`` on the server's loop."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = config.port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.app: Any = None
        self.runner: Any = None

    def _run(self) -> None:
        from aiohttp import web

        from liqfast.server import create_app

        asyncio.set_event_loop(self.loop)
        self.app = create_app(self.config)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        assert self.ready.wait(30), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)


@pytest.fixture
def threaded(config: Callable[..., ServerConfig]) -> Iterator[Callable[..., ThreadedServer]]:
    servers: list[ThreadedServer] = []

    def start(**kw: Any) -> ThreadedServer:
        s = ThreadedServer(config(port=free_port(), **kw))
        s.__enter__()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.__exit__()


def finite(x: float) -> bool:
    return math.isfinite(x)
