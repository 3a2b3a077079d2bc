//! The position book of one venue and symbol: live cohorts ordered by liquidation price.
//!
//! A cohort is a mass of similar positions (side, entry, leverage, liquidation price, opening
//! time). Longs and shorts are each indexed by liquidation price ([`LiqIndex`]: a B-tree of
//! 1-basis-point price buckets), so a bar whose low (high) sweeps through the longs (shorts)
//! removes exactly the swept cohorts in O(log b + k) for b occupied buckets and k swept
//! cohorts, never rescanning the book. Pro-rata closing and time decay are O(1): every
//! cohort's notional is stored relative to a scale factor per side and leverage band, and
//! scaling a band multiplies its factor. An optional histogram on a price grid is kept up to
//! date on every change, so the live map (a heatmap column) costs O(buckets), not O(cohorts).

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::error::{LiqError, Result};
use crate::grid::{Loc, PriceGrid};

pub const LONG: usize = 0;
pub const SHORT: usize = 1;

/// A cohort as it enters the book.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewCohort {
    /// +1 long, −1 short.
    pub side: i8,
    pub entry: f64,
    /// USD notional (already weighted).
    pub notional: f64,
    pub leverage: f64,
    /// Liquidation price; NaN when none (the cohort is never swept).
    pub liq: f64,
    pub open_ms: i64,
    /// Share of the opening flow this cohort represents (leverage-mix × entry weight).
    pub weight: f64,
    /// Scale group: cohorts of one band close and decay together.
    pub band: u16,
}

/// Cohort ids ordered by liquidation price, in buckets of 1 basis point of ln(price): a hash
/// map from bucket to its (unordered) entries for O(1) inserts and removals, and a B-tree of
/// the occupied buckets, touched only when a bucket empties or fills. A sweep walks the
/// occupied buckets beyond the boundary, takes them whole and filters only the boundary bucket
/// exactly. Sweeps return entries sorted by (price, id), so results never depend on the order
/// inside buckets.
#[derive(Clone, Debug, Default)]
struct LiqIndex {
    buckets: HashMap<i64, Vec<(f64, u32)>, BuildKeyHasher>,
    occupied: BTreeSet<i64>,
    /// Position of each cohort id inside its bucket (indexed by id).
    pos: Vec<u32>,
    len: usize,
}

const BUCKET_LN: f64 = 1e-4;

impl LiqIndex {
    /// Bucket of a price; monotone in the price, so a higher bucket means a higher price.
    #[inline]
    fn key(liq: f64) -> i64 {
        (liq.ln() / BUCKET_LN).floor() as i64
    }

    fn insert(&mut self, liq: f64, id: u32) {
        let k = Self::key(liq);
        let v = self.buckets.entry(k).or_default();
        if v.is_empty() {
            self.occupied.insert(k);
        }
        if self.pos.len() <= id as usize {
            self.pos.resize(id as usize + 1, 0);
        }
        self.pos[id as usize] = v.len() as u32;
        v.push((liq, id));
        self.len += 1;
    }

    fn remove(&mut self, liq: f64, id: u32) {
        let k = Self::key(liq);
        let v = self.buckets.get_mut(&k).expect("indexed cohort has a bucket");
        let p = self.pos[id as usize] as usize;
        debug_assert_eq!(v[p].1, id);
        v.swap_remove(p);
        if let Some(&(_, moved)) = v.get(p) {
            self.pos[moved as usize] = p as u32;
        }
        if v.is_empty() {
            self.buckets.remove(&k);
            self.occupied.remove(&k);
        }
        self.len -= 1;
    }

    /// Remove and return every entry with price >= `x`, sorted.
    fn take_at_or_above(&mut self, x: f64) -> Vec<(f64, u32)> {
        let k = Self::key(x);
        let whole = self.occupied.split_off(&(k + 1));
        let mut out = self.take_buckets(whole);
        self.take_from_bucket(k, |liq| liq >= x, &mut out);
        self.finish(out)
    }

    /// Remove and return every entry with price <= `x`, sorted.
    fn take_at_or_below(&mut self, x: f64) -> Vec<(f64, u32)> {
        let k = Self::key(x);
        let rest = self.occupied.split_off(&k);
        let whole = std::mem::replace(&mut self.occupied, rest);
        let mut out = self.take_buckets(whole);
        self.take_from_bucket(k, |liq| liq <= x, &mut out);
        self.finish(out)
    }

    fn take_all(&mut self) -> Vec<(f64, u32)> {
        let whole = std::mem::take(&mut self.occupied);
        let out = self.take_buckets(whole);
        self.finish(out)
    }

    fn take_buckets(&mut self, keys: BTreeSet<i64>) -> Vec<(f64, u32)> {
        let mut out = Vec::new();
        for k in keys {
            out.extend(self.buckets.remove(&k).unwrap_or_default());
        }
        out
    }

    /// Move the entries of bucket `k` that satisfy `take` into `out`.
    fn take_from_bucket(&mut self, k: i64, take: impl Fn(f64) -> bool, out: &mut Vec<(f64, u32)>) {
        let Some(v) = self.buckets.get_mut(&k) else { return };
        let mut i = 0;
        while i < v.len() {
            if take(v[i].0) {
                out.push(v.swap_remove(i));
                if let Some(&(_, moved)) = v.get(i) {
                    self.pos[moved as usize] = i as u32;
                }
            } else {
                i += 1;
            }
        }
        if v.is_empty() {
            self.buckets.remove(&k);
            self.occupied.remove(&k);
        }
    }

    fn finish(&mut self, mut out: Vec<(f64, u32)>) -> Vec<(f64, u32)> {
        self.len -= out.len();
        out.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    }

    /// Entries with price in [lo, hi] (not removed).
    fn range(&self, lo: f64, hi: f64) -> Vec<(f64, u32)> {
        self.occupied
            .range(Self::key(lo)..=Self::key(hi))
            .flat_map(|k| self.buckets[k].iter().copied())
            .filter(|&(liq, _)| liq >= lo && liq <= hi)
            .collect()
    }
}

/// Hasher for bucket keys (small integers): one multiply, no `SipHash` (denial of service
/// is not a concern for keys derived from prices).
#[derive(Clone, Copy, Debug, Default)]
struct BuildKeyHasher;

#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

impl std::hash::BuildHasher for BuildKeyHasher {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// A live cohort.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cohort {
    pub side: i8,
    pub entry: f64,
    /// Notional relative to the band's scale: USD = `stored × scale(side, band)`.
    stored: f64,
    pub leverage: f64,
    pub liq: f64,
    pub open_ms: i64,
    pub weight: f64,
    pub band: u16,
    /// Slot generation: a recycled slot gets a new one, so stale queue entries are detected.
    generation: u32,
    alive: bool,
}

impl Cohort {
    #[must_use]
    pub fn side_index(&self) -> usize {
        usize::from(self.side < 0)
    }
}

/// Histogram of live notional by (side, band, bucket) on a grid, padded with a below and an
/// above cell per row, in stored (unscaled) units.
#[derive(Clone, Debug, PartialEq)]
struct Hist {
    grid: PriceGrid,
    width: usize,
    cells: Vec<f64>,
    /// Cohorts per cell: an emptied cell is reset to exactly 0 (no rounding residue).
    counts: Vec<u32>,
}

impl Hist {
    fn add(&mut self, cell: usize, stored: f64) {
        self.cells[cell] += stored;
        self.counts[cell] += 1;
    }

    fn sub(&mut self, cell: usize, stored: f64) {
        self.counts[cell] -= 1;
        self.cells[cell] = if self.counts[cell] == 0 { 0.0 } else { self.cells[cell] - stored };
    }

    fn slot(&self, liq: f64) -> usize {
        match self.grid.locate(liq) {
            Loc::Below => 0,
            Loc::In(k) => k + 1,
            Loc::Above => self.width - 1,
        }
    }
}

/// What a sweep liquidated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sweep {
    /// USD liquidated.
    pub usd: f64,
    /// Cohorts removed.
    pub cohorts: usize,
}

#[derive(Clone, Debug)]
pub struct Book {
    /// Cohorts in opening order; dead slots are reclaimed by [`Book::compact`], so recent
    /// cohorts (the ones sweeps hit most) stay together in memory.
    slots: Vec<Cohort>,
    /// Per side: every live cohort with a liquidation price, ordered by it.
    index: [LiqIndex; 2],
    /// Per (side, band): cohorts in opening order, for pruning the oldest.
    fifo: Vec<VecDeque<(u32, u32)>>,
    bands: usize,
    /// Per (side, band): USD per stored unit.
    scale: Vec<f64>,
    /// Per (side, band): sum of stored notional of live cohorts.
    stored_sum: Vec<f64>,
    /// Per (side, band): live cohorts.
    group_live: Vec<usize>,
    hist: Option<Hist>,
    live: usize,
}

/// Scale factors are renormalised into the cohorts before they underflow.
const RENORM_BELOW: f64 = 1e-150;

impl Book {
    /// An empty book with `bands` scale groups (at least 1).
    #[must_use]
    pub fn new(bands: usize) -> Self {
        let bands = bands.max(1);
        Book {
            slots: Vec::new(),
            index: [LiqIndex::default(), LiqIndex::default()],
            fifo: vec![VecDeque::new(); 2 * bands],
            bands,
            scale: vec![1.0; 2 * bands],
            stored_sum: vec![0.0; 2 * bands],
            group_live: vec![0; 2 * bands],
            hist: None,
            live: 0,
        }
    }

    #[must_use]
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Number of live cohorts.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    #[inline]
    fn group(&self, side: usize, band: u16) -> usize {
        side * self.bands + usize::from(band)
    }

    /// USD notional of a live cohort.
    #[must_use]
    pub fn usd(&self, c: &Cohort) -> f64 {
        c.stored * self.scale[self.group(c.side_index(), c.band)]
    }

    /// Live USD notional of one side (`LONG` or `SHORT`).
    #[must_use]
    pub fn side_usd(&self, side: usize) -> f64 {
        (0..self.bands).map(|b| self.stored_sum[side * self.bands + b] * self.scale[side * self.bands + b]).sum()
    }

    /// Live USD notional of one (side, band).
    #[must_use]
    pub fn band_usd(&self, side: usize, band: u16) -> f64 {
        let g = self.group(side, band);
        self.stored_sum[g] * self.scale[g]
    }

    /// Attach a histogram on `grid` (rebuilt from the live cohorts); later changes keep it
    /// current.
    pub fn attach_grid(&mut self, grid: PriceGrid) {
        let width = grid.len() + 2;
        let mut hist =
            Hist { grid, width, cells: vec![0.0; 2 * self.bands * width], counts: vec![0; 2 * self.bands * width] };
        for c in self.slots.iter().filter(|c| c.alive && !c.liq.is_nan()) {
            let row = self.group(c.side_index(), c.band) * width;
            let slot = hist.slot(c.liq);
            hist.add(row + slot, c.stored);
        }
        self.hist = Some(hist);
    }

    #[must_use]
    pub fn grid(&self) -> Option<&PriceGrid> {
        self.hist.as_ref().map(|h| &h.grid)
    }

    /// Open cohorts. Errors (nothing is changed) when a cohort has a bad side, band, a
    /// non-positive entry or leverage, a negative or non-finite notional.
    pub fn open(&mut self, cohorts: &[NewCohort]) -> Result<()> {
        for (i, c) in cohorts.iter().enumerate() {
            let bad = if c.side != 1 && c.side != -1 {
                Some("side must be +1 or -1")
            } else if usize::from(c.band) >= self.bands {
                Some("band out of range")
            } else if !(c.entry > 0.0 && c.entry.is_finite()) {
                Some("entry must be finite and > 0")
            } else if !(c.notional >= 0.0 && c.notional.is_finite()) {
                Some("notional must be finite and >= 0")
            } else if !(c.leverage > 0.0 && c.leverage.is_finite()) {
                Some("leverage must be finite and > 0")
            } else if !(c.liq.is_nan() || (c.liq > 0.0 && c.liq.is_finite())) {
                Some("liquidation price must be finite and > 0, or NaN")
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(LiqError::Invalid(format!("cohort {i}: {why}")));
            }
        }
        for c in cohorts {
            if c.notional > 0.0 {
                self.insert(c);
            }
        }
        Ok(())
    }

    fn insert(&mut self, n: &NewCohort) {
        let side = usize::from(n.side < 0);
        let g = self.group(side, n.band);
        let stored = n.notional / self.scale[g];
        let id = self.slots.len() as u32;
        let generation = 1;
        self.slots.push(Cohort {
            side: n.side,
            entry: n.entry,
            stored,
            leverage: n.leverage,
            liq: n.liq,
            open_ms: n.open_ms,
            weight: n.weight,
            band: n.band,
            generation,
            alive: true,
        });
        if !n.liq.is_nan() {
            self.index[side].insert(n.liq, id);
            if let Some(h) = &mut self.hist {
                let s = h.slot(n.liq);
                h.add(g * h.width + s, stored);
            }
        }
        self.fifo[g].push_back((id, generation));
        self.stored_sum[g] += stored;
        self.group_live[g] += 1;
        self.live += 1;
    }

    /// Remove a live cohort; returns its USD notional.
    fn remove(&mut self, id: u32) -> f64 {
        let c = self.slots[id as usize];
        debug_assert!(c.alive);
        let side = c.side_index();
        let g = self.group(side, c.band);
        if !c.liq.is_nan()
            && let Some(h) = &mut self.hist
        {
            let s = h.slot(c.liq);
            h.sub(g * h.width + s, c.stored);
        }
        self.stored_sum[g] -= c.stored;
        self.group_live[g] -= 1;
        self.slots[id as usize].alive = false;
        self.live -= 1;
        if self.live == 0 {
            // Drop rounding residue so an emptied book is exactly empty.
            self.stored_sum.fill(0.0);
            if let Some(h) = &mut self.hist {
                h.cells.fill(0.0);
            }
        }
        c.stored * self.scale[g]
    }

    /// Reclaim dead slots once they outnumber the live ones: live cohorts move down in their
    /// opening order and the index and queues are rebuilt (amortised O(1) per removal).
    fn maybe_compact(&mut self) {
        if self.slots.len() > 2 * self.live + 4096 {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut new_id = vec![u32::MAX; self.slots.len()];
        let mut slots = Vec::with_capacity(self.live + self.live / 2);
        for (old, c) in self.slots.iter().enumerate() {
            if c.alive {
                new_id[old] = slots.len() as u32;
                slots.push(*c);
            }
        }
        self.slots = slots;
        self.index = [LiqIndex::default(), LiqIndex::default()];
        for (id, c) in self.slots.iter().enumerate() {
            if !c.liq.is_nan() {
                self.index[c.side_index()].insert(c.liq, id as u32);
            }
        }
        let slots = &self.slots;
        for q in &mut self.fifo {
            *q = q
                .iter()
                .filter_map(|&(old, generation)| {
                    let id = *new_id.get(old as usize)?;
                    (id != u32::MAX && slots[id as usize].generation == generation).then_some((id, generation))
                })
                .collect();
        }
    }

    /// Liquidate every long whose liquidation price is at or above `low` (price fell to `low`).
    /// `on_each(liq_price, usd)` sees every liquidated cohort.
    pub fn sweep_longs(&mut self, low: f64, mut on_each: impl FnMut(f64, f64)) -> Sweep {
        if low.is_nan() {
            return Sweep::default();
        }
        if low <= 0.0 {
            return self.sweep_all(LONG, on_each);
        }
        let taken = self.index[LONG].take_at_or_above(low);
        self.drain(taken, &mut on_each)
    }

    /// Liquidate every short whose liquidation price is at or below `high`.
    pub fn sweep_shorts(&mut self, high: f64, mut on_each: impl FnMut(f64, f64)) -> Sweep {
        if high == f64::INFINITY {
            return self.sweep_all(SHORT, on_each);
        }
        if !(high > 0.0) {
            // NaN or a non-positive high sweeps nothing (no short liquidates at or below 0).
            return Sweep::default();
        }
        let taken = self.index[SHORT].take_at_or_below(high);
        self.drain(taken, &mut on_each)
    }

    fn sweep_all(&mut self, side: usize, mut on_each: impl FnMut(f64, f64)) -> Sweep {
        let taken = self.index[side].take_all();
        self.drain(taken, &mut on_each)
    }

    fn drain(&mut self, taken: Vec<(f64, u32)>, on_each: &mut impl FnMut(f64, f64)) -> Sweep {
        let mut out = Sweep::default();
        for (liq, id) in taken {
            let usd = self.remove(id);
            on_each(liq, usd);
            out.usd += usd;
            out.cohorts += 1;
        }
        self.maybe_compact();
        out
    }

    /// Multiply the notional of one (side, band) by `factor` (pro-rata closing, decay).
    pub fn scale_band(&mut self, side: usize, band: u16, factor: f64) -> Result<()> {
        if !(factor >= 0.0 && factor.is_finite()) {
            return Err(LiqError::Invalid(format!("scale factor must be finite and >= 0, got {factor}")));
        }
        let g = self.group(side, band);
        if factor == 0.0 {
            // Close the whole group.
            let queued: Vec<(u32, u32)> = self.fifo[g].drain(..).collect();
            for (id, generation) in queued {
                let c = self.slots[id as usize];
                if c.alive && c.generation == generation {
                    if !c.liq.is_nan() {
                        self.index[c.side_index()].remove(c.liq, id);
                    }
                    self.remove(id);
                }
            }
            self.maybe_compact();
            return Ok(());
        }
        self.scale[g] *= factor;
        if self.scale[g] < RENORM_BELOW {
            self.renormalise(g);
        }
        Ok(())
    }

    /// Multiply a whole side by `factor`.
    pub fn scale_side(&mut self, side: usize, factor: f64) -> Result<()> {
        for b in 0..self.bands {
            self.scale_band(side, b as u16, factor)?;
        }
        Ok(())
    }

    /// Fold a group's scale into its cohorts so the factor can restart at 1.
    fn renormalise(&mut self, g: usize) {
        let f = self.scale[g];
        for &(id, generation) in &self.fifo[g] {
            let c = &mut self.slots[id as usize];
            if c.alive && c.generation == generation {
                c.stored *= f;
            }
        }
        self.stored_sum[g] *= f;
        if let Some(h) = &mut self.hist {
            for x in &mut h.cells[g * h.width..(g + 1) * h.width] {
                *x *= f;
            }
        }
        self.scale[g] = 1.0;
    }

    /// Realized-liquidation evidence: a venue reported `usd` of `side` liquidated at `price`.
    /// Removes up to that much notional from the cohorts of that side whose liquidation price
    /// lies within `price·(1 ± tolerance)`, nearest first (a partly matched cohort is reduced).
    /// Returns the USD removed.
    pub fn evidence(&mut self, side: usize, price: f64, usd: f64, tolerance: f64) -> Result<f64> {
        if !(price > 0.0 && price.is_finite() && usd >= 0.0 && usd.is_finite() && (0.0..1.0).contains(&tolerance)) {
            return Err(LiqError::Invalid(format!(
                "evidence needs price > 0, usd >= 0 and tolerance in [0, 1); got {price}, {usd}, {tolerance}"
            )));
        }
        let (lo, hi) = (price * (1.0 - tolerance), price * (1.0 + tolerance));
        let mut near: Vec<(f64, u32)> =
            self.index[side].range(lo, hi).into_iter().map(|(liq, id)| ((liq - price).abs(), id)).collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut left = usd;
        for (_, id) in near {
            if left <= 0.0 {
                break;
            }
            let c = self.slots[id as usize];
            let have = self.usd(&c);
            if have <= left {
                self.index[side].remove(c.liq, id);
                left -= self.remove(id);
            } else {
                let g = self.group(side, c.band);
                let cut = left / self.scale[g];
                self.slots[id as usize].stored -= cut;
                self.stored_sum[g] -= cut;
                if let Some(h) = &mut self.hist {
                    let s = h.slot(c.liq);
                    h.cells[g * h.width + s] -= cut; // the cohort stays: count unchanged
                }
                left = 0.0;
            }
        }
        self.maybe_compact();
        Ok(usd - left.max(0.0))
    }

    /// Drop the oldest cohorts of each group whose notional fell below `rel` of the group's
    /// live notional (they no longer change any map). Returns cohorts dropped.
    pub fn prune(&mut self, rel: f64) -> usize {
        let mut dropped = 0;
        for g in 0..2 * self.bands {
            let floor = rel * self.stored_sum[g];
            while let Some(&(id, generation)) = self.fifo[g].front() {
                let c = self.slots[id as usize];
                if !(c.alive && c.generation == generation) {
                    self.fifo[g].pop_front();
                    continue;
                }
                if c.stored >= floor {
                    break;
                }
                self.fifo[g].pop_front();
                if !c.liq.is_nan() {
                    self.index[c.side_index()].remove(c.liq, id);
                }
                self.remove(id);
                dropped += 1;
            }
            // Keep queues from filling with entries of swept cohorts (amortised O(1)).
            if self.fifo[g].len() > 64 && self.fifo[g].len() > 4 * self.group_live[g].max(1) {
                let slots = &self.slots;
                self.fifo[g].retain(|&(id, gen_)| {
                    let c = &slots[id as usize];
                    c.alive && c.generation == gen_
                });
            }
        }
        self.maybe_compact();
        dropped
    }

    /// Live cohorts (in slot order).
    pub fn cohorts(&self) -> impl Iterator<Item = &Cohort> {
        self.slots.iter().filter(|c| c.alive)
    }

    /// The live map on the attached grid: USD per bucket for each side, summed over the bands
    /// for which `band_filter` is true. Returns `(long, short, [below, above] per side)`.
    pub fn hist_column(
        &self,
        band_filter: impl Fn(u16) -> bool,
        long: &mut [f64],
        short: &mut [f64],
    ) -> Result<[[f64; 2]; 2]> {
        let h = self.hist.as_ref().ok_or_else(|| LiqError::Invalid("no grid attached to the book".into()))?;
        let n = h.grid.len();
        if long.len() != n || short.len() != n {
            return Err(LiqError::Array(format!("map outputs must have {n} buckets")));
        }
        long.fill(0.0);
        short.fill(0.0);
        let mut outside = [[0.0; 2]; 2];
        for (side, out) in [(LONG, &mut *long), (SHORT, &mut *short)] {
            for b in 0..self.bands {
                if !band_filter(b as u16) {
                    continue;
                }
                let g = side * self.bands + b;
                let f = self.scale[g];
                let row = &h.cells[g * h.width..(g + 1) * h.width];
                for (o, x) in out.iter_mut().zip(&row[1..=n]) {
                    *o += x * f;
                }
                outside[side][0] += row[0] * f;
                outside[side][1] += row[n + 1] * f;
            }
            // Cancellation can leave tiny negative residues in emptied buckets.
            for o in out.iter_mut() {
                if *o < 0.0 {
                    *o = 0.0;
                }
            }
        }
        Ok(outside)
    }

    /// Exact live map on any grid by scanning the cohorts, with filters: `side` (None = both)
    /// and a leverage range `[lev_lo, lev_hi]`.
    pub fn snapshot(
        &self,
        grid: &PriceGrid,
        side: Option<usize>,
        lev_lo: f64,
        lev_hi: f64,
        long: &mut [f64],
        short: &mut [f64],
    ) -> Result<()> {
        self.snapshot_bands(grid, side, &[(lev_lo, lev_hi)], long, short)
    }

    /// [`Book::snapshot`] for several leverage bands in one scan of the book: band `b` fills
    /// `long`/`short[b·n .. (b+1)·n]` (`n` buckets) with the cohorts whose leverage lies in
    /// `[lo, hi]`, each cohort in the first band that holds it (bands sharing an end do not
    /// count a cohort twice). A scan per band cost the server's columns five passes per venue.
    pub fn snapshot_bands(
        &self,
        grid: &PriceGrid,
        side: Option<usize>,
        bands: &[(f64, f64)],
        long: &mut [f64],
        short: &mut [f64],
    ) -> Result<()> {
        let n = grid.len();
        if long.len() != n * bands.len() || short.len() != n * bands.len() {
            return Err(LiqError::Array(format!("map outputs must have {} bands × {n} buckets", bands.len())));
        }
        long.fill(0.0);
        short.fill(0.0);
        for c in self.cohorts() {
            let s = c.side_index();
            if side.is_some_and(|want| want != s) || c.liq.is_nan() {
                continue;
            }
            let Some(b) = bands.iter().position(|&(lo, hi)| lo <= c.leverage && c.leverage <= hi) else { continue };
            if let Loc::In(k) = grid.locate(c.liq) {
                let usd = self.usd(c);
                if s == LONG {
                    long[b * n + k] += usd;
                } else {
                    short[b * n + k] += usd;
                }
            }
        }
        Ok(())
    }

    /// Serialise the complete state; [`Book::restore`] rebuilds it bit for bit.
    #[must_use]
    pub fn checkpoint(&self) -> Vec<u8> {
        let fifo: usize = self.fifo.iter().map(VecDeque::len).sum();
        let cells = self.hist.as_ref().map_or(0, |h| h.cells.len());
        let mut w = Writer::with_capacity(64 + 32 * self.bands + 56 * self.slots.len() + 16 * fifo + 8 * cells);
        w.bytes(MAGIC);
        w.u64(self.bands as u64);
        w.u64(self.live as u64);
        w.f64s(&self.scale);
        w.f64s(&self.stored_sum);
        w.u64(self.slots.len() as u64);
        for c in &self.slots {
            // side, band, alive flag and generation packed in one word.
            w.u64(
                u64::from(c.side as u8)
                    | u64::from(c.band) << 8
                    | u64::from(c.alive) << 24
                    | u64::from(c.generation) << 32,
            );
            w.f64(c.entry);
            w.f64(c.stored);
            w.f64(c.leverage);
            w.f64(c.liq);
            w.u64(c.open_ms as u64);
            w.f64(c.weight);
        }
        for q in &self.fifo {
            w.u64(q.len() as u64);
            for &(id, generation) in q {
                w.u64(u64::from(id));
                w.u64(u64::from(generation));
            }
        }
        match &self.hist {
            None => w.u64(0),
            Some(h) => {
                w.u64(1);
                w.f64(h.grid.lo());
                w.f64(h.grid.hi());
                w.f64(h.grid.step());
                w.f64s(&h.cells);
            }
        }
        w.finish()
    }

    /// Rebuild a book from [`Book::checkpoint`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes)?;
        r.magic(MAGIC, &[MAGIC_V3], "book")?;
        let bands = r.len(1 << 16)?;
        if bands == 0 {
            return Err(LiqError::Checkpoint("zero bands".into()));
        }
        let live = r.len(usize::MAX)?;
        let scale = r.f64s(2 * bands)?;
        let stored_sum = r.f64s(2 * bands)?;
        let n = r.len(r.remaining() / 56)?;
        let mut slots = Vec::with_capacity(n);
        let mut index = [LiqIndex::default(), LiqIndex::default()];
        let mut alive_count = 0;
        for id in 0..n {
            let packed = r.u64()?;
            let c = Cohort {
                side: packed as u8 as i8,
                band: (packed >> 8) as u16,
                alive: (packed >> 24) & 0xff != 0,
                generation: (packed >> 32) as u32,
                entry: r.f64()?,
                stored: r.f64()?,
                leverage: r.f64()?,
                liq: r.f64()?,
                open_ms: r.u64()? as i64,
                weight: r.f64()?,
            };
            if c.side != 1 && c.side != -1 || usize::from(c.band) >= bands {
                return Err(LiqError::Checkpoint(format!("cohort {id} is corrupt")));
            }
            if c.alive {
                alive_count += 1;
                if !c.liq.is_nan() {
                    index[c.side_index()].insert(c.liq, id as u32);
                }
            }
            slots.push(c);
        }
        if alive_count != live {
            return Err(LiqError::Checkpoint("live count does not match the cohorts".into()));
        }
        let mut fifo = Vec::with_capacity(2 * bands);
        for _ in 0..2 * bands {
            let len = r.len(r.remaining() / 16)?;
            let mut q = VecDeque::with_capacity(len);
            for _ in 0..len {
                q.push_back((r.id(n)?, r.u64()? as u32));
            }
            fifo.push(q);
        }
        let hist = match r.u64()? {
            0 => None,
            1 => {
                let grid = PriceGrid::new(r.f64()?, r.f64()?, r.f64()?)
                    .map_err(|e| LiqError::Checkpoint(format!("grid: {e}")))?;
                let width = grid.len() + 2;
                let cells = r.f64s(2 * bands * width)?;
                let mut counts = vec![0u32; cells.len()];
                let probe = Hist { grid, width, cells: Vec::new(), counts: Vec::new() };
                for c in slots.iter().filter(|c| c.alive && !c.liq.is_nan()) {
                    counts[(c.side_index() * bands + usize::from(c.band)) * width + probe.slot(c.liq)] += 1;
                }
                Some(Hist { grid, width, cells, counts })
            }
            _ => return Err(LiqError::Checkpoint("bad histogram flag".into())),
        };
        r.end()?;
        let mut group_live = vec![0; 2 * bands];
        for c in slots.iter().filter(|c| c.alive) {
            group_live[c.side_index() * bands + usize::from(c.band)] += 1;
        }
        Ok(Book { slots, index, fifo, bands, scale, stored_sum, group_live, hist, live })
    }
}

const MAGIC: &[u8] = b"LQFBOOK4";
/// The same layout with the earlier checksum.
const MAGIC_V3: &[u8] = b"LQFBOOK3";

/// Little-endian writer with a trailing [`digest`] checksum.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer { buf: Vec::with_capacity(n) }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    pub(crate) fn f64s(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for &x in v {
            self.f64(x);
        }
    }
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let sum = digest(&self.buf);
        self.u64(sum);
        self.buf
    }

    /// The checksum earlier versions wrote (for tests of reading their checkpoints).
    #[cfg(test)]
    pub(crate) fn finish_legacy(mut self) -> Vec<u8> {
        let sum = fnv1a(&self.buf);
        self.u64(sum);
        self.buf
    }
}

/// Reader for [`Writer`] output; every read is bounds-checked and the checksum verified.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The bytes carry the checksum of earlier versions ([`fnv1a`]), which only their magics
    /// may use: a current magic with it is a corrupt checkpoint (see [`Reader::magic`]).
    legacy: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < 8 {
            return Err(LiqError::Checkpoint("truncated".into()));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let sum = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
        let legacy = if digest(body) == sum {
            false
        } else if fnv1a(body) == sum {
            true
        } else {
            return Err(LiqError::Checkpoint("checksum mismatch (corrupt or truncated)".into()));
        };
        Ok(Reader { buf: body, pos: 0, legacy })
    }

    /// Check the magic at the start: `current` with the current checksum, or one of `older`
    /// with the earlier one. Returns the index in `older` for an older magic.
    pub(crate) fn magic(&mut self, current: &[u8], older: &[&[u8]], what: &str) -> Result<Option<usize>> {
        let m = self.take(current.len())?;
        let bad = || LiqError::Checkpoint(format!("not a liqfast {what} checkpoint (bad magic or checksum)"));
        if m == current {
            return if self.legacy { Err(bad()) } else { Ok(None) };
        }
        match older.iter().position(|o| *o == m) {
            Some(k) if self.legacy => Ok(Some(k)),
            _ => Err(bad()),
        }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(LiqError::Checkpoint("truncated".into()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub(crate) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A length no larger than `max`.
    pub(crate) fn len(&mut self, max: usize) -> Result<usize> {
        let v = self.u64()?;
        if v > max as u64 {
            return Err(LiqError::Checkpoint(format!("length {v} out of range")));
        }
        Ok(v as usize)
    }
    fn id(&mut self, n: usize) -> Result<u32> {
        let v = self.u64()?;
        if v >= n as u64 {
            return Err(LiqError::Checkpoint(format!("cohort id {v} out of range")));
        }
        Ok(v as u32)
    }
    pub(crate) fn f64s(&mut self, expect: usize) -> Result<Vec<f64>> {
        let n = self.len(expect)?;
        if n != expect {
            return Err(LiqError::Checkpoint(format!("expected {expect} values, found {n}")));
        }
        (0..n).map(|_| self.f64()).collect()
    }
    pub(crate) fn end(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(LiqError::Checkpoint("trailing bytes".into()));
        }
        Ok(())
    }
}

/// Checksum of a checkpoint: each 8-byte word (the trailing bytes padded into one more) goes
/// through a multiply and an xor-shift, both invertible, so every bit of the state depends on
/// every earlier bit and no two corrupted words can cancel out in a structured way (they can
/// in [`fnv1a`], whose multiply only carries differences upward: flipping the sign bit of two
/// numbers left it unchanged). The length and a final avalanche (splitmix64's) close it.
/// About a cycle per byte, fast enough for checkpoints of millions of cohorts.
fn digest(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let step = |h: u64, w: u64| {
        let h = (h ^ w).wrapping_mul(K);
        h ^ (h >> 29)
    };
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        h = step(h, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = step(h, u64::from_le_bytes(last));
    h ^= b.len() as u64;
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// The checksum of checkpoints written before [`digest`] (still read, with their magics).
/// FNV-1a over 8-byte words (and the trailing bytes).
fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        h ^= u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    for &x in words.remainder() {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ b.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(side: i8, liq: f64, usd: f64, band: u16) -> NewCohort {
        NewCohort { side, entry: 100.0, notional: usd, leverage: 10.0, liq, open_ms: 0, weight: 1.0, band }
    }

    #[test]
    fn sweeps_take_exactly_the_crossed_levels() {
        let mut b = Book::new(2);
        b.open(&[
            c(1, 90.0, 10.0, 0),
            c(1, 95.0, 20.0, 1),
            c(1, 99.0, 5.0, 0),
            c(-1, 101.0, 7.0, 0),
            c(-1, 110.0, 3.0, 1),
        ])
        .unwrap();
        let s = b.sweep_longs(95.0, |_, _| {});
        assert_eq!((s.usd, s.cohorts), (25.0, 2));
        assert_eq!(b.sweep_longs(95.0, |_, _| {}).cohorts, 0, "a swept level is consumed once");
        let s = b.sweep_shorts(101.0, |_, _| {});
        assert_eq!((s.usd, s.cohorts), (7.0, 1));
        assert_eq!(b.len(), 2);
        assert_eq!(b.side_usd(LONG), 10.0);
    }

    #[test]
    fn scaling_is_pro_rata_and_new_cohorts_are_unaffected() {
        let mut b = Book::new(1);
        b.open(&[c(1, 90.0, 10.0, 0)]).unwrap();
        b.scale_side(LONG, 0.5).unwrap();
        b.open(&[c(1, 80.0, 10.0, 0)]).unwrap();
        assert_eq!(b.side_usd(LONG), 15.0);
        assert_eq!(b.sweep_longs(85.0, |_, _| {}).usd, 5.0);
        b.scale_side(LONG, 0.0).unwrap();
        assert!(b.is_empty() && b.side_usd(LONG) == 0.0);
    }

    #[test]
    fn renormalisation_keeps_values() {
        let mut b = Book::new(1);
        b.open(&[c(1, 90.0, 1e6, 0)]).unwrap();
        for _ in 0..400 {
            b.scale_side(LONG, 0.5).unwrap();
            b.open(&[c(1, 90.0, 1.0, 0)]).unwrap();
        }
        assert!((b.side_usd(LONG) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn evidence_removes_nearest_first() {
        let mut b = Book::new(1);
        b.open(&[c(1, 98.0, 10.0, 0), c(1, 100.5, 10.0, 0), c(1, 120.0, 10.0, 0)]).unwrap();
        let removed = b.evidence(LONG, 100.0, 15.0, 0.05).unwrap();
        assert_eq!(removed, 15.0);
        let left: Vec<(f64, f64)> = b.cohorts().map(|c| (c.liq, b.usd(c))).collect();
        assert!(left.contains(&(98.0, 5.0)) && left.contains(&(120.0, 10.0)) && left.len() == 2);
        assert!(b.evidence(LONG, -1.0, 1.0, 0.1).is_err());
    }

    #[test]
    fn histogram_tracks_changes() {
        let grid = PriceGrid::new(80.0, 120.0, 1.0).unwrap();
        let mut b = Book::new(2);
        b.open(&[c(1, 90.5, 10.0, 0), c(1, 95.5, 20.0, 1)]).unwrap();
        b.attach_grid(grid);
        b.open(&[c(-1, 105.5, 7.0, 1)]).unwrap();
        b.scale_band(LONG, 1, 0.5).unwrap();
        let (mut l, mut s) = (vec![0.0; 40], vec![0.0; 40]);
        b.hist_column(|_| true, &mut l, &mut s).unwrap();
        assert_eq!((l[10], l[15], s[25]), (10.0, 10.0, 7.0));
        let (mut l2, mut s2) = (vec![0.0; 40], vec![0.0; 40]);
        b.snapshot(&grid, None, 0.0, f64::INFINITY, &mut l2, &mut s2).unwrap();
        assert_eq!((l, s), (l2, s2));
    }

    #[test]
    fn snapshot_bands_is_one_snapshot_per_band_counting_each_cohort_once() {
        let grid = PriceGrid::new(80.0, 120.0, 1.0).unwrap();
        let mut b = Book::new(3);
        let with_lev = |mut x: NewCohort, lev: f64| {
            x.leverage = lev;
            x
        };
        b.open(&[
            with_lev(c(1, 90.5, 10.0, 0), 5.0),
            with_lev(c(1, 95.5, 20.0, 1), 10.0),
            with_lev(c(-1, 105.5, 7.0, 2), 50.0),
        ])
        .unwrap();
        let bands = [(0.0, 10.0), (10.0, 50.0), (50.0, f64::INFINITY)];
        let (mut l, mut s) = (vec![0.0; 120], vec![0.0; 120]);
        b.snapshot_bands(&grid, None, &bands, &mut l, &mut s).unwrap();
        // 10x sits on the shared end of the first two bands: counted in the first only.
        assert_eq!((l[10], l[15], l[40 + 15], s[40 + 25], s[80 + 25]), (10.0, 20.0, 0.0, 7.0, 0.0));
        assert_eq!(l.iter().sum::<f64>() + s.iter().sum::<f64>(), 37.0);
        let (mut l1, mut s1) = (vec![0.0; 40], vec![0.0; 40]);
        b.snapshot(&grid, Some(SHORT), 10.0, 50.0, &mut l1, &mut s1).unwrap();
        assert_eq!((l1.iter().sum::<f64>(), s1[25]), (0.0, 7.0));
        assert!(b.snapshot_bands(&grid, None, &bands, &mut l1, &mut s1).is_err());
    }

    #[test]
    fn checkpoint_round_trip_and_corruption() {
        let mut b = Book::new(3);
        b.attach_grid(PriceGrid::new(50.0, 150.0, 0.5).unwrap());
        b.open(&[c(1, 90.0, 10.0, 0), c(-1, 110.0, 4.0, 2), c(1, f64::NAN, 3.0, 1)]).unwrap();
        b.scale_band(SHORT, 2, 0.3).unwrap();
        b.sweep_longs(95.0, |_, _| {});
        b.open(&[c(1, 91.0, 10.0, 0)]).unwrap();
        let bytes = b.checkpoint();
        let mut r = Book::restore(&bytes).unwrap();
        assert!(r.checkpoint() == bytes, "restore is not bit-exact");
        // And it behaves identically afterwards.
        let (x, y) = (b.sweep_longs(80.0, |_, _| {}), r.sweep_longs(80.0, |_, _| {}));
        assert_eq!(x, y);
        assert!(r.checkpoint() == b.checkpoint());
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(matches!(Book::restore(&bad), Err(LiqError::Checkpoint(_))));
        assert!(Book::restore(&bytes[..bytes.len() - 3]).is_err());
        assert!(Book::restore(b"").is_err());
    }

    /// Re-seal `body` (a checkpoint without its checksum) as earlier versions did.
    fn legacy(body: &[u8]) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(body);
        w.finish_legacy()
    }

    #[test]
    fn checksum_catches_paired_flips_and_reads_older_checkpoints() {
        let mut b = Book::new(2);
        b.open(&[c(1, 90.0, 10.0, 0), c(-1, 110.0, 4.0, 1), c(1, 95.0, 3.0, 1)]).unwrap();
        let bytes = b.checkpoint();
        let body = &bytes[..bytes.len() - 8];
        // The same bit flipped in two words, at every bit and word distance: the FNV checksum
        // of earlier versions let such pairs through (sign bits of two numbers).
        for bit in [0, 7, 31, 52, 62, 63] {
            for gap in [1, 2, 3, 7] {
                for w0 in (1..body.len() / 8 - gap).step_by(3) {
                    let mut bad = bytes.clone();
                    for w in [w0, w0 + gap] {
                        bad[8 * w + bit / 8] ^= 1 << (bit % 8);
                    }
                    assert!(Book::restore(&bad).is_err(), "bit {bit}, words {w0} and {}", w0 + gap);
                }
            }
        }
        // Earlier versions' checkpoints (old magic, old checksum) still restore, bit for bit
        // the same book; the old checksum under the current magic does not.
        let mut old = body.to_vec();
        old[..8].copy_from_slice(MAGIC_V3);
        let back = Book::restore(&legacy(&old)).unwrap();
        assert!(back.checkpoint() == bytes);
        assert!(matches!(Book::restore(&legacy(body)), Err(LiqError::Checkpoint(_))));
        let mut w = Writer::default();
        w.bytes(&old);
        assert!(matches!(Book::restore(&w.finish()), Err(LiqError::Checkpoint(_))));
    }

    #[test]
    fn rejects_bad_cohorts_without_change() {
        let mut b = Book::new(1);
        assert!(b.open(&[c(1, 90.0, 1.0, 0), c(2, 90.0, 1.0, 0)]).is_err());
        assert!(b.open(&[c(1, -5.0, 1.0, 0)]).is_err());
        assert!(b.open(&[c(1, 90.0, f64::NAN, 0)]).is_err());
        assert!(b.open(&[c(1, 90.0, 1.0, 3)]).is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn compaction_keeps_every_live_cohort_findable() {
        // Enough churn to compact several times; a plain list is the reference.
        let mut b = Book::new(2);
        b.attach_grid(PriceGrid::new(1.0, 300.0, 1.0).unwrap());
        let mut reference: Vec<(f64, f64, i8)> = Vec::new();
        let mut x = 12345u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        for round in 0..40 {
            let mut batch = Vec::new();
            for _ in 0..1000 {
                let side = if rnd() < 0.5 { 1 } else { -1 };
                let liq = 50.0 + 200.0 * rnd();
                batch.push(c(side, liq, 1.0, (round % 2) as u16));
                reference.push((liq, 1.0, side));
            }
            b.open(&batch).unwrap();
            let low = 150.0 + 100.0 * rnd();
            let got = b.sweep_longs(low, |_, _| {}).cohorts;
            let want = reference.iter().filter(|r| r.2 > 0 && r.0 >= low).count();
            assert_eq!(got, want, "round {round}");
            reference.retain(|r| !(r.2 > 0 && r.0 >= low));
            let high = 50.0 + 100.0 * rnd();
            let got = b.sweep_shorts(high, |_, _| {}).cohorts;
            let want = reference.iter().filter(|r| r.2 < 0 && r.0 <= high).count();
            assert_eq!(got, want, "round {round}");
            reference.retain(|r| !(r.2 < 0 && r.0 <= high));
            assert_eq!(b.len(), reference.len());
            assert!(b.slots.len() <= 2 * b.len() + 4096 + 1000);
        }
        // Evidence, pruning and checkpoints still work on the compacted book.
        let (mut l, mut s) = (vec![0.0; 299], vec![0.0; 299]);
        b.hist_column(|_| true, &mut l, &mut s).unwrap();
        assert!((l.iter().sum::<f64>() - b.side_usd(LONG)).abs() < 1e-6);
        assert!(b.evidence(SHORT, 200.0, 5.0, 0.1).unwrap() > 0.0);
        let restored = Book::restore(&b.checkpoint()).unwrap();
        assert!(restored.checkpoint() == b.checkpoint());
        b.scale_side(LONG, 1e-12).unwrap();
        assert!(b.prune(1e-3) == 0 || b.len() < reference.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Notional is conserved: opened = live + swept + closed, through any sequence.
        #[test]
        fn notional_conserved(ops in proptest::collection::vec((0u8..4, 1.0f64..200.0, 0.0f64..1.0), 1..200)) {
            let mut b = Book::new(2);
            let (mut opened, mut swept, mut closed) = (0.0, 0.0, 0.0);
            for (k, (op, price, x)) in ops.into_iter().enumerate() {
                match op {
                    0 => {
                        let n = c(if k % 2 == 0 { 1 } else { -1 }, price, 1.0 + 100.0 * x, (k % 2) as u16);
                        b.open(&[n]).unwrap();
                        opened += n.notional;
                    }
                    1 => swept += b.sweep_longs(price, |_, _| {}).usd,
                    2 => swept += b.sweep_shorts(price, |_, _| {}).usd,
                    _ => {
                        let before = b.side_usd(LONG) + b.side_usd(SHORT);
                        b.scale_side(LONG, x).unwrap();
                        b.scale_side(SHORT, x).unwrap();
                        closed += before - (b.side_usd(LONG) + b.side_usd(SHORT));
                    }
                }
                let live = b.side_usd(LONG) + b.side_usd(SHORT);
                prop_assert!((opened - live - swept - closed).abs() <= 1e-9 * opened.max(1.0));
            }
        }

        /// A swept level is consumed exactly once, and only levels beyond the sweep go.
        #[test]
        fn sweep_once(levels in proptest::collection::vec(1.0f64..200.0, 1..100), low in 1.0f64..200.0) {
            let mut b = Book::new(1);
            let cs: Vec<NewCohort> = levels.iter().map(|&l| c(1, l, 1.0, 0)).collect();
            b.open(&cs).unwrap();
            let mut seen = Vec::new();
            let s = b.sweep_longs(low, |p, _| seen.push(p));
            let want = levels.iter().filter(|&&l| l >= low).count();
            prop_assert_eq!(s.cohorts, want);
            prop_assert!(seen.iter().all(|&p| p >= low));
            prop_assert_eq!(b.sweep_longs(low, |_, _| {}).cohorts, 0);
            prop_assert!(b.cohorts().all(|c| c.liq < low));
        }
    }
}
