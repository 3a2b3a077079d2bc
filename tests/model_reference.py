"""A straightforward Python/numpy implementation of the estimation model (rust/src/model.rs).

Used two ways: as the slow, obviously correct reference the Rust replay is tested against, and
as the baseline of the model benchmark (bench/bench_model.py). Every bar rescans the whole
book with numpy masks — exactly what the Rust B-tree book avoids.
"""

from __future__ import annotations

import math

import numpy as np

import liqfast as lf
from liqfast.model import Bars, ModelParams


def inv_norm(q: float) -> float:
    """Acklam's inverse normal CDF (the same approximation as the Rust model)."""
    a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239]
    b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1]
    c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783]
    d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416]
    if q < 0.02425:
        r = math.sqrt(-2 * math.log(q))
        return (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1)
    if q <= 1 - 0.02425:
        x = q - 0.5
        r = x * x
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * x / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    return -inv_norm(1 - q)


def leverage_points(p: ModelParams, u: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Equal-probability strata of each mix leverage's log-normal spread, at offset u."""
    total = sum(w for _, w in p.leverage_mix)
    n = p.leverage_points if p.leverage_spread > 0 else 1
    levs, weights = [], []
    for lev, w in p.leverage_mix:
        for j in range(n):
            z = 0.0 if n == 1 else inv_norm(min(max((j + u) / n, 1e-9), 1 - 1e-9))
            levs.append(max(lev * math.exp(p.leverage_spread * z), 1.01))
            weights.append(w / total / n)
    return np.array(levs), np.array(weights)


def bar_offsets(seq: int) -> tuple[float, float]:
    return (0.5 + seq * 0.6180339887498949) % 1.0, (0.5 + seq * 0.4142135623730951) % 1.0


class ReferenceModel:
    def __init__(self, params: ModelParams, venue: str = "binance-usdm", symbol: str = "BTC", bar_ms: int = 3_600_000) -> None:
        import msgspec

        # The mix the core sees (tilt applied).
        params = msgspec.structs.replace(params, leverage_mix=tuple(params.to_core()["leverage_mix"]), leverage_tilt=0.0)
        self.p = params
        self.venue, self.symbol, self.bar_ms = venue, symbol, bar_ms
        self.levs, self.lw = leverage_points(params)
        nb = len(self.levs)
        self.taus = np.clip(params.turnover_per_hour * (self.levs / 10.0) ** params.turnover_leverage_exponent, 0, 1)
        self.scale = np.ones((2, nb))
        # Cohort columns.
        self.side = np.zeros(0, np.int8)
        self.liq = np.zeros(0)
        self.stored = np.zeros(0)
        self.band = np.zeros(0, np.int64)
        self.last_ts: int | None = None
        self.seq = 0
        model = lf.margin_model(venue, symbol)
        self.kind, self.cs = model.kind, model.contract_size

    def side_usd(self, s: int) -> float:
        m = self.side == (1 if s == 0 else -1)
        return float(np.sum(self.stored[m] * self.scale[s, self.band[m]]))

    def step(self, t: int, o: float, h: float, lo: float, c: float, oi: float, taker: float = math.nan) -> tuple[float, float, bool, bool]:
        p = self.p
        gap = False
        hours = 0.0
        if self.last_ts is not None:
            gap = t - self.last_ts > self.bar_ms
            hours = (t - self.last_ts) / 3_600_000.0
        self.last_ts = t
        empty = len(self.side) == 0
        liq_long = liq_short = 0.0
        if not empty:
            bg = p.background
            liq_long = bg * self.side_usd(0) * (o - lo) / o
            liq_short = bg * self.side_usd(1) * (h - o) / o
            if p.swing > 0:
                fall, rise = (max(o - lo, h - c), h - lo) if c >= o else (h - lo, max(h - o, c - lo))
                e = p.swing_exponent
                def w(x: float) -> float:
                    return 0.0 if x <= 0 else x * (x / 0.01) ** (e - 1)
                liq_long += p.swing * self.side_usd(0) * w(fall / o)
                liq_short += p.swing * self.side_usd(1) * w(rise / o)
            s_idx = np.where(self.side > 0, 0, 1)
            usd = self.stored * self.scale[s_idx, self.band]
            hit_l = (self.side > 0) & (self.liq >= lo)
            hit_s = (self.side < 0) & (self.liq <= h)
            liq_long += float(usd[hit_l].sum())
            liq_short += float(usd[hit_s].sum())
            keep = ~(hit_l | hit_s)
            self._keep(keep)
            f = (1 - self.taus) ** hours * (1 - p.decay_per_hour) ** hours
            f = np.where(f < 1, f, 1.0)
            # A band whose turnover is total closes outright (its scale is left alone).
            self._keep(f[self.band] > 0)
            self.scale *= np.where(f > 0, f, 1.0)[None, :]
        self._renormalise()
        sides = [self.side_usd(0), self.side_usd(1)]
        open_usd = [0.0, 0.0]
        if not math.isnan(oi):
            for s in (0, 1):
                if oi >= sides[s]:
                    open_usd[s] = oi - sides[s]
                elif sides[s] > 0:
                    self.scale[s] *= oi / sides[s]
        self._renormalise()
        if open_usd[0] > 0 or open_usd[1] > 0:
            rounds = 8 if empty else 1
            ib = [0.0, 0.0]
            for r in range(rounds):
                part = self._open(t, h, lo, c, taker, [open_usd[0] / rounds, open_usd[1] / rounds], self.seq * 8 + r)
                ib = [ib[0] + part[0], ib[1] + part[1]]
            if not empty:
                liq_long += ib[0]
                liq_short += ib[1]
        self.seq += 1
        if p.prune_below > 0 and len(self.side):
            s_idx = np.where(self.side > 0, 0, 1)
            sums = np.zeros((2, len(self.levs)))
            np.add.at(sums, (s_idx, self.band), self.stored)
            self._keep(self.stored >= p.prune_below * sums[s_idx, self.band])
        return liq_long, liq_short, gap, empty

    def _renormalise(self) -> None:
        """Fold tiny scale factors into the cohorts before they underflow (as the book does)."""
        for s, b in zip(*np.nonzero(self.scale < 1e-150)):
            m = (self.side == (1 if s == 0 else -1)) & (self.band == b)
            self.stored[m] *= self.scale[s, b]
            self.scale[s, b] = 1.0

    def _keep(self, keep: np.ndarray) -> None:
        self.side, self.liq, self.stored, self.band = self.side[keep], self.liq[keep], self.stored[keep], self.band[keep]

    def _entries(self, h: float, lo: float, c: float, u: float) -> tuple[np.ndarray, np.ndarray]:
        rule = self.p.entry_rule
        if rule == "typical":
            return np.array([(h + lo + c) / 3]), np.ones(1)
        if rule == "close":
            return np.array([c]), np.ones(1)
        n = self.p.entry_points if rule == "range" else 3
        return lo + (h - lo) * (np.arange(n) + u) / n, np.full(n, 1.0 / n)

    def _open(self, t: int, h: float, lo: float, c: float, taker: float, usd: list[float], seq: int) -> list[float]:
        p = self.p
        u_lev, u_entry = bar_offsets(seq)
        levs, lw = leverage_points(p, u_lev)
        ent, ew = self._entries(h, lo, c, u_entry)
        e = np.repeat(ent, len(levs))
        w = np.repeat(ew, len(levs)) * np.tile(lw, len(ent))
        bands = np.tile(np.arange(len(levs)), len(ent))
        qty = (p.position_usd / e if self.kind == "linear" else np.full_like(e, p.position_usd)) / self.cs
        lev = np.minimum(np.tile(levs, len(ent)), lf.max_leverage(self.venue, e, qty, symbol=self.symbol))
        out = [0.0, 0.0]
        for s, sign in ((0, 1), (1, -1)):
            if usd[s] <= 0:
                continue
            liq = lf.liquidation_prices(self.venue, np.full(len(e), sign, np.int8), e, qty, leverage=lev, symbol=self.symbol)
            share = w.copy()
            hit = (liq >= lo) if sign > 0 else (liq <= h)
            now = np.where(hit & ~np.isnan(liq), share * p.intrabar, 0.0)
            surv = share - now
            gross = usd[s] / surv.sum()
            out[s] = float(now.sum() * gross)
            n = surv * gross
            self.side = np.concatenate([self.side, np.full(len(e), sign, np.int8)])
            self.liq = np.concatenate([self.liq, liq])
            self.stored = np.concatenate([self.stored, n / self.scale[s, bands]])
            self.band = np.concatenate([self.band, bands])
        return out

    def replay(self, bars: Bars) -> tuple[np.ndarray, np.ndarray]:
        n = len(bars)
        pl, ps = np.zeros(n), np.zeros(n)
        for i in range(n):
            pl[i], ps[i], _, _ = self.step(int(bars.ts_ms[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                                           bars.oi_close_usd[i], bars.taker_net_base[i])
        return pl, ps
