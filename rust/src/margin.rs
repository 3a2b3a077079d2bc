//! Liquidation prices: one equation for every venue.
//!
//! A position is liquidated at the mark price `P` where its equity falls to the maintenance
//! requirement. Written with `s` = +1 long / −1 short, size `Q` in base coin (linear) or `N`
//! in USD (inverse), entry `EP`, margin `M` (isolated margin, or cross wallet net of the other
//! positions' maintenance and PnL), and a maintenance requirement that is linear in the mark
//! notional plus a constant, `MM(P) = notional(P)·a + c`:
//!
//! * linear:  `M + s·Q·(P − EP) = Q·P·a + c`            ⇒ `P = (M − c − s·Q·EP) / (Q·(a − s))`
//! * inverse: `M + s·N·(1/EP − 1/P) = (N/P)·a + c`       ⇒ `P = N·(s + a) / (M + s·N/EP − c)`
//!
//! Venues differ only in `a` and `c` (see [`MarginRules`]): `a = mmr + fee` when maintenance
//! is charged on the mark notional and includes a fee; `c = −deduction` for progressive tiers;
//! when maintenance is charged on the *entry* notional (legacy Bybit, legacy KuCoin) it moves
//! into `c`; Bybit's fee-to-close at the bankruptcy price is another constant in `c`.
//! The tier is the one at the liquidation price, found by walking from the entry tier.

use crate::error::{Field, LiqError, Num, Problem, Result};
use crate::tiers::{TierTable, TierUnit};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContractKind {
    /// Quote-margined (USDT/USDC): size in base coin, PnL in quote.
    Linear,
    /// Coin-margined: size in USD face value, margin and PnL in coin.
    Inverse,
}

/// Which notional maintenance is charged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmBasis {
    /// The mark price at the moment of liquidation (all venues today).
    Mark,
    /// The entry price (Bybit before 2025-09-02, KuCoin's legacy help formula).
    Entry,
}

/// How the venue's fee rate enters the maintenance requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeMode {
    /// No fee in maintenance (Binance, Hyperliquid).
    None,
    /// Maintenance rate is `mmr + fee` on the mark notional (OKX, Bitget, Gate, KuCoin).
    InMaintenance,
    /// Maintenance includes the fee to close at the bankruptcy price (Bybit). Initial margin
    /// includes the same fee, so it cancels when the margin follows from leverage.
    AtBankruptcy,
}

/// How tier rates apply to a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierMath {
    /// `MM = notional·mmr_k − deduction_k`: each slice pays its own tier's rate.
    Progressive,
    /// `MM = notional·mmr_k`: the whole position pays the rate of the tier it is in.
    WholePosition,
}

/// One venue formula: everything about the maths that is code, not data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarginRules {
    pub kind: ContractKind,
    pub basis: MmBasis,
    pub fee_mode: FeeMode,
    pub tier_math: TierMath,
}

/// How a position's margin is given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MarginInput {
    /// Isolated margin that follows from leverage: `notional(EP)/leverage`.
    Leverage(f64),
    /// Margin in the margin currency: posted isolated margin, or for cross the wallet balance
    /// net of the other positions' maintenance margin and unrealised PnL.
    Amount(f64),
}

/// A venue formula bound to its data: contract size, fee rate and tier table.
#[derive(Clone, Debug, PartialEq)]
pub struct MarginModel {
    pub rules: MarginRules,
    /// Multiplier from the venue's quantity unit to base coin (linear) or USD (inverse).
    pub contract_size: f64,
    pub fee_rate: f64,
    pub table: TierTable,
    /// True when `table` came from explicit `mmr`/`maint_amount` overrides: no leverage cap.
    pub overridden: bool,
    /// Per-tier constants of the liquidation equation, derived from the fields above.
    pub(crate) terms: Vec<TierTerms>,
    /// Whether the tier can differ between entry and liquidation (so the solver walks).
    pub(crate) walks: bool,
}

/// The maintenance requirement of one tier as `MM(P) = notional(P)·a + (entry_rate·notional(EP) − d + fee)`,
/// plus the side factor of the closed form, precomputed once per model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TierTerms {
    /// Slope on the mark notional: `mmr + fee` (mark basis) or the fee alone (entry basis).
    pub(crate) a: f64,
    /// Rate charged on the entry notional (entry basis only).
    pub(crate) entry_rate: f64,
    /// Deduction (0 for whole-position tiers).
    pub(crate) d: f64,
    /// Per side (0 long, 1 short): `1/(a − s)` for linear, `s + a` for inverse contracts.
    pub(crate) k: [f64; 2],
    pub(crate) floor: f64,
    pub(crate) cap: f64,
    pub(crate) max_leverage: f64,
}

/// Usable factors (see [`MarginModel::check_factor`]): normal floats below infinity.
const FACTORS: std::ops::Range<f64> = f64::MIN_POSITIVE..f64::INFINITY;
/// What [`MarginModel::check_factor`] requires beyond "> 0".
const NORMAL: &str = "a normal float (>= 2.2250738585072014e-308; subnormal values lose precision)";

/// `true` for a usable liquidation price.
#[inline]
pub(crate) fn usable(p: f64) -> bool {
    p > 0.0 && p < f64::INFINITY
}

impl MarginModel {
    pub fn new(rules: MarginRules, contract_size: f64, fee_rate: f64, table: TierTable) -> Result<Self> {
        // (A subnormal contract size would make every position's size inexact.)
        if !(contract_size.is_finite() && contract_size >= f64::MIN_POSITIVE) {
            return Err(LiqError::Invalid(format!("contract_size must be finite and > 0, got {}", Num(contract_size))));
        }
        if !(fee_rate.is_finite() && (0.0..0.1).contains(&fee_rate)) {
            return Err(LiqError::Invalid(format!("fee_rate must be in [0, 0.1), got {}", Num(fee_rate))));
        }
        Ok(Self::build(rules, contract_size, fee_rate, table, false))
    }

    pub(crate) fn build(
        rules: MarginRules,
        contract_size: f64,
        fee_rate: f64,
        table: TierTable,
        overridden: bool,
    ) -> Self {
        let fee_in = if rules.fee_mode == FeeMode::InMaintenance { fee_rate } else { 0.0 };
        let terms = table
            .tiers()
            .iter()
            .map(|t| {
                let (a, entry_rate) = match rules.basis {
                    MmBasis::Mark => (t.mmr + fee_in, 0.0),
                    MmBasis::Entry => (fee_in, t.mmr),
                };
                let d = match rules.tier_math {
                    TierMath::Progressive => t.maint_amount,
                    TierMath::WholePosition => 0.0,
                };
                let k = match rules.kind {
                    ContractKind::Linear => [1.0 / (a - 1.0), 1.0 / (a + 1.0)],
                    ContractKind::Inverse => [1.0 + a, a - 1.0],
                };
                TierTerms { a, entry_rate, d, k, floor: t.floor, cap: t.cap, max_leverage: t.max_leverage }
            })
            .collect();
        let moves = matches!(
            (table.unit(), rules.kind),
            (TierUnit::Quote, ContractKind::Linear) | (TierUnit::Base, ContractKind::Inverse)
        );
        let walks = rules.basis == MmBasis::Mark && moves && table.tiers().len() > 1;
        MarginModel { rules, contract_size, fee_rate, table, overridden, terms, walks }
    }

    /// The same model with an explicit maintenance rate and/or deduction instead of the table.
    /// With only `mmr`, the deduction is 0 (whole position at that rate); with only
    /// `maint_amount`, the rate is the table's at `size_hint`. An explicit deduction is always
    /// applied, whatever the venue's tier maths.
    pub fn with_overrides(&self, mmr: Option<f64>, maint_amount: Option<f64>, size_hint: f64) -> Result<Self> {
        if mmr.is_none() && maint_amount.is_none() {
            return Ok(self.clone());
        }
        let mmr = match mmr {
            Some(v) => v,
            None => self.table.tiers()[self.table.index_of(size_hint)].mmr,
        };
        if !(mmr.is_finite() && (0.0..1.0).contains(&mmr)) {
            return Err(LiqError::Invalid(format!("mmr must be in [0, 1), got {}", Num(mmr))));
        }
        let maint = maint_amount.unwrap_or(0.0);
        // As in tier tables: a negative deduction would add maintenance.
        if !(maint.is_finite() && maint >= 0.0) {
            return Err(LiqError::Invalid(format!("maint_amount must be finite and >= 0, got {}", Num(maint))));
        }
        let mut rules = self.rules;
        if maint_amount.is_some() {
            rules.tier_math = TierMath::Progressive;
        }
        let table = TierTable::flat(mmr, maint, f64::INFINITY);
        Ok(Self::build(rules, self.contract_size, self.fee_rate, table, true))
    }

    /// Position size in base coin (linear) or USD (inverse) for a quantity in venue units.
    #[inline]
    #[must_use]
    pub fn size(&self, qty: f64) -> f64 {
        qty * self.contract_size
    }

    /// Notional in the margin currency at price `p`: quote for linear, coin for inverse.
    #[inline]
    fn margin_notional(&self, size: f64, p: f64) -> f64 {
        match self.rules.kind {
            ContractKind::Linear => size * p,
            ContractKind::Inverse => size / p,
        }
    }

    /// What the tier table measures, given the margin notional `n` at the price of interest.
    #[inline]
    fn tier_measure(&self, size: f64, qty: f64, n: f64) -> f64 {
        match (self.table.unit(), self.rules.kind) {
            (TierUnit::Quote, ContractKind::Linear) | (TierUnit::Base, ContractKind::Inverse) => n,
            (TierUnit::Quote, ContractKind::Inverse) | (TierUnit::Base, ContractKind::Linear) => size,
            (TierUnit::Contracts, _) => qty,
        }
    }

    /// Price at which the tier measure of a price-dependent table equals `bound`.
    #[inline]
    fn price_at_tier_measure(&self, size: f64, bound: f64) -> f64 {
        match self.rules.kind {
            ContractKind::Linear => bound / size,
            ContractKind::Inverse => size / bound,
        }
    }

    /// Margin in the margin currency.
    #[inline]
    #[must_use]
    pub fn margin_amount(&self, entry: f64, size: f64, margin: MarginInput) -> f64 {
        match margin {
            MarginInput::Leverage(l) => self.margin_notional(size, entry) / l,
            MarginInput::Amount(m) => m,
        }
    }

    /// Constant part of maintenance from Bybit's fee to close at the bankruptcy price, for a
    /// posted margin `m` (with margin from leverage it cancels against initial margin).
    #[inline]
    fn bankruptcy_fee(&self, side: f64, entry: f64, size: f64, m: f64) -> f64 {
        let f = self.fee_rate;
        // Bankruptcy price: equity equals the fee to close there.
        let notional_bp = match self.rules.kind {
            ContractKind::Linear => (side * size * entry - m) / (side - f),
            ContractKind::Inverse => (m + side * size / entry) / (side + f),
        };
        if notional_bp > 0.0 { f * notional_bp } else { 0.0 }
    }

    /// Root of the liquidation equation with the terms of tier `t`, arranged so that each
    /// case costs one division (`fee` is the bankruptcy-fee constant, 0 with leverage):
    ///
    /// * linear:  `P = (M − c − s·n0)·k_s / Q`,        `n0 = Q·EP`, `c = fee − d + r·n0`
    /// * inverse: `P = N·k_s / (M + s·n0 − c)`,         `n0 = N/EP`
    ///
    /// with `M = n0/L` multiplied through when the margin follows from leverage `L`.
    #[expect(clippy::inline_always, reason = "hot per-position formula: the batch paths rely on it being inlined")]
    #[inline(always)]
    pub(crate) fn solve(
        kind: ContractKind,
        r: f64,
        d: f64,
        k: f64,
        side: f64,
        size: f64,
        entry: f64,
        margin: MarginInput,
        fee: f64,
    ) -> f64 {
        match (kind, margin) {
            (ContractKind::Linear, MarginInput::Leverage(l)) => {
                (size * entry * (1.0 - l * (r + side)) + d * l) * k / (l * size)
            }
            (ContractKind::Linear, MarginInput::Amount(m)) => (m - fee + d - size * entry * (r + side)) * k / size,
            (ContractKind::Inverse, MarginInput::Leverage(l)) => {
                size * k * entry * l / (size * (1.0 + l * (side - r)) + d * entry * l)
            }
            (ContractKind::Inverse, MarginInput::Amount(m)) => {
                size * k * entry / (entry * (m - fee + d) + size * (side - r))
            }
        }
    }

    /// Does margin cover maintenance at entry in tier `t`? Written without division.
    #[expect(clippy::inline_always, reason = "hot per-position formula: the batch paths rely on it being inlined")]
    #[inline(always)]
    pub(crate) fn covers_maintenance(
        kind: ContractKind,
        rate: f64,
        d: f64,
        size: f64,
        entry: f64,
        margin: MarginInput,
        fee: f64,
    ) -> bool {
        match (kind, margin) {
            (ContractKind::Linear, MarginInput::Leverage(l)) => size * entry > l * (size * entry * rate - d),
            (ContractKind::Linear, MarginInput::Amount(m)) => m > size * entry * rate + fee - d,
            (ContractKind::Inverse, MarginInput::Leverage(l)) => size > l * (size * rate - d * entry),
            (ContractKind::Inverse, MarginInput::Amount(m)) => m * entry > size * rate + (fee - d) * entry,
        }
    }

    /// Index of the tier holding the position at `price` (no division for inverse tables).
    #[expect(clippy::inline_always, reason = "hot per-position formula: the batch paths rely on it being inlined")]
    #[inline(always)]
    fn tier_index(&self, size: f64, qty: f64, price: f64) -> usize {
        let tiers = &self.terms;
        let last = tiers.len() - 1;
        let mut k = 0;
        match (self.table.unit(), self.rules.kind) {
            (TierUnit::Quote, ContractKind::Linear) => {
                let z = size * price;
                while k < last && z >= tiers[k].cap {
                    k += 1;
                }
            }
            (TierUnit::Base, ContractKind::Inverse) => {
                while k < last && size >= tiers[k].cap * price {
                    k += 1;
                }
            }
            _ => {
                let z = self.tier_measure(size, qty, 0.0);
                while k < last && z >= tiers[k].cap {
                    k += 1;
                }
            }
        }
        k
    }

    /// Is the price-dependent tier measure at `p` inside `[floor, cap)`?
    #[expect(clippy::inline_always, reason = "hot per-position formula: the batch paths rely on it being inlined")]
    #[inline(always)]
    pub(crate) fn in_tier(kind: ContractKind, floor: f64, cap: f64, size: f64, p: f64) -> bool {
        match kind {
            ContractKind::Linear => {
                let z = size * p;
                z >= floor && z < cap
            }
            ContractKind::Inverse => size >= floor * p && size < cap * p,
        }
    }

    /// Check a number the formulas multiply or divide by (entry, quantity, leverage, a price):
    /// finite, > 0 and normal. A subnormal has fewer than 53 significant bits, so a price
    /// computed from it is inexact (a 5e-324 quantity gives 54216.9 for 54216.867…).
    #[inline]
    pub fn check_factor(field: Field, v: f64) -> Result<(), Problem> {
        if !v.is_finite() {
            return Err(Problem::NotFinite(field, v));
        }
        if v <= 0.0 {
            return Err(Problem::NotPositive(field, v));
        }
        if v < f64::MIN_POSITIVE {
            return Err(Problem::OutOfRange(field, v, NORMAL));
        }
        Ok(())
    }

    /// Check side, entry and quantity of one position.
    #[inline]
    pub fn validate_shape(side: f64, entry: f64, qty: f64) -> Result<(), Problem> {
        Self::check_factor(Field::Entry, entry)?;
        Self::check_factor(Field::Qty, qty)?;
        if side != 1.0 && side != -1.0 {
            return Err(Problem::BadSide(side as i64));
        }
        Ok(())
    }

    /// Name the problem with inputs that failed the fast combined check.
    #[cold]
    #[inline(never)]
    fn diagnose(side: f64, entry: f64, qty: f64, margin: MarginInput) -> Problem {
        if let Err(p) = Self::validate_shape(side, entry, qty) {
            return p;
        }
        match margin {
            MarginInput::Leverage(l) => {
                Self::check_factor(Field::Leverage, l).err().unwrap_or(Problem::NotPositive(Field::Leverage, l))
            }
            MarginInput::Amount(m) => Problem::NotFinite(Field::Margin, m),
        }
    }

    /// Liquidation price of one position, after checking its inputs: leverage must be allowed
    /// by the tier at the entry notional and the margin must cover maintenance at entry.
    /// `NaN` when no price can liquidate it (a 1x linear long, a fully collateralised inverse
    /// short).
    #[expect(clippy::inline_always, reason = "hot per-position formula: the batch paths rely on it being inlined")]
    #[inline(always)]
    pub fn liq_price(&self, side: f64, entry: f64, qty: f64, margin: MarginInput) -> Result<f64, Problem> {
        // The factors must be normal floats (see `check_factor`); a margin amount is only added.
        let margin_ok = match margin {
            MarginInput::Leverage(l) => FACTORS.contains(&l),
            MarginInput::Amount(m) => m.is_finite(),
        };
        let finite = FACTORS.contains(&entry) && FACTORS.contains(&qty);
        if !(finite && (side == 1.0 || side == -1.0) && margin_ok) {
            return Err(Self::diagnose(side, entry, qty, margin));
        }
        let kind = self.rules.kind;
        let size = qty * self.contract_size;
        let k = self.tier_index(size, qty, entry);
        let t = &self.terms[k];
        let fee = match margin {
            MarginInput::Leverage(l) => {
                if !self.overridden && l > t.max_leverage * (1.0 + 1e-9) {
                    return Err(Problem::LeverageTooHigh { leverage: l, max_leverage: t.max_leverage, tier: k });
                }
                0.0
            }
            MarginInput::Amount(m) if self.rules.fee_mode == FeeMode::AtBankruptcy => {
                self.bankruptcy_fee(side, entry, size, m)
            }
            MarginInput::Amount(_) => 0.0,
        };
        if !Self::covers_maintenance(kind, t.a + t.entry_rate, t.d, size, entry, margin, fee) {
            return Err(self.below_maintenance(t, size, entry, margin, fee));
        }
        let si = usize::from(side < 0.0);
        let p = Self::solve(kind, t.entry_rate, t.d, t.k[si], side, size, entry, margin, fee);
        if !self.walks {
            return Ok(if usable(p) { p } else { f64::NAN });
        }
        // Common case: the tier at the liquidation price is the entry tier.
        if usable(p) && Self::in_tier(kind, t.floor, t.cap, size, p) {
            return Ok(p);
        }
        Ok(self.walk(k, si, side, size, entry, margin, fee, p))
    }

    #[cold]
    #[inline(never)]
    fn below_maintenance(&self, t: &TierTerms, size: f64, entry: f64, margin: MarginInput, fee: f64) -> Problem {
        let n0 = self.margin_notional(size, entry);
        Problem::BelowMaintenanceAtEntry {
            margin: self.margin_amount(entry, size, margin),
            maintenance: n0 * (t.a + t.entry_rate) + fee - t.d,
        }
    }

    /// Walk from the entry tier `k` towards the tier at the liquidation price. Each step moves
    /// one tier; if the walk turns back, no tier is self-consistent and the position is
    /// liquidated exactly where the tier changes (maintenance jumps past equity there).
    /// `first` is the root in tier `k`, already computed by the caller.
    #[inline(never)]
    fn walk(
        &self,
        mut k: usize,
        si: usize,
        side: f64,
        size: f64,
        entry: f64,
        margin: MarginInput,
        fee: f64,
        first: f64,
    ) -> f64 {
        let last = self.terms.len() - 1;
        let mut came_from: i8 = 0;
        for step in 0..=self.terms.len() {
            let t = &self.terms[k];
            let p = if step == 0 {
                first
            } else {
                Self::solve(self.rules.kind, t.entry_rate, t.d, t.k[si], side, size, entry, margin, fee)
            };
            let dir: i8 = if usable(p) {
                let z = self.margin_notional(size, p);
                if z < t.floor && k > 0 {
                    -1
                } else if z >= t.cap && k < last {
                    1
                } else {
                    return p;
                }
            } else if k > 0 {
                // No root in this tier: the position survives towards the extreme price where
                // its tier measure shrinks to zero, so look at the lower tiers.
                -1
            } else {
                return f64::NAN;
            };
            if came_from != 0 && dir != came_from {
                let bound = if dir < 0 { t.floor } else { t.cap };
                return self.price_at_tier_measure(size, bound);
            }
            came_from = dir;
            k = if dir < 0 { k - 1 } else { k + 1 };
        }
        f64::NAN
    }

    /// Highest leverage the venue allows for `qty` opened at `entry` (the entry tier's cap;
    /// unbounded for models with explicit overrides).
    #[must_use]
    pub fn max_leverage_at(&self, qty: f64, entry: f64) -> f64 {
        if self.overridden {
            return f64::INFINITY;
        }
        self.terms[self.tier_index(self.size(qty), qty, entry)].max_leverage
    }

    /// Index of the tier that applies to `qty` at `price`.
    #[must_use]
    pub fn tier_at(&self, qty: f64, price: f64) -> usize {
        self.tier_index(self.size(qty), qty, price)
    }

    /// USD value liquidated at price `p`: `size·p` for linear contracts (quote ≈ USD), the
    /// face value for inverse ones.
    #[inline]
    #[must_use]
    pub fn usd_notional(&self, qty: f64, p: f64) -> f64 {
        let size = self.size(qty);
        match self.rules.kind {
            ContractKind::Linear => size * p,
            ContractKind::Inverse => size,
        }
    }

    /// Maintenance slope and constant `(a, c)` of tier `k` for a position of margin
    /// notional `n0` at entry (no bankruptcy fee): `MM(P) = notional(P)·a + c`.
    fn mm_terms(&self, k: usize, n0: f64) -> (f64, f64) {
        let t = &self.terms[k];
        (t.a, t.entry_rate * n0 - t.d)
    }
}

/// One leg of a hedge-mode pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leg {
    pub entry: f64,
    pub qty: f64,
}

/// Cross-margin liquidation price of a hedge-mode pair (Binance FAQ): both legs share the
/// wallet and one liquidation price; each leg pays the maintenance of its own tier at that
/// price. `wallet` is the cross wallet balance net of the other positions' maintenance and
/// PnL. Either leg may be `None` (one-way cross). Returns `NaN` when no price liquidates.
pub fn hedge_liq_price(model: &MarginModel, long: Option<Leg>, short: Option<Leg>, wallet: f64) -> Result<f64> {
    if !wallet.is_finite() {
        return Err(LiqError::single(Problem::NotFinite(Field::Margin, wallet)));
    }
    let legs: Vec<(f64, Leg)> =
        [(1.0, long), (-1.0, short)].into_iter().filter_map(|(s, l)| l.map(|l| (s, l))).collect();
    if legs.is_empty() {
        return Err(LiqError::Invalid("hedge position needs at least one leg".into()));
    }
    for (s, l) in &legs {
        MarginModel::validate_shape(*s, l.entry, l.qty).map_err(LiqError::single)?;
    }
    let tiers = model.table.tiers();
    let linear = model.rules.kind == ContractKind::Linear;
    // Equity − maintenance with each leg in tier `ks`, as `num − den·P` (linear) or
    // `num − den/P` (inverse): the per-leg terms are linear in P (or 1/P), so they sum.
    let terms = |ks: &[usize]| -> (f64, f64) {
        let (mut num, mut den) = (wallet, 0.0);
        for ((s, l), &k) in legs.iter().zip(ks) {
            let size = model.size(l.qty);
            let (a, c) = model.mm_terms(k, model.margin_notional(size, l.entry));
            if linear {
                num += -c - s * size * l.entry;
                den += size * (a - s);
            } else {
                num += s * size / l.entry - c;
                den += size * (s + a);
            }
        }
        (num, den)
    };
    let tiers_at = |p: f64| -> Vec<usize> { legs.iter().map(|(_, l)| model.tier_at(l.qty, p)).collect() };
    // The later leg was opened at its entry with both legs held, so the wallet must cover
    // maintenance net of PnL at one leg's entry at least (for one leg: the single-position
    // check). Otherwise the price found below is one the account is already past.
    let excess = |p: f64| -> f64 {
        let (num, den) = terms(&tiers_at(p));
        if linear { num - den * p } else { num - den / p }
    };
    let best = legs.iter().map(|(_, l)| excess(l.entry)).fold(f64::NEG_INFINITY, f64::max);
    if !(best > 0.0) {
        return Err(LiqError::single(Problem::WalletBelowMaintenance { wallet, needed: wallet - best }));
    }
    let solve = |ks: &[usize]| -> f64 {
        let (num, den) = terms(ks);
        if linear { num / den } else { den / num }
    };
    // Start from each leg's tier at its own entry.
    let mut ks: Vec<usize> = legs.iter().map(|(_, l)| model.tier_at(l.qty, l.entry)).collect();
    let mut p = solve(&ks);
    for _ in 0..2 * tiers.len() + 2 {
        if !usable(p) {
            return Ok(f64::NAN);
        }
        let next = tiers_at(p);
        if next == ks {
            return Ok(p);
        }
        ks = next;
        p = solve(&ks);
    }
    Ok(if usable(p) { p } else { f64::NAN })
}
