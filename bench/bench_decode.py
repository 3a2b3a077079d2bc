"""Decode + normalise per message, every venue: the path liqfast users get (the normaliser's
``on_message``, which is the Rust ``FrameDecoder`` for the hot channels, falling back to the
msgspec reference for everything else) against stdlib ``json`` doing the same normalisation
from dicts, side by side in one process. Every path must produce identical events (checked).

Paths per venue and channel:

* ``liqfast_us`` — ``norm.on_message(frame, ...)`` frame by frame: what a live connector and
  ``liqfast replay`` run (one call per WebSocket frame).
* ``batched_us`` — ``norm.feed_many(frames, ...)``: the same decoder looping in Rust over a
  burst of frames (backfill of recorded frames, bursts read off a socket).
* ``msgspec_us`` — the pure-Python reference normaliser (fast path off): typed msgspec
  decoders, for context; it is what ran before the Rust fast path.
* ``stdlib_json_us`` — ``json.loads`` + the same normalisation into the same event objects.

Corpora: one trade/liquidation per frame, as venues send them in quiet markets (the worst
case for per-frame overhead), produced by the fake exchange's encoders (the venues'
documented wire shapes, including the fields we skip). Trades of every venue; liquidations of
every venue that publishes them. ``handled`` is the share of frames the Rust decoder took
(the rest would be the reference's): it must be 100 % here, or the row is not measuring the
fast path.

Each venue/channel runs in a fresh interpreter, with ``OPENBLAS_NUM_THREADS=1``: the cases
allocate very differently (stdlib builds a dict per message, OKX keeps 20,000 liquidation
identities), and on a 2-core machine the heap one case leaves behind measurably slowed the
allocation-bound fast path of the next (up to 2x), which says nothing about either decoder.
Within a case both sides alternate round by round and the best round counts.

Run: ``python -m bench decode`` (release build required).
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import record, require_release, table, timeit

REPEAT = 11
N = 20_000
RECV = 1_790_000_000_000
#: Gate's switch from snapshot to batched liquidations (liqfast.exchanges.gate.BATCHED_SINCE_MS)
GATE_BATCHED_SINCE_MS = 1_787_184_000_000


def _interleaved(fns: dict[str, Callable[[], Any]], repeat: int = REPEAT) -> dict[str, float]:
    """Best time of each function over ``repeat`` rounds, the functions alternating within
    each round: on a shared, noisy machine every side sees the same conditions."""
    best = {k: math.inf for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            best[k] = min(best[k], timeit(fn, repeat=1))
    return best


def _corpus(venue: str, symbol: str, kind: str, n: int) -> list[bytes]:
    from liqfast.events import Liquidation, Trade
    from liqfast.exchanges.fake import FakeExchange

    fx = FakeExchange(venues=[venue])
    rng = random.Random(42)
    out = []
    t = 1_790_000_000_000
    for i in range(n):
        t += rng.randint(1, 50)
        price = round(60_000 + rng.uniform(-500, 500), 1)
        size = round(rng.uniform(0.001, 2.0), 3)
        if kind == "trade":
            ev: Any = Trade(venue, symbol, t, t, price, size, price * size, rng.choice(["buy", "sell"]), 10_000_000 + i)
        else:
            ev = Liquidation(venue, symbol, t, t, rng.choice(["long", "short"]), price, size, price * size, "x")
        frames = fx.encode(ev)
        out.append(frames[0][1].encode())
    return out


# -- stdlib json baselines: the same normalisation, from dicts --------------------------------


def _ms(ts: int) -> int:
    """Epoch ms from s/ms/µs/ns by magnitude (liqfast.exchanges.base.ms for ints)."""
    a = abs(ts)
    return ts * 1000 if a < 10**11 else ts if a < 10**14 else ts // 1000 if a < 10**17 else ts // 1_000_000


def _baselines(cs: float) -> dict[str, Callable[[bytes, int], list[Any]]]:
    """``cs``: the benchmarked instrument's contract size (where the venue needs one)."""
    from liqfast.events import Liquidation, Trade

    loads = json.loads

    def binance(venue: str, inverse: bool) -> Callable[[bytes, int], list[Any]]:
        def handler(raw: bytes, recv: int) -> list[Any]:
            d = loads(raw)["data"]
            if d["e"] == "aggTrade":
                p, q = float(d["p"]), float(d["q"])
                if inverse:
                    usd = q * cs
                    base = usd / p
                else:
                    base, usd = q, p * q
                return [Trade(venue, d["s"], d["T"], recv, p, base, usd, "sell" if d["m"] else "buy", d["a"])]
            if d["e"] == "forceOrder":
                o = d["o"]
                ap = float(o["ap"])
                price, kind = (ap, "avg_fill") if ap > 0 else (float(o["p"]), "order")
                z = float(o.get("z", 0))
                q = z if z > 0 else float(o["q"])
                if inverse:
                    usd = q * cs
                    base = usd / price
                else:
                    base, usd = q, q * price
                return [Liquidation(venue, o["s"], o["T"], recv, "long" if o["S"] == "SELL" else "short", price, base,
                                    usd, "snapshot_1s", kind)]
            return []

        return handler

    def bybit_linear(raw: bytes, recv: int) -> list[Any]:
        m = loads(raw)
        topic = m.get("topic", "")
        out: list[Any] = []
        if topic.startswith("publicTrade."):
            for t in m["data"]:
                p, v = float(t["p"]), float(t["v"])
                out.append(Trade("bybit-linear", t["s"], t["T"], recv, p, v, v * p, "buy" if t["S"] == "Buy" else "sell",
                                 t["i"]))
        elif topic.startswith("allLiquidation."):
            for q in m["data"]:
                p, v = float(q["p"]), float(q["v"])
                out.append(Liquidation("bybit-linear", q["s"], q["T"], recv, "long" if q["S"] == "Buy" else "short", p, v,
                                       v * p, "all_500ms", "bankruptcy"))
        return out

    seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()

    def okx(raw: bytes, recv: int, seen: OrderedDict[tuple[Any, ...], None] = seen) -> list[Any]:
        m = loads(raw)
        ch = m["arg"]["channel"]
        out: list[Any] = []
        if ch == "trades":
            for t in m["data"]:
                px, sz = float(t["px"]), float(t["sz"])
                b = sz * cs
                out.append(Trade("okx-linear", t["instId"], int(t["ts"]), recv, px, b, b * px,
                                 "buy" if t["side"] == "buy" else "sell", t["tradeId"]))
        elif ch == "liquidation-orders":
            for g in m["data"]:
                for d in g["details"]:
                    px, sz = float(d["bkPx"]), float(d["sz"])
                    # same semantics as liqfast: OKX re-sends recent liquidations after a
                    # (re)subscribe, so they are de-duplicated on their identity
                    key = (g["instId"], int(d["ts"]), d["side"], d["posSide"], sz, px)
                    if key in seen:
                        continue
                    seen[key] = None
                    if len(seen) > 20_000:
                        seen.popitem(last=False)
                    pos: Any = d["posSide"] if d["posSide"] in ("long", "short") else (
                        "long" if d["side"] == "sell" else "short")
                    b = sz * cs
                    out.append(Liquidation("okx-linear", g["instId"], int(d["ts"]), recv, pos, px, b, b * px, "partial",
                                           "bankruptcy"))
        return out

    def bitget(raw: bytes, recv: int) -> list[Any]:
        m = loads(raw)
        arg = m["arg"]
        if arg["topic"] == "liquidation":
            out: list[Any] = []
            for q in m["data"]:
                price, amount = float(q["price"]), float(q["amount"])  # amount in quote currency
                out.append(Liquidation("bitget-linear", q["symbol"], _ms(int(q["ts"])), recv,
                                       "long" if q["side"] == "buy" else "short", price, amount / price, amount,
                                       "aggregated", "order"))
            return out
        sym = arg["symbol"]
        return [Trade("bitget-linear", sym, int(t["T"]), recv, float(t["p"]), float(t["v"]),
                      float(t["v"]) * float(t["p"]), "buy" if t["S"] == "buy" else "sell", t["i"]) for t in m["data"]]

    def gate(raw: bytes, recv: int) -> list[Any]:
        m = loads(raw)
        out: list[Any] = []
        if m["channel"] == "futures.public_liquidates":
            res = m["result"]
            for q in res if isinstance(res, list) else [res]:
                size, p = float(q["size"]), float(q["price"])
                b = abs(size) * cs
                ts = q.get("time_ms") or _ms(q.get("time", 0))
                out.append(Liquidation("gate-linear", q["contract"], ts, recv, "long" if size < 0 else "short", p, b,
                                       b * p, "batched_1s" if ts >= GATE_BATCHED_SINCE_MS else "snapshot_1s", "order"))
            return out
        for t in m["result"]:
            size, p = float(t["size"]), float(t["price"])
            b = abs(size) * cs
            out.append(Trade("gate-linear", t["contract"], t["create_time_ms"] or t["create_time"] * 1000, recv, p, b,
                             b * p, "sell" if size < 0 else "buy", t["id"]))
        return out

    def kucoin(raw: bytes, recv: int) -> list[Any]:
        m = loads(raw)
        if m.get("type") != "message" or m.get("subject") != "match":
            return []
        d = m["data"]
        p = float(d["price"])
        b = float(d["size"]) * cs
        return [Trade("kucoin-linear", d["symbol"], d["ts"] // 1_000_000, recv, p, b, b * p,
                      "sell" if d["side"] == "sell" else "buy", d["tradeId"] or None)]

    def hyperliquid(raw: bytes, recv: int) -> list[Any]:
        m = loads(raw)
        if m.get("channel") != "trades":
            return []
        return [Trade("hyperliquid", t["coin"], t["time"], recv, float(t["px"]), float(t["sz"]),
                      float(t["sz"]) * float(t["px"]), "buy" if t["side"] == "B" else "sell", t["tid"] or None)
                for t in m["data"]]

    okx.reset = seen.clear  # type: ignore[attr-defined]  # a fresh handler per timed run
    return {
        "binance-usdm": binance("binance-usdm", False), "binance-coinm": binance("binance-coinm", True),
        "bybit-linear": bybit_linear, "okx-linear": okx, "bitget-linear": bitget, "gate-linear": gate,
        "kucoin-linear": kucoin, "hyperliquid": hyperliquid,
    }


CASES = [
    ("binance-usdm", "BTCUSDT", "trade", "aggTrade"),
    ("binance-coinm", "BTCUSD_PERP", "trade", "aggTrade"),
    ("bybit-linear", "BTCUSDT", "trade", "publicTrade"),
    ("okx-linear", "BTC-USDT-SWAP", "trade", "trades"),
    ("bitget-linear", "BTCUSDT", "trade", "publicTrade"),
    ("gate-linear", "BTC_USDT", "trade", "futures.trades"),
    ("kucoin-linear", "XBTUSDTM", "trade", "execution"),
    ("hyperliquid", "BTC", "trade", "trades"),
    ("binance-usdm", "BTCUSDT", "liquidation", "forceOrder"),
    ("binance-coinm", "BTCUSD_PERP", "liquidation", "forceOrder"),
    ("bybit-linear", "BTCUSDT", "liquidation", "allLiquidation"),
    ("okx-linear", "BTC-USDT-SWAP", "liquidation", "liquidation-orders"),
    ("bitget-linear", "BTCUSDT", "liquidation", "liquidation"),
    ("gate-linear", "BTC_USDT", "liquidation", "public_liquidates"),
]


def _same(a: list[Any], b: list[Any], *, exact: bool = False) -> bool:
    """Same events; floats equal within 1e-12 relative, or bit for bit when ``exact``."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if type(x) is not type(y):
            return False
        for f in x.__struct_fields__:
            u, v = getattr(x, f), getattr(y, f)
            if isinstance(u, float) and isinstance(v, float):
                if exact:
                    if not (u == v and math.copysign(1.0, u) == math.copysign(1.0, v)) and not (u != u and v != v):
                        return False
                elif not (u == v or (math.isnan(u) and math.isnan(v)) or math.isclose(u, v, rel_tol=1e-12)):
                    return False
            elif u != v or type(u) is not type(v):
                return False
    return True


def run_case(index: int) -> dict[str, Any]:
    """Measure one venue/channel (in this process); returns its row."""
    from liqfast.exchanges.base import ConnContext
    from liqfast.exchanges.fake import FakeExchange
    from liqfast.exchanges.registry import connector_class

    venue, symbol, kind, channel = CASES[index]
    frames = _corpus(venue, symbol, kind, N)
    inst = FakeExchange(venues=[venue]).instrument(venue, symbol)
    base = _baselines(inst.contract_size)[venue]
    stats: dict[str, Any] = {}

    def fresh(fast: bool) -> Any:
        # a fresh normaliser per run (what a connector starts with; stateful venues such as
        # OKX de-duplicate liquidations, so a reused one would only see duplicates)
        norm = connector_class(venue).normalizer_cls()
        norm.instruments[symbol] = inst
        norm.symbols = None
        norm.use_fast_path(fast)
        return norm

    def ours() -> list[Any]:
        norm = fresh(True)
        ctx = ConnContext()
        on_message = norm.on_message
        out: list[Any] = []
        for f in frames:
            on_message(f, RECV, ctx, out)
        stats["errors"] = norm.counters.decode_errors
        stats["handled"] = norm.fast.handled if norm.fast is not None else 0
        return out

    def batched() -> list[Any]:
        norm = fresh(True)
        out: list[Any] = norm.feed_many(frames, RECV)
        return out

    def reference() -> list[Any]:
        norm = fresh(False)
        ctx = ConnContext()
        on_message = norm.on_message
        out: list[Any] = []
        for f in frames:
            on_message(f, RECV, ctx, out)
        return out

    def stdlib() -> list[Any]:
        reset = getattr(base, "reset", None)
        if reset is not None:
            reset()
        out: list[Any] = []
        for f in frames:
            out.extend(base(f, RECV))
        return out

    expected = stdlib()
    got = ours()
    ok = (
        len(got) == N and stats["errors"] == 0 and _same(got, expected)
        and _same(got, batched(), exact=True) and _same(got, reference(), exact=True)
    )
    best = _interleaved({"ours": ours, "batched": batched, "msgspec": reference, "stdlib": stdlib})
    t_ours, t_std = best["ours"], best["stdlib"]
    return {
        "venue": venue, "channel": channel, "messages": N,
        "liqfast_us": t_ours / N * 1e6, "batched_us": best["batched"] / N * 1e6,
        "msgspec_us": best["msgspec"] / N * 1e6, "stdlib_json_us": t_std / N * 1e6,
        "speedup": t_std / t_ours, "speedup_batched": t_std / best["batched"],
        "liqfast_msgs_per_s": N / t_ours, "handled": stats["handled"] / N, "correct": ok,
    }


def main() -> None:
    require_release()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    rows: list[dict[str, Any]] = []
    for i in range(len(CASES)):
        code = f"import json; from bench.bench_decode import run_case; print(json.dumps(run_case({i})))"
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise SystemExit(f"case {CASES[i]} failed:\n{proc.stderr}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    cols = ["venue", "channel", "liqfast_us", "batched_us", "msgspec_us", "stdlib_json_us", "speedup",
            "speedup_batched", "liqfast_msgs_per_s", "handled", "correct"]
    print(table(rows, cols))
    bad = [r for r in rows if not r["correct"] or r["handled"] < 1.0]
    if bad:
        raise SystemExit(f"results differ from the stdlib baseline, or the fast path did not take every frame: {bad}")
    path = record("decode", rows, {
        "messages_per_case": N,
        "note": "one trade/liquidation per frame; best of interleaved rounds; one fresh interpreter per case",
    })
    print(f"\nrecorded {path}")


if __name__ == "__main__":
    main()
