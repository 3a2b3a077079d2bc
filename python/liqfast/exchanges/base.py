"""Pure, network-free pieces shared by every venue: instruments and unit conversion, the
normaliser base class (wire bytes in, :mod:`liqfast.events` out) and counters.

The normaliser is deliberately separate from the connection machinery
(:mod:`liqfast.exchanges.connector`): the exact same object decodes live frames, recorded
frames (``liqfast replay``) and benchmark corpora, which is what makes replay deterministic
and the benchmark honest. It never raises on bad input — a frame that does not decode is
counted (``decode_errors``), logged (rate-limited) and dropped; one bad frame must never take
a feed down.

Venues with ``fast_path = True`` decode their hot channels in Rust
(``liqfast._core.FrameDecoder``, see :meth:`Normalizer.use_fast_path`): the instance's
``on_message`` is then the decoder's, and the class's ``on_message`` — the msgspec code below
and in each venue module — is the reference it falls back to for every frame it declines.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import msgspec

from ..events import Event

if TYPE_CHECKING:
    from .._core import FrameDecoder

__all__ = [
    "ConnContext",
    "Counters",
    "Instrument",
    "Normalizer",
    "fallback_instrument",
    "native_symbol",
]

log = logging.getLogger("liqfast.exchanges")

#: What a malformed frame can raise while being decoded and normalised: counted, never raised.
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, KeyError, IndexError,
                  AttributeError, OverflowError, ZeroDivisionError)

Kind = Literal["linear", "inverse"]

#: Whether normalisers start with their Rust fast path on (``LIQFAST_FAST_DECODE=0`` turns it
#: off process-wide, e.g. to compare against the reference path).
FAST_PATH: Final = os.environ.get("LIQFAST_FAST_DECODE", "1").strip().lower() not in ("0", "false", "no", "off")


class Instrument(msgspec.Struct, frozen=True):
    """What the unit conversion needs about one contract.

    ``contract_size`` is base coin per contract for linear contracts (OKX ``ctVal`` 0.01 BTC,
    Gate ``quanto_multiplier``, KuCoin ``multiplier``) and USD per contract for inverse ones
    (Binance COIN-M 100 for BTC, OKX ``ctVal`` 100, Bybit/Gate/KuCoin 1)."""

    venue: str
    symbol: str
    kind: Kind
    contract_size: float
    base: str = ""
    quote: str = ""
    source: str = "exchange"

    def base_usd(self, qty: float, price: float) -> tuple[float, float]:
        """(base units, USD) of ``qty`` contracts at ``price``."""
        if self.kind == "linear":
            b = qty * self.contract_size
            return b, b * price
        usd = qty * self.contract_size
        return (usd / price if price > 0 else math.nan), usd


@functools.cache
def _shipped() -> dict[str, Any]:
    raw = (resources.files("liqfast") / "data" / "instruments.json").read_text()
    data: dict[str, Any] = json.loads(raw)
    return data


_VENUE_KIND: Final[dict[str, Kind]] = {
    "binance-usdm": "linear",
    "binance-coinm": "inverse",
    "bybit-linear": "linear",
    "bybit-inverse": "inverse",
    "okx-linear": "linear",
    "okx-inverse": "inverse",
    "bitget-linear": "linear",
    "gate-linear": "linear",
    "gate-inverse": "inverse",
    "kucoin-linear": "linear",
    "kucoin-inverse": "inverse",
    "hyperliquid": "linear",
}

# Venues whose quantity unit does not depend on the instrument (base coin, or 1 USD contracts).
_UNIFORM_SIZE: Final[dict[str, float]] = {
    "binance-usdm": 1.0,
    "bybit-linear": 1.0,
    "bybit-inverse": 1.0,
    "bitget-linear": 1.0,
    "gate-inverse": 1.0,
    "kucoin-inverse": 1.0,
    "hyperliquid": 1.0,
}


def fallback_instrument(venue: str, symbol: str) -> Instrument | None:
    """Metadata when the venue's instrument endpoint was not (yet) reachable: the shipped
    ``instruments.json`` entry, else the venue's uniform unit, else None (OKX, Gate linear and
    KuCoin linear sizes differ per contract: no safe guess)."""
    kind = _VENUE_KIND.get(venue)
    if kind is None:
        return None
    meta = _shipped().get(venue, {}).get("symbols", {}).get(symbol)
    if meta is not None:
        return Instrument(venue, symbol, kind, float(meta["contract_size"]), str(meta.get("base", "")), source="shipped")
    if venue == "binance-coinm":
        # COIN-M: 100 USD for BTC contracts, 10 USD for the others.
        base = symbol.split("USD")[0]
        return Instrument(venue, symbol, kind, 100.0 if base == "BTC" else 10.0, base, source="convention")
    size = _UNIFORM_SIZE.get(venue)
    if size is None:
        return None
    return Instrument(venue, symbol, kind, size, source="convention")


_SUFFIX: Final[dict[str, tuple[str, str]]] = {
    # venue: (native suffix, how a coin becomes native: "{c}" coin, "{k}" KuCoin's XBT alias)
    "binance-usdm": ("USDT", "{c}USDT"),
    "binance-coinm": ("USD_PERP", "{c}USD_PERP"),
    "bybit-linear": ("USDT", "{c}USDT"),
    "bybit-inverse": ("USD", "{c}USD"),
    "okx-linear": ("-USDT-SWAP", "{c}-USDT-SWAP"),
    "okx-inverse": ("-USD-SWAP", "{c}-USD-SWAP"),
    "bitget-linear": ("USDT", "{c}USDT"),
    "gate-linear": ("_USDT", "{c}_USDT"),
    "gate-inverse": ("_USD", "{c}_USD"),
    "kucoin-linear": ("USDTM", "{k}USDTM"),
    "kucoin-inverse": ("USDM", "{k}USDM"),
    "hyperliquid": ("", "{c}"),
}


def native_symbol(venue: str, coin: str) -> str:
    """Native symbol of ``coin``'s main perpetual on ``venue`` ("BTC" → "BTCUSDT",
    "BTC-USDT-SWAP", "XBTUSDTM", ...). A symbol already in native form passes through."""
    try:
        suffix, pattern = _SUFFIX[venue]
    except KeyError:
        from ..errors import UnknownVenueError

        raise UnknownVenueError(f"unknown venue {venue!r}") from None
    if suffix and coin.upper().endswith(suffix):
        return coin
    if venue == "hyperliquid":
        return coin if coin.startswith("k") else coin.upper()
    c = coin.upper()
    return pattern.format(c=c, k="XBT" if c == "BTC" else c)


class Counters:
    """Plain integer counters (cheap to bump on the hot path); exported to Prometheus by the
    serving layer via :meth:`as_dict`. Every frame is exactly one of data, control (pong,
    ack, welcome, venue error), unhandled (a well-formed message of a channel we do not use)
    or decode error; ``data_messages`` is derived so the hot path bumps only two counters.

    With the Rust fast path on (see :meth:`Normalizer.use_fast_path`), the frames the Rust
    decoder handles are counted in the decoder itself (no attribute writes per frame):
    ``messages`` and ``events`` add its counts to the Python ones (``_messages``,
    ``_events``, which the reference path bumps)."""

    __slots__ = ("_messages", "control_messages", "_events", "decode_errors", "unhandled", "missing_metadata", "_fast")

    FIELDS: ClassVar[tuple[str, ...]] = (
        "messages", "control_messages", "events", "decode_errors", "unhandled", "missing_metadata",
    )

    def __init__(self) -> None:
        self._messages = 0
        self.control_messages = 0
        self._events = 0
        self.decode_errors = 0
        self.unhandled = 0
        self.missing_metadata = 0
        #: the fast decoder counting the frames it handles (None: all counted here)
        self._fast: Any = None

    @property
    def messages(self) -> int:
        f = self._fast
        return self._messages if f is None else self._messages + f.messages

    @messages.setter
    def messages(self, value: int) -> None:
        f = self._fast
        self._messages = value if f is None else value - f.messages

    @property
    def events(self) -> int:
        f = self._fast
        return self._events if f is None else self._events + f.events

    @events.setter
    def events(self, value: int) -> None:
        f = self._fast
        self._events = value if f is None else value - f.events

    @property
    def data_messages(self) -> int:
        return self.messages - self.control_messages - self.unhandled - self.decode_errors

    def as_dict(self) -> dict[str, int]:
        d = {k: getattr(self, k) for k in self.FIELDS}
        d["data_messages"] = self.data_messages
        return d


class ConnContext:
    """Per-connection state a normaliser may need (which subscriptions the connection
    acknowledged, snapshot-then-delta bookkeeping...). A fresh one per socket generation, so
    a reconnect or a rotation never mixes two connections' deltas."""

    __slots__ = ("conn_id", "socket", "state", "opened_ms")

    def __init__(self, conn_id: int = 0, socket: str = "", opened_ms: int = 0) -> None:
        self.conn_id = conn_id
        self.socket = socket
        self.state: dict[str, Any] = {}
        self.opened_ms = opened_ms


class _ErrorLog:
    """Log the first few decode errors per minute with a preview of the frame, then only a
    count: a venue that starts sending garbage must not flood the log."""

    def __init__(self, name: str, per_minute: int = 5) -> None:
        self.name = name
        self.per_minute = per_minute
        self._window = 0.0
        self._n = 0
        self._suppressed = 0
        self.last_error = ""

    def __call__(self, what: str, exc: BaseException, data: bytes | str) -> None:
        preview = data[:160] if isinstance(data, str) else data[:160].decode("utf-8", "replace")
        self.last_error = f"{what}: {type(exc).__name__}: {exc} | {preview!r}"
        now = time.monotonic()
        if now - self._window > 60.0:
            if self._suppressed:
                log.warning("%s: %d more decode errors suppressed in the last minute", self.name, self._suppressed)
            self._window, self._n, self._suppressed = now, 0, 0
        self._n += 1
        if self._n <= self.per_minute:
            log.warning("%s: dropped undecodable %s", self.name, self.last_error)
        else:
            self._suppressed += 1


class Normalizer:
    """Decode one venue's frames into normalised events. Subclasses implement
    :meth:`_on_message` (and :meth:`on_rest` for polled/REST data) and keep whatever state
    the venue needs (instrument metadata, last mark price, ticker snapshots)."""

    #: Primary venue id (venues whose one socket covers linear and inverse map per symbol).
    venue: ClassVar[str] = ""
    #: Completeness code of this venue's liquidation feed (see events.COMPLETENESS_NOTES).
    liquidation_completeness: ClassVar[str] = "none"
    #: Whether ``liqfast._core.FrameDecoder`` knows this venue's hot channels (then it is on
    #: by default; see :meth:`use_fast_path`).
    fast_path: ClassVar[bool] = False

    def __init__(self, instruments: dict[str, Instrument] | None = None) -> None:
        self.instruments: dict[str, Instrument] = dict(instruments or {})
        self.counters = Counters()
        self._errlog = _ErrorLog(self.venue or type(self).__name__)
        #: Last mark price per symbol (for OI/inverse conversions); NaN until known.
        self.marks: dict[str, float] = {}
        #: Last trade price per symbol (fallback reference price).
        self.last_prices: dict[str, float] = {}
        #: Optional restriction to the symbols a connector subscribed (global liquidation
        #: streams carry every symbol of the venue).
        self.symbols: frozenset[str] | None = None
        #: The Rust decoder of this venue's hot channels, when on (see :meth:`use_fast_path`).
        self.fast: FrameDecoder | None = None
        if self.fast_path and FAST_PATH:
            self.use_fast_path(True)

    # -- public API ---------------------------------------------------------------------------

    def use_fast_path(self, enabled: bool = True) -> bool:
        """Switch the Rust fast path of this normaliser on or off; returns whether it is on.

        On, :meth:`on_message` *is* the Rust decoder's (``self.fast.on_message``, bound as an
        instance attribute: no Python frame per message). It decodes and normalises the
        venue's hot channels (trades, liquidations) exactly like this class does, emitting the
        same :mod:`liqfast.events` objects, and hands every other frame — other channels,
        control frames, garbage, unknown instruments — to the class's own ``on_message``, the
        reference implementation, which also counts decode errors. Off (or for venues without
        a fast path), the reference handles everything. The events are identical either way
        (``tests/ingest/test_fastpath.py``)."""
        if enabled and self.fast is None and self.fast_path:
            from ..errors import UnknownVenueError

            try:
                from .._core import FrameDecoder

                # the decoder holds the owner weakly and the reference unbound: no cycle
                dec = FrameDecoder(self, self.venue, type(self).on_message)
            except (ImportError, UnknownVenueError) as e:  # an older build, or a venue it does not know
                log.warning("%s: no fast decoder (%s); using the reference normaliser", self.venue, e)
                return False
            self.fast = dec
            self.counters._fast = dec
            self.on_message = dec.on_message  # type: ignore[method-assign]
        elif not enabled and self.fast is not None:
            c, dec = self.counters, self.fast
            c._messages += dec.messages
            c._events += dec.events
            c._fast = None
            self.fast = None
            del self.on_message
        return self.fast is not None

    def feed(self, data: bytes | str, recv_ms: int | None = None, ctx: ConnContext | None = None) -> list[Event]:
        """Decode one frame; returns the events it produced (possibly none)."""
        out: list[Event] = []
        self.on_message(data, int(time.time() * 1000) if recv_ms is None else recv_ms, ctx or ConnContext(), out)
        return out

    def feed_many(self, frames: list[bytes], recv_ms: list[int] | int, ctx: ConnContext | None = None) -> list[Event]:
        """Decode many frames in one call (replay, backfill, bursts): the events of every
        frame, in frame order, exactly as :meth:`on_message` frame by frame would give them.
        ``recv_ms`` is one receive time for all frames or one per frame. With the fast path
        the loop runs in Rust (no Python call per frame)."""
        out: list[Event] = []
        ctx = ctx or ConnContext()
        if self.fast is not None:
            self.fast.feed_many(frames, recv_ms, ctx, out)
            return out
        recvs = [recv_ms] * len(frames) if isinstance(recv_ms, int) else recv_ms
        if len(recvs) != len(frames):
            from ..errors import InvalidInputError

            raise InvalidInputError(f"{len(frames)} frames but {len(recvs)} receive times")
        on_message = self.on_message
        for f, r in zip(frames, recvs):
            on_message(f, r, ctx, out)
        return out

    def on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        """Decode one frame into ``out``. Returns True if it was a *data* frame (counts for the
        idle timeout), False for control frames (pong, ack, welcome, errors), frames of
        channels we do not use, and undecodable frames. Never raises.

        This is the reference implementation; with the fast path on, the instance's
        ``on_message`` is the Rust decoder's, which calls this for the frames it declines."""
        c = self.counters
        c._messages += 1
        n = len(out)
        try:
            is_data = self._on_message(data, recv_ms, ctx, out)
        except _DECODE_ERRORS as e:
            del out[n:]
            c.decode_errors += 1
            self._errlog("frame", e, data)
            return False
        c._events += len(out) - n
        return is_data

    def _emit_decoded(self, emit: Callable[[], object], data: bytes | str, out: list[Event]) -> bool:
        """Count a data frame whose typed decode already succeeded while ``emit()`` appends
        its events to ``out`` — or, if normalising raises (a zero price on an inverse
        contract...), drop them and count a decode error, as :meth:`on_message` does."""
        c = self.counters
        c._messages += 1
        n = len(out)
        try:
            emit()
        except _DECODE_ERRORS as e:
            del out[n:]
            c.decode_errors += 1
            self._errlog("frame", e, data)
            return False
        c._events += len(out) - n
        return True

    def _whole_frame(self, data: bytes | str, recv_ms: int, out: list[Event],
                     routes: tuple[tuple[bytes, Callable[[bytes], Any], str], ...]) -> bool | None:
        """Decode a frame in one pass when it starts with one of ``routes``' prefixes (a
        typed decoder of the whole frame, then the named method ``emit(frame.data, recv_ms,
        out)``; named, not bound, so a normaliser holds no cycle through itself). None when
        no route takes it or its decoder rejects it: the caller takes the general route."""
        if type(data) is not bytes:
            return None
        for prefix, decode, emit in routes:
            if data.startswith(prefix):
                try:
                    f = decode(data)
                except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                    return None
                return self._emit_decoded(lambda: getattr(self, emit)(f.data, recv_ms, out), data, out)
        return None

    def _decode_error(self, e: BaseException, data: bytes | str) -> bool:
        self.counters.decode_errors += 1
        self._errlog("frame", e, data)
        return False

    def on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        """Feed a REST answer (instruments, polled open interest...). ``tag`` names what it
        answers, e.g. ``"instruments"`` or ``"oi:BTCUSDT"``. Never raises."""
        try:
            return self._on_rest(tag, body, recv_ms)
        except _DECODE_ERRORS as e:
            self.counters.decode_errors += 1
            self._errlog(f"REST {tag}", e, body)
            return []

    @property
    def last_error(self) -> str:
        return self._errlog.last_error

    def instrument(self, symbol: str, venue: str | None = None) -> Instrument | None:
        inst = self.instruments.get(symbol)
        if inst is None:
            inst = fallback_instrument(venue or self.venue, symbol)
            if inst is not None:
                self.instruments[symbol] = inst
        return inst

    def ref_price(self, symbol: str) -> float:
        """Mark price if known, else last trade price, else NaN."""
        m = self.marks.get(symbol)
        if m is not None:
            return m
        return self.last_prices.get(symbol, math.nan)

    # -- for subclasses -----------------------------------------------------------------------

    def _on_message(self, data: bytes | str, recv_ms: int, ctx: ConnContext, out: list[Event]) -> bool:
        raise NotImplementedError

    def _on_rest(self, tag: str, body: bytes, recv_ms: int) -> list[Event]:
        self.counters.unhandled += 1
        return []

    def _control(self) -> bool:
        """A control frame (pong, ack, welcome, venue error message)."""
        self.counters.control_messages += 1
        return False

    def _unhandled(self) -> bool:
        """A well-formed message of a kind we do not use (another channel): counted, not an
        error."""
        self.counters.unhandled += 1
        return False

    def _skip_symbol(self, symbol: str) -> bool:
        s = self.symbols
        return s is not None and symbol not in s


def ms(ts: int | float) -> int:
    """Epoch milliseconds from seconds, milliseconds, microseconds or nanoseconds (venues use
    all four), by magnitude. Integer inputs use integer arithmetic (no float rounding of ns)."""
    if isinstance(ts, int):
        a = abs(ts)
        if a < 10**11:
            return ts * 1000
        if a < 10**14:
            return ts
        if a < 10**17:
            return ts // 1000
        return ts // 1_000_000
    t = float(ts)
    if t < 1e11:
        return int(t * 1000)
    if t < 1e14:
        return int(t)
    if t < 1e17:
        return int(t / 1000)
    return int(t / 1_000_000)


OnEvents = Callable[[list[Event]], None]
