"""Recording raw exchange traffic and reading it back.

``liqfast record`` stores what the venue actually sent — every WebSocket frame byte for byte,
every REST answer the normaliser consumed (instrument metadata, polled open interest), the
connection opens/closes and the gaps the connector detected — each with its receive time.
``liqfast replay`` then feeds those bytes through the *same* normalisers, so a recording
reproduces exactly the events (and bars) the live run produced, and a decoder change can be
checked against real traffic.

File format (``*.lfr.gz``): a gzip stream containing the magic line ``LQFREC1\\n``, one JSON
header line (venue family, symbols, channels, URLs, start time, liqfast version), then
records of ``<kind:1 byte><conn:u16><recv_ns:i64><len:u32><payload>``, little endian. Binary
framing keeps payloads exact (no escaping) and reading fast; gzip keeps files small and
readable with standard tools (``zcat | strings``). Kinds:

* ``o`` connection opened (payload JSON ``{"socket", "url"}``), ``c`` closed (``{"reason"}``)
* ``r`` text frame received, ``b`` binary frame received, ``s`` frame sent
* ``h`` REST answer: ``<tag>\\n<body>`` (tag as in :meth:`Normalizer.on_rest`)
* ``g`` a :class:`~liqfast.events.Gap` the connector emitted (JSON)
* ``e`` clean end of the recording

A file cut short by a crash reads up to its last complete record.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

from ..events import Gap, encode_event
from .errors import RecordingError

__all__ = ["MAGIC", "Record", "Recorder", "read_recording", "recording_header"]

log = logging.getLogger("liqfast.exchanges.recording")

MAGIC: Final = b"LQFREC1\n"
_HEAD: Final = struct.Struct("<cHqI")


class Record(NamedTuple):
    """One record of a recording: kind, connection id, receive time (ns), payload."""

    kind: str
    conn_id: int
    recv_ns: int
    payload: bytes


def _recv_ns(recv_s: float) -> int:
    """Receive time in ns, inside the millisecond the live path stamped on the frame's events
    (``int(recv_s * 1000)``): ``int(recv_s * 1e9)`` alone rounds differently now and then
    (a float ulp is 256 ns here), and replay would then give an event another ``recv_ts_ms``."""
    ms_ns = int(recv_s * 1000) * 1_000_000
    return min(max(int(recv_s * 1e9), ms_ns), ms_ns + 999_999)


class Recorder:
    """Append-only writer of one venue family's traffic, rotated every ``rotate_s`` seconds
    (``None``: one file). Writes are synchronous and cheap (zlib on the event loop thread
    handles tens of MB/s); data is flushed every ``flush_s`` seconds so a crash loses little.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        family: str,
        *,
        meta: dict[str, Any] | None = None,
        rotate_s: float | None = 3600.0,
        flush_s: float = 5.0,
        compresslevel: int = 5,
        prefix: str = "",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.family = family
        self.meta = dict(meta or {})
        self.rotate_s = rotate_s
        self.flush_s = flush_s
        self.compresslevel = compresslevel
        self.prefix = prefix
        self.records = 0
        self.bytes = 0
        self.files: list[Path] = []
        self._gz: gzip.GzipFile | None = None
        self._raw: io.BufferedWriter | None = None
        self._opened = 0.0
        self._flushed = 0.0
        self._closed = False

    # -- writing ------------------------------------------------------------------------------

    def _open(self, now: float) -> gzip.GzipFile:
        stamp = _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{self.prefix}{self.family}-{stamp}Z.lfr.gz"
        path = self.directory / name
        n = 1
        while path.exists():
            path = self.directory / f"{self.prefix}{self.family}-{stamp}Z.{n}.lfr.gz"
            n += 1
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in _close_file
        gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=self.compresslevel, mtime=0)
        from .. import __version__

        header = {
            "format": "liqfast-recording",
            "version": 1,
            "family": self.family,
            "started_ms": int(now * 1000),
            "liqfast": __version__,
            **self.meta,
        }
        gz.write(MAGIC)
        gz.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
        self._gz = gz
        self._opened = self._flushed = now
        self.files.append(path)
        log.info("recording %s to %s", self.family, path)
        return gz

    def _close_file(self) -> None:
        if self._gz is not None:
            self._gz.write(_HEAD.pack(b"e", 0, time.time_ns(), 0))
            self._gz.close()
            self._gz = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def _write(self, kind: bytes, conn: int, recv_s: float, payload: bytes) -> None:
        if self._closed:
            return
        gz = self._gz
        if gz is None:
            gz = self._open(recv_s)
        elif self.rotate_s is not None and recv_s - self._opened >= self.rotate_s:
            self._close_file()
            gz = self._open(recv_s)
        gz.write(_HEAD.pack(kind, conn & 0xFFFF, _recv_ns(recv_s), len(payload)))
        gz.write(payload)
        self.records += 1
        self.bytes += len(payload)
        if recv_s - self._flushed >= self.flush_s:
            gz.flush(zlib.Z_SYNC_FLUSH)
            self._flushed = recv_s

    def frame(self, conn: int, recv_s: float, data: bytes | str) -> None:
        if isinstance(data, str):
            self._write(b"r", conn, recv_s, data.encode())
        else:
            self._write(b"r", conn, recv_s, data)

    def binary(self, conn: int, recv_s: float, data: bytes) -> None:
        self._write(b"b", conn, recv_s, data)

    def sent(self, conn: int, data: bytes | str) -> None:
        self._write(b"s", conn, time.time(), data.encode() if isinstance(data, str) else data)

    def opened(self, conn: int, socket: str, url: str) -> None:
        self._write(b"o", conn, time.time(), json.dumps({"socket": socket, "url": url}).encode())

    def closed(self, conn: int, reason: str) -> None:
        self._write(b"c", conn, time.time(), json.dumps({"reason": reason}).encode())

    def rest(self, tag: str, body: bytes, recv_s: float | None = None) -> None:
        self._write(b"h", 0, time.time() if recv_s is None else recv_s, tag.encode() + b"\n" + body)

    def gap(self, gap: Gap) -> None:
        self._write(b"g", 0, gap.recv_ts_ms / 1000.0, encode_event(gap))

    def close(self) -> None:
        self._close_file()
        self._closed = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading ----------------------------------------------------------------------------------


def _open_stream(path: Path) -> tuple[dict[str, Any], gzip.GzipFile]:
    try:
        gz = gzip.open(path, "rb")
        magic = gz.read(len(MAGIC))
    except (OSError, EOFError) as e:
        raise RecordingError(f"{path}: not a gzip file ({e})") from None
    if magic != MAGIC:
        gz.close()
        raise RecordingError(f"{path}: not a liqfast recording (bad magic {magic[:8]!r})")
    line = gz.readline()
    try:
        header: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError as e:
        gz.close()
        raise RecordingError(f"{path}: corrupt header ({e})") from None
    if header.get("format") != "liqfast-recording" or "family" not in header:
        gz.close()
        raise RecordingError(f"{path}: header lacks format/family")
    return header, gz


def recording_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a recording (family, symbols, channels, start time...)."""
    header, gz = _open_stream(Path(path))
    gz.close()
    return header


def read_recording(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Iterator[Record]]:
    """Header and record iterator of a recording. A truncated tail (crash) ends the
    iteration with a warning instead of an error: everything complete before it is valid."""
    p = Path(path)
    header, gz = _open_stream(p)

    def records() -> Iterator[Record]:
        unpack = _HEAD.unpack
        size = _HEAD.size
        read = gz.read
        try:
            while True:
                try:
                    head = read(size)
                except (EOFError, OSError, zlib.error):
                    log.warning("%s: truncated recording (compressed stream ends early)", p)
                    return
                if len(head) < size:
                    if head:
                        log.warning("%s: truncated record header at the end", p)
                    return
                kind, conn, recv_ns, n = unpack(head)
                try:
                    payload = read(n)
                except (EOFError, OSError, zlib.error):
                    log.warning("%s: truncated recording (compressed stream ends early)", p)
                    return
                if len(payload) < n:
                    log.warning("%s: truncated record payload at the end", p)
                    return
                k = kind.decode("ascii", "replace")
                if k == "e":
                    continue
                yield Record(k, conn, recv_ns, payload)
        finally:
            gz.close()

    return header, records()
