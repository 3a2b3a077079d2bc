"""History import: Binance public data files (zip CSV, served by the fake on loopback in the
data.binance.vision layout) and OKX/Bybit REST history, into events, candles and bars."""

from __future__ import annotations

import datetime as dt
import time
import hashlib
import io
import zipfile

import pytest

from liqfast.events import BarSet, Candle, Liquidation, OpenInterest, Trade
from liqfast.exchanges import BackfillError, FakeExchange
from liqfast.exchanges.backfill import BackfillStats, backfill, parse_interval
from liqfast.exchanges.fake import synthetic_oi

from .conftest import run

DAY = dt.date(2024, 8, 8)
T0 = 1_723_075_200_000  # 2024-08-08T00:00:00Z


def _zip(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, text)
    return buf.getvalue()


def _klines(n: int, header: bool) -> str:
    rows = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
            "taker_buy_quote_volume,ignore"] if header else []
    for i in range(n):
        t = T0 + i * 300_000
        o = 60_000 + i
        rows.append(f"{t},{o},{o + 10},{o - 10},{o + 1},{10 + i},{t + 299_999},{(10 + i) * o},{100 + i},{6 + i},"
                    f"{(6 + i) * o},0")
    return "\n".join(rows) + "\n"


def _metrics(n: int) -> str:
    rows = ["create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
            "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"]
    for i in range(n):
        ts = dt.datetime.fromtimestamp((T0 + (i + 1) * 300_000) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{ts},BTCUSDT,{80_000 + i},{(80_000 + i) * 60_000.0},1.1,1.2,1.3,0.9")
    return "\n".join(rows) + "\n"


def _agg_trades(n: int) -> str:
    rows = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"]
    for i in range(n):
        rows.append(f"{1000 + i},{60_000 + i * 0.5},0.01,{i},{i},{T0 + i * 1000},{'true' if i % 3 == 0 else 'false'}")
    return "\n".join(rows) + "\n"


def _serve(fx: FakeExchange, path: str, data: bytes, checksum: bool = True, good: bool = True) -> None:
    fx.files[path] = data
    if checksum:
        digest = hashlib.sha256(data if good else b"other").hexdigest()
        fx.files[path + ".CHECKSUM"] = f"{digest}  {path.rsplit('/', 1)[1]}\n".encode()


async def _collect(**kw) -> tuple[list, BackfillStats]:  # noqa: ANN003
    stats = BackfillStats()
    out = [x async for x in backfill(stats=stats, progress=False, **kw)]
    return out, stats


def test_binance_vision_klines_and_metrics_to_bars() -> None:
    async def main() -> None:
        async with FakeExchange(venues=["binance-usdm"]) as fx:
            base = "/data/futures/um/daily"
            _serve(fx, f"{base}/klines/BTCUSDT/5m/BTCUSDT-5m-2024-08-08.zip", _zip("BTCUSDT-5m-2024-08-08.csv",
                                                                                 _klines(288, header=True)))
            _serve(fx, f"{base}/metrics/BTCUSDT/BTCUSDT-metrics-2024-08-08.zip",
                   _zip("BTCUSDT-metrics-2024-08-08.csv", _metrics(288)))
            # the next day has no files (404): skipped and counted
            items, stats = await _collect(venue="binance-usdm", symbol="BTCUSDT", start=DAY, end=DAY + dt.timedelta(days=1),
                                          kinds=["klines", "metrics"], base_url=fx.vision_url())
            assert stats.files == 2 and len(stats.missing) == 2 and stats.checksum_verified == 2
            candles = [x for x in items if isinstance(x, Candle)]
            ois = [x for x in items if isinstance(x, OpenInterest)]
            assert len(candles) == 288 and len(ois) == 288
            assert candles[0].taker_buy_base == 6.0 and candles[0].trades == 100
            assert ois[0].oi_base == 80_000 and ois[0].price == pytest.approx(60_000.0)
            # in time order, so bars come out right
            bs = BarSet(300_000, grace_ms=0)
            bars = bs.add_many(items) + bs.flush()
            assert len(bars) == 288
            b0 = bars[0]
            assert (b0.open, b0.close, b0.taker_net_base) == (60_000.0, 60_001.0, 2.0)
            assert b0.oi_close_base == 80_000  # OI stamped at the bar close belongs to it

    run(main())


def test_binance_vision_agg_trades_without_header_and_checksum_mismatch() -> None:
    async def main() -> None:
        async with FakeExchange(venues=["binance-usdm"]) as fx:
            path = "/data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-08-08.zip"
            body = _agg_trades(600).split("\n", 1)[1]  # older files: no header row
            _serve(fx, path, _zip("BTCUSDT-aggTrades-2024-08-08.csv", body))
            items, stats = await _collect(venue="binance-usdm", symbol="BTCUSDT", start=DAY, end=DAY,
                                          kinds=["aggTrades", "klines"], base_url=fx.vision_url())
            trades = [x for x in items if isinstance(x, Trade)]
            assert len(trades) == 600 and stats.items == {"Trade": 600}  # klines dropped: would double count
            assert trades[0].side == "sell" and trades[1].side == "buy" and trades[0].trade_id == 1000
            _serve(fx, path, _zip("x.csv", body), good=False)
            with pytest.raises(BackfillError, match="checksum"):
                await _collect(venue="binance-usdm", symbol="BTCUSDT", start=DAY, end=DAY, kinds=["aggTrades"],
                               base_url=fx.vision_url())

    run(main())


def test_binance_coinm_units() -> None:
    async def main() -> None:
        async with FakeExchange(venues=["binance-coinm"]) as fx:
            base = "/data/futures/cm/daily"
            k = "open_time,open,high,low,close,volume,close_time,base_volume,count,taker_buy_volume,taker_buy_base_volume,x\n"
            k += f"{T0},50000,50010,49990,50005,200,{T0 + 299_999},0.4,10,120,0.24,0\n"
            _serve(fx, f"{base}/klines/BTCUSD_PERP/5m/BTCUSD_PERP-5m-2024-08-08.zip", _zip("a.csv", k), checksum=False)
            items, _ = await _collect(venue="binance-coinm", symbol="BTCUSD_PERP", start=DAY, end=DAY,
                                      kinds=["klines"], base_url=fx.vision_url())
            (c,) = items
            assert c.volume_usd == 20_000.0 and c.volume_base == 0.4 and c.taker_buy_base == 0.24

    run(main())


def test_binance_vision_rate_limited_file_is_retried() -> None:
    async def main() -> None:
        async with FakeExchange(venues=["binance-usdm"]) as fx:
            path = "/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-08-08.zip"
            _serve(fx, path, _zip("m.csv", _metrics(3)), checksum=False)
            fx.fail_rest("vision", 429, retry_after=0.4, times=1)
            t0 = time.monotonic()
            items, stats = await _collect(venue="binance-usdm", symbol="BTCUSDT", start=DAY, end=DAY, kinds=["metrics"],
                                          base_url=fx.vision_url(), verify_checksums=False)
            assert len(items) == 3 and not stats.missing
            assert time.monotonic() - t0 >= 0.35  # waited for Retry-After before retrying
            assert [code for *_, code in fx.rest_log][:2] == [429, 200]

    run(main())


def test_okx_rest_history_pages_backwards() -> None:
    async def main() -> None:
        async with FakeExchange(venues=["okx-linear"]) as fx:
            fx.history_range = (T0, T0 + 86_400_000 - 1)
            items, stats = await _collect(venue="okx-linear", symbol="BTC-USDT-SWAP", start=DAY, end=DAY,
                                          kinds=["oi", "klines", "liquidations"], base_url=f"http://127.0.0.1:{fx.port}/okx")
            ois = [x for x in items if isinstance(x, OpenInterest)]
            candles = [x for x in items if isinstance(x, Candle)]
            liqs = [x for x in items if isinstance(x, Liquidation)]
            assert len(ois) == 288 and len(candles) == 288 and len(liqs) == 24
            assert ois[0].oi_base == synthetic_oi(ois[0].exchange_ts_ms)
            assert stats.requests >= 3 + 3 + 1  # 100 rows per page
            assert {x.side for x in liqs} == {"long", "short"}
            assert liqs[0].size_base == pytest.approx(0.03)  # 3 contracts of 0.01 BTC

    run(main())


def test_bybit_rest_history_and_rate_limit() -> None:
    async def main() -> None:
        async with FakeExchange(venues=["bybit-linear"]) as fx:
            fx.history_range = (T0, T0 + 86_400_000 - 1)
            fx.fail_rest("bybit-linear", 429, retry_after=0.3, times=1)
            items, stats = await _collect(venue="bybit-linear", symbol="BTCUSDT", start=DAY, end=DAY,
                                          kinds=["oi", "klines"], base_url=f"http://127.0.0.1:{fx.port}/bybit-linear")
            ois = [x for x in items if isinstance(x, OpenInterest)]
            assert len(ois) == 288 and len([x for x in items if isinstance(x, Candle)]) == 288
            assert ois[0].oi_base == synthetic_oi(ois[0].exchange_ts_ms)  # single-sided
            assert ois[0].oi_usd == pytest.approx(ois[0].oi_base * ois[0].price)

    run(main())


def test_parse_interval() -> None:
    assert parse_interval("5m") == 300_000 and parse_interval("1h") == 3_600_000 and parse_interval("90s") == 90_000
    with pytest.raises(ValueError):
        parse_interval("five minutes")
