"""The Rust fast path (``liqfast._core.FrameDecoder``, on by default in every normaliser)
against the msgspec reference normalisers (the same classes with the fast path off).

The property is differential and total: for *any* input — generated valid frames of every hot
channel with values in every encoding the venues use (and many they do not), the same frames
mutated, truncated or garbage, as bytes or str — a normaliser with the fast path behaves exactly
like the reference: the same events (floats bit for bit, same types), the same return value,
the same counters and de-duplication state. The Rust decoder either handles a frame exactly
like the reference or declines it (then the reference handles it); it never panics. The real
captures under ``../shared/data/captures`` are replayed through both as well (skipped when
absent).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from liqfast import _core
from liqfast.errors import UnknownVenueError
from liqfast.events import Liquidation, Trade
from liqfast.exchanges.base import ConnContext, Instrument, Normalizer
from liqfast.exchanges.binance import BinanceCoinmNormalizer, BinanceNormalizer
from liqfast.exchanges.bybit import BybitNormalizer
from liqfast.exchanges.gate import GateNormalizer
from liqfast.exchanges.hyperliquid import HyperliquidNormalizer
from liqfast.exchanges.kucoin import KucoinNormalizer
from liqfast.exchanges.okx import OkxNormalizer
from liqfast.exchanges.registry import connector_class

from .conftest import CAPTURES, need
from .test_captures import _lines, read_f1, read_f3

RECV = 1_800_000_000_000

#: Instruments the generated frames use (plus unknown symbols: metadata missing).
INSTRUMENTS = {
    "binance-coinm": [Instrument("binance-coinm", "BTCUSD_PERP", "inverse", 100.0),
                      Instrument("binance-coinm", "ETHUSD_PERP", "inverse", 10.0)],
    "okx-linear": [Instrument("okx-linear", "BTC-USDT-SWAP", "linear", 0.01),
                   Instrument("okx-inverse", "BTC-USD-SWAP", "inverse", 100.0)],
    "gate-linear": [Instrument("gate-linear", "BTC_USDT", "linear", 0.0001)],
    "gate-inverse": [Instrument("gate-inverse", "BTC_USD", "inverse", 1.0)],
    "kucoin-linear": [Instrument("kucoin-linear", "XBTUSDTM", "linear", 0.001),
                      Instrument("kucoin-inverse", "XBTUSDM", "inverse", 1.0)],
}
SYMBOLS = {
    "binance-usdm": ["BTCUSDT", "ETHUSDT"], "binance-coinm": ["BTCUSD_PERP", "ETHUSD_PERP", "XRPUSD_PERP"],
    "bybit-linear": ["BTCUSDT", "ETHUSDT"], "bybit-inverse": ["BTCUSD"],
    "okx-linear": ["BTC-USDT-SWAP", "BTC-USD-SWAP", "NOPE-USDT-SWAP"], "bitget-linear": ["BTCUSDT", "ETHUSDT"],
    "gate-linear": ["BTC_USDT", "NOPE_USDT"], "gate-inverse": ["BTC_USD"],
    "kucoin-linear": ["XBTUSDTM", "XBTUSDM", "NOPEUSDTM"], "hyperliquid": ["BTC", "kPEPE"],
}
VENUES = list(SYMBOLS)


def pair(venue: str, *, fast: bool, only: frozenset[str] | None = None, **kw: Any) -> Normalizer:
    norm = connector_class(venue).normalizer_cls(**kw)
    for inst in INSTRUMENTS.get(venue, []):
        norm.instruments[inst.symbol] = inst
    norm.symbols = only
    norm.use_fast_path(fast)
    assert (norm.fast is not None) == fast
    return norm


def _bits(v: object) -> object:
    if isinstance(v, float):
        return ("f", math.copysign(1.0, v), v if v == v else "nan")
    return (type(v).__name__, v)


def _key(ev: object) -> tuple[object, ...]:
    return (type(ev).__name__, *(_bits(getattr(ev, f)) for f in ev.__struct_fields__))  # type: ignore[attr-defined]


def _state(norm: Normalizer) -> dict[str, object]:
    s: dict[str, object] = {"counters": norm.counters.as_dict(), "instruments": sorted(norm.instruments)}
    s["last_prices"] = [(k, _bits(v)) for k, v in sorted(norm.last_prices.items())]
    if isinstance(norm, OkxNormalizer):
        s["dups"] = norm.duplicates
        s["seen"] = [tuple(_bits(x) for x in key) for key in norm._seen_liqs.keys()]
    return s


def assert_same(venue: str, frames: list[bytes | str], *, only: frozenset[str] | None = None, **kw: Any) -> int:
    """Feed ``frames`` to a fast and a reference normaliser; everything must match. Returns
    how many frames the Rust decoder handled."""
    fast, ref = pair(venue, fast=True, only=only, **kw), pair(venue, fast=False, only=only, **kw)
    ctx_f, ctx_r = ConnContext(), ConnContext()
    for f in frames:
        out_f: list[Any] = []
        out_r: list[Any] = []
        got = fast.on_message(f, RECV, ctx_f, out_f)
        want = ref.on_message(f, RECV, ctx_r, out_r)
        assert got is want, (f, out_f, out_r)
        assert [_key(e) for e in out_f] == [_key(e) for e in out_r], f
        assert _state(fast) == _state(ref), f
    assert fast.fast is not None and fast.fast.panics == 0
    return int(fast.fast.handled)


# -- JSON tokens in the encodings venues use (and some they do not) ---------------------------


def _q(s: str) -> str:
    return json.dumps(s)


@st.composite
def num(draw: st.DrawFn, *, positive: bool = True) -> str:
    """A number token: bare or quoted, in many spellings; sometimes not a number at all."""
    kind = draw(st.sampled_from(["dec", "dec", "dec", "int", "exp", "digits", "weird"]))
    if kind == "weird":
        text = draw(st.sampled_from([
            "-0", "-0.0", "0", "0.0", "1e400", "-1e400", "1e-400", "nan", "inf", "Infinity", "", " 1.5", "1.5 ", ".5",
            "5.", "01.5", "+1.5", "1_000", "0x10", "1.5e", "--1", "true", "null", "[]", "1.0000000000000000000001",
            "123456789012345678901234567890", "9007199254740993", "0.1e1", "4.9e-324", "1.7976931348623157e308",
        ]))
        if text in ("true", "null", "[]"):
            return text
        return _q(text) if draw(st.booleans()) else (text if _is_json_number(text) else _q(text))
    if kind == "int":
        text = str(draw(st.integers(min_value=0 if positive else -10**6, max_value=10**9)))
    elif kind == "digits":
        text = draw(st.from_regex(r"[1-9][0-9]{0,25}(\.[0-9]{1,25})?", fullmatch=True))
    else:
        x = draw(st.floats(min_value=1e-9 if positive else -1e7, max_value=1e7, allow_nan=False, allow_infinity=False))
        if kind == "exp":
            text = draw(st.sampled_from([f"{x:e}", f"{x:E}", f"{x:.3e}", repr(x)]))
        else:
            text = draw(st.sampled_from([repr(x), f"{x:.1f}", f"{x:.8f}", f"{x:.2f}", str(round(x, 3))]))
    if text.startswith("-") and positive and draw(st.booleans()):
        text = text[1:]
    return _q(text) if draw(st.booleans()) else text


def _is_json_number(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return text.strip() == text and text not in ("NaN", "Infinity", "-Infinity") and text[:1] in "-0123456789"


@st.composite
def integer(draw: st.DrawFn, lo: int = 0, hi: int = 2_000_000_000_000_000_000) -> str:
    """An integer token: bare or quoted, occasionally a float spelling or out of range."""
    edge = st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, -(2**63)])
    v = draw(st.one_of(st.integers(min_value=lo, max_value=hi), edge))
    text = draw(st.sampled_from([str(v), str(v), str(v), f"{v}.0", f"{v}e0", "-0", "01"]))
    return _q(text) if draw(st.booleans()) else text


def ts_ms() -> st.SearchStrategy[str]:
    return integer(1_600_000_000_000, 1_900_000_000_000)


def choice(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from([*values, *values, "Other", "", "BUY ", "buy", "Sell"]).map(_q) | st.sampled_from(
        ["1", "null", "true"]
    )


@st.composite
def obj(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[str]], *, extra: bool = True) -> str:
    """An object with these fields (values are JSON tokens), in any order, sometimes missing one,
    sometimes with unknown ones (and odd spacing)."""
    items = [(k, draw(v)) for k, v in fields.items()]
    if draw(st.integers(0, 9)) == 0:
        items.pop(draw(st.integers(0, len(items) - 1)))
    if extra and draw(st.booleans()):
        items.append((draw(st.sampled_from(["x", "L", "seq", "BT", "isBuyerMaker", "ccy"])), draw(
            st.sampled_from(['"PlusTick"', "1", "false", "null", "[1,2]", '{"a":[]}', '"\\u00e9"', '"é"']))))
    if draw(st.integers(0, 19)) == 0 and items:  # a duplicated key
        items.append(items[0])
    items = draw(st.permutations(items))
    sep = draw(st.sampled_from([",", ",", ", ", " ,\n"]))
    colon = draw(st.sampled_from([":", ":", ": "]))
    return "{" + sep.join(f"{_q(k)}{colon}{v}" for k, v in items) + "}"


def array(of: st.SearchStrategy[str], lo: int = 0, hi: int = 3) -> st.SearchStrategy[str]:
    return st.lists(of, min_size=lo, max_size=hi).map(lambda xs: "[" + ",".join(xs) + "]")


def sym(venue: str) -> st.SearchStrategy[str]:
    return st.sampled_from(SYMBOLS[venue]).map(_q)


# -- frames of each hot channel ----------------------------------------------------------------


def frames(venue: str) -> st.SearchStrategy[str]:  # noqa: C901
    s = sym(venue)
    if venue.startswith("binance"):
        agg = obj({"e": st.just('"aggTrade"'), "E": ts_ms(), "s": s, "a": integer(), "p": num(), "q": num(),
                   "f": integer(), "l": integer(), "T": ts_ms(),
                   "m": st.sampled_from(["true", "false", '"true"', "1"])})
        body = obj({"s": s, "S": choice("BUY", "SELL"), "o": st.just('"LIMIT"'), "f": st.just('"IOC"'), "q": num(),
                    "p": num(), "ap": num(), "X": st.sampled_from(['"FILLED"', "1"]), "l": num(), "z": num(),
                    "T": ts_ms()})
        force = obj({"e": st.just('"forceOrder"'), "E": ts_ms(), "o": body})
        raw = obj({"e": st.just('"trade"'), "E": ts_ms(), "T": ts_ms(), "s": s, "t": integer(), "p": num(), "q": num(),
                   "X": st.sampled_from(['"MARKET"', '"INSURANCE_FUND"', "1"]),
                   "m": st.sampled_from(["true", "false"])})
        return obj({"stream": st.just('"btcusdt@aggTrade"'), "data": agg | force | raw}, extra=False)
    if venue.startswith("bybit"):
        trade = obj({"T": ts_ms(), "s": s, "S": choice("Buy", "Sell"), "v": num(), "p": num(),
                     "L": st.just('"PlusTick"'), "i": st.uuids().map(lambda u: _q(str(u))), "BT": st.just("false")})
        liq = obj({"T": ts_ms(), "s": s, "S": choice("Buy", "Sell"), "v": num(), "p": num()})
        topic = st.sampled_from(['"publicTrade.BTCUSDT"', '"allLiquidation.BTCUSDT"', '"tickers.BTCUSDT"', '"x"'])
        return obj({"topic": topic, "type": st.sampled_from(['"snapshot"', '"delta"', "1"]), "ts": ts_ms(),
                    "data": array(trade | liq)}, extra=False)
    if venue.startswith("okx"):
        trade = obj({"instId": s, "tradeId": integer().map(lambda t: t if t.startswith('"') else _q(t)), "px": num(),
                     "sz": num(), "side": choice("buy", "sell"), "ts": ts_ms(), "count": st.just('"1"')})
        detail = obj({"bkLoss": st.just('"0"'), "bkPx": num(), "ccy": st.just('""'),
                      "posSide": choice("long", "short", "net"), "side": choice("buy", "sell"), "sz": num(),
                      "ts": ts_ms()})
        group = obj({"details": array(detail, 0, 3), "instFamily": st.just('"BTC-USDT"'), "instId": s,
                     "instType": st.just('"SWAP"'), "uly": st.just('"BTC-USDT"')})
        ch = st.sampled_from(['"trades"', '"trades-all"', '"liquidation-orders"', '"mark-price"'])
        arg = obj({"channel": ch, "instId": s, "instType": st.just('"SWAP"')}, extra=False)
        return obj({"arg": arg, "data": array(trade | group)}, extra=False)
    if venue.startswith("bitget"):
        trade = obj({"i": integer().map(lambda t: t if t.startswith('"') else _q(t)), "p": num(), "v": num(),
                     "S": choice("buy", "sell"), "T": ts_ms(), "L": st.just('"1"')})
        liq = obj({"symbol": s, "side": choice("buy", "sell"), "price": num(), "amount": num(),
                   "ts": st.one_of(ts_ms(), integer(1_600_000_000, 1_900_000_000), integer(10**15, 10**19))})
        topic = st.sampled_from(['"publicTrade"', '"liquidation"', '"ticker"'])
        arg = obj({"instType": st.just('"usdt-futures"'), "topic": topic, "symbol": s}, extra=False)
        return obj({"action": st.sampled_from(['"update"', '"snapshot"']), "arg": arg, "data": array(trade | liq),
                    "ts": ts_ms()}, extra=False)
    if venue.startswith("gate"):
        trade = obj({"size": num(positive=False), "id": integer(), "create_time": integer(1_600_000_000, 1_900_000_000),
                     "create_time_ms": st.one_of(ts_ms(), st.just("0")), "price": num(), "contract": s})
        liq = obj({"price": num(), "size": num(positive=False), "time_ms": st.one_of(ts_ms(), st.just("0")),
                   "time": integer(1_600_000_000, 1_900_000_000), "contract": s})
        ch = st.sampled_from(['"futures.trades"', '"futures.public_liquidates"', '"futures.tickers"'])
        result = array(trade | liq) | liq
        return obj({"time": integer(1_600_000_000, 1_900_000_000), "time_ms": ts_ms(), "channel": ch,
                    "event": st.sampled_from(['"update"', '"all"', '"subscribe"']), "result": result}, extra=False)
    if venue.startswith("kucoin"):
        match = obj({"symbol": s, "sequence": integer(), "side": choice("buy", "sell"), "size": num(), "price": num(),
                     "tradeId": st.one_of(integer().map(_q), st.just('""')),
                     "ts": st.one_of(integer(10**18, 2 * 10**18), ts_ms(), integer(1_600_000_000, 1_900_000_000))})
        return obj({"topic": st.just('"/contractMarket/execution:XBTUSDTM"'),
                    "type": st.sampled_from(['"message"', '"ack"']),
                    "subject": st.sampled_from(['"match"', '"match"', '"mark.index.price"']), "sn": integer(),
                    "data": match}, extra=False)
    trade = obj({"coin": s, "side": choice("B", "A"), "px": num(), "sz": num(), "time": ts_ms(),
                 "hash": st.just('"0x1"'), "tid": integer(), "users": st.just('["0xa","0xb"]')})
    return obj({"channel": st.sampled_from(['"trades"', '"trades"', '"l2Book"']), "data": array(trade)}, extra=False)


def _as(data: str, as_str: bool) -> bytes | str:
    return data if as_str else data.encode()


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_frames_match_reference(venue: str, data: st.DataObject) -> None:
    batch = data.draw(st.lists(frames(venue), min_size=1, max_size=4))
    as_str = data.draw(st.booleans())
    only = data.draw(st.sampled_from([None, None, frozenset({SYMBOLS[venue][0]})]))
    kw: dict[str, Any] = {}
    if venue == "bitget-linear":
        kw["liq_amount"] = data.draw(st.sampled_from(["quote", "base"]))
    seq = [_as(f, as_str) for f in batch]
    # every frame twice: OKX liquidation re-sends are de-duplicated
    assert_same(venue, seq + seq, only=only, **kw)


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_frames_match_reference(venue: str, data: st.DataObject) -> None:
    raw = data.draw(frames(venue)).encode()
    op = data.draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
    i = data.draw(st.integers(0, max(0, len(raw) - 1)))
    if op == "cut":
        bad = raw[:i]
    elif op == "flip":
        bad = raw[:i] + bytes([data.draw(st.integers(0, 255))]) + raw[i + 1:]
    elif op == "insert":
        bad = raw[:i] + data.draw(st.binary(min_size=1, max_size=3)) + raw[i:]
    else:
        bad = raw[:i] + raw[i + 3:]
    assume(bad != raw)
    assert_same(venue, [bad, raw])


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=60, deadline=None)
@given(garbage=st.binary(max_size=200) | st.text(max_size=80))
def test_garbage_is_declined_and_counted(venue: str, garbage: bytes | str) -> None:
    assert_same(venue, [garbage])


# -- the hot shapes really take the fast path ---------------------------------------------------


HOT = {
    "binance-usdm": '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":7,"p":"60000.5",'
                    '"q":"0.25","f":1,"l":2,"T":1790000000000,"m":true}}',
    "binance-coinm": '{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":1,"o":{"s":"BTCUSD_PERP","S":"BUY",'
                     '"q":"3","p":"60000","ap":"0","X":"FILLED","z":"0","T":1790000000000}}}',
    "bybit-inverse": '{"topic":"publicTrade.BTCUSD","type":"snapshot","ts":1,"data":[{"T":1790000000000,"s":"BTCUSD",'
                     '"S":"Sell","v":"100","p":"60000","i":"abc"}]}',
    "okx-linear": '{"arg":{"channel":"trades","instId":"BTC-USD-SWAP"},"data":[{"instId":"BTC-USD-SWAP","tradeId":"9",'
                  '"px":"60000","sz":"3","side":"sell","ts":"1790000000000"}]}',
    "bitget-linear": '{"action":"update","arg":{"instType":"usdt-futures","topic":"liquidation"},"data":[{"symbol":'
                     '"BTCUSDT","side":"sell","price":"60000","amount":"1200","ts":"1790000000"}],"ts":1}',
    "gate-inverse": '{"channel":"futures.public_liquidates","event":"update","time":1,"result":{"price":"60000",'
                    '"size":"-600","time":1790000000,"contract":"BTC_USD"}}',
    "kucoin-linear": '{"topic":"/contractMarket/execution:XBTUSDM","type":"message","subject":"match","data":{'
                     '"symbol":"XBTUSDM","side":"sell","size":60,"price":"60000","tradeId":"",'
                     '"ts":1790000000000000000}}',
    "hyperliquid": '{"channel":"trades","data":[{"coin":"BTC","side":"A","px":"60000","sz":"0.5","time":1790000000000,'
                   '"tid":0}]}',
}


@pytest.mark.parametrize("venue", list(HOT))
def test_hot_frames_take_the_fast_path(venue: str) -> None:
    frame = HOT[venue]
    assert assert_same(venue, [frame.encode(), frame]) == 2
    norm = pair(venue, fast=True)
    ev = norm.feed(frame.encode(), RECV)
    assert len(ev) == 1 and isinstance(ev[0], Trade | Liquidation)
    if venue == "kucoin-linear":
        assert isinstance(ev[0], Trade) and ev[0].venue == "kucoin-inverse" and ev[0].trade_id is None
        assert ev[0].size_usd == 60.0 and ev[0].exchange_ts_ms == 1_790_000_000_000
    if venue == "gate-inverse":
        assert isinstance(ev[0], Liquidation) and ev[0].side == "long" and ev[0].completeness == "batched_1s"


def test_counters_add_up_with_the_fast_path() -> None:
    norm = BinanceNormalizer()
    assert norm.fast is not None
    hot = HOT["binance-usdm"].encode()
    for f in (hot, hot, b'{"result":null,"id":1}', b"{garbage", hot):
        norm.on_message(f, RECV, ConnContext(), [])
    c = norm.counters
    assert (c.messages, c.events, c.control_messages, c.decode_errors, c.data_messages) == (5, 3, 1, 1, 3)
    assert norm.fast.messages == 3 and norm.fast.declined == 2 and norm.fast.last_reject == "malformed"
    # switching the fast path off keeps the totals
    assert norm.use_fast_path(False) is False
    assert (c.messages, c.events) == (5, 3) and "on_message" not in vars(norm)
    norm.on_message(hot, RECV, ConnContext(), [])
    assert (c.messages, c.events) == (6, 4)
    c.messages += 1  # writable as before
    assert c.as_dict()["messages"] == 7


def test_feed_many_matches_frame_by_frame_and_keeps_order() -> None:
    hot = HOT["binance-usdm"]
    frames = [hot.replace('"a":7', f'"a":{i}').encode() for i in range(20)]
    frames[5:5] = [b'{"result":null,"id":1}', b"{garbage", '{"stream":"x","data":{"e":"trade","s":"BTCUSDT","t":1,'
                   '"p":"1","q":"2","T":3,"m":false}}'.encode()]
    one = BinanceNormalizer()
    want = [e for f in frames for e in one.feed(f, RECV)]
    many = BinanceNormalizer()
    got = many.feed_many(frames, [RECV] * len(frames))
    assert [_key(e) for e in got] == [_key(e) for e in want]
    assert many.counters.as_dict() == one.counters.as_dict()
    assert many.last_prices == one.last_prices == {"BTCUSDT": 1.0}  # the raw trade went through the reference
    ref = BinanceNormalizer()
    ref.use_fast_path(False)
    assert [_key(e) for e in ref.feed_many(frames, RECV)] == [_key(e) for e in want]


def test_decoder_api_and_errors() -> None:
    dec = _core.FrameDecoder(None, "hyperliquid")
    out: list[Any] = []
    assert dec.decode(HOT["hyperliquid"].encode(), RECV, out) == 1 and out[0].symbol == "BTC"
    assert dec.decode(b'{"channel":"pong"}', RECV, out) is None and dec.last_reject == "unsupported"
    assert dec.decode(b'{"channel":"trades","data":[{"coin"', RECV, out) is None and dec.last_reject == "malformed"
    assert dec.decode(b'{"x":' + b"[" * 100_000, RECV, out) is None  # deep nesting: declined, no stack overflow
    assert len(out) == 1 and (dec.handled, dec.declined, dec.panics) == (1, 3, 0)
    with pytest.raises(UnknownVenueError):
        _core.FrameDecoder(None, "nasdaq")
    # without a fallback, a declined frame is simply "not data"
    assert dec.on_message(b"{}", RECV, ConnContext(), out) is False


def test_normalisers_are_freed_without_the_cycle_collector() -> None:
    import gc
    import weakref

    norm = OkxNormalizer()
    ref = weakref.ref(norm)
    was = gc.isenabled()
    gc.disable()
    try:
        del norm
        assert ref() is None  # freed by reference counting: the decoder holds its owner weakly
    finally:
        if was:
            gc.enable()


def test_instrument_rebinding_and_updates_are_seen() -> None:
    norm = OkxNormalizer()
    frame = HOT["okx-linear"].encode()
    norm.instruments["BTC-USD-SWAP"] = Instrument("okx-inverse", "BTC-USD-SWAP", "inverse", 100.0)
    assert norm.feed(frame, RECV)[0].size_usd == 300.0
    norm.instruments["BTC-USD-SWAP"] = Instrument("okx-inverse", "BTC-USD-SWAP", "inverse", 10.0)
    assert norm.feed(frame, RECV)[0].size_usd == 30.0
    norm.instruments = {"BTC-USD-SWAP": Instrument("okx-inverse", "BTC-USD-SWAP", "inverse", 1.0)}
    assert norm.feed(frame, RECV)[0].size_usd == 3.0
    assert norm.fast is not None and norm.fast.handled == 3


# -- OKX liquidation re-sends: one bounded seen-set for both paths -------------------------------


def _okx_liq(*details: tuple[str, str, str, str, str], inst: str = "BTC-USDT-SWAP") -> bytes:
    """A liquidation-orders frame; a detail is (side, posSide, sz, bkPx, ts) as sent."""
    ds = ",".join(f'{{"bkLoss":"0","bkPx":"{px}","ccy":"","posSide":"{pos}","side":"{side}","sz":"{sz}","ts":"{ts}"}}'
                  for side, pos, sz, px, ts in details)
    return (f'{{"arg":{{"channel":"liquidation-orders","instType":"SWAP"}},"data":[{{"details":[{ds}],'
            f'"instFamily":"BTC-USDT","instId":"{inst}","instType":"SWAP","uly":"BTC-USDT"}}]}}').encode()


def _okx_pair(capacity: int | None = None) -> tuple[Normalizer, Normalizer]:
    fast, ref = pair("okx-linear", fast=True), pair("okx-linear", fast=False)
    if capacity is not None:
        for n in (fast, ref):
            n._seen_liqs = _core.SeenSet(capacity)  # type: ignore[attr-defined]  # rebinding is seen at once
    return fast, ref


@pytest.mark.parametrize("fast", [True, False])
def test_okx_duplicates_within_and_across_frames(fast: bool) -> None:
    norm = pair("okx-linear", fast=fast)
    assert isinstance(norm, OkxNormalizer)
    a, b = ("sell", "long", "2", "60000.5", "1790000000000"), ("buy", "net", "2", "60000.5", "1790000000000")
    assert len(norm.feed(_okx_liq(a, b, a), RECV)) == 2 and norm.duplicates == 1
    assert norm.feed(_okx_liq(b), RECV) == [] and norm.duplicates == 2
    # any field apart makes another liquidation; the same one of another instrument too
    other = [("sell", "short", "2", "60000.5", "1790000000000"), ("sell", "long", "3", "60000.5", "1790000000000"),
             ("sell", "long", "2", "60000.4", "1790000000000"), ("sell", "long", "2", "60000.5", "1790000000001")]
    assert len(norm.feed(_okx_liq(*other), RECV)) == 4
    assert len(norm.feed(_okx_liq(a, inst="BTC-USD-SWAP"), RECV)) == 1 and norm.duplicates == 2
    assert norm.fast is None or (norm.fast.handled, norm.fast.declined) == (4, 0)


def test_okx_fast_and_reference_share_the_seen_set() -> None:
    norm = pair("okx-linear", fast=True)
    assert isinstance(norm, OkxNormalizer) and norm.fast is not None
    # "-0" is declined by the Rust decoder (msgspec reads it as 0.0): the reference records
    # it, and the fast path then knows the same liquidation spelled "0"
    assert len(norm.feed(_okx_liq(("sell", "long", "-0", "60000", "1790000000000")), RECV)) == 1
    assert norm.fast.declined == 1
    assert norm.feed(_okx_liq(("sell", "long", "0", "60000", "1790000000000")), RECV) == []
    assert norm.fast.handled == 1 and norm.duplicates == 1
    assert norm._seen_liqs.keys() == [("BTC-USDT-SWAP", 1790000000000, "sell", "long", 0.0, 60000.0)]
    # a NaN is equal to nothing (as in a tuple of floats), so never a duplicate
    nan = _okx_liq(("sell", "long", "1", "nan", "1790000000000"))
    assert len(norm.feed(nan, RECV)) == 1 and len(norm.feed(nan, RECV)) == 1 and len(norm._seen_liqs) == 3


def test_okx_seen_set_forgets_the_oldest_first_on_both_paths() -> None:
    fast, ref = _okx_pair(capacity=3)
    frames = [_okx_liq(("sell", "long", "1", "60000", str(1790000000000 + i))) for i in range(4)]
    for n in (fast, ref):
        assert [len(n.feed(f, RECV)) for f in frames[:3]] == [1, 1, 1]
        assert [len(n.feed(f, RECV)) for f in frames[:3]] == [0, 0, 0]
        assert len(n.feed(frames[3], RECV)) == 1  # forgets the first
        assert [len(n.feed(f, RECV)) for f in (frames[3], frames[2], frames[1])] == [0, 0, 0]
        assert len(n.feed(frames[0], RECV)) == 1  # new again (and forgets the second)
        assert len(n.feed(frames[1], RECV)) == 1
    assert [_bits(x) for k in fast._seen_liqs.keys() for x in k] == [  # type: ignore[attr-defined]
        _bits(x) for k in ref._seen_liqs.keys() for x in k]  # type: ignore[attr-defined]
    assert fast.duplicates == ref.duplicates == 6  # type: ignore[attr-defined]
    assert fast.fast is not None and fast.fast.declined == 0


def test_okx_duplicate_counts_agree_past_capacity() -> None:
    # a (re)subscribe re-sends a window of recent liquidations: both paths drop the same ones,
    # including after the set has started forgetting
    fast, ref = _okx_pair(capacity=50)
    frames = [_okx_liq(("buy" if i % 3 else "sell", ("long", "short", "net")[i % 3], str(1 + i % 7), f"{60000 + i}.5",
                        str(1790000000000 + i)), ("sell", "net", "1", "60000", str(1790000000000 + i // 4)))
              for i in range(80)]
    resent = frames[:40] + frames[60:] + frames[30:70] + frames
    out_f = fast.feed_many(resent, RECV)
    out_r = ref.feed_many(resent, RECV)
    assert [_key(e) for e in out_f] == [_key(e) for e in out_r]
    assert _state(fast) == _state(ref)
    assert fast.duplicates == ref.duplicates > 0 and len(fast._seen_liqs) == 50  # type: ignore[attr-defined]
    assert fast.fast is not None and fast.fast.handled == len(resent)


def test_seen_set_api_and_errors() -> None:
    s = _core.SeenSet(2)
    assert s.capacity == 2 and len(s) == 0
    assert s.check_add("X", 1, "buy", "long", 1.0, 2.0) is False
    assert s.check_add("X", 1, "buy", "long", 1, 2) is True  # equal by value, like the tuples
    assert s.check_add("X", 2**64 - 1, "sell", "net", -0.0, 2.0) is False
    assert s.check_add("X", 2**64 - 1, "sell", "net", 0.0, 2.0) is True
    assert s.check_add("X", -(2**63), "buy", "short", 1.0, 2.0) is False
    assert s.keys() == [("X", 2**64 - 1, "sell", "net", 0.0, 2.0), ("X", -(2**63), "buy", "short", 1.0, 2.0)]
    for args in [(1, 1, "buy", "long", 1.0, 2.0), ("X", 1.0, "buy", "long", 1.0, 2.0),
                 ("X", 1, "buy", "long", "1", 2.0), ("X", 1, None, "long", 1.0, 2.0)]:
        with pytest.raises(TypeError):
            s.check_add(*args)
    for args in [("X", 2**64, "buy", "long", 1.0, 2.0), ("X", -(2**63) - 1, "buy", "long", 1.0, 2.0),
                 ("X", 10**40, "buy", "long", 1.0, 2.0), ("X", 1, "Buy", "long", 1.0, 2.0),
                 ("X", 1, "buy", "both", 1.0, 2.0)]:
        with pytest.raises(ValueError):
            s.check_add(*args)
    assert len(s) == 2  # nothing recorded by a failed call
    for cap in (0, -1, 2**70):
        with pytest.raises(ValueError):
            _core.SeenSet(cap)
    with pytest.raises(TypeError):
        _core.SeenSet(1.5)  # type: ignore[arg-type]


# -- real captures through both paths -----------------------------------------------------------


def _capture_frames(name: str) -> tuple[str, list[tuple[float, str]], list[tuple[str, str]]]:
    """(venue, [(ts, frame)], [(rest tag, body)]) of one capture."""
    rest: list[tuple[str, str]] = []
    if name == "binance_usdm_hft":
        path = need(CAPTURES / "binance_usdm" / "hftbacktest_usdm_btcusdt_20240808_first30000.gz")
        return "binance-usdm", [(ns / 1e9, f) for ns, f in read_f3(path) if f.startswith('{"stream"')], rest
    if name == "binance_coinm_hft":
        path = need(CAPTURES / "binance_coinm" / "hftbacktest_cm_btcusd_perp_20240808_first30000.gz")
        return "binance-coinm", [(ns / 1e9, f) for ns, f in read_f3(path) if f.startswith('{"stream"')], rest
    if name.startswith("binance_cf_"):
        folder, prefix, venue = {
            "binance_cf_usdm": ("binance_usdm", "BINANCE_FUTURES", "binance-usdm"),
            "binance_cf_coinm": ("binance_coinm", "BINANCE_DELIVERY", "binance-coinm"),
        }[name]
        base = need(CAPTURES / folder / "cryptofeed_2021-07-22")
        rest = [("instruments", b) for k, _, u, b in read_f1(base / f"{prefix}.0.gz")
                if k == "rest" and "exchangeInfo" in u]
        return venue, [(ts, f) for k, ts, _, f in read_f1(base / f"{prefix}.ws.1.0.gz") if k == "recv"], rest
    if name == "bybit_v5":
        path = need(CAPTURES / "bybit" / "AGPL_cryptofeed_v3_BYBIT_v5_2026-08-09.jsonl.gz")
        recs = [json.loads(line) for line in _lines(path)]
        rest = [("instruments", r["data"]) for r in recs
                if r["t"] == "http" and "instruments-info" in r["url"] and "category=linear" in r["url"]]
        frames = [(r["ts"], r["data"]) for r in recs if r["t"] == "recv" and r["conn"] == "BYBIT.ws.2"]
        return "bybit-linear", frames, rest
    if name == "okx":
        base = need(CAPTURES / "okx" / "cryptofeed_2022-05-13")
        rest = [("instruments", b) for k, _, u, b in read_f1(base / "OKX.0.trimmed.gz")
                if k == "rest" and "instruments" in u]
        return "okx-linear", [(ts, f) for k, ts, _, f in read_f1(base / "OKX.ws.1.0.gz") if k == "recv"], rest
    if name == "gate":
        base = need(CAPTURES / "gateio" / "cryptofeed_2023-05-24")
        rest = [("instruments", b) for k, _, u, b in read_f1(base / "GATEIO_FUTURES.0.gz")
                if k == "rest" and "contracts" in u]
        frames = [(ts, f) for k, ts, _, f in read_f1(base / "GATEIO_FUTURES.ws.1.0.gz") if k == "recv"]
        return "gate-linear", frames, rest
    if name == "kucoin_spot":
        base = need(CAPTURES / "kucoin" / "SPOT_cryptofeed_2021-04-25")
        return "kucoin-linear", [(ts, f) for k, ts, _, f in read_f1(base / "KUCOIN.ws.1.0.gz") if k == "recv"], rest
    path = need(CAPTURES / "hyperliquid" / "hftbacktest_hyperliquid_btcusd_20250126.gz")
    return "hyperliquid", [(ns / 1e9, f) for ns, f in read_f3(path)], rest


@pytest.mark.parametrize("name", ["binance_usdm_hft", "binance_coinm_hft", "binance_cf_usdm", "binance_cf_coinm",
                                  "bybit_v5", "okx", "gate", "kucoin_spot", "hyperliquid"])
def test_captures_fast_path_matches_reference(name: str) -> None:
    venue, recv, rest = _capture_frames(name)
    fast, ref = pair(venue, fast=True), pair(venue, fast=False)
    for n in (fast, ref):
        n.instruments.clear()
        for tag, body in rest:
            n.on_rest(tag, body.encode(), 0)
    out_f: list[Any] = []
    out_r: list[Any] = []
    ctx = ConnContext()
    for ts, frame in recv:
        for n, out in ((fast, out_f), (ref, out_r)):
            n.on_message(frame.encode(), int(ts * 1000), ctx, out)
    assert [_key(e) for e in out_f] == [_key(e) for e in out_r]
    assert fast.counters.as_dict() == ref.counters.as_dict()
    assert fast.fast is not None and fast.fast.panics == 0
    trades = sum(isinstance(e, Trade) for e in out_f)
    # the trades were the fast path's (but those of instruments the reference first had to look up)
    assert fast.fast.events >= 0.9 * trades, (name, fast.fast.events, trades)


def test_coinm_unknown_contract_size_goes_to_the_reference() -> None:
    # no metadata at all: the reference falls back to the convention (100 USD for BTC), and caches it
    norm = BinanceCoinmNormalizer()
    frame = HOT["binance-coinm"].encode()
    ev = norm.feed(frame, RECV)
    assert norm.fast is not None and (norm.fast.handled, norm.fast.declined) == (0, 1)
    assert ev[0].size_usd == 300.0 and norm.instruments["BTCUSD_PERP"].contract_size == 100.0
    assert norm.feed(frame, RECV) == ev and norm.fast.handled == 1


def test_every_fast_normaliser_is_wired() -> None:
    for cls in (BinanceNormalizer, BinanceCoinmNormalizer, BybitNormalizer, OkxNormalizer, GateNormalizer,
                KucoinNormalizer, HyperliquidNormalizer):
        n = cls()
        assert n.fast is not None and n.on_message == n.fast.on_message


# -- backfill: Binance aggTrades CSV files ------------------------------------------------------


def _zip_csv(text: bytes) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("BTCUSDT-aggTrades-2024-08-08.csv", text)
    return buf.getvalue()


def _agg_trades_both(venue: str, symbol: str, data: bytes, block: int | None = None) -> tuple[object, object]:
    from liqfast.exchanges import backfill

    def run(fn: Any) -> object:
        try:
            return [(ts, _key(t)) for ts, t in fn(data)]
        except Exception as e:  # noqa: BLE001  # both paths must fail the same way
            return type(e).__name__

    b = backfill._Binance(venue, symbol, None, backfill.BackfillStats(), "5m", False)  # type: ignore[arg-type]
    old = backfill._CSV_BLOCK
    if block is not None:
        backfill._CSV_BLOCK = block
    try:
        return run(b.agg_trades), run(b.agg_trades_reference)
    finally:
        backfill._CSV_BLOCK = old


csv_cell = st.one_of(
    st.integers(0, 10**12).map(str), st.floats(1e-6, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["60000.5", "0.001", "1e3", " 7", "-0.0", "nan", "", "1_0", "007", '"5"', "x", "\u00e9"]),
)


@st.composite
def agg_csv(draw: st.DrawFn) -> bytes:
    rows = []
    if draw(st.booleans()):
        rows.append("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker")
    for i in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 4)) == 0:
            cells = draw(st.lists(csv_cell, min_size=5, max_size=8))
        else:
            cells = [str(1000 + i), draw(csv_cell), draw(csv_cell), "1", "2", str(1_723_075_200_000 + i),
                     draw(st.sampled_from(["true", "false", "True", " FALSE ", "x"]))]
        rows.append(",".join(cells))
        if draw(st.integers(0, 6)) == 0:
            rows.append("")
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return (end.join(rows) + draw(st.sampled_from([end, ""]))).encode()


@pytest.mark.parametrize("venue", ["binance-usdm", "binance-coinm"])
@settings(max_examples=200, deadline=None)
@given(text=agg_csv(), block=st.sampled_from([None, 7, 64]))
def test_agg_trades_csv_fast_path_matches_reference(venue: str, text: bytes, block: int | None) -> None:
    symbol = "BTCUSDT" if venue == "binance-usdm" else "BTCUSD_PERP"
    fast, ref = _agg_trades_both(venue, symbol, _zip_csv(text), block)
    assert fast == ref


def test_agg_trades_csv_fast_path_is_taken() -> None:
    from liqfast.exchanges import backfill

    text = b"1000,60000.5,0.01,1,1,1723075200000,true\n1001,60001,2,2,3,1723075200001,false\n"
    fast, ref = _agg_trades_both("binance-usdm", "BTCUSDT", _zip_csv(text))
    assert fast == ref and isinstance(fast, list) and len(fast) == 2
    got = _core.binance_agg_trades(text, True, "binance-usdm", "BTCUSDT", False, 1.0)
    assert got is not None and got[1] is False and [t.side for _, t in got[0]] == ["sell", "buy"]
    assert [ts for ts, _ in got[0]] == [1723075200000, 1723075200001]
    assert _core.binance_agg_trades(b'1,"2",3,4,5,6,true\n', True, "binance-usdm", "BTCUSDT", False, 1.0) is None
    # a declined block mid-file: the reference continues from the first row not yielded
    mixed = text + b"1002, 60002,1,4,4,1723075200002,true\n1003,60003,1,5,5,1723075200003,true\n"
    fast2, ref2 = _agg_trades_both("binance-usdm", "BTCUSDT", _zip_csv(mixed), block=48)
    assert fast2 == ref2 and isinstance(fast2, list) and len(fast2) == 4
    assert backfill._CSV_BLOCK == 1 << 22
