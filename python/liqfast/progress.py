"""A tiny, dependency-free progress bar for long CLI jobs (backfill, replay).

On a terminal it redraws one line in place (``\\r``) at most ten times a second; when output
is redirected (CI logs, files) it prints a plain line every ``log_every`` seconds instead of
flooding the log with carriage returns; ``enabled=False`` silences it. It writes to stderr
so stdout stays clean for data.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _fmt_time(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    """``with Progress(total, "klines") as p: ... p.update(1)``."""

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        *,
        unit: str = "it",
        stream: TextIO | None = None,
        enabled: bool = True,
        width: int = 30,
        log_every: float = 10.0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.log_every = log_every
        self.n = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._closed = False

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        interval = 0.1 if self._tty else self.log_every
        if now - self._last >= interval or (self.total is not None and self.n >= self.total):
            self._last = now
            self._draw(final=False)

    def line(self) -> str:
        elapsed = time.monotonic() - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        tail = f" {self.postfix}" if self.postfix else ""
        if self.total:
            frac = min(1.0, self.n / self.total)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            return (f"{head}[{bar}] {self.n}/{self.total} {self.unit} {frac * 100:5.1f}% "
                    f"{_fmt_time(elapsed)}<{_fmt_time(eta)} {rate:,.1f} {self.unit}/s{tail}")
        return f"{head}{self.n} {self.unit} {_fmt_time(elapsed)} {rate:,.1f} {self.unit}/s{tail}"

    def _draw(self, *, final: bool) -> None:
        if not self.enabled:
            return
        text = self.line()
        if self._tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._draw(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
