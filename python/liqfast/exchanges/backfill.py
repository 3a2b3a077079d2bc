"""History into the same event stream: Binance public data files and OKX/Bybit REST history.

A live map needs history to start from: open interest to size the book, trades (or at least
klines with taker volume) for the entry profile. This module turns the venues' history
sources into the same :mod:`liqfast.events` the live connectors emit, plus
:class:`~liqfast.events.Candle` for klines (which :class:`~liqfast.events.BarBuilder`
merges into bars), in time order, so the model can be warmed up by the exact code path it
runs on live.

* **Binance** (``binance-usdm``, ``binance-coinm``) — daily zip CSV files from
  data.binance.vision: ``klines`` (OHLC, volume, taker-buy volume), ``metrics`` (open
  interest every 5 min) and ``aggTrades``. A day without a file (404) is skipped and counted;
  the published ``.CHECKSUM`` (SHA-256) is verified when present. If ``aggTrades`` are
  requested, klines are not (the trades carry the same volume; both would count it twice).
  ``aggTrades`` files (millions of rows a day) are parsed in Rust (``_core.binance_agg_trades``),
  with the csv-module parser as the reference for anything it declines.
  Binance's liquidation snapshots were removed from the public data set, so there is no
  liquidation history for Binance.
* **OKX** (``okx-linear``/``okx-inverse``) — ``open-interest-history`` (rubik, 5m, latest
  ~1,440 rows), ``history-candles``, and ``liquidation-orders`` (recent filled ones) over
  REST, paged backwards within the rate limit.
* **Bybit** (``bybit-linear``/``bybit-inverse``) — ``/v5/market/open-interest``
  (``singleOpenInterest`` when present) and ``/v5/market/kline``.

Every download goes through :class:`~liqfast.exchanges.rest.RestClient` (rate limits,
Retry-After). Progress is reported on stderr with :class:`~liqfast.progress.Progress`.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as _dt
import hashlib
import heapq
import io
import logging
import math
import zipfile
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp
import msgspec

from ..events import Candle, Event, Liquidation, OpenInterest, Trade
from ..progress import Progress
from .. import _core
from .base import FAST_PATH, Instrument, fallback_instrument
from .errors import BackfillError, ExchangeError, FeedError, RateLimitedError
from .rest import RateLimit, RestClient

__all__ = ["BackfillStats", "Item", "backfill", "parse_interval"]

log = logging.getLogger("liqfast.exchanges.backfill")

Item = Event | Candle

VISION = "https://data.binance.vision"
_INTERVALS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
              "2h": 7_200_000, "4h": 14_400_000, "1d": 86_400_000}


def parse_interval(text: str) -> int:
    """Milliseconds of "5m", "1h", "1d"... (or plain seconds)."""
    if text in _INTERVALS:
        return _INTERVALS[text]
    try:
        unit = text[-1]
        n = float(text[:-1])
        mult = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[unit]
        return int(n * mult)
    except (KeyError, ValueError, IndexError):
        from ..errors import InvalidInputError

        raise InvalidInputError(f"cannot read interval {text!r} (use 1m, 5m, 1h, 1d ...)") from None


@dataclass
class BackfillStats:
    """What a backfill did: requests, files, missing days (404), items by kind, checksums."""

    requests: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)
    items: dict[str, int] = field(default_factory=dict)
    checksum_verified: int = 0

    def count(self, kind: str, n: int = 1) -> None:
        self.items[kind] = self.items.get(kind, 0) + n


def _days(start: _dt.date, end: _dt.date) -> list[_dt.date]:
    if end < start:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"end date {end} is before start date {start}")
    return [start + _dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _ms(d: _dt.date) -> int:
    return int(_dt.datetime(d.year, d.month, d.day, tzinfo=_dt.UTC).timestamp() * 1000)


def _csv_file(data: bytes) -> IO[bytes]:
    """The single CSV inside a data.binance.vision zip, opened for reading (bytes)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise BackfillError(f"not a zip file: {e}") from None
    names = [n for n in zf.namelist() if n.endswith(".csv")]
    if not names:
        raise BackfillError("zip contains no CSV")
    return zf.open(names[0])


#: Bytes of CSV handed to the Rust parser at a time (bounded memory for multi-GB days).
_CSV_BLOCK = 1 << 22


def _csv_rows(data: bytes) -> Iterator[list[str]]:
    """Rows of the single CSV inside a data.binance.vision zip, without a header row."""
    with _csv_file(data) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        first = True
        for row in reader:
            if not row:
                continue
            if first:
                first = False
                c = row[0].strip()
                if not c[:1].isdigit():
                    continue  # header row (newer files have one, older ones do not)
            yield row


def _vision_time(text: str) -> int:
    t = text.strip()
    if t.isdigit():
        v = int(t)
        return v // 1000 if v > 10**14 else v  # some 2025+ files use microseconds
    return int(_dt.datetime.fromisoformat(t).replace(tzinfo=_dt.UTC).timestamp() * 1000)


class _Binance:
    def __init__(self, venue: str, symbol: str, rest: RestClient, stats: BackfillStats, interval: str,
                 verify: bool) -> None:
        self.venue = venue
        self.symbol = symbol
        self.rest = rest
        self.stats = stats
        self.interval = interval
        self.interval_ms = parse_interval(interval)
        self.verify = verify
        self.market = "um" if venue == "binance-usdm" else "cm"
        inst = fallback_instrument(venue, symbol)
        self.inst = inst or Instrument(venue, symbol, "linear", 1.0)

    def url(self, kind: str, day: _dt.date) -> str:
        d = day.isoformat()
        s = self.symbol
        if kind == "klines":
            return f"/data/futures/{self.market}/daily/klines/{s}/{self.interval}/{s}-{self.interval}-{d}.zip"
        return f"/data/futures/{self.market}/daily/{kind}/{s}/{s}-{kind}-{d}.zip"

    async def fetch(self, kind: str, day: _dt.date) -> bytes | None:
        path = self.url(kind, day)
        for attempt in range(6):
            self.stats.requests += 1
            try:
                data = await self.rest.get(path)
                break
            except ExchangeError as e:
                if e.status == 404:
                    self.stats.missing.append(path)
                    log.warning("backfill: no %s file for %s %s (404)", kind, self.symbol, day)
                    return None
                raise
            except RateLimitedError as e:
                await asyncio.sleep(e.retry_after)
            except FeedError:
                if attempt == 5:
                    raise
                await asyncio.sleep(min(30.0, 2.0**attempt))
        else:
            raise BackfillError(f"{path}: still rate limited after 6 attempts")
        self.stats.files += 1
        if self.verify:
            try:
                self.stats.requests += 1
                chk = await self.rest.get(path + ".CHECKSUM")
            except ExchangeError:
                chk = b""
            if chk:
                want = chk.split()[0].decode("ascii", "replace").lower()
                got = hashlib.sha256(data).hexdigest()
                if want != got:
                    raise BackfillError(f"checksum mismatch for {path}: expected {want}, got {got}")
                self.stats.checksum_verified += 1
        return data

    def klines(self, data: bytes) -> Iterator[tuple[int, Item]]:
        cs = self.inst.contract_size
        inverse = self.inst.kind == "inverse"
        for r in _csv_rows(data):
            ts = _vision_time(r[0])
            o, h, lo, c, vol = float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])
            if inverse:
                # COIN-M: volume in contracts, column 7 the base-coin volume, column 10 taker-buy base
                usd, base, taker = vol * cs, float(r[7]), float(r[10])
            else:
                base, usd, taker = vol, float(r[7]), float(r[9])
            yield ts + self.interval_ms - 1, Candle(self.venue, self.symbol, ts, self.interval_ms, o, h, lo, c, base, usd,
                                                    taker, int(float(r[8])))

    def metrics(self, data: bytes) -> Iterator[tuple[int, Item]]:
        cs = self.inst.contract_size
        inverse = self.inst.kind == "inverse"
        for r in _csv_rows(data):
            ts = _vision_time(r[0])
            oi, val = float(r[2]), float(r[3])
            if inverse:
                # COIN-M metrics: sum_open_interest in contracts, the value column in coin.
                usd, base = oi * cs, val
            else:
                base, usd = oi, val
            price = usd / base if base > 0 else math.nan
            yield ts, OpenInterest(self.venue, self.symbol, ts, ts, base, usd, price, "history")

    def agg_trades(self, data: bytes) -> Iterator[tuple[int, Item]]:
        """Trades of an ``aggTrades`` file: parsed in Rust block by block
        (``_core.binance_agg_trades``); if the fast parser declines a block (a spelling or
        shape it does not handle), :meth:`agg_trades_reference` takes over from the first row
        not yielded yet, so the trades are the reference's either way."""
        done = 0
        if FAST_PATH:
            declined_after = yield from self._agg_trades_fast(data)
            if declined_after is None:
                return
            done = declined_after
        rest = self.agg_trades_reference(data)
        for _ in range(done):  # one trade per data row
            next(rest, None)
        yield from rest

    def _agg_trades_fast(self, data: bytes) -> Generator[tuple[int, Item], None, int | None]:
        """Yield the trades; return None when the whole file was parsed, else how many
        trades were yielded before a block was declined."""
        cs = self.inst.contract_size
        inverse = self.inst.kind == "inverse"
        n = 0
        with _csv_file(data) as raw:
            pending, rest = True, b""
            while True:
                chunk = raw.read(_CSV_BLOCK)
                buf = rest + chunk
                cut = buf.rfind(b"\n") + 1 if chunk else len(buf)
                block, rest = buf[:cut], buf[cut:]
                if block:
                    got = _core.binance_agg_trades(block, pending, self.venue, self.symbol, inverse, cs)
                    if got is None:
                        return n
                    pairs, pending = got
                    yield from pairs
                    n += len(pairs)
                if not chunk:
                    return None

    def agg_trades_reference(self, data: bytes) -> Iterator[tuple[int, Item]]:
        """The reference parser of an ``aggTrades`` file (csv module, Python numbers)."""
        cs = self.inst.contract_size
        inverse = self.inst.kind == "inverse"
        venue, sym = self.venue, self.symbol
        for r in _csv_rows(data):
            p, q, ts = float(r[1]), float(r[2]), int(r[5])
            if inverse:
                usd = q * cs
                base = usd / p
            else:
                base, usd = q, q * p
            maker = r[6].strip().lower() == "true"
            yield ts, Trade(venue, sym, ts, ts, p, base, usd, "sell" if maker else "buy", int(r[0]))


async def _binance(venue: str, symbol: str, start: _dt.date, end: _dt.date, kinds: Sequence[str], rest: RestClient,
                   stats: BackfillStats, interval: str, verify: bool, progress: Progress) -> AsyncIterator[Item]:
    b = _Binance(venue, symbol, rest, stats, interval, verify)
    wanted = [k for k in kinds if k in ("klines", "metrics", "aggTrades")]
    if "aggTrades" in wanted and "klines" in wanted:
        log.info("backfill: aggTrades requested, skipping klines (they would double-count volume)")
        wanted.remove("klines")
    parsers: dict[str, Callable[[bytes], Iterator[tuple[int, Item]]]] = {
        "klines": b.klines, "metrics": b.metrics, "aggTrades": b.agg_trades,
    }
    for day in _days(start, end):
        streams = []
        for kind in wanted:
            data = await b.fetch(kind, day)
            progress.update(1, postfix=f"{day} {kind}")
            if data is not None:
                streams.append(((ts, i, item) for i, (ts, item) in enumerate(parsers[kind](data))))
        for _ts, _i, item in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
            name = type(item).__name__
            stats.count(name)
            yield item
            if stats.items[name] % 50_000 == 0:
                await asyncio.sleep(0)  # let other tasks run during a large file


# -- OKX --------------------------------------------------------------------------------------


async def _pages(fetch: Callable[[int], Any], start_ms: int, end_ms: int, ts_of: Callable[[Any], int],
                 progress: Progress, what: str) -> list[Any]:
    """Page backwards from ``end_ms`` until ``start_ms`` (rows newest first)."""
    rows: list[Any] = []
    cursor = end_ms
    while cursor >= start_ms:
        page = await fetch(cursor)
        progress.update(1, postfix=what)
        if not page:
            break
        oldest = min(ts_of(r) for r in page)
        rows.extend(r for r in page if start_ms <= ts_of(r) <= end_ms)
        if oldest >= cursor:
            break
        cursor = oldest - 1
    return rows


class _OkxAnswer(msgspec.Struct):
    code: str
    data: list[Any]
    msg: str = ""


async def _okx(venue: str, symbol: str, start_ms: int, end_ms: int, kinds: Sequence[str], rest: RestClient,
               stats: BackfillStats, interval: str, progress: Progress) -> list[tuple[int, Item]]:
    dec = msgspec.json.Decoder(_OkxAnswer)
    inst = fallback_instrument(venue, symbol)
    if inst is None:
        body = await rest.get("/api/v5/public/instruments", {"instType": "SWAP", "instId": symbol})
        rows = dec.decode(body).data
        if not rows:
            raise BackfillError(f"okx: unknown instrument {symbol}")
        r0 = rows[0]
        inst = Instrument(venue, symbol, "inverse" if r0.get("ctType") == "inverse" else "linear", float(r0["ctVal"]))
    iv = parse_interval(interval)
    bar = {60_000: "1m", 300_000: "5m", 900_000: "15m", 3_600_000: "1H", 14_400_000: "4H", 86_400_000: "1D"}.get(iv)
    out: list[tuple[int, Item]] = []

    def data(body: bytes) -> list[Any]:
        ans = dec.decode(body)
        if ans.code != "0":
            raise ExchangeError(f"okx: {ans.code} {ans.msg}")
        return ans.data

    if "oi" in kinds:
        async def oi_page(cursor: int) -> list[Any]:
            stats.requests += 1
            return data(await rest.get("/api/v5/rubik/stat/contracts/open-interest-history", {
                "instId": symbol, "period": bar or "5m", "end": cursor, "begin": start_ms, "limit": 100}))

        for r in await _pages(oi_page, start_ms, end_ms, lambda r: int(r[0]), progress, "oi"):
            ts, oi_ccy, oi_usd = int(r[0]), float(r[2]), float(r[3])
            out.append((ts, OpenInterest(venue, symbol, ts, ts, oi_ccy, oi_usd, oi_usd / oi_ccy if oi_ccy else math.nan,
                                         "history")))
            stats.count("OpenInterest")
    if "klines" in kinds:
        if bar is None:
            raise BackfillError(f"okx: no candle size for interval {interval}")

        async def candle_page(cursor: int) -> list[Any]:
            stats.requests += 1
            return data(await rest.get("/api/v5/market/history-candles", {
                "instId": symbol, "bar": bar, "after": cursor + 1, "limit": 100}))

        for r in await _pages(candle_page, start_ms, end_ms, lambda r: int(r[0]), progress, "klines"):
            ts = int(r[0])
            o, h, lo, c = float(r[1]), float(r[2]), float(r[3]), float(r[4])
            vol_contracts, vol_ccy = float(r[5]), float(r[6])
            if inst.kind == "linear":
                base, usd = vol_ccy, float(r[7]) if len(r) > 7 else vol_ccy * c
            else:
                usd, base = vol_contracts * inst.contract_size, vol_ccy
            out.append((ts + iv - 1, Candle(venue, symbol, ts, iv, o, h, lo, c, base, usd)))
            stats.count("Candle")
    if "liquidations" in kinds:
        family = symbol.removesuffix("-SWAP")

        async def liq_page(cursor: int) -> list[Any]:
            stats.requests += 1
            groups = data(await rest.get("/api/v5/public/liquidation-orders", {
                "instType": "SWAP", "instFamily": family, "state": "filled", "after": cursor + 1, "limit": 100}))
            return [d | {"instId": g.get("instId", symbol)} for g in groups for d in g.get("details", [])]

        for d in await _pages(liq_page, start_ms, end_ms, lambda d: int(d["ts"]), progress, "liquidations"):
            if d["instId"] != symbol:
                continue
            ts, px, sz = int(d["ts"]), float(d["bkPx"]), float(d["sz"])
            pos = d.get("posSide")
            if pos not in ("long", "short"):
                pos = "long" if d.get("side") == "sell" else "short"
            base, usd = inst.base_usd(sz, px)
            out.append((ts, Liquidation(venue, symbol, ts, ts, pos, px, base, usd, "partial", "bankruptcy")))
            stats.count("Liquidation")
    return out


class _BybitAnswer(msgspec.Struct):
    retCode: int
    result: dict[str, Any]
    retMsg: str = ""


async def _bybit(venue: str, symbol: str, start_ms: int, end_ms: int, kinds: Sequence[str], rest: RestClient,
                 stats: BackfillStats, interval: str, progress: Progress) -> list[tuple[int, Item]]:
    dec = msgspec.json.Decoder(_BybitAnswer)
    category = "inverse" if venue == "bybit-inverse" else "linear"
    iv = parse_interval(interval)
    out: list[tuple[int, Item]] = []

    def result(body: bytes) -> dict[str, Any]:
        ans = dec.decode(body)
        if ans.retCode != 0:
            raise ExchangeError(f"bybit: {ans.retCode} {ans.retMsg}")
        return ans.result

    closes: dict[int, float] = {}
    if "klines" in kinds:
        code = {60_000: "1", 300_000: "5", 900_000: "15", 3_600_000: "60", 14_400_000: "240", 86_400_000: "D"}.get(iv)
        if code is None:
            raise BackfillError(f"bybit: no kline interval for {interval}")

        async def kpage(cursor: int) -> list[Any]:
            stats.requests += 1
            res = result(await rest.get("/v5/market/kline", {
                "category": category, "symbol": symbol, "interval": code, "start": start_ms, "end": cursor,
                "limit": 1000}))
            rows: list[Any] = res.get("list", [])
            return rows

        for r in await _pages(kpage, start_ms, end_ms, lambda r: int(r[0]), progress, "klines"):
            ts = int(r[0])
            o, h, lo, c, vol, turnover = (float(x) for x in r[1:7])
            closes[ts] = c
            if category == "linear":
                base, usd = vol, turnover
            else:
                usd, base = vol, turnover
            out.append((ts + iv - 1, Candle(venue, symbol, ts, iv, o, h, lo, c, base, usd)))
            stats.count("Candle")
    if "oi" in kinds:
        itv = {300_000: "5min", 900_000: "15min", 1_800_000: "30min", 3_600_000: "1h", 14_400_000: "4h",
               86_400_000: "1d"}.get(iv, "5min")

        async def opage(cursor: int) -> list[Any]:
            stats.requests += 1
            res = result(await rest.get("/v5/market/open-interest", {
                "category": category, "symbol": symbol, "intervalTime": itv, "startTime": start_ms, "endTime": cursor,
                "limit": 200}))
            rows: list[Any] = res.get("list", [])
            return rows

        for r in await _pages(opage, start_ms, end_ms, lambda r: int(r["timestamp"]), progress, "oi"):
            ts = int(r["timestamp"])
            single = r.get("singleOpenInterest")
            oi = float(single) if single not in (None, "") else float(r["openInterest"])
            px = closes.get(ts - ts % iv, math.nan)
            if category == "linear":
                base, usd = oi, oi * px
            else:
                usd, base = oi, oi / px if px > 0 else math.nan
            out.append((ts, OpenInterest(venue, symbol, ts, ts, base, usd, px, "history")))
            stats.count("OpenInterest")
    return out


async def backfill(
    venue: str,
    symbol: str,
    start: _dt.date,
    end: _dt.date,
    kinds: Sequence[str],
    *,
    interval: str = "5m",
    base_url: str | None = None,
    session: aiohttp.ClientSession | None = None,
    stats: BackfillStats | None = None,
    progress: bool = True,
    verify_checksums: bool = True,
    timeout: float = 60.0,
) -> AsyncIterator[Item]:
    """History of ``symbol`` on ``venue`` for the UTC days ``start``..``end`` (inclusive), as
    events and candles in time order. ``kinds``: Binance ``klines``, ``metrics``,
    ``aggTrades``; OKX ``oi``, ``klines``, ``liquidations``; Bybit ``oi``, ``klines``.
    ``base_url`` replaces the venue's host (data.binance.vision for Binance)."""
    st = stats if stats is not None else BackfillStats()
    own = session is None
    sess = session or aiohttp.ClientSession()
    start_ms, end_ms = _ms(start), _ms(end) + 86_400_000 - 1
    try:
        if venue in ("binance-usdm", "binance-coinm"):
            rest = RestClient(venue, base_url or VISION, lambda: sess, RateLimit(20, 1.0), timeout=timeout)
            n = len(_days(start, end)) * len([k for k in kinds if k in ("klines", "metrics", "aggTrades")])
            with Progress(n, f"{venue} {symbol}", unit="files", enabled=progress) as prog:
                async for item in _binance(venue, symbol, start, end, kinds, rest, st, interval, verify_checksums, prog):
                    yield item
            return
        if venue.startswith("okx"):
            rest = RestClient(venue, base_url or "https://www.okx.com", lambda: sess, RateLimit(4, 2.0), timeout=timeout)
            with Progress(None, f"{venue} {symbol}", unit="pages", enabled=progress) as prog:
                items = await _retrying(lambda: _okx(venue, symbol, start_ms, end_ms, kinds, rest, st, interval, prog))
        elif venue.startswith("bybit"):
            rest = RestClient(venue, base_url or "https://api.bybit.com", lambda: sess, RateLimit(20, 1.0),
                              timeout=timeout)
            with Progress(None, f"{venue} {symbol}", unit="pages", enabled=progress) as prog:
                items = await _retrying(lambda: _bybit(venue, symbol, start_ms, end_ms, kinds, rest, st, interval, prog))
        else:
            raise BackfillError(f"no history source for {venue} (supported: binance-usdm, binance-coinm, okx-*, bybit-*)")
        items.sort(key=lambda x: x[0])
        for _ts, item in items:
            yield item
    finally:
        if own:
            await sess.close()


async def _retrying(fn: Callable[[], Any], attempts: int = 5) -> Any:
    """Retry a whole history download on rate limits (after Retry-After) and transient
    network errors; other errors propagate."""
    for i in range(attempts):
        try:
            return await fn()
        except RateLimitedError as e:
            await asyncio.sleep(e.retry_after)
        except FeedError as e:
            if isinstance(e, ExchangeError | BackfillError) or i == attempts - 1:
                raise
            await asyncio.sleep(min(30.0, 2.0**i))
    raise BackfillError("history download kept failing")
