"""The SQLite store, retention, and a restart after kill -9 of a real server process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liqfast.server.store import Column, SQLiteStore, keep_times

from .conftest import free_port


def test_columns_roundtrip_and_thin(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "s.sqlite")
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rng = np.random.default_rng(1)
    cols = [Column(t * 300_000, 1000 + t, rng.random((3, 5, 2, 40)).astype(np.float32)) for t in range(20)]
    for c in cols:
        s.put_column("BTC", c)
    np.testing.assert_array_equal(s.column_times("BTC"), [c.ts for c in cols])
    got = s.get_columns("BTC", [cols[3].ts, cols[7].ts, 123], (3, 5, 2))
    assert set(got) == {cols[3].ts, cols[7].ts}
    np.testing.assert_array_equal(got[cols[7].ts].data, cols[7].data)
    assert got[cols[7].ts].k0 == cols[7].k0
    dropped = s.thin("BTC", np.array([cols[0].ts, cols[5].ts]), older_than=cols[10].ts)
    assert dropped == 8
    assert s.column_times("BTC").tolist() == [cols[0].ts, cols[5].ts] + [c.ts for c in cols[10:]]
    s.close()


def test_keep_times_keeps_the_last_column_of_each_interval() -> None:
    ts = np.arange(0, 48 * 3_600_000, 300_000, dtype=np.int64)
    keep = keep_times(ts, [(900_000, 6 * 3_600_000), (3_600_000, 24 * 3_600_000)], int(ts[-1]))
    assert keep[-1] == ts[-1]
    recent = keep[keep >= ts[-1] - 6 * 3_600_000]
    assert set(((recent + 300_000) % 900_000).tolist()) == {0}
    older = keep[keep < ts[-1] - 7 * 3_600_000]
    assert set(((older + 300_000) % 3_600_000).tolist()) == {0}
    assert older.min() >= ts[-1] - 25 * 3_600_000


def test_bars_revisions_hourly_and_liquidations(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "s.sqlite")
    h = 1_800_000_000_000 - 1_800_000_000_000 % 3_600_000
    rows = [("binance-usdm", h + i * 300_000, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 10.0, 1e6, 0.0, 1.0, 2.0, 1, False, "snapshot_1s", 0)
            for i in range(24)]
    s.put_bars("BTC", rows)  # type: ignore[arg-type]
    b = s.bars("BTC", ["binance-usdm"], h, h + 2 * 3_600_000, hourly=True)
    assert b["ts"].tolist() == [h, h + 3_600_000]
    assert b["open"].tolist() == [100.0, 112.0] and b["close"].tolist() == [112.0, 124.0]
    assert b["high"].tolist() == [113.0, 125.0] and b["low"].tolist() == [99.0, 111.0]
    assert b["liq_long"].tolist() == [12.0, 12.0]
    # A higher revision replaces the bar (and the hourly total); a lower one does not.
    fix = list(rows[0])
    fix[9], fix[14] = 50.0, 1
    s.put_bars("BTC", [tuple(fix)])  # type: ignore[list-item]
    stale = list(rows[0])
    stale[9] = 7.0
    s.put_bars("BTC", [tuple(stale)])  # type: ignore[list-item]
    assert s.bars("BTC", ["binance-usdm"], h, h + 1, hourly=False)["liq_long"].tolist() == [50.0]
    assert s.bars("BTC", ["binance-usdm"], h, h + 1, hourly=True)["liq_long"].tolist() == [61.0]
    s.put_liquidations("BTC", [("binance-usdm", h + i, 1, 100.0, float(i)) for i in range(10)])
    got = s.liquidations("BTC", ["binance-usdm"], h, h + 100, 3)
    assert [r[1] - h for r in got] == [7, 8, 9]  # the newest, oldest first
    s.put_gap("BTC", "binance-usdm", h, h + 10, "disconnect")
    s.put_gap("BTC", "binance-usdm", h, h + 50, "disconnect")
    assert s.gaps("BTC", ["binance-usdm"], h, h + 100) == [("binance-usdm", h, h + 50, "disconnect")]
    s.prune(h + 3_600_000, h + 5)
    assert len(s.bars("BTC", ["binance-usdm"], 0, 2**62)["ts"]) == 12
    assert len(s.bars("BTC", ["binance-usdm"], 0, 2**62, hourly=True)["ts"]) == 2
    assert len(s.liquidations("BTC", ["binance-usdm"], 0, 2**62, 100)) == 5
    s.put_checkpoint("BTC", 5, b"x" * 1000)
    assert s.checkpoint("BTC") == (5, b"x" * 1000)
    s.close()


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        data = r.read()
        return json.loads(data) if r.headers.get("Content-Type", "").startswith("application/json") else data


def _wait(url: str, ok: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = _get(url)
            if ok(last):
                return last
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {url}: {last!r}")


def _serve(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "liqfast", "serve", "--rate", "0", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env)


@pytest.mark.slow
def test_restart_after_kill_restores_book_and_history(tmp_path: Path) -> None:
    db = tmp_path / "serve.sqlite"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    p = _serve("--demo", "--db", str(db), "--port", str(port), "--speed", "600", "--history", "6h",
               "--checkpoint-every", "3600", log=tmp_path / "first.log")
    try:
        first = _wait(f"{base}/api/v1/map", lambda d: isinstance(d, dict), 60)
        # Wait for live bars from the fake exchange on top of the simulated history.
        after = _wait(f"{base}/api/v1/map", lambda d: d["data"]["ts_ms"] >= first["data"]["ts_ms"] + 3 * 300_000, 60)
        # The only checkpoint is the one after the history: the live bars are re-stepped on restart.
        before = np.load(io.BytesIO(_get(f"{base}/api/v1/heatmap?window=12h&format=npz&bins=200")))
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    assert after["data"]["ts_ms"] > first["data"]["ts_ms"]
    port2 = free_port()
    base2 = f"http://127.0.0.1:{port2}"
    q = _serve("--offline", "--db", str(db), "--port", str(port2), log=tmp_path / "second.log")
    try:
        m2 = _wait(f"{base2}/api/v1/map", lambda d: isinstance(d, dict), 60)
        h2 = np.load(io.BytesIO(_get(f"{base2}/api/v1/heatmap?window=12h&format=npz&bins=200")))
    finally:
        q.send_signal(signal.SIGTERM)
        q.wait(20)
    log = (tmp_path / "second.log").read_text()
    import re

    m = re.search(r"restored the model from the store \((\d+) bar", log)
    assert m is not None and int(m.group(1)) >= 3 * 3, log  # >= 3 live bars per venue re-stepped
    # The book: restored up to the last stored bar (checkpoint + re-stepped bars), not older.
    assert m2["data"]["ts_ms"] >= after["data"]["ts_ms"]
    assert m2["data"]["total_long_usd"] > 0 and m2["data"]["total_short_usd"] > 0
    # The history: every column seen before the kill is served again, identical.
    common, i1, i2 = np.intersect1d(before["x_axis"], h2["x_axis"], return_indices=True)
    assert len(common) >= len(before["x_axis"]) - 2
    same_grid = before["y_axis"][0] == h2["y_axis"][0] and len(before["y_axis"]) == len(h2["y_axis"])
    if same_grid:
        np.testing.assert_allclose(before["long"][i1[:-1]], h2["long"][i2[:-1]], rtol=1e-6)
    np.testing.assert_array_equal(before["missing"][i1], h2["missing"][i2])
    assert not h2["missing"][-24:].any()
