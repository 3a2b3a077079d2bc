"""Every connector against the loopback fake exchange: subscribe, keepalive, decode, and the
REST side (instruments, polled open interest, KuCoin's bullet token)."""

from __future__ import annotations

import asyncio

import pytest

from liqfast.events import Liquidation, MarkFunding, OpenInterest, Trade
from liqfast.exchanges import FakeExchange, Hub, Ingest, make_connectors
from liqfast.exchanges.connector import Connector
from liqfast.exchanges.registry import connector_class

from .conftest import FAST, now_ms, run, until
from .test_roundtrip import LIQ_VENUES, VENUES


async def _connect(fx: FakeExchange, venue: str, symbols: list[str], **kw: object) -> tuple[Connector, list]:  # type: ignore[type-arg]
    got: list = []  # type: ignore[type-arg]
    fx.add_symbols(venue, symbols)
    cls = connector_class(venue)
    c = cls(symbols, urls=fx.urls(venue), policy=FAST, sink=got.append, seed=1, **kw)  # type: ignore[arg-type]
    return c, got


@pytest.mark.parametrize("venue", list(VENUES))
def test_live_path_every_venue(venue: str) -> None:
    sym = VENUES[venue]

    async def main() -> None:
        async with FakeExchange(venues=[venue]) as fx:
            c, got = await _connect(fx, venue, [sym])
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await until(lambda: len(fx.clients) == len(c.socket_plans()) and all(cl.subs for cl in fx.clients),
                            what="subscriptions")
                assert c.instruments_loaded
                t = now_ms()
                fx.publish(MarkFunding(venue, sym, t, t, 60_000.0, 60_001.0, 0.0001, t + 3_600_000))
                fx.publish(OpenInterest(venue, sym, t, t, 1000.0, 6e7, 60_000.0))
                fx.publish(Trade(venue, sym, t, t, 60_000.5, 0.5, 30_000.25, "sell", 42))
                if venue in LIQ_VENUES:
                    fx.publish(Liquidation(venue, sym, t, t, "short", 60_100.0, 0.2, 12_020.0, "x"))
                await until(lambda: any(isinstance(e, Trade) for e in got), what="trade")
                await until(lambda: any(isinstance(e, OpenInterest) for e in got), what="open interest")
                if venue in LIQ_VENUES:
                    await until(lambda: any(isinstance(e, Liquidation) for e in got), what="liquidation")
                    (liq,) = [e for e in got if isinstance(e, Liquidation)]
                    assert liq.side == "short" and liq.size_base == pytest.approx(0.2, rel=1e-6)
                (tr,) = [e for e in got if isinstance(e, Trade)]
                assert (tr.venue, tr.symbol, tr.side, tr.price) == (venue, sym, "sell", 60_000.5)
                assert tr.size_base == pytest.approx(0.5, rel=1e-6)
                assert any(isinstance(e, MarkFunding) and e.mark_price == 60_000.0 for e in got)
                oi = [e for e in got if isinstance(e, OpenInterest)][-1]
                assert oi.oi_base == pytest.approx(1000.0, rel=1e-6)
                st = c.stats()
                assert st["decode"]["decode_errors"] == 0, st["last_decode_error"]
                assert st["connection"]["connections"] >= 1
        assert not c._conns  # everything closed on exit

    run(main())


def test_kucoin_and_hyperliquid_have_no_liquidation_channel() -> None:
    for venue in ("kucoin-linear", "hyperliquid"):
        cls = connector_class(venue)
        c = cls([VENUES[venue]])
        assert "liquidations" not in c.channels
        assert "liquidation" in cls.unavailable["liquidations"]
        assert all("liquidations" not in p.channels for p in c.socket_plans())


def test_okx_one_connector_covers_linear_and_inverse() -> None:
    (c,) = make_connectors({"okx-linear": ["BTC-USDT-SWAP"], "okx-inverse": ["BTC-USD-SWAP"]})
    assert c.family == "okx" and set(c.symbols) == {"BTC-USDT-SWAP", "BTC-USD-SWAP"}
    pairs = c.socket_plans()[0].pairs
    assert ("okx-inverse", "BTC-USD-SWAP") in pairs and ("okx-linear", "BTC-USDT-SWAP") in pairs


def test_binance_streams_batched_within_limits() -> None:
    syms = [f"C{i}USDT" for i in range(130)]
    c = connector_class("binance-usdm")(syms, channels=["trades", "mark_funding", "liquidations"])
    plans = c.socket_plans()
    market = [p for p in plans if p.name.startswith("market")]
    assert len(market) == 2 and all(len(p.subscriptions) <= 200 for p in market)
    assert sum(len(p.subscriptions) for p in market) == 260
    assert [p.subscriptions for p in plans if p.name == "liquidations"] == [["!forceOrder@arr"]]


def test_binance_subscribe_overflow_goes_by_message() -> None:
    syms = [f"C{i}USDT" for i in range(40)]  # 80 streams: 50 in the URL, 30 by SUBSCRIBE

    async def main() -> None:
        async with FakeExchange(venues=["binance-usdm"]) as fx:
            c, got = await _connect(fx, "binance-usdm", syms, channels=["trades", "mark_funding"])
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await until(lambda: sum(len(cl.subs) for cl in fx.clients) == 80, what="80 streams")
                t = now_ms()
                fx.publish(Trade("binance-usdm", "C39USDT", t, t, 1.0, 2.0, 2.0, "buy", 1))
                await until(lambda: any(isinstance(e, Trade) for e in got), what="trade on a SUBSCRIBEd stream")

    run(main())


def test_ingest_publishes_events_and_bars_on_hub() -> None:
    async def main() -> None:
        async with FakeExchange(venues=["bybit-linear", "binance-usdm"]) as fx:
            fx.add_symbols("bybit-linear", ["BTCUSDT"])
            fx.add_symbols("binance-usdm", ["BTCUSDT"])
            hub = Hub()
            sub = hub.subscribe(kinds={"trade", "bar"}, maxsize=1000)
            ing = Ingest(venues={"bybit-linear": ["BTCUSDT"], "binance-usdm": ["BTCUSDT"]}, hub=hub, policy=FAST,
                         urls={"bybit-linear": fx.urls("bybit-linear"), "binance-usdm": fx.urls("binance-usdm")},
                         bar_interval_ms=200, bar_grace_ms=0, tick_s=0.05)
            async with ing:
                assert set(await ing.wait_ready(5)) == {"bybit-linear", "binance-usdm"}
                await until(lambda: fx.connected() >= 4 and all(cl.subs for cl in fx.clients), what="subscribed")
                for k in range(5):
                    t = now_ms()
                    for v in ("bybit-linear", "binance-usdm"):
                        fx.publish(Trade(v, "BTCUSDT", t, t, 100.0 + k, 1.0, 100.0 + k, "buy", k + 1))
                    await asyncio.sleep(0.1)
                items = []
                await until(lambda: (items.extend(_drain(sub)) or True) and sum(kind == "Bar" for kind in
                            (type(i).__name__ for i in items)) >= 2, what="bars")
                venues = {i.venue for i in items if type(i).__name__ == "Bar"}
                assert venues == {"bybit-linear", "binance-usdm"}
                stats = ing.stats()
                assert stats["events"] >= 10 and stats["bars"] >= 2

    run(main())


def _drain(sub):  # noqa: ANN001, ANN202
    out = []
    while True:
        try:
            out.append(sub.get_nowait())
        except asyncio.QueueEmpty:
            return out


def test_live_tier_tables_feed_the_core(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from liqfast.tiers import load_table

    monkeypatch.setenv("LIQFAST_DATA_DIR", str(tmp_path))
    venues = {"bybit-linear": ["BTCUSDT"], "okx-linear": ["BTC-USDT-SWAP"], "gate-linear": ["BTC_USDT"],
              "binance-usdm": ["BTCUSDT"]}

    async def main() -> None:
        async with FakeExchange(venues=list(venues)) as fx:
            for v, s in venues.items():
                fx.add_symbols(v, s)
            ing = Ingest(venues=venues, policy=FAST, urls={v: fx.urls(v) for v in venues}, bars=False)
            async with ing:
                await ing.wait_ready(5)
                tables = await ing.fetch_tiers(save=True)
        # Binance brackets need a signed request: skipped, the others were fetched and saved
        assert set(tables) == {("bybit-linear", "BTCUSDT"), ("okx-linear", "BTC-USDT-SWAP"), ("gate-linear", "BTC_USDT")}
        for (venue, sym), table in tables.items():
            saved = load_table(venue, sym)  # the user directory wins over the shipped table
            assert saved == table and (tmp_path / "tiers" / venue / f"{sym}.json").is_file()
            assert saved.tiers[0].mmr > 0 and len(saved.tiers) >= 2

    run(main())


def test_fake_exchange_source_drives_the_live_path() -> None:
    """The offline demo's shape: a generator of normalised events as the fake's source,
    paced in exchange time, ingested through the live path."""
    t0 = now_ms()

    def market():  # noqa: ANN202
        for k in range(40):
            t = t0 + k * 1000  # one event per exchange second
            yield Trade("bybit-linear", "BTCUSDT", t, t, 60_000.0 + k, 0.1, 6_000.0, "buy", k + 1)

    async def main() -> None:
        fx = FakeExchange(source=None, venues=["bybit-linear"], speed=50.0)  # 40 s of market in 0.8 s
        fx.add_symbols("bybit-linear", ["BTCUSDT"])
        async with fx:
            c, got = await _connect(fx, "bybit-linear", ["BTCUSDT"], channels=["trades"])
            async with c:
                await asyncio.wait_for(c.ready.wait(), 5)
                await until(lambda: any(cl.subs for cl in fx.clients), what="subscribed")
                start = asyncio.get_running_loop().time()
                await fx.pump(market)
                elapsed = asyncio.get_running_loop().time() - start
                await until(lambda: len(got) == 40, what="all trades")
        assert 0.6 < elapsed < 3.0
        assert [e.trade_id for e in got] == [str(k + 1) for k in range(40)]

    run(main())
