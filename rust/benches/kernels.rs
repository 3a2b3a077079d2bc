//! Kernel timings without Python (for profiling: `cargo bench --bench kernels`; env `N` sets
//! the book size, `REPS` the repetitions, `LIQFAST_NUM_THREADS=1` a single thread). The
//! side-by-side comparison against numpy lives in `bench/` at the top level.
//!
//! The book mirrors `make_book` in `bench/bench_core.py`: entries around 90k, log-normal USD
//! sizes (most positions in the first two Binance tiers), a leverage mix capped by the tier at
//! entry, and a sorted time index. Each line also prints the memory-bandwidth floor (the
//! probe streaming the same input bytes) and every kernel's ratio to it.

use std::time::{Duration, Instant};

use _core::aggregate::{
    Column, MarginKind, Models, Positions, liquidation_heatmap, liquidation_map, liquidation_prices,
};
use _core::grid::PriceGrid;
use _core::margin::MarginModel;
use _core::pool;
use _core::probe::stream_read;
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

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.next().max(1e-300);
        let v = self.next();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn binance() -> MarginModel {
    let rows = [
        (0.0, 50e3, 125.0, 0.004, 0.0),
        (50e3, 600e3, 100.0, 0.005, 50.0),
        (600e3, 3e6, 75.0, 0.0065, 950.0),
        (3e6, 12e6, 50.0, 0.01, 11_450.0),
        (12e6, 70e6, 25.0, 0.02, 131_450.0),
        (70e6, f64::INFINITY, 20.0, 0.025, 481_450.0),
    ];
    let tiers = rows
        .iter()
        .map(|&(floor, cap, max_leverage, mmr, maint_amount)| Tier { floor, cap, mmr, maint_amount, max_leverage })
        .collect();
    let f = venue("binance-usdm").unwrap().current();
    MarginModel::new(f.rules, 1.0, 0.0, TierTable::new(TierUnit::Quote, tiers).unwrap()).unwrap()
}

fn bytes<T>(v: &[T]) -> &[u8] {
    // SAFETY: any initialised memory can be viewed as bytes; the length is the slice's size.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn best(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The least any map kernel over these columns must do, as a yardstick between the floor and
/// the real kernel: read entry, qty, side and leverage, turn them into a price with one
/// division (`entry·(1 − side/leverage)·k_side`, the tier-0 closed form with no tier walk, no
/// input checks and no edge correction; `exact = false` skips even that and buckets the
/// entry), bucket it by one multiply and scatter-add the notional. Not a correct map.
#[cfg(target_arch = "x86_64")]
fn bound_map(entry: &[f64], qty: &[f64], side: &[i8], lev: &[f64], grid: &PriceGrid, exact: bool) -> f64 {
    let (lo, inv, n) = (grid.lo(), 1.0 / grid.step(), grid.len());
    let k = [1.0 / (1.0 - 0.004), 1.0 / (1.0 + 0.004)];
    let parts = pool::map_ranges(pool::split(entry.len()), |r| {
        let mut acc = vec![0.0f64; 2 * (n + 2)];
        // SAFETY: the bench only runs on x86_64 CPUs with AVX2 and FMA (checked in main).
        unsafe {
            bound_block(&entry[r.clone()], &qty[r.clone()], &side[r.clone()], &lev[r], lo, inv, n, k, exact, &mut acc);
        }
        acc
    });
    parts.iter().map(|a| a.iter().sum::<f64>()).sum()
}

#[cfg(target_arch = "x86_64")]
#[expect(clippy::too_many_arguments, reason = "a bench yardstick, kept flat")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bound_block(
    entry: &[f64],
    qty: &[f64],
    side: &[i8],
    lev: &[f64],
    lo: f64,
    inv: f64,
    n: usize,
    k: [f64; 2],
    exact: bool,
    acc: &mut [f64],
) {
    unsafe {
        const B: usize = 2048;
        #[expect(clippy::wildcard_imports, reason = "written in AVX2 intrinsics")]
        use std::arch::x86_64::*;
        let (mut cell, mut usd) = ([0u32; B], [0.0f64; B]);
        let last = (n + 1) as f64;
        let (vlo, vinv, vlast, zero, one) =
            (_mm256_set1_pd(lo), _mm256_set1_pd(inv), _mm256_set1_pd(last), _mm256_setzero_pd(), _mm256_set1_pd(1.0));
        let (k0, k1) = (_mm256_set1_pd(k[0]), _mm256_set1_pd(k[1]));
        let width = _mm_set1_epi32(n as i32 + 2);
        for start in (0..entry.len()).step_by(B) {
            let m = B.min(entry.len() - start);
            let whole = m & !3;
            // First pass in AVX2, four positions a step (as the real kernel); the scatter second.
            for j in (0..whole).step_by(4) {
                let i = start + j;
                let e = _mm256_loadu_pd(entry.as_ptr().add(i));
                let q = _mm256_loadu_pd(qty.as_ptr().add(i));
                let s32 = _mm_cvtepi8_epi32(_mm_cvtsi32_si128(side.as_ptr().add(i).cast::<i32>().read_unaligned()));
                let sd = _mm256_cvtepi32_pd(s32);
                let short = _mm256_cmp_pd::<_CMP_LT_OQ>(sd, zero);
                let p = if exact {
                    let l = _mm256_loadu_pd(lev.as_ptr().add(i));
                    let kk = _mm256_blendv_pd(k0, k1, short);
                    _mm256_mul_pd(_mm256_mul_pd(e, _mm256_sub_pd(one, _mm256_div_pd(sd, l))), kk)
                } else {
                    e
                };
                let x = _mm256_fmadd_pd(_mm256_sub_pd(p, vlo), vinv, one);
                let x = _mm256_floor_pd(_mm256_min_pd(_mm256_max_pd(x, zero), vlast));
                let c = _mm256_cvttpd_epi32(x);
                let c = _mm_add_epi32(c, _mm_and_si128(_mm_srai_epi32::<31>(s32), width));
                _mm_storeu_si128(cell.as_mut_ptr().add(j).cast(), c);
                _mm256_storeu_pd(usd.as_mut_ptr().add(j), _mm256_mul_pd(q, p));
            }
            for j in whole..m {
                let (e, q, s, l) = (entry[start + j], qty[start + j], side[start + j], lev[start + j]);
                let p = if exact { e * (1.0 - f64::from(s) / l) * if s < 0 { k[1] } else { k[0] } } else { e };
                let x = ((p - lo) * inv + 1.0).max(0.0).min(last).floor();
                cell[j] = x as u32 + u32::from(s < 0) * (n as u32 + 2);
                usd[j] = q * p;
            }
            for j in 0..m {
                acc[cell[j] as usize] += usd[j];
            }
        }
    }
}

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let reps: usize = std::env::var("REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let model = binance();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let entry: Vec<f64> = (0..n).map(|_| 90_000.0 * (0.04 * rng.normal()).exp()).collect();
    let qty: Vec<f64> = entry.iter().map(|e| (8_000f64.ln() + 1.3 * rng.normal()).exp() / e).collect();
    let side: Vec<i8> = (0..n).map(|_| if rng.next() < 0.5 { 1 } else { -1 }).collect();
    let mix = [(5.0, 0.15), (10.0, 0.30), (25.0, 0.25), (50.0, 0.20), (100.0, 0.10)];
    let lev: Vec<f64> = (0..n)
        .map(|i| {
            let mut u = rng.next();
            let mut l = mix[mix.len() - 1].0;
            for &(v, p) in &mix {
                if u < p {
                    l = v;
                    break;
                }
                u -= p;
            }
            let cap = model.table.tiers()[model.tier_at(qty[i], entry[i])].max_leverage;
            f64::min(l, cap)
        })
        .collect();
    let mut times: Vec<i64> = (0..n).map(|_| (rng.next() * 288.0) as i64).collect();
    times.sort_unstable();
    let models = Models::one(&model);
    let pos = Positions {
        entry: &entry,
        qty: &qty,
        side: &side,
        margin: Column::Slice(&lev),
        margin_kind: MarginKind::Leverage,
        open_time: None,
    };
    let step = 25.0;
    let lo = 90_000.0 - step * 1_000.0;
    let grid = PriceGrid::new(lo, lo + step * 2_000.0, step).unwrap();
    let base = [bytes(&entry), bytes(&qty), bytes(&side), bytes(&lev)];
    let with_time = [bytes(&entry), bytes(&qty), bytes(&side), bytes(&lev), bytes(&times)];
    let only = std::env::var("ONLY").unwrap_or_default();
    let want = |k: &str| only.is_empty() || only.split(',').any(|o| o == k);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let floor = best(reps, || {
        std::hint::black_box(stream_read(&base));
    });
    let floor_t = best(reps, || {
        std::hint::black_box(stream_read(&with_time));
    });
    println!("n={n}: floor {:.2} ms, floor with time {:.2} ms", ms(floor), ms(floor_t));
    if want("prices") {
        let d = best(reps, || {
            let mut out = vec![0.0; n];
            liquidation_prices(&pos, &models, &mut out).unwrap();
            std::hint::black_box(&out);
        });
        let mut out = vec![0.0; n];
        let warm = best(reps, || {
            liquidation_prices(&pos, &models, &mut out).unwrap();
            std::hint::black_box(&out);
        });
        println!(
            "  prices  {:7.3} ms  ({:.2}x floor; {:.3} ms into memory already faulted in)",
            ms(d),
            ms(d) / ms(floor),
            ms(warm)
        );
    }
    // Outputs are allocated once: Python callers get theirs from numpy's allocator, whose
    // page faults are not the kernel's.
    if want("map") {
        let (mut l, mut s) = (vec![0.0; grid.len()], vec![0.0; grid.len()]);
        let d = best(reps, || {
            liquidation_map(&pos, &models, &grid, &mut l, &mut s).unwrap();
            std::hint::black_box((&l, &s));
        });
        println!("  map     {:7.3} ms  ({:.2}x floor)", ms(d), ms(d) / ms(floor));
    }
    #[cfg(target_arch = "x86_64")]
    if want("bound") && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        let grid_ref = &grid;
        for (name, exact) in [("bound, entry as price", false), ("bound, one-division price", true)] {
            // Check it did the work: the notional it scattered is the whole book's.
            let k = [1.0 / (1.0 - 0.004), 1.0 / (1.0 + 0.004)];
            let want: f64 = (0..n)
                .map(|i| {
                    let s = f64::from(side[i]);
                    let p = if exact { entry[i] * (1.0 - s / lev[i]) * k[usize::from(s < 0.0)] } else { entry[i] };
                    qty[i] * p
                })
                .sum();
            let got = bound_map(&entry, &qty, &side, &lev, grid_ref, exact);
            assert!((got - want).abs() <= 1e-9 * want, "{name}: {got} != {want}");
            let d = best(reps, || {
                std::hint::black_box(bound_map(&entry, &qty, &side, &lev, grid_ref, exact));
            });
            let again = best(reps, || {
                std::hint::black_box(stream_read(&base));
            });
            println!(
                "  {name:<26} {:7.3} ms  ({:.2}x floor; floor again {:.2} ms)",
                ms(d),
                ms(d) / ms(floor.min(again)),
                ms(again)
            );
        }
    }
    if want("heatmap") {
        let (mut l, mut s) = (vec![0.0; 288 * grid.len()], vec![0.0; 288 * grid.len()]);
        let d = best(reps, || {
            liquidation_heatmap(&pos, &models, Column::Slice(&times), 288, &grid, &mut l, &mut s).unwrap();
            std::hint::black_box((&l, &s));
        });
        println!("  heatmap {:7.3} ms  ({:.2}x floor)", ms(d), ms(d) / ms(floor_t));
    }
}
