"""Persistence of the serving layer: heatmap columns, bars (candles and realized liquidation
totals), realized liquidation events, gaps and model checkpoints.

:class:`Store` is the interface the server uses; :class:`SQLiteStore` is the embedded
default (one file, WAL journal, ``synchronous=NORMAL``: a killed process loses nothing that
was committed, a power cut at most the last transactions). A server store (Postgres,
ClickHouse, QuestDB) implements the same protocol.

Columns are the model's live maps after a bar, stored on a fixed *lattice* of price buckets
(bucket k covers ``[k·step, (k+1)·step)``; the step is fixed per symbol when the store is
created) as ``(k0, float32 array (venues, leverage bands, 2 sides, n))``, trimmed to their
non-zero extent and zlib-compressed. :meth:`Store.thin` keeps what the heatmap windows need
(the last column of every resolution interval of each window, for as long as that window
reaches back), so a year of history stays a few thousand columns per symbol.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["BarRow", "Column", "LiqRow", "SQLiteStore", "Store"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Column:
    """The map after the bar starting at ``ts`` on lattice buckets ``k0 .. k0+n``;
    ``data[v, b, s, i]`` = USD of venue v, leverage band b, side s (0 long, 1 short)."""

    ts: int
    k0: int
    data: F32

    @property
    def n(self) -> int:
        return int(self.data.shape[-1])

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


#: (venue, ts, open, high, low, close, volume_usd, oi_usd, taker_net_base, liq_long_usd,
#: liq_short_usd, liq_count, gap, completeness, revision)
BarRow = tuple[str, int, float, float, float, float, float, float, float, float, float, int, bool, str, int]
#: (venue, ts, side (+1 long / -1 short position), price, usd)
LiqRow = tuple[str, int, int, float, float]

HOUR_MS = 3_600_000


class Store(Protocol):
    """What the server needs from a store. Methods are synchronous and thread-safe; the
    server calls the heavy ones (checkpoints, thinning) from a worker thread."""

    def meta_get(self, key: str) -> str | None: ...
    def meta_set(self, key: str, value: str) -> None: ...
    def put_column(self, symbol: str, col: Column) -> None: ...
    def column_times(self, symbol: str) -> npt.NDArray[np.int64]: ...
    def get_columns(self, symbol: str, ts: Sequence[int], shape: tuple[int, int, int]) -> dict[int, Column]: ...
    def put_bars(self, symbol: str, rows: Sequence[BarRow]) -> None: ...
    def bars(self, symbol: str, venues: Sequence[str], start: int, end: int, hourly: bool = False) -> dict[str, npt.NDArray[np.float64]]: ...
    def bars_after(self, symbol: str, venue: str, ts: int) -> list[BarRow]: ...
    def put_liquidations(self, symbol: str, rows: Sequence[LiqRow]) -> None: ...
    def liquidations(self, symbol: str, venues: Sequence[str], start: int, end: int, limit: int) -> list[LiqRow]: ...
    def put_gap(self, symbol: str, venue: str, start: int, end: int, reason: str) -> None: ...
    def gaps(self, symbol: str, venues: Sequence[str], start: int, end: int) -> list[tuple[str, int, int, str]]: ...
    def put_checkpoint(self, symbol: str, ts: int, data: bytes) -> None: ...
    def checkpoint(self, symbol: str) -> tuple[int, bytes] | None: ...
    def thin(self, symbol: str, keep: npt.NDArray[np.int64], older_than: int) -> int: ...
    def prune(self, before_bars: int, before_liqs: int) -> None: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS columns (
    symbol TEXT NOT NULL, ts INTEGER NOT NULL, k0 INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (symbol, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bars (
    symbol TEXT NOT NULL, venue TEXT NOT NULL, ts INTEGER NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume_usd REAL, oi_usd REAL, taker_net REAL,
    liq_long REAL, liq_short REAL, liq_count INTEGER, gap INTEGER, completeness TEXT, revision INTEGER,
    PRIMARY KEY (symbol, venue, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bars_hourly (
    symbol TEXT NOT NULL, venue TEXT NOT NULL, ts INTEGER NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume_usd REAL, liq_long REAL, liq_short REAL,
    PRIMARY KEY (symbol, venue, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS liquidations (
    symbol TEXT NOT NULL, venue TEXT NOT NULL, ts INTEGER NOT NULL, side INTEGER NOT NULL,
    price REAL NOT NULL, usd REAL NOT NULL);
CREATE INDEX IF NOT EXISTS liquidations_ts ON liquidations (symbol, ts);
CREATE TABLE IF NOT EXISTS gaps (
    symbol TEXT NOT NULL, venue TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, reason TEXT,
    PRIMARY KEY (symbol, venue, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (symbol TEXT PRIMARY KEY, ts INTEGER NOT NULL, data BLOB NOT NULL);
"""

_HOURLY = """
INSERT OR REPLACE INTO bars_hourly
SELECT :s, :v, :a,
  (SELECT open FROM bars WHERE symbol=:s AND venue=:v AND ts>=:a AND ts<:b ORDER BY ts LIMIT 1),
  max(high), min(low),
  (SELECT close FROM bars WHERE symbol=:s AND venue=:v AND ts>=:a AND ts<:b ORDER BY ts DESC LIMIT 1),
  sum(volume_usd), sum(liq_long), sum(liq_short)
FROM bars WHERE symbol=:s AND venue=:v AND ts>=:a AND ts<:b
HAVING count(*) > 0
"""

_BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume_usd", "liq_long", "liq_short")


class SQLiteStore:
    """The embedded store (see the module docstring). ``path=":memory:"`` keeps everything in
    memory (tests, throw-away demos)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    # -- meta ---------------------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- columns ------------------------------------------------------------------------------

    def put_column(self, symbol: str, col: Column) -> None:
        blob = zlib.compress(np.ascontiguousarray(col.data, dtype="<f4").tobytes(), 1)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO columns VALUES (?, ?, ?, ?, ?)", (symbol, col.ts, col.k0, col.n, blob))

    def column_times(self, symbol: str) -> npt.NDArray[np.int64]:
        with self._lock:
            rows = self._db.execute("SELECT ts FROM columns WHERE symbol=? ORDER BY ts", (symbol,)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def get_columns(self, symbol: str, ts: Sequence[int], shape: tuple[int, int, int]) -> dict[int, Column]:
        out: dict[int, Column] = {}
        want = list(ts)
        with self._lock:
            for i in range(0, len(want), 500):
                chunk = want[i:i + 500]
                q = f"SELECT ts, k0, n, data FROM columns WHERE symbol=? AND ts IN ({','.join('?' * len(chunk))})"
                rows = self._db.execute(q, (symbol, *chunk)).fetchall()
                for t, k0, n, blob in rows:
                    data = np.frombuffer(zlib.decompress(blob), dtype="<f4").reshape(*shape, int(n))
                    out[int(t)] = Column(int(t), int(k0), data)
        return out

    def thin(self, symbol: str, keep: npt.NDArray[np.int64], older_than: int) -> int:
        """Delete columns older than ``older_than`` whose time is not in ``keep``."""
        with self._lock:
            rows = self._db.execute("SELECT ts FROM columns WHERE symbol=? AND ts<?", (symbol, older_than)).fetchall()
            kept = set(int(x) for x in keep)
            drop = [(symbol, int(r[0])) for r in rows if int(r[0]) not in kept]
            if drop:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM columns WHERE symbol=? AND ts=?", drop)
                self._db.execute("COMMIT")
        return len(drop)

    # -- bars ---------------------------------------------------------------------------------

    def put_bars(self, symbol: str, rows: Sequence[BarRow]) -> None:
        if not rows:
            return
        hours = sorted({(r[0], r[1] - r[1] % HOUR_MS) for r in rows})
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (symbol, venue, ts) DO UPDATE SET open=excluded.open, high=excluded.high, "
                    "low=excluded.low, close=excluded.close, volume_usd=excluded.volume_usd, oi_usd=excluded.oi_usd, "
                    "taker_net=excluded.taker_net, liq_long=excluded.liq_long, liq_short=excluded.liq_short, "
                    "liq_count=excluded.liq_count, gap=excluded.gap, completeness=excluded.completeness, "
                    "revision=excluded.revision WHERE excluded.revision >= bars.revision",
                    [(symbol, *r[:12], int(r[12]), r[13], r[14]) for r in rows],
                )
                for venue, h in hours:
                    self._db.execute(_HOURLY, {"s": symbol, "v": venue, "a": h, "b": h + HOUR_MS})
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def bars(self, symbol: str, venues: Sequence[str], start: int, end: int, hourly: bool = False) -> dict[str, npt.NDArray[np.float64]]:
        """Bars of ``venues`` in ``[start, end)`` as columns (``venue`` index into ``venues``)."""
        table = "bars_hourly" if hourly else "bars"
        cols = ", ".join(_BAR_FIELDS)
        q = (f"SELECT venue, {cols} FROM {table} WHERE symbol=? AND venue IN ({','.join('?' * len(venues))}) "
             "AND ts>=? AND ts<? ORDER BY ts")
        with self._lock:
            rows = self._db.execute(q, (symbol, *venues, start, end)).fetchall()
        index = {v: i for i, v in enumerate(venues)}
        arr = np.array([(index[r[0]], *[np.nan if x is None else x for x in r[1:]]) for r in rows],
                       dtype=np.float64).reshape(len(rows), 1 + len(_BAR_FIELDS))
        out = {"venue": arr[:, 0]}
        for j, name in enumerate(_BAR_FIELDS):
            out[name] = arr[:, j + 1]
        return out

    def bars_after(self, symbol: str, venue: str, ts: int) -> list[BarRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT venue, ts, open, high, low, close, volume_usd, oi_usd, taker_net, liq_long, liq_short, liq_count, "
                "gap, completeness, revision FROM bars WHERE symbol=? AND venue=? AND ts>? ORDER BY ts", (symbol, venue, ts),
            ).fetchall()
        return [(r[0], int(r[1]), *[np.nan if x is None else float(x) for x in r[2:11]], int(r[11]), bool(r[12]), str(r[13]),
                 int(r[14])) for r in rows]

    # -- realized liquidations, gaps -----------------------------------------------------------

    def put_liquidations(self, symbol: str, rows: Sequence[LiqRow]) -> None:
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO liquidations VALUES (?, ?, ?, ?, ?, ?)", [(symbol, *r) for r in rows])
            self._db.execute("COMMIT")

    def liquidations(self, symbol: str, venues: Sequence[str], start: int, end: int, limit: int) -> list[LiqRow]:
        """The newest ``limit`` events in ``[start, end)``, oldest first."""
        q = (f"SELECT venue, ts, side, price, usd FROM liquidations WHERE symbol=? AND ts>=? AND ts<? "
             f"AND venue IN ({','.join('?' * len(venues))}) ORDER BY ts DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(q, (symbol, start, end, *venues, limit)).fetchall()
        return [(str(r[0]), int(r[1]), int(r[2]), float(r[3]), float(r[4])) for r in reversed(rows)]

    def put_gap(self, symbol: str, venue: str, start: int, end: int, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO gaps VALUES (?, ?, ?, ?, ?) ON CONFLICT (symbol, venue, start) DO UPDATE SET "
                "end=max(end, excluded.end), reason=excluded.reason", (symbol, venue, start, end, reason),
            )

    def gaps(self, symbol: str, venues: Sequence[str], start: int, end: int) -> list[tuple[str, int, int, str]]:
        q = (f"SELECT venue, start, end, reason FROM gaps WHERE symbol=? AND end>=? AND start<? "
             f"AND venue IN ({','.join('?' * len(venues))}) ORDER BY start LIMIT 1000")
        with self._lock:
            rows = self._db.execute(q, (symbol, start, end, *venues)).fetchall()
        return [(str(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in rows]

    # -- checkpoints --------------------------------------------------------------------------

    def put_checkpoint(self, symbol: str, ts: int, data: bytes) -> None:
        blob = zlib.compress(data, 1)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)", (symbol, ts, blob))

    def checkpoint(self, symbol: str) -> tuple[int, bytes] | None:
        with self._lock:
            row = self._db.execute("SELECT ts, data FROM checkpoints WHERE symbol=?", (symbol,)).fetchone()
        if row is None:
            return None
        return int(row[0]), zlib.decompress(row[1])

    # -- retention ----------------------------------------------------------------------------

    def prune(self, before_bars: int, before_liqs: int) -> None:
        """Drop base bars (the hourly aggregates stay) and liquidation events older than the
        given times."""
        with self._lock:
            self._db.execute("DELETE FROM bars WHERE ts<?", (before_bars,))
            self._db.execute("DELETE FROM liquidations WHERE ts<?", (before_liqs,))
            self._db.execute("DELETE FROM gaps WHERE end<?", (before_liqs,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def keep_times(ts: npt.NDArray[np.int64], levels: Iterable[tuple[int, int]], latest: int) -> npt.NDArray[np.int64]:
    """Column times to keep: for each (resolution, reach) level, the last column of every
    resolution interval that starts within ``reach`` (plus one interval) of ``latest``."""
    keep: list[npt.NDArray[np.int64]] = [ts[-1:]] if len(ts) else []
    for res, reach in levels:
        sel = ts[ts >= latest - reach - res]
        if not len(sel):
            continue
        bucket = sel // res
        last = np.r_[bucket[1:] != bucket[:-1], True]
        keep.append(sel[last])
    return np.unique(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
