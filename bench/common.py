"""Shared benchmark plumbing: refuse debug builds, time side by side, record results.

Every benchmark compares liqfast against a reference implementation *in the same run* and
reports ratios (this machine is noisy, absolute times drift), checks its own results against
the reference, and writes `bench/results/<name>.json` for the README tables.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def require_release() -> None:
    """Exit unless the extension was built in release mode."""
    import liqfast

    if liqfast.build_profile != "release":
        sys.exit("refusing to benchmark a debug build of liqfast._core: run `maturin develop --release` (make build)")


def timeit(fn: Callable[[], Any], *, repeat: int = 5, min_time: float = 0.0) -> float:
    """Best wall time of `repeat` runs (after one warm-up), GC disabled while timing."""
    fn()
    best = float("inf")
    runs = 0
    start = time.perf_counter()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        while runs < repeat or time.perf_counter() - start < min_time:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
            runs += 1
    finally:
        if gc_was:
            gc.enable()
    return best


def median_time(fn: Callable[[], Any], *, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    import liqfast

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "liqfast": liqfast.__version__,
        "threads": liqfast._core.thread_count(),
    }


def record(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "rows": rows}
    if extra:
        payload.update(extra)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Markdown table of `rows` restricted to `columns`."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(out)
