"""Shared helpers of the ingestion tests: fast connection policy, loopback fake exchange,
paths to the shared reference data (tests that need it skip cleanly when it is absent)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from liqfast.exchanges.connector import Policy

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LIQFAST_SHARED", REPO.parent / "shared"))
CAPTURES = SHARED / "data" / "captures"
FIXTURES = SHARED / "reference" / "fixtures"

#: Everything scaled down: tests never wait for production timeouts.
FAST = Policy(
    backoff_initial=0.05, backoff_max=0.3, jitter=0.5, healthy_after=0.5, connect_timeout=3.0,
    heartbeat_timeout=1.5, idle_timeout=0.8, ping_interval=0.2, rotation_overlap=0.2, close_timeout=0.3,
    oi_poll_interval=0.2, instruments_timeout=3.0, instruments_retry=0.5, rest_timeout=3.0,
)


def now_ms() -> int:
    return int(time.time() * 1000)


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available (shared reference data absent)")
    return path


class ThreadedFake:
    """A FakeExchange on its own event loop in a thread, for code that runs its own loop
    (the CLI commands call asyncio.run)."""

    def __init__(self, **kw: Any) -> None:
        import threading

        from liqfast.exchanges import FakeExchange

        self.loop = asyncio.new_event_loop()
        self.fx = FakeExchange(**kw)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fx.start(), self.loop).result(10)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fx.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def threaded_fake() -> Any:
    made: list[ThreadedFake] = []

    def make(**kw: Any) -> ThreadedFake:
        tf = ThreadedFake(**kw)
        made.append(tf)
        return tf

    yield make
    for tf in made:
        tf.close()
