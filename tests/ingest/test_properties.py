"""Property tests of the decode layer: garbage never escapes a normaliser. Whatever bytes
arrive — random bytes, truncated frames, wrong types, huge numbers, NaN strings, unknown
tags — ``on_message`` returns, counts the frame (decode error, unhandled or control) and keeps
decoding the next valid frame correctly."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqfast.events import Gap, Liquidation, MarkFunding, OpenInterest, Trade
from liqfast.exchanges.base import ConnContext
from liqfast.exchanges.fake import FakeExchange
from liqfast.exchanges.registry import connector_class

from .test_roundtrip import VENUES

RECV = 1_800_000_000_000
EVENT_TYPES = (Trade, Liquidation, OpenInterest, MarkFunding, Gap)


def _valid_frames(venue: str) -> list[bytes]:
    fx = FakeExchange(venues=[venue])
    sym = VENUES[venue]
    t = 1_790_000_000_000
    out = []
    for ev in (
        MarkFunding(venue, sym, t, t, 60_000.0, 60_001.0, 0.0001, t + 1),
        Trade(venue, sym, t, t, 60_000.5, 0.25, 15_000.125, "sell", 7),
        Liquidation(venue, sym, t, t, "long", 59_000.0, 0.5, 29_500.0, "x"),
        OpenInterest(venue, sym, t, t, 1234.5, 1234.5 * 60_000, 60_000.0),
    ):
        out += [f.encode() for _, f in fx.encode(ev)]
    return out


FRAMES = {v: _valid_frames(v) for v in VENUES}


def _trade_frame(venue: str) -> bytes:
    fx = FakeExchange(venues=[venue])
    t = 1_790_000_000_000
    ev = Trade(venue, VENUES[venue], t, t, 60_000.5, 0.25, 15_000.125, "sell", 7)
    return fx.encode(ev)[0][1].encode()


TRADE_FRAME = {v: _trade_frame(v) for v in VENUES}

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["NaN", "nan", "Infinity", "-inf", "1e400", "", "0x10", "--1", "buy", "Sell", "long", "net"]),
)


def _mutate(obj: object, path_choice: int, value: object) -> object:
    """Replace one (scalar or container) value somewhere in a decoded JSON document."""
    nodes: list[tuple[object, object]] = []

    def walk(o: object) -> None:
        if isinstance(o, dict):
            for k in o:
                nodes.append((o, k))
                walk(o[k])
        elif isinstance(o, list):
            for i in range(len(o)):
                nodes.append((o, i))
                walk(o[i])

    walk(obj)
    if nodes:
        container, key = nodes[path_choice % len(nodes)]
        container[key] = value  # type: ignore[index]
    return obj


def _check(venue: str, garbage: bytes) -> None:
    norm = connector_class(venue).normalizer_cls()
    norm.symbols = None
    ctx = ConnContext()
    c = norm.counters
    before = c.messages
    out: list = []
    is_data = norm.on_message(garbage, RECV, ctx, out)  # must not raise
    assert isinstance(is_data, bool)
    assert c.messages == before + 1
    # every frame is exactly one of: data, control, unhandled, decode error
    assert c.data_messages in (0, 1) and c.data_messages == int(is_data)
    assert all(isinstance(e, EVENT_TYPES) for e in out)
    for e in out:
        if isinstance(e, Trade | Liquidation):
            assert e.side in ("buy", "sell", "long", "short")
    # the normaliser still works after garbage
    evs = norm.feed(TRADE_FRAME[venue], RECV)
    assert any(isinstance(e, Trade) and e.side == "sell" for e in evs), (venue, evs, norm.last_error)


@pytest.mark.parametrize("venue", list(VENUES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_random_bytes_never_escape(venue: str, data: bytes) -> None:
    _check(venue, data)


@pytest.mark.parametrize("venue", list(VENUES))
@settings(max_examples=40, deadline=None)
@given(idx=st.integers(0, 50), cut=st.integers(0, 10_000))
def test_truncated_frames_never_escape(venue: str, idx: int, cut: int) -> None:
    frames = FRAMES[venue]
    f = frames[idx % len(frames)]
    _check(venue, f[: cut % max(1, len(f))])


@pytest.mark.parametrize("venue", list(VENUES))
@settings(max_examples=60, deadline=None)
@given(idx=st.integers(0, 50), where=st.integers(0, 1000),
       value=st.one_of(json_scalars, st.lists(json_scalars, max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                       json_scalars, max_size=2)))
def test_mutated_frames_never_escape(venue: str, idx: int, where: int, value: object) -> None:
    frames = FRAMES[venue]
    f = frames[idx % len(frames)]
    doc = json.loads(f)
    try:
        garbage = json.dumps(_mutate(doc, where, value), allow_nan=True).encode()
    except (ValueError, OverflowError):
        return
    _check(venue, garbage)


@pytest.mark.parametrize("venue", list(VENUES))
def test_unknown_tags_and_channels_are_counted(venue: str) -> None:
    norm = connector_class(venue).normalizer_cls()
    for junk in (b'{"e":"brandNewEvent","E":1}', b'{"topic":"brandNew.X","data":[]}', b'{"channel":"brandNew"}',
                 b'{"type":"brandNew"}', b'{"arg":{"channel":"brandNew"},"data":[]}', b"[]", b"null", b"42",
                 b'"pong"', b"\xff\xfe", b"{", b""):
        norm.on_message(junk, RECV, ConnContext(), [])
    c = norm.counters
    assert c.messages == 12
    assert c.decode_errors + c.unhandled + c.control_messages + c.data_messages == 12
    assert c.decode_errors >= 3  # at least the invalid JSON ones
    assert norm.last_error  # logged with a preview
