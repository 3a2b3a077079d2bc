"""REST access within each venue's request-weight budget.

Every venue meters public REST by weight per IP and window (Binance 2,400/min for ``/fapi``,
Bybit 600 per 5 s, OKX 20 per 2 s per endpoint, Gate ~200 per 10 s…). Exceeding it earns a
429, and ignoring a 429 earns Binance's 418 (an IP ban of minutes to days). So every request
goes through a token bucket sized well below the venue's published budget, the venue's own
usage headers tighten it further (``X-MBX-USED-WEIGHT-1M``, Gate's ``x-gate-ratelimit-*``),
and a 429/418 blocks *all* further requests to that venue until ``Retry-After`` has passed
(120 s when a 418 gives none).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from .errors import ExchangeError, FeedConnectionError, NetworkUnavailableError, RateLimitedError
from .recording import Recorder

__all__ = ["RateLimit", "RestClient", "RestCounters", "parse_retry_after"]

log = logging.getLogger("liqfast.exchanges.rest")


def parse_retry_after(value: str | None, default: float) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class RateLimit:
    """Token bucket: ``capacity`` weight, refilled at ``capacity / per_s`` per second."""

    def __init__(self, capacity: float, per_s: float) -> None:
        self.capacity = float(capacity)
        self.rate = float(capacity) / float(per_s)
        self.tokens = float(capacity)
        self._last = time.monotonic()
        #: monotonic time before which no request may be sent (Retry-After, usage headers)
        self.blocked_until = 0.0

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def block_for(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)

    async def acquire(self, weight: float = 1.0) -> None:
        weight = min(weight, self.capacity)
        while True:
            now = time.monotonic()
            if now < self.blocked_until:
                await asyncio.sleep(self.blocked_until - now)
                continue
            self._refill()
            if self.tokens >= weight:
                self.tokens -= weight
                return
            await asyncio.sleep((weight - self.tokens) / self.rate)


class RestCounters:
    """REST counters of one venue (requests, errors, rate-limited answers, weight)."""

    __slots__ = ("requests", "errors", "rate_limited", "weight", "network_errors")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.rate_limited = 0
        self.weight = 0.0
        self.network_errors = 0

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__slots__}


def _is_dns_failure(e: BaseException) -> bool:
    while e is not None:
        if isinstance(e, OSError) and e.errno in (-2, -3, -5, 8, 11001, 11004):  # EAI_NONAME/AGAIN/NODATA...
            return True
        name = type(e).__name__
        if name in ("gaierror", "ClientConnectorDNSError"):
            return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return False


class RestClient:
    """GET/POST against one venue's REST base URL, metered by a :class:`RateLimit`.

    ``weight_header``/``weight_limit`` name a response header reporting the weight used in
    the current minute (Binance): at 90 % the client waits for the next minute. Answers are
    returned as bytes for typed decoding by the caller, and recorded (with ``tag``) when a
    recorder is attached.
    """

    def __init__(
        self,
        venue: str,
        base_url: str,
        session: Callable[[], aiohttp.ClientSession],
        limit: RateLimit,
        *,
        timeout: float = 10.0,
        recorder: Recorder | None = None,
        weight_header: str | None = None,
        weight_limit: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.limit = limit
        self.timeout = timeout
        self.recorder = recorder
        self.weight_header = weight_header
        self.weight_limit = weight_limit
        self.headers = dict(headers or {})
        self.counters = RestCounters()

    async def get(self, path: str, params: Mapping[str, str | int] | None = None, *, weight: float = 1.0,
                  tag: str | None = None) -> bytes:
        return await self.request("GET", path, params=params, weight=weight, tag=tag)

    async def post(self, path: str, body: Any, *, weight: float = 1.0, tag: str | None = None) -> bytes:
        return await self.request("POST", path, json=body, weight=weight, tag=tag)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        weight: float = 1.0,
        tag: str | None = None,
    ) -> bytes:
        """The raw body of a successful answer. Raises RateLimitedError (after blocking the
        venue for Retry-After), ExchangeError for other HTTP errors, FeedConnectionError /
        NetworkUnavailableError when the host cannot be reached."""
        await self.limit.acquire(weight)
        url = self.base_url + path
        c = self.counters
        c.requests += 1
        c.weight += weight
        try:
            async with self._session().request(
                method, url, params=params, json=json, headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as r:
                body = await r.read()
                status = r.status
                self._usage(r.headers)
                if status in (429, 418) or (status == 403 and b"too frequent" in body.lower()):
                    default = 120.0 if status == 418 else (600.0 if status == 403 else 30.0)
                    wait = parse_retry_after(r.headers.get("Retry-After"), default)
                    self.limit.block_for(wait)
                    c.rate_limited += 1
                    log.warning("%s: HTTP %d on %s, pausing REST for %.1f s", self.venue, status, path, wait)
                    raise RateLimitedError(
                        f"{self.venue}: HTTP {status} on {path}; retry after {wait:.1f} s", retry_after=wait,
                        status=status,
                    )
                if status >= 400:
                    c.errors += 1
                    raise ExchangeError(
                        f"{self.venue}: HTTP {status} on {path}: {body[:200].decode('utf-8', 'replace')}",
                        status=status,
                    )
        except aiohttp.ClientConnectorError as e:
            c.network_errors += 1
            if _is_dns_failure(e):
                raise NetworkUnavailableError(f"{self.venue}: cannot resolve {url.split('/')[2]} (no network?)") from e
            raise FeedConnectionError(f"{self.venue}: cannot connect to {url}: {e}") from e
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            c.network_errors += 1
            raise FeedConnectionError(f"{self.venue}: {method} {url} failed: {type(e).__name__}: {e}") from e
        if self.recorder is not None and tag is not None:
            self.recorder.rest(tag, body)
        return body

    def _usage(self, headers: Mapping[str, str]) -> None:
        """Tighten the bucket from the venue's own usage report."""
        if self.weight_header and self.weight_limit:
            used = headers.get(self.weight_header)
            if used is not None:
                try:
                    u = float(used)
                except ValueError:
                    return
                if u >= 0.9 * self.weight_limit:
                    # Wait for the next minute window.
                    self.limit.block_for(60.0 - (time.time() % 60.0) + 0.5)
        remain = headers.get("x-gate-ratelimit-requests-remain")
        if remain is not None:
            try:
                if float(remain) <= 1:
                    reset = float(headers.get("x-gate-ratelimit-reset-timestamp", "0"))
                    wait = reset / 1000.0 - time.time() if reset > 1e11 else reset - time.time()
                    self.limit.block_for(min(max(wait, 0.5), 60.0) if math.isfinite(wait) else 1.0)
            except ValueError:
                return
