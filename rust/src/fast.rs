//! Branch-free batch evaluation of the common case of [`MarginModel::liq_price`].
//!
//! A batch is processed in blocks. The first pass over a block computes every position's
//! liquidation price as if it were in the common case (valid inputs, a tier among the first
//! few, same tier at entry and at liquidation) with no branches, and sets a bit for each
//! position where that assumption holds. The second pass (in `aggregate`) hands every
//! position without its bit to the exact scalar path. Both passes evaluate the same IEEE
//! operations in the same order on the same tier constants as `MarginModel::solve` and
//! friends, so the results are bit-identical to calling `liq_price` per position.
//!
//! The first pass exists twice: [`FastPlan::eval_generic`], plain Rust for any target, and
//! the `avx2` module, the same arithmetic written with AVX2 intrinsics four positions at a
//! time (picked at run time, so wheels stay portable). The AVX2 form is written for few
//! instructions per position, because that is what bounds it, using rewrites that keep
//! every value: tier constants come from one permute instead of a chain of selects, and
//! only the first two tiers are handled until a book shows it needs more ([`Reach`]); `l·s`
//! for `s = ±1` is a sign flip; NaN-aware `max`/`min` replace compare-and-select pairs;
//! checks that a later check implies are left out (each such place says why); a bucket is
//! only corrected against its edges when the price lies near one; and a linear position
//! whose price falls in the neighbouring tier is walked there, as the exact path would.
//! The tests at the end check that every position either form flags carries the scalar
//! path's price, notional and cell bit for bit, on edge cases as well as typical books.
//!
//! For the bucketing pass, a position's cell is `row·stride + side·width + slot` (see
//! [`Bucketing`]); a position whose row is outside the heatmap is left to the exact path,
//! which reports it.

use crate::aggregate::{Column, MarginKind};
use crate::margin::{ContractKind, FeeMode, MarginInput, MarginModel, MmBasis, usable};
use crate::tiers::TierUnit;

/// Tiers the branch-free pass handles; positions in higher tiers take the exact path.
pub(crate) const NT: usize = 4;
/// Positions per block: the block's scratch (prices, cells, notionals, flags; 48 kB) stays
/// in the core's L2 between the passes, and per-block work is spread thin (2048 measured
/// a few % faster than 1024 and 512, the same as 4096).
pub(crate) const BLOCK: usize = 2048;
/// 64-bit words of flags per block.
pub(crate) const WORDS: usize = BLOCK / 64;

/// One bit per position of a block: set where the common case holds.
pub(crate) type OkBits = [u64; WORDS];

/// Tier constants of one model laid out for the branch-free pass.
#[derive(Clone, Debug)]
pub(crate) struct FastPlan {
    kind: ContractKind,
    leverage: bool,
    /// The tier measure depends on price (linear/quote or inverse/base tables).
    moves: bool,
    /// Tiers in the model's table.
    tiers: usize,
    /// For constant measures: measure = qty × this.
    qty_factor: f64,
    contract_size: f64,
    /// Maintenance rate as `covers_maintenance` receives it (`a + entry_rate`, entry rate 0).
    a: [f64; NT],
    d: [f64; NT],
    /// `fee − d` with no fee, as the inverse margin-amount check computes it.
    fee_d: [f64; NT],
    k_long: [f64; NT],
    k_short: [f64; NT],
    floor: [f64; NT],
    /// Tier caps; `INFINITY` from the table's last tier on (the exact path treats the last
    /// tier as open above). `cap[j]` is also the guard of a pass handling tiers `0..=j`.
    cap: [f64; NT],
    /// `max_leverage·(1 + 1e-9)`, as the exact path compares it.
    lev_limit: [f64; NT],
    /// With leverage in bounds, margin covers maintenance at entry in every handled tier, so
    /// the pass need not check it (see [`FastPlan::new`]).
    covered: bool,
}

/// How many tiers a first pass handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The first two (fewer instructions; enough for most books).
    Two,
    /// The first [`NT`].
    All,
}

impl FastPlan {
    /// A plan for `model` with margins given as leverage (`leverage`) or amounts, or `None`
    /// when the model's formula has no branch-free form here (entry-basis maintenance, or
    /// Bybit's bankruptcy fee with posted margin): those batches use the exact path.
    pub(crate) fn new(model: &MarginModel, margin: MarginKind) -> Option<Self> {
        let leverage = margin == MarginKind::Leverage;
        if model.rules.basis != MmBasis::Mark || (!leverage && model.rules.fee_mode == FeeMode::AtBankruptcy) {
            return None;
        }
        let terms = &model.terms;
        let last = terms.len() - 1;
        let moves = matches!(
            (model.table.unit(), model.rules.kind),
            (TierUnit::Quote, ContractKind::Linear) | (TierUnit::Base, ContractKind::Inverse)
        );
        let qty_factor = match (model.table.unit(), model.rules.kind) {
            (TierUnit::Contracts, _) => 1.0,
            _ => model.contract_size,
        };
        let mut plan = FastPlan {
            kind: model.rules.kind,
            leverage,
            moves,
            tiers: terms.len(),
            qty_factor,
            contract_size: model.contract_size,
            a: [0.0; NT],
            d: [0.0; NT],
            fee_d: [0.0; NT],
            k_long: [0.0; NT],
            k_short: [0.0; NT],
            floor: [0.0; NT],
            cap: [f64::INFINITY; NT],
            lev_limit: [0.0; NT],
            covered: false,
        };
        for j in 0..NT {
            // Pad short tables with their last tier; the exact path treats the first tier as
            // open below and the last as open above, and so does this plan.
            let t = &terms[j.min(last)];
            plan.a[j] = t.a + 0.0;
            plan.d[j] = t.d;
            plan.fee_d[j] = 0.0 - t.d;
            plan.k_long[j] = t.k[0];
            plan.k_short[j] = t.k[1];
            plan.floor[j] = if j == 0 { f64::NEG_INFINITY } else { t.floor };
            plan.cap[j] = if j >= last { f64::INFINITY } else { t.cap };
            plan.lev_limit[j] = if model.overridden { f64::INFINITY } else { t.max_leverage * (1.0 + 1e-9) };
        }
        // The maintenance check `n0 > l·(n0·a − d)` (inverse: `size > l·(size·a − d·e)`) holds
        // for every `0 < l <= limit` when `d >= 0` and `limit·a <= 0.9`: the right side is
        // at most `0.9·n0` plus a few roundings. (A zero `n0` fails it, but then the price is
        // 0 or NaN, which the pass rejects anyway.) Real tables have `limit·a` near 0.5.
        plan.covered = leverage
            && (0..NT)
                .all(|j| plan.d[j] >= 0.0 && plan.lev_limit[j].is_finite() && plan.lev_limit[j] * plan.a[j] <= 0.9);
        Some(plan)
    }

    /// The pass for the next block (a batch starts with [`Reach::Two`]), given this block's
    /// pass and its count of positions that took the exact path: move to [`Reach::All`] for
    /// good when the two-tier pass leaves more than 1 in 32 positions to the exact path and
    /// the table has more tiers.
    pub(crate) fn widen(&self, reach: Reach, missed: u32) -> Reach {
        if reach == Reach::Two && self.tiers > 2 && missed as usize > BLOCK / 32 { Reach::All } else { reach }
    }

    /// First pass over one block without bucketing: `price[j]` for every position (only
    /// meaningful where its bit in `ok` is set).
    pub(crate) fn prices(&self, input: BlockIn<'_>, price: &mut [f64], ok: &mut OkBits, reach: Reach) {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { avx2::block(self, input, None, Dst::Price(price), ok, reach) };
                return;
            }
        }
        let _ = reach;
        self.eval_generic(input, None, Dst::Price(price), ok);
    }

    /// First pass over one block with bucketing: the accumulator cell and USD notional of
    /// every position (only meaningful where its bit in `ok` is set).
    pub(crate) fn cells(&self, input: BlockIn<'_>, b: &Bucketing, out: &mut BlockOut, reach: Reach) {
        let BlockOut { ok, cell, usd, price, shorts, entry_qty: moments } = out;
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                (*shorts, *moments) =
                    unsafe { avx2::block(self, input, Some(b), Dst::Cells(cell, usd, price), ok, reach) };
                return;
            }
        }
        let _ = reach;
        self.eval_generic(input, Some(b), Dst::Cells(cell, usd, price), ok);
        *shorts = input.side[..input.len()].iter().map(|&s| u32::from(s < 0)).sum();
        let n = input.len();
        *moments = entry_qty(&input.entry[..n], &input.qty[..n]);
    }

    /// The portable first pass (any target).
    pub(crate) fn eval_generic(&self, input: BlockIn<'_>, bucket: Option<&Bucketing>, dst: Dst<'_>, bits: &mut OkBits) {
        let mut ok = [false; BLOCK];
        macro_rules! go {
            ($linear:literal, $lev:literal, $moves:literal) => {
                match (input.margin, input.time) {
                    (Column::Scalar(v), Column::Scalar(t)) => {
                        self.eval::<$linear, $lev, $moves, _, _>(&input, |_| v, |_| t, bucket, dst, &mut ok)
                    }
                    (Column::Slice(m), Column::Scalar(t)) => {
                        self.eval::<$linear, $lev, $moves, _, _>(&input, |j| m[j], |_| t, bucket, dst, &mut ok)
                    }
                    (Column::Scalar(v), Column::Slice(ts)) => {
                        self.eval::<$linear, $lev, $moves, _, _>(&input, |_| v, |j| ts[j], bucket, dst, &mut ok)
                    }
                    (Column::Slice(m), Column::Slice(ts)) => {
                        self.eval::<$linear, $lev, $moves, _, _>(&input, |j| m[j], |j| ts[j], bucket, dst, &mut ok)
                    }
                }
            };
        }
        match (self.kind == ContractKind::Linear, self.leverage, self.moves) {
            (true, true, true) => go!(true, true, true),
            (true, true, false) => go!(true, true, false),
            (true, false, true) => go!(true, false, true),
            (true, false, false) => go!(true, false, false),
            (false, true, true) => go!(false, true, true),
            (false, true, false) => go!(false, true, false),
            (false, false, true) => go!(false, false, true),
            (false, false, false) => go!(false, false, false),
        }
        *bits = [0; WORDS];
        for (j, &o) in ok.iter().enumerate() {
            bits[j / 64] |= u64::from(o) << (j % 64);
        }
    }

    #[expect(clippy::inline_always, reason = "one copy per formula; the loop must vectorise")]
    #[expect(clippy::needless_bitwise_bool, reason = "branch-free on purpose: the loop must vectorise")]
    #[inline(always)]
    fn eval<const LINEAR: bool, const LEV: bool, const MOVES: bool, M, T>(
        &self,
        input: &BlockIn<'_>,
        margin: M,
        time: T,
        bucket: Option<&Bucketing>,
        mut dst: Dst<'_>,
        ok: &mut [bool; BLOCK],
    ) where
        M: Fn(usize) -> f64,
        T: Fn(usize) -> i64,
    {
        let kind = if LINEAR { ContractKind::Linear } else { ContractKind::Inverse };
        let n = input.len();
        for j in 0..n {
            let (e, q, s, mv) = (input.entry[j], input.qty[j], f64::from(input.side[j]), margin(j));
            let size = q * self.contract_size;
            // `measure >= bound`, as the exact path's tier search compares it.
            let reaches = |bound: f64| -> bool {
                if !MOVES {
                    q * self.qty_factor >= bound
                } else if LINEAR {
                    size * e >= bound
                } else {
                    size >= bound * e
                }
            };
            let (c1, c2, c3) = (reaches(self.cap[0]), reaches(self.cap[1]), reaches(self.cap[2]));
            let pick = |v: &[f64; NT]| sel(c1, sel(c2, sel(c3, v[3], v[2]), v[1]), v[0]);
            let k = sel(s < 0.0, pick(&self.k_short), pick(&self.k_long));
            let (a, d) = (pick(&self.a), pick(&self.d));
            let m = if LEV { MarginInput::Leverage(mv) } else { MarginInput::Amount(mv) };
            // Factors must be normal floats, as `MarginModel::liq_price` requires.
            let tiny = f64::MIN_POSITIVE;
            let inputs_ok =
                (e >= tiny) & (e < f64::INFINITY) & (q >= tiny) & (q < f64::INFINITY) & ((s == 1.0) | (s == -1.0));
            let margin_ok =
                if LEV { (mv >= tiny) & (mv < f64::INFINITY) & !(mv > pick(&self.lev_limit)) } else { mv.is_finite() };
            let covers = MarginModel::covers_maintenance(kind, a, d, size, e, m, 0.0);
            let p = MarginModel::solve(kind, 0.0, d, k, s, size, e, m, 0.0);
            let fits = usable(p) & (!MOVES || MarginModel::in_tier(kind, pick(&self.floor), pick(&self.cap), size, p));
            ok[j] = inputs_ok & margin_ok & covers & fits & !reaches(self.cap[NT - 1]);
            match &mut dst {
                Dst::Price(price) => price[j] = p,
                Dst::Cells(cell, usd, _) => {
                    let b = bucket.copied().unwrap_or(Bucketing::NONE);
                    // Bucket k from the reciprocal multiply, clamped to the grid (NaN to 0),
                    // then corrected against the edges themselves: one bucket down is
                    // "below", one up past the last is "above". The true bucket is within
                    // one of k, so this reproduces `PriceGrid::locate` bit for bit.
                    let x = (p - b.lo) * b.inv_step;
                    let x = sel(x > 0.0, x, 0.0);
                    let kf = sel(x < b.last, x, b.last).floor();
                    let below = p < b.lo + kf * b.step;
                    let above = p >= b.lo + (kf + 1.0) * b.step;
                    let slot = kf + sel(below, 0.0, sel(above, 2.0, 1.0));
                    // SAFETY: `slot` is a whole number in [0, n + 1], far inside u32.
                    let slot = unsafe { slot.to_int_unchecked::<u32>() };
                    // A row outside the heatmap becomes row `rows`, past every accumulator
                    // (the second pass hands such a position to the exact path).
                    let t = time(j);
                    let row = if (t as u64) < b.rows as u64 { t as u32 } else { b.rows as u32 };
                    cell[j] = u64::from(row * b.stride as u32 + u32::from(s < 0.0) * b.width as u32 + slot);
                    usd[j] = if LINEAR { size * p } else { size };
                }
            }
        }
    }
}

/// Where the first pass writes.
pub(crate) enum Dst<'a> {
    /// One price per position.
    Price(&'a mut [f64]),
    /// Accumulator cell (low 32 bits) and USD notional per position.
    /// (The third array is scratch for the prices.)
    Cells(&'a mut [u64; BLOCK], &'a mut [f64; BLOCK], &'a mut [f64; BLOCK]),
}

/// One block of column inputs.
#[derive(Clone, Copy)]
pub(crate) struct BlockIn<'a> {
    pub(crate) entry: &'a [f64],
    pub(crate) qty: &'a [f64],
    pub(crate) side: &'a [i8],
    pub(crate) margin: Column<'a, f64>,
    /// Heatmap row per position (`Scalar(0)` for a 1-D map).
    pub(crate) time: Column<'a, i64>,
    /// The next block's inputs, to prefetch while this one is computed (the memory system
    /// would otherwise idle while a block's cells and sums are done).
    pub(crate) ahead: Option<Ahead<'a>>,
}

/// Inputs of a block to prefetch.
#[derive(Clone, Copy)]
pub(crate) struct Ahead<'a> {
    pub(crate) entry: &'a [f64],
    pub(crate) qty: &'a [f64],
    pub(crate) side: &'a [i8],
    pub(crate) margin: Column<'a, f64>,
    pub(crate) time: Column<'a, i64>,
}

impl BlockIn<'_> {
    /// Positions in the block (every column is at least this long).
    pub(crate) fn len(&self) -> usize {
        let mut n = self.entry.len().min(self.qty.len()).min(self.side.len()).min(BLOCK);
        if let Column::Slice(m) = self.margin {
            n = n.min(m.len());
        }
        if let Column::Slice(t) = self.time {
            n = n.min(t.len());
        }
        n
    }
}

/// Scratch of the bucketing pass for one block.
pub(crate) struct BlockOut {
    pub(crate) ok: OkBits,
    /// Accumulator cell of each position in the low 32 bits (the AVX2 pass leaves the bits
    /// of a float above them).
    pub(crate) cell: [u64; BLOCK],
    pub(crate) usd: [f64; BLOCK],
    /// Scratch for the prices.
    pub(crate) price: [f64; BLOCK],
    /// Positions with a negative side.
    pub(crate) shorts: u32,
    /// `[Σ entry·qty, Σ qty]` of the block, as [`entry_qty`] sums them (the pass has both
    /// columns in registers already, so the moments cost no extra pass).
    pub(crate) entry_qty: [f64; 2],
}

impl BlockOut {
    pub(crate) fn new() -> Box<Self> {
        Box::new(BlockOut {
            ok: [0; WORDS],
            cell: [0; BLOCK],
            usd: [0.0; BLOCK],
            price: [0.0; BLOCK],
            shorts: 0,
            entry_qty: [0.0; 2],
        })
    }
}

/// Grid and accumulator geometry for bucketing: `rows` rows, each holding per side
/// `width = n + 2` cells (below, the n buckets, above); cell = `row·stride + side·width + slot`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucketing {
    pub(crate) lo: f64,
    pub(crate) step: f64,
    pub(crate) inv_step: f64,
    pub(crate) n: usize,
    /// `n − 1` as a float: the last bucket.
    pub(crate) last: f64,
    /// Where `x = (p − lo)·(1/step)` has `|frac(x) − ½| < inner`, bucket `floor(x)` is
    /// exact, with no edge test; −1 (never) when the grid's rounding errors are too large
    /// to tell. Proof: with `X = (p − lo)/step` exactly and `u = 2^-53`, `|x − X| ≤ 3.01u·|X|`,
    /// and the edges `lo + k·step` as computed are within `u(|lo|/step + 2k)(1 + u)` steps of
    /// exact; so when `x` is farther than `δ = 8u(n + |lo|/step + 4)` from both integers
    /// around it, `p` lies strictly between the computed edges of bucket `floor(x)`.
    pub(crate) inner: f64,
    pub(crate) rows: usize,
    pub(crate) width: usize,
    pub(crate) stride: usize,
}

impl Bucketing {
    const NONE: Bucketing = Bucketing::new(0.0, 1.0, 1, 1);

    pub(crate) const fn new(lo: f64, step: f64, n: usize, rows: usize) -> Self {
        let width = n + 2;
        let delta = 8.0 * (f64::EPSILON / 2.0) * (n as f64 + lo.abs() / step + 4.0);
        let inner = if delta < 0.25 { 0.5 - delta } else { -1.0 };
        Bucketing { lo, step, inv_step: 1.0 / step, n, last: (n - 1) as f64, inner, rows, width, stride: 2 * width }
    }
}

/// `[Σ entry·qty, Σ qty]` of a slice, in eight lanes (lane `k` takes the rows `≡ k mod 8` of
/// whole groups of eight) so it vectorises: a single running sum would cost an add's latency
/// per row. The AVX2 pass sums the same lanes in registers and finishes with [`lanes_sum`],
/// so both passes give the same bits.
pub(crate) fn entry_qty(entry: &[f64], qty: &[f64]) -> [f64; 2] {
    let (mut eq, mut q) = ([0.0; 8], [0.0; 8]);
    let whole = entry.len().min(qty.len()) & !7;
    for (e8, q8) in entry[..whole].chunks_exact(8).zip(qty[..whole].chunks_exact(8)) {
        for k in 0..8 {
            eq[k] += e8[k] * q8[k];
            q[k] += q8[k];
        }
    }
    lanes_sum(eq, q, &entry[whole..], &qty[whole..])
}

/// Finish [`entry_qty`]: the rows after the whole groups go into lane 0 in order, then the
/// lanes are summed.
fn lanes_sum(mut eq: [f64; 8], mut q: [f64; 8], entry: &[f64], qty: &[f64]) -> [f64; 2] {
    for (e, q1) in entry.iter().zip(qty) {
        eq[0] += e * q1;
        q[0] += q1;
    }
    [eq.iter().sum(), q.iter().sum()]
}

/// `if c { x } else { y }` without a branch.
#[expect(clippy::inline_always, reason = "must vanish into a select inside vectorised loops")]
#[inline(always)]
fn sel(c: bool, x: f64, y: f64) -> f64 {
    if c { x } else { y }
}

/// Tests set this to run the portable pass on an AVX2 machine (both give the same results,
/// so other tests running meanwhile are unaffected).
#[cfg(test)]
pub(crate) static FORCE_GENERIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    #[cfg(test)]
    if FORCE_GENERIC.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// The first pass with AVX2 intrinsics, four positions per step. Everything here is only
/// reached through [`block`], whose caller has checked that the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[cfg_attr(not(test), expect(clippy::wildcard_imports, reason = "the module is written in AVX2 intrinsics"))]
    use std::arch::x86_64::*;

    use super::{Ahead, BLOCK, BlockIn, Bucketing, Dst, FastPlan, NT, OkBits, Reach, WORDS};
    use crate::aggregate::Column;
    use crate::margin::ContractKind;

    /// A plan's constants in lanes. Tier tables are laid out for [`pick`]: `[t0, t1, t0, t1]`
    /// for the two-tier pass, `[t0, t1, t2, t3]` for the four-tier one.
    struct Lanes {
        cs: __m256d,
        qf: __m256d,
        cap: [__m256d; NT],
        a: __m256d,
        d: __m256d,
        fee_d: __m256d,
        k_long: __m256d,
        k_short: __m256d,
        floor: __m256d,
        cap_t: __m256d,
        lim: __m256d,
        zero: __m256d,
        /// The smallest normal float: smaller factors are refused (`MarginModel::check_factor`).
        tiny: __m256d,
        all: __m256d,
        inf: __m256d,
        one: __m256d,
        sign: __m256d,
        /// Dword indices `[0, 1, 0, 1, …]`: tier 0 for the four-tier permute.
        idx0: __m256i,
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn lanes<const TWO: bool>(p: &FastPlan) -> Lanes {
        let t = |v: &[f64; NT]| {
            if TWO { _mm256_setr_pd(v[0], v[1], v[0], v[1]) } else { _mm256_setr_pd(v[0], v[1], v[2], v[3]) }
        };
        Lanes {
            cs: _mm256_set1_pd(p.contract_size),
            qf: _mm256_set1_pd(p.qty_factor),
            cap: p.cap.map(|c| _mm256_set1_pd(c)),
            a: t(&p.a),
            d: t(&p.d),
            fee_d: t(&p.fee_d),
            k_long: t(&p.k_long),
            k_short: t(&p.k_short),
            floor: t(&p.floor),
            cap_t: t(&p.cap),
            lim: t(&p.lev_limit),
            zero: _mm256_setzero_pd(),
            tiny: _mm256_set1_pd(f64::MIN_POSITIVE),
            all: _mm256_castsi256_pd(_mm256_set1_epi64x(-1)),
            inf: _mm256_set1_pd(f64::INFINITY),
            one: _mm256_set1_pd(1.0),
            sign: _mm256_set1_pd(-0.0),
            idx0: _mm256_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1),
        }
    }

    /// Each lane's entry of a tier table (laid out as in [`Lanes`]): for the two-tier pass
    /// `tier` is the "tier 1" mask and an in-lane permute picks; for the four-tier pass it
    /// holds dword index pairs `[2t, 2t + 1]` for a cross-lane permute.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn pick<const TWO: bool>(table: __m256d, tier: __m256i) -> __m256d {
        if TWO {
            _mm256_permutevar_pd(table, tier)
        } else {
            _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(table), tier))
        }
    }

    /// `if m { b } else { a }` per lane for an all-ones/all-zeros (or sign-extended side)
    /// mask, as a byte blend: it has more ports than the double blend, whose port the
    /// multiplies and compares keep busy.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn blend(a: __m256d, b: __m256d, m: __m256d) -> __m256d {
        _mm256_castsi256_pd(_mm256_blendv_epi8(_mm256_castpd_si256(a), _mm256_castpd_si256(b), _mm256_castpd_si256(m)))
    }

    /// Inputs of four positions.
    #[derive(Clone, Copy)]
    struct Four {
        e: __m256d,
        q: __m256d,
        /// Side sign-extended to 64 bits: all ones for −1 (so its sign bit selects shorts).
        s: __m256i,
        m: __m256d,
    }

    /// `measure >= bound`, as the exact path's tier search compares it.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn reaches<const LINEAR: bool, const MOVES: bool>(
        c: &Lanes,
        x: &Four,
        size: __m256d,
        n0: __m256d,
        bound: __m256d,
    ) -> __m256d {
        if !MOVES {
            _mm256_cmp_pd::<_CMP_GE_OQ>(_mm256_mul_pd(x.q, c.qf), bound)
        } else if LINEAR {
            _mm256_cmp_pd::<_CMP_GE_OQ>(n0, bound)
        } else {
            _mm256_cmp_pd::<_CMP_GE_OQ>(size, _mm256_mul_pd(bound, x.e))
        }
    }

    /// Price, size and the common-case mask of four positions (side validity aside, which
    /// [`side_bits`] checks per block): the arithmetic of `FastPlan::eval`, and so of
    /// `MarginModel::solve`, `covers_maintenance` and `in_tier`.
    ///
    /// Left out because implied: finiteness of every input. An infinite entry, size or
    /// margin makes the price NaN, ±inf or 0 in all four closed forms (∞·0, ∞/∞ or
    /// ∞ − ∞ appear, or a lone ∞ survives, or a finite value is divided by ∞), and a NaN
    /// input makes it NaN; `p > 0 && p < ∞` rejects all of those.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn solve<const LINEAR: bool, const LEV: bool, const MOVES: bool, const TWO: bool, const COV: bool>(
        c: &Lanes,
        x: Four,
    ) -> (__m256d, __m256d, __m256d, __m256d) {
        let st = start::<LINEAR, LEV, MOVES, TWO, COV>(c, x);
        let walk = if MOVES && LINEAR && TWO { to_walk(c, &st) } else { c.zero };
        let (p, size, good) = finish::<LINEAR, MOVES, TWO>(c, st);
        (p, size, good, walk)
    }

    /// [`solve`] up to the division.
    struct Started {
        p: __m256d,
        size: __m256d,
        /// Every check that does not need the price.
        good: __m256d,
        tier: __m256i,
    }

    /// What four positions' prices need besides the tier.
    struct Common {
        size: __m256d,
        /// size·entry, as `covers_maintenance` and `solve` compute it (linear; else size).
        n0: __m256d,
        /// The side's sign bit: `x·s` for s = ±1 is x with it flipped in.
        sgn: __m256d,
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn common<const LINEAR: bool>(c: &Lanes, x: &Four) -> Common {
        let size = _mm256_mul_pd(x.q, c.cs);
        let n0 = if LINEAR { _mm256_mul_pd(size, x.e) } else { size };
        Common { size, n0, sgn: _mm256_and_pd(_mm256_castsi256_pd(x.s), c.sign) }
    }

    /// Price in `tier` (`MarginModel::solve`), and whether margin covers maintenance there.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn price_in<const LINEAR: bool, const LEV: bool, const TWO: bool, const COV: bool>(
        c: &Lanes,
        x: &Four,
        b: &Common,
        tier: __m256i,
    ) -> (__m256d, __m256d) {
        let (num, den, covers) = quotient::<LINEAR, LEV, TWO, COV>(c, x, b, tier);
        (_mm256_div_pd(num, den), covers)
    }

    /// [`price_in`] up to its division: the price is `num / den`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn quotient<const LINEAR: bool, const LEV: bool, const TWO: bool, const COV: bool>(
        c: &Lanes,
        x: &Four,
        b: &Common,
        tier: __m256i,
    ) -> (__m256d, __m256d, __m256d) {
        let Four { e, m, s, .. } = *x;
        let Common { size, n0, sgn } = *b;
        let k = blend(pick::<TWO>(c.k_long, tier), pick::<TWO>(c.k_short, tier), _mm256_castsi256_pd(s));
        let d = pick::<TWO>(c.d, tier);
        // `COV`: the plan proves the maintenance check redundant (`FastPlan::covered`).
        let check = !(LEV && COV);
        if LINEAR {
            if LEV {
                let covers = if check {
                    let a = pick::<TWO>(c.a, tier);
                    _mm256_cmp_pd::<_CMP_GT_OQ>(n0, _mm256_mul_pd(m, _mm256_sub_pd(_mm256_mul_pd(n0, a), d)))
                } else {
                    c.all
                };
                let ls = _mm256_xor_pd(m, sgn);
                let num = _mm256_add_pd(_mm256_mul_pd(n0, _mm256_sub_pd(c.one, ls)), _mm256_mul_pd(d, m));
                (_mm256_mul_pd(num, k), _mm256_mul_pd(m, size), covers)
            } else {
                // `m > n0·rate + 0 − d`: adding the zero fee only turns a −0 into +0, which no
                // comparison tells apart. In the price, `m − 0 = m` exactly.
                let a = pick::<TWO>(c.a, tier);
                let covers = _mm256_cmp_pd::<_CMP_GT_OQ>(m, _mm256_sub_pd(_mm256_mul_pd(n0, a), d));
                let num = _mm256_sub_pd(_mm256_add_pd(m, d), _mm256_xor_pd(n0, sgn));
                (_mm256_mul_pd(num, k), size, covers)
            }
        } else {
            let de = _mm256_mul_pd(d, e);
            if LEV {
                let covers = if check {
                    let a = pick::<TWO>(c.a, tier);
                    _mm256_cmp_pd::<_CMP_GT_OQ>(size, _mm256_mul_pd(m, _mm256_sub_pd(_mm256_mul_pd(size, a), de)))
                } else {
                    c.all
                };
                let ls = _mm256_xor_pd(m, sgn);
                let num = _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(size, k), e), m);
                let den = _mm256_add_pd(_mm256_mul_pd(size, _mm256_add_pd(c.one, ls)), _mm256_mul_pd(de, m));
                (num, den, covers)
            } else {
                let a = pick::<TWO>(c.a, tier);
                let rhs = _mm256_add_pd(_mm256_mul_pd(size, a), _mm256_mul_pd(pick::<TWO>(c.fee_d, tier), e));
                let covers = _mm256_cmp_pd::<_CMP_GT_OQ>(_mm256_mul_pd(m, e), rhs);
                let num = _mm256_mul_pd(_mm256_mul_pd(size, k), e);
                let den = _mm256_add_pd(_mm256_mul_pd(e, _mm256_add_pd(m, d)), _mm256_xor_pd(size, sgn));
                (num, den, covers)
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn start<const LINEAR: bool, const LEV: bool, const MOVES: bool, const TWO: bool, const COV: bool>(
        c: &Lanes,
        x: Four,
    ) -> Started {
        let b = common::<LINEAR>(c, &x);
        let reach = |bound| reaches::<LINEAR, MOVES>(c, &x, b.size, b.n0, bound);
        let r0 = reach(c.cap[0]);
        let (tier, guard) = if TWO {
            (_mm256_castpd_si256(r0), reach(c.cap[1]))
        } else {
            // Tier = number of caps reached (caps increase), as dword pairs [2t, 2t + 1].
            let minus_t = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_castpd_si256(r0), _mm256_castpd_si256(reach(c.cap[1]))),
                _mm256_castpd_si256(reach(c.cap[2])),
            );
            (_mm256_sub_epi32(c.idx0, _mm256_add_epi32(minus_t, minus_t)), reach(c.cap[3]))
        };
        // Entry, quantity (and leverage) normal and > 0: their minimum is (a NaN among them
        // makes the price NaN, whatever `min` returns).
        let Four { e, q, m, .. } = x;
        let positive = if LEV { _mm256_min_pd(_mm256_min_pd(e, q), m) } else { _mm256_min_pd(e, q) };
        let mut good = _mm256_andnot_pd(guard, _mm256_cmp_pd::<_CMP_GE_OQ>(positive, c.tiny));
        if LEV {
            good = _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(m, pick::<TWO>(c.lim, tier)), good);
        }
        let (p, covers) = price_in::<LINEAR, LEV, TWO, COV>(c, &x, &b, tier);
        Started { p, size: b.size, good: _mm256_and_pd(good, covers), tier }
    }

    /// Whether price `p` is usable and in `tier`, as `usable` and `in_tier` decide (the
    /// two-tier pass: whether the tier-0 cap is reached at `p` exactly when `tier` is 1).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fits_in<const LINEAR: bool, const MOVES: bool, const TWO: bool>(
        c: &Lanes,
        size: __m256d,
        p: __m256d,
        tier: __m256i,
    ) -> __m256d {
        let positive = _mm256_cmp_pd::<_CMP_GT_OQ>(p, c.zero);
        if MOVES && LINEAR {
            // `floor <= size·p < cap`; the upper bound also rejects p = ∞ (size is finite
            // and > 0 whenever p is finite).
            let zl = _mm256_mul_pd(size, p);
            if TWO {
                let crossed = _mm256_xor_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(zl, c.cap[0]), _mm256_castsi256_pd(tier));
                _mm256_and_pd(positive, _mm256_andnot_pd(crossed, _mm256_cmp_pd::<_CMP_LT_OQ>(zl, c.cap[1])))
            } else {
                let (floor, cap) = (pick::<TWO>(c.floor, tier), pick::<TWO>(c.cap_t, tier));
                let in_tier =
                    _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(zl, floor), _mm256_cmp_pd::<_CMP_LT_OQ>(zl, cap));
                _mm256_and_pd(positive, in_tier)
            }
        } else {
            let usable = _mm256_and_pd(positive, _mm256_cmp_pd::<_CMP_LT_OQ>(p, c.inf));
            if MOVES {
                // Inverse: `size >= floor·p && size < cap·p`.
                let (lo_ok, hi_ok) = if TWO {
                    let crossed = _mm256_xor_pd(
                        _mm256_cmp_pd::<_CMP_GE_OQ>(size, _mm256_mul_pd(c.cap[0], p)),
                        _mm256_castsi256_pd(tier),
                    );
                    (_mm256_andnot_pd(crossed, usable), _mm256_cmp_pd::<_CMP_LT_OQ>(size, _mm256_mul_pd(c.cap[1], p)))
                } else {
                    let (floor, cap) = (pick::<TWO>(c.floor, tier), pick::<TWO>(c.cap_t, tier));
                    (
                        _mm256_and_pd(usable, _mm256_cmp_pd::<_CMP_GE_OQ>(size, _mm256_mul_pd(floor, p))),
                        _mm256_cmp_pd::<_CMP_LT_OQ>(size, _mm256_mul_pd(cap, p)),
                    )
                };
                _mm256_and_pd(lo_ok, hi_ok)
            } else {
                usable
            }
        }
    }

    /// The rest of [`solve`] once the division is done: price, size and the mask.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn finish<const LINEAR: bool, const MOVES: bool, const TWO: bool>(
        c: &Lanes,
        st: Started,
    ) -> (__m256d, __m256d, __m256d) {
        let Started { p, size, good, tier } = st;
        (p, size, _mm256_and_pd(good, fits_in::<LINEAR, MOVES, TWO>(c, size, p, tier)))
    }

    /// Lanes to walk one tier (linear, two-tier pass): every check passed and the price is
    /// usable, but the tier-0 cap is reached at the price exactly when it is not at entry.
    /// `MarginModel::walk` moves such a position to the other tier and takes the price
    /// there if it lies in that tier; [`walk`] does the same for a few groups at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn to_walk(c: &Lanes, st: &Started) -> __m256d {
        let zl = _mm256_mul_pd(st.size, st.p);
        let crossed = _mm256_xor_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(zl, c.cap[0]), _mm256_castsi256_pd(st.tier));
        // (`p < ∞` is checked by `walk`, for the few lanes it gets.)
        let usable = _mm256_cmp_pd::<_CMP_GT_OQ>(st.p, c.zero);
        _mm256_and_pd(_mm256_and_pd(st.good, usable), crossed)
    }

    /// Grid constants in lanes.
    struct Grid {
        lo: __m256d,
        step: __m256d,
        inv: __m256d,
        last: __m256d,
        zero: __m256d,
        one: __m256d,
        two: __m256d,
        half: __m256d,
        sign: __m256d,
        inner: __m256d,
        /// `2^52` (+ `width` for shorts): added to a whole number below 2^32, the number is
        /// left in the low 32 bits of the float's bits.
        base_long: __m256d,
        base_short: __m256d,
    }

    /// Grid constants; `row` (a valid row) is added to every cell.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn grid(b: &Bucketing, row: usize) -> Grid {
        let base = (1u64 << 52) as f64 + (row * b.stride) as f64;
        Grid {
            lo: _mm256_set1_pd(b.lo),
            step: _mm256_set1_pd(b.step),
            inv: _mm256_set1_pd(b.inv_step),
            last: _mm256_set1_pd(b.last),
            half: _mm256_set1_pd(0.5),
            sign: _mm256_set1_pd(-0.0),
            inner: _mm256_set1_pd(b.inner),
            zero: _mm256_setzero_pd(),
            one: _mm256_set1_pd(1.0),
            two: _mm256_set1_pd(2.0),
            base_long: _mm256_set1_pd(base),
            base_short: _mm256_set1_pd(base + b.width as f64),
        }
    }

    /// Accumulator cells `side·width + slot` (low 32 bits) of four prices, plus the row
    /// offset folded into the grid's bases: the arithmetic of the generic pass (`max`/`min`
    /// return their second operand for NaN, like its selects).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn locate(g: &Grid, p: __m256d, s: __m256i) -> __m256i {
        let x = _mm256_mul_pd(_mm256_sub_pd(p, g.lo), g.inv);
        let x = _mm256_min_pd(_mm256_max_pd(x, g.zero), g.last);
        let kf = _mm256_round_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(x);
        let base = blend(g.base_long, g.base_short, _mm256_castsi256_pd(s));
        // Usually every lane is well inside bucket `kf`, where the edge tests below cannot
        // fire (`Bucketing::inner`): then the slot is `kf + 1`, as they would give.
        let off = _mm256_andnot_pd(g.sign, _mm256_sub_pd(_mm256_sub_pd(x, kf), g.half));
        if _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(off, g.inner)) == 0b1111 {
            return _mm256_castpd_si256(_mm256_add_pd(_mm256_add_pd(kf, g.one), base));
        }
        let below = _mm256_cmp_pd::<_CMP_LT_OQ>(p, _mm256_add_pd(g.lo, _mm256_mul_pd(kf, g.step)));
        let next = _mm256_add_pd(kf, g.one);
        let above = _mm256_cmp_pd::<_CMP_GE_OQ>(p, _mm256_add_pd(g.lo, _mm256_mul_pd(next, g.step)));
        let shift = _mm256_andnot_pd(below, blend(g.one, g.two, above));
        _mm256_castpd_si256(_mm256_add_pd(_mm256_add_pd(kf, shift), base))
    }

    /// Column pointers of a block, each valid for the block's rows; a margin given once for
    /// all rows is held in `m_all` instead.
    #[derive(Clone, Copy)]
    struct Cols {
        e: *const f64,
        q: *const f64,
        s: *const i8,
        m: *const f64,
        m_all: f64,
    }

    impl Cols {
        fn of(input: &BlockIn<'_>) -> Self {
            let (m, m_all) = match input.margin {
                Column::Scalar(v) => (std::ptr::null(), v),
                Column::Slice(m) => (m.as_ptr(), 0.0),
            };
            Cols { e: input.entry.as_ptr(), q: input.qty.as_ptr(), s: input.side.as_ptr(), m, m_all }
        }
    }

    /// Sides of positions `j .. j + 4`, sign-extended to 64 bits.
    ///
    /// # Safety
    /// `s` must be valid for reads of rows `j .. j + 4`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_side(s: *const i8, j: usize) -> __m256i {
        // SAFETY: the caller guarantees rows `j .. j + 4`.
        _mm256_cvtepi8_epi64(_mm_cvtsi32_si128(unsafe { std::ptr::read_unaligned(s.add(j).cast::<i32>()) }))
    }

    /// Inputs of positions `j .. j + 4`.
    ///
    /// # Safety
    /// Every column of `c` (the margin column if `MS`) must be valid for rows `j .. j + 4`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load<const MS: bool>(c: &Cols, j: usize) -> Four {
        // SAFETY: the caller guarantees rows `j .. j + 4` of every column used here.
        unsafe {
            Four {
                e: _mm256_loadu_pd(c.e.add(j)),
                q: _mm256_loadu_pd(c.q.add(j)),
                s: load_side(c.s, j),
                m: if MS { _mm256_loadu_pd(c.m.add(j)) } else { _mm256_set1_pd(c.m_all) },
            }
        }
    }

    /// Copies of the last `n − j` (1 to 3) rows of `input`, padded to four with harmless
    /// values, so the tail can take the same four-lane path.
    struct Tail {
        e: [f64; 4],
        q: [f64; 4],
        s: [i8; 4],
        m: [f64; 4],
    }

    impl Tail {
        fn new(input: &BlockIn<'_>, j: usize, n: usize) -> Self {
            let r = n - j;
            let mut tail = Tail { e: [1.0; 4], q: [1.0; 4], s: [1; 4], m: [1.0; 4] };
            tail.e[..r].copy_from_slice(&input.entry[j..n]);
            tail.q[..r].copy_from_slice(&input.qty[j..n]);
            tail.s[..r].copy_from_slice(&input.side[j..n]);
            if let Column::Slice(m) = input.margin {
                tail.m[..r].copy_from_slice(&m[j..n]);
            }
            tail
        }

        fn cols(&self, like: &Cols) -> Cols {
            Cols {
                e: self.e.as_ptr(),
                q: self.q.as_ptr(),
                s: self.s.as_ptr(),
                m: if like.m.is_null() { like.m } else { self.m.as_ptr() },
                m_all: like.m_all,
            }
        }
    }

    /// Clear the flag of every position whose side is not +1 or −1 (32 at a time), and
    /// count the shorts (negative sides).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn side_bits(side: &[i8], ok: &mut OkBits) -> u32 {
        let (one, neg) = (_mm256_set1_epi8(1), _mm256_set1_epi8(-1));
        let mut shorts = 0;
        let mut chunks = side.chunks_exact(32);
        for (i, ch) in (&mut chunks).enumerate() {
            // SAFETY: `ch` holds 32 bytes.
            let v = unsafe { _mm256_loadu_si256(ch.as_ptr().cast()) };
            let valid = _mm256_or_si256(_mm256_cmpeq_epi8(v, one), _mm256_cmpeq_epi8(v, neg));
            let bits = u64::from(_mm256_movemask_epi8(valid) as u32);
            ok[i / 2] &= !(0xFFFF_FFFF << (32 * (i % 2))) | (bits << (32 * (i % 2)));
            shorts += (_mm256_movemask_epi8(v) as u32).count_ones();
        }
        let done = side.len() - chunks.remainder().len();
        for (j, &s) in chunks.remainder().iter().enumerate() {
            if s != 1 && s != -1 {
                ok[(done + j) / 64] &= !(1 << ((done + j) % 64));
            }
            shorts += u32::from(s < 0);
        }
        shorts
    }

    /// Byte addresses of the next block's columns (the current block's when there is none,
    /// and entry's for a column given once), for [`prefetch`].
    #[derive(Clone, Copy)]
    struct Next {
        cols: [*const i8; 4],
        side: *const i8,
    }

    impl Next {
        fn of(input: &BlockIn<'_>) -> Self {
            let a = input.ahead.unwrap_or(Ahead {
                entry: input.entry,
                qty: input.qty,
                side: input.side,
                margin: input.margin,
                time: input.time,
            });
            let e = a.entry.as_ptr().cast::<i8>();
            let m = match a.margin {
                Column::Slice(m) => m.as_ptr().cast(),
                Column::Scalar(_) => e,
            };
            let t = match a.time {
                Column::Slice(t) => t.as_ptr().cast(),
                Column::Scalar(_) => e,
            };
            Next { cols: [e, a.qty.as_ptr().cast(), m, t], side: a.side.as_ptr().cast() }
        }
    }

    /// Prefetch the line holding row `j` of each 8-byte column of the next block into L1
    /// (the memory system would otherwise idle while a block's cells and sums are done).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn prefetch(next: &Next, j: usize) {
        // A prefetch never faults, whatever the address (it may lie past a short last
        // block's end), and reads nothing as far as the program is concerned.
        for col in next.cols {
            _mm_prefetch::<_MM_HINT_T0>(col.wrapping_add(8 * j));
        }
        if j % 64 == 0 {
            _mm_prefetch::<_MM_HINT_T0>(next.side.wrapping_add(j));
        }
    }

    /// Set the flags of lanes `0 .. keep` of the group at `j` from a lane mask.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn flag(ok: &mut OkBits, j: usize, keep: usize, good: __m256d) {
        let bits = (_mm256_movemask_pd(good) as u64) & ((1u64 << keep) - 1);
        ok[j / 64] |= bits << (j % 64);
    }

    /// The first pass over one block, for the plan's formula and the columns' shapes.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block(
        plan: &FastPlan,
        input: BlockIn<'_>,
        bucket: Option<&Bucketing>,
        mut dst: Dst<'_>,
        ok: &mut OkBits,
        reach: Reach,
    ) -> (u32, [f64; 2]) {
        let ms = matches!(input.margin, Column::Slice(_));
        let two = reach == Reach::Two;
        let covered = plan.leverage && plan.covered;
        let (price, usd) = match &mut dst {
            Dst::Price(p) => (&mut **p, None),
            Dst::Cells(_, u, scratch) => (&mut scratch[..], Some(&mut **u)),
        };
        macro_rules! go {
            ($linear:literal, $lev:literal, $moves:literal) => {
                match (ms, two, covered) {
                    (false, false, false) => {
                        run::<$linear, $lev, $moves, false, false, false>(plan, input, usd, price, ok)
                    }
                    (false, false, true) => {
                        run::<$linear, $lev, $moves, false, false, true>(plan, input, usd, price, ok)
                    }
                    (false, true, false) => {
                        run::<$linear, $lev, $moves, false, true, false>(plan, input, usd, price, ok)
                    }
                    (false, true, true) => run::<$linear, $lev, $moves, false, true, true>(plan, input, usd, price, ok),
                    (true, false, false) => {
                        run::<$linear, $lev, $moves, true, false, false>(plan, input, usd, price, ok)
                    }
                    (true, false, true) => run::<$linear, $lev, $moves, true, false, true>(plan, input, usd, price, ok),
                    (true, true, false) => run::<$linear, $lev, $moves, true, true, false>(plan, input, usd, price, ok),
                    (true, true, true) => run::<$linear, $lev, $moves, true, true, true>(plan, input, usd, price, ok),
                }
            };
        }
        let moments = match (plan.kind == ContractKind::Linear, plan.leverage, plan.moves) {
            (true, true, true) => go!(true, true, true),
            (true, true, false) => go!(true, true, false),
            (true, false, true) => go!(true, false, true),
            (true, false, false) => go!(true, false, false),
            (false, true, true) => go!(false, true, true),
            (false, true, false) => go!(false, true, false),
            (false, false, true) => go!(false, false, true),
            (false, false, false) => go!(false, false, false),
        };
        if let (Dst::Cells(cell, _, price), Some(b)) = (dst, bucket) {
            cells(price, input, b, cell);
        }
        (side_bits(&input.side[..input.len()], ok), moments)
    }

    /// Prices of one block into `price`, the flags into `ok`, and with `usd` each position's
    /// USD notional at its price and the block's moments (as `super::entry_qty` sums them;
    /// zero without `usd`).
    #[target_feature(enable = "avx2,fma")]
    fn run<const LINEAR: bool, const LEV: bool, const MOVES: bool, const MS: bool, const TWO: bool, const COV: bool>(
        plan: &FastPlan,
        input: BlockIn<'_>,
        usd: Option<&mut [f64; BLOCK]>,
        price: &mut [f64],
        ok: &mut OkBits,
    ) -> [f64; 2] {
        let c = lanes::<TWO>(plan);
        let n = input.len();
        let next = Next::of(&input);
        assert!(price.len() >= n, "price output shorter than the block");
        *ok = [0; WORDS];
        let cols = Cols::of(&input);
        let out = price.as_mut_ptr();
        let usd = usd.map(|u| u.as_mut_ptr());
        let full = n & !3;
        let mut walks: OkBits = [0; WORDS];
        // One group of four: price (and notional) stored; flag and walk bits, and the inputs.
        let group = |j: usize| {
            // SAFETY: every column (and `price`) holds at least `n >= j + 4` rows, and the
            // notional scratch BLOCK >= n.
            unsafe {
                let x = load::<MS>(&cols, j);
                let (p, size, good, walk) = solve::<LINEAR, LEV, MOVES, TWO, COV>(&c, x);
                _mm256_storeu_pd(out.add(j), p);
                if let Some(u) = usd {
                    _mm256_storeu_pd(u.add(j), if LINEAR { _mm256_mul_pd(size, p) } else { size });
                }
                let walk = if MOVES && LINEAR && TWO { _mm256_movemask_pd(walk) as u64 } else { 0 };
                (_mm256_movemask_pd(good) as u64, walk, x)
            }
        };
        // Lanes of the moments, as `super::entry_qty` has them: `[0]` takes the group being
        // summed, `[1]` the other half of the eight lanes; the pair swaps after every group
        // (renaming makes that free), so whole groups of eight fill lanes 0–3 then 4–7.
        // (Stepping eight rows as two groups, one per half, spilled registers: slower.)
        let whole = n & !7;
        let (mut eq, mut q) = ([c.zero; 2], [c.zero; 2]);
        let mut j = 0;
        while j < full {
            // The flags of 16 groups gather in a register (a read-modify-write of the word
            // per group would chain every group to the previous one through memory).
            let first = j;
            let mut word = 0u64;
            let mut walk_word = 0u64;
            while j < full.min(first + 64) {
                if j % 8 == 0 {
                    prefetch(&next, j);
                }
                let (good, walk, x) = group(j);
                if usd.is_some() && j < whole {
                    eq = [eq[1], _mm256_add_pd(eq[0], _mm256_mul_pd(x.e, x.q))];
                    q = [q[1], _mm256_add_pd(q[0], x.q)];
                }
                word |= good << (j - first);
                walk_word |= walk << (j - first);
                j += 4;
            }
            ok[first / 64] = word;
            walks[first / 64] = walk_word;
        }
        if MOVES && LINEAR && TWO && walks.iter().any(|&w| w != 0) {
            walk::<LEV, MS>(&c, &cols, &walks, price, usd, ok);
        }
        if j < n {
            let tail = Tail::new(&input, j, n);
            // SAFETY: the tail's columns hold four rows.
            let (p, size, good, _) =
                solve::<LINEAR, LEV, MOVES, TWO, COV>(&c, unsafe { load::<MS>(&tail.cols(&cols), 0) });
            let mut tmp = [0.0; 4];
            // SAFETY: `tmp` holds four f64.
            unsafe { _mm256_storeu_pd(tmp.as_mut_ptr(), p) };
            price[j..n].copy_from_slice(&tmp[..n - j]);
            if let Some(u) = usd {
                // SAFETY: `j` is a multiple of four below `n <= BLOCK`, so `j + 4 <= BLOCK`.
                unsafe { _mm256_storeu_pd(u.add(j), if LINEAR { _mm256_mul_pd(size, p) } else { size }) };
            }
            flag(ok, j, n - j, good);
        }
        if usd.is_none() {
            return [0.0; 2];
        }
        let (mut eq8, mut q8) = ([0.0; 8], [0.0; 8]);
        // SAFETY: each half of the arrays holds four f64.
        unsafe {
            for h in 0..2 {
                _mm256_storeu_pd(eq8.as_mut_ptr().add(4 * h), eq[h]);
                _mm256_storeu_pd(q8.as_mut_ptr().add(4 * h), q[h]);
            }
        }
        super::lanes_sum(eq8, q8, &input.entry[whole..n], &input.qty[whole..n])
    }

    /// [`cells`] for the tests.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(test)]
    pub(super) unsafe fn cells_for_test(
        price: &[f64; BLOCK],
        input: BlockIn<'_>,
        b: &Bucketing,
        cell: &mut [u64; BLOCK],
    ) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { cells(price, input, b, cell) }
    }

    /// Walk the groups with bits in `walks` (all full groups of the block) one tier, as
    /// [`to_walk`] describes: where the price in the other tier lies in that tier, it
    /// replaces the price (and notional) and the position is flagged.
    #[cold]
    #[target_feature(enable = "avx2,fma")]
    fn walk<const LEV: bool, const MS: bool>(
        c: &Lanes,
        cols: &Cols,
        walks: &OkBits,
        price: &mut [f64],
        usd: Option<*mut f64>,
        ok: &mut OkBits,
    ) {
        for (w, &word) in walks.iter().enumerate() {
            let mut left = word;
            while left != 0 {
                let j = w * 64 + (left.trailing_zeros() as usize & !3);
                left &= !(0xF << (j % 64));
                // SAFETY: walk bits are only set for full groups of the block.
                let x = unsafe { load::<MS>(cols, j) };
                let b = common::<true>(c, &x);
                let tier = _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_GE_OQ>(b.n0, c.cap[0]));
                let other = _mm256_xor_si256(tier, _mm256_castpd_si256(c.all));
                let (p1, _) = price_in::<true, LEV, true, true>(c, &x, &b, other);
                let mask = _mm256_castsi256_pd(_mm256_set_epi64x(
                    -(((word >> (j % 64 + 3)) & 1) as i64),
                    -(((word >> (j % 64 + 2)) & 1) as i64),
                    -(((word >> (j % 64 + 1)) & 1) as i64),
                    -(((word >> (j % 64)) & 1) as i64),
                ));
                // The price in the entry tier must be usable (finite) for the walk to start.
                // SAFETY: the slice holds four f64.
                let p0 = unsafe { _mm256_loadu_pd(price[j..j + 4].as_ptr()) };
                let mask = _mm256_and_pd(mask, _mm256_cmp_pd::<_CMP_LT_OQ>(p0, c.inf));
                let took = _mm256_and_pd(mask, fits_in::<true, true, true>(c, b.size, p1, other));
                let bits = _mm256_movemask_pd(took) as u64;
                if bits == 0 {
                    continue;
                }
                let dst = &mut price[j..j + 4];
                // SAFETY: `dst` holds four f64.
                unsafe {
                    let p = _mm256_blendv_pd(_mm256_loadu_pd(dst.as_ptr()), p1, took);
                    _mm256_storeu_pd(dst.as_mut_ptr(), p);
                    if let Some(u) = usd {
                        // SAFETY: the notional scratch holds the block's rows.
                        let old = _mm256_loadu_pd(u.add(j));
                        _mm256_storeu_pd(u.add(j), _mm256_blendv_pd(old, _mm256_mul_pd(b.size, p), took));
                    }
                }
                ok[w] |= bits << (j % 64);
            }
        }
    }

    /// Cells of the block's prices. A second loop: its dependency chains are short, so the
    /// core overlaps many groups (one loop doing both stalls on the division's latency).
    #[target_feature(enable = "avx2,fma")]
    fn cells(price: &[f64; BLOCK], input: BlockIn<'_>, b: &Bucketing, cell: &mut [u64; BLOCK]) {
        match input.time {
            // One row for the block (row `rows` if it is outside the heatmap; see below).
            Column::Scalar(t) => {
                let row = if (t as u64) < b.rows as u64 { t as usize } else { b.rows };
                cells_in::<false>(price, input, &grid(b, row), b, cell);
            }
            Column::Slice(_) => cells_in::<true>(price, input, &grid(b, 0), b, cell),
        }
    }

    /// [`cells`] with the row from the time column (`TS`) or already in the grid's bases.
    /// A row outside the heatmap becomes row `rows`, whose cells lie past every accumulator
    /// the second pass holds, so it hands that position to the exact path.
    #[target_feature(enable = "avx2,fma")]
    fn cells_in<const TS: bool>(
        price: &[f64; BLOCK],
        input: BlockIn<'_>,
        g: &Grid,
        b: &Bucketing,
        cell: &mut [u64; BLOCK],
    ) {
        let n = input.len();
        let times: &[i64] = match input.time {
            Column::Slice(t) => &t[..n],
            Column::Scalar(_) => &[],
        };
        let stride = _mm256_set1_epi64x(b.stride as i64);
        // Row < rows as unsigned (negative rows fail too): flip the sign bits, compare signed.
        let flip = _mm256_set1_epi64x(i64::MIN);
        let rows = _mm256_set1_epi64x(b.rows as i64);
        let rows_flipped = _mm256_set1_epi64x((b.rows as u64 ^ (1 << 63)) as i64);
        let group = |j: usize, s: __m256i, t: __m256i, cell: &mut [u64; BLOCK]| {
            // SAFETY: `j` is a multiple of four below `n <= BLOCK`, so `j + 4 <= BLOCK`.
            let mut at = locate(g, unsafe { _mm256_loadu_pd(price.as_ptr().add(j)) }, s);
            if TS {
                let inside = _mm256_cmpgt_epi64(rows_flipped, _mm256_xor_si256(t, flip));
                let row = _mm256_blendv_epi8(rows, t, inside);
                at = _mm256_add_epi64(at, _mm256_mul_epu32(row, stride));
            }
            // SAFETY: as above.
            unsafe { _mm256_storeu_si256(cell.as_mut_ptr().add(j).cast(), at) };
        };
        let full = n & !3;
        let mut j = 0;
        while j < full {
            // SAFETY: the side and time columns hold at least `n >= j + 4` rows.
            let (s, t) = unsafe {
                let t = if TS { _mm256_loadu_si256(times.as_ptr().add(j).cast()) } else { flip };
                (load_side(input.side.as_ptr(), j), t)
            };
            group(j, s, t, cell);
            j += 4;
        }
        if j < n {
            let mut s = [1i8; 4];
            let mut t = [0i64; 4];
            s[..n - j].copy_from_slice(&input.side[j..n]);
            if TS {
                t[..n - j].copy_from_slice(&times[j..n]);
            }
            // SAFETY: `s` and `t` hold four rows.
            let (s, t) = unsafe { (load_side(s.as_ptr(), 0), _mm256_loadu_si256(t.as_ptr().cast())) };
            group(j, s, t, cell);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::tiered as model;

    fn models() -> Vec<MarginModel> {
        let binance = [
            (0.0, 50e3, 125.0, 0.004, 0.0),
            (50e3, 600e3, 100.0, 0.005, 50.0),
            (600e3, 3e6, 75.0, 0.0065, 950.0),
            (3e6, 12e6, 50.0, 0.01, 11_450.0),
            (12e6, 70e6, 25.0, 0.02, 131_450.0),
            (70e6, f64::INFINITY, 20.0, 0.025, 481_450.0),
        ];
        let coin =
            [(0.0, 5.0, 125.0, 0.004, 0.0), (5.0, 10.0, 100.0, 0.005, 0.005), (10.0, f64::INFINITY, 50.0, 0.01, 0.055)];
        let contracts =
            [(0.0, 1e3, 100.0, 0.004, 0.0), (1e3, 1e4, 50.0, 0.01, 0.0), (1e4, f64::INFINITY, 20.0, 0.02, 0.0)];
        vec![
            model("binance-usdm", None, 1.0, 0.0, TierUnit::Quote, &binance),
            model("binance-usdm", None, 0.001, 0.0, TierUnit::Quote, &binance[..2]),
            model("binance-usdm", None, 1.0, 0.0, TierUnit::Quote, &binance[..1]),
            model("binance-coinm", None, 100.0, 0.0, TierUnit::Base, &coin),
            model("okx-inverse", None, 100.0, 0.0005, TierUnit::Contracts, &contracts),
            model("gate-linear", None, 0.0001, 0.0005, TierUnit::Contracts, &contracts),
            model("bybit-linear", Some("mark-mm"), 1.0, 0.00055, TierUnit::Quote, &binance),
            model("binance-usdm", None, 1.0, 0.0, TierUnit::Quote, &binance)
                .with_overrides(Some(0.01), Some(5.0), 0.0)
                .unwrap(),
        ]
    }

    /// Inputs with every kind of edge value mixed into a plausible book.
    fn inputs(n: usize, seed: u64, model: &MarginModel, amounts: bool) -> (Vec<f64>, Vec<f64>, Vec<i8>, Vec<f64>) {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let odd = [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-310, 1e300, 5e-324];
        let pick = |v: f64, r: f64| if r < 0.03 { odd[(r * 300.0) as usize % odd.len()] } else { v };
        let (mut e, mut q, mut s, mut m) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let ev = 20_000.0 + 100_000.0 * next();
            let qv = 10f64.powf(-3.0 + 7.0 * next());
            let lev = 1.0 + 150.0 * next() * next();
            let size = qv * model.contract_size;
            let notional = if model.rules.kind == ContractKind::Linear { size * ev } else { size / ev };
            let mv = if amounts { notional / lev * (0.5 + next()) } else { lev };
            e.push(pick(ev, next()));
            q.push(pick(qv, next()));
            m.push(pick(mv, next()));
            let r = next();
            s.push(if r < 0.01 {
                [0, 2, -2, 127][(r * 400.0) as usize % 4]
            } else if r < 0.5 {
                1
            } else {
                -1
            });
        }
        (e, q, s, m)
    }

    /// The AVX2 pass agrees with the generic one bit for bit on every flagged position,
    /// flags the same positions, for both reaches.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_pass_equals_generic_pass() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let grid = Bucketing::new(10_000.0, 37.5, 4_000, 7);
        let mut walked = 0;
        for (mi, m) in models().iter().enumerate() {
            for kind in [MarginKind::Leverage, MarginKind::Amount] {
                let Some(plan) = FastPlan::new(m, kind) else { continue };
                // The last block: a whole group of eight, a group of four, a row.
                let (e, q, s, mg) = inputs(3 * BLOCK + 13, 7 + mi as u64, m, kind == MarginKind::Amount);
                // Rows mostly inside the heatmap's 7, some outside.
                let times: Vec<i64> = (0..e.len() as i64).map(|i| (i * 7919) % 9 - 1).collect();
                let mut flagged = 0;
                for reach in [Reach::Two, Reach::All] {
                    let blocks = [(0, false, 0), (BLOCK, false, 1), (2 * BLOCK, true, 2), (3 * BLOCK, false, 3)];
                    for (start, scalar, time_kind) in blocks {
                        let end = (start + BLOCK).min(e.len());
                        let input = BlockIn {
                            entry: &e[start..end],
                            qty: &q[start..end],
                            side: &s[start..end],
                            margin: if scalar { Column::Scalar(mg[start]) } else { Column::Slice(&mg[start..end]) },
                            time: match time_kind {
                                0 => Column::Scalar(0),
                                1 => Column::Scalar(6),
                                2 => Column::Scalar(7),
                                _ => Column::Slice(&times[start..end]),
                            },
                            ahead: None,
                        };
                        let n = input.len();
                        let (mut pa, mut pg) = (vec![0.0; n], vec![0.0; n]);
                        let (mut oa, mut og) = ([0; WORDS], [0; WORDS]);
                        // SAFETY: AVX2 is available (checked above).
                        unsafe { avx2::block(&plan, input, None, Dst::Price(&mut pa), &mut oa, reach) };
                        plan.eval_generic(input, None, Dst::Price(&mut pg), &mut og);
                        let (mut ca, mut cg) = (BlockOut::new(), BlockOut::new());
                        plan.cells(input, &grid, &mut ca, reach);
                        let want = entry_qty(&input.entry[..n], &input.qty[..n]);
                        // (Bits of a NaN are not kept by the compiler's reordering of operands.)
                        let bits = |v: [f64; 2]| v.map(|x| if x.is_nan() { f64::NAN } else { x }.to_bits());
                        assert_eq!(bits(ca.entry_qty), bits(want), "moments");
                        {
                            let BlockOut { ok, cell, usd, price, .. } = &mut *cg;
                            plan.eval_generic(input, Some(&grid), Dst::Cells(cell, usd, price), ok);
                        }
                        // Every flagged row must carry the scalar path's price, bit for bit; the
                        // generic pass and the AVX2 one flag the same rows, except that the AVX2
                        // two-tier pass leaves rows in higher tiers to the exact path and walks
                        // some linear rows one tier itself.
                        let g_grid =
                            crate::grid::PriceGrid::new(grid.lo, grid.lo + grid.step * grid.n as f64, grid.step)
                                .unwrap();
                        for j in 0..n {
                            let bit = |o: &OkBits| o[j / 64] >> (j % 64) & 1 == 1;
                            let (a, g, ac, gc) = (bit(&oa), bit(&og), bit(&ca.ok), bit(&cg.ok));
                            let at = start + j;
                            let margin = match input.margin {
                                Column::Scalar(v) => v,
                                Column::Slice(m) => m[j],
                            };
                            let mi_ = if kind == MarginKind::Leverage {
                                MarginInput::Leverage(margin)
                            } else {
                                MarginInput::Amount(margin)
                            };
                            let exact = m.liq_price(f64::from(input.side[j]), input.entry[j], input.qty[j], mi_);
                            if reach == Reach::All {
                                assert_eq!(a, g, "model {mi} {kind:?} row {at}: flag");
                            }
                            assert_eq!((a, g), (ac, gc), "model {mi} {kind:?} row {at}: cells flags");
                            for (flag, price) in [(a, pa[j]), (g, pg[j])] {
                                if flag {
                                    let want = *exact.as_ref().unwrap_or_else(|e| {
                                        panic!("model {mi} {kind:?} row {at}: flagged, scalar says {e:?}")
                                    });
                                    assert_eq!(price.to_bits(), want.to_bits(), "model {mi} {kind:?} row {at}: price");
                                }
                            }
                            if a {
                                flagged += 1;
                            }
                            walked += usize::from(a && !g);
                            for (flag, out) in [(ac, &ca), (gc, &cg)] {
                                if !flag {
                                    continue;
                                }
                                let p = *exact.as_ref().unwrap();
                                let slot = match g_grid.locate(p) {
                                    crate::grid::Loc::Below => 0,
                                    crate::grid::Loc::In(k) => k + 1,
                                    crate::grid::Loc::Above => grid.n + 1,
                                };
                                let t = match input.time {
                                    Column::Scalar(t) => t,
                                    Column::Slice(ts) => ts[j],
                                };
                                let row = if (t as u64) < grid.rows as u64 { t as usize } else { grid.rows };
                                let side = usize::from(input.side[j] < 0);
                                let want = row * grid.stride + side * grid.width + slot;
                                assert_eq!(out.cell[j] as u32 as usize, want, "model {mi} row {at}: cell");
                                assert_eq!(
                                    out.usd[j].to_bits(),
                                    m.usd_notional(input.qty[j], p).to_bits(),
                                    "model {mi} row {at}: usd"
                                );
                            }
                        }
                        let shorts = input.side.iter().filter(|&&v| v < 0).count();
                        assert_eq!(ca.shorts as usize, shorts, "model {mi}: shorts");
                    }
                }
                assert!(flagged > 300, "model {mi} {kind:?}: only {flagged} rows took the fast path");
            }
        }
        assert!(walked > 10, "only {walked} rows were walked a tier by the fast pass");
    }

    /// Prices on and around bucket edges land where `PriceGrid::locate` puts them.
    #[test]
    fn cells_match_locate_at_edges() {
        use crate::grid::{Loc, PriceGrid};
        for (lo, hi, step) in [
            (10_000.0, 200_000.0, 37.5),
            (0.0, 1.0, 0.1),
            (3.0, 7.0, 0.3),
            (80_000.0, 100_000.0, 0.1),
            // Edges far apart in ulps from exact: the shortcut is off.
            (1e15, 1e15 + 3_000.0, 1.0),
        ] {
            let g = PriceGrid::new(lo, hi, step).unwrap();
            let b = Bucketing::new(g.lo(), g.step(), g.len(), 1);
            // The generic pass's arithmetic, and the AVX2 one, on each probe price.
            let probes: Vec<f64> = (0..=g.len().min(3_000))
                .flat_map(|k| {
                    let e = g.edge(k);
                    let up = |v: f64, k: u64| f64::from_bits(v.to_bits() + k);
                    let mid = e + 0.5 * step;
                    [
                        e,
                        f64::from_bits(e.to_bits().saturating_sub(1)),
                        up(e, 1),
                        up(e, 1000),
                        mid,
                        up(mid, 7),
                        e + 0.999_999 * step,
                    ]
                })
                .chain([lo - 5.0 * step, hi + 5.0 * step, 1e300, 1e-300])
                .collect();
            for &p in &probes {
                let want = match g.locate(p) {
                    Loc::Below => 0,
                    Loc::In(k) => k as u32 + 1,
                    Loc::Above => g.len() as u32 + 1,
                };
                let x = (p - b.lo) * b.inv_step;
                let x = sel(x > 0.0, x, 0.0);
                let kf = sel(x < b.last, x, b.last).floor();
                let below = p < b.lo + kf * b.step;
                let above = p >= b.lo + (kf + 1.0) * b.step;
                let slot = (kf + sel(below, 0.0, sel(above, 2.0, 1.0))) as u32;
                assert_eq!(slot, want, "price {p} on grid ({lo}, {hi}, {step})");
                #[cfg(target_arch = "x86_64")]
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    let price = [p; BLOCK];
                    let side = [1i8; BLOCK];
                    let input = BlockIn {
                        entry: &price,
                        qty: &price,
                        side: &side,
                        margin: Column::Scalar(1.0),
                        time: Column::Scalar(0),
                        ahead: None,
                    };
                    let mut cell = [0u64; BLOCK];
                    // SAFETY: AVX2 is available (checked above).
                    unsafe { avx2::cells_for_test(&price, input, &b, &mut cell) };
                    assert_eq!(cell[0] as u32, want, "avx2: price {p} on grid ({lo}, {hi}, {step})");
                }
            }
        }
    }
}
