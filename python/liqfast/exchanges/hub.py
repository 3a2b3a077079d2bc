"""In-process fan-out of normalised events (and bars, and whatever the serving layer adds)
to any number of subscribers, with bounded memory no matter how slow a subscriber is.

Why bounded: feed handlers in the wild leak memory when one consumer stalls (an unbounded
queue grows until the process dies, usually at the worst moment — during a cascade, when
message rates peak). Here every subscription has a fixed ``maxsize`` and an explicit
overflow policy:

* ``"drop_oldest"`` (default) — keep the newest items, discard the oldest. Right for market
  data, where the latest state matters most. Every drop is counted, and before the next item
  the subscriber receives one :class:`~liqfast.events.Gap` (``reason="overflow"``) per
  venue/symbol that lost data, covering the exchange-time span of what was dropped — so a
  slow consumer *knows* its view has holes, exactly like a network outage.
* ``"drop_newest"`` — keep what is queued, discard arrivals (same counting and gap events).
* ``"disconnect"`` — close the subscription; the consumer's next read raises
  :class:`~liqfast.exchanges.errors.SlowConsumerError` (for consumers that must not miss
  anything and would rather restart from a snapshot).

Publishing never blocks and never raises into the producer: connectors call
:meth:`Hub.publish` from their socket read loop. Callback subscribers run synchronously in
``publish``; an exception in one is counted and logged, never propagated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Literal

from ..events import Bar, Event, Gap, Liquidation, MarkFunding, OpenInterest, Trade
from .errors import SlowConsumerError

__all__ = ["Hub", "Overflow", "Subscription", "kind_of"]

log = logging.getLogger("liqfast.exchanges.hub")

Overflow = Literal["drop_oldest", "drop_newest", "disconnect"]

_KINDS: dict[type, str] = {
    Trade: "trade",
    Liquidation: "liquidation",
    OpenInterest: "open_interest",
    MarkFunding: "mark_funding",
    Gap: "gap",
    Bar: "bar",
}


def kind_of(item: object) -> str:
    """"trade", "liquidation", "open_interest", "mark_funding", "gap", "bar", or the
    ``kind`` attribute / lowercased class name of anything else published."""
    k = _KINDS.get(type(item))
    if k is not None:
        return k
    attr = getattr(item, "kind", None)
    return attr if isinstance(attr, str) else type(item).__name__.lower()


class _Filter:
    __slots__ = ("kinds", "venues", "symbols")

    def __init__(self, kinds: Iterable[str] | None, venues: Iterable[str] | None, symbols: Iterable[str] | None) -> None:
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.venues = frozenset(venues) if venues is not None else None
        self.symbols = frozenset(symbols) if symbols is not None else None

    def match(self, kind: str, item: object) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.venues is not None and getattr(item, "venue", None) not in self.venues:
            return False
        if self.symbols is not None and getattr(item, "symbol", None) not in self.symbols:
            return False
        return True


class Subscription:
    """A bounded queue of hub items; iterate it with ``async for`` (or use :meth:`get`).

    Counters: ``delivered``, ``dropped``, ``overflow_gaps``, ``high_water`` (largest queue
    length seen — never above ``maxsize``)."""

    def __init__(self, hub: Hub, flt: _Filter, maxsize: int, overflow: Overflow) -> None:
        if maxsize < 1:
            from ..errors import InvalidInputError

            raise InvalidInputError(f"subscription maxsize must be >= 1, got {maxsize}")
        if overflow not in ("drop_oldest", "drop_newest", "disconnect"):
            from ..errors import InvalidInputError

            raise InvalidInputError(f"unknown overflow policy {overflow!r}")
        self._hub = hub
        self._filter = flt
        self.maxsize = maxsize
        self.overflow = overflow
        self._q: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None
        #: (venue, symbol) -> [first_ts, last_ts] of dropped items (bounded by #symbols)
        self._lost: dict[tuple[str, str], list[int]] = {}
        self.delivered = 0
        self.dropped = 0
        self.overflow_gaps = 0
        self.high_water = 0

    # -- producer side (called by Hub.publish) ------------------------------------------------

    def _offer(self, item: object) -> None:
        if self._closed:
            return
        q = self._q
        if len(q) >= self.maxsize:
            if self.overflow == "disconnect":
                self.dropped += 1
                self._error = SlowConsumerError(
                    f"subscription overflowed its {self.maxsize} slots and was closed (policy 'disconnect')"
                )
                self._close()
                return
            if self.overflow == "drop_oldest":
                self._lose(q.popleft())
                q.append(item)
            else:
                self._lose(item)
        else:
            q.append(item)
            if len(q) > self.high_water:
                self.high_water = len(q)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _lose(self, item: object) -> None:
        self.dropped += 1
        venue = getattr(item, "venue", None)
        symbol = getattr(item, "symbol", None)
        if isinstance(venue, str) and isinstance(symbol, str) and not isinstance(item, Gap):
            ts = getattr(item, "exchange_ts_ms", None)
            if not isinstance(ts, int):
                ts = getattr(item, "ts_ms", 0)
                ts = ts if isinstance(ts, int) else 0
            span = self._lost.get((venue, symbol))
            if span is None:
                self._lost[(venue, symbol)] = [ts, ts]
            else:
                if ts < span[0]:
                    span[0] = ts
                if ts > span[1]:
                    span[1] = ts

    # -- consumer side ------------------------------------------------------------------------

    def _next_ready(self) -> Any:
        if self._lost:
            (venue, symbol), (a, b) = self._lost.popitem()
            self.overflow_gaps += 1
            now = int(time.time() * 1000)
            return Gap(venue, symbol, b, now, a, b, "overflow")
        self.delivered += 1
        return self._q.popleft()

    def get_nowait(self) -> Any:
        """Next item, or raise ``asyncio.QueueEmpty``."""
        if self._q or self._lost:
            return self._next_ready()
        if self._error is not None:
            raise self._error
        raise asyncio.QueueEmpty

    async def get(self) -> Any:
        """Next item; raises StopAsyncIteration once closed and drained, SlowConsumerError
        if closed by the "disconnect" policy."""
        while True:
            if self._q or self._lost:
                return self._next_ready()
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self.get()

    def __len__(self) -> int:
        return len(self._q)

    @property
    def closed(self) -> bool:
        return self._closed

    def _close(self) -> None:
        self._closed = True
        self._hub._remove(self)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        """Stop receiving; queued items can still be read."""
        self._close()

    def stats(self) -> dict[str, int]:
        return {
            "pending": len(self._q), "delivered": self.delivered, "dropped": self.dropped,
            "overflow_gaps": self.overflow_gaps, "high_water": self.high_water, "maxsize": self.maxsize,
        }


class _Callback:
    __slots__ = ("fn", "filter", "errors")

    def __init__(self, fn: Callable[[Any], None], flt: _Filter) -> None:
        self.fn = fn
        self.filter = flt
        self.errors = 0


class Hub:
    """Fan-out point between connectors and consumers (model, map, a trading system)."""

    def __init__(self, *, default_maxsize: int = 10_000) -> None:
        self.default_maxsize = default_maxsize
        self._subs: list[Subscription] = []
        self._callbacks: list[_Callback] = []
        self.published = 0
        self.callback_errors = 0
        self.by_kind: dict[str, int] = {}

    def subscribe(
        self,
        *,
        kinds: Iterable[str] | None = None,
        venues: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
        maxsize: int | None = None,
        overflow: Overflow = "drop_oldest",
    ) -> Subscription:
        """A new bounded subscription to items matching all given filters (None = any)."""
        size = self.default_maxsize if maxsize is None else maxsize
        sub = Subscription(self, _Filter(kinds, venues, symbols), size, overflow)
        self._subs.append(sub)
        return sub

    def on(
        self,
        fn: Callable[[Any], None],
        *,
        kinds: Iterable[str] | None = None,
        venues: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
    ) -> Callable[[], None]:
        """Call ``fn(item)`` synchronously for matching items; returns an unsubscribe
        function. Keep ``fn`` fast: it runs inside the connectors' read loop."""
        cb = _Callback(fn, _Filter(kinds, venues, symbols))
        self._callbacks.append(cb)

        def remove() -> None:
            if cb in self._callbacks:
                self._callbacks.remove(cb)

        return remove

    def publish(self, item: object) -> None:
        """Deliver one item to every matching subscriber. Never blocks, never raises."""
        self.published += 1
        kind = kind_of(item)
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        for sub in self._subs:
            if sub._filter.match(kind, item):
                sub._offer(item)
        for cb in self._callbacks:
            if cb.filter.match(kind, item):
                try:
                    cb.fn(item)
                except Exception:  # noqa: BLE001 - a consumer bug must not kill the feed
                    cb.errors += 1
                    self.callback_errors += 1
                    log.exception("hub callback %r failed", cb.fn)

    def publish_many(self, items: Iterable[object]) -> None:
        for item in items:
            self.publish(item)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def close(self) -> None:
        """Close every subscription (consumers drain what is queued, then stop)."""
        for sub in list(self._subs):
            sub.close()

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    def stats(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "callback_errors": self.callback_errors,
            "by_kind": dict(self.by_kind),
            "subscriptions": [s.stats() for s in self._subs],
            "dropped": sum(s.dropped for s in self._subs),
        }
