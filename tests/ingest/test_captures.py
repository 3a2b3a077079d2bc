"""Real recorded exchange traffic (../shared/data/captures, third-party recordings; see its
README for the line formats) through our decoders: zero decode errors on every capture of a
current API, and the data frames we use decode into sensible events. Also the documented
payload shapes in ../shared/reference/fixtures. Skipped cleanly when the folder is absent.

Retired APIs (Bybit v2, Bitget v1) are fed too, only to show they never crash a normaliser.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from liqfast.events import Liquidation, MarkFunding, OpenInterest, Trade
from liqfast.exchanges.base import ConnContext, Instrument, Normalizer
from liqfast.exchanges.binance import BinanceCoinmNormalizer, BinanceNormalizer
from liqfast.exchanges.bitget import BitgetNormalizer
from liqfast.exchanges.bybit import BybitInverseNormalizer, BybitNormalizer
from liqfast.exchanges.gate import GateNormalizer
from liqfast.exchanges.hyperliquid import HyperliquidNormalizer
from liqfast.exchanges.kucoin import KucoinNormalizer
from liqfast.exchanges.okx import OkxNormalizer

from .conftest import CAPTURES, FIXTURES, need


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        for line in f:
            line = line.rstrip("\n")
            if line:
                yield line


def read_f1(path: Path) -> Iterator[tuple[str, float, str, str]]:
    """cryptofeed raw dump: (kind, ts, url, payload); split only at the first separator."""
    for line in _lines(path):
        if line.startswith("configuration: "):
            yield ("config", 0.0, "", line[15:])
        elif line.startswith("http"):
            url, rest = line.split(" -> ", 1)
            ts, body = rest.split(": ", 1)
            yield ("rest", float(ts), url, body)
        elif line.startswith("wss"):
            if " <-> " in line:
                url, ts = line.rsplit(" <-> ", 1)
                yield ("connect", float(ts), url, "")
            else:
                url, rest = line.split(" <- ", 1)
                ts, body = rest.split(": ", 1)
                yield ("send", float(ts), url, body)
        else:
            ts, frame = line.split(": ", 1)
            yield ("recv", float(ts), "", frame)


def read_f3(path: Path) -> Iterator[tuple[int, str]]:
    """hftbacktest collector: (recv ns, frame)."""
    for line in _lines(path):
        ts, frame = line.split(" ", 1)
        yield int(ts), frame


def _feed(norm: Normalizer, frames: Iterator[tuple[float, str]]) -> list:
    out: list = []
    ctx = ConnContext()
    for ts, frame in frames:
        norm.on_message(frame.encode(), int(ts * 1000), ctx, out)
    return out


def _assert_clean(norm: Normalizer) -> None:
    c = norm.counters
    assert c.decode_errors == 0, norm.last_error
    assert c.messages == c.data_messages + c.control_messages + c.unhandled


# -- Binance ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("folder", "prefix", "cls"), [
    ("binance_usdm", "BINANCE_FUTURES", BinanceNormalizer),
    ("binance_coinm", "BINANCE_DELIVERY", BinanceCoinmNormalizer),
])
def test_binance_cryptofeed_capture(folder: str, prefix: str, cls: type[Normalizer]) -> None:
    base = need(CAPTURES / folder / "cryptofeed_2021-07-22")
    norm = cls()
    for kind, ts, url, body in read_f1(base / f"{prefix}.0.gz"):
        if kind == "rest" and "exchangeInfo" in url:
            assert norm.on_rest("instruments", body.encode(), int(ts * 1000)) == []
    assert len(norm.instruments) > 5
    evs = _feed(norm, ((ts, f) for k, ts, _, f in read_f1(base / f"{prefix}.ws.1.0.gz") if k == "recv"))
    _assert_clean(norm)
    trades = [e for e in evs if isinstance(e, Trade)]
    assert len(trades) == {"binance_usdm": 91, "binance_coinm": 51}[folder]
    assert all(t.price > 0 and t.size_base > 0 and t.size_usd > 0 for t in trades)
    assert norm.counters.unhandled > 1000  # depth, bookTicker, kline: known, not used, not errors
    if folder == "binance_coinm":
        t = next(t for t in trades if t.symbol == "BCHUSD_PERP")
        assert t.size_usd == pytest.approx(30.0)  # 3 contracts of 10 USD


@pytest.mark.parametrize(("name", "cls", "symbol", "n_trades"), [
    ("binance_usdm/hftbacktest_usdm_btcusdt_20240808_first30000.gz", BinanceNormalizer, "BTCUSDT", 4565),
    ("binance_coinm/hftbacktest_cm_btcusd_perp_20240808_first30000.gz", BinanceCoinmNormalizer, "BTCUSD_PERP", 1004),
])
def test_binance_hftbacktest_capture(name: str, cls: type[Normalizer], symbol: str, n_trades: int) -> None:
    path = need(CAPTURES / name)
    norm = cls()
    # One line is the REST depth snapshot body, not a WS frame (no "stream" key): skipped.
    frames = ((ns / 1e9, f) for ns, f in read_f3(path) if f.startswith('{"stream"'))
    evs = _feed(norm, frames)
    _assert_clean(norm)
    trades = [e for e in evs if isinstance(e, Trade)]
    assert len(trades) == n_trades and {t.symbol for t in trades} == {symbol}
    assert {t.side for t in trades} == {"buy", "sell"}
    assert 50_000 < trades[0].price < 70_000 and trades[0].exchange_ts_ms > 1_723_000_000_000
    assert all(t.recv_ts_ms >= t.exchange_ts_ms - 5_000 for t in trades)


# -- Bybit ------------------------------------------------------------------------------------


def test_bybit_v5_capture_2026() -> None:
    path = need(CAPTURES / "bybit" / "AGPL_cryptofeed_v3_BYBIT_v5_2026-08-09.jsonl.gz")
    linear, spot = BybitNormalizer(), BybitNormalizer()
    evs: list = []
    rest = 0
    for line in _lines(path):
        r = json.loads(line)
        if r["t"] == "http":
            if "instruments-info" in r["url"] and "category=linear" in r["url"]:
                assert linear.on_rest("instruments", r["data"].encode(), int(r["ts"] * 1000)) == []
                rest += 1
        elif r["t"] == "recv":
            norm = linear if r["conn"] == "BYBIT.ws.2" else spot
            norm.on_message(r["data"].encode(), int(r["ts"] * 1000), ConnContext(), evs if norm is linear else [])
    assert rest == 1 and "BTCUSDT" in linear.instruments
    _assert_clean(linear)
    _assert_clean(spot)
    trades = [e for e in evs if isinstance(e, Trade)]
    assert len(trades) >= 102
    ois = [e for e in evs if isinstance(e, OpenInterest) and e.symbol == "BTCUSDT"]
    # the 2026 capture carries singleOpenInterest (half of the two-sided openInterest): we use it
    assert ois and ois[0].oi_base == pytest.approx(29945.866)
    marks = [e for e in evs if isinstance(e, MarkFunding)]
    assert len(marks) >= 4 and all(m.mark_price > 0 for m in marks)
    assert not [e for e in evs if isinstance(e, Liquidation)]  # none happened in that window


@pytest.mark.parametrize("name", [
    "cryptofeed_pr1085_v5_orderbook1_2025-06-13/BYBIT.ws.1.0.gz",
    "cryptofeed_pr1085_v5_orderbook1_2025-06-13/BYBIT.ws.2.0.gz",
])
def test_bybit_v5_orderbook_captures(name: str) -> None:
    path = need(CAPTURES / "bybit" / name)
    norm = BybitNormalizer()
    _feed(norm, ((ts, f) for k, ts, _, f in read_f1(path) if k == "recv"))
    _assert_clean(norm)
    assert norm.counters.messages > 100


def test_bybit_archive_orderbook_lines() -> None:
    path = need(CAPTURES / "bybit" / "nautilus_2024-12-01_XRPUSDT_ob500.data.gz")
    norm = BybitNormalizer()
    _feed(norm, ((0.0, line) for line in _lines(path)))
    _assert_clean(norm)
    assert norm.counters.unhandled == 50


def test_bybit_retired_v2_never_crashes() -> None:
    base = need(CAPTURES / "bybit" / "RETIRED_v2_cryptofeed_2021-04-17")
    for name in ("BYBIT.ws.25.0.gz", "BYBIT.ws.26.0.gz"):
        norm = BybitInverseNormalizer()
        _feed(norm, ((ts, f) for k, ts, _, f in read_f1(base / name) if k == "recv"))
        c = norm.counters
        assert c.messages == c.data_messages + c.control_messages + c.unhandled + c.decode_errors


# -- OKX --------------------------------------------------------------------------------------


def test_okx_capture() -> None:
    base = need(CAPTURES / "okx" / "cryptofeed_2022-05-13")
    norm = OkxNormalizer()
    for kind, ts, url, body in read_f1(base / "OKX.0.trimmed.gz"):
        if kind == "rest" and "instruments" in url:
            assert norm.on_rest("instruments", body.encode(), int(ts * 1000)) == []
    assert norm.instruments["BTC-USD-SWAP"].contract_size == 100.0
    assert norm.instruments["BTC-USD-220527"].kind == "inverse"
    evs = _feed(norm, ((ts, f) for k, ts, _, f in read_f1(base / "OKX.ws.1.0.gz") if k == "recv"))
    _assert_clean(norm)
    trades = [e for e in evs if isinstance(e, Trade)]
    assert {t.symbol for t in trades} == {"BTC-USD-220527", "UNI-USD-SWAP"}  # spot BTC-USDT: not a derivative
    assert all(t.venue == "okx-inverse" for t in trades)
    uni = next(t for t in trades if t.symbol == "UNI-USD-SWAP")
    ct = norm.instruments["UNI-USD-SWAP"].contract_size
    assert uni.size_usd % ct == pytest.approx(0.0, abs=1e-9) and uni.size_base == pytest.approx(uni.size_usd / uni.price)
    assert norm.counters.missing_metadata > 0  # the spot trades, counted


# -- Gate -------------------------------------------------------------------------------------


def test_gate_capture() -> None:
    base = need(CAPTURES / "gateio" / "cryptofeed_2023-05-24")
    norm = GateNormalizer()
    for kind, ts, url, body in read_f1(base / "GATEIO_FUTURES.0.gz"):
        if kind == "rest" and "contracts" in url:
            assert norm.on_rest("instruments", body.encode(), int(ts * 1000)) == []
    assert norm.instruments["KNC_USDT"].contract_size == 1.0
    _feed(norm, ((ts, f) for k, ts, _, f in read_f1(base / "GATEIO_FUTURES.ws.1.0.gz") if k == "recv"))
    _assert_clean(norm)
    assert norm.counters.control_messages >= 22 and norm.counters.unhandled >= 400


# -- KuCoin (spot capture: the envelope futures shares) ---------------------------------------


def test_kucoin_envelope_on_spot_capture() -> None:
    base = need(CAPTURES / "kucoin" / "SPOT_cryptofeed_2021-04-25")
    norm = KucoinNormalizer()
    _feed(norm, ((ts, f) for k, ts, _, f in read_f1(base / "KUCOIN.ws.1.0.gz") if k == "recv"))
    _assert_clean(norm)
    c = norm.counters
    assert c.control_messages == 14  # welcome + 13 acks
    assert c.unhandled == c.messages - 14  # spot subjects: recognised, not futures data


# -- Hyperliquid ------------------------------------------------------------------------------


def test_hyperliquid_captures() -> None:
    base = need(CAPTURES / "hyperliquid")
    norm = HyperliquidNormalizer()
    evs = _feed(norm, ((ns / 1e9, f) for ns, f in read_f3(base / "hftbacktest_hyperliquid_btcusd_20250126.gz")))
    _assert_clean(norm)
    trades = [e for e in evs if isinstance(e, Trade)]
    assert len(trades) >= 9 and {t.symbol for t in trades} == {"BTC"} and trades[0].price == 105056.0
    # all-dex asset contexts: positional, decodable (mapped to coins only with a matching universe)
    doc = json.dumps(json.load(gzip.open(base / "nautilus_ws_allDexsAssetCtxs_2026-05.json.gz"))).encode()
    n2 = HyperliquidNormalizer()
    assert n2.feed(doc) == []
    _assert_clean(n2)
    n2.universe = [f"C{i}" for i in range(230)]
    evs2 = n2.feed(doc)
    assert sum(isinstance(e, MarkFunding) for e in evs2) >= 200
    for line in _lines(base / "hlsdk_cassettes_info_rest_2023.jsonl"):
        r = json.loads(line)
        if json.loads(r["request_body"]) == {"type": "meta"}:
            assert norm.on_rest("meta", r["response_body"].encode(), 0) == []
    assert norm.universe[:2] == ["BTC", "ETH"]
    _assert_clean(norm)


def test_bitget_retired_v1_never_crashes() -> None:
    base = need(CAPTURES / "bitget" / "RETIRED_v1_cryptofeed_2022-04-07")
    norm = BitgetNormalizer()
    _feed(norm, ((ts, f) for k, ts, _, f in read_f1(base / "BITGET.ws.2.0.gz") if k == "recv"))
    c = norm.counters
    assert c.messages == c.data_messages + c.control_messages + c.unhandled + c.decode_errors


# -- documented payload shapes ----------------------------------------------------------------


def _fixture(name: str) -> bytes:
    return need(FIXTURES / name).read_bytes()


def _wrap(raw: bytes) -> bytes:
    return b'{"stream":"x","data":' + raw + b"}"


@pytest.mark.parametrize(("name", "norm_cls", "wrap", "check"), [
    ("binance_usdm_aggTrade.json", BinanceNormalizer, True, lambda e: e[0].side == "sell"),
    ("binance_usdm_forceOrder.json", BinanceNormalizer, True, lambda e: e[0].side == "long"),
    ("binance_usdm_forceOrder_combined.json", BinanceNormalizer, False,
     lambda e: e[0].side == "long" and e[0].price == 18990.0),
    ("binance_coinm_forceOrder.json", BinanceCoinmNormalizer, True,
     lambda e: e[0].side == "long" and e[0].size_usd == 100.0),
    ("binance_usdm_markPriceUpdate.json", BinanceNormalizer, True, lambda e: e[0].funding_rate == 0.00038167),
    ("bybit_v5_allLiquidation.json", BybitNormalizer, False,
     lambda e: e[0].side == "short" and e[0].size_base == 20000.0),
    ("bybit_v5_publicTrade.json", BybitNormalizer, False, lambda e: e[0].side == "buy"),
    ("bybit_v5_ticker_linear.json", BybitNormalizer, False, lambda e: any(isinstance(x, OpenInterest) for x in e)),
    ("bybit_v5_pong_linear.json", BybitNormalizer, False, lambda e: e == []),
    ("okx_v5_liquidation_orders.json", OkxNormalizer, False,
     lambda e: e[0].side == "short" and e[0].venue == "okx-linear"),
    ("okx_v5_mark_price.json", OkxNormalizer, False, lambda e: e[0].mark_price == 0.1),
    ("okx_v5_funding_rate.json", OkxNormalizer, False, lambda e: e[0].funding_interval_h == 8.0),
    ("okx_v5_open_interest_ws.json", OkxNormalizer, False, lambda e: e[0].oi_base == 5654.74),
    ("bitget_v3_liquidation.json", BitgetNormalizer, False, lambda e: e[0].side == "long"),
    ("bitget_v3_ticker.json", BitgetNormalizer, False, lambda e: True),
    ("gate_futures_public_liquidates.json", GateNormalizer, False, lambda e: [x.side for x in e] == ["long", "long"]),
    ("gate_futures_tickers.json", GateNormalizer, False, lambda e: any(isinstance(x, OpenInterest) for x in e)),
    ("gate_futures_trades.json", GateNormalizer, False, lambda e: e == []),  # BTC_USD on a USDT normaliser: no size
    ("kucoin_futures_execution.json", KucoinNormalizer, False,
     lambda e: e[0].exchange_ts_ms == 1705708799996 and e[0].size_base == pytest.approx(1.02)),
    ("kucoin_futures_instrument.json", KucoinNormalizer, False, lambda e: e[0].mark_price == 0.80694),
    ("hyperliquid_ws_trades.json", HyperliquidNormalizer, False, lambda e: e[0].side == "buy"),
    ("hyperliquid_ws_activeAssetCtx.json", HyperliquidNormalizer, False, lambda e: len(e) == 2),
])
def test_documented_shapes(name: str, norm_cls: type[Normalizer], wrap: bool, check) -> None:  # noqa: ANN001
    raw = json.dumps(json.loads(_fixture(name))).encode()
    norm = norm_cls()
    norm.symbols = None
    # instrument metadata the connector would have loaded at start-up
    norm.instruments["IOST-USDT-SWAP"] = Instrument("okx-linear", "IOST-USDT-SWAP", "linear", 1000.0)
    norm.instruments["COMPUSDTM"] = Instrument("kucoin-linear", "COMPUSDTM", "linear", 0.01)
    if norm_cls is GateNormalizer:
        norm.on_rest("instruments", b'[{"name":"BTC_USDT","quanto_multiplier":"0.0001","type":"direct"}]', 0)
    evs = norm.feed(_wrap(raw) if wrap else raw, 1_800_000_000_000)
    assert norm.counters.decode_errors == 0, norm.last_error
    assert check(evs), evs


@pytest.mark.parametrize(("name", "norm_cls", "tag"), [
    ("binance_usdm_openInterest.json", BinanceNormalizer, "oi:BTCUSDT"),
    ("binance_coinm_openInterest.json", BinanceCoinmNormalizer, "oi:BTCUSD_PERP"),
])
def test_documented_rest_shapes(name: str, norm_cls: type[Normalizer], tag: str) -> None:
    norm = norm_cls()
    norm.marks[tag[3:]] = 50_000.0
    (oi,) = norm.on_rest(tag, _fixture(name), 0)
    assert oi.oi_base > 0 and oi.oi_usd > 0 and norm.counters.decode_errors == 0
