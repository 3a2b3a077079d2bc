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


def leverage_points(p: ModelParams) -> tuple[np.ndarray, np.ndarray]:
    total = sum(w for _, w in p.leverage_mix)
    n = p.leverage_points if p.leverage_spread > 0 else 1
    z = np.zeros(1) if n == 1 else np.array([-2.0 + 4.0 * j / (n - 1) for j in range(n)])
    zw = np.exp(-z * z / 2.0)
    zw = zw / zw.sum()
    levs, weights = [], []
    for lev, w in p.leverage_mix:
        for zj, wj in zip(z, zw):
            levs.append(max(lev * math.exp(p.leverage_spread * zj), 1.01))
            weights.append(w / total * wj)
    return np.array(levs), np.array(weights)


class ReferenceModel:
    def __init__(self, params: ModelParams, venue: str = "binance-usdm", symbol: str = "BTC", bar_ms: int = 3_600_000) -> None:
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
            s_idx = np.where(self.side > 0, 0, 1)
            usd = self.stored * self.scale[s_idx, self.band]
            hit_l = (self.side > 0) & (self.liq >= lo)
            hit_s = (self.side < 0) & (self.liq <= h)
            liq_long, liq_short = float(usd[hit_l].sum()), float(usd[hit_s].sum())
            keep = ~(hit_l | hit_s)
            self._keep(keep)
            f = (1 - self.taus) ** hours * (1 - p.decay_per_hour) ** hours
            f = np.where(f < 1, f, 1.0)
            # A band whose turnover is total closes outright (its scale is left alone).
            self._keep(f[self.band] > 0)
            self.scale *= np.where(f > 0, f, 1.0)[None, :]
        sides = [self.side_usd(0), self.side_usd(1)]
        open_usd = [0.0, 0.0]
        if not math.isnan(oi):
            for s in (0, 1):
                if oi >= sides[s]:
                    open_usd[s] = oi - sides[s]
                elif sides[s] > 0:
                    self.scale[s] *= oi / sides[s]
        if open_usd[0] > 0 or open_usd[1] > 0:
            ib = self._open(t, h, lo, c, taker, open_usd)
            if not empty:
                liq_long += ib[0]
                liq_short += ib[1]
        if p.prune_below > 0 and len(self.side):
            s_idx = np.where(self.side > 0, 0, 1)
            sums = np.zeros((2, len(self.levs)))
            np.add.at(sums, (s_idx, self.band), self.stored)
            self._keep(self.stored >= p.prune_below * sums[s_idx, self.band])
        return liq_long, liq_short, gap, empty

    def _keep(self, keep: np.ndarray) -> None:
        self.side, self.liq, self.stored, self.band = self.side[keep], self.liq[keep], self.stored[keep], self.band[keep]

    def _entries(self, h: float, lo: float, c: float) -> tuple[np.ndarray, np.ndarray]:
        rule = self.p.entry_rule
        if rule == "typical":
            return np.array([(h + lo + c) / 3]), np.ones(1)
        if rule == "close":
            return np.array([c]), np.ones(1)
        n = self.p.entry_points if rule == "range" else 3
        return lo + (h - lo) * (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)

    def _open(self, t: int, h: float, lo: float, c: float, taker: float, usd: list[float]) -> list[float]:
        p = self.p
        ent, ew = self._entries(h, lo, c)
        e = np.repeat(ent, len(self.levs))
        w = np.repeat(ew, len(self.levs)) * np.tile(self.lw, len(ent))
        bands = np.tile(np.arange(len(self.levs)), len(ent))
        qty = (p.position_usd / e if self.kind == "linear" else np.full_like(e, p.position_usd)) / self.cs
        lev = np.minimum(np.tile(self.levs, len(ent)), lf.max_leverage(self.venue, e, qty, symbol=self.symbol))
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
