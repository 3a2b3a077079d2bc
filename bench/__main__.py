"""Run benchmarks: `python -m bench` runs all, `python -m bench core model` runs some."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from .common import require_release


def main() -> None:
    require_release()
    here = Path(__file__).resolve().parent
    names = sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = sys.argv[1:] or names
    unknown = set(wanted) - set(names)
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; available: {', '.join(names)}")
    for name in wanted:
        print(f"\n## {name}\n", flush=True)
        importlib.import_module(f"bench.bench_{name}").main()


if __name__ == "__main__":
    main()
