//! Uniform price grids: bucket `k` holds prices in `[lo + k·step, lo + (k+1)·step)`.

use crate::error::{LiqError, Num, Result};

/// Largest number of price buckets a grid may have.
pub const MAX_BUCKETS: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceGrid {
    lo: f64,
    step: f64,
    inv_step: f64,
    n: usize,
}

/// Where a price falls relative to a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Below,
    In(usize),
    Above,
}

impl PriceGrid {
    /// Grid from `lo` up to at least `hi` in steps of `step` (the last bucket may end past
    /// `hi` so that every bucket has the same width).
    pub fn new(lo: f64, hi: f64, step: f64) -> Result<Self> {
        if !(lo.is_finite() && hi.is_finite() && step.is_finite()) {
            return Err(LiqError::Grid(format!(
                "grid bounds must be finite, got lo={}, hi={}, step={}",
                Num(lo),
                Num(hi),
                Num(step)
            )));
        }
        if lo < 0.0 {
            return Err(LiqError::Grid(format!("grid lo must be >= 0, got {}", Num(lo))));
        }
        if hi <= lo {
            return Err(LiqError::Grid(format!("grid hi ({}) must be above lo ({})", Num(hi), Num(lo))));
        }
        if step <= 0.0 {
            return Err(LiqError::Grid(format!("grid step must be > 0, got {}", Num(step))));
        }
        let span = (hi - lo) / step;
        // An infinite span (a step far below the range) must not fall through the NaN below
        // into a one-bucket grid; a step lost in lo's rounding would make every edge equal.
        if !span.is_finite() || lo + step == lo || hi - step == hi {
            return Err(LiqError::Grid(format!(
                "grid step {step:?} is too small for the range [{lo:?}, {hi:?}] (use a larger step)"
            )));
        }
        // Tolerate representation error so that e.g. (0.3 - 0.0) / 0.1 gives 3 buckets, not 4.
        let n = (span - 1e-9 * span.max(1.0)).ceil().max(1.0);
        if n > MAX_BUCKETS as f64 {
            return Err(LiqError::Grid(format!(
                "grid would have {n} buckets; the limit is {MAX_BUCKETS} (use a larger step or a narrower range)"
            )));
        }
        Ok(PriceGrid { lo, step, inv_step: 1.0 / step, n: n as usize })
    }

    #[must_use]
    pub fn lo(&self) -> f64 {
        self.lo
    }

    #[must_use]
    pub fn step(&self) -> f64 {
        self.step
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.n
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    #[must_use]
    pub fn hi(&self) -> f64 {
        self.edge(self.n)
    }

    /// Lower edge of bucket `k` (`k == len()` gives the grid's upper end). This expression
    /// defines the grid: [`PriceGrid::locate`] agrees with it exactly.
    #[inline]
    #[must_use]
    pub fn edge(&self, k: usize) -> f64 {
        self.lo + k as f64 * self.step
    }

    /// Bucket of price `p` (NaN counts as below).
    #[inline]
    #[must_use]
    pub fn locate(&self, p: f64) -> Loc {
        if !(p >= self.lo) {
            return Loc::Below;
        }
        let x = (p - self.lo) * self.inv_step;
        if x >= self.n as f64 + 1.0 {
            return Loc::Above;
        }
        // The reciprocal multiply can land one bucket off next to an edge: correct against the
        // edges themselves, so bucketing matches `edge()` bit for bit.
        let mut k = x as usize;
        if k > 0 && p < self.edge(k) {
            k -= 1;
        } else if p >= self.edge(k + 1) {
            k += 1;
        }
        if k < self.n { Loc::In(k) } else { Loc::Above }
    }
}

/// A round bucket width for prices around `price`: about 0.05 % of it, rounded to
/// 1, 2, 2.5 or 5 times a power of ten, and a whole multiple of the tick size.
pub fn auto_step(price: f64, tick: f64) -> Result<f64> {
    if !(price.is_finite() && price > 0.0) {
        return Err(LiqError::Grid(format!("price must be finite and > 0, got {}", Num(price))));
    }
    if !(tick.is_finite() && tick >= 0.0) {
        return Err(LiqError::Grid(format!("tick size must be finite and >= 0, got {}", Num(tick))));
    }
    // (Below about 1e-300 the step's decade underflows to 0 or a subnormal.)
    if !(1e-290..=1e300).contains(&price) {
        return Err(LiqError::Grid(format!("price {price:?} is outside the range a grid step can be picked for")));
    }
    let raw = price * 0.0005;
    let decade = 10f64.powf(raw.log10().floor());
    let mut best = decade;
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        let c = m * decade;
        if (c / raw).ln().abs() < (best / raw).ln().abs() {
            best = c;
        }
    }
    if tick > 0.0 {
        best = (best / tick).round().max(1.0) * tick;
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_and_locate_agree() {
        let g = PriceGrid::new(0.0, 1.0, 0.1).unwrap();
        assert_eq!(g.len(), 10);
        for k in 0..10 {
            assert_eq!(g.locate(g.edge(k)), Loc::In(k), "edge {k}");
        }
        assert_eq!(g.locate(-0.1), Loc::Below);
        assert_eq!(g.locate(f64::NAN), Loc::Below);
        assert_eq!(g.locate(g.hi()), Loc::Above);
        assert_eq!(g.locate(1e300), Loc::Above);
        assert_eq!(PriceGrid::new(0.0, 0.3, 0.1).unwrap().len(), 3);
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(PriceGrid::new(10.0, 5.0, 1.0).is_err());
        assert!(PriceGrid::new(0.0, 5.0, 0.0).is_err());
        assert!(PriceGrid::new(f64::NAN, 5.0, 1.0).is_err());
        assert!(PriceGrid::new(-1.0, 5.0, 1.0).is_err());
        assert!(PriceGrid::new(0.0, 1e9, 1e-3).is_err());
    }

    #[test]
    fn auto_steps_are_round() {
        assert_eq!(auto_step(90_000.0, 0.1).unwrap(), 50.0);
        assert_eq!(auto_step(3_000.0, 0.01).unwrap(), 2.0);
        assert_eq!(auto_step(0.16, 0.00001).unwrap(), 0.0001);
        assert_eq!(auto_step(0.16, 0.001).unwrap(), 0.001);
        assert!(auto_step(0.0, 0.1).is_err());
        assert!(auto_step(5e-324, 0.0).is_err() && auto_step(1e308, 0.0).is_err());
        assert!(auto_step(1e-280, 0.0).unwrap() > 0.0);
    }

    #[test]
    fn steps_too_small_for_the_range_are_refused() {
        // (hi − lo)/step overflows: this used to give a one-bucket grid.
        assert!(matches!(PriceGrid::new(0.0, 1e300, 1e-10), Err(LiqError::Grid(_))));
        assert!(matches!(PriceGrid::new(0.0, 1.0, 5e-324), Err(LiqError::Grid(_))));
        // The step vanishes in lo's precision.
        assert!(matches!(PriceGrid::new(1e20, 1e20 + 1e6, 1.0), Err(LiqError::Grid(_))));
        assert_eq!(PriceGrid::new(0.0, 1.0, 0.25).unwrap().len(), 4);
    }
}
