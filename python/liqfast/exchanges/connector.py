"""Connection discipline shared by every venue: reconnect, keepalive, stale detection,
rotation, gap events, REST polling. Venue modules only describe *what* to subscribe and
how their keepalive looks; everything that makes a feed survive for weeks lives here once.

What it does, and why:

* **Reconnect forever** (by default) with exponential backoff, jitter and a cap near 30 s.
  The attempt counter resets only after a connection stayed healthy (data flowing) for
  ``healthy_after`` seconds, so a server that accepts and immediately drops us cannot make
  us hammer it (the "reconnect storm" of several public issue trackers).
* **Two timeouts.** ``heartbeat_timeout``: no frame at all (data, pong, ping) for that long
  means the TCP connection is dead even if the kernel has not noticed (half-open socket).
  ``idle_timeout``: no *data* frame for that long — applied only to sockets that always carry
  data (mark price, tickers), never to liquidation sockets, which are legitimately silent for
  minutes in a calm market.
* **Venue keepalive**: OKX/Bitget text ``ping``, Bybit ``{"op":"ping"}``, Gate
  ``futures.ping``, KuCoin the bullet token's ping interval, Hyperliquid ``{"method":"ping"}``;
  Binance pings us (we answer) and we send protocol pings to elicit pongs.
* **Proactive rotation** before a venue's connection lifetime limit (Binance closes every
  connection after 24 h): a second connection is opened and subscribed, both run for an
  overlap window, events are de-duplicated on their identity, then the old one is closed —
  no gap, no duplicates.
* **Gap events**: when a connection is lost an *ongoing* :class:`~liqfast.events.Gap` is
  emitted at once for every symbol/channel it carried, and the final gap (last frame before
  the loss → the moment the new connection is subscribed) once data flows again.
* **Bounded memory**: frames are decoded as they arrive and handed to a non-blocking sink
  (the hub, whose subscriptions are bounded); aiohttp's reader applies TCP flow control,
  so nothing here queues without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import aiohttp
import msgspec

from ..events import Event, Gap, event_key
from .base import ConnContext, Instrument, Normalizer
from .errors import FeedConnectionError, FeedError, NetworkUnavailableError, RateLimitedError
from .recording import Recorder
from .rest import RateLimit, RestClient, _is_dns_failure, parse_retry_after

__all__ = ["ALL_CHANNELS", "Backoff", "Conn", "Connector", "ConnectorCounters", "Policy", "SocketPlan", "VenueUrls"]

log = logging.getLogger("liqfast.exchanges")

ALL_CHANNELS: tuple[str, ...] = ("trades", "liquidations", "open_interest", "mark_funding")


@dataclass(frozen=True)
class Policy:
    """Timing of the connection discipline. Defaults are production values; tests pass
    small ones (everything is a parameter, nothing sleeps for real minutes)."""

    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    #: each delay is multiplied by uniform(1 - jitter, 1): spreads reconnects of many clients
    jitter: float = 0.5
    #: a connection must stay up (with data) this long before the backoff counter resets
    healthy_after: float = 30.0
    #: None: never give up (default). Otherwise raise FeedConnectionError after that many
    #: consecutive failed attempts.
    max_attempts: int | None = None
    connect_timeout: float = 10.0
    #: no frame of any kind for this long: the socket is dead (half-open) -> reconnect
    heartbeat_timeout: float = 60.0
    #: no data frame for this long on a socket carrying continuous data -> reconnect
    idle_timeout: float | None = 60.0
    #: keepalive period; None: the venue's default
    ping_interval: float | None = None
    #: proactive rotation age; None: the venue's default (Binance 23 h), 0: never
    max_lifetime: float | None = None
    rotation_overlap: float = 5.0
    close_timeout: float = 2.0
    rest_timeout: float = 10.0
    #: REST open-interest polling period (venues without an OI stream)
    oi_poll_interval: float = 10.0
    #: how long start-up waits for instrument metadata before falling back to shipped data
    instruments_timeout: float = 15.0
    #: retry period for instrument metadata after a failure
    instruments_retry: float = 60.0

    def with_(self, **kw: Any) -> Policy:
        return replace(self, **kw)


@dataclass(frozen=True)
class VenueUrls:
    """Base URLs of one venue: WebSocket and REST. Point them at a mirror or at
    :mod:`liqfast.exchanges.fake` on loopback."""

    ws: str
    rest: str


@dataclass
class SocketPlan:
    """One WebSocket connection a connector keeps open."""

    name: str
    channels: tuple[str, ...]
    #: (venue, native symbol) pairs whose data travels on this socket (gap events)
    pairs: tuple[tuple[str, str], ...]
    #: venue-specific subscription arguments, sent by Connector.subscribe
    subscriptions: list[Any] = field(default_factory=list)
    #: appended to the WebSocket base URL
    path: str = ""
    #: carries periodic data (mark price, tickers): the idle timeout applies
    continuous: bool = False


class Backoff:
    """Exponential backoff with jitter: delay n = min(max, initial·factorⁿ)·U(1−jitter, 1)."""

    def __init__(self, policy: Policy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self.attempts = 0

    def next(self) -> float:
        p = self.policy
        base = min(p.backoff_max, p.backoff_initial * p.backoff_factor ** min(self.attempts, 64))
        self.attempts += 1
        return base * (1.0 - p.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempts = 0


class ConnectorCounters:
    """Connection-level counters of one connector (exported as metrics)."""

    __slots__ = (
        "connections",
        "reconnects",
        "connect_failures",
        "disconnects",
        "rotations",
        "stale_closes",
        "idle_closes",
        "gaps",
        "duplicates",
        "pings_sent",
        "subscribe_errors",
        "events",
        "dropped_no_sink",
        "frames_sent",
    )

    def __init__(self) -> None:
        self.connections = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.rotations = 0
        self.stale_closes = 0
        self.idle_closes = 0
        self.gaps = 0
        self.duplicates = 0
        self.pings_sent = 0
        self.subscribe_errors = 0
        self.events = 0
        self.dropped_no_sink = 0
        self.frames_sent = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class Conn:
    """One live WebSocket connection (one generation of a SocketPlan)."""

    def __init__(self, conn_id: int, plan: SocketPlan, ws: aiohttp.ClientWebSocketResponse[Any], url: str) -> None:
        now = time.time()
        self.id = conn_id
        self.plan = plan
        self.ws = ws
        self.url = url
        self.opened = now
        self.last_frame = now
        self.last_data = now
        self.got_data = asyncio.Event()
        self.reason = ""
        self.ctx = ConnContext(conn_id, plan.name, int(now * 1000))
        self.reader: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.ping_interval: float | None = None
        self.ended = 0.0
        #: venue handshake bookkeeping (KuCoin welcome, acks)
        self.welcome = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self.reader is not None and self.reader.done()


class Connector:
    """Base class of every venue connector: subclasses set the class attributes and
    implement :meth:`socket_plans`, :meth:`subscribe` and the REST hooks.

    Run it with ``await connector.run()`` (until cancelled) or ``async with connector:``.
    Events go to ``sink`` (a callable, usually :meth:`Hub.publish`)."""

    #: connector id (for logs, recordings, the registry)
    family: ClassVar[str] = ""
    #: venue ids this connector produces events for
    venues: ClassVar[tuple[str, ...]] = ()
    default_urls: ClassVar[VenueUrls] = VenueUrls("", "")
    supported_channels: ClassVar[frozenset[str]] = frozenset(ALL_CHANNELS)
    #: application-level ping period; None: protocol-level ping frames only
    default_ping_interval: ClassVar[float | None] = 20.0
    #: proactive rotation age (Binance: 24 h hard limit)
    default_max_lifetime: ClassVar[float | None] = None
    #: REST token bucket (weight, per seconds), conservative share of the published budget
    rest_limit: ClassVar[tuple[float, float]] = (10.0, 1.0)
    rest_weight_header: ClassVar[str | None] = None
    rest_weight_limit: ClassVar[float | None] = None
    #: seconds between subscribe messages on one connection (Binance: <= 10 messages/s)
    subscribe_pace: ClassVar[float] = 0.0
    normalizer_cls: ClassVar[type[Normalizer]] = Normalizer
    #: why a channel is unavailable on this venue (logged once, documented)
    unavailable: ClassVar[dict[str, str]] = {}

    _ids = itertools.count(1)

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        channels: Iterable[str] | None = None,
        urls: VenueUrls | None = None,
        policy: Policy | None = None,
        sink: Callable[[Event], None] | None = None,
        session: aiohttp.ClientSession | None = None,
        recorder: Recorder | None = None,
        seed: int | None = None,
        rest_headers: dict[str, str] | None = None,
        all_liquidations: bool = False,
    ) -> None:
        if not symbols:
            from ..errors import InvalidInputError

            raise InvalidInputError(f"{self.family}: no symbols given")
        self.symbols: tuple[str, ...] = tuple(dict.fromkeys(symbols))
        wanted = tuple(channels) if channels is not None else ALL_CHANNELS
        unknown = set(wanted) - set(ALL_CHANNELS)
        if unknown:
            from ..errors import InvalidInputError

            raise InvalidInputError(f"unknown channel(s) {sorted(unknown)}; known: {', '.join(ALL_CHANNELS)}")
        for ch in wanted:
            if ch not in self.supported_channels:
                log.info("%s: %s", self.family, self.unavailable.get(ch, f"channel {ch} not available"))
        self.channels: tuple[str, ...] = tuple(c for c in wanted if c in self.supported_channels)
        self.urls = urls or self.default_urls
        self.policy = policy or Policy()
        self.sink = sink
        self.recorder = recorder
        self.normalizer = self.normalizer_cls()
        # Market-wide liquidation streams (Binance, OKX, Gate, Bitget) carry every symbol:
        # keep only ours unless all_liquidations.
        self.normalizer.symbols = None if all_liquidations else frozenset(self.symbols)
        self.counters = ConnectorCounters()
        self._rng = random.Random(seed)
        self._session = session
        self._own_session = session is None
        cap, per = self.rest_limit
        self.rest = RestClient(
            self.family, self.urls.rest, self._get_session, RateLimit(cap, per), timeout=self.policy.rest_timeout,
            recorder=recorder, weight_header=self.rest_weight_header, weight_limit=self.rest_weight_limit,
            headers=rest_headers,
        )
        self._conns: set[Conn] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._dedup: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._dedup_on = 0  # number of rotations in progress
        self._dedup_until = 0.0
        self._dedup_cap = 200_000
        #: socket name -> "connecting" | "up" | "down: <reason>"
        self.status: dict[str, str] = {}
        #: set once the first connection is subscribed
        self.ready = asyncio.Event()
        self.instruments_loaded = False
        self._running = False

    # -- hooks for venues ---------------------------------------------------------------------

    def socket_plans(self) -> list[SocketPlan]:
        raise NotImplementedError

    async def subscribe(self, conn: Conn) -> None:
        """Send the plan's subscriptions on a fresh connection."""
        raise NotImplementedError

    def ping_message(self, conn: Conn) -> str | None:
        """Application-level keepalive message; None sends a protocol ping frame."""
        return None

    async def ws_url(self, plan: SocketPlan, conn_id: int) -> str:
        """Full URL of a new connection (KuCoin fetches a token first)."""
        return self.urls.ws.rstrip("/") + plan.path

    def ws_headers(self) -> dict[str, str]:
        return {}

    async def load_instruments(self) -> None:
        """Fetch instrument metadata (REST) into the normaliser."""

    def extra_tasks(self) -> list[Callable[[], Any]]:
        """Coroutine functions run alongside the sockets (REST pollers)."""
        return []

    def venue_of(self, symbol: str) -> str:
        """Venue id of a native symbol (connectors covering linear and inverse override)."""
        return self.venues[0]

    async def fetch_tiers(self) -> dict[str, Any]:
        """Live maintenance-margin tier tables of this connector's symbols from the venue's
        public endpoints ({symbol: TierTable}); symbols whose table cannot be fetched are
        skipped with a warning (Binance's endpoints need an API key)."""
        from ..tiers import fetch_table

        out: dict[str, Any] = {}
        for sym in self.symbols:
            venue = self.venue_of(sym)
            try:
                out[sym] = await fetch_table(
                    venue, sym, session=self._get_session(), base_url=self.urls.rest, timeout=self.policy.rest_timeout
                )
            except Exception as e:  # noqa: BLE001 - one table failing must not stop the others
                log.warning("%s: no live tier table for %s: %s", self.family, sym, e)
        return out

    # -- lifecycle ----------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def run(self) -> None:
        """Connect and stream until cancelled. With the default policy this never returns on
        its own: outages are retried forever and reported as gap events."""
        if self._running:
            raise FeedError(f"{self.family}: connector already running")
        self._running = True
        self._get_session()
        try:
            await self._initial_instruments()
            for plan in self.socket_plans():
                self._tasks.append(asyncio.create_task(self._supervise(plan), name=f"{self.family}:{plan.name}"))
            for fn in self.extra_tasks():
                self._tasks.append(asyncio.create_task(fn(), name=f"{self.family}:poll"))
            if not self.instruments_loaded:
                self._tasks.append(asyncio.create_task(self._retry_instruments(), name=f"{self.family}:instruments"))
            # Return (or raise) when any supervisor stops: that only happens on max_attempts.
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop every task and connection and close the HTTP session we own."""
        tasks, self._tasks = self._tasks, []
        try:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for conn in list(self._conns):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._close_conn(conn, "shutdown")
        finally:
            if self._own_session and self._session is not None and not self._session.closed:
                await self._session.close()
            self._running = False

    async def __aenter__(self) -> Connector:
        self._runner = asyncio.create_task(self.run(), name=f"{self.family}:run")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._runner

    # -- instruments --------------------------------------------------------------------------

    async def _initial_instruments(self) -> None:
        try:
            await asyncio.wait_for(self.load_instruments(), self.policy.instruments_timeout)
            self.instruments_loaded = True
        except (FeedError, asyncio.TimeoutError, aiohttp.ClientError, OSError) as e:
            log.warning(
                "%s: instrument metadata unavailable (%s); using shipped contract sizes until it loads",
                self.family, e or type(e).__name__,
            )

    async def _retry_instruments(self) -> None:
        while not self.instruments_loaded:
            await asyncio.sleep(self.policy.instruments_retry)
            try:
                await asyncio.wait_for(self.load_instruments(), self.policy.instruments_timeout)
                self.instruments_loaded = True
                log.info("%s: instrument metadata loaded", self.family)
            except (FeedError, asyncio.TimeoutError, aiohttp.ClientError, OSError) as e:
                log.debug("%s: instrument metadata still unavailable: %s", self.family, e)

    def feed_rest(self, tag: str, body: bytes) -> None:
        """Hand a REST answer to the normaliser and deliver what it produced. It is recorded
        here, with the same receive time the normaliser sees, so replay is exact."""
        now = time.time()
        if self.recorder is not None:
            self.recorder.rest(tag, body, now)
        events = self.normalizer.on_rest(tag, body, int(now * 1000))
        if events:
            self._deliver(events)

    # -- delivery -----------------------------------------------------------------------------

    def _deliver(self, events: list[Event]) -> None:
        if self._dedup_on or self._dedup_until:
            events = self._dedupe(events)
        sink = self.sink
        self.counters.events += len(events)
        if sink is None:
            self.counters.dropped_no_sink += len(events)
            return
        for ev in events:
            sink(ev)

    def _dedupe(self, events: list[Event]) -> list[Event]:
        if not self._dedup_on and time.monotonic() > self._dedup_until:
            self._dedup_until = 0.0
            self._dedup.clear()
            return events
        seen = self._dedup
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, Gap):
                out.append(ev)
                continue
            k = event_key(ev)
            if k in seen:
                self.counters.duplicates += 1
                continue
            seen[k] = None
            if len(seen) > self._dedup_cap:
                seen.popitem(last=False)
            out.append(ev)
        return out

    def _emit_gap(self, plan: SocketPlan, start_ms: int, end_ms: int, reason: str, ongoing: bool) -> None:
        now = int(time.time() * 1000)
        gaps: list[Event] = []
        for venue, symbol in plan.pairs:
            g = Gap(venue, symbol, end_ms, now, start_ms, end_ms, reason, plan.channels, ongoing)
            gaps.append(g)
            if self.recorder is not None:
                self.recorder.gap(g)
        if not ongoing:
            self.counters.gaps += 1
        log.warning(
            "%s/%s: gap %s %.1f s (%s)%s", self.family, plan.name, "since" if ongoing else "of",
            (end_ms - start_ms) / 1000.0, reason, " ongoing" if ongoing else "",
        )
        self._deliver(gaps)

    # -- sockets ------------------------------------------------------------------------------

    def _lifetime(self) -> float | None:
        lt = self.policy.max_lifetime
        if lt is None:
            lt = self.default_max_lifetime
        return lt if lt else None

    async def _supervise(self, plan: SocketPlan) -> None:
        backoff = Backoff(self.policy, self._rng)
        outage_start: int | None = None
        outage_reason = ""
        ongoing_sent = False
        ever = False
        self.status[plan.name] = "connecting"
        while True:
            try:
                conn = await self._connect(plan)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure is retried, none is fatal
                self.counters.connect_failures += 1
                delay = backoff.next()
                if isinstance(e, RateLimitedError):
                    delay = max(delay, e.retry_after)
                mx = self.policy.max_attempts
                if mx is not None and backoff.attempts >= mx:
                    self.status[plan.name] = f"down: {e}"
                    raise FeedConnectionError(f"{self.family}/{plan.name}: giving up after {mx} attempts: {e}") from e
                self.status[plan.name] = f"down: {e}"
                log.warning("%s/%s: %s; retrying in %.1f s (attempt %d)", self.family, plan.name,
                            _describe(e).removeprefix(f"{self.family}: "), delay, backoff.attempts)
                if outage_start is not None and not ongoing_sent:
                    self._emit_gap(plan, outage_start, int(time.time() * 1000), outage_reason, True)
                    ongoing_sent = True
                await asyncio.sleep(delay)
                continue
            if outage_start is not None:
                self._emit_gap(plan, outage_start, int(conn.opened * 1000), outage_reason, False)
                outage_start, ongoing_sent = None, False
            if ever:
                self.counters.reconnects += 1
            ever = True
            self.status[plan.name] = "up"
            self.ready.set()
            conn = await self._hold(plan, conn, backoff)
            # The connection is gone (not by rotation).
            self.counters.disconnects += 1
            outage_reason = conn.reason or "disconnect"
            end = conn.last_data if outage_reason == "idle" else conn.last_frame
            outage_start = int(end * 1000)
            self.status[plan.name] = f"down: {outage_reason}"
            self._emit_gap(plan, outage_start, int(time.time() * 1000), outage_reason, True)
            ongoing_sent = True
            delay = backoff.next()
            log.info("%s/%s: connection lost (%s); reconnecting in %.1f s", self.family, plan.name, outage_reason, delay)
            await asyncio.sleep(delay)

    async def _hold(self, plan: SocketPlan, conn: Conn, backoff: Backoff) -> Conn:
        """Keep ``conn`` (and its successors after rotations) until one is lost; return it."""
        lifetime = self._lifetime()
        healthy = False
        rotate_at = conn.opened + lifetime if lifetime else None
        while True:
            assert conn.reader is not None
            now = time.time()
            waits = [self.policy.healthy_after]
            if rotate_at is not None:
                waits.append(max(0.0, rotate_at - now))
            await asyncio.wait({conn.reader}, timeout=max(0.01, min(waits)))
            if conn.reader.done():
                return conn
            now = time.time()
            if not healthy and conn.got_data.is_set() and now - conn.opened >= self.policy.healthy_after:
                healthy = True
                backoff.reset()
            if rotate_at is not None and now >= rotate_at:
                new = await self._rotate(plan, conn)
                if new is None:
                    if conn.reader.done():
                        return conn
                    rotate_at = time.time() + max(1.0, backoff.next())
                    continue
                conn = new
                healthy = False
                rotate_at = conn.opened + lifetime if lifetime else None

    async def _rotate(self, plan: SocketPlan, old: Conn) -> Conn | None:
        """Open a successor of ``old``, run both for the overlap window (de-duplicated), close
        ``old``. None if the successor could not be opened (``old`` stays)."""
        overlap = self.policy.rotation_overlap
        self._dedup_on += 1
        try:
            try:
                new = await self._connect(plan)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                log.warning("%s/%s: rotation connect failed (%s); keeping the current connection",
                            self.family, plan.name, _describe(e))
                return None
            if old.reader is not None and old.reader.done():
                # The old one died before the new one was ready: that window was not covered.
                reason = old.reason or "disconnect"
                start = old.last_data if reason == "idle" else old.last_frame
                self._emit_gap(plan, int(start * 1000), int(new.opened * 1000), reason, False)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(new.got_data.wait(), overlap)
            if new.reader is not None and new.reader.done():
                return None
            await asyncio.sleep(overlap)
            await self._close_conn(old, "rotation")
            self.counters.rotations += 1
            log.info("%s/%s: rotated connection %d -> %d", self.family, plan.name, old.id, new.id)
            return new
        finally:
            self._dedup_on -= 1
            self._dedup_until = time.monotonic() + max(2.0, overlap)

    async def _connect(self, plan: SocketPlan) -> Conn:
        conn_id = next(self._ids)
        url = await self.ws_url(plan, conn_id)
        p = self.policy
        try:
            ws = await asyncio.wait_for(
                self._get_session().ws_connect(
                    url, autoping=False, decode_text=False, max_msg_size=64 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_close=p.close_timeout), headers=self.ws_headers(),
                ),
                p.connect_timeout,
            )
        except aiohttp.WSServerHandshakeError as e:
            if e.status in (429, 418):
                ra = parse_retry_after(e.headers.get("Retry-After") if e.headers else None,
                                       120.0 if e.status == 418 else 30.0)
                raise RateLimitedError(f"{self.family}: WebSocket handshake HTTP {e.status}", retry_after=ra,
                                       status=e.status) from e
            raise FeedConnectionError(f"{self.family}: WebSocket handshake failed: HTTP {e.status}") from e
        except aiohttp.ClientConnectorError as e:
            if _is_dns_failure(e):
                raise NetworkUnavailableError(f"{self.family}: cannot resolve {e.host} (no network?)") from e
            raise FeedConnectionError(f"{self.family}: cannot connect to {e.host}:{e.port}: {e.os_error}") from e
        except asyncio.TimeoutError as e:
            raise FeedConnectionError(f"{self.family}: connect to {url} timed out after {p.connect_timeout} s") from e
        except aiohttp.ClientError as e:
            raise FeedConnectionError(f"{self.family}: connect to {url} failed: {e}") from e
        conn = Conn(conn_id, plan, ws, url)
        self.counters.connections += 1
        if self.recorder is not None:
            self.recorder.opened(conn_id, plan.name, url)
        conn.reader = asyncio.create_task(self._reader(conn), name=f"{self.family}:{plan.name}:{conn_id}")
        self._conns.add(conn)
        try:
            await asyncio.wait_for(self.subscribe(conn), p.connect_timeout)
        except BaseException as e:
            await self._close_conn(conn, "subscribe failed")
            if isinstance(e, asyncio.CancelledError):
                raise
            if isinstance(e, FeedError):
                raise
            raise FeedConnectionError(f"{self.family}/{plan.name}: subscribing failed: {_describe(e)}") from e
        if conn.closed:
            raise FeedConnectionError(f"{self.family}/{plan.name}: connection closed while subscribing ({conn.reason})")
        conn.tasks.append(asyncio.create_task(self._watchdog(conn)))
        interval = conn.ping_interval or p.ping_interval or self.default_ping_interval
        if interval:
            conn.tasks.append(asyncio.create_task(self._pinger(conn, interval)))
        return conn

    async def send(self, conn: Conn, data: str) -> None:
        """Send a text frame (recorded when recording)."""
        await conn.ws.send_str(data)
        self.counters.frames_sent += 1
        if self.recorder is not None:
            self.recorder.sent(conn.id, data)

    async def subscribe_ops(self, conn: Conn, batch: int, **extra: Callable[[int], str]) -> None:
        """The plan's subscriptions as ``{"op": "subscribe", "args": [...]}`` messages of at
        most ``batch`` args (Bybit, OKX, Bitget); ``extra`` adds fields computed from each
        batch's first index (Bybit's ``req_id``)."""
        subs = conn.plan.subscriptions
        msgs = [{"op": "subscribe", "args": subs[i : i + batch], **{k: f(i) for k, f in extra.items()}}
                for i in range(0, len(subs), batch)]
        await self.send_batched(conn, [msgspec.json.encode(m).decode() for m in msgs])

    async def send_batched(self, conn: Conn, messages: Sequence[str]) -> None:
        """Send subscribe messages paced at ``subscribe_pace`` seconds (venue message-rate
        limits count subscriptions too)."""
        for i, m in enumerate(messages):
            if i and self.subscribe_pace:
                await asyncio.sleep(self.subscribe_pace)
            await self.send(conn, m)

    async def _reader(self, conn: Conn) -> None:
        ws = conn.ws
        on_message = self.normalizer.on_message
        ctx = conn.ctx
        deliver = self._deliver
        rec = self.recorder
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        ping, pong = aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG
        out: list[Event] = []
        clock = time.time
        try:
            while True:
                msg = await ws.receive()
                t = msg.type
                now = clock()
                if t is text or t is binary:
                    data = msg.data
                    conn.last_frame = now
                    if rec is not None:
                        rec.frame(conn.id, now, data)
                    if on_message(data, int(now * 1000), ctx, out):
                        conn.last_data = now
                        if not conn.got_data.is_set():
                            conn.got_data.set()
                    else:
                        self.on_control(conn, data)
                    if out:
                        deliver(out)
                        out = []
                elif t is ping:
                    conn.last_frame = now
                    await ws.pong(msg.data)
                elif t is pong:
                    conn.last_frame = now
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    if not conn.reason:
                        code = ws.close_code
                        conn.reason = f"closed by server (code {code})" if code else "disconnect"
                        if t is aiohttp.WSMsgType.ERROR:
                            conn.reason = f"socket error: {ws.exception()!r}"
                    break
        except (aiohttp.ClientError, ConnectionError, OSError) as e:
            if not conn.reason:
                conn.reason = f"socket error: {type(e).__name__}"
        finally:
            conn.ended = clock()
            for task in conn.tasks:
                task.cancel()
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), self.policy.close_timeout)
            self._conns.discard(conn)
            if rec is not None:
                rec.closed(conn.id, conn.reason or "closed")

    def on_control(self, conn: Conn, data: bytes | str) -> None:
        """Hook for venue handshakes (KuCoin welcome); called for non-data frames."""
        if not conn.welcome.is_set():
            conn.welcome.set()

    async def _watchdog(self, conn: Conn) -> None:
        p = self.policy
        hb = p.heartbeat_timeout
        idle = p.idle_timeout if conn.plan.continuous else None
        check = max(0.02, min(1.0, min(hb, idle or hb) / 4))
        while True:
            await asyncio.sleep(check)
            now = time.time()
            if now - conn.last_frame > hb:
                conn.reason = "stale"
                self.counters.stale_closes += 1
            elif idle is not None and now - conn.last_data > idle:
                conn.reason = "idle"
                self.counters.idle_closes += 1
            else:
                continue
            log.warning("%s/%s: %s socket (no %s for %.1f s); reconnecting", self.family, conn.plan.name,
                        conn.reason, "frame" if conn.reason == "stale" else "data",
                        now - (conn.last_frame if conn.reason == "stale" else conn.last_data))
            await self._abort(conn)
            return

    async def _pinger(self, conn: Conn, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            msg = self.ping_message(conn)
            try:
                if msg is None:
                    await conn.ws.ping()
                else:
                    await conn.ws.send_str(msg)
                self.counters.pings_sent += 1
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                return

    async def _abort(self, conn: Conn) -> None:
        """Drop a connection without waiting long for the peer (it may be half-open): the
        reader is cancelled and closes the socket with the short ``close_timeout``."""
        if conn.reader is not None and not conn.reader.done():
            conn.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.reader

    async def _close_conn(self, conn: Conn, reason: str) -> None:
        if not conn.reason:
            conn.reason = reason
        for task in conn.tasks:
            task.cancel()
        if not conn.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(), self.policy.close_timeout)
        if conn.reader is not None and not conn.reader.done():
            conn.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.reader
        self._conns.discard(conn)

    # -- REST polling helper ------------------------------------------------------------------

    async def poll(self, name: str, interval: float, fn: Callable[[], Any], *,
                   channels: tuple[str, ...] = ()) -> None:
        """Run ``fn`` every ``interval`` s forever; rate limits pause it for Retry-After,
        failures back off (capped) without ever stopping the loop. When ``channels`` is
        given, an outage of the poll longer than two periods is reported like a socket
        outage: an ongoing gap, then the final gap (last success → recovery)."""
        backoff = Backoff(self.policy, self._rng)
        plan = SocketPlan(f"rest:{name}", channels, tuple((self.venue_of(s), s) for s in self.symbols))
        last_ok = time.time()
        failing_since: float | None = None
        ongoing = False
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - pollers never die
                now = time.time()
                if failing_since is None:
                    failing_since = now
                if channels and not ongoing and now - last_ok > 2 * interval:
                    self._emit_gap(plan, int(last_ok * 1000), int(now * 1000), f"{name} unavailable", True)
                    ongoing = True
                if isinstance(e, RateLimitedError):
                    delay = max(e.retry_after, interval)
                else:
                    delay = max(interval, backoff.next())
                    log.warning("%s: %s poll failed (%s); next try in %.1f s", self.family, name, _describe(e), delay)
                await asyncio.sleep(delay)
                continue
            now = time.time()
            if failing_since is not None and channels and (ongoing or now - last_ok > 2 * interval):
                self._emit_gap(plan, int(last_ok * 1000), int(now * 1000), f"{name} unavailable", False)
            failing_since, ongoing, last_ok = None, False, now
            backoff.reset()
            await asyncio.sleep(interval)

    # -- stats --------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """All counters of this connector (connection, decoding, REST), for metrics."""
        return {
            "family": self.family,
            "status": dict(self.status),
            "connection": self.counters.as_dict(),
            "decode": self.normalizer.counters.as_dict(),
            "rest": self.rest.counters.as_dict(),
            "last_decode_error": self.normalizer.last_error,
        }

    def recording_meta(self) -> dict[str, Any]:
        """Header fields a recording of this connector needs to be replayed."""
        return {
            "symbols": list(self.symbols), "channels": list(self.channels), "ws": self.urls.ws,
            "rest": self.urls.rest, "all_liquidations": self.normalizer.symbols is None,
        }

    def attach_recorder(self, recorder: Recorder | None) -> None:
        """Record this connector's traffic (frames, REST answers, gaps) from now on."""
        self.recorder = recorder
        self.rest.recorder = recorder

    def set_instruments(self, instruments: Iterable[Instrument]) -> None:
        for inst in instruments:
            self.normalizer.instruments[inst.symbol] = inst


def _describe(e: BaseException) -> str:
    if isinstance(e, FeedError):
        return str(e)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
