//! A seeded market simulator with known positions: the ground truth for the model.
//!
//! Traders open leveraged positions (a leverage mix with log-normal spread, log-normal sizes,
//! entries at the prices they trade at), hold them with a leverage-dependent hazard, and are
//! liquidated by the simulator's own engine with each venue's exact margin maths whenever the
//! price path crosses their liquidation price. Liquidations move the price further
//! (`impact`), so moves can cascade. Every step emits trades, liquidation events and open
//! interest; the true liquidation map is the book itself.

use crate::book::{Book, LONG, NewCohort, SHORT};
use crate::error::{LiqError, Result};
use crate::grid::PriceGrid;
use crate::margin::{ContractKind, MarginInput, MarginModel};

/// xoshiro256** seeded by splitmix64: fast, good quality, fully reproducible.
#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub fn u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub start_ms: i64,
    pub step_ms: i64,
    pub start_price: f64,
    /// Volatility of ln(price) per √hour.
    pub vol_per_sqrt_hour: f64,
    /// Jumps: expected number per hour and σ of their ln size.
    pub jumps_per_hour: f64,
    pub jump_size: f64,
    /// Intra-step wick as a multiple of the step's σ.
    pub wick: f64,
    /// Cascades: ln-price move per unit of (net liquidated USD / open interest).
    pub impact: f64,
    /// Starting open interest (USD, single side) per venue, and its drift/σ per √hour.
    pub start_oi_usd: f64,
    pub oi_drift_per_hour: f64,
    pub oi_vol_per_sqrt_hour: f64,
    /// (leverage, weight) and the log-normal spread around each.
    pub leverage_mix: Vec<(f64, f64)>,
    pub leverage_spread: f64,
    /// Share of positions closed per hour at 10x, × (leverage/10)^exponent.
    pub turnover_per_hour: f64,
    pub turnover_leverage_exponent: f64,
    /// Position sizes: log-normal with this median (USD) and σ.
    pub size_median_usd: f64,
    pub size_sigma: f64,
    /// Trades (each opening a long and a short) per step, at most.
    pub trades_per_step: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            start_ms: 1_767_225_600_000, // 2026-01-01
            step_ms: 60_000,
            start_price: 90_000.0,
            vol_per_sqrt_hour: 0.006,
            jumps_per_hour: 0.02,
            jump_size: 0.02,
            wick: 0.5,
            impact: 0.05,
            start_oi_usd: 5e9,
            oi_drift_per_hour: 0.0,
            oi_vol_per_sqrt_hour: 0.004,
            leverage_mix: vec![(5.0, 0.15), (10.0, 0.30), (25.0, 0.25), (50.0, 0.20), (100.0, 0.10)],
            leverage_spread: 0.2,
            turnover_per_hour: 0.05,
            turnover_leverage_exponent: 0.5,
            size_median_usd: 10_000.0,
            size_sigma: 0.0,
            trades_per_step: 8,
        }
    }
}

impl SimConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(LiqError::Invalid(m));
        // A step is the simulator's time resolution (bars gather steps); beyond a day its
        // price and flow per step stop meaning anything.
        if !(1..=86_400_000).contains(&self.step_ms) {
            return bad(format!("step_ms must be in 1..=86400000 (one day), got {}", self.step_ms));
        }
        // Beyond this a single liquidation moves the price by many times itself.
        if !(self.impact <= 10.0) {
            return bad(format!("impact must be <= 10, got {}", self.impact));
        }
        // Epoch ms from 1970 to the end of year 9999: later starts overflow the timestamps.
        if !(0..=MAX_START_MS).contains(&self.start_ms) {
            return bad(format!("start_ms must be in 0..={MAX_START_MS} (1970 to 9999), got {}", self.start_ms));
        }
        // A price any market could quote: at 5e-324 the sizes in contracts overflow and
        // the path is stuck at the smallest float.
        if !(PRICE_RANGE.0..=PRICE_RANGE.1).contains(&self.start_price) {
            return bad(format!("start_price must be in [1e-9, 1e12], got {:?}", self.start_price));
        }
        // As the model's: beyond ±4 the turnover of 1x or 100x positions is 0 or all of it.
        if !(self.turnover_leverage_exponent.is_finite() && self.turnover_leverage_exponent.abs() <= 4.0) {
            return bad(format!(
                "turnover_leverage_exponent must be in [-4, 4], got {}",
                self.turnover_leverage_exponent
            ));
        }
        // ln-drift per hour; ±1 already multiplies the open interest by e each hour.
        if !(self.oi_drift_per_hour.is_finite() && self.oi_drift_per_hour.abs() <= 1.0) {
            return bad(format!("oi_drift_per_hour must be in [-1, 1], got {}", self.oi_drift_per_hour));
        }
        for (name, v) in [("start_oi_usd", self.start_oi_usd), ("size_median_usd", self.size_median_usd)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be finite and > 0, got {v}"));
            }
        }
        for (name, v) in [
            ("vol_per_sqrt_hour", self.vol_per_sqrt_hour),
            ("jumps_per_hour", self.jumps_per_hour),
            ("jump_size", self.jump_size),
            ("wick", self.wick),
            ("impact", self.impact),
            ("oi_vol_per_sqrt_hour", self.oi_vol_per_sqrt_hour),
            ("leverage_spread", self.leverage_spread),
            ("size_sigma", self.size_sigma),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be finite and >= 0, got {v}"));
            }
        }
        // Spreads of ln(price), ln(OI) and ln(size): beyond these a step's move overflowed
        // (a price of inf, then NaN, panicked in the path), or sizes were inf.
        for (name, v, max) in [
            ("vol_per_sqrt_hour", self.vol_per_sqrt_hour, 1.0),
            ("jump_size", self.jump_size, 1.0),
            ("oi_vol_per_sqrt_hour", self.oi_vol_per_sqrt_hour, 1.0),
            ("wick", self.wick, 10.0),
            ("leverage_spread", self.leverage_spread, 2.0),
            ("size_sigma", self.size_sigma, 4.0),
        ] {
            if v > max {
                return bad(format!("{name} must be <= {max}, got {v}"));
            }
        }
        if self.start_oi_usd > MAX_OI_USD {
            return bad(format!("start_oi_usd must be <= {MAX_OI_USD:e}, got {:e}", self.start_oi_usd));
        }
        if !(0.0..=1.0).contains(&self.turnover_per_hour) {
            return bad(format!("turnover_per_hour must be in [0, 1], got {}", self.turnover_per_hour));
        }
        if self.leverage_mix.is_empty()
            || self.leverage_mix.iter().any(|&(l, w)| !(l >= 1.0 && w >= 0.0 && l.is_finite() && w.is_finite()))
        {
            return bad("leverage_mix needs (leverage >= 1, weight >= 0) pairs".into());
        }
        // (Else every draw took the first leverage, whatever its weight.)
        if self.leverage_mix.iter().map(|m| m.1).sum::<f64>() <= 0.0 {
            return bad("leverage_mix weights must not all be 0".into());
        }
        if !(1..=10_000).contains(&self.trades_per_step) {
            return bad(format!("trades_per_step must be in 1..=10000, got {}", self.trades_per_step));
        }
        Ok(())
    }
}

/// Prices the simulated path stays within (the range `start_price` may take).
const PRICE_RANGE: (f64, f64) = (1e-9, 1e12);
/// Largest open interest (USD, one side) at the start and along the path.
const MAX_OI_USD: f64 = 1e15;

/// Latest start time: the last millisecond of year 9999.
pub const MAX_START_MS: i64 = 253_402_300_799_999;

/// Bands of the simulator's books: ln-leverage bins (turnover is per bin).
const BANDS: usize = 48;
const LN_LEV_MAX: f64 = 5.3; // ln 200

fn band_of(lev: f64) -> u16 {
    ((lev.ln() / LN_LEV_MAX * BANDS as f64) as usize).min(BANDS - 1) as u16
}

fn band_leverage(b: usize) -> f64 {
    ((b as f64 + 0.5) / BANDS as f64 * LN_LEV_MAX).exp()
}

/// One trade: price, base quantity, +1 taker buy / −1 taker sell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trade {
    pub venue: usize,
    pub price: f64,
    pub qty: f64,
    pub side: i8,
}

/// One liquidation: the position's side (+1 long), its liquidation price and USD notional.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Liquidation {
    pub venue: usize,
    pub side: i8,
    pub price: f64,
    pub usd: f64,
}

/// What one step produced.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub ts_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub trades: Vec<Trade>,
    pub liquidations: Vec<Liquidation>,
    /// Single-sided open interest (USD) per venue at the end of the step.
    pub oi_usd: Vec<f64>,
}

pub struct Simulator {
    pub cfg: SimConfig,
    rng: Rng,
    /// Per venue: margin maths (current formula), book and weight of the flow.
    pub models: Vec<MarginModel>,
    pub books: Vec<Book>,
    weights: Vec<f64>,
    oi_target: Vec<f64>,
    price: f64,
    ts: i64,
    taus: Vec<f64>,
    mix_total: f64,
}

impl Simulator {
    /// `venues`: the margin model of each venue and the share of the flow it gets.
    pub fn new(cfg: SimConfig, venues: Vec<(MarginModel, f64)>) -> Result<Self> {
        cfg.validate()?;
        if venues.is_empty() || venues.iter().any(|v| !(v.1 > 0.0 && v.1.is_finite())) {
            return Err(LiqError::Invalid("the simulator needs venues with positive weights".into()));
        }
        let wsum: f64 = venues.iter().map(|v| v.1).sum();
        if !wsum.is_finite() {
            return Err(LiqError::Invalid("the venues' weights must sum to a finite number".into()));
        }
        let taus = (0..BANDS)
            .map(|b| {
                (cfg.turnover_per_hour * (band_leverage(b) / 10.0).powf(cfg.turnover_leverage_exponent)).clamp(0.0, 1.0)
            })
            .collect();
        let mix_total = cfg.leverage_mix.iter().map(|m| m.1).sum();
        let n = venues.len();
        let mut sim = Simulator {
            rng: Rng::new(cfg.seed),
            price: cfg.start_price,
            ts: cfg.start_ms,
            books: (0..n).map(|_| Book::new(BANDS)).collect(),
            weights: venues.iter().map(|v| v.1 / wsum).collect(),
            // (Share first: `start_oi · w` may overflow where `w / Σw` cannot.)
            oi_target: venues.iter().map(|v| cfg.start_oi_usd * (v.1 / wsum)).collect(),
            models: venues.into_iter().map(|v| v.0).collect(),
            taus,
            mix_total,
            cfg,
        };
        // The market does not start empty: open the initial interest at the start price.
        for v in 0..n {
            let usd = sim.oi_target[v];
            let p = sim.price;
            let mut trades = Vec::new();
            sim.open_flow(v, [usd, usd], &[(p, 1.0)], 1_000_000, &mut trades);
        }
        Ok(sim)
    }

    #[must_use]
    pub fn price(&self) -> f64 {
        self.price
    }

    /// Draw a leverage from the mix with its spread.
    fn leverage(&mut self) -> f64 {
        let mut u = self.rng.uniform() * self.mix_total;
        let mut lev = self.cfg.leverage_mix[0].0;
        for &(l, w) in &self.cfg.leverage_mix {
            lev = l;
            if u < w {
                break;
            }
            u -= w;
        }
        (lev * (self.cfg.leverage_spread * self.rng.normal()).exp()).max(1.01)
    }

    /// Open about `usd[side]` of positions on venue `v` (at most `max_positions` per side),
    /// entries drawn from `prices` (price, weight), each position a cohort of the true book.
    /// Records the opening trades.
    fn open_flow(
        &mut self,
        v: usize,
        usd: [f64; 2],
        prices: &[(f64, f64)],
        max_positions: usize,
        trades: &mut Vec<Trade>,
    ) {
        let model = self.models[v].clone();
        let wsum: f64 = prices.iter().map(|p| p.1).sum();
        let mut cohorts = Vec::new();
        for (s, side) in [(LONG, 1i8), (SHORT, -1i8)] {
            let mut left = usd[s];
            // No single draw takes more than a `1/max_positions` share of the flow (or the
            // median size, if larger).
            let cap = (usd[s] / max_positions as f64).max(self.cfg.size_median_usd);
            // That caps sizes but not their count: a flow far above the median size (a huge
            // open interest, a tiny median) would ask for billions of positions. Then every
            // size is scaled up so the expected count is `budget`, each with its own leverage,
            // and should the draws still run long, the last position takes what is left.
            let budget = (4 * max_positions).max(50_000);
            let mean = self.cfg.size_median_usd * (0.5 * self.cfg.size_sigma * self.cfg.size_sigma).exp();
            let factor = (usd[s] / (mean * budget as f64)).max(1.0);
            let mut count = 0;
            while left > 0.0 {
                count += 1;
                let drawn = self.cfg.size_median_usd * (self.cfg.size_sigma * self.rng.normal()).exp();
                let size = if count >= 2 * budget { left } else { (drawn.min(cap) * factor).min(left) };
                left -= size;
                // Entry: one of the step's prices, by weight.
                let mut u = self.rng.uniform() * wsum;
                let mut entry = prices[0].0;
                for &(p, w) in prices {
                    entry = p;
                    if u < w {
                        break;
                    }
                    u -= w;
                }
                let qty = match model.rules.kind {
                    ContractKind::Linear => size / entry / model.contract_size,
                    ContractKind::Inverse => size / model.contract_size,
                };
                let lev = self.leverage().min(model.max_leverage_at(qty, entry));
                let Ok(liq) = model.liq_price(f64::from(side), entry, qty, MarginInput::Leverage(lev)) else {
                    continue;
                };
                cohorts.push(NewCohort {
                    side,
                    entry,
                    notional: size,
                    leverage: lev,
                    liq,
                    open_ms: self.ts,
                    weight: 1.0,
                    band: band_of(lev),
                });
                if s == LONG {
                    trades.push(Trade {
                        venue: v,
                        price: entry,
                        qty: size / entry,
                        side: if self.rng.uniform() < 0.5 { 1 } else { -1 },
                    });
                }
            }
        }
        self.books[v].open(&cohorts).expect("simulated cohorts are valid");
    }

    /// Advance one step.
    pub fn step(&mut self) -> Step {
        let cfg = self.cfg.clone();
        let hours = cfg.step_ms as f64 / 3_600_000.0;
        let sigma = cfg.vol_per_sqrt_hour * hours.sqrt();
        let open = self.price;
        let mut ln_move = sigma * self.rng.normal();
        if self.rng.uniform() < cfg.jumps_per_hour * hours {
            ln_move += cfg.jump_size * self.rng.normal();
        }
        // (Kept within the range of a quotable price: a long walk overflowed to inf, then NaN.)
        let mut close = (open * ln_move.exp()).clamp(PRICE_RANGE.0, PRICE_RANGE.1);
        let mut high = open.max(close) * (1.0 + cfg.wick * sigma * self.rng.normal().abs());
        let mut low = open.min(close) * (1.0 - cfg.wick * sigma * self.rng.normal().abs()).max(0.01);
        let mut step = Step { ts_ms: self.ts, open, ..Step::default() };
        // Liquidations, and the cascades they cause: each round's net liquidated notional
        // (relative to the open interest before the step) pushes the price further; the
        // cascade of one step is bounded (the book has depth on the other side).
        let oi: f64 = self.books.iter().map(|b| f64::midpoint(b.side_usd(LONG), b.side_usd(SHORT))).sum();
        let mut cascade = 0.0;
        let limit = 0.02 * cfg.impact;
        for _ in 0..20 {
            let mut net = 0.0;
            for (v, book) in self.books.iter_mut().enumerate() {
                let liqs = &mut step.liquidations;
                net += book.sweep_longs(low, |p, usd| liqs.push(Liquidation { venue: v, side: 1, price: p, usd })).usd;
                net -=
                    book.sweep_shorts(high, |p, usd| liqs.push(Liquidation { venue: v, side: -1, price: p, usd })).usd;
            }
            if net == 0.0 || oi <= 0.0 {
                break;
            }
            // (max/min rather than clamp: a NaN push must end the cascade, not panic.)
            let push = (-cfg.impact * net / oi).max(-limit - cascade).min(limit - cascade);
            if push == 0.0 || !push.is_finite() {
                break;
            }
            cascade += push;
            close *= push.exp();
            high = high.max(close);
            low = low.min(close);
        }
        // Voluntary closing (pro rata within each leverage band).
        for book in &mut self.books {
            for (b, tau) in self.taus.iter().enumerate() {
                let f = (1.0 - tau).powf(hours);
                if f < 1.0 {
                    let _ = book.scale_band(LONG, b as u16, f);
                    let _ = book.scale_band(SHORT, b as u16, f);
                }
            }
        }
        // Open interest follows its own random walk; new positions fill the gap on both sides.
        let k = cfg.trades_per_step;
        let path: Vec<(f64, f64)> = (0..k)
            .map(|j| {
                let x = (j as f64 + 0.5) / k as f64;
                let p = open + (close - open) * x + (high - low) * 0.25 * self.rng.normal();
                (p.clamp(low, high), 1.0)
            })
            .collect();
        for v in 0..self.books.len() {
            let g = (cfg.oi_drift_per_hour * hours + cfg.oi_vol_per_sqrt_hour * hours.sqrt() * self.rng.normal()).exp();
            // Liquidations and closes take interest out; the target keeps the market's size.
            self.oi_target[v] = (self.oi_target[v] * g).min(MAX_OI_USD);
            let target = self.oi_target[v];
            let have = [self.books[v].side_usd(LONG), self.books[v].side_usd(SHORT)];
            let mut need = [0.0; 2];
            for s in [LONG, SHORT] {
                if target > have[s] {
                    need[s] = target - have[s];
                } else if have[s] > 0.0 {
                    let _ = self.books[v].scale_side(s, target / have[s]);
                }
            }
            let mut trades = Vec::new();
            self.open_flow(v, need, &path, 400, &mut trades);
            step.trades.extend(trades);
            self.books[v].prune(1e-9);
        }
        step.high = high;
        step.low = low;
        step.close = close;
        step.oi_usd = self.books.iter().map(|b| f64::midpoint(b.side_usd(LONG), b.side_usd(SHORT))).collect();
        self.price = close;
        self.ts += cfg.step_ms;
        step
    }

    /// Share of the opening flow a venue gets.
    #[must_use]
    pub fn weight(&self, v: usize) -> f64 {
        self.weights[v]
    }
}

/// Bars of one venue produced by [`Simulator::run`], with what really happened in each.
#[derive(Clone, Debug, Default)]
pub struct VenueBars {
    pub ts_ms: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub oi_usd: Vec<f64>,
    pub taker_net_base: Vec<f64>,
    /// Realized liquidations (USD) per bar.
    pub liq_long_usd: Vec<f64>,
    pub liq_short_usd: Vec<f64>,
    /// Traded (price, base volume) of every bar: rows `profile_offsets[i]..profile_offsets[i+1]`.
    pub profile_price: Vec<f64>,
    pub profile_volume: Vec<f64>,
    pub profile_offsets: Vec<i64>,
}

/// Output of [`Simulator::run`].
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub venues: Vec<VenueBars>,
    /// Bar index after which each true map was taken.
    pub snapshot_at: Vec<usize>,
    /// True liquidation maps (all venues), `snapshots × grid buckets`, row-major.
    pub true_long: Vec<f64>,
    pub true_short: Vec<f64>,
}

impl Simulator {
    /// Run `n_bars` bars of `steps_per_bar` steps, recording bars per venue and, with `grid`,
    /// the true map after every `every`-th bar (and the last).
    pub fn run(&mut self, n_bars: usize, steps_per_bar: usize, grid: Option<&PriceGrid>, every: usize) -> Result<Run> {
        if steps_per_bar == 0 || every == 0 {
            return Err(LiqError::Invalid("steps_per_bar and every must be >= 1".into()));
        }
        let nv = self.books.len();
        let mut out = Run { venues: vec![VenueBars::default(); nv], ..Run::default() };
        for vb in &mut out.venues {
            vb.profile_offsets.push(0);
        }
        let (mut l, mut s) = (Vec::new(), Vec::new());
        for bar in 0..n_bars {
            let mut agg: Vec<(f64, f64, f64, f64, f64, f64)> = vec![(0.0, 0.0, f64::INFINITY, 0.0, 0.0, 0.0); nv];
            let mut ts = 0;
            for k in 0..steps_per_bar {
                let st = self.step();
                if k == 0 {
                    ts = st.ts_ms;
                    for a in &mut agg {
                        a.0 = st.open;
                    }
                }
                for a in &mut agg {
                    a.1 = a.1.max(st.high);
                    a.2 = a.2.min(st.low);
                    a.3 = st.close;
                }
                for t in &st.trades {
                    agg[t.venue].4 += f64::from(t.side) * t.qty;
                    out.venues[t.venue].profile_price.push(t.price);
                    out.venues[t.venue].profile_volume.push(t.qty);
                }
                for lq in &st.liquidations {
                    let vb = &mut out.venues[lq.venue];
                    if vb.liq_long_usd.len() <= bar {
                        vb.liq_long_usd.resize(bar + 1, 0.0);
                        vb.liq_short_usd.resize(bar + 1, 0.0);
                    }
                    if lq.side > 0 {
                        vb.liq_long_usd[bar] += lq.usd;
                    } else {
                        vb.liq_short_usd[bar] += lq.usd;
                    }
                }
                for (v, oi) in st.oi_usd.iter().enumerate() {
                    agg[v].5 = *oi;
                }
            }
            for (v, a) in agg.iter().enumerate() {
                let vb = &mut out.venues[v];
                vb.ts_ms.push(ts);
                vb.open.push(a.0);
                vb.high.push(a.1);
                vb.low.push(a.2);
                vb.close.push(a.3);
                vb.taker_net_base.push(a.4);
                vb.oi_usd.push(a.5);
                vb.liq_long_usd.resize(bar + 1, 0.0);
                vb.liq_short_usd.resize(bar + 1, 0.0);
                vb.profile_offsets.push(vb.profile_price.len() as i64);
            }
            if let Some(g) = grid
                && ((bar + 1) % every == 0 || bar + 1 == n_bars)
            {
                let n = g.len();
                l.resize(n, 0.0);
                s.resize(n, 0.0);
                let start = out.true_long.len();
                out.true_long.resize(start + n, 0.0);
                out.true_short.resize(start + n, 0.0);
                for book in &self.books {
                    book.snapshot(g, None, 0.0, f64::INFINITY, &mut l, &mut s)?;
                    for j in 0..n {
                        out.true_long[start + j] += l[j];
                        out.true_short[start + j] += s[j];
                    }
                }
                out.snapshot_at.push(bar);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiers::TierTable;
    use crate::venues::venue;

    fn sim(seed: u64, impact: f64) -> Simulator {
        let f = venue("binance-usdm").unwrap().current();
        let m = MarginModel::new(f.rules, 1.0, 0.0, TierTable::flat(0.004, 0.0, 125.0)).unwrap();
        Simulator::new(SimConfig { seed, impact, start_oi_usd: 2e7, ..SimConfig::default() }, vec![(m, 1.0)]).unwrap()
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (mut a, mut b, mut c) = (sim(7, 0.5), sim(7, 0.5), sim(8, 0.5));
        let xs: Vec<f64> = (0..200).map(|_| a.step().close).collect();
        let ys: Vec<f64> = (0..200).map(|_| b.step().close).collect();
        let zs: Vec<f64> = (0..200).map(|_| c.step().close).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn liquidations_happen_at_their_price_and_leave_the_book() {
        let mut s = sim(3, 0.5);
        let mut seen = 0;
        for _ in 0..600 {
            let st = s.step();
            for l in &st.liquidations {
                seen += 1;
                if l.side > 0 {
                    assert!(l.price >= st.low - 1e-9);
                } else {
                    assert!(l.price <= st.high + 1e-9);
                }
            }
            // No live long above the low just swept, no short below the high.
            assert!(s.books[0].cohorts().all(|c| c.liq.is_nan()
                || if c.side > 0 { c.liq < st.low } else { c.liq > st.high }
                || c.open_ms == st.ts_ms));
        }
        assert!(seen > 50, "{seen}");
    }

    #[test]
    fn settings_that_cannot_be_simulated_are_refused() {
        let ok = SimConfig::default();
        for bad in [
            SimConfig { step_ms: 86_400_001, ..ok.clone() },
            SimConfig { step_ms: 0, ..ok.clone() },
            SimConfig { impact: 11.0, ..ok.clone() },
            SimConfig { impact: f64::NAN, ..ok.clone() },
            SimConfig { turnover_leverage_exponent: f64::NAN, ..ok.clone() },
            SimConfig { oi_drift_per_hour: f64::NAN, ..ok.clone() },
            SimConfig { oi_drift_per_hour: f64::INFINITY, ..ok.clone() },
            SimConfig { leverage_mix: vec![(10.0, 0.0), (50.0, 0.0)], ..ok.clone() },
            SimConfig { start_price: 5e-324, ..ok.clone() },
            SimConfig { start_ms: i64::MAX - 10, ..ok.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(LiqError::Invalid(_))), "{bad:?}");
        }
        assert!(SimConfig { impact: 10.0, step_ms: 86_400_000, ..ok }.validate().is_ok());
    }

    #[test]
    fn a_huge_flow_opens_a_bounded_number_of_positions() {
        let mut s = sim(5, 0.0);
        let before = s.books[0].cohorts().count();
        let mut trades = Vec::new();
        // 1e15 USD at a 10k median size would be 1e11 positions a side.
        s.open_flow(0, [1e15, 1e15], &[(90_000.0, 1.0)], 100, &mut trades);
        let opened = s.books[0].cohorts().count() - before;
        assert!(opened <= 2 * 2 * 50_000, "{opened}");
        let (l, sh) = (s.books[0].side_usd(LONG), s.books[0].side_usd(SHORT));
        assert!(l >= 1e15 && sh >= 1e15 && l < 1.01e15, "{l} {sh}");
        // Weights near the largest float still give a finite open interest.
        let f = venue("binance-usdm").unwrap().current();
        let m = MarginModel::new(f.rules, 1.0, 0.0, TierTable::flat(0.004, 0.0, 125.0)).unwrap();
        let big = Simulator::new(SimConfig { start_oi_usd: 2e7, ..SimConfig::default() }, vec![(m, 1e308)]).unwrap();
        assert!((big.books[0].side_usd(LONG) - 2e7).abs() < 1e3);
    }

    #[test]
    fn impact_makes_cascades() {
        // With impact, the largest step moves are larger (liquidations push price further).
        let worst = |impact: f64| -> f64 {
            let mut s = sim(11, impact);
            (0..1_000).map(|_| s.step()).map(|st| (st.close / st.open).ln().abs()).fold(0.0, f64::max)
        };
        assert!(worst(3.0) > worst(0.0));
    }
}
