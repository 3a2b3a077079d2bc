"""Decode + normalise per message, every venue: liqfast (typed msgspec decoders, the exact
normalisers the live connectors run) against stdlib ``json`` doing the same normalisation
from dicts, side by side in one run. Both paths must produce identical events (checked).

Corpora: each venue's trade channel (the bulk of the traffic), one trade per frame as venues
send them in quiet markets (the worst case for per-frame overhead), plus the liquidation
channels of Binance, Bybit and OKX; frames are produced by the fake exchange's encoders (the
venues' documented wire shapes, including the fields we skip). The Binance aggTrade row is
also measured batched (``feed_many``: one msgspec pass over many frames), the path replay
and backfill use.

Run: ``python -m bench decode`` (release build required).
"""

from __future__ import annotations

import json
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .common import record, require_release, table, timeit

REPEAT = 9


def _interleaved(fns: dict[str, Callable[[], Any]], repeat: int = REPEAT) -> dict[str, float]:
    """Best time of each function over ``repeat`` rounds, the functions alternating within
    each round: on a shared, noisy machine both sides see the same conditions."""
    best = {k: math.inf for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            best[k] = min(best[k], timeit(fn, repeat=1))
    return best

N = 20_000
RECV = 1_790_000_000_000


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


def _baselines() -> dict[str, Callable[[bytes, int], list[Any]]]:
    from liqfast.events import Liquidation, Trade

    loads = json.loads

    def binance_usdm(raw: bytes, recv: int) -> list[Any]:
        d = loads(raw)["data"]
        if d["e"] == "aggTrade":
            p, q = float(d["p"]), float(d["q"])
            return [Trade("binance-usdm", d["s"], d["T"], recv, p, q, p * q, "sell" if d["m"] else "buy", d["a"])]
        if d["e"] == "forceOrder":
            o = d["o"]
            ap = float(o["ap"])
            price, kind = (ap, "avg_fill") if ap > 0 else (float(o["p"]), "order")
            z = float(o.get("z", 0))
            q = z if z > 0 else float(o["q"])
            return [Liquidation("binance-usdm", o["s"], o["T"], recv, "long" if o["S"] == "SELL" else "short", price, q,
                                q * price, "snapshot_1s", kind)]
        return []

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

    def okx(raw: bytes, recv: int, ct: float = 0.01, seen: OrderedDict[tuple[Any, ...], None] = seen) -> list[Any]:
        m = loads(raw)
        ch = m["arg"]["channel"]
        out: list[Any] = []
        if ch == "trades":
            for t in m["data"]:
                px, sz = float(t["px"]), float(t["sz"])
                b = sz * ct
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
                    b = sz * ct
                    out.append(Liquidation("okx-linear", g["instId"], int(d["ts"]), recv, pos, px, b, b * px, "partial",
                                           "bankruptcy"))
        return out

    def bitget(raw: bytes, recv: int) -> list[Any]:
        m = loads(raw)
        sym = m["arg"]["symbol"]
        return [Trade("bitget-linear", sym, int(t["T"]), recv, float(t["p"]), float(t["v"]),
                      float(t["v"]) * float(t["p"]), "buy" if t["S"] == "buy" else "sell", t["i"]) for t in m["data"]]

    def gate(raw: bytes, recv: int, qm: float = 0.0001) -> list[Any]:
        m = loads(raw)
        out: list[Any] = []
        for t in m["result"]:
            size, p = float(t["size"]), float(t["price"])
            b = abs(size) * qm
            out.append(Trade("gate-linear", t["contract"], t["create_time_ms"] or t["create_time"] * 1000, recv, p, b, b * p,
                             "sell" if size < 0 else "buy", t["id"]))
        return out

    def kucoin(raw: bytes, recv: int, mult: float = 0.001) -> list[Any]:
        m = loads(raw)
        if m.get("type") != "message" or m.get("subject") != "match":
            return []
        d = m["data"]
        p = float(d["price"])
        b = float(d["size"]) * mult
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
        "binance-usdm": binance_usdm, "bybit-linear": bybit_linear, "okx-linear": okx, "bitget-linear": bitget,
        "gate-linear": gate, "kucoin-linear": kucoin, "hyperliquid": hyperliquid,
    }


CASES = [
    ("binance-usdm", "BTCUSDT", "trade", "aggTrade"),
    ("binance-usdm", "BTCUSDT", "liquidation", "forceOrder"),
    ("bybit-linear", "BTCUSDT", "trade", "publicTrade"),
    ("bybit-linear", "BTCUSDT", "liquidation", "allLiquidation"),
    ("okx-linear", "BTC-USDT-SWAP", "trade", "trades"),
    ("okx-linear", "BTC-USDT-SWAP", "liquidation", "liquidation-orders"),
    ("bitget-linear", "BTCUSDT", "trade", "publicTrade"),
    ("gate-linear", "BTC_USDT", "trade", "futures.trades"),
    ("kucoin-linear", "XBTUSDTM", "trade", "execution"),
    ("hyperliquid", "BTC", "trade", "trades"),
]


def _same(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if type(x) is not type(y):
            return False
        for f in x.__struct_fields__:
            u, v = getattr(x, f), getattr(y, f)
            if isinstance(u, float) and isinstance(v, float):
                if not (u == v or (math.isnan(u) and math.isnan(v)) or math.isclose(u, v, rel_tol=1e-12)):
                    return False
            elif u != v:
                return False
    return True


def main() -> None:
    require_release()
    from liqfast.exchanges.base import ConnContext
    from liqfast.exchanges.binance import BinanceNormalizer
    from liqfast.exchanges.fake import FakeExchange
    from liqfast.exchanges.registry import connector_class

    baselines = _baselines()
    rows: list[dict[str, Any]] = []
    for venue, symbol, kind, channel in CASES:
        frames = _corpus(venue, symbol, kind, N)
        inst = FakeExchange(venues=[venue]).instrument(venue, symbol)
        base = baselines[venue]
        errors: list[int] = []

        def ours(frames: list[bytes] = frames, venue: str = venue, symbol: str = symbol, inst: Any = inst) -> list[Any]:
            # a fresh normaliser per run (what a connector starts with; stateful venues such as
            # OKX de-duplicate liquidations, so a reused one would only see duplicates)
            norm = connector_class(venue).normalizer_cls()
            norm.instruments[symbol] = inst
            norm.symbols = None
            ctx = ConnContext()
            on_message = norm.on_message
            out: list[Any] = []
            for f in frames:
                on_message(f, RECV, ctx, out)
            errors.append(norm.counters.decode_errors)
            return out

        def stdlib(frames: list[bytes] = frames, base: Callable[[bytes, int], list[Any]] = base) -> list[Any]:
            reset = getattr(base, "reset", None)
            if reset is not None:
                reset()
            out: list[Any] = []
            for f in frames:
                out.extend(base(f, RECV))
            return out

        first = ours()
        ok = _same(first, stdlib()) and len(first) == N and errors[-1] == 0
        fns: dict[str, Callable[[], Any]] = {"ours": ours, "stdlib": stdlib}
        if venue == "binance-usdm" and kind == "trade":
            bn = BinanceNormalizer()
            recvs = [RECV] * N

            def batched(frames: list[bytes] = frames, bn: BinanceNormalizer = bn, recvs: list[int] = recvs) -> list[Any]:
                return bn.feed_many(frames, recvs)

            ok_b = _same(batched(), stdlib())
            fns["batched"] = batched
        best = _interleaved(fns)
        t_ours, t_std = best["ours"], best["stdlib"]
        rows.append({
            "venue": venue, "channel": channel, "path": "per frame", "messages": N,
            "liqfast_us": t_ours / N * 1e6, "stdlib_json_us": t_std / N * 1e6, "speedup": t_std / t_ours,
            "liqfast_msgs_per_s": N / t_ours, "correct": ok,
        })
        if "batched" in best:
            t_b = best["batched"]
            rows.append({
                "venue": venue, "channel": channel, "path": "batched (replay)", "messages": N,
                "liqfast_us": t_b / N * 1e6, "stdlib_json_us": t_std / N * 1e6, "speedup": t_std / t_b,
                "liqfast_msgs_per_s": N / t_b, "correct": ok_b,
            })
    cols = ["venue", "channel", "path", "liqfast_us", "stdlib_json_us", "speedup", "liqfast_msgs_per_s", "correct"]
    print(table(rows, cols))
    bad = [r for r in rows if not r["correct"]]
    if bad:
        raise SystemExit(f"results differ from the stdlib baseline: {bad}")
    path = record("decode", rows, {"messages_per_case": N, "note": "one trade/liquidation per frame; best of runs"})
    print(f"\nrecorded {path}")


if __name__ == "__main__":
    main()
