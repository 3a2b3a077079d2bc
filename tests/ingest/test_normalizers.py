"""Per-venue decoding: side normalisation (liquidated *position* side), unit conversion with
instrument metadata, timestamps, control frames. Frames are written here in each venue's
documented shape (no network, no shared data needed)."""

from __future__ import annotations

import json
import math

import pytest

from liqfast.events import Liquidation, MarkFunding, OpenInterest, Trade
from liqfast.exchanges.base import ConnContext, Instrument
from liqfast.exchanges.binance import BinanceCoinmNormalizer, BinanceNormalizer
from liqfast.exchanges.bitget import BitgetNormalizer
from liqfast.exchanges.bybit import BybitInverseNormalizer, BybitNormalizer
from liqfast.exchanges.gate import GateInverseNormalizer, GateNormalizer
from liqfast.exchanges.hyperliquid import HyperliquidNormalizer
from liqfast.exchanges.kucoin import KucoinNormalizer
from liqfast.exchanges.okx import OkxNormalizer

R = 1_700_000_000_123  # receive time used throughout


def feed(norm, obj, recv=R):  # noqa: ANN001, ANN201
    data = obj if isinstance(obj, bytes | str) else json.dumps(obj).encode()
    return norm.feed(data, recv, ConnContext())


def only(events, kind):  # noqa: ANN001, ANN201
    out = [e for e in events if isinstance(e, kind)]
    assert out, f"no {kind.__name__} in {events}"
    return out


# -- Binance ----------------------------------------------------------------------------------


def test_binance_aggtrade_buyer_maker_is_taker_sell() -> None:
    n = BinanceNormalizer()
    frame = {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": 2, "s": "BTCUSDT", "a": 11, "p": "60000.5",
                                                     "q": "0.25", "f": 1, "l": 2, "T": 1_700_000_000_000, "m": True}}
    (t,) = feed(n, frame)
    assert t == Trade("binance-usdm", "BTCUSDT", 1_700_000_000_000, R, 60000.5, 0.25, 15000.125, "sell", 11)
    frame["data"]["m"] = False
    assert feed(n, frame)[0].side == "buy"


@pytest.mark.parametrize(("order_side", "position"), [("SELL", "long"), ("BUY", "short")])
def test_binance_force_order_side_is_order_side(order_side: str, position: str) -> None:
    n = BinanceNormalizer()
    frame = {"stream": "!forceOrder@arr", "data": {"e": "forceOrder", "E": 5, "o": {
        "s": "BTCUSDT", "S": order_side, "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9915",
        "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}}}
    (liq,) = feed(n, frame)
    assert isinstance(liq, Liquidation)
    assert liq.side == position
    assert liq.price == 9915.0 and liq.price_kind == "avg_fill"
    assert liq.size_base == pytest.approx(0.014) and liq.size_usd == pytest.approx(0.014 * 9915)
    assert liq.completeness == "snapshot_1s"
    assert liq.exchange_ts_ms == 1568014460893 and liq.recv_ts_ms == R


def test_binance_force_order_filters_other_symbols_unless_all() -> None:
    n = BinanceNormalizer()
    n.symbols = frozenset({"BTCUSDT"})
    frame = {"data": {"e": "forceOrder", "E": 5, "o": {"s": "ETHUSDT", "S": "SELL", "q": "1", "p": "2000", "ap": "0",
                                                        "T": 1}}}
    assert feed(n, frame) == []
    n.symbols = None
    (liq,) = feed(n, frame)
    assert liq.price_kind == "order" and liq.price == 2000.0


def test_binance_coinm_contracts_converted_with_contract_size() -> None:
    n = BinanceCoinmNormalizer()
    frame = {"stream": "btcusd_perp@forceOrder", "data": {"e": "forceOrder", "E": 1, "o": {
        "s": "BTCUSD_PERP", "ps": "BTCUSD", "S": "BUY", "q": "3", "p": "50000", "ap": "50000", "X": "FILLED",
        "z": "3", "T": 7}}}
    (liq,) = feed(n, frame)
    assert liq.venue == "binance-coinm" and liq.side == "short"
    assert liq.size_usd == 300.0  # 3 contracts of 100 USD
    assert liq.size_base == pytest.approx(300.0 / 50000)
    # exchangeInfo overrides the convention
    n._on_rest("instruments", json.dumps({"symbols": [{"symbol": "ETHUSD_PERP", "contractSize": 10}]}).encode(), R)
    t = feed(n, {"data": {"e": "aggTrade", "s": "ETHUSD_PERP", "a": 1, "p": "2000", "q": "5", "T": 9, "m": False}})[0]
    assert t.size_usd == 50.0 and t.size_base == pytest.approx(0.025)


def test_binance_mark_price_single_and_array() -> None:
    n = BinanceNormalizer()
    one = {"e": "markPriceUpdate", "E": 10, "s": "BTCUSDT", "p": "60000.1", "i": "59999.0", "P": "60001",
           "r": "0.0001", "T": 1_700_003_600_000}
    (m,) = feed(n, {"stream": "btcusdt@markPrice@1s", "data": one})
    assert m == MarkFunding("binance-usdm", "BTCUSDT", 10, R, 60000.1, 59999.0, 0.0001, 1_700_003_600_000)
    # delivery contracts send an empty funding rate
    arr = feed(n, {"stream": "!markPrice@arr", "data": [one, one | {"s": "BTCUSDT_260925", "r": ""}]})
    assert len(arr) == 2 and math.isnan(arr[1].funding_rate)


def test_binance_open_interest_rest_uses_mark() -> None:
    n = BinanceNormalizer()
    feed(n, {"data": {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "50000", "T": 0}})
    (oi,) = n.on_rest("oi:BTCUSDT", b'{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}', R)
    assert oi == OpenInterest("binance-usdm", "BTCUSDT", 1589437530011, R, 10659.509, 10659.509 * 50000, 50000.0, "rest")
    c = BinanceCoinmNormalizer()
    c.marks["BTCUSD_PERP"] = 40000.0
    (oi2,) = c.on_rest("oi:BTCUSD_PERP", b'{"symbol":"BTCUSD_PERP","pair":"BTCUSD","openInterest":"15004",'
                                         b'"contractType":"PERPETUAL","time":1591261042378}', R)
    assert oi2.oi_usd == 1_500_400.0 and oi2.oi_base == pytest.approx(1_500_400.0 / 40000)


def test_binance_acks_and_ignored_streams_are_not_errors() -> None:
    n = BinanceNormalizer()
    assert feed(n, {"result": None, "id": 1}) == []
    assert feed(n, {"stream": "x@depth", "data": {"e": "depthUpdate", "E": 1, "s": "X", "b": [], "a": []}}) == []
    assert n.counters.decode_errors == 0 and n.counters.unhandled == 1
    assert feed(n, {"data": {"e": "newEventType", "E": 1}}) == []
    assert n.counters.decode_errors == 1


# -- Bybit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "position"), [("Buy", "long"), ("Sell", "short")])
def test_bybit_all_liquidation_side_is_position_side(side: str, position: str) -> None:
    n = BybitNormalizer()
    frame = {"topic": "allLiquidation.ROSEUSDT", "type": "snapshot", "ts": 1739502303204,
             "data": [{"T": 1739502302929, "s": "ROSEUSDT", "S": side, "v": "20000", "p": "0.04499"}]}
    (liq,) = feed(n, frame)
    assert liq.side == position
    assert liq.size_base == 20000.0 and liq.size_usd == pytest.approx(20000 * 0.04499)
    assert liq.price_kind == "bankruptcy" and liq.completeness == "all_500ms"


def test_bybit_inverse_sizes_are_usd() -> None:
    n = BybitInverseNormalizer()
    (liq,) = feed(n, {"topic": "allLiquidation.BTCUSD", "data": [
        {"T": 5, "s": "BTCUSD", "S": "Sell", "v": "12000", "p": "60000"}]})
    assert liq.venue == "bybit-inverse" and liq.side == "short"
    assert liq.size_usd == 12000.0 and liq.size_base == pytest.approx(0.2)
    (t,) = feed(n, {"topic": "publicTrade.BTCUSD", "data": [
        {"T": 6, "s": "BTCUSD", "S": "Buy", "v": "600", "p": "60000", "i": "x"}]})
    assert t.size_usd == 600.0 and t.size_base == pytest.approx(0.01) and t.side == "buy"


def test_bybit_ticker_delta_merge_prefers_single_sided_oi() -> None:
    n = BybitNormalizer()
    snap = {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 100, "data": {
        "symbol": "BTCUSDT", "markPrice": "65117.44", "indexPrice": "65137.76", "openInterest": "59891.732",
        "singleOpenInterest": "29945.866", "fundingRate": "0.0001", "nextFundingTime": "1786320000000",
        "fundingIntervalHour": "8"}}
    evs = feed(n, snap)
    (m,) = only(evs, MarkFunding)
    assert m.mark_price == 65117.44 and m.funding_rate == 0.0001 and m.next_funding_ms == 1786320000000
    assert m.funding_interval_h == 8.0
    (oi,) = only(evs, OpenInterest)
    assert oi.oi_base == 29945.866 and oi.oi_usd == pytest.approx(29945.866 * 65117.44)
    # a delta with only book fields changes nothing
    assert feed(n, {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 101, "data": {
        "symbol": "BTCUSDT", "bid1Price": "1"}}) == []
    # a delta with a new mark keeps the funding of the snapshot
    (m2,) = feed(n, {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 102, "data": {
        "symbol": "BTCUSDT", "markPrice": "65200"}})
    assert m2.mark_price == 65200.0 and m2.funding_rate == 0.0001 and m2.exchange_ts_ms == 102


def test_bybit_ticker_before_single_sided_field_uses_open_interest() -> None:
    n = BybitNormalizer()
    evs = feed(n, {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1, "data": {
        "symbol": "BTCUSDT", "markPrice": "100", "openInterest": "5"}})
    assert only(evs, OpenInterest)[0].oi_base == 5.0


def test_bybit_control_frames() -> None:
    n = BybitNormalizer()
    assert feed(n, {"success": True, "ret_msg": "pong", "conn_id": "x", "req_id": "", "op": "ping"}) == []
    assert feed(n, {"success": False, "ret_msg": "error:handler not found", "op": "subscribe"}) == []
    assert n.venue_errors == ["error:handler not found"]
    assert feed(n, {"topic": "orderbook.50.BTCUSDT", "type": "delta", "data": {}}) == []
    assert n.counters.decode_errors == 0


# -- OKX --------------------------------------------------------------------------------------

_OKX_INSTRUMENTS = json.dumps({"code": "0", "data": [
    {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "ctVal": "0.01", "ctType": "linear", "settleCcy": "USDT"},
    {"instId": "BTC-USD-SWAP", "instType": "SWAP", "ctVal": "100", "ctType": "inverse", "settleCcy": "BTC"},
    {"instId": "BTC-USDT", "instType": "SPOT", "ctVal": "", "ctType": ""},
]}).encode()


def _okx() -> OkxNormalizer:
    n = OkxNormalizer()
    n.on_rest("instruments:SWAP", _OKX_INSTRUMENTS, R)
    return n


def test_okx_trades_in_contracts() -> None:
    n = _okx()
    (t,) = feed(n, {"arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"}, "data": [
        {"instId": "BTC-USDT-SWAP", "tradeId": "1", "px": "60000", "sz": "12", "side": "sell", "ts": "1630048897897",
         "count": "2"}]})
    assert t.venue == "okx-linear" and t.side == "sell" and t.exchange_ts_ms == 1630048897897
    assert t.size_base == pytest.approx(0.12) and t.size_usd == pytest.approx(7200.0)
    (t2,) = feed(n, {"arg": {"channel": "trades", "instId": "BTC-USD-SWAP"}, "data": [
        {"instId": "BTC-USD-SWAP", "tradeId": "2", "px": "50000", "sz": "10", "side": "buy", "ts": "1"}]})
    assert t2.venue == "okx-inverse" and t2.size_usd == 1000.0 and t2.size_base == pytest.approx(0.02)


@pytest.mark.parametrize(("side", "pos_side", "position"), [
    ("buy", "short", "short"), ("sell", "long", "long"), ("sell", "net", "long"), ("buy", "net", "short"),
])
def test_okx_liquidation_position_side(side: str, pos_side: str, position: str) -> None:
    n = _okx()
    n.symbols = None
    frame = {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [{
        "details": [{"bkLoss": "0", "bkPx": "60000", "ccy": "", "posSide": pos_side, "side": side, "sz": "13",
                     "ts": "1692266434010"}], "instFamily": "BTC-USDT", "instId": "BTC-USDT-SWAP", "instType": "SWAP",
        "uly": "BTC-USDT"}]}
    (liq,) = feed(n, frame)
    assert liq.side == position and liq.completeness == "partial" and liq.price_kind == "bankruptcy"
    assert liq.size_base == pytest.approx(0.13) and liq.size_usd == pytest.approx(7800.0)
    # OKX re-sends recent liquidations after a (re)subscribe: de-duplicated
    assert feed(n, frame) == []


def test_okx_open_interest_mark_funding() -> None:
    n = _okx()
    (m,) = feed(n, {"arg": {"channel": "mark-price", "instId": "BTC-USDT-SWAP"}, "data": [
        {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "markPx": "60000", "ts": "5"}]})
    assert m.mark_price == 60000.0
    (oi,) = feed(n, {"arg": {"channel": "open-interest", "instId": "BTC-USDT-SWAP"}, "data": [
        {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "oi": "565474", "oiCcy": "5654.74", "ts": "1630338003010"}]})
    assert oi.oi_base == 5654.74 and oi.oi_usd == pytest.approx(5654.74 * 60000)
    (f,) = feed(n, {"arg": {"channel": "funding-rate", "instId": "BTC-USD-SWAP"}, "data": [{
        "fundingRate": "0.0001875", "fundingTime": "1700726400000", "nextFundingTime": "1700755200000",
        "instId": "BTC-USD-SWAP", "instType": "SWAP", "ts": "1700724675402"}]})
    assert f.venue == "okx-inverse" and f.funding_rate == 0.0001875 and f.funding_interval_h == 8.0


def test_okx_text_pong_and_events() -> None:
    n = _okx()
    assert n.feed(b"pong", R) == []
    assert feed(n, {"event": "subscribe", "arg": {"channel": "trades", "instId": "X"}, "connId": "a"}) == []
    assert feed(n, {"event": "error", "code": "60018", "msg": "doesn't exist"}) == []
    assert n.venue_errors and n.counters.decode_errors == 0


# -- Bitget -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "position"), [("buy", "long"), ("sell", "short")])
def test_bitget_liquidation(side: str, position: str) -> None:
    n = BitgetNormalizer()
    n.symbols = None
    (liq,) = feed(n, {"action": "update", "arg": {"instType": "usdt-futures", "topic": "liquidation"}, "data": [
        {"symbol": "BTCUSDT", "side": side, "price": "60000", "amount": "150000", "ts": "1791500000000"}],
        "ts": 1791500000000})
    assert liq.side == position and liq.completeness == "aggregated"
    assert liq.size_usd == 150000.0 and liq.size_base == pytest.approx(2.5)
    base = BitgetNormalizer(liq_amount="base")
    base.symbols = None
    (l2,) = feed(base, {"arg": {"instType": "usdt-futures", "topic": "liquidation"}, "data": [
        {"symbol": "BTCUSDT", "side": side, "price": "60000", "amount": "2", "ts": "1"}]})
    assert l2.size_base == 2.0 and l2.size_usd == 120000.0


def test_bitget_trades_and_ticker() -> None:
    n = BitgetNormalizer()
    (t,) = feed(n, {"action": "update", "arg": {"instType": "usdt-futures", "topic": "publicTrade", "symbol": "BTCUSDT"},
                    "data": [{"i": "9", "p": "60000.5", "v": "0.01", "S": "sell", "T": "1791500000000", "L": "1"}]})
    assert t.side == "sell" and t.size_base == 0.01 and t.exchange_ts_ms == 1791500000000
    evs = feed(n, {"action": "snapshot", "arg": {"instType": "usdt-futures", "topic": "ticker", "symbol": "BTCUSDT"},
                   "data": [{"markPrice": "60010", "indexPrice": "60000", "fundingRate": "0.0001",
                             "openInterest": "1234.5", "nextFundingTime": "1791500400000"}], "ts": 77})
    assert only(evs, MarkFunding)[0].mark_price == 60010.0
    assert only(evs, OpenInterest)[0].oi_usd == pytest.approx(1234.5 * 60010)
    assert n.feed(b"pong", R) == []


# -- Gate -------------------------------------------------------------------------------------


def _gate() -> GateNormalizer:
    n = GateNormalizer()
    n.on_rest("instruments", json.dumps([{"name": "BTC_USDT", "quanto_multiplier": "0.0001", "type": "direct"}]).encode(), R)
    n.symbols = None
    return n


@pytest.mark.parametrize(("size", "position"), [("-124.5", "long"), ("300", "short")])
def test_gate_public_liquidates_sign(size: str, position: str) -> None:
    n = _gate()
    (liq,) = feed(n, {"channel": "futures.public_liquidates", "event": "update", "time": 1789000000,
                      "time_ms": 1789000000123, "result": [{"price": "60000", "size": size,
                                                            "time_ms": 1789000000100, "contract": "BTC_USDT"}]})
    assert liq.side == position and liq.completeness == "batched_1s"
    assert liq.size_base == pytest.approx(abs(float(size)) * 0.0001)


def test_gate_old_liquidation_format_is_snapshot_1s() -> None:
    n = _gate()
    (liq,) = feed(n, {"channel": "futures.public_liquidates", "event": "update", "time": 1600000000,
                      "result": {"price": "10000", "size": -5, "time": 1600000000, "contract": "BTC_USDT"}})
    assert liq.exchange_ts_ms == 1600000000000 and liq.completeness == "snapshot_1s"


def test_gate_trades_and_tickers() -> None:
    n = _gate()
    (t,) = feed(n, {"time": 1, "time_ms": 1000, "channel": "futures.trades", "event": "update", "result": [
        {"size": -108, "id": 27753479, "create_time": 1545136464, "create_time_ms": 1545136464123, "price": "96.4",
         "contract": "BTC_USDT"}]})
    assert t.side == "sell" and t.size_base == pytest.approx(0.0108) and t.exchange_ts_ms == 1545136464123
    evs = feed(n, {"time": 1541659086, "time_ms": 1541659086123, "channel": "futures.tickers", "event": "update",
                   "result": [{"contract": "BTC_USDT", "mark_price": "118.35", "index_price": "118.36",
                               "funding_rate": "-0.000114", "total_size": "73648"}]})
    assert only(evs, OpenInterest)[0].oi_base == pytest.approx(7.3648)
    assert only(evs, MarkFunding)[0].funding_rate == -0.000114
    inv = GateInverseNormalizer()
    (t2,) = feed(inv, {"channel": "futures.trades", "event": "update", "result": [
        {"size": 600, "id": 1, "create_time": 1, "price": "60000", "contract": "BTC_USD"}]})
    assert t2.venue == "gate-inverse" and t2.size_usd == 600.0 and t2.size_base == pytest.approx(0.01)


def test_gate_acks_and_pong() -> None:
    n = _gate()
    assert feed(n, {"time": 1, "time_ms": 0, "channel": "futures.candlesticks", "event": "subscribe",
                    "result": {"status": "success"}}) == []
    assert feed(n, {"time": 1, "channel": "futures.pong", "event": "", "result": None}) == []
    assert n.counters.decode_errors == 0


# -- KuCoin -----------------------------------------------------------------------------------


def test_kucoin_match_nanoseconds_and_lots() -> None:
    n = KucoinNormalizer()
    n.on_rest("contracts", json.dumps({"code": "200000", "data": [
        {"symbol": "XBTUSDTM", "multiplier": 0.001, "isInverse": False},
        {"symbol": "XBTUSDM", "multiplier": -1, "isInverse": True}]}).encode(), R)
    (t,) = feed(n, {"topic": "/contractMarket/execution:XBTUSDTM", "type": "message", "subject": "match", "sn": 1,
                    "data": {"symbol": "XBTUSDTM", "sequence": 1, "side": "sell", "size": 102, "price": "57750",
                             "tradeId": "17", "ts": 1705708799996000000}})
    assert t.venue == "kucoin-linear" and t.side == "sell" and t.exchange_ts_ms == 1705708799996
    assert t.size_base == pytest.approx(0.102)
    (t2,) = feed(n, {"topic": "/contractMarket/execution:XBTUSDM", "type": "message", "subject": "match",
                     "data": {"symbol": "XBTUSDM", "side": "buy", "size": 500, "price": "50000", "ts": 1}})
    assert t2.venue == "kucoin-inverse" and t2.size_usd == 500.0 and t2.size_base == pytest.approx(0.01)


def test_kucoin_instrument_and_open_interest() -> None:
    n = KucoinNormalizer()
    (m,) = feed(n, {"topic": "/contract/instrument:XBTUSDTM", "type": "message", "subject": "mark.index.price",
                    "data": {"markPrice": 60000.5, "indexPrice": 60001, "granularity": 1000, "timestamp": 17}})
    assert m.mark_price == 60000.5 and m.exchange_ts_ms == 17
    (f,) = feed(n, {"topic": "/contract/instrument:XBTUSDTM", "type": "message", "subject": "funding.rate",
                    "data": {"granularity": 28800000, "fundingRate": 0.0001, "timestamp": 18}})
    assert f.funding_rate == 0.0001 and f.funding_interval_h == 8.0 and f.mark_price == 60000.5
    n.symbols = frozenset({"XBTUSDTM"})
    (oi,) = n.on_rest("contracts", json.dumps({"code": "200000", "data": [
        {"symbol": "XBTUSDTM", "multiplier": 0.001, "isInverse": False, "openInterest": "9295921"},
        {"symbol": "ETHUSDTM", "multiplier": 0.01, "isInverse": False, "openInterest": "5"}]}).encode(), R)
    assert oi.oi_base == pytest.approx(9295.921) and oi.source == "rest"


def test_kucoin_control_frames_tagged_union() -> None:
    n = KucoinNormalizer()
    for f in ({"id": "a", "type": "welcome"}, {"id": "1", "type": "ack"}, {"id": "2", "type": "pong", "timestamp": 1},
              {"id": "3", "type": "error", "code": 404, "data": "topic /contractMarket/liquidation does not exist"}):
        assert feed(n, f) == []
    assert n.counters.decode_errors == 0 and n.venue_errors
    assert feed(n, {"type": "nonsense"}) == []
    assert n.counters.decode_errors == 1


# -- Hyperliquid ------------------------------------------------------------------------------


def test_hyperliquid_trades_and_ctx() -> None:
    n = HyperliquidNormalizer()
    evs = feed(n, {"channel": "trades", "data": [
        {"coin": "BTC", "side": "B", "px": "105056.0", "sz": "0.00219", "time": 1737918794873, "tid": 1, "hash": "0x",
         "users": ["a", "b"]},
        {"coin": "BTC", "side": "A", "px": "105050.0", "sz": "0.1", "time": 1737918794874, "tid": 2}]})
    assert [e.side for e in evs] == ["buy", "sell"]
    assert evs[0].size_usd == pytest.approx(0.00219 * 105056)
    ctx = feed(n, {"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": {
        "funding": "0.0000125", "openInterest": "36295.8", "prevDayPx": "1", "dayNtlVlm": "1", "premium": None,
        "oraclePx": "80684.7", "markPx": "80639.0", "midPx": None, "impactPxs": None}}})
    assert only(ctx, MarkFunding)[0].funding_interval_h == 1.0
    assert only(ctx, OpenInterest)[0].oi_usd == pytest.approx(36295.8 * 80639.0)
    assert feed(n, {"channel": "pong"}) == [] and feed(n, {"channel": "subscriptionResponse", "data": {}}) == []


def test_instrument_conversion_helpers() -> None:
    lin = Instrument("okx-linear", "BTC-USDT-SWAP", "linear", 0.01)
    assert lin.base_usd(10, 60000) == pytest.approx((0.1, 6000.0))
    inv = Instrument("okx-inverse", "BTC-USD-SWAP", "inverse", 100.0)
    assert inv.base_usd(10, 50000) == pytest.approx((0.02, 1000.0))
    assert math.isnan(inv.base_usd(10, 0.0)[0])


def test_binance_feed_many_matches_frame_by_frame() -> None:
    frames = [json.dumps({"stream": "btcusdt@aggTrade", "data": {
        "e": "aggTrade", "E": i, "s": "BTCUSDT", "a": i, "p": str(60000 + i), "q": "0.5", "f": 1, "l": 1,
        "T": 1_700_000_000_000 + i, "m": bool(i % 2)}}).encode() for i in range(50)]
    frames.insert(10, b'{"result":null,"id":1}')
    one = BinanceNormalizer()
    expected = [e for f in frames for e in one.feed(f, R)]
    many = BinanceNormalizer()
    assert many.feed_many(frames, [R] * len(frames)) == expected
    assert many.counters.as_dict() == one.counters.as_dict()
    # a garbage frame in the batch: the batch falls back to frame by frame, counting it
    bad = BinanceNormalizer()
    got = bad.feed_many([*frames[:5], b"{garbage", *frames[5:]], [R] * (len(frames) + 1))
    assert got == expected and bad.counters.decode_errors == 1
