"""Serving benchmark: HTTP throughput and latency of cached responses (wrk on loopback
against `liqfast serve` in its own process), side by side with the same route rendered per
request (cache misses), and event → stream latency (a bar published on the hub until the
WebSocket client holds the updated grid).

Run: `python -m bench serve` (needs `wrk`: `make sysdeps` installs it)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from .common import record, require_release, table

BAR_MS = 300_000


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        p: int = s.getsockname()[1]
        return p


def _populate(path: Path, bars: int) -> None:
    from liqfast.server.config import ServerConfig
    from liqfast.server.demo import _venues, bootstrap_history
    from liqfast.server.service import Service
    from liqfast.server.store import SQLiteStore
    from liqfast.sim import SimConfig, Simulator

    store = SQLiteStore(path)
    svc = Service(ServerConfig(db=str(path), feed="none"), store)
    start = (int(time.time() * 1000) // BAR_MS) * BAR_MS - bars * BAR_MS
    sim = Simulator(SimConfig(seed=3, start_ms=start), venues=_venues(svc), symbol="BTC")

    async def go() -> None:
        await bootstrap_history(svc, sim, "BTC", bars)
        await svc.checkpoint()

    asyncio.run(go())
    store.close()


def _wrk(url: str, conns: int, seconds: int, script: str | None = None) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-H", "Accept-Encoding: gzip"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 30).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"req_s": float(rps.group(1)) if rps else float("nan"), "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "errors": float(non2xx.group(1)) if non2xx else 0.0}


def _wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up")


async def _stream_latency(db: Path, n: int) -> list[float]:
    """Bar on the hub → updated grid received by a WebSocket client (same process, loopback)."""
    import aiohttp
    from aiohttp import web

    from liqfast.events import Bar
    from liqfast.exchanges.base import native_symbol
    from liqfast.server import ServerConfig, create_app
    from liqfast.server.app import SERVICE

    port = _port()
    app = create_app(ServerConfig(db=str(db), feed="none", rate_per_s=0.0, stale_after_s=3600.0))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    svc = app[SERVICE]
    eng = svc.engines["BTC"]
    out: list[float] = []
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(f"http://127.0.0.1:{port}/api/v1/stream?window=24h") as ws:
            await ws.receive(timeout=10)
            for i in range(n):
                ts = max(eng.last_ts.values()) + BAR_MS
                p = eng.price() * (1 + 0.002 * ((i % 7) - 3))
                bars = [Bar(v, native_symbol(v, "BTC"), ts, BAR_MS, p, p * 1.002, p * 0.998, p, 1.6e8, 1.6e8 / p, 1.0, 1.0,
                            0.0, 1e6, 10, 0.0, 0.0, 0.0, 0.0, 0, p, 0.0, (), 0.0, False, "", 0) for v in eng.venues]
                t0 = time.perf_counter()
                for b in bars:
                    svc.hub.publish(b)
                while True:
                    msg = await ws.receive(timeout=10)
                    if f'"x_ms":{ts}'.encode() in (msg.data if isinstance(msg.data, bytes) else msg.data.encode()):
                        break
                out.append((time.perf_counter() - t0) * 1e3)
                await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    return out


def main() -> None:
    require_release()
    if shutil.which("wrk") is None:
        sys.exit("bench serve needs wrk (make sysdeps, or apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="liqfast-bench-serve-"))
    db = tmp / "serve.sqlite"
    t = time.perf_counter()
    _populate(db, 288)
    print(f"store with 24 h of simulated history (3 venues) in {time.perf_counter() - t:.1f} s", flush=True)
    port = _port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "liqfast", "serve", "--offline", "--db", str(db), "--port", str(port),
                             "--rate", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    rows: list[dict[str, Any]] = []
    secs = int(os.environ.get("LIQFAST_BENCH_SECONDS", "8"))
    script = tmp / "bins.lua"
    script.write_text('math.randomseed(7)\nrequest = function()\n'
                      '  return wrk.format(nil, "/api/v1/map?bins=" .. math.random(20, 2000))\nend\n')
    try:
        _wait_up(f"{base}/livez")
        for path in ("/api/v1/map", "/api/v1/heatmap?window=24h", "/api/v1/heatmap?window=24h&format=npy"):
            urllib.request.urlopen(base + path, timeout=30).read()  # render once: now cached
        cases = [
            ("GET /api/v1/map, cached", "/api/v1/map", 8, None),
            ("GET /api/v1/map, cached", "/api/v1/map", 32, None),
            ("GET /api/v1/map, rendered per request (random bins: cache misses)", "/api/v1/map", 8, str(script)),
            ("GET /api/v1/heatmap 24h JSON (gzip), cached", "/api/v1/heatmap?window=24h", 8, None),
            ("GET /api/v1/heatmap 24h npy, cached", "/api/v1/heatmap?window=24h&format=npy", 8, None),
        ]
        for name, path, conns, lua in cases:
            r = _wrk(base + path, conns, secs, lua)
            rows.append({"case": name, "connections": conns, **r})
            print(f"{name} c={conns}: {r['req_s']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait(20)
    lat = asyncio.run(_stream_latency(db, 60))
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    rows.append({"case": "event → updated grid on the stream (bar on hub → WebSocket frame)", "connections": 1,
                 "p50_ms": statistics.median(lat), "p99_ms": p99, "max_ms": lat[-1]})
    print(f"event → stream: p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(rows, ["case", "connections", "req_s", "p50_ms", "p99_ms", "max_ms", "errors"]))
    path = record("serve", rows, {"targets": {"req_s": 5000, "p99_ms": 5.0, "event_to_stream_ms": 100}})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
