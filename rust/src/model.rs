//! The estimation model: bars of price and open interest in, a position book per venue out.
//!
//! Every bar, per venue: (1) the bar's low sweeps the longs whose liquidation price it
//! reaches and its high the shorts — that is the bar's predicted liquidation (plus the optional
//! `background` and `swing` shares of open interest for what the book does not hold); (2) part of the
//! book closes (turnover, faster for high leverage) and decays; (3) the book is brought to
//! the bar's closing open interest: a drop closes every cohort pro rata, a rise (and the
//! turnover) opens new cohorts — on **both** sides, since every contract has a long and a
//! short — at entries from the bar (entry rule) for each point of the leverage mix, with the
//! liquidation price from the venue's exact margin maths. New cohorts whose liquidation price
//! the bar itself already crossed are partly liquidated within the bar (`intrabar`).
//! Everything is a documented parameter ([`Params`]) with a default.

use crate::book::{Book, LONG, NewCohort, SHORT};
use crate::error::{LiqError, Result};
use crate::grid::PriceGrid;
use crate::margin::{ContractKind, MarginInput, MarginModel};

/// One bar of one venue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    /// Bar open time, UTC epoch ms.
    pub ts_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Single-sided open interest in USD at the bar's close; NaN when unknown (the book keeps
    /// its size).
    pub oi_usd: f64,
    /// Taker buy minus taker sell volume in base units; NaN when unknown.
    pub taker_net_base: f64,
}

/// Where new positions enter.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryRule {
    /// (high + low + close) / 3.
    Typical,
    Close,
    /// `n` points evenly spread over [low, high] (midpoints of n equal slices).
    Range(usize),
    /// The bar's traded volume by price (given per bar), as the volume-weighted prices of `n`
    /// equal-volume slices; falls back to `Range(n)` without a profile.
    Profile(usize),
}

/// How new open interest splits between leveraged and hedged holders on each side.
#[derive(Clone, Debug, PartialEq)]
pub enum SideRule {
    /// Both sides take the full leverage mix.
    Even,
    /// The passive side of the bar's net taker flow is partly hedged (never liquidated):
    /// share `tilt·|flow|`, `flow = taker_net_usd / (|taker_net_usd| + new OI usd)`.
    TakerTilt(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// (leverage, weight) of the leverage mix; weights are normalised.
    pub leverage_mix: Vec<(f64, f64)>,
    /// Log-normal spread of each mix leverage (σ of ln leverage); 0 keeps the points exact.
    pub leverage_spread: f64,
    /// Points per mix leverage when spread (odd numbers keep the centre).
    pub leverage_points: usize,
    pub entry: EntryRule,
    pub side: SideRule,
    /// Share of positions closed (and re-opened at current prices) per hour, at 10x.
    pub turnover_per_hour: f64,
    /// Turnover scales with (leverage/10)^exponent: high leverage is held for shorter.
    pub turnover_leverage_exponent: f64,
    /// Share of the book that disappears per hour without being re-opened (time decay).
    pub decay_per_hour: f64,
    /// Share of a new cohort whose liquidation price its own bar already crossed that is
    /// liquidated within the bar.
    pub intrabar: f64,
    /// Representative position size (USD) used to pick the maintenance tier.
    pub position_usd: f64,
    /// Cohorts whose notional fell below this share of their band's are dropped.
    pub prune_below: f64,
    /// Liquidations of positions the book does not hold (cross margin, odd leverage): per bar,
    /// `background × open interest × (open − low)/open` for longs, `(high − open)/open` for
    /// shorts.
    pub background: f64,
    /// Liquidations of positions opened and liquidated within the bar (gross flow that the
    /// closing open interest does not show): per bar, `swing × open interest × w·(w/1 %)^(e − 1)`
    /// with `e = swing_exponent` and `w` the bar's largest fall (longs) / rise (shorts) relative
    /// to its open under the usual OHLC path — an up bar (close ≥ open) runs open → low → high
    /// → close, a down bar open → high → low → close — see [`swings`]. 0 turns it off.
    pub swing: f64,
    /// Exponent of the swing term (1: linear in the swing, like `background`).
    pub swing_exponent: f64,
}

/// The bar's largest fall (for longs) and largest rise (for shorts), as fractions of its open,
/// under the usual OHLC path: an up bar (close ≥ open) runs open → low → high → close, so its
/// largest rise is the whole range and its largest fall the bigger of open → low and
/// high → close; a down bar runs open → high → low → close, the mirror image. Longs opened
/// on the way up are liquidated by the fall after the high, shorts opened on the way down by
/// the rebound after the low: swings the open-to-extreme excursion misses.
#[must_use]
pub fn swings(bar: &Bar) -> (f64, f64) {
    let (o, h, l, c) = (bar.open, bar.high, bar.low, bar.close);
    let (fall, rise) = if c >= o { ((o - l).max(h - c), h - l) } else { (h - l, (h - o).max(c - l)) };
    (fall.max(0.0) / o, rise.max(0.0) / o)
}

impl Default for Params {
    fn default() -> Self {
        Params {
            leverage_mix: vec![(5.0, 0.15), (10.0, 0.30), (25.0, 0.25), (50.0, 0.20), (100.0, 0.10)],
            leverage_spread: 0.2,
            leverage_points: 7,
            entry: EntryRule::Range(3),
            side: SideRule::Even,
            turnover_per_hour: 0.05,
            turnover_leverage_exponent: 0.5,
            decay_per_hour: 0.0,
            intrabar: 0.5,
            position_usd: 10_000.0,
            prune_below: 1e-9,
            background: 0.0,
            swing: 0.0,
            swing_exponent: 1.0,
        }
    }
}

impl Params {
    /// Check every value; the error names the parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(LiqError::Invalid(m));
        if self.leverage_mix.is_empty() {
            return bad("leverage_mix must not be empty".into());
        }
        for &(l, w) in &self.leverage_mix {
            if !(l.is_finite() && l >= 1.0 && w.is_finite() && w >= 0.0) {
                return bad(format!("leverage_mix entries need leverage >= 1 and weight >= 0, got ({l}, {w})"));
            }
        }
        if self.leverage_mix.iter().map(|m| m.1).sum::<f64>() <= 0.0 {
            return bad("leverage_mix weights must not all be 0".into());
        }
        let unit = |name: &str, v: f64| -> Result<()> {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { bad(format!("{name} must be in [0, 1], got {v}")) }
        };
        unit("turnover_per_hour", self.turnover_per_hour)?;
        unit("decay_per_hour", self.decay_per_hour)?;
        unit("intrabar", self.intrabar)?;
        unit("prune_below", self.prune_below)?;
        if !(self.background.is_finite() && (0.0..=10.0).contains(&self.background)) {
            return bad(format!("background must be in [0, 10], got {}", self.background));
        }
        if !(self.swing.is_finite() && (0.0..=10.0).contains(&self.swing)) {
            return bad(format!("swing must be in [0, 10], got {}", self.swing));
        }
        if !(self.swing_exponent.is_finite() && (0.5..=4.0).contains(&self.swing_exponent)) {
            return bad(format!("swing_exponent must be in [0.5, 4], got {}", self.swing_exponent));
        }
        if !(self.leverage_spread.is_finite() && (0.0..=2.0).contains(&self.leverage_spread)) {
            return bad(format!("leverage_spread must be in [0, 2], got {}", self.leverage_spread));
        }
        if !(1..=64).contains(&self.leverage_points) {
            return bad(format!("leverage_points must be in 1..=64, got {}", self.leverage_points));
        }
        if !(self.turnover_leverage_exponent.is_finite() && self.turnover_leverage_exponent.abs() <= 4.0) {
            return bad(format!(
                "turnover_leverage_exponent must be in [-4, 4], got {}",
                self.turnover_leverage_exponent
            ));
        }
        if !(self.position_usd.is_finite() && self.position_usd > 0.0) {
            return bad(format!("position_usd must be > 0, got {}", self.position_usd));
        }
        if let EntryRule::Range(n) | EntryRule::Profile(n) = self.entry
            && !(1..=64).contains(&n)
        {
            return bad(format!("entry range points must be in 1..=64, got {n}"));
        }
        if let SideRule::TakerTilt(t) = self.side {
            unit("taker tilt", t)?;
        }
        Ok(())
    }

    /// The nominal leverage points (leverage, weight): one book band each. With a spread,
    /// each mix leverage is split into `leverage_points` equal-probability strata of its
    /// log-normal spread; these are the strata centres.
    #[must_use]
    pub fn leverage_points(&self) -> Vec<(f64, f64)> {
        self.leverage_points_at(0.5)
    }

    /// The leverage points of one bar: stratum j takes quantile `(j + u)/P` of the spread
    /// (u in (0, 1) changes from bar to bar, so over many bars the levels cover the spread
    /// smoothly while each bar opens only P cohorts per mix leverage).
    #[must_use]
    pub fn leverage_points_at(&self, u: f64) -> Vec<(f64, f64)> {
        let total: f64 = self.leverage_mix.iter().map(|m| m.1).sum();
        let p = if self.leverage_spread > 0.0 { self.leverage_points } else { 1 };
        let mut out = Vec::with_capacity(self.leverage_mix.len() * p);
        for &(l, w) in &self.leverage_mix {
            for j in 0..p {
                let z = if p == 1 { 0.0 } else { inv_norm(((j as f64 + u) / p as f64).clamp(1e-9, 1.0 - 1e-9)) };
                out.push(((l * (self.leverage_spread * z).exp()).max(1.01), w / total / p as f64));
            }
        }
        out
    }
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, |rel error| < 1.2e-9).
#[must_use]
pub fn inv_norm(q: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const LOW: f64 = 0.024_25;
    if q < LOW {
        let r = (-2.0 * q.ln()).sqrt();
        (((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5])
            / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
    } else if q <= 1.0 - LOW {
        let x = q - 0.5;
        let r = x * x;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * x
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -inv_norm(1.0 - q)
    }
}

/// Sub-fills of the first (warm-up) fill of an empty book.
const WARMUP_ROUNDS: usize = 8;

/// Offsets of bar number `seq` for the leverage strata and the entry points: additive
/// recurrences (golden ratio, √2 − 1), so successive bars fill the unit interval evenly.
#[must_use]
pub fn bar_offsets(seq: u64) -> (f64, f64) {
    let s = seq as f64;
    ((0.5 + s * 0.618_033_988_749_894_9).fract(), (0.5 + s * 0.414_213_562_373_095_1).fract())
}

/// Result of one bar of one venue.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepOut {
    /// Predicted liquidations (model USD, before the venue scale).
    pub long_usd: f64,
    pub short_usd: f64,
    /// The bar started after a hole in the series.
    pub gap: bool,
    /// The book was being built (first bar / no open interest yet): nothing predicted.
    pub warmup: bool,
}

/// The book of one venue and symbol, with the venue's maths and the model's state.
#[derive(Clone, Debug)]
pub struct VenueBook {
    /// Formulas of the venue, oldest first, with the instant each applies from.
    pub models: Vec<MarginModel>,
    pub since: Vec<Option<i64>>,
    pub book: Book,
    /// Bar interval (ms): a longer step between bars is a gap.
    pub bar_ms: i64,
    pub last_ts: Option<i64>,
    /// Cohorts the venue would refuse (margin below maintenance at the assumed size).
    pub rejected: u64,
    /// Bars stepped so far (drives the per-bar strata offsets).
    pub bars_seen: u64,
}

impl VenueBook {
    pub fn new(models: Vec<MarginModel>, since: Vec<Option<i64>>, bands: usize, bar_ms: i64) -> Result<Self> {
        if models.is_empty() || models.len() != since.len() {
            return Err(LiqError::Invalid("a venue book needs at least one margin model".into()));
        }
        if bar_ms <= 0 {
            return Err(LiqError::Invalid(format!("bar interval must be > 0 ms, got {bar_ms}")));
        }
        Ok(VenueBook { models, since, book: Book::new(bands), bar_ms, last_ts: None, rejected: 0, bars_seen: 0 })
    }

    fn model_at(&self, t: i64) -> &MarginModel {
        let mut k = self.models.len() - 1;
        while k > 0 && self.since[k].is_some_and(|s| t < s) {
            k -= 1;
        }
        &self.models[k]
    }
}

/// Check one bar; `index` names it in the error.
pub fn check_bar(bar: &Bar, index: usize) -> Result<()> {
    let err = |m: String| Err(LiqError::Bars { index: Some(index), message: m });
    for (name, v) in [("open", bar.open), ("high", bar.high), ("low", bar.low), ("close", bar.close)] {
        if !(v.is_finite() && v > 0.0) {
            return err(format!("{name} must be finite and > 0, got {v}"));
        }
    }
    if bar.high < bar.low {
        return err(format!("high {} is below low {}", bar.high, bar.low));
    }
    for (name, v) in [("open", bar.open), ("close", bar.close)] {
        if v > bar.high * (1.0 + 1e-9) || v < bar.low * (1.0 - 1e-9) {
            return err(format!("{name} {v} is outside [low {}, high {}]", bar.low, bar.high));
        }
    }
    if bar.oi_usd.is_infinite() || bar.oi_usd < 0.0 {
        return err(format!("oi_close_usd must be >= 0 (or empty), got {}", bar.oi_usd));
    }
    if bar.taker_net_base.is_infinite() {
        return err(format!("taker_net_base must be finite (or empty), got {}", bar.taker_net_base));
    }
    Ok(())
}

/// How far outside its bar's [low, high] a profile price may lie, as a share of price, and
/// still be used (clamped into the range): profiles are usually bucketed, and a bucket named
/// by its lower edge sits up to one bucket below the bar's low (the live bars' buckets are
/// about 0.05 % of price). Farther out the profile does not belong to the bar.
pub const PROFILE_SLACK: f64 = 0.01;

/// Check one bar's volume profile; `index` names the bar in the error. Prices must lie in the
/// bar's range (within [`PROFILE_SLACK`]), volumes be finite and >= 0: a price the bar never
/// traded at would open positions there, and a NaN or negative volume would silently drop
/// out of the weighting.
pub fn check_profile(profile: &[(f64, f64)], bar: &Bar, index: usize) -> Result<()> {
    let err = |m: String| Err(LiqError::Bars { index: Some(index), message: m });
    for &(price, volume) in profile {
        if !(price >= bar.low * (1.0 - PROFILE_SLACK) && price <= bar.high * (1.0 + PROFILE_SLACK)) {
            return err(format!(
                "profile price {price} is outside the bar's range [low {}, high {}]",
                bar.low, bar.high
            ));
        }
        if !(volume.is_finite() && volume >= 0.0) {
            return err(format!("profile volume must be finite and >= 0, got {volume} (at price {price})"));
        }
    }
    Ok(())
}

/// The model: parameters, leverage points and the per-venue books.
#[derive(Clone, Debug)]
pub struct Model {
    pub params: Params,
    /// (leverage, weight) per band.
    pub points: Vec<(f64, f64)>,
    /// Turnover per hour per band.
    taus: Vec<f64>,
    pub venues: Vec<VenueBook>,
}

impl Model {
    pub fn new(params: Params) -> Result<Self> {
        params.validate()?;
        let points = params.leverage_points();
        let taus = points
            .iter()
            .map(|&(l, _)| {
                (params.turnover_per_hour * (l / 10.0).powf(params.turnover_leverage_exponent)).clamp(0.0, 1.0)
            })
            .collect();
        Ok(Model { params, points, taus, venues: Vec::new() })
    }

    /// Add a venue; returns its index.
    pub fn add_venue(&mut self, models: Vec<MarginModel>, since: Vec<Option<i64>>, bar_ms: i64) -> Result<usize> {
        self.venues.push(VenueBook::new(models, since, self.points.len(), bar_ms)?);
        Ok(self.venues.len() - 1)
    }

    /// Advance venue `v` by one bar. `profile` is the bar's (price, volume) by price, used
    /// by the `Profile` entry rule. `on_liq(side, price, usd)` sees every liquidation.
    pub fn step(
        &mut self,
        v: usize,
        bar: &Bar,
        index: usize,
        profile: Option<&[(f64, f64)]>,
        mut on_liq: impl FnMut(usize, f64, f64),
    ) -> Result<StepOut> {
        check_bar(bar, index)?;
        if let Some(pr) = profile {
            check_profile(pr, bar, index)?;
        }
        let p = &self.params;
        let vb = self.venues.get_mut(v).ok_or_else(|| LiqError::Invalid(format!("no venue {v}")))?;
        let mut out = StepOut::default();
        let hours = match vb.last_ts {
            Some(prev) if bar.ts_ms <= prev => {
                return Err(LiqError::Bars {
                    index: Some(index),
                    message: format!(
                        "timestamps must increase: {} follows {prev} ({})",
                        bar.ts_ms,
                        if bar.ts_ms == prev { "duplicate" } else { "out of order" }
                    ),
                });
            }
            Some(prev) => {
                out.gap = bar.ts_ms - prev > vb.bar_ms;
                (bar.ts_ms - prev) as f64 / 3_600_000.0
            }
            None => 0.0,
        };
        vb.last_ts = Some(bar.ts_ms);
        let empty = vb.book.is_empty();
        if empty {
            out.warmup = true;
        } else {
            // (1) The bar's range liquidates what it crosses (and the background share).
            out.long_usd = p.background * vb.book.side_usd(LONG) * (bar.open - bar.low) / bar.open;
            out.short_usd = p.background * vb.book.side_usd(SHORT) * (bar.high - bar.open) / bar.open;
            if p.swing > 0.0 {
                // Gross intrabar flow liquidated by the bar's swings (see `swings`).
                let (fall, rise) = swings(bar);
                // (A flat swing adds nothing, also for exponents below 1, where 0^(e − 1) = ∞.)
                // (`swings` is never negative.)
                let w = |x: f64| {
                    if x == 0.0 || p.swing_exponent == 1.0 { x } else { x * (x / 0.01).powf(p.swing_exponent - 1.0) }
                };
                out.long_usd += p.swing * vb.book.side_usd(LONG) * w(fall);
                out.short_usd += p.swing * vb.book.side_usd(SHORT) * w(rise);
            }
            out.long_usd += vb.book.sweep_longs(bar.low, |price, usd| on_liq(LONG, price, usd)).usd;
            out.short_usd += vb.book.sweep_shorts(bar.high, |price, usd| on_liq(SHORT, price, usd)).usd;
            // (2) Turnover and decay.
            let keep_decay = (1.0 - p.decay_per_hour).powf(hours);
            for (b, tau) in self.taus.iter().enumerate() {
                let f = (1.0 - tau).powf(hours) * keep_decay;
                if f < 1.0 {
                    vb.book.scale_band(LONG, b as u16, f)?;
                    vb.book.scale_band(SHORT, b as u16, f)?;
                }
            }
        }
        // (3) Bring each side to the open interest (unknown OI keeps the book's size).
        let side_usd = [vb.book.side_usd(LONG), vb.book.side_usd(SHORT)];
        let target = if bar.oi_usd.is_nan() { None } else { Some(bar.oi_usd) };
        let mut open_usd = [0.0; 2];
        for s in [LONG, SHORT] {
            let Some(target) = target else { continue };
            if target >= side_usd[s] {
                open_usd[s] = target - side_usd[s];
            } else if side_usd[s] > 0.0 {
                vb.book.scale_side(s, target / side_usd[s])?;
            }
        }
        if open_usd[0] > 0.0 || open_usd[1] > 0.0 {
            let flow = if bar.taker_net_base.is_nan() {
                0.0
            } else {
                let net = bar.taker_net_base * bar.close;
                net / (net.abs() + open_usd[0].max(open_usd[1]) + 1e-12)
            };
            let hedged = match p.side {
                SideRule::Even => [0.0, 0.0],
                // Net taker buying: the shorts took the passive side; selling: the longs.
                SideRule::TakerTilt(t) => {
                    if flow > 0.0 {
                        [0.0, t * flow]
                    } else {
                        [-t * flow, 0.0]
                    }
                }
            };
            // The first fill is the whole book at once: spread it over several strata offsets
            // so the initial levels are as smooth as the ones built bar by bar later.
            let rounds = if empty { WARMUP_ROUNDS } else { 1 };
            let mut intrabar = [0.0; 2];
            for r in 0..rounds {
                let (u_lev, u_entry) = bar_offsets(vb.bars_seen * WARMUP_ROUNDS as u64 + r as u64);
                let points = p.leverage_points_at(u_lev);
                let share = [open_usd[0] / rounds as f64, open_usd[1] / rounds as f64];
                let ib = Self::open(vb, &points, p, bar, profile, u_entry, share, hedged)?;
                intrabar[0] += ib[0];
                intrabar[1] += ib[1];
            }
            if !empty {
                out.long_usd += intrabar[0];
                out.short_usd += intrabar[1];
            }
        }
        vb.book.prune(p.prune_below);
        vb.bars_seen += 1;
        Ok(out)
    }

    /// Open positions so that `usd[side]` of them survive the bar on each side; returns the
    /// intrabar liquidations (positions opened in the bar whose liquidation price the bar
    /// also crossed: they are part of the gross flow but not of the closing open interest).
    fn open(
        vb: &mut VenueBook,
        points: &[(f64, f64)],
        p: &Params,
        bar: &Bar,
        profile: Option<&[(f64, f64)]>,
        u_entry: f64,
        usd: [f64; 2],
        hedged: [f64; 2],
    ) -> Result<[f64; 2]> {
        let entries = entry_points(&p.entry, bar, profile, u_entry);
        let model = vb.model_at(bar.ts_ms).clone();
        let mut intrabar = [0.0; 2];
        let mut cohorts = Vec::with_capacity(entries.len() * points.len() * 2 + 2);
        for (s, side) in [(LONG, 1i8), (SHORT, -1i8)] {
            if usd[s] <= 0.0 {
                continue;
            }
            let first = cohorts.len();
            if hedged[s] > 0.0 {
                cohorts.push(NewCohort {
                    side,
                    entry: bar.close,
                    notional: hedged[s],
                    leverage: 1.0,
                    liq: f64::NAN,
                    open_ms: bar.ts_ms,
                    weight: hedged[s],
                    band: 0,
                });
            }
            // Shares of the side's flow; `crossed` is the share liquidated within the bar.
            let mut crossed = 0.0;
            for &(entry, ew) in &entries {
                let qty = match model.rules.kind {
                    ContractKind::Linear => p.position_usd / entry / model.contract_size,
                    ContractKind::Inverse => p.position_usd / model.contract_size,
                };
                for (b, &(lev, lw)) in points.iter().enumerate() {
                    let lev = lev.min(model.max_leverage_at(qty, entry));
                    let Ok(liq) = model.liq_price(f64::from(side), entry, qty, MarginInput::Leverage(lev)) else {
                        vb.rejected += 1;
                        continue;
                    };
                    let share = (1.0 - hedged[s]) * ew * lw;
                    let hit = if side > 0 { liq >= bar.low } else { liq <= bar.high };
                    let now = if hit { share * p.intrabar } else { 0.0 };
                    crossed += now;
                    cohorts.push(NewCohort {
                        side,
                        entry,
                        notional: share - now,
                        leverage: lev,
                        liq,
                        open_ms: bar.ts_ms,
                        weight: ew * lw,
                        band: b as u16,
                    });
                }
            }
            let survivors: f64 = cohorts[first..].iter().map(|c| c.notional).sum();
            if survivors <= 0.0 {
                cohorts.truncate(first);
                continue;
            }
            // Gross flow such that the survivors make up the open interest.
            let gross = usd[s] / survivors;
            for c in &mut cohorts[first..] {
                c.notional *= gross;
            }
            intrabar[s] = crossed * gross;
        }
        vb.book.open(&cohorts)?;
        Ok(intrabar)
    }
}

/// (entry price, weight) points of a bar under `rule`; `u` in (0, 1) offsets the range points
/// from bar to bar.
fn entry_points(rule: &EntryRule, bar: &Bar, profile: Option<&[(f64, f64)]>, u: f64) -> Vec<(f64, f64)> {
    let range = |n: usize| -> Vec<(f64, f64)> {
        (0..n).map(|j| (bar.low + (bar.high - bar.low) * (j as f64 + u) / n as f64, 1.0 / n as f64)).collect()
    };
    match rule {
        EntryRule::Typical => vec![((bar.high + bar.low + bar.close) / 3.0, 1.0)],
        EntryRule::Close => vec![(bar.close, 1.0)],
        EntryRule::Range(n) => range(*n),
        EntryRule::Profile(n) => {
            let n = *n;
            // (Checked by `check_profile`: prices near the range are clamped into it.)
            let mut pts: Vec<(f64, f64)> = profile
                .unwrap_or(&[])
                .iter()
                .filter(|&&(_, v)| v > 0.0)
                .map(|&(p, v)| (p.clamp(bar.low, bar.high), v))
                .collect();
            let total: f64 = pts.iter().map(|x| x.1).sum();
            if pts.is_empty() || total <= 0.0 {
                return range(n);
            }
            // Volume-weighted prices of n equal-volume slices of the profile: a bounded number
            // of entries however many trades the bar had.
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut groups = vec![(0.0, 0.0); n];
            let mut done = 0.0;
            for (p, v) in pts {
                let mut left = v;
                while left > 0.0 {
                    let g = ((done / total * n as f64) as usize).min(n - 1);
                    let room = ((g + 1) as f64 / n as f64 * total - done).max(0.0);
                    let take = if g == n - 1 { left } else { left.min(room) };
                    groups[g].0 += p * take;
                    groups[g].1 += take;
                    done += take;
                    left -= take;
                    if take <= 0.0 {
                        break;
                    }
                }
            }
            groups.into_iter().filter(|g| g.1 > 0.0).map(|(pv, v)| (pv / v, v / total)).collect()
        }
    }
}

/// A heatmap being recorded during a replay: one column per `resolution_ms` of time (aligned
/// to multiples of it), taken after the last bar of that interval.
#[derive(Clone, Debug)]
pub struct HeatmapRecorder {
    pub grid: PriceGrid,
    pub resolution_ms: i64,
    /// Keep bands whose leverage is within [lo, hi].
    pub lev_lo: f64,
    pub lev_hi: f64,
    pub long: Vec<f64>,
    pub short: Vec<f64>,
    /// Timeline index of each column.
    pub at: Vec<usize>,
}

/// Output of a replay over a merged timeline.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// Union of the venues' bar times, ascending.
    pub ts: Vec<i64>,
    /// Predicted liquidations per timeline step (USD, venue scales and weights applied).
    pub long_usd: Vec<f64>,
    pub short_usd: Vec<f64>,
    pub gap: Vec<bool>,
    pub warmup: Vec<bool>,
}

/// Traded volume by price of each bar of one venue (for the `Profile` entry rule).
pub type Profiles = Vec<Vec<(f64, f64)>>;

/// Replay bar series of several venues (each ascending) through `model`, merged on time;
/// `scale[v]` converts venue v's model notional to predicted USD (calibrated scale × venue
/// weight). `heatmap`, when given, gets a column after the last bar of each resolution interval.
/// `profiles[v]`, when given, holds one (price, volume) list per bar of venue v.
pub fn replay(
    model: &mut Model,
    bars: &[Vec<Bar>],
    scale: &[f64],
    mut heatmap: Option<&mut HeatmapRecorder>,
    profiles: Option<&[Option<Profiles>]>,
) -> Result<Replay> {
    if bars.len() != model.venues.len() || scale.len() != bars.len() {
        return Err(LiqError::Invalid(format!(
            "{} bar series and {} scales for {} venues",
            bars.len(),
            scale.len(),
            model.venues.len()
        )));
    }
    if let Some(p) = profiles {
        for (v, pv) in p.iter().enumerate() {
            if let Some(pv) = pv
                && (v >= bars.len() || pv.len() != bars[v].len())
            {
                return Err(LiqError::Invalid(format!("venue {v}: one volume profile per bar is needed")));
            }
        }
    }
    for (v, series) in bars.iter().enumerate() {
        for (i, pair) in series.windows(2).enumerate() {
            if pair[1].ts_ms <= pair[0].ts_ms {
                return Err(LiqError::Bars {
                    index: Some(i + 1),
                    message: format!(
                        "venue {v}: timestamps must increase ({} follows {}: {})",
                        pair[1].ts_ms,
                        pair[0].ts_ms,
                        if pair[1].ts_ms == pair[0].ts_ms { "duplicate" } else { "out of order" }
                    ),
                });
            }
        }
    }
    let mut ts: Vec<i64> = bars.iter().flatten().map(|b| b.ts_ms).collect();
    ts.sort_unstable();
    ts.dedup();
    if let Some(h) = heatmap.as_deref_mut() {
        if h.resolution_ms <= 0 {
            return Err(LiqError::Invalid(format!("heatmap resolution must be > 0 ms, got {}", h.resolution_ms)));
        }
        let cols = match (ts.first(), ts.last()) {
            (Some(a), Some(b)) => ((b.div_euclid(h.resolution_ms) - a.div_euclid(h.resolution_ms)) + 1) as usize,
            _ => 0,
        };
        if cols.saturating_mul(h.grid.len()) > crate::aggregate::MAX_HEATMAP_CELLS {
            return Err(LiqError::Grid(format!(
                "heatmap of {cols} × {} cells exceeds the limit of {}",
                h.grid.len(),
                crate::aggregate::MAX_HEATMAP_CELLS
            )));
        }
        for vb in &mut model.venues {
            if vb.book.grid() != Some(&h.grid) {
                vb.book.attach_grid(h.grid);
            }
        }
    }
    let n = ts.len();
    let mut out = Replay {
        ts: ts.clone(),
        long_usd: vec![0.0; n],
        short_usd: vec![0.0; n],
        gap: vec![false; n],
        warmup: vec![true; n],
    };
    let mut next = vec![0usize; bars.len()];
    let (mut col_l, mut col_s) = (Vec::new(), Vec::new());
    for (k, &t) in ts.iter().enumerate() {
        let mut any_live = false;
        for v in 0..bars.len() {
            let i = next[v];
            if i < bars[v].len() && bars[v][i].ts_ms == t {
                let profile = profiles.and_then(|p| p.get(v)).and_then(Option::as_ref).map(|pv| pv[i].as_slice());
                let o = model.step(v, &bars[v][i], i, profile, |_, _, _| {})?;
                out.long_usd[k] += o.long_usd * scale[v];
                out.short_usd[k] += o.short_usd * scale[v];
                out.gap[k] |= o.gap;
                any_live |= !o.warmup;
                next[v] += 1;
            }
        }
        out.warmup[k] = !any_live;
        if let Some(h) = heatmap.as_deref_mut()
            && (k + 1 == n || ts[k + 1].div_euclid(h.resolution_ms) != t.div_euclid(h.resolution_ms))
        {
            let g = h.grid.len();
            col_l.resize(g, 0.0);
            col_s.resize(g, 0.0);
            let mut sum_l = vec![0.0; g];
            let mut sum_s = vec![0.0; g];
            let keep: Vec<bool> = model.points.iter().map(|&(l, _)| l >= h.lev_lo && l <= h.lev_hi).collect();
            for (v, vb) in model.venues.iter().enumerate() {
                vb.book.hist_column(|b| keep[usize::from(b)], &mut col_l, &mut col_s)?;
                for j in 0..g {
                    sum_l[j] += col_l[j] * scale[v];
                    sum_s[j] += col_s[j] * scale[v];
                }
            }
            h.long.extend_from_slice(&sum_l);
            h.short.extend_from_slice(&sum_s);
            h.at.push(k);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiers::TierTable;
    use crate::venues::venue;

    fn binance_flat() -> MarginModel {
        let f = venue("binance-usdm").unwrap().current();
        MarginModel::new(f.rules, 1.0, 0.0, TierTable::flat(0.004, 0.0, 125.0)).unwrap()
    }

    fn bar(t: i64, o: f64, h: f64, l: f64, c: f64, oi: f64) -> Bar {
        Bar { ts_ms: t * 3_600_000, open: o, high: h, low: l, close: c, oi_usd: oi, taker_net_base: f64::NAN }
    }

    fn model(params: Params) -> Model {
        let mut m = Model::new(params).unwrap();
        m.add_venue(vec![binance_flat()], vec![None], 3_600_000).unwrap();
        m
    }

    #[test]
    fn both_sides_track_open_interest() {
        let mut m = model(Params { turnover_per_hour: 0.0, ..Params::default() });
        m.step(0, &bar(0, 100.0, 101.0, 99.0, 100.0, 1e6), 0, None, |_, _, _| {}).unwrap();
        assert!((m.venues[0].book.side_usd(LONG) - 1e6).abs() < 1e-3);
        assert!((m.venues[0].book.side_usd(SHORT) - 1e6).abs() < 1e-3);
        // OI drop: pro rata on both sides.
        m.step(0, &bar(1, 100.0, 100.2, 99.8, 100.0, 5e5), 1, None, |_, _, _| {}).unwrap();
        assert!((m.venues[0].book.side_usd(LONG) - 5e5).abs() < 1e-3);
        assert!((m.venues[0].book.side_usd(SHORT) - 5e5).abs() < 1e-3);
    }

    #[test]
    fn a_crash_liquidates_longs_not_shorts() {
        let mut m = model(Params::default());
        m.step(0, &bar(0, 100.0, 101.0, 99.0, 100.0, 1e6), 0, None, |_, _, _| {}).unwrap();
        let o = m.step(0, &bar(1, 100.0, 100.5, 80.0, 82.0, 8e5), 1, None, |_, _, _| {}).unwrap();
        assert!(o.long_usd > 3e5, "{o:?}");
        assert!(o.short_usd < o.long_usd / 10.0, "{o:?}");
        assert!(!o.gap && !o.warmup);
    }

    #[test]
    fn bad_bars_are_named() {
        let mut m = model(Params::default());
        assert!(matches!(
            m.step(0, &bar(0, 100.0, 99.0, 101.0, 100.0, 1.0), 3, None, |_, _, _| {}),
            Err(LiqError::Bars { index: Some(3), .. })
        ));
        assert!(m.step(0, &bar(0, f64::NAN, 101.0, 99.0, 100.0, 1.0), 0, None, |_, _, _| {}).is_err());
        assert!(m.step(0, &bar(0, 100.0, 101.0, 99.0, 100.0, -1.0), 0, None, |_, _, _| {}).is_err());
        m.step(0, &bar(5, 100.0, 101.0, 99.0, 100.0, 1.0), 0, None, |_, _, _| {}).unwrap();
        assert!(m.step(0, &bar(5, 100.0, 101.0, 99.0, 100.0, 1.0), 1, None, |_, _, _| {}).is_err());
        assert!(m.step(0, &bar(4, 100.0, 101.0, 99.0, 100.0, 1.0), 1, None, |_, _, _| {}).is_err());
        let o = m.step(0, &bar(9, 100.0, 101.0, 99.0, 100.0, 1.0), 2, None, |_, _, _| {}).unwrap();
        assert!(o.gap);
    }

    #[test]
    fn bad_profiles_are_named_and_bucket_edges_clamped() {
        let p = Params { entry: EntryRule::Profile(1), ..Params::default() };
        let b = bar(0, 100.0, 101.0, 99.0, 100.0, 1e6);
        for bad in [[(150.0, 1.0)], [(f64::NAN, 1.0)], [(100.0, f64::NAN)], [(100.0, -1.0)], [(100.0, f64::INFINITY)]] {
            let mut m = model(p.clone());
            assert!(
                matches!(m.step(0, &b, 4, Some(&bad), |_, _, _| {}), Err(LiqError::Bars { index: Some(4), .. })),
                "{bad:?}"
            );
            assert!(m.venues[0].book.is_empty(), "a refused bar leaves the book as it was");
        }
        // A bucket's lower edge just below the low enters at the low, not below it.
        let mut m = model(p);
        m.step(0, &b, 0, Some(&[(98.9, 1.0), (100.0, 0.0)]), |_, _, _| {}).unwrap();
        assert!(m.venues[0].book.cohorts().all(|c| c.entry == 99.0));
    }

    #[test]
    fn swings_follow_the_ohlc_path() {
        // Up bar: open → low → high → close. Largest rise: the whole range; largest fall:
        // the bigger of open → low and high → close.
        let (fall, rise) = swings(&bar(0, 100.0, 104.0, 99.0, 101.0, 1.0));
        assert!((fall - 0.03).abs() < 1e-12 && (rise - 0.05).abs() < 1e-12, "{fall} {rise}");
        // Down bar: open → high → low → close: a crash with a rebound is a rise for shorts.
        let (fall, rise) = swings(&bar(0, 100.0, 100.5, 95.0, 98.0, 1.0));
        assert!((fall - 0.055).abs() < 1e-12 && (rise - 0.03).abs() < 1e-12, "{fall} {rise}");
        assert_eq!(swings(&bar(0, 100.0, 100.0, 100.0, 100.0, 1.0)), (0.0, 0.0));
    }

    #[test]
    fn the_swing_term_adds_the_rebound_of_a_crash_to_the_shorts() {
        let crash = bar(1, 100.0, 100.1, 95.0, 99.0, 1e6);
        let run = |p: Params| {
            let mut m = model(Params { turnover_per_hour: 0.0, intrabar: 0.0, ..p });
            m.step(0, &bar(0, 100.0, 100.2, 99.8, 100.0, 1e6), 0, None, |_, _, _| {}).unwrap();
            m.step(0, &crash, 1, None, |_, _, _| {}).unwrap()
        };
        let off = run(Params::default());
        let on = run(Params { swing: 0.1, swing_exponent: 2.0, ..Params::default() });
        // Shorts: the rebound low → close, 0.1 × 1e6 × 0.04 × (0.04 / 0.01); longs: the whole
        // range high → low, 0.1 × 1e6 × 0.051 × 5.1.
        assert!((on.short_usd - off.short_usd - 16_000.0).abs() < 1e-6, "{on:?} {off:?}");
        assert!((on.long_usd - off.long_usd - 26_010.0).abs() < 1e-6, "{on:?} {off:?}");
        // An exponent below 1 on a bar with no rise (a straight fall) adds nothing to the shorts.
        let low_e = |p: Params| {
            let mut m = model(Params { turnover_per_hour: 0.0, intrabar: 0.0, ..p });
            m.step(0, &bar(0, 100.0, 100.2, 99.8, 100.0, 1e6), 0, None, |_, _, _| {}).unwrap();
            m.step(0, &bar(1, 100.0, 100.0, 97.0, 97.0, 1e6), 1, None, |_, _, _| {}).unwrap()
        };
        let flat = low_e(Params { swing: 0.1, swing_exponent: 0.5, ..Params::default() });
        assert!(flat.short_usd.is_finite() && flat.long_usd.is_finite(), "{flat:?}");
        assert_eq!(flat.short_usd, low_e(Params::default()).short_usd);
        assert!(Model::new(Params { swing: -1.0, ..Params::default() }).is_err());
        assert!(Model::new(Params { swing_exponent: 0.0, ..Params::default() }).is_err());
    }

    #[test]
    fn checkpoints_keep_the_swing_term_and_read_the_previous_format() {
        let p = Params { swing: 0.05, swing_exponent: 2.0, ..Params::default() };
        let mut m = model(p.clone());
        m.step(0, &bar(0, 100.0, 101.0, 99.0, 100.0, 1e6), 0, None, |_, _, _| {}).unwrap();
        let blob = m.checkpoint();
        let back = Model::restore(&blob).unwrap();
        assert_eq!(back.params, p);
        assert_eq!(back.checkpoint(), blob);
        // The same model written before the swing term (magic 2, no swing fields) reads with
        // the term off.
        let old = model(Params::default());
        let mut body = old.checkpoint();
        body.truncate(body.len() - 8); // the checksum
        body[..8].copy_from_slice(b"LQFMODL2");
        // magic, leverage mix (length + 5 pairs), spread, points, entry (2), side (2), 7 numbers
        let at = 8 + 8 * (1 + 2 * 5) + 8 * 6 + 8 * 7;
        body.drain(at..at + 16);
        let mut w = crate::book::Writer::default();
        w.bytes(&body);
        let back = Model::restore(&w.finish_legacy()).unwrap();
        assert_eq!(back.params, Params::default());
    }

    #[test]
    fn params_are_checked() {
        assert!(Model::new(Params { turnover_per_hour: 2.0, ..Params::default() }).is_err());
        assert!(Model::new(Params { leverage_mix: vec![], ..Params::default() }).is_err());
        assert!(Model::new(Params { leverage_mix: vec![(0.5, 1.0)], ..Params::default() }).is_err());
        assert!(Model::new(Params { entry: EntryRule::Range(0), ..Params::default() }).is_err());
        let pts = Params::default().leverage_points();
        assert_eq!(pts.len(), 35);
        assert!((inv_norm(0.975) - 1.959_963_985).abs() < 1e-8 && inv_norm(0.5).abs() < 1e-12);
        assert!((pts.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: the whole model (parameters, venue maths, books) as bytes, restored bit for bit.
// ---------------------------------------------------------------------------------------------

mod persist {
    use super::{EntryRule, Model, Params, SideRule, VenueBook};
    use crate::book::{Book, Reader, Writer};
    use crate::error::{LiqError, Result};
    use crate::margin::{ContractKind, FeeMode, MarginModel, MarginRules, MmBasis, TierMath};
    use crate::tiers::{Tier, TierTable, TierUnit};

    const MAGIC: &[u8] = b"LQFMODL4";
    /// The same layout with the earlier checksum.
    const MAGIC_V3: &[u8] = b"LQFMODL3";
    /// Checkpoints written before the swing term (earlier checksum): read with `swing` off.
    const MAGIC_V2: &[u8] = b"LQFMODL2";

    fn put_params(w: &mut Writer, p: &Params) {
        w.u64(p.leverage_mix.len() as u64);
        for &(l, x) in &p.leverage_mix {
            w.f64(l);
            w.f64(x);
        }
        w.f64(p.leverage_spread);
        w.u64(p.leverage_points as u64);
        let (tag, n) = match p.entry {
            EntryRule::Typical => (0, 0),
            EntryRule::Close => (1, 0),
            EntryRule::Range(n) => (2, n),
            EntryRule::Profile(n) => (3, n),
        };
        w.u64(tag);
        w.u64(n as u64);
        match p.side {
            SideRule::Even => {
                w.u64(0);
                w.f64(0.0);
            }
            SideRule::TakerTilt(t) => {
                w.u64(1);
                w.f64(t);
            }
        }
        for v in [
            p.turnover_per_hour,
            p.turnover_leverage_exponent,
            p.decay_per_hour,
            p.intrabar,
            p.position_usd,
            p.prune_below,
            p.background,
            p.swing,
            p.swing_exponent,
        ] {
            w.f64(v);
        }
    }

    fn get_params(r: &mut Reader, v2: bool) -> Result<Params> {
        let n = r.len(1024)?;
        let mut leverage_mix = Vec::with_capacity(n);
        for _ in 0..n {
            leverage_mix.push((r.f64()?, r.f64()?));
        }
        let leverage_spread = r.f64()?;
        let leverage_points = r.len(64)?;
        let entry = match (r.u64()?, r.len(64)?) {
            (0, _) => EntryRule::Typical,
            (1, _) => EntryRule::Close,
            (2, n) => EntryRule::Range(n),
            (3, n) => EntryRule::Profile(n),
            _ => return Err(LiqError::Checkpoint("bad entry rule".into())),
        };
        let side = match (r.u64()?, r.f64()?) {
            (0, _) => SideRule::Even,
            (1, t) => SideRule::TakerTilt(t),
            _ => return Err(LiqError::Checkpoint("bad side rule".into())),
        };
        Ok(Params {
            leverage_mix,
            leverage_spread,
            leverage_points,
            entry,
            side,
            turnover_per_hour: r.f64()?,
            turnover_leverage_exponent: r.f64()?,
            decay_per_hour: r.f64()?,
            intrabar: r.f64()?,
            position_usd: r.f64()?,
            prune_below: r.f64()?,
            background: r.f64()?,
            swing: if v2 { 0.0 } else { r.f64()? },
            swing_exponent: if v2 { 1.0 } else { r.f64()? },
        })
    }

    fn put_margin(w: &mut Writer, m: &MarginModel) {
        let r = m.rules;
        w.u64(u64::from(r.kind == ContractKind::Inverse));
        w.u64(u64::from(r.basis == MmBasis::Entry));
        w.u64(match r.fee_mode {
            FeeMode::None => 0,
            FeeMode::InMaintenance => 1,
            FeeMode::AtBankruptcy => 2,
        });
        w.u64(u64::from(r.tier_math == TierMath::WholePosition));
        w.f64(m.contract_size);
        w.f64(m.fee_rate);
        w.u64(u64::from(m.overridden));
        w.u64(match m.table.unit() {
            TierUnit::Quote => 0,
            TierUnit::Base => 1,
            TierUnit::Contracts => 2,
        });
        w.u64(m.table.tiers().len() as u64);
        for t in m.table.tiers() {
            for v in [t.floor, t.cap, t.mmr, t.maint_amount, t.max_leverage] {
                w.f64(v);
            }
        }
    }

    fn get_margin(r: &mut Reader) -> Result<MarginModel> {
        let kind = if r.u64()? == 1 { ContractKind::Inverse } else { ContractKind::Linear };
        let basis = if r.u64()? == 1 { MmBasis::Entry } else { MmBasis::Mark };
        let fee_mode = match r.u64()? {
            0 => FeeMode::None,
            1 => FeeMode::InMaintenance,
            2 => FeeMode::AtBankruptcy,
            _ => return Err(LiqError::Checkpoint("bad fee mode".into())),
        };
        let tier_math = if r.u64()? == 1 { TierMath::WholePosition } else { TierMath::Progressive };
        let contract_size = r.f64()?;
        let fee_rate = r.f64()?;
        let overridden = r.u64()? != 0;
        let unit = match r.u64()? {
            0 => TierUnit::Quote,
            1 => TierUnit::Base,
            2 => TierUnit::Contracts,
            _ => return Err(LiqError::Checkpoint("bad tier unit".into())),
        };
        let n = r.len(4096)?;
        let mut tiers = Vec::with_capacity(n);
        for _ in 0..n {
            tiers.push(Tier {
                floor: r.f64()?,
                cap: r.f64()?,
                mmr: r.f64()?,
                maint_amount: r.f64()?,
                max_leverage: r.f64()?,
            });
        }
        let table = TierTable::new(unit, tiers).map_err(|e| LiqError::Checkpoint(format!("tier table: {e}")))?;
        // Validate the numbers the way a fresh model would, then rebuild exactly.
        MarginModel::new(MarginRules { kind, basis, fee_mode, tier_math }, contract_size, fee_rate, table.clone())
            .map_err(|e| LiqError::Checkpoint(format!("margin model: {e}")))?;
        Ok(MarginModel::build(
            MarginRules { kind, basis, fee_mode, tier_math },
            contract_size,
            fee_rate,
            table,
            overridden,
        ))
    }

    impl Model {
        /// Serialise everything; [`Model::restore`] rebuilds it bit for bit.
        #[must_use]
        pub fn checkpoint(&self) -> Vec<u8> {
            let mut w = Writer::default();
            w.bytes(MAGIC);
            put_params(&mut w, &self.params);
            w.u64(self.venues.len() as u64);
            for vb in &self.venues {
                w.u64(vb.models.len() as u64);
                for (m, s) in vb.models.iter().zip(&vb.since) {
                    put_margin(&mut w, m);
                    w.u64(u64::from(s.is_some()));
                    w.u64(s.unwrap_or(0) as u64);
                }
                w.u64(vb.bar_ms as u64);
                w.u64(u64::from(vb.last_ts.is_some()));
                w.u64(vb.last_ts.unwrap_or(0) as u64);
                w.u64(vb.rejected);
                w.u64(vb.bars_seen);
                let book = vb.book.checkpoint();
                w.u64(book.len() as u64);
                w.bytes(&book);
            }
            w.finish()
        }

        pub fn restore(bytes: &[u8]) -> Result<Self> {
            let mut r = Reader::new(bytes)?;
            let v2 = r.magic(MAGIC, &[MAGIC_V3, MAGIC_V2], "model")? == Some(1);
            let params = get_params(&mut r, v2)?;
            let mut model = Model::new(params).map_err(|e| LiqError::Checkpoint(format!("parameters: {e}")))?;
            let nv = r.len(1024)?;
            for _ in 0..nv {
                let nm = r.len(64)?;
                let mut models = Vec::with_capacity(nm);
                let mut since = Vec::with_capacity(nm);
                for _ in 0..nm {
                    models.push(get_margin(&mut r)?);
                    let has = r.u64()? != 0;
                    let t = r.u64()? as i64;
                    since.push(has.then_some(t));
                }
                let bar_ms = r.u64()? as i64;
                let has_last = r.u64()? != 0;
                let last = r.u64()? as i64;
                let rejected = r.u64()?;
                let bars_seen = r.u64()?;
                let len = r.len(r.remaining())?;
                let book = Book::restore(r.take(len)?)?;
                if book.bands() != model.points.len() {
                    return Err(LiqError::Checkpoint("book bands do not match the parameters".into()));
                }
                let mut vb = VenueBook::new(models, since, model.points.len(), bar_ms)
                    .map_err(|e| LiqError::Checkpoint(e.to_string()))?;
                vb.book = book;
                vb.last_ts = has_last.then_some(last);
                vb.rejected = rejected;
                vb.bars_seen = bars_seen;
                model.venues.push(vb);
            }
            r.end()?;
            Ok(model)
        }
    }
}
