//! Kernel timings without Python (for profiling: `cargo bench --bench kernels`). The
//! side-by-side comparison against numpy lives in `bench/` at the top level.

use std::time::Instant;

use _core::aggregate::{
    Column, MarginKind, Models, Positions, liquidation_heatmap, liquidation_map, liquidation_prices,
};
use _core::grid::PriceGrid;
use _core::margin::MarginModel;
use _core::tiers::{Tier, TierTable, TierUnit};
use _core::venues::venue;

/// Small deterministic generator (xorshift*), so the bench needs no extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn binance() -> MarginModel {
    let rows = [
        (0.0, 50e3, 125.0, 0.004, 0.0),
        (50e3, 600e3, 100.0, 0.005, 50.0),
        (600e3, 3e6, 75.0, 0.0065, 950.0),
        (3e6, 12e6, 50.0, 0.01, 11_450.0),
        (12e6, f64::INFINITY, 25.0, 0.02, 131_450.0),
    ];
    let tiers = rows
        .iter()
        .map(|&(floor, cap, max_leverage, mmr, maint_amount)| Tier { floor, cap, mmr, maint_amount, max_leverage })
        .collect();
    let f = venue("binance-usdm").unwrap().current();
    MarginModel::new(f.rules, 1.0, 0.0, TierTable::new(TierUnit::Quote, tiers).unwrap()).unwrap()
}

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let entry: Vec<f64> = (0..n).map(|_| 80_000.0 + 20_000.0 * rng.next()).collect();
    let qty: Vec<f64> = (0..n).map(|_| 0.001 + 2.0 * rng.next()).collect();
    let side: Vec<i8> = (0..n).map(|_| if rng.next() < 0.5 { 1 } else { -1 }).collect();
    let levs = [5.0, 10.0, 25.0, 50.0, 100.0];
    let lev: Vec<f64> = (0..n).map(|_| levs[(rng.next() * 5.0) as usize]).collect();
    let mut times: Vec<i64> = (0..n).map(|_| (rng.next() * 288.0) as i64).collect();
    times.sort_unstable();
    let model = binance();
    let models = Models::one(&model);
    let pos = Positions {
        entry: &entry,
        qty: &qty,
        side: &side,
        margin: Column::Slice(&lev),
        margin_kind: MarginKind::Leverage,
        open_time: None,
    };
    let grid = PriceGrid::new(45_000.0, 135_000.0, 50.0).unwrap();
    for _ in 0..3 {
        let mut out = vec![0.0; n];
        let t = Instant::now();
        liquidation_prices(&pos, &models, &mut out).unwrap();
        let a = t.elapsed();
        let (mut l, mut s) = (vec![0.0; grid.len()], vec![0.0; grid.len()]);
        let t = Instant::now();
        liquidation_map(&pos, &models, &grid, &mut l, &mut s).unwrap();
        let b = t.elapsed();
        let (mut l, mut s) = (vec![0.0; 288 * grid.len()], vec![0.0; 288 * grid.len()]);
        let t = Instant::now();
        liquidation_heatmap(&pos, &models, Column::Slice(&times), 288, &grid, &mut l, &mut s).unwrap();
        let c = t.elapsed();
        println!("n={n}: prices {a:?}  map {b:?}  heatmap {c:?}");
    }
}
