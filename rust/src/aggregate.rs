//! Batch kernels over plain slices: liquidation prices, and the fused liquidation map and
//! heatmap, which compute each position's liquidation price and add its notional to a bucket
//! in the same pass (no per-position array is ever materialised).

use std::ops::Range;

use crate::error::{Field, LiqError, Problem, Result};
use crate::fast::{BLOCK, BlockIn, BlockOut, Bucketing, FastPlan};
use crate::grid::{Loc, PriceGrid};
use crate::margin::{MarginInput, MarginModel};
use crate::pool;

/// A per-position input given either once for all rows or per row.
#[derive(Clone, Copy, Debug)]
pub enum Column<'a, T: Copy> {
    Scalar(T),
    Slice(&'a [T]),
}

impl<T: Copy> Column<'_, T> {
    #[inline]
    fn get(&self, i: usize) -> T {
        match self {
            Column::Scalar(v) => *v,
            Column::Slice(s) => s[i],
        }
    }

    fn len(&self) -> Option<usize> {
        match self {
            Column::Scalar(_) => None,
            Column::Slice(s) => Some(s.len()),
        }
    }

    fn sub(&self, r: Range<usize>) -> Self {
        match self {
            Column::Scalar(v) => Column::Scalar(*v),
            Column::Slice(s) => Column::Slice(&s[r]),
        }
    }
}

/// Whether the margin column holds leverage or margin amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarginKind {
    Leverage,
    Amount,
}

/// Column-oriented positions, as they arrive from numpy.
#[derive(Clone, Copy, Debug)]
pub struct Positions<'a> {
    pub entry: &'a [f64],
    pub qty: &'a [f64],
    /// +1 long, −1 short.
    pub side: &'a [i8],
    pub margin: Column<'a, f64>,
    pub margin_kind: MarginKind,
    /// Opening time (epoch ms) per position, to pick the formula in force then.
    pub open_time: Option<Column<'a, i64>>,
}

impl Positions<'_> {
    #[must_use]
    pub fn len(&self) -> usize {
        self.entry.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entry.is_empty()
    }

    /// All columns must have the same length.
    pub fn check_lengths(&self) -> Result<()> {
        let n = self.entry.len();
        let mut cols =
            vec![("qty", Some(self.qty.len())), ("side", Some(self.side.len())), ("margin", self.margin.len())];
        if let Some(t) = &self.open_time {
            cols.push(("open_time", t.len()));
        }
        for (name, len) in cols {
            if let Some(len) = len
                && len != n
            {
                return Err(LiqError::Array(format!("{name} has {len} rows but entry has {n}")));
            }
        }
        Ok(())
    }

    #[inline]
    fn margin_at(&self, i: usize) -> MarginInput {
        let v = self.margin.get(i);
        match self.margin_kind {
            MarginKind::Leverage => MarginInput::Leverage(v),
            MarginKind::Amount => MarginInput::Amount(v),
        }
    }
}

/// The margin models a batch may use: one, or one per formula of a venue with the instant
/// each took effect, chosen per position by its opening time.
#[derive(Clone, Copy, Debug)]
pub struct Models<'a> {
    /// Oldest first.
    pub models: &'a [MarginModel],
    /// `since[k]`: positions opened at or after this instant use `models[k]` (`None`: always).
    pub since: &'a [Option<i64>],
}

impl<'a> Models<'a> {
    #[must_use]
    pub fn one(model: &'a MarginModel) -> Self {
        Models { models: std::slice::from_ref(model), since: &[None] }
    }

    #[inline]
    fn pick(&self, open_time: Option<i64>) -> &'a MarginModel {
        let last = self.models.len() - 1;
        match open_time {
            None => &self.models[last],
            Some(t) => {
                let mut k = last;
                while k > 0 && self.since[k].is_some_and(|s| t < s) {
                    k -= 1;
                }
                &self.models[k]
            }
        }
    }
}

/// Liquidation price of row `i` (validated), with the model that row uses.
#[inline]
fn row_price<'m>(pos: &Positions, models: &Models<'m>, i: usize) -> Result<(f64, &'m MarginModel)> {
    let side = f64::from(pos.side[i]);
    let model = models.pick(pos.open_time.map(|c| c.get(i)));
    let p = model.liq_price(side, pos.entry[i], pos.qty[i], pos.margin_at(i)).map_err(|e| LiqError::at(i, e))?;
    Ok((p, model))
}

/// The branch-free plan for a batch, when it has one model with a branch-free form.
fn plan_for(pos: &Positions, models: &Models) -> Option<FastPlan> {
    match models.models {
        [model] => FastPlan::new(model, pos.margin_kind),
        _ => None,
    }
}

/// Return the first error in range order, or the values.
fn first_error<T>(parts: Vec<Result<T>>) -> Result<Vec<T>> {
    parts.into_iter().collect()
}

/// The blocks of `r`, with each block's inputs.
fn blocks<'a>(
    pos: &'a Positions,
    time: Column<'a, i64>,
    r: Range<usize>,
) -> impl Iterator<Item = (usize, BlockIn<'a>)> + 'a {
    (r.start..r.end).step_by(BLOCK).map(move |start| {
        let end = (start + BLOCK).min(r.end);
        let input = BlockIn {
            entry: &pos.entry[start..end],
            qty: &pos.qty[start..end],
            side: &pos.side[start..end],
            margin: pos.margin.sub(start..end),
            time: time.sub(start..end),
        };
        (start, input)
    })
}

/// Liquidation price per position into `out` (`NaN` where none exists).
pub fn liquidation_prices(pos: &Positions, models: &Models, out: &mut [f64]) -> Result<()> {
    pos.check_lengths()?;
    if out.len() != pos.len() {
        return Err(LiqError::Array(format!("output has {} rows, positions {}", out.len(), pos.len())));
    }
    let plan = plan_for(pos, models);
    let ranges = pool::split(pos.len());
    let results = pool::fill_ranges(out, &ranges, |r, o| {
        let base = r.start;
        let Some(plan) = &plan else {
            for i in r {
                o[i - base] = row_price(pos, models, i)?.0;
            }
            return Ok(());
        };
        let mut scratch = BlockOut::new();
        for (start, input) in blocks(pos, Column::Scalar(0), r) {
            plan.eval_block(input, None, &mut scratch);
            let dst = &mut o[start - base..start - base + input.entry.len()];
            for (j, d) in dst.iter_mut().enumerate() {
                *d = if scratch.ok[j] { scratch.price[j] } else { row_price(pos, models, start + j)?.0 };
            }
        }
        Ok(())
    });
    first_error(results).map(|_| ())
}

/// Where the notional went, per side (`[long, short]`), so callers can check conservation:
/// `in_grid + below + above + never` is the whole book.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub in_grid: [f64; 2],
    /// Liquidation price below the grid's lower edge.
    pub below: [f64; 2],
    /// Liquidation price at or above the grid's upper edge.
    pub above: [f64; 2],
    /// No liquidation price (USD notional at entry).
    pub never: [f64; 2],
    /// Number of positions per side.
    pub count: [u64; 2],
}

/// One worker's accumulator: per side, `rows` rows of `[below, bucket 0 .. n-1, above]`.
struct Partial {
    acc: Vec<f64>,
    never: [f64; 2],
    count: [u64; 2],
}

/// Accumulate the rows of `r` into a fresh [`Partial`]: the branch-free pass computes each
/// common-case position's cell, the exact path handles the rest.
fn accumulate(
    pos: &Positions,
    models: &Models,
    plan: Option<&FastPlan>,
    grid: &PriceGrid,
    b: &Bucketing,
    time: Column<i64>,
    r: Range<usize>,
) -> Result<Partial> {
    let mut part = Partial { acc: vec![0.0; 2 * b.half], never: [0.0; 2], count: [0; 2] };
    let exact = |i: usize, part: &mut Partial| -> Result<()> {
        let (p, model) = row_price(pos, models, i)?;
        let t = time.get(i);
        if t < 0 || t as u64 >= b.rows as u64 {
            return Err(LiqError::at(i, Problem::OutOfRange(Field::TimeIndex, t as f64, "in [0, n_times)")));
        }
        let s = usize::from(pos.side[i] < 0);
        part.count[s] += 1;
        if p.is_nan() {
            part.never[s] += model.usd_notional(pos.qty[i], pos.entry[i]);
            return Ok(());
        }
        let slot = match grid.locate(p) {
            Loc::Below => 0,
            Loc::In(k) => k + 1,
            Loc::Above => b.n + 1,
        };
        part.acc[s * b.half + t as usize * b.width + slot] += model.usd_notional(pos.qty[i], p);
        Ok(())
    };
    let Some(plan) = plan else {
        for i in r {
            exact(i, &mut part)?;
        }
        return Ok(part);
    };
    let mut scratch = BlockOut::new();
    for (start, input) in blocks(pos, time, r) {
        plan.eval_block(input, Some(b), &mut scratch);
        for j in 0..input.entry.len() {
            if scratch.ok[j] {
                part.acc[scratch.cell[j] as usize] += scratch.usd[j];
                part.count[usize::from(input.side[j] < 0)] += 1;
            } else {
                exact(start + j, &mut part)?;
            }
        }
    }
    Ok(part)
}

/// Sum the workers' partials into the outputs (row-major `rows × n` per side) and totals.
fn reduce(parts: Vec<Partial>, b: &Bucketing, long: &mut [f64], short: &mut [f64]) -> Totals {
    let mut sum = vec![0.0; 2 * b.half];
    let mut tot = Totals::default();
    for part in parts {
        for (d, v) in sum.iter_mut().zip(&part.acc) {
            *d += v;
        }
        for s in 0..2 {
            tot.never[s] += part.never[s];
            tot.count[s] += part.count[s];
        }
    }
    for (s, out) in [long, short].into_iter().enumerate() {
        for row in 0..b.rows {
            let cells = &sum[s * b.half + row * b.width..][..b.width];
            tot.below[s] += cells[0];
            tot.above[s] += cells[b.n + 1];
            let inner = &cells[1..=b.n];
            tot.in_grid[s] += inner.iter().sum::<f64>();
            out[row * b.n..(row + 1) * b.n].copy_from_slice(inner);
        }
    }
    tot
}

/// Fused 1-D liquidation map: USD notional liquidated per price bucket, per side.
pub fn liquidation_map(
    pos: &Positions,
    models: &Models,
    grid: &PriceGrid,
    long: &mut [f64],
    short: &mut [f64],
) -> Result<Totals> {
    pos.check_lengths()?;
    let n = grid.len();
    if long.len() != n || short.len() != n {
        return Err(LiqError::Array(format!("map outputs must have {n} buckets")));
    }
    let plan = plan_for(pos, models);
    let b = Bucketing::new(grid.lo(), grid.step(), n, 1);
    let parts = pool::map_ranges(pool::split(pos.len()), |r| {
        accumulate(pos, models, plan.as_ref(), grid, &b, Column::Scalar(0), r)
    });
    Ok(reduce(first_error(parts)?, &b, long, short))
}

/// Largest heatmap (cells per side) the kernels will allocate.
pub const MAX_HEATMAP_CELLS: usize = 50_000_000;

/// Fused 2-D liquidation heatmap: row `time_index[i]` (in `0..n_times`), column = bucket of
/// the liquidation price; outputs are row-major `n_times × grid.len()`.
pub fn liquidation_heatmap(
    pos: &Positions,
    models: &Models,
    time_index: Column<i64>,
    n_times: usize,
    grid: &PriceGrid,
    long: &mut [f64],
    short: &mut [f64],
) -> Result<Totals> {
    pos.check_lengths()?;
    if let Some(len) = time_index.len()
        && len != pos.len()
    {
        return Err(LiqError::Array(format!("time_index has {len} rows but entry has {}", pos.len())));
    }
    if n_times == 0 {
        return Err(LiqError::Grid("n_times must be >= 1".into()));
    }
    let n = grid.len();
    let cells = n_times.checked_mul(n).filter(|&c| c <= MAX_HEATMAP_CELLS).ok_or_else(|| {
        LiqError::Grid(format!("heatmap of {n_times} × {n} cells exceeds the limit of {MAX_HEATMAP_CELLS} per side"))
    })?;
    if long.len() != cells || short.len() != cells {
        return Err(LiqError::Array(format!("heatmap outputs must have {cells} cells")));
    }
    let plan = plan_for(pos, models);
    let b = Bucketing::new(grid.lo(), grid.step(), n, n_times);
    let parts =
        pool::map_ranges(pool::split(pos.len()), |r| accumulate(pos, models, plan.as_ref(), grid, &b, time_index, r));
    Ok(reduce(first_error(parts)?, &b, long, short))
}
