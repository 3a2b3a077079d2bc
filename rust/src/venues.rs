//! The venues and their formulas. This is the part of each exchange's rules that is maths
//! (which notional maintenance uses, where the fee goes, progressive or whole-position
//! tiers); the numbers (contract sizes, fee rates, tier tables) are data loaded at run time.
//!
//! Where a venue changed its formula on a date, both versions are listed, oldest first, with
//! the instant (UTC epoch ms) from which the newer one applies to a position opened then.

use crate::error::{LiqError, Result};
use crate::margin::{ContractKind, FeeMode, MarginRules, MmBasis, TierMath};

#[derive(Debug)]
pub struct Formula {
    pub name: &'static str,
    pub rules: MarginRules,
    /// Positions opened at or after this instant use this formula (`None`: since always).
    pub since_ms: Option<i64>,
    pub doc: &'static str,
}

#[derive(Debug)]
pub struct Venue {
    pub id: &'static str,
    pub kind: ContractKind,
    /// Formulas, oldest first; the last one is current.
    pub formulas: &'static [Formula],
}

const fn rules(kind: ContractKind, basis: MmBasis, fee_mode: FeeMode, tier_math: TierMath) -> MarginRules {
    MarginRules { kind, basis, fee_mode, tier_math }
}

use ContractKind::{Inverse, Linear};
use FeeMode::{AtBankruptcy, InMaintenance};
use MmBasis::{Entry, Mark};
use TierMath::{Progressive, WholePosition};

/// 2025-09-02 00:00 UTC: Bybit charges maintenance on the mark price.
pub const BYBIT_MARK_MM_SINCE: i64 = 1_756_771_200_000;
/// 2025-11-10 08:00 UTC: Bitget's tiered (progressive) maintenance for new positions.
pub const BITGET_TIERED_SINCE: i64 = 1_762_761_600_000;
/// 2025-07-29 00:00 UTC: Gate's gradient (progressive) maintenance.
pub const GATE_GRADIENT_SINCE: i64 = 1_753_747_200_000;

macro_rules! f {
    ($name:expr, $rules:expr, $since:expr, $doc:expr) => {
        Formula { name: $name, rules: $rules, since_ms: $since, doc: $doc }
    };
}

const BINANCE_DOC: &str = "Binance FAQ: MM = notional(mark)·MMR − cum, tier at the liquidation price, no fee";

pub static VENUES: &[Venue] = &[
    Venue {
        id: "binance-usdm",
        kind: Linear,
        formulas: &[f!("standard", rules(Linear, Mark, FeeMode::None, Progressive), None, BINANCE_DOC)],
    },
    Venue {
        id: "binance-coinm",
        kind: Inverse,
        formulas: &[f!("standard", rules(Inverse, Mark, FeeMode::None, Progressive), None, BINANCE_DOC)],
    },
    Venue {
        id: "bybit-linear",
        kind: Linear,
        formulas: &[
            f!(
                "entry-mm",
                rules(Linear, Entry, AtBankruptcy, Progressive),
                None,
                "Bybit before 2025-09-02: MM on the entry notional (+ fee to close at bankruptcy)"
            ),
            f!(
                "mark-mm",
                rules(Linear, Mark, AtBankruptcy, Progressive),
                Some(BYBIT_MARK_MM_SINCE),
                "Bybit from 2025-09-02: MM on the mark notional − mmDeduction (+ fee to close at bankruptcy)"
            ),
        ],
    },
    Venue {
        id: "bybit-inverse",
        kind: Inverse,
        formulas: &[
            f!(
                "entry-mm",
                rules(Inverse, Entry, AtBankruptcy, Progressive),
                None,
                "Bybit before 2025-09-02: MM on the entry notional (+ fee to close at bankruptcy)"
            ),
            f!(
                "mark-mm",
                rules(Inverse, Mark, AtBankruptcy, Progressive),
                Some(BYBIT_MARK_MM_SINCE),
                "Bybit from 2025-09-02: MM on the mark notional − mmDeduction (+ fee to close at bankruptcy)"
            ),
        ],
    },
    Venue {
        id: "okx-linear",
        kind: Linear,
        formulas: &[f!(
            "standard",
            rules(Linear, Mark, InMaintenance, WholePosition),
            None,
            "OKX: maintenance ratio (mmr + taker fee) on the mark notional, whole position at its tier rate"
        )],
    },
    Venue {
        id: "okx-inverse",
        kind: Inverse,
        formulas: &[f!(
            "standard",
            rules(Inverse, Mark, InMaintenance, WholePosition),
            None,
            "OKX: maintenance ratio (mmr + taker fee) on the mark notional, whole position at its tier rate"
        )],
    },
    Venue {
        id: "bitget-linear",
        kind: Linear,
        formulas: &[
            f!(
                "flat",
                rules(Linear, Mark, InMaintenance, WholePosition),
                None,
                "Bitget before 2025-11-10 08:00 UTC: whole position at its tier rate + taker fee"
            ),
            f!(
                "tiered",
                rules(Linear, Mark, InMaintenance, Progressive),
                Some(BITGET_TIERED_SINCE),
                "Bitget from 2025-11-10 08:00 UTC: tiered maintenance (rate per slice) + taker fee"
            ),
        ],
    },
    Venue {
        id: "gate-linear",
        kind: Linear,
        formulas: &[
            f!(
                "flat",
                rules(Linear, Mark, InMaintenance, WholePosition),
                None,
                "Gate before 2025-07-29: whole position at its risk-limit rate + taker fee"
            ),
            f!(
                "gradient",
                rules(Linear, Mark, InMaintenance, Progressive),
                Some(GATE_GRADIENT_SINCE),
                "Gate from 2025-07-29: gradient maintenance (rate per slice, deduction) + taker fee"
            ),
        ],
    },
    Venue {
        id: "gate-inverse",
        kind: Inverse,
        formulas: &[
            f!(
                "flat",
                rules(Inverse, Mark, InMaintenance, WholePosition),
                None,
                "Gate before 2025-07-29: whole position at its risk-limit rate + taker fee"
            ),
            f!(
                "gradient",
                rules(Inverse, Mark, InMaintenance, Progressive),
                Some(GATE_GRADIENT_SINCE),
                "Gate from 2025-07-29: gradient maintenance (rate per slice, deduction) + taker fee"
            ),
        ],
    },
    Venue {
        id: "kucoin-linear",
        kind: Linear,
        formulas: &[
            f!(
                "legacy",
                rules(Linear, Entry, FeeMode::None, WholePosition),
                None,
                "KuCoin help 4408061803033: MM on the entry notional, no fee"
            ),
            f!(
                "standard",
                rules(Linear, Mark, InMaintenance, WholePosition),
                None,
                "KuCoin help 26694703491737: level rate + liquidation fee rate on the mark notional"
            ),
        ],
    },
    Venue {
        id: "kucoin-inverse",
        kind: Inverse,
        formulas: &[
            f!(
                "legacy",
                rules(Inverse, Entry, FeeMode::None, WholePosition),
                None,
                "KuCoin help 4408061803033: MM on the entry notional, no fee"
            ),
            f!(
                "standard",
                rules(Inverse, Mark, InMaintenance, WholePosition),
                None,
                "KuCoin help 26694703491737: level rate + liquidation fee rate on the mark notional"
            ),
        ],
    },
    Venue {
        id: "hyperliquid",
        kind: Linear,
        formulas: &[f!(
            "standard",
            rules(Linear, Mark, FeeMode::None, Progressive),
            None,
            "Hyperliquid docs: MMR = 1/(2·max leverage of the tier), no clearance fee"
        )],
    },
];

#[must_use]
pub fn venue(id: &str) -> Option<&'static Venue> {
    VENUES.iter().find(|v| v.id == id)
}

impl Venue {
    /// The formula named `name`, else the one in force for a position opened at `open_time_ms`,
    /// else the current one.
    pub fn formula(&self, name: Option<&str>, open_time_ms: Option<i64>) -> Result<&'static Formula> {
        if let Some(name) = name {
            return self.formulas.iter().find(|f| f.name == name).ok_or_else(|| {
                let known: Vec<&str> = self.formulas.iter().map(|f| f.name).collect();
                LiqError::Invalid(format!("venue {} has no formula {name:?}; known: {}", self.id, known.join(", ")))
            });
        }
        Ok(match open_time_ms {
            Some(t) => self.formula_at(t),
            None => self.current(),
        })
    }

    /// The newest formula in force at `t` (undated formulas count as always in force).
    #[must_use]
    pub fn formula_at(&self, t: i64) -> &'static Formula {
        self.formulas.iter().rev().find(|f| f.since_ms.is_none_or(|s| t >= s)).unwrap_or(&self.formulas[0])
    }

    #[must_use]
    pub fn current(&self) -> &'static Formula {
        &self.formulas[self.formulas.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_time() {
        let b = venue("bybit-linear").unwrap();
        assert_eq!(b.formula(None, None).unwrap().name, "mark-mm");
        assert_eq!(b.formula(None, Some(BYBIT_MARK_MM_SINCE - 1)).unwrap().name, "entry-mm");
        assert_eq!(b.formula(None, Some(BYBIT_MARK_MM_SINCE)).unwrap().name, "mark-mm");
        let g = venue("bitget-linear").unwrap();
        assert_eq!(g.formula(None, Some(BITGET_TIERED_SINCE - 1)).unwrap().name, "flat");
        assert_eq!(g.formula(None, Some(BITGET_TIERED_SINCE)).unwrap().name, "tiered");
        let k = venue("kucoin-linear").unwrap();
        assert_eq!(k.formula(None, Some(0)).unwrap().name, "standard");
        assert_eq!(k.formula(Some("legacy"), None).unwrap().name, "legacy");
        assert!(k.formula(Some("nope"), None).is_err());
        assert_eq!(VENUES.len(), 12);
    }
}
