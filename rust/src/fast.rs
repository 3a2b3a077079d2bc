//! Branch-free batch evaluation of the common case of [`MarginModel::liq_price`].
//!
//! A batch is processed in blocks. The first pass over a block computes every position's
//! liquidation price as if it were in the common case (valid inputs, a tier among the first
//! [`NT`], same tier at entry and at liquidation) with no branches, so the compiler can use
//! SIMD; it flags the positions where that assumption holds. The second pass hands every
//! unflagged position to the exact scalar path. Both passes evaluate the same expressions
//! (`MarginModel::solve` and friends) on the same tier constants, so the results are
//! bit-identical to calling `liq_price` per position.

use crate::aggregate::{Column, MarginKind};
use crate::margin::{ContractKind, FeeMode, MarginInput, MarginModel, MmBasis, usable};
use crate::tiers::TierUnit;

/// Tiers the branch-free pass handles; positions in higher tiers take the exact path.
pub(crate) const NT: usize = 4;
/// Positions per block: the block's scratch (prices, flags) stays in L1.
pub(crate) const BLOCK: usize = 512;

/// Tier constants of one model laid out for the branch-free pass.
#[derive(Clone, Debug)]
pub(crate) struct FastPlan {
    kind: ContractKind,
    leverage: bool,
    /// The tier measure depends on price (linear/quote or inverse/base tables).
    moves: bool,
    /// For constant measures: measure = qty × this.
    qty_factor: f64,
    contract_size: f64,
    a: [f64; NT],
    d: [f64; NT],
    k_long: [f64; NT],
    k_short: [f64; NT],
    floor: [f64; NT],
    cap: [f64; NT],
    /// `max_leverage·(1 + 1e-9)`, as the exact path compares it.
    lev_limit: [f64; NT],
    /// Positions whose entry measure reaches this are beyond the handled tiers.
    guard: f64,
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
            qty_factor,
            contract_size: model.contract_size,
            a: [0.0; NT],
            d: [0.0; NT],
            k_long: [0.0; NT],
            k_short: [0.0; NT],
            floor: [0.0; NT],
            cap: [f64::INFINITY; NT],
            lev_limit: [0.0; NT],
            guard: f64::INFINITY,
        };
        for j in 0..NT {
            // Pad short tables with their last tier; the exact path treats the first tier as
            // open below and the last as open above, and so does this plan.
            let t = &terms[j.min(last)];
            plan.a[j] = t.a;
            plan.d[j] = t.d;
            plan.k_long[j] = t.k[0];
            plan.k_short[j] = t.k[1];
            plan.floor[j] = if j == 0 { f64::NEG_INFINITY } else { t.floor };
            plan.cap[j] = if j >= last { f64::INFINITY } else { t.cap };
            plan.lev_limit[j] = if model.overridden { f64::INFINITY } else { t.max_leverage * (1.0 + 1e-9) };
        }
        if last >= NT {
            plan.guard = terms[NT - 1].cap;
        }
        Some(plan)
    }

    /// First pass over one block: `price[j]` and whether the common case holds (`ok[j]`);
    /// with `bucket`, also the accumulator cell and USD notional of every `ok` position.
    pub(crate) fn eval_block(&self, input: BlockIn<'_>, bucket: Option<&Bucketing>, out: &mut BlockOut) {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { self.eval_block_avx2(input, bucket, out) };
                return;
            }
        }
        self.eval_block_generic(input, bucket, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eval_block_avx2(&self, input: BlockIn<'_>, bucket: Option<&Bucketing>, out: &mut BlockOut) {
        // Same code, compiled for AVX2. Rust never fuses a·b + c into an FMA on its own, so
        // the results equal the baseline build's bit for bit.
        self.eval_block_generic(input, bucket, out);
    }

    #[inline(always)]
    fn eval_block_generic(&self, input: BlockIn<'_>, bucket: Option<&Bucketing>, out: &mut BlockOut) {
        macro_rules! go {
            ($linear:literal, $lev:literal, $moves:literal) => {
                match (input.margin, bucket, input.time) {
                    (Column::Scalar(v), None, _) => {
                        self.eval::<$linear, $lev, $moves, false, _, _>(&input, |_| v, |_| 0, None, out)
                    }
                    (Column::Slice(m), None, _) => {
                        self.eval::<$linear, $lev, $moves, false, _, _>(&input, |j| m[j], |_| 0, None, out)
                    }
                    (Column::Scalar(v), Some(b), Column::Scalar(t)) => {
                        self.eval::<$linear, $lev, $moves, true, _, _>(&input, |_| v, |_| t, Some(b), out)
                    }
                    (Column::Slice(m), Some(b), Column::Scalar(t)) => {
                        self.eval::<$linear, $lev, $moves, true, _, _>(&input, |j| m[j], |_| t, Some(b), out)
                    }
                    (Column::Scalar(v), Some(b), Column::Slice(ts)) => {
                        self.eval::<$linear, $lev, $moves, true, _, _>(&input, |_| v, |j| ts[j], Some(b), out)
                    }
                    (Column::Slice(m), Some(b), Column::Slice(ts)) => {
                        self.eval::<$linear, $lev, $moves, true, _, _>(&input, |j| m[j], |j| ts[j], Some(b), out)
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
    }

    #[inline(always)]
    fn eval<const LINEAR: bool, const LEV: bool, const MOVES: bool, const BUCKET: bool, M, T>(
        &self,
        input: &BlockIn<'_>,
        margin: M,
        time: T,
        bucket: Option<&Bucketing>,
        out: &mut BlockOut,
    ) where
        M: Fn(usize) -> f64,
        T: Fn(usize) -> i64,
    {
        let kind = if LINEAR { ContractKind::Linear } else { ContractKind::Inverse };
        let (entry, qty, side) = (input.entry, input.qty, input.side);
        let n = entry.len().min(qty.len()).min(side.len()).min(BLOCK);
        let b = bucket.copied().unwrap_or(Bucketing::NONE);
        for j in 0..n {
            let (e, q, s, mv) = (entry[j], qty[j], f64::from(side[j]), margin(j));
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
            let inputs_ok =
                (e > 0.0) & (e < f64::INFINITY) & (q > 0.0) & (q < f64::INFINITY) & ((s == 1.0) | (s == -1.0));
            let margin_ok =
                if LEV { (mv > 0.0) & (mv < f64::INFINITY) & !(mv > pick(&self.lev_limit)) } else { mv.is_finite() };
            let covers = MarginModel::covers_maintenance(kind, a + 0.0, d, size, e, m, 0.0);
            let p = MarginModel::solve(kind, 0.0, d, k, s, size, e, m, 0.0);
            let fits = usable(p) & (!MOVES || MarginModel::in_tier(kind, pick(&self.floor), pick(&self.cap), size, p));
            let mut good = inputs_ok & margin_ok & covers & fits & !reaches(self.guard);
            out.price[j] = p;
            if BUCKET {
                // Cell of the padded accumulator: [below, bucket 0 .. n-1, above] per row; the
                // edge correction reproduces `PriceGrid::locate` exactly.
                // Plain compares and selects (no `clamp`/`max`, whose NaN rules and asserts
                // stop vectorisation); NaN and ±inf end up clamped and flagged not `ok`.
                let x = (p - b.lo) * b.inv_step;
                let x = sel(x >= -1.0, x, -1.0);
                let kf = sel(x <= b.nf, x, b.nf).floor();
                let below = p < b.lo + kf * b.step;
                let above = p >= b.lo + (kf + 1.0) * b.step;
                let slot = kf + 1.0 - f64::from(u8::from(below)) + f64::from(u8::from(above));
                let slot = sel(slot >= 0.0, sel(slot <= b.nf + 1.0, slot, b.nf + 1.0), 0.0);
                // SAFETY: `slot` is a whole number in [0, n + 1], far inside i32.
                let slot = unsafe { slot.to_int_unchecked::<i32>() };
                let t = time(j);
                let t_ok = (t >= 0) & (t < b.rows as i64);
                good &= t_ok;
                let row = if t_ok { t as i32 } else { 0 };
                let si = i32::from(s < 0.0);
                out.cell[j] = (si * b.half as i32 + row * b.width as i32 + slot) as u32;
                out.usd[j] = if LINEAR { size * p } else { size };
            }
            out.ok[j] = good;
        }
    }
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
}

/// Scratch for one block.
pub(crate) struct BlockOut {
    pub(crate) price: [f64; BLOCK],
    pub(crate) ok: [bool; BLOCK],
    pub(crate) cell: [u32; BLOCK],
    pub(crate) usd: [f64; BLOCK],
}

impl BlockOut {
    pub(crate) fn new() -> Box<Self> {
        Box::new(BlockOut { price: [0.0; BLOCK], ok: [false; BLOCK], cell: [0; BLOCK], usd: [0.0; BLOCK] })
    }
}

/// Grid and accumulator geometry for the bucketing pass: per side, `rows` rows of
/// `width = n + 2` cells (below, the n buckets, above).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucketing {
    pub(crate) lo: f64,
    pub(crate) step: f64,
    pub(crate) inv_step: f64,
    pub(crate) n: usize,
    pub(crate) nf: f64,
    pub(crate) rows: usize,
    pub(crate) width: usize,
    pub(crate) half: usize,
}

impl Bucketing {
    const NONE: Bucketing = Bucketing { lo: 0.0, step: 1.0, inv_step: 1.0, n: 0, nf: 0.0, rows: 1, width: 2, half: 2 };

    pub(crate) fn new(lo: f64, step: f64, n: usize, rows: usize) -> Self {
        let width = n + 2;
        Bucketing { lo, step, inv_step: 1.0 / step, n, nf: n as f64, rows, width, half: rows * width }
    }
}

/// `if c { x } else { y }` without a branch.
#[inline(always)]
fn sel(c: bool, x: f64, y: f64) -> f64 {
    if c { x } else { y }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}
