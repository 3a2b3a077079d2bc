//! Per-venue test vectors: exchange-reported and documented examples from
//! `reference/exchanges.md` (each names its source), plus invariants as proptests.

use crate::error::{LiqError, Problem};
use crate::margin::{Leg, MarginInput, MarginModel, hedge_liq_price};
use crate::tiers::{Tier, TierTable, TierUnit};
use crate::venues::venue;
use proptest::prelude::*;

use MarginInput::{Amount, Leverage};

/// Model of `venue`/`formula` with a one-rate table (`mmr`, deduction `d`).
fn flat(venue_id: &str, formula: Option<&str>, contract_size: f64, fee: f64, mmr: f64, d: f64) -> MarginModel {
    let f = venue(venue_id).unwrap().formula(formula, None).unwrap();
    let base = MarginModel::new(f.rules, contract_size, fee, TierTable::flat(0.0, 0.0, 1e9)).unwrap();
    base.with_overrides(Some(mmr), Some(d), 0.0).unwrap()
}

/// Model of `venue`/`formula` with a tier table of `(floor, cap, max_leverage, mmr,
/// maint_amount)` rows (also used by the batch path's tests).
pub(crate) fn tiered(
    venue_id: &str,
    formula: Option<&str>,
    contract_size: f64,
    fee: f64,
    unit: TierUnit,
    rows: &[(f64, f64, f64, f64, f64)],
) -> MarginModel {
    let tiers = rows
        .iter()
        .map(|&(floor, cap, max_leverage, mmr, maint_amount)| Tier { floor, cap, mmr, maint_amount, max_leverage })
        .collect();
    let f = venue(venue_id).unwrap().formula(formula, None).unwrap();
    MarginModel::new(f.rules, contract_size, fee, TierTable::new(unit, tiers).unwrap()).unwrap()
}

/// Binance BTCUSDT brackets 1-7 (third-party copy of a live answer, ~2024-2025).
fn binance_btcusdt() -> MarginModel {
    tiered(
        "binance-usdm",
        None,
        1.0,
        0.0,
        TierUnit::Quote,
        &[
            (0.0, 50e3, 125.0, 0.004, 0.0),
            (50e3, 600e3, 100.0, 0.005, 50.0),
            (600e3, 3e6, 75.0, 0.0065, 950.0),
            (3e6, 12e6, 50.0, 0.01, 11_450.0),
            (12e6, 70e6, 25.0, 0.02, 131_450.0),
            (70e6, 100e6, 20.0, 0.025, 481_450.0),
            (100e6, 230e6, 10.0, 0.05, 2_981_450.0),
        ],
    )
}

/// Bitget BTCUSDT tiers (announcement 2025-09-26), deductions derived.
fn bitget_btcusdt(formula: &str) -> MarginModel {
    tiered(
        "bitget-linear",
        Some(formula),
        1.0,
        0.0006,
        TierUnit::Quote,
        &[
            (0.0, 200e3, 150.0, 0.004, 0.0),
            (200e3, 1e6, 100.0, 0.005, 200.0),
            (1e6, 5e6, 75.0, 0.007, 2_200.0),
            (5e6, 15e6, 50.0, 0.01, 17_200.0),
            (15e6, 50e6, 25.0, 0.02, 167_200.0),
            (50e6, 100e6, 20.0, 0.03, 667_200.0),
            (100e6, 150e6, 10.0, 0.06, 3_667_200.0),
            (150e6, 300e6, 5.0, 0.12, 12_667_200.0),
            (300e6, 500e6, 4.0, 0.15, 21_667_200.0),
            (500e6, 700e6, 3.0, 0.2, 46_667_200.0),
            (700e6, 900e6, 2.0, 0.3, 116_667_200.0),
            (900e6, 1.2e9, 1.0, 0.6, 386_667_200.0),
        ],
    )
}

#[track_caller]
fn close(got: f64, want: f64, rel: f64) {
    assert!((got - want).abs() <= rel * want.abs(), "got {got}, want {want} (rel tol {rel})");
}

fn lp(m: &MarginModel, side: f64, entry: f64, qty: f64, margin: MarginInput) -> f64 {
    m.liq_price(side, entry, qty, margin).unwrap()
}

// --- Binance USD-M -----------------------------------------------------------------------

#[test]
fn binance_usdm_doge_short_matches_exchange() {
    // positionRisk capture 2024-03-08: isolatedWallet 0.88304001 → liquidationPrice 0.19059204.
    let m = flat("binance-usdm", None, 1.0, 0.0, 0.005, 0.0);
    close(lp(&m, -1.0, 0.16395, 32.0, Amount(0.883_040_01)), 0.190_592_04, 1e-8);
}

#[test]
fn binance_usdm_btc_vectors_with_table() {
    let m = binance_btcusdt();
    close(lp(&m, 1.0, 60_000.0, 0.1, Leverage(20.0)), 57_228.915_663, 1e-10);
    // 10 BTC short at 10x: entry notional 600k, tier at the liquidation price is bracket 3.
    let p = lp(&m, -1.0, 60_000.0, 10.0, Leverage(10.0));
    close(p, 65_668.156_98, 1e-10);
    assert_eq!(m.tier_at(10.0, p), 2);
}

#[test]
fn binance_usdm_hedge_cross() {
    // Long 1 @ 60,000 + short 0.5 @ 62,000, wallet 5,000: one shared liquidation price.
    let m = binance_btcusdt();
    let p =
        hedge_liq_price(&m, Some(Leg { entry: 60_000.0, qty: 1.0 }), Some(Leg { entry: 62_000.0, qty: 0.5 }), 5_000.0)
            .unwrap();
    close(p, 48_582.995_951, 1e-10);
    // One-way cross equals the isolated formula with the wallet as margin.
    let one = hedge_liq_price(&m, Some(Leg { entry: 60_000.0, qty: 1.0 }), None, 10_000.0).unwrap();
    close(one, lp(&m, 1.0, 60_000.0, 1.0, Amount(10_000.0)), 1e-12);
}

#[test]
fn hedge_wallet_must_cover_maintenance_at_an_entry() {
    let m = binance_btcusdt();
    let leg = |entry, qty| Some(Leg { entry, qty });
    let below = |r: Result<f64, LiqError>| {
        matches!(r, Err(LiqError::Position { problem: Problem::WalletBelowMaintenance { .. }, .. }))
    };
    // One leg: the single-position check (this used to liquidate a long above its entry).
    assert!(below(hedge_liq_price(&m, leg(60_000.0, 1.0), None, 1.0)));
    assert!(matches!(m.liq_price(1.0, 60_000.0, 1.0, Amount(1.0)), Err(Problem::BelowMaintenanceAtEntry { .. })));
    // A full hedge locks PnL; the wallet still has to pay maintenance (used to give 125).
    assert!(below(hedge_liq_price(&m, leg(60_000.0, 1.0), leg(60_000.0, 1.0), 1.0)));
    // Past liquidation at 60k, solvent at 58k where the short was opened: accepted.
    let p = hedge_liq_price(&m, leg(60_000.0, 1.0), leg(58_000.0, 3.0), 4_000.0).unwrap();
    assert!(p > 58_000.0 && p < 59_000.0, "{p}");
}

// --- Binance COIN-M ----------------------------------------------------------------------

#[test]
fn binance_coinm_vectors() {
    let m = flat("binance-coinm", None, 100.0, 0.0, 0.004, 0.0);
    close(lp(&m, 1.0, 50_000.0, 100.0, Amount(0.01)), 47_809.523_81, 1e-9);
    close(lp(&m, -1.0, 50_000.0, 100.0, Amount(0.01)), 52_421.052_632, 1e-10);
    // Same through leverage: 100 contracts × 100 USD / 50,000 / 20x = 0.01 BTC.
    close(lp(&m, 1.0, 50_000.0, 100.0, Leverage(20.0)), 47_809.523_81, 1e-9);
}

// --- Bybit -------------------------------------------------------------------------------

#[test]
fn bybit_linear_vectors() {
    // Published legacy example: long 1 BTC @ 20,000, 50x, MMR 0.5% → 19,700.
    let legacy = flat("bybit-linear", Some("entry-mm"), 1.0, 0.00055, 0.005, 0.0);
    close(lp(&legacy, 1.0, 20_000.0, 1.0, Leverage(50.0)), 19_700.0, 1e-12);
    let mark = flat("bybit-linear", Some("mark-mm"), 1.0, 0.00055, 0.005, 0.0);
    close(lp(&mark, 1.0, 20_000.0, 1.0, Leverage(50.0)), 19_698.492_462, 1e-10);
    close(lp(&mark, -1.0, 20_000.0, 1.0, Leverage(50.0)), 20_298.507_463, 1e-10);
    let t2 = flat("bybit-linear", Some("mark-mm"), 1.0, 0.00055, 0.005, 510.0);
    close(lp(&t2, 1.0, 100_000.0, 0.5, Leverage(100.0)), 98_472.361_809, 1e-10);
}

#[test]
fn bybit_inverse_vectors() {
    let legacy = flat("bybit-inverse", Some("entry-mm"), 1.0, 0.0, 0.005, 0.0);
    close(lp(&legacy, 1.0, 50_000.0, 60_000.0, Leverage(10.0)), 45_662.100_457, 1e-10);
    let mark = flat("bybit-inverse", Some("mark-mm"), 1.0, 0.0, 0.005, 0.0);
    close(lp(&mark, 1.0, 50_000.0, 60_000.0, Leverage(10.0)), 45_681.818_182, 1e-10);
    close(lp(&mark, -1.0, 50_000.0, 60_000.0, Leverage(10.0)), 55_277.777_778, 1e-10);
    // Legacy help page, cross: 0.5 BTC, long 10,000 USD @ 8,000, MM 0.5%, taker 0.075%.
    // The page shows bankruptcy 5,718.57 and liquidation 5,739.50; its own equation gives 5,739.08.
    let cross = flat("bybit-inverse", Some("entry-mm"), 1.0, 0.00075, 0.005, 0.0);
    let p = lp(&cross, 1.0, 8_000.0, 10_000.0, Amount(0.5));
    close(p, 5_739.08, 1e-6);
    close(p, 5_739.5, 1e-4);
}

#[test]
fn bybit_fee_cancels_for_leverage_margin() {
    // With margin from leverage, the fee to close sits in both IM and MM: no effect.
    let a = flat("bybit-linear", Some("mark-mm"), 1.0, 0.00055, 0.005, 0.0);
    let b = flat("bybit-linear", Some("mark-mm"), 1.0, 0.0, 0.005, 0.0);
    assert_eq!(lp(&a, 1.0, 20_000.0, 1.0, Leverage(50.0)), lp(&b, 1.0, 20_000.0, 1.0, Leverage(50.0)));
    // With posted margin it does not cancel and moves the long's liquidation up.
    assert!(lp(&a, 1.0, 20_000.0, 1.0, Amount(400.0)) > lp(&b, 1.0, 20_000.0, 1.0, Amount(400.0)));
}

// --- OKX, Gate ---------------------------------------------------------------------------

#[test]
fn okx_vectors() {
    let lin = flat("okx-linear", None, 0.01, 0.0005, 0.004, 0.0);
    close(lp(&lin, 1.0, 60_000.0, 10.0, Amount(300.0)), 57_257.659_468, 1e-10);
    close(lp(&lin, -1.0, 60_000.0, 10.0, Amount(300.0)), 62_717.770_035, 1e-10);
    let inv = flat("okx-inverse", None, 100.0, 0.0005, 0.005, 0.0);
    let m = 0.001_666_666_666_666_666_8;
    close(lp(&inv, 1.0, 60_000.0, 10.0, Amount(m)), 54_845.454_545, 1e-10);
    close(lp(&inv, -1.0, 60_000.0, 10.0, Amount(m)), 66_300.0, 1e-10);
}

#[test]
fn gate_vectors() {
    let lin = flat("gate-linear", None, 0.0001, 0.0005, 0.005, 0.0);
    close(lp(&lin, 1.0, 60_000.0, 1_000.0, Leverage(10.0)), 54_298.642_534, 1e-10);
    close(lp(&lin, -1.0, 60_000.0, 1_000.0, Leverage(10.0)), 65_638.985_579, 1e-10);
    let inv = flat("gate-inverse", None, 1.0, 0.0005, 0.005, 0.0);
    close(lp(&inv, 1.0, 60_000.0, 6_000.0, Amount(0.01)), 54_845.454_545, 1e-10);
    close(lp(&inv, -1.0, 60_000.0, 6_000.0, Amount(0.01)), 66_300.0, 1e-10);
}

// --- Bitget ------------------------------------------------------------------------------

#[test]
fn bitget_vectors_both_formulas() {
    let tiered_ = bitget_btcusdt("tiered");
    close(lp(&tiered_, 1.0, 110_000.0, 3.0, Leverage(20.0)), 105_021.453_473, 1e-10);
    close(lp(&tiered_, -1.0, 110_000.0, 3.0, Leverage(20.0)), 114_923.097_322, 1e-10);
    let flat_ = bitget_btcusdt("flat");
    close(lp(&flat_, 1.0, 110_000.0, 3.0, Leverage(20.0)), 105_088.495_575, 1e-10);
}

// --- KuCoin ------------------------------------------------------------------------------

#[test]
fn kucoin_vectors() {
    // Legacy help article: short 5 lots × 0.001 BTC @ 28,000, 100x, MMR 0.4% → 28,168.
    let legacy = flat("kucoin-linear", Some("legacy"), 0.001, 0.0, 0.004, 0.0);
    close(lp(&legacy, -1.0, 28_000.0, 5.0, Leverage(100.0)), 28_168.0, 1e-12);
    // API capture: liquidationPrice = entry − (posMargin − posMaint)/(qty·multiplier), which is
    // the entry-basis formula with margin = posMargin and rate = posMaint/posCost.
    let (pos_margin, pos_maint, pos_cost) = (36.078_725_02, 0.369_214_5, 72.0278);
    let api = flat("kucoin-linear", Some("legacy"), 0.001, 0.0, pos_maint / pos_cost, 0.0);
    let p = lp(&api, 1.0, 72_027.8, 1.0, Amount(pos_margin));
    close(p, 36_318.289_48, 1e-9);
    assert!((p - 36_318.3).abs() < 0.05, "reported 36318.3 is rounded to the 0.1 tick");
}

// --- Hyperliquid -------------------------------------------------------------------------

#[test]
fn hyperliquid_vectors() {
    // Docs example: rawUsd −95.059824, szi 0.0335, l 0.01 → 2866.26936529.
    let eth = flat("hyperliquid", None, 1.0, 0.0, 0.01, 0.0);
    let margin = 0.0335 * 2986.3 - 95.059_824;
    let p = lp(&eth, 1.0, 2986.3, 0.0335, Amount(margin));
    close(p, 2_866.269_380_37, 1e-11);
    // The exchange's own figure differs in the 8th digit (its internal rounding).
    close(p, 2_866.269_365_29, 1e-8);
    let btc = flat("hyperliquid", None, 1.0, 0.0, 0.0125, 0.0);
    close(lp(&btc, 1.0, 100_000.0, 1.0, Amount(10_000.0)), 91_139.240_506, 1e-10);
    close(lp(&btc, -1.0, 100_000.0, 1.0, Amount(2_500.0)), 101_234.567_901, 1e-10);
    close(lp(&btc, 1.0, 100_000.0, 1.0, Amount(5_000.0)), 96_202.531_646, 1e-10);
}

// --- Edge cases --------------------------------------------------------------------------

#[test]
fn never_liquidated_gives_nan() {
    let m = binance_btcusdt();
    assert!(lp(&m, 1.0, 60_000.0, 0.1, Leverage(1.0)).is_nan());
    assert!(lp(&m, -1.0, 60_000.0, 0.1, Leverage(1.0)).is_finite());
    let inv = flat("binance-coinm", None, 100.0, 0.0, 0.004, 0.0);
    assert!(lp(&inv, -1.0, 50_000.0, 100.0, Leverage(1.0)).is_nan());
    assert!(lp(&inv, 1.0, 50_000.0, 100.0, Leverage(1.0)).is_finite());
}

#[test]
fn bad_positions_are_rejected() {
    let m = binance_btcusdt();
    assert!(matches!(m.liq_price(1.0, 60_000.0, 0.1, Leverage(200.0)), Err(Problem::LeverageTooHigh { .. })));
    // 1 BTC at 60k is bracket 2 (max 100x).
    assert!(matches!(m.liq_price(1.0, 60_000.0, 1.0, Leverage(120.0)), Err(Problem::LeverageTooHigh { tier: 1, .. })));
    assert!(m.liq_price(1.0, f64::NAN, 0.1, Leverage(10.0)).is_err());
    assert!(m.liq_price(1.0, 60_000.0, -1.0, Leverage(10.0)).is_err());
    assert!(m.liq_price(1.0, 60_000.0, 0.1, Leverage(0.0)).is_err());
    assert!(m.liq_price(0.0, 60_000.0, 0.1, Leverage(10.0)).is_err());
    assert!(matches!(m.liq_price(1.0, 60_000.0, 0.1, Amount(1.0)), Err(Problem::BelowMaintenanceAtEntry { .. })));
    // Subnormal factors have too few bits for an exact price.
    for (e, q, l) in [(60_000.0, 5e-324, 10.0), (1e-310, 0.1, 10.0), (60_000.0, 0.1, 1e-310)] {
        assert!(matches!(m.liq_price(1.0, e, q, Leverage(l)), Err(Problem::OutOfRange(..))), "{e} {q} {l}");
    }
    assert!(m.liq_price(1.0, 60_000.0, f64::MIN_POSITIVE, Leverage(10.0)).is_ok());
}

#[test]
fn flat_tier_boundary_liquidates_at_the_boundary() {
    // Whole-position tiers: 0.5 % below 10k notional, 5 % above. A 10x short of 0.19 BTC at
    // 50k: tier 1 alone would liquidate at ~54.7k (notional 10.4k, in tier 2), tier 2 alone
    // below 10k notional. Maintenance jumps past equity where notional crosses 10k.
    let m = tiered(
        "okx-linear",
        None,
        1.0,
        0.0,
        TierUnit::Quote,
        &[(0.0, 10e3, 100.0, 0.005, 0.0), (10e3, f64::INFINITY, 10.0, 0.05, 0.0)],
    );
    let p = lp(&m, -1.0, 50_000.0, 0.19, Leverage(10.0));
    close(p, 10e3 / 0.19, 1e-12);
}

// --- Properties --------------------------------------------------------------------------

fn all_models() -> Vec<MarginModel> {
    vec![
        binance_btcusdt(),
        bitget_btcusdt("tiered"),
        bitget_btcusdt("flat"),
        flat("binance-coinm", None, 100.0, 0.0, 0.004, 0.0),
        tiered(
            "binance-coinm",
            None,
            100.0,
            0.0,
            TierUnit::Base,
            &[
                (0.0, 5.0, 125.0, 0.004, 0.0),
                (5.0, 10.0, 100.0, 0.005, 0.005),
                (10.0, f64::INFINITY, 50.0, 0.01, 0.055),
            ],
        ),
        flat("bybit-linear", Some("mark-mm"), 1.0, 0.00055, 0.005, 0.0),
        flat("bybit-inverse", Some("entry-mm"), 1.0, 0.00055, 0.005, 0.0),
        flat("okx-inverse", None, 100.0, 0.0005, 0.005, 0.0),
        flat("gate-linear", None, 0.0001, 0.0005, 0.005, 0.0),
        flat("kucoin-linear", Some("standard"), 0.001, 0.0006, 0.004, 0.0),
        flat("hyperliquid", None, 1.0, 0.0, 0.0125, 0.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn long_below_entry_below_short(mi in 0usize..11, entry in 100.0f64..200_000.0, qty in 0.01f64..5_000.0, lev in 1.01f64..50.0) {
        let m = &all_models()[mi];
        for side in [1.0, -1.0] {
            if let Ok(p) = m.liq_price(side, entry, qty, Leverage(lev)) {
                if p.is_finite() {
                    if side > 0.0 { prop_assert!(p < entry, "long {p} >= entry {entry}"); }
                    else { prop_assert!(p > entry, "short {p} <= entry {entry}"); }
                }
            }
        }
    }

    #[test]
    fn higher_leverage_moves_towards_entry(mi in 0usize..11, entry in 100.0f64..200_000.0, qty in 0.01f64..5_000.0, lev in 1.01f64..40.0, bump in 1.01f64..2.0) {
        let m = &all_models()[mi];
        for side in [1.0, -1.0] {
            let (a, b) = (m.liq_price(side, entry, qty, Leverage(lev)), m.liq_price(side, entry, qty, Leverage(lev * bump)));
            if let (Ok(a), Ok(b)) = (a, b) {
                if a.is_finite() && b.is_finite() {
                    prop_assert!((b - entry).abs() <= (a - entry).abs() * (1.0 + 1e-12), "side {side}: {a} -> {b}");
                }
            }
        }
    }

    #[test]
    fn tier_is_the_one_at_the_liquidation_price(entry in 1_000.0f64..200_000.0, qty in 0.01f64..3_000.0, lev in 1.01f64..20.0, short in any::<bool>()) {
        // Progressive tiers make maintenance continuous, so a consistent tier always exists
        // and must be the one found.
        let m = binance_btcusdt();
        let side = if short { -1.0 } else { 1.0 };
        if let Ok(p) = m.liq_price(side, entry, qty, Leverage(lev)) {
            if p.is_finite() {
                let k = m.tier_at(qty, p);
                let t = m.table.tiers()[k];
                let one = flat("binance-usdm", None, 1.0, 0.0, t.mmr, t.maint_amount);
                let q = one.liq_price(side, entry, qty, Leverage(lev)).unwrap();
                prop_assert!((p - q).abs() <= 1e-9 * p, "{p} vs tier {k} alone {q}");
            }
        }
    }

    #[test]
    fn equity_equals_maintenance_at_the_liquidation_price(entry in 1_000.0f64..200_000.0, qty in 0.01f64..3_000.0, lev in 1.01f64..20.0, short in any::<bool>()) {
        let m = binance_btcusdt();
        let side = if short { -1.0 } else { 1.0 };
        if let Ok(p) = m.liq_price(side, entry, qty, Leverage(lev)) {
            if p.is_finite() {
                let t = m.table.tiers()[m.tier_at(qty, p)];
                let equity = qty * entry / lev + side * qty * (p - entry);
                let mm = qty * p * t.mmr - t.maint_amount;
                prop_assert!((equity - mm).abs() <= 1e-7 * qty * entry, "equity {equity} mm {mm}");
            }
        }
    }
}

// --- Batch kernels against the scalar path --------------------------------------------------

mod batch {
    use super::*;
    use crate::aggregate::{
        Column, MarginKind, Models, Positions, liquidation_heatmap, liquidation_map, liquidation_prices,
    };
    use crate::grid::{Loc, PriceGrid};

    /// Deterministic pseudo-random positions that hit every branch: tier hops, NaN (1x), bad rows excluded.
    fn book(n: usize, seed: u64, lev_max: f64) -> (Vec<f64>, Vec<f64>, Vec<i8>, Vec<f64>) {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut e = Vec::new();
        let mut q = Vec::new();
        let mut s = Vec::new();
        let mut l = Vec::new();
        for _ in 0..n {
            e.push(20_000.0 + 100_000.0 * next());
            q.push(10f64.powf(-3.0 + 7.0 * next()));
            s.push(if next() < 0.5 { 1 } else { -1 });
            l.push(1.0 + (lev_max - 1.0) * next() * next());
        }
        (e, q, s, l)
    }

    fn check_model(m: &MarginModel, kind: MarginKind) {
        let (e, q, s, l) = book(20_000, 42, 20.0);
        let margins: Vec<f64> = match kind {
            MarginKind::Leverage => l.clone(),
            MarginKind::Amount => {
                e.iter().zip(&q).zip(&l).map(|((e, q), l)| m.usd_notional(*q, *e) / l * 1.01).collect()
            }
        };
        let models = Models::one(m);
        // Keep only rows the scalar path accepts, so the batch call succeeds.
        let input = |i: usize| {
            if kind == MarginKind::Leverage {
                MarginInput::Leverage(margins[i])
            } else {
                MarginInput::Amount(margins[i])
            }
        };
        let keep: Vec<usize> =
            (0..e.len()).filter(|&i| m.liq_price(f64::from(s[i]), e[i], q[i], input(i)).is_ok()).collect();
        assert!(keep.len() > 1_000, "too few valid rows: {}", keep.len());
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let (e, q, mg) = (pick(&e), pick(&q), pick(&margins));
        let s: Vec<i8> = keep.iter().map(|&i| s[i]).collect();
        let pos =
            Positions { entry: &e, qty: &q, side: &s, margin: Column::Slice(&mg), margin_kind: kind, open_time: None };
        let mut out = vec![0.0; e.len()];
        liquidation_prices(&pos, &models, &mut out).unwrap();
        let input = |i: usize| {
            if kind == MarginKind::Leverage { MarginInput::Leverage(mg[i]) } else { MarginInput::Amount(mg[i]) }
        };
        for i in 0..e.len() {
            let want = m.liq_price(f64::from(s[i]), e[i], q[i], input(i)).unwrap();
            assert!(
                out[i].to_bits() == want.to_bits() || (out[i].is_nan() && want.is_nan()),
                "row {i}: batch {} vs scalar {want}",
                out[i]
            );
        }
        // Map and heatmap: the same buckets as locating each scalar price.
        let grid = PriceGrid::new(10_000.0, 200_000.0, 37.5).unwrap();
        let (mut long, mut short) = (vec![0.0; grid.len()], vec![0.0; grid.len()]);
        let tot = liquidation_map(&pos, &models, &grid, &mut long, &mut short).unwrap();
        let (mut rl, mut rs) = (vec![0.0; grid.len()], vec![0.0; grid.len()]);
        let mut never = [0.0; 2];
        for i in 0..e.len() {
            let p = out[i];
            let side = usize::from(s[i] < 0);
            if p.is_nan() {
                never[side] += m.usd_notional(q[i], e[i]);
            } else if let Loc::In(k) = grid.locate(p) {
                if side == 0 { rl[k] += m.usd_notional(q[i], p) } else { rs[k] += m.usd_notional(q[i], p) }
            }
        }
        for k in 0..grid.len() {
            assert!((long[k] - rl[k]).abs() <= 1e-9 * rl[k].abs().max(1.0), "long bucket {k}");
            assert!((short[k] - rs[k]).abs() <= 1e-9 * rs[k].abs().max(1.0), "short bucket {k}");
        }
        assert!((tot.never[0] - never[0]).abs() <= 1e-9 * never[0].max(1.0));
        let total: f64 =
            e.iter().zip(&q).zip(&out).map(|((e, q), p)| m.usd_notional(*q, if p.is_nan() { *e } else { *p })).sum();
        let counted: f64 = (0..2).map(|s| tot.in_grid[s] + tot.below[s] + tot.above[s] + tot.never[s]).sum();
        assert!((total - counted).abs() <= 1e-9 * total, "notional not conserved: {total} vs {counted}");
        // Heatmap rows by i % 7: summing the rows gives the map.
        let times: Vec<i64> = (0..e.len() as i64).map(|i| i % 7).collect();
        let (mut hl, mut hs) = (vec![0.0; 7 * grid.len()], vec![0.0; 7 * grid.len()]);
        liquidation_heatmap(&pos, &models, Column::Slice(&times), 7, &grid, &mut hl, &mut hs).unwrap();
        for k in 0..grid.len() {
            let col: f64 = (0..7).map(|t| hl[t * grid.len() + k]).sum();
            assert!((col - long[k]).abs() <= 1e-9 * long[k].abs().max(1.0));
        }
    }

    #[test]
    fn batch_equals_scalar_for_every_formula() {
        for m in all_models() {
            check_model(&m, MarginKind::Leverage);
            check_model(&m, MarginKind::Amount);
        }
        for f in ["tiered", "flat"] {
            check_model(&bitget_btcusdt(f), MarginKind::Leverage);
        }
    }

    #[test]
    fn batch_reports_first_bad_row() {
        let m = binance_btcusdt();
        let (mut e, q, s, _) = book(100_000, 7, 20.0);
        let l = vec![2.0; e.len()];
        e[70_001] = f64::NAN;
        e[90_000] = -1.0;
        let pos = Positions {
            entry: &e,
            qty: &q,
            side: &s,
            margin: Column::Slice(&l),
            margin_kind: MarginKind::Leverage,
            open_time: None,
        };
        let mut out = vec![0.0; e.len()];
        let err = liquidation_prices(&pos, &Models::one(&m), &mut out).unwrap_err();
        assert!(matches!(err, crate::error::LiqError::Position { index: Some(70_001), .. }), "{err:?}");
        let grid = PriceGrid::new(1.0, 1e6, 100.0).unwrap();
        let (mut a, mut b) = (vec![0.0; grid.len()], vec![0.0; grid.len()]);
        let err = liquidation_map(&pos, &Models::one(&m), &grid, &mut a, &mut b).unwrap_err();
        assert!(matches!(err, crate::error::LiqError::Position { index: Some(70_001), .. }), "{err:?}");
    }
}
