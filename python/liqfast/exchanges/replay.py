"""Deterministic replay of recordings through the live normalisers.

Records of several files (several venues, or one venue's hourly files) are merged by
receive time, each frame is decoded by a fresh normaliser of its connector family with the
recorded receive timestamp, REST answers are fed where they were recorded, and recorded gaps
are re-emitted. Nothing reads the clock: replaying the same files always yields the same
events, and the same bars (:func:`replay_bars`). A hole *between* two files of the same
family (the recorder was not running) becomes a gap event with ``reason="recording"``.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from ..events import Bar, BarSet, Event, Gap, decode_event
from .base import ConnContext, Normalizer
from .recording import Record, read_recording
from .registry import normalizer_for

__all__ = ["ReplayStats", "replay", "replay_bars"]

log = logging.getLogger("liqfast.exchanges.replay")


class ReplayStats:
    """Counts of a replay and the normalisers it used (their decode counters)."""

    def __init__(self) -> None:
        self.files = 0
        self.records = 0
        self.frames = 0
        self.events = 0
        self.gaps = 0
        self.normalizers: dict[str, Normalizer] = {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files, "records": self.records, "frames": self.frames, "events": self.events,
            "gaps": self.gaps,
            "decode": {f: n.counters.as_dict() for f, n in self.normalizers.items()},
        }


def replay(
    paths: Iterable[str | os.PathLike[str]],
    *,
    stats: ReplayStats | None = None,
    file_gap_ms: int = 5_000,
) -> Iterator[Event]:
    """Events of the recordings in ``paths``, in receive-time order."""
    st = stats if stats is not None else ReplayStats()
    streams: list[Iterator[tuple[int, int, int, Record]]] = []
    headers: list[dict[str, Any]] = []
    for i, p in enumerate(paths):
        header, records = read_recording(p)
        headers.append(header)
        st.files += 1
        family = str(header["family"])
        if family not in st.normalizers:
            st.normalizers[family] = normalizer_for(family)
            syms = header.get("symbols")
            if syms and not header.get("all_liquidations"):
                st.normalizers[family].symbols = frozenset(syms)

        def keyed(idx: int, recs: Iterator[Record]) -> Iterator[tuple[int, int, int, Record]]:
            for seq, r in enumerate(recs):
                yield (r.recv_ns, idx, seq, r)

        streams.append(keyed(i, records))

    contexts: dict[tuple[int, int], ConnContext] = {}
    # family -> (file index, last recv_ns) to detect holes between consecutive files
    last_seen: dict[str, tuple[int, int]] = {}
    for recv_ns, idx, _seq, rec in heapq.merge(*streams):
        st.records += 1
        header = headers[idx]
        family = str(header["family"])
        norm = st.normalizers[family]
        recv_ms = recv_ns // 1_000_000
        prev = last_seen.get(family)
        if prev is not None and prev[0] != idx and recv_ns - prev[1] > file_gap_ms * 1_000_000:
            for sym in header.get("symbols", []):
                venue = _venue_for(norm, sym)
                g = Gap(venue, sym, recv_ms, recv_ms, prev[1] // 1_000_000, recv_ms, "recording",
                        tuple(header.get("channels", ())))
                st.gaps += 1
                st.events += 1
                yield g
        last_seen[family] = (idx, recv_ns)
        kind = rec.kind
        if kind == "r" or kind == "b":
            st.frames += 1
            ctx = contexts.get((idx, rec.conn_id))
            if ctx is None:
                ctx = contexts[(idx, rec.conn_id)] = ConnContext(rec.conn_id, "", recv_ms)
            out: list[Event] = []
            norm.on_message(rec.payload, recv_ms, ctx, out)
            st.events += len(out)
            yield from out
        elif kind == "h":
            tag, _, body = rec.payload.partition(b"\n")
            evs = norm.on_rest(tag.decode(), body, recv_ms)
            st.events += len(evs)
            yield from evs
        elif kind == "g":
            g2 = decode_event(rec.payload)
            st.gaps += 1
            st.events += 1
            yield g2
        elif kind == "o":
            info = json.loads(rec.payload or b"{}")
            contexts[(idx, rec.conn_id)] = ConnContext(rec.conn_id, str(info.get("socket", "")), recv_ms)
        elif kind == "c":
            contexts.pop((idx, rec.conn_id), None)


def _venue_for(norm: Normalizer, symbol: str) -> str:
    fn = getattr(norm, "venue_of", None)
    if callable(fn):
        v = fn(symbol)
        if isinstance(v, str):
            return v
    return norm.venue


def replay_bars(
    paths: Iterable[str | os.PathLike[str]],
    *,
    interval_ms: int = 300_000,
    grace_ms: int = 2_000,
    stats: ReplayStats | None = None,
) -> list[Bar]:
    """Bars of the recordings (closed as the recorded receive times advance; the last open
    bars are flushed at the end)."""
    bs = BarSet(interval_ms, grace_ms=grace_ms)
    out: list[Bar] = []
    for ev in replay(paths, stats=stats):
        out.extend(bs.add(ev))
    out.extend(bs.flush())
    return out
