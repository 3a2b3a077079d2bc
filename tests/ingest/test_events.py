"""The normalised event model and bars."""

from __future__ import annotations

import math

import msgspec
import pytest

from liqfast.errors import InvalidInputError
from liqfast.events import (
    Bar,
    BarBuilder,
    BarSet,
    Candle,
    Gap,
    Liquidation,
    MarkFunding,
    OpenInterest,
    Trade,
    decode_event,
    decode_events,
    encode_event,
    event_key,
)

V, S = "binance-usdm", "BTCUSDT"
T0 = 1_722_470_400_000  # 2024-08-01T00:00:00Z, on a 5-minute boundary
I = 300_000


def trade(ts: int, price: float, size: float, side: str = "buy", recv: int | None = None, tid: int | None = None) -> Trade:
    return Trade(V, S, ts, ts if recv is None else recv, price, size, price * size, side, tid)  # type: ignore[arg-type]


def test_round_trip_every_kind() -> None:
    evs = [
        trade(T0, 100.0, 1.0, tid=5),
        Liquidation(V, S, T0, T0, "long", 99.0, 2.0, 198.0, "snapshot_1s", "avg_fill"),
        OpenInterest(V, S, T0, T0, 10.0, 1000.0, 100.0, "rest"),
        MarkFunding(V, S, T0, T0, 100.5, math.nan, 0.0001, T0 + 1, 8.0),
        Gap(V, S, T0, T0, T0 - 5, T0, "stale", ("trades",), True),
    ]
    for ev in evs:
        raw = encode_event(ev)
        assert msgspec.json.decode(raw)["kind"] in ("trade", "liquidation", "open_interest", "mark_funding", "gap")
        back = decode_event(raw)
        assert type(back) is type(ev)
        assert event_key(back) == event_key(ev) if not isinstance(ev, MarkFunding) else True
    assert len(decode_events(b"[" + b",".join(encode_event(e) for e in evs) + b"]")) == 5
    with pytest.raises(AttributeError):
        evs[0].price = 1.0  # type: ignore[misc]  # frozen


def test_bar_ohlc_taker_flow_profile_and_oi_carry() -> None:
    b = BarBuilder(V, S, I, grace_ms=0, profile_step=10.0)
    out: list[Bar] = []
    out += b.add(OpenInterest(V, S, T0 + 1, T0 + 1, 5.0, 500.0, 100.0))
    out += b.add(trade(T0 + 10, 100.0, 1.0, "buy"))
    out += b.add(trade(T0 + 20, 120.0, 2.0, "sell"))
    out += b.add(trade(T0 + 30, 95.0, 0.5, "buy"))
    out += b.add(trade(T0 + 40, 101.0, 1.0, "buy"))
    out += b.add(Liquidation(V, S, T0 + 50, T0 + 50, "long", 96.0, 1.0, 96.0, "snapshot_1s"))
    out += b.add(Liquidation(V, S, T0 + 60, T0 + 60, "short", 119.0, 0.5, 59.5, "snapshot_1s"))
    out += b.add(OpenInterest(V, S, T0 + 100, T0 + 100, 6.0, 606.0, 101.0))
    assert out == []
    out += b.advance(T0 + I)  # the bar [T0, T0+I) closes at its end (grace 0)
    (bar,) = out
    assert (bar.ts_ms, bar.open, bar.high, bar.low, bar.close) == (T0, 100.0, 120.0, 95.0, 101.0)
    assert bar.taker_buy_base == 2.5 and bar.taker_sell_base == 2.0 and bar.taker_net_base == 0.5
    assert bar.oi_close_usd == 606.0 and bar.oi_close_base == 6.0
    assert bar.liq_long_usd == 96.0 and bar.liq_short_usd == 59.5 and bar.liq_count == 2
    assert bar.volume_profile == ((90.0, 0.5), (100.0, 2.0), (120.0, 2.0))
    assert bar.trades == 4 and not bar.gap and bar.liq_completeness == "snapshot_1s"
    # next bar: no events at all -> flat bar at the previous close, OI carried forward
    (nxt,) = b.advance(T0 + 2 * I)
    assert (nxt.open, nxt.close, nxt.trades) == (101.0, 101.0, 0)
    assert nxt.oi_close_usd == 606.0 and nxt.taker_net_base == 0.0


def test_bar_falls_back_to_mark_price() -> None:
    b = BarBuilder(V, S, I, grace_ms=0)
    b.add(MarkFunding(V, S, T0 + 1, T0 + 1, 50.0, funding_rate=0.01))
    b.add(MarkFunding(V, S, T0 + 2, T0 + 2, 52.0))
    b.add(MarkFunding(V, S, T0 + 3, T0 + 3, 49.0))
    (bar,) = b.advance(T0 + I)
    assert (bar.open, bar.high, bar.low, bar.close) == (50.0, 52.0, 49.0, 49.0)
    assert bar.mark_close == 49.0 and bar.funding_rate == 0.01
    assert math.isnan(bar.oi_close_usd)


def test_bars_close_on_watermark_with_grace() -> None:
    b = BarBuilder(V, S, I, grace_ms=2_000)
    assert b.add(trade(T0 + 5, 10.0, 1.0)) == []
    # an event of the next bar, received before end + grace: nothing closes yet
    assert b.add(trade(T0 + I + 1, 11.0, 1.0, recv=T0 + I + 1_000)) == []
    closed = b.add(trade(T0 + I + 2, 12.0, 1.0, recv=T0 + I + 2_000))
    assert [x.ts_ms for x in closed] == [T0]


def test_late_event_revises_emitted_bar() -> None:
    b = BarBuilder(V, S, I, grace_ms=0)
    b.add(trade(T0 + 5, 10.0, 1.0))
    (first,) = b.advance(T0 + I)
    assert first.liq_long_usd == 0 and first.revision == 0
    # OKX publishes liquidations out of order: a late one revises the closed bar
    out = b.add(Liquidation(V, S, T0 + 7, T0 + I + 10, "long", 10.0, 3.0, 30.0, "partial"))
    (rev,) = [x for x in out if x.ts_ms == T0]
    assert rev.revision == 1 and rev.liq_long_usd == 30.0
    # far too late (beyond the kept history): dropped and counted
    b2 = BarBuilder(V, S, I, grace_ms=0, history=1)
    b2.add(trade(T0, 1.0, 1.0))
    b2.advance(T0 + 5 * I)
    b2.add(trade(T0 + 1, 1.0, 1.0, recv=T0 + 5 * I))
    assert b2.late_dropped == 1


def test_gap_marks_bars_ongoing_then_final_and_revises() -> None:
    b = BarBuilder(V, S, I, grace_ms=0)
    b.add(trade(T0 + 5, 10.0, 1.0))
    (bar0,) = b.advance(T0 + I)  # closed before anyone knew about the outage
    assert not bar0.gap
    # outage started in bar 0 (last frame at T0 + 200 s), detected in bar 1
    out = b.add(Gap(V, S, T0 + I + 30_000, T0 + I + 30_000, T0 + 200_000, T0 + I + 30_000, "stale", ("trades",), True))
    assert [(x.ts_ms, x.gap, x.revision) for x in out] == [(T0, True, 1)]
    # while ongoing, every bar closed is flagged
    (bar1,) = b.advance(T0 + 2 * I)
    assert bar1.gap
    bars = b.add(Gap(V, S, T0 + 2 * I + 10, T0 + 2 * I + 10, T0 + 200_000, T0 + 2 * I + 10, "stale", ("trades",),
                     False))
    bars += b.add(trade(T0 + 3 * I + 1, 11.0, 1.0))
    bars += b.advance(T0 + 4 * I)
    assert [(x.ts_ms, x.gap) for x in bars] == [(T0 + 2 * I, True), (T0 + 3 * I, False)]


def test_candles_build_bars() -> None:
    b = BarBuilder(V, S, I, grace_ms=0)
    c = Candle(V, S, T0, I, 100.0, 110.0, 90.0, 105.0, 10.0, 1000.0, taker_buy_base=7.0, trades=42)
    out = b.add(c)
    out += b.add(OpenInterest(V, S, T0 + I, T0 + I, 5.0, 525.0, 105.0, "history"))
    out += b.advance(T0 + I)
    bar = out[0]
    assert (bar.open, bar.high, bar.low, bar.close) == (100.0, 110.0, 90.0, 105.0)
    assert bar.taker_net_base == 4.0 and bar.trades == 42 and bar.volume_usd == 1000.0


def test_barset_is_deterministic_and_sweeps_quiet_symbols() -> None:
    def run() -> list[Bar]:
        bs = BarSet(I, grace_ms=0, profile_steps={(V, S): 1.0, ("bybit-linear", "BTCUSDT"): 1.0})
        out = []
        for k in range(20):
            out += bs.add(trade(T0 + k * 60_000, 100.0 + k, 1.0))
        out += bs.add(Trade("bybit-linear", "BTCUSDT", T0 + 1, T0 + 1, 100.0, 1.0, 100.0, "sell"))
        out += bs.add(trade(T0 + 20 * 60_000, 130.0, 1.0))
        return out + bs.flush()

    a, b = run(), run()
    assert a == b
    bybit = [x for x in a if x.venue == "bybit-linear"]
    assert len(bybit) >= 4  # the quiet venue's bars closed as the other venue's data advanced time


def test_bar_builder_rejects_bad_interval() -> None:
    with pytest.raises(InvalidInputError):
        BarBuilder(V, S, 0)


def test_no_bar_before_the_first_price() -> None:
    b = BarBuilder(V, S, I, grace_ms=0)
    b.add(OpenInterest(V, S, T0, T0, 1.0, math.nan, math.nan))
    assert b.advance(T0 + 3 * I) == []
    b.add(trade(T0 + 3 * I + 1, 5.0, 1.0))
    (bar,) = b.advance(T0 + 4 * I)
    assert bar.close == 5.0 and bar.oi_close_base == 1.0


def test_bad_timestamps_cannot_open_far_bars() -> None:
    b = BarBuilder(V, S, I, grace_ms=0)
    # an exchange time a year ahead of the receive time: dropped, counted
    assert b.add(trade(T0 + 365 * 86_400_000, 1.0, 1.0, recv=T0)) == []
    assert b.future_dropped == 1
    # a first event from long ago does not make the builder emit every interval since
    b.add(trade(T0 - 30 * 86_400_000, 1.0, 1.0, recv=T0))
    b.add(trade(T0 + 1, 2.0, 1.0, recv=T0 + 1))
    assert len(b.flush()) <= b.history + 1
