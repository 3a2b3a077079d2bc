"""Chaos against the loopback fake exchange: TCP reset, close 1006/1008, half-open and silent
sockets, scheduled (24 h-style) closes with proactive rotation, 429/418 with Retry-After on
REST and on the WebSocket upgrade, garbage frames, a slow consumer, long outages. Each test
asserts reconnection, gap events, bounded memory and that nothing crashes. Timings are scaled
down through the connection Policy (tests/ingest/conftest.py)."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc

import pytest

from liqfast.events import Gap, Liquidation, MarkFunding, OpenInterest, Trade
from liqfast.exchanges import FakeExchange, FeedConnectionError, Hub, RawFrame
from liqfast.exchanges.registry import connector_class

from .conftest import FAST, now_ms, run, until

V, S = "binance-usdm", "BTCUSDT"


def _connector(fx: FakeExchange, venue: str = V, sym: str = S, **kw):  # noqa: ANN001, ANN003, ANN202
    fx.add_symbols(venue, [sym])
    got: list = []
    policy = kw.pop("policy", FAST)
    c = connector_class(venue)([sym], urls=fx.urls(venue), policy=policy, sink=got.append, seed=7, **kw)
    return c, got


async def _subscribed(fx: FakeExchange, c, n: int | None = None) -> None:  # noqa: ANN001
    n = len(c.socket_plans()) if n is None else n
    await until(lambda: fx.connected() >= n and sum(1 for cl in fx.clients if cl.subs) >= n, what="subscribed")


def _trade(k: int, venue: str = V, sym: str = S) -> Trade:
    t = now_ms()
    return Trade(venue, sym, t, t, 60_000.0 + k, 0.01, 600.0, "buy", k)


def _gaps(got: list, ongoing: bool | None = None) -> list[Gap]:
    return [e for e in got if isinstance(e, Gap) and (ongoing is None or e.ongoing == ongoing)]


@pytest.mark.parametrize("code", [None, 1008, 1011])
def test_disconnect_reconnects_and_emits_gaps(code: int | None) -> None:
    """code None: TCP reset (the client sees 1006); 1008 policy violation; 1011 server error."""

    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            c, got = _connector(fx)
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await _subscribed(fx, c)
                fx.publish(_trade(1))
                await until(lambda: any(isinstance(e, Trade) for e in got), what="first trade")
                dropped = await fx.drop(V, code=code)
                assert dropped == 2
                await until(lambda: len(_gaps(got, ongoing=False)) >= 2, what="final gaps")
                await _subscribed(fx, c)
                fx.publish(_trade(2))
                await until(lambda: sum(isinstance(e, Trade) for e in got) >= 2, what="trade after reconnect")
            ongoing, final = _gaps(got, True), _gaps(got, False)
            assert {g.channels for g in final} == {("trades", "open_interest", "mark_funding"), ("liquidations",)}
            for g in final:
                assert g.venue == V and g.symbol == S and g.start_ms <= g.end_ms
                assert "1006" in g.reason or str(code) in g.reason or "disconnect" in g.reason
            assert len(ongoing) >= 2  # announced as soon as the loss was seen
            assert c.counters.reconnects >= 2 and c.counters.gaps >= 2

    run(main())


def test_half_open_socket_idle_timeout_only_on_continuous_sockets() -> None:
    """Pings answered, no data: the market socket (mark price every second on the real venue)
    hits the idle timeout and reconnects; the liquidation socket, silent by nature, does not."""

    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            c, got = _connector(fx)
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await _subscribed(fx, c)
                t = now_ms()
                fx.publish(MarkFunding(V, S, t, t, 60_000.0))
                await until(lambda: any(isinstance(e, MarkFunding) for e in got), what="mark")
                fx.half_open.add(V)
                await until(lambda: c.counters.idle_closes >= 1, timeout=5, what="idle close")
                fx.half_open.discard(V)
                await until(lambda: len(_gaps(got, ongoing=False)) >= 1, what="gap after idle reconnect")
                assert all(g.channels != ("liquidations",) for g in _gaps(got))
                assert c.counters.stale_closes == 0  # pings kept flowing: not a heartbeat failure
                (g,) = _gaps(got, ongoing=False)[:1]
                assert g.reason == "idle"

    run(main())


@pytest.mark.parametrize("venue", ["binance-usdm", "okx-linear"])
def test_silent_peer_heartbeat_timeout(venue: str) -> None:
    """No data and no pong (protocol ping on Binance, text ping on OKX): the heartbeat timeout
    declares the socket dead even though TCP is still open."""
    sym = {"binance-usdm": S, "okx-linear": "BTC-USDT-SWAP"}[venue]

    async def main() -> None:
        async with FakeExchange(venues=[venue]) as fx:
            c, got = _connector(fx, venue, sym, channels=["liquidations"])
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await _subscribed(fx, c)
                fx.silent.add(venue)
                await until(lambda: c.counters.stale_closes >= 1, timeout=6, what="stale close")
                fx.silent.discard(venue)
                await until(lambda: len(_gaps(got, ongoing=False)) >= 1, timeout=5, what="gap")
                assert _gaps(got, ongoing=False)[0].reason == "stale"
                assert c.counters.pings_sent >= 2

    run(main())


def test_scheduled_close_rotation_no_gap_no_duplicates() -> None:
    """The venue closes every connection after a fixed lifetime (Binance: 24 h). The connector
    rotates before that: new connection, overlap, de-duplication — no gap, no duplicate."""

    async def main() -> None:
        async with FakeExchange(venues=[V], max_conn_lifetime=1.6) as fx:
            policy = FAST.with_(max_lifetime=0.8, rotation_overlap=0.2)
            c, got = _connector(fx, channels=["trades"], policy=policy)
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await _subscribed(fx, c)
                k = 0
                t_end = time.monotonic() + 3.0
                while time.monotonic() < t_end:
                    k += 1
                    fx.publish(_trade(k))
                    await asyncio.sleep(0.01)
                await until(lambda: sum(isinstance(e, Trade) for e in got) >= k - 2, what="trades")
            ids = [e.trade_id for e in got if isinstance(e, Trade)]
            assert c.counters.rotations >= 2
            assert len(ids) == len(set(ids)), "duplicate trades across the rotation overlap"
            assert c.counters.duplicates > 0  # both connections delivered during the overlaps
            assert not _gaps(got), _gaps(got)
            assert set(range(1, k + 1)) - set(ids) <= {k - 1, k}  # nothing lost (tail may be in flight)

    run(main())


def test_scheduled_close_without_rotation_is_a_gap() -> None:
    async def main() -> None:
        async with FakeExchange(venues=[V], max_conn_lifetime=0.5) as fx:
            c, got = _connector(fx, channels=["trades"], policy=FAST.with_(max_lifetime=0))
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await until(lambda: len(_gaps(got, ongoing=False)) >= 1, timeout=5, what="gap")
                assert "1001" in _gaps(got, ongoing=False)[0].reason

    run(main())


@pytest.mark.parametrize("status", [429, 418])
def test_rest_rate_limit_honours_retry_after(status: int) -> None:
    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            c, got = _connector(fx, channels=["open_interest"])
            t = now_ms()
            fx.publish(OpenInterest(V, S, t, t, 10.0, 600_000.0, 60_000.0))
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await until(lambda: any(isinstance(e, OpenInterest) for e in got), what="first OI")
                fx.fail_rest(V, status, retry_after=1.0, times=1)
                await until(lambda: c.rest.counters.rate_limited == 1, timeout=5, what="rate limited")
                blocked_at = time.monotonic()
                n = len(fx.rest_log)
                await until(lambda: len(fx.rest_log) > n, timeout=5, what="next request")
                assert time.monotonic() - blocked_at >= 0.9, "request sent before Retry-After elapsed"
                await until(lambda: sum(isinstance(e, OpenInterest) for e in got) >= 2, what="polling resumed")

    run(main())


def test_websocket_handshake_429_retry_after() -> None:
    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            fx.throttling.add(V)
            c, got = _connector(fx, channels=["trades"])
            async with c:
                await until(lambda: c.counters.connect_failures >= 1, what="refused")
                t0 = time.monotonic()
                fx.throttling.discard(V)
                await asyncio.wait_for(c.ready.wait(), 5)
                assert time.monotonic() - t0 >= 0.5  # waited out Retry-After (1 s from the first refusal)

    run(main())


def test_garbage_truncated_unknown_frames_are_counted_not_fatal() -> None:
    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            c, got = _connector(fx, channels=["trades"])
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await _subscribed(fx, c)
                good = fx.encode(_trade(1))[0][1]
                for junk in (b"\x00\xff garbage", good[: len(good) // 2], '{"stream":"x","data":{"e":"newThing"}}',
                             '{"stream":"x","data":{"e":"aggTrade","s":"BTCUSDT","a":"nan","p":"x"}}', "[1,2", ""):
                    fx.publish(RawFrame(V, junk))
                fx.publish(_trade(2))
                await until(lambda: any(isinstance(e, Trade) for e in got), what="valid trade after garbage")
                d = c.normalizer.counters
                assert d.decode_errors == 6, c.normalizer.last_error
                assert c.counters.disconnects == 0  # the socket survived
                assert c.stats()["last_decode_error"]

    run(main())


def test_slow_consumer_bounded_memory() -> None:
    """A subscriber that reads 50 items/s while the venue pushes thousands: its queue never
    exceeds maxsize, drops are counted, it is told with an overflow gap, and memory stays flat."""

    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            hub = Hub()
            sub = hub.subscribe(maxsize=200)
            fast_sub = hub.subscribe(kinds={"trade"}, maxsize=100_000)
            c, _ = _connector(fx, channels=["trades"])
            c.sink = hub.publish
            got_slow: list = []

            async def slow_reader() -> None:
                async for item in sub:
                    got_slow.append(item)
                    await asyncio.sleep(0.02)

            reader = asyncio.create_task(slow_reader())
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await _subscribed(fx, c)

                async def pump(n: int, start: int) -> None:
                    for k in range(start, start + n):
                        fx.publish(_trade(k))
                        if k % 500 == 0:
                            await asyncio.sleep(0)
                    await until(lambda: hub.published >= start + n - 1, timeout=20, what="pumped")

                await pump(3_000, 1)
                gc.collect()
                tracemalloc.start()
                base, _ = tracemalloc.get_traced_memory()
                await pump(12_000, 3_001)
                fast_sub.close()
                while len(fast_sub):  # the fast consumer drains its queue
                    fast_sub.get_nowait()
                gc.collect()
                cur, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            reader.cancel()
            assert sub.high_water <= 200 and len(sub) <= 200
            assert sub.dropped > 10_000
            assert any(isinstance(i, Gap) and i.reason == "overflow" for i in got_slow)
            # 12,000 more events through the pipeline grew traced memory by well under 2 MB
            assert cur - base < 2_000_000, (base, cur, peak)

    run(main())


def test_never_gives_up_by_default_and_recovers() -> None:
    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            c, got = _connector(fx, channels=["trades"], policy=FAST.with_(backoff_max=0.1))
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await _subscribed(fx, c)
                fx.refusing.add(V)
                await fx.drop(V)
                await until(lambda: c.counters.connect_failures >= 15, timeout=10, what="many failed attempts")
                assert c.status["market"].startswith("down")
                fx.refusing.discard(V)
                await until(lambda: c.status.get("market") == "up", timeout=5, what="recovered")
                await until(lambda: len(_gaps(got, ongoing=False)) >= 1, what="final gap")
                g = _gaps(got, ongoing=False)[0]
                assert g.end_ms - g.start_ms >= 500  # the whole outage is one window

    run(main())


def test_backoff_is_capped_jittered_and_resets_only_when_healthy() -> None:
    from random import Random

    from liqfast.exchanges.connector import Backoff, Policy

    b = Backoff(Policy(backoff_initial=1.0, backoff_max=30.0, jitter=0.5), Random(3))
    delays = [b.next() for _ in range(12)]
    assert all(0.5 <= d <= 30.0 for d in delays)
    assert max(delays[6:]) <= 30.0 and min(delays[6:]) >= 15.0  # capped near 30 s, jittered
    assert len({round(d, 6) for d in delays}) == len(delays)
    b.reset()
    assert b.next() <= 1.0

    async def main() -> None:
        # A server that accepts and drops at once never counts as healthy: the attempts grow.
        async with FakeExchange(venues=[V], max_conn_lifetime=0.05) as fx:
            c, got = _connector(fx, channels=["trades"], policy=FAST.with_(healthy_after=5.0, backoff_max=0.2))
            async with c:
                await until(lambda: c.counters.disconnects >= 4, timeout=8, what="flapping")

    run(main())


def test_max_attempts_raises_typed_error() -> None:
    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            fx.refusing.add(V)
            c, _ = _connector(fx, channels=["trades"], policy=FAST.with_(max_attempts=3))
            with pytest.raises(FeedConnectionError, match="giving up after 3 attempts"):
                await asyncio.wait_for(c.run(), 10)

    run(main())


def test_liquidations_survive_chaos_on_every_venue_with_a_feed() -> None:
    """Bybit/OKX/Gate/Bitget liquidation sockets: reset mid-stream, reconnect, keep decoding."""
    venues = {"bybit-linear": "BTCUSDT", "okx-linear": "BTC-USDT-SWAP", "gate-linear": "BTC_USDT",
              "bitget-linear": "BTCUSDT"}

    async def one(fx: FakeExchange, venue: str, sym: str) -> None:
        c, got = _connector(fx, venue, sym, channels=["liquidations"])
        async with c:
            await asyncio.wait_for(c.ready.wait(), 5)
            await until(lambda: any(cl.subs for cl in fx.clients if venue in cl.venue.venue_ids), what=venue)
            t = now_ms()
            fx.publish(Liquidation(venue, sym, t, t, "long", 60_000.0, 0.5, 30_000.0, "x"))
            await until(lambda: any(isinstance(e, Liquidation) for e in got), what=f"{venue} liquidation")
            await fx.drop(venue)
            await until(lambda: len(_gaps(got, ongoing=False)) >= 1, what=f"{venue} gap")
            await until(lambda: any(cl.subs for cl in fx.clients if venue in cl.venue.venue_ids), what=venue)
            t = now_ms() + 1
            fx.publish(Liquidation(venue, sym, t, t, "short", 61_000.0, 0.25, 15_250.0, "x"))
            await until(lambda: sum(isinstance(e, Liquidation) for e in got) >= 2, what=f"{venue} after")
            sides = [e.side for e in got if isinstance(e, Liquidation)]
            assert sides == ["long", "short"]

    async def main() -> None:
        async with FakeExchange(venues=list(venues)) as fx:
            await asyncio.gather(*(one(fx, v, s) for v, s in venues.items()))

    run(main())


def test_open_interest_poll_outage_is_a_gap() -> None:
    async def main() -> None:
        async with FakeExchange(venues=[V]) as fx:
            c, got = _connector(fx, channels=["open_interest"])
            t = now_ms()
            fx.publish(OpenInterest(V, S, t, t, 10.0, 600_000.0, 60_000.0))
            async with c:
                await until(lambda: any(isinstance(e, OpenInterest) for e in got), what="first OI")
                fx.fail_rest(V, 503, retry_after=None, times=6)

                def rest_gaps(ongoing: bool) -> list[Gap]:
                    return [g for g in _gaps(got, ongoing) if g.reason == "open interest unavailable"]

                await until(lambda: len(rest_gaps(True)) >= 1, timeout=5, what="ongoing OI gap")
                await until(lambda: len(rest_gaps(False)) >= 1, timeout=8, what="final OI gap")
            (g,) = rest_gaps(False)
            assert g.channels == ("open_interest",) and g.venue == V and g.symbol == S
            assert g.end_ms - g.start_ms >= 400

    run(main())
