"""The in-process hub: filters, bounded subscriptions, overflow policies, callbacks."""

from __future__ import annotations

import asyncio
import logging

import pytest

from liqfast.errors import InvalidInputError
from liqfast.events import Gap, Liquidation, Trade
from liqfast.exchanges import Hub, SlowConsumerError

from .conftest import run


def _t(k: int, venue: str = "binance-usdm", sym: str = "BTCUSDT") -> Trade:
    return Trade(venue, sym, 1_000 + k, 1_000 + k, 100.0, 1.0, 100.0, "buy", k)


def test_filters_and_async_iteration() -> None:
    async def main() -> None:
        hub = Hub()
        liqs = hub.subscribe(kinds={"liquidation"})
        okx = hub.subscribe(venues={"okx-linear"})
        hub.publish(_t(1))
        hub.publish(_t(2, "okx-linear", "BTC-USDT-SWAP"))
        hub.publish(Liquidation("bybit-linear", "BTCUSDT", 1, 1, "long", 1.0, 1.0, 1.0, "all_500ms"))
        assert len(liqs) == 1 and len(okx) == 1
        hub.close()
        got = [x async for x in liqs]
        assert [type(x).__name__ for x in got] == ["Liquidation"]
        assert hub.stats()["by_kind"] == {"trade": 2, "liquidation": 1}

    run(main())


def test_drop_oldest_keeps_newest_and_reports_overflow_gap() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=10)
    for k in range(100):
        hub.publish(_t(k))
    assert len(sub) == 10 and sub.dropped == 90 and sub.high_water == 10
    first = sub.get_nowait()
    assert isinstance(first, Gap) and first.reason == "overflow"
    assert (first.start_ms, first.end_ms) == (1_000, 1_089)  # exchange-time span of what was lost
    rest = [sub.get_nowait() for _ in range(10)]
    assert [x.trade_id for x in rest] == list(range(90, 100))


def test_drop_newest_keeps_queue() -> None:
    hub = Hub()
    sub = hub.subscribe(maxsize=5, overflow="drop_newest")
    for k in range(20):
        hub.publish(_t(k))
    items = [sub.get_nowait() for _ in range(6)]
    assert isinstance(items[0], Gap) and [x.trade_id for x in items[1:]] == [0, 1, 2, 3, 4]


def test_disconnect_policy_raises_typed_error() -> None:
    async def main() -> None:
        hub = Hub()
        sub = hub.subscribe(maxsize=3, overflow="disconnect")
        for k in range(5):
            hub.publish(_t(k))
        assert sub.closed and sub not in hub.subscriptions
        got = [await sub.get() for _ in range(3)]
        assert [x.trade_id for x in got] == [0, 1, 2]
        with pytest.raises(SlowConsumerError):
            await sub.get()

    run(main())


def test_callback_errors_never_reach_the_producer(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    seen: list = []

    def bad(item: object) -> None:
        raise RuntimeError("consumer bug")

    hub.on(bad)
    remove = hub.on(seen.append, kinds={"trade"})
    with caplog.at_level(logging.ERROR, logger="liqfast.exchanges.hub"):
        hub.publish(_t(1))
    assert seen == [_t(1)] and hub.callback_errors == 1
    remove()
    hub.publish(_t(2))
    assert len(seen) == 1


def test_waiting_consumer_wakes_up() -> None:
    async def main() -> None:
        hub = Hub()
        sub = hub.subscribe()

        async def later() -> None:
            await asyncio.sleep(0.05)
            hub.publish(_t(7))

        task = asyncio.create_task(later())
        item = await asyncio.wait_for(sub.get(), 2)
        await task
        assert item.trade_id == 7

    run(main())


def test_bad_subscription_arguments() -> None:
    hub = Hub()
    with pytest.raises(InvalidInputError):
        hub.subscribe(maxsize=0)
    with pytest.raises(InvalidInputError):
        hub.subscribe(overflow="block")  # type: ignore[arg-type]
