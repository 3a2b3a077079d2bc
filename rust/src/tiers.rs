//! Maintenance-margin tier tables (Binance "leverage brackets", Bybit "risk limits", OKX
//! "position tiers", ...). The numbers are data loaded at run time; this module only holds
//! and validates them.

use crate::error::{LiqError, Num, Result};

/// What a tier's `floor`/`cap` measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierUnit {
    /// Position value in the quote currency (USDT/USD): `qty·price` for linear contracts,
    /// the constant USD face value for inverse ones.
    Quote,
    /// Position value in the base coin: constant for linear contracts, `usd/price` for inverse.
    Base,
    /// Number of contracts (OKX): never depends on price.
    Contracts,
}

impl TierUnit {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "quote" => Ok(TierUnit::Quote),
            "base" => Ok(TierUnit::Base),
            "contracts" => Ok(TierUnit::Contracts),
            other => Err(LiqError::Tiers(format!("tier unit must be 'quote', 'base' or 'contracts', got {other:?}"))),
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TierUnit::Quote => "quote",
            TierUnit::Base => "base",
            TierUnit::Contracts => "contracts",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tier {
    /// Inclusive lower bound of the tier, in the table's unit.
    pub floor: f64,
    /// Exclusive upper bound (`f64::INFINITY` for the last tier).
    pub cap: f64,
    /// Maintenance margin rate (fraction).
    pub mmr: f64,
    /// Deduction ("cum", "mmDeduction") in the margin currency; used by progressive venues.
    pub maint_amount: f64,
    /// Highest leverage allowed while the position is in this tier.
    pub max_leverage: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TierTable {
    unit: TierUnit,
    tiers: Vec<Tier>,
}

impl TierTable {
    /// Validate and build a table. Tiers must start at 0 and be contiguous (each floor equals
    /// the previous cap), ordered, with rates in `[0, 1)` that never decrease, deductions that
    /// are finite and >= 0, and positive max leverage.
    pub fn new(unit: TierUnit, tiers: Vec<Tier>) -> Result<Self> {
        if tiers.is_empty() {
            return Err(LiqError::Tiers("tier table is empty".into()));
        }
        for (k, t) in tiers.iter().enumerate() {
            let n = k + 1;
            if !(t.floor.is_finite() && t.floor >= 0.0) {
                return Err(LiqError::Tiers(format!("tier {n}: floor must be finite and >= 0, got {}", Num(t.floor))));
            }
            if t.cap.is_nan() || t.cap <= t.floor {
                return Err(LiqError::Tiers(format!(
                    "tier {n}: cap {} must be above floor {}",
                    Num(t.cap),
                    Num(t.floor)
                )));
            }
            if !(t.mmr.is_finite() && (0.0..1.0).contains(&t.mmr)) {
                return Err(LiqError::Tiers(format!("tier {n}: mmr must be in [0, 1), got {}", Num(t.mmr))));
            }
            if !(t.max_leverage.is_finite() && t.max_leverage > 0.0) && t.max_leverage != f64::INFINITY {
                return Err(LiqError::Tiers(format!(
                    "tier {n}: max_leverage must be > 0, got {}",
                    Num(t.max_leverage)
                )));
            }
            // Sizes below the first floor would still land in the first tier (`index_of`), and a
            // deduction derived from a floor above 0 would be wrong: every venue starts at 0.
            if k == 0 && t.floor != 0.0 {
                return Err(LiqError::Tiers(format!("tier 1: floor must be 0, got {}", Num(t.floor))));
            }
            if k > 0 {
                let prev = &tiers[k - 1];
                let tol = 1e-9 * prev.cap.abs().max(1.0);
                if (t.floor - prev.cap).abs() > tol {
                    return Err(LiqError::Tiers(format!(
                        "tier {n}: floor {} does not continue tier {k}'s cap {} (tiers must be contiguous and ordered)",
                        Num(t.floor),
                        Num(prev.cap)
                    )));
                }
                if t.mmr < prev.mmr {
                    return Err(LiqError::Tiers(format!(
                        "tier {n}: mmr {} is below tier {k}'s {} (rates must not decrease)",
                        Num(t.mmr),
                        Num(prev.mmr)
                    )));
                }
            }
            // A negative deduction would add maintenance (no venue publishes one); venues'
            // deductions, and those derived for continuity from rates that do not decrease,
            // are >= 0.
            if !(t.maint_amount.is_finite() && t.maint_amount >= 0.0) {
                return Err(LiqError::Tiers(format!(
                    "tier {n}: maint_amount must be finite and >= 0, got {}",
                    Num(t.maint_amount)
                )));
            }
        }
        // A finite last cap is the exchange's position limit; sizes beyond it keep the last
        // tier's rate (see `index_of`) rather than failing.
        Ok(TierTable { unit, tiers })
    }

    /// A one-tier table: every position pays `mmr` with deduction `maint_amount`.
    #[must_use]
    pub fn flat(mmr: f64, maint_amount: f64, max_leverage: f64) -> Self {
        TierTable {
            unit: TierUnit::Quote,
            tiers: vec![Tier { floor: 0.0, cap: f64::INFINITY, mmr, maint_amount, max_leverage }],
        }
    }

    #[must_use]
    pub fn unit(&self) -> TierUnit {
        self.unit
    }

    #[must_use]
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// Index of the tier holding `size` (floor <= size < cap). Sizes past the last cap stay in
    /// the last tier; negative or NaN sizes land in the first.
    #[inline]
    #[must_use]
    pub fn index_of(&self, size: f64) -> usize {
        let last = self.tiers.len() - 1;
        let mut k = 0;
        while k < last && size >= self.tiers[k].cap {
            k += 1;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(floor: f64, cap: f64, mmr: f64) -> Tier {
        Tier { floor, cap, mmr, maint_amount: 0.0, max_leverage: 10.0 }
    }

    #[test]
    fn index_is_half_open() {
        let tab = TierTable::new(TierUnit::Quote, vec![t(0.0, 10.0, 0.01), t(10.0, f64::INFINITY, 0.02)]).unwrap();
        assert_eq!(tab.index_of(0.0), 0);
        assert_eq!(tab.index_of(9.999), 0);
        assert_eq!(tab.index_of(10.0), 1);
        assert_eq!(tab.index_of(1e30), 1);
        assert_eq!(tab.index_of(f64::NAN), 0);
    }

    #[test]
    fn rejects_bad_tables() {
        assert!(TierTable::new(TierUnit::Quote, vec![]).is_err());
        assert!(TierTable::new(TierUnit::Quote, vec![t(0.0, 10.0, 0.01), t(11.0, 20.0, 0.02)]).is_err());
        assert!(TierTable::new(TierUnit::Quote, vec![t(0.0, 10.0, 0.02), t(10.0, 20.0, 0.01)]).is_err());
        assert!(TierTable::new(TierUnit::Quote, vec![t(0.0, 10.0, 1.0)]).is_err());
        assert!(TierTable::new(TierUnit::Quote, vec![t(0.0, 0.0, 0.01)]).is_err());
        assert!(TierTable::new(TierUnit::Quote, vec![t(0.0, 10.0, f64::NAN)]).is_err());
    }

    #[test]
    fn first_floor_is_zero_and_deductions_are_not_negative() {
        let with = |floor: f64, d: f64| {
            TierTable::new(
                TierUnit::Quote,
                vec![Tier { floor, cap: f64::INFINITY, mmr: 0.01, maint_amount: d, max_leverage: 10.0 }],
            )
        };
        assert!(with(0.0, 0.0).is_ok());
        assert!(matches!(with(100.0, 0.0), Err(LiqError::Tiers(m)) if m.contains("floor must be 0")));
        assert!(
            matches!(with(0.0, -5.0), Err(LiqError::Tiers(m)) if m.contains("maint_amount must be finite and >= 0"))
        );
        assert!(matches!(with(0.0, f64::INFINITY), Err(LiqError::Tiers(_))));
    }
}
