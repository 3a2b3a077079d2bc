"""The CLI subcommands: live, record, replay, backfill — against the loopback fake (running on
its own loop in a thread, since each command runs its own asyncio loop)."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import pytest

from liqfast.cli import main
from liqfast.events import Liquidation, MarkFunding, Trade
from liqfast.exchanges import NetworkUnavailableError, check_network

from .conftest import run
from .test_backfill import _klines, _metrics, _serve, _zip


def _feed_forever(tf, venue: str, sym: str, seconds: float) -> None:  # noqa: ANN001
    """Publish a trade every 20 ms (and a liquidation every 10th) on the fake's loop."""

    async def pump() -> None:
        end = time.monotonic() + seconds
        k = 0
        while time.monotonic() < end:
            k += 1
            t = int(time.time() * 1000)
            tf.fx.publish(Trade(venue, sym, t, t, 60_000.0 + k % 7, 0.01, 600.0, "buy" if k % 2 else "sell", k))
            if k % 10 == 0:
                tf.fx.publish(Liquidation(venue, sym, t, t, "long", 59_000.0, 0.1, 5_900.0, "x"))
                tf.fx.publish(MarkFunding(venue, sym, t, t, 60_000.0))
            await asyncio.sleep(0.02)

    asyncio.run_coroutine_threadsafe(pump(), tf.loop)


def _url_arg(tf, venue: str) -> str:  # noqa: ANN001
    u = tf.fx.urls(venue)
    return f"{venue}={u.ws}|{u.rest}"


def test_live_without_network_says_so_fast(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async def no_network(urls, timeout=4.0):  # noqa: ANN001, ANN202
        raise NetworkUnavailableError("no exchange host is reachable — no network? (cannot resolve x)")

    monkeypatch.setattr("liqfast.exchanges.check_network", no_network)
    t0 = time.monotonic()
    code = main(["live", "--venues", "binance-usdm,okx-linear"])
    assert code == 3 and time.monotonic() - t0 < 5
    assert "no network" in capsys.readouterr().err


def test_check_network_loopback(threaded_fake) -> None:  # noqa: ANN001
    tf = threaded_fake(venues=["binance-usdm"])

    async def go() -> None:
        ok = await check_network([f"http://127.0.0.1:{tf.fx.port}/x"], timeout=2)
        assert ok == {"127.0.0.1": None}
        with pytest.raises(NetworkUnavailableError, match="no network"):
            await check_network(["http://127.0.0.1:9/x", "wss://127.0.0.1:1/y"], timeout=2)

    run(go())


def test_live_streams_from_fake(threaded_fake, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    tf = threaded_fake(venues=["binance-usdm"])
    tf.call(tf.fx.add_symbols, "binance-usdm", ["BTCUSDT"])
    _feed_forever(tf, "binance-usdm", "BTCUSDT", 4.0)
    code = main(["live", "--venues", "binance-usdm", "--url", _url_arg(tf, "binance-usdm"), "--duration", "2.5",
                 "--show", "trade,liquidation", "--stats-every", "0", "--connect-timeout", "3"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "TRADE binance-usdm" in out and "LIQ   binance-usdm" in out and "long" in out
    assert "streaming binance-usdm" in err and "decode_errors 0" in err


def test_record_then_replay_cli(threaded_fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    tf = threaded_fake(venues=["bybit-linear"])
    tf.call(tf.fx.add_symbols, "bybit-linear", ["BTCUSDT"])
    _feed_forever(tf, "bybit-linear", "BTCUSDT", 4.0)
    rec = tmp_path / "rec"
    code = main(["record", "--venues", "bybit-linear", "--url", _url_arg(tf, "bybit-linear"), "--out", str(rec),
                 "--duration", "2", "--stats-every", "0"])
    assert code == 0
    files = sorted(rec.glob("*.lfr.gz"))
    assert len(files) == 1 and str(files[0]) in capsys.readouterr().out
    events, bars = tmp_path / "ev.jsonl.gz", tmp_path / "bars.jsonl"
    code = main(["replay", *map(str, files), "--out", str(events), "--bars", "1s", "--bars-out", str(bars)])
    err = capsys.readouterr().err
    assert code == 0 and "0 decode errors" in err
    lines = gzip.decompress(events.read_bytes()).splitlines()
    kinds = {json.loads(x)["kind"] for x in lines}
    assert {"trade", "liquidation"} <= kinds
    assert len(bars.read_text().splitlines()) >= 1


def test_backfill_cli(threaded_fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    tf = threaded_fake(venues=["binance-usdm"])
    base = "/data/futures/um/daily"
    tf.call(_serve, tf.fx, f"{base}/klines/BTCUSDT/5m/BTCUSDT-5m-2024-08-08.zip", _zip("k.csv", _klines(12, True)))
    tf.call(_serve, tf.fx, f"{base}/metrics/BTCUSDT/BTCUSDT-metrics-2024-08-08.zip", _zip("m.csv", _metrics(12)))
    out, bars = tmp_path / "hist.jsonl", tmp_path / "bars.jsonl"
    code = main(["backfill", "binance-usdm", "BTC", "--start", "2024-08-08", "--base-url", tf.fx.vision_url(),
                 "--out", str(out), "--bars-out", str(bars)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "24 items" in err and "2 checksums verified" in err
    assert len(out.read_text().splitlines()) == 24
    rows = [json.loads(x) for x in bars.read_text().splitlines()]
    assert len(rows) == 12 and rows[0]["oi_close_base"] == 80_000 and rows[0]["taker_net_base"] == 2.0
