//! Batch kernels over plain slices: liquidation prices, and the fused liquidation map and
//! heatmap, which compute each position's liquidation price and add its notional to a bucket
//! in the same pass (no per-position array is ever materialised).

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use crate::error::{Field, LiqError, Problem, Result};
use crate::fast::{Ahead, BLOCK, BlockIn, BlockOut, Bucketing, FastPlan, OkBits, Reach, WORDS, entry_qty};
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
        let margin = match self.margin_kind {
            MarginKind::Leverage => "leverage",
            MarginKind::Amount => "margin",
        };
        let mut cols =
            vec![("qty", Some(self.qty.len())), ("side", Some(self.side.len())), (margin, self.margin.len())];
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

/// The blocks of `r`, with each block's first row and inputs.
fn blocks<'a>(
    pos: &'a Positions,
    time: Column<'a, i64>,
    r: Range<usize>,
) -> impl Iterator<Item = (usize, BlockIn<'a>)> + 'a {
    (r.start..r.end).step_by(BLOCK).map(move |start| {
        let end = (start + BLOCK).min(r.end);
        let next = end..(end + BLOCK).min(r.end);
        let input = BlockIn {
            entry: &pos.entry[start..end],
            qty: &pos.qty[start..end],
            side: &pos.side[start..end],
            margin: pos.margin.sub(start..end),
            time: time.sub(start..end),
            ahead: (!next.is_empty()).then(|| Ahead {
                entry: &pos.entry[next.clone()],
                qty: &pos.qty[next.clone()],
                side: &pos.side[next.clone()],
                margin: pos.margin.sub(next.clone()),
                time: time.sub(next),
            }),
        };
        (start, input)
    })
}

/// Positions of the first `n` whose flag is clear.
fn missed(ok: &OkBits, n: usize) -> u32 {
    n as u32 - ok.iter().map(|w| w.count_ones()).sum::<u32>()
}

/// Visit positions `0..n` in order: `each(state, js)` for stretches of positions whose bit
/// in `ok` is set (no test per position), `bad(state, j)` for each position whose bit is
/// clear. `each` may stop early at a position it cannot handle by returning its index: that
/// position goes to `bad` too, and `each` resumes after it.
#[inline(always)]
fn for_flagged<S: ?Sized>(
    ok: &OkBits,
    n: usize,
    state: &mut S,
    mut each: impl FnMut(&mut S, Range<usize>) -> Option<usize>,
    mut bad: impl FnMut(&mut S, usize) -> Result<()>,
) -> Result<()> {
    #[expect(clippy::inline_always, reason = "per-block hot loop")]
    #[inline(always)]
    fn stretch<S: ?Sized>(
        state: &mut S,
        mut js: Range<usize>,
        each: &mut impl FnMut(&mut S, Range<usize>) -> Option<usize>,
        bad: &mut impl FnMut(&mut S, usize) -> Result<()>,
    ) -> Result<()> {
        while let Some(j) = each(state, js.clone()) {
            bad(state, j)?;
            js = j + 1..js.end;
        }
        Ok(())
    }
    let mut from = 0;
    for (w, &word) in ok.iter().enumerate().take(n.div_ceil(64)) {
        let live = if (w + 1) * 64 <= n { u64::MAX } else { (1u64 << (n - w * 64)) - 1 };
        let mut missing = !word & live;
        while missing != 0 {
            let j = w * 64 + missing.trailing_zeros() as usize;
            stretch(state, from..j, &mut each, &mut bad)?;
            bad(state, j)?;
            from = j + 1;
            missing &= missing - 1;
        }
    }
    stretch(state, from..n, &mut each, &mut bad)
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
        let mut ok = [0; WORDS];
        let mut reach = Reach::Two;
        for (start, input) in blocks(pos, Column::Scalar(0), r) {
            let n = input.len();
            let dst = &mut o[start - base..start - base + n];
            // The fast pass writes every price; the exact path replaces the unflagged ones.
            plan.prices(input, dst, &mut ok, reach);
            reach = plan.widen(reach, missed(&ok, n));
            for_flagged(
                &ok,
                n,
                dst,
                |_, _| None,
                |dst, j| {
                    dst[j] = row_price(pos, models, start + j)?.0;
                    Ok(())
                },
            )?;
        }
        Ok(())
    });
    first_error(results).map(|_| ())
}

/// Highest leverage the venue allows per position (the maximum of the tier at its entry
/// notional), after checking entry and quantity as the liquidation kernels do.
pub fn max_leverages(model: &MarginModel, entry: &[f64], qty: &[f64], out: &mut [f64]) -> Result<()> {
    if qty.len() != entry.len() {
        return Err(LiqError::Array(format!("qty has {} rows but entry has {}", qty.len(), entry.len())));
    }
    if out.len() != entry.len() {
        return Err(LiqError::Array(format!("output has {} rows, positions {}", out.len(), entry.len())));
    }
    for (i, ((&e, &q), o)) in entry.iter().zip(qty).zip(out.iter_mut()).enumerate() {
        MarginModel::validate_shape(1.0, e, q).map_err(|p| LiqError::at(i, p))?;
        *o = model.max_leverage_at(q, e);
    }
    Ok(())
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
    /// `[Σ entry·qty, Σ qty]` over the whole book, so a caller gets the qty-weighted mean
    /// entry without another pass over the inputs (summed in lanes: not in row order).
    pub entry_qty: [f64; 2],
}

/// Dense bands kept between calls, so a heatmap over an unsorted time index does not
/// page-fault megabytes of fresh memory every time (they are zeroed again before each use).
static SPARE: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());
/// Buffers above this size are freed after use instead of kept.
const SPARE_MAX_CELLS: usize = 8 << 20;
/// At most this many buffers are kept.
const SPARE_MAX_COUNT: usize = 16;

/// A buffer of `len` zeros, reusing a kept one when possible.
fn zeroed(len: usize) -> Vec<f64> {
    let kept = {
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        // The smallest kept buffer that fits, else the largest one (it grows once).
        let fit = spare.iter().enumerate().filter(|(_, v)| v.capacity() >= len).min_by_key(|(_, v)| v.capacity());
        let pick = fit.or_else(|| spare.iter().enumerate().max_by_key(|(_, v)| v.capacity())).map(|(i, _)| i);
        pick.map(|i| spare.swap_remove(i))
    };
    let mut buf = kept.unwrap_or_default();
    buf.clear();
    buf.resize(len, 0.0);
    buf
}

/// Keep `buf` for a later call (or free it if it is large or enough are kept).
fn recycle(buf: Vec<f64>) {
    if buf.capacity() == 0 || buf.capacity() > SPARE_MAX_CELLS {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.len() < SPARE_MAX_COUNT {
        spare.push(buf);
    }
}

/// Per side `[below, above, in-grid]` sums of one row (in-grid only once the reduce has
/// summed it).
type RowSums = [[f64; 3]; 2];

/// Rows of the outputs that one worker may write straight into: the rows strictly between
/// its first and last position's rows, when the time index is sorted across workers (no
/// other worker's positions can be in them then; see `direct_rows`).
struct Direct<'o> {
    rows: Range<usize>,
    /// Those rows of the long and short outputs (`n` cells each).
    long: &'o mut [f64],
    short: &'o mut [f64],
}

/// Rows `row0 .. row0 + nrows` held densely, each `stride` cells.
struct Band {
    acc: Vec<f64>,
    row0: usize,
    nrows: usize,
}

/// One worker's sums. Each row holds per side `[below, bucket 0 .. n-1, above]` (cell
/// numbering of [`Bucketing`]). While the time index is sorted, rows are summed one at a time
/// in `cur` (a few tens of kB that stay in cache) and each finished row goes straight into
/// the outputs (a row inside the worker's own range) or into `kept` (a row it may share with
/// a neighbour). If the time index goes backwards, every row so far moves into one dense
/// band, which takes all further sums. A row is in exactly one place at any time and
/// every cell adds its positions in order, so the sums are the same as with one dense
/// accumulator per worker.
struct Partial {
    stride: usize,
    width: usize,
    n: usize,
    rows: usize,
    /// Row summed in `cur` (`usize::MAX`: none yet).
    cur_row: usize,
    cur: Vec<f64>,
    /// Rows written into the outputs, ascending, with their sums.
    written: Vec<(usize, RowSums)>,
    /// Finished rows kept for the reduce, ascending.
    kept: Vec<(usize, Vec<f64>)>,
    band: Option<Band>,
    never: [f64; 2],
    count: [u64; 2],
    entry_qty: [f64; 2],
}

impl Partial {
    fn new(b: &Bucketing) -> Self {
        Partial {
            stride: b.stride,
            width: b.width,
            n: b.n,
            rows: b.rows,
            cur_row: usize::MAX,
            cur: vec![0.0; b.stride],
            written: Vec::new(),
            kept: Vec::new(),
            band: None,
            never: [0.0; 2],
            count: [0; 2],
            entry_qty: [0.0; 2],
        }
    }

    /// The cells new sums go to, and the number to subtract from a cell to index them.
    #[expect(clippy::inline_always, reason = "per-block hot loop")]
    #[inline(always)]
    fn target(&mut self) -> (&mut [f64], usize) {
        match &mut self.band {
            Some(band) => (&mut band.acc, band.row0 * self.stride),
            None => (&mut self.cur, self.cur_row.wrapping_mul(self.stride)),
        }
    }

    /// Add `v` to cell `cell` (of a row below `rows`).
    #[inline]
    fn add(&mut self, cell: usize, v: f64, direct: &mut Option<Direct>) {
        let (acc, offset) = self.target();
        match acc.get_mut(cell.wrapping_sub(offset)) {
            Some(a) => *a += v,
            None => self.place(cell, v, direct),
        }
    }

    /// Add `v` to a cell outside the current target: move on to its row (sorted so far), or
    /// fall back to the band.
    #[cold]
    #[inline(never)]
    fn place(&mut self, cell: usize, v: f64, direct: &mut Option<Direct>) {
        let row = cell / self.stride;
        if self.band.is_none() {
            if self.cur_row == usize::MAX || row > self.cur_row {
                self.finish_row(direct);
                self.cur_row = row;
            } else {
                self.spill_to_band(row, direct);
            }
        }
        let band_rows = self.band.as_ref().map(|band| band.row0..band.row0 + band.nrows);
        if let Some(have) = band_rows
            && !have.contains(&row)
        {
            self.widen(row);
        }
        let (acc, offset) = self.target();
        acc[cell - offset] += v;
    }

    /// Move the row in `cur` into the outputs (if it is one of this worker's own rows) or
    /// into `kept`, and clear `cur`.
    fn finish_row(&mut self, direct: &mut Option<Direct>) {
        let row = self.cur_row;
        if row == usize::MAX {
            return;
        }
        let (n, w) = (self.n, self.width);
        match direct.as_mut().filter(|d| d.rows.contains(&row)) {
            Some(d) => {
                let at = (row - d.rows.start) * n;
                // (The in-grid sums are left to the reduce, which does several rows at once.)
                let mut sums = [[0.0; 3]; 2];
                for (s, out) in [&mut *d.long, &mut *d.short].into_iter().enumerate() {
                    let cells = &self.cur[s * w..(s + 1) * w];
                    out[at..at + n].copy_from_slice(&cells[1..=n]);
                    sums[s] = [cells[0], cells[n + 1], 0.0];
                }
                self.written.push((row, sums));
            }
            None => self.kept.push((row, self.cur.clone())),
        }
        self.cur.fill(0.0);
        self.cur_row = usize::MAX;
    }

    /// The time index went back to `row`: move every row so far into one dense band.
    #[cold]
    fn spill_to_band(&mut self, row: usize, direct: &mut Option<Direct>) {
        let mut lo = row;
        let mut hi = row;
        let cur = (self.cur_row != usize::MAX).then_some(self.cur_row);
        for r in self.written.iter().map(|w| w.0).chain(self.kept.iter().map(|k| k.0)).chain(cur) {
            lo = lo.min(r);
            hi = hi.max(r);
        }
        let (stride, w, n) = (self.stride, self.width, self.n);
        let mut band = Band { acc: zeroed((hi - lo + 1) * stride), row0: lo, nrows: hi - lo + 1 };
        let slot = |r: usize| (r - lo) * stride;
        if let Some(r) = cur {
            band.acc[slot(r)..slot(r) + stride].copy_from_slice(&self.cur);
        }
        for (r, cells) in self.kept.drain(..) {
            band.acc[slot(r)..slot(r) + stride].copy_from_slice(&cells);
        }
        // Rows already written into the outputs come back (the reduce rewrites them).
        if let Some(d) = direct.as_ref() {
            for (r, sums) in self.written.drain(..) {
                let at = (r - d.rows.start) * n;
                for (s, out) in [&*d.long, &*d.short].into_iter().enumerate() {
                    let cells = &mut band.acc[slot(r) + s * w..slot(r) + (s + 1) * w];
                    cells[0] = sums[s][0];
                    cells[1..=n].copy_from_slice(&out[at..at + n]);
                    cells[n + 1] = sums[s][1];
                }
            }
        }
        self.cur.fill(0.0);
        self.cur_row = usize::MAX;
        self.band = Some(band);
    }

    /// Widen the band to take in `row`, at least doubling it so this happens a few times
    /// per worker at most.
    #[cold]
    fn widen(&mut self, row: usize) {
        let (stride, rows) = (self.stride, self.rows);
        let band = self.band.as_mut().expect("a band");
        let (lo, hi) = (band.row0, band.row0 + band.nrows);
        let want = 2 * band.nrows;
        let (mut new_lo, mut new_hi) = (lo.min(row), hi.max(row + 1));
        if row < lo {
            new_lo = new_lo.min(hi.saturating_sub(want));
        } else {
            new_hi = new_hi.max(lo + want).min(rows);
        }
        let mut acc = zeroed((new_hi - new_lo) * stride);
        let at = (lo - new_lo) * stride;
        acc[at..at + band.acc.len()].copy_from_slice(&band.acc);
        recycle(std::mem::replace(&mut band.acc, acc));
        band.row0 = new_lo;
        band.nrows = new_hi - new_lo;
    }

    /// Cells `[below, buckets…, above]` of `side` in `row` if this worker holds them (not
    /// counting rows written into the outputs).
    fn row_cells(&self, row: usize, side: usize) -> Option<&[f64]> {
        let w = self.width;
        let cells = if let Some(band) = &self.band {
            let r = row.checked_sub(band.row0).filter(|&r| r < band.nrows)?;
            &band.acc[r * self.stride..(r + 1) * self.stride]
        } else {
            let k = self.kept.binary_search_by_key(&row, |k| k.0).ok()?;
            &self.kept[k].1[..]
        };
        Some(&cells[side * w..(side + 1) * w])
    }

    /// Sums of `row` if this worker wrote it into the outputs.
    fn written_sums(&self, row: usize) -> Option<&RowSums> {
        let k = self.written.binary_search_by_key(&row, |w| w.0).ok()?;
        Some(&self.written[k].1)
    }
}

/// Accumulate the rows of `r` into a fresh [`Partial`]: the branch-free pass computes each
/// common-case position's cell, the exact path handles the rest, in position order.
fn accumulate(
    pos: &Positions,
    models: &Models,
    plan: Option<&FastPlan>,
    grid: &PriceGrid,
    b: &Bucketing,
    time: Column<i64>,
    r: Range<usize>,
    mut direct: Option<Direct>,
) -> Result<Partial> {
    let mut part = Partial::new(b);
    let exact = |i: usize, part: &mut Partial, direct: &mut Option<Direct>| -> Result<()> {
        let (p, model) = row_price(pos, models, i)?;
        let t = time.get(i);
        if t < 0 || t as u64 >= b.rows as u64 {
            return Err(LiqError::at(i, Problem::IntOutOfRange(Field::TimeIndex, t, "in [0, n_times)")));
        }
        let s = usize::from(pos.side[i] < 0);
        if p.is_nan() {
            part.never[s] += model.usd_notional(pos.qty[i], pos.entry[i]);
            return Ok(());
        }
        let slot = match grid.locate(p) {
            Loc::Below => 0,
            Loc::In(k) => k + 1,
            Loc::Above => b.n + 1,
        };
        part.add(t as usize * b.stride + s * b.width + slot, model.usd_notional(pos.qty[i], p), direct);
        Ok(())
    };
    let mut shorts = 0;
    let Some(plan) = plan else {
        for (m, v) in part.entry_qty.iter_mut().zip(entry_qty(&pos.entry[r.clone()], &pos.qty[r.clone()])) {
            *m += v;
        }
        for i in r.clone() {
            exact(i, &mut part, &mut direct)?;
            shorts += usize::from(pos.side[i] < 0);
        }
        part.finish_row(&mut direct);
        part.count = [(r.len() - shorts) as u64, shorts as u64];
        return Ok(part);
    };
    let mut scratch = BlockOut::new();
    let mut reach = Reach::Two;
    let (stride, rows) = (b.stride, b.rows);
    let mut state = (part, direct);
    for (start, input) in blocks(pos, time, r.clone()) {
        plan.cells(input, b, &mut scratch, reach);
        let BlockOut { ok, cell, usd, shorts: block_shorts, entry_qty: moments, .. } = &*scratch;
        for (m, v) in state.0.entry_qty.iter_mut().zip(moments) {
            *m += v;
        }
        let n = input.len();
        reach = plan.widen(reach, missed(ok, n));
        // Every row is counted: if one is invalid, the call fails anyway.
        shorts += *block_shorts as usize;
        for_flagged(
            ok,
            n,
            &mut state,
            |(part, direct), mut js| {
                loop {
                    let (acc, offset) = part.target();
                    let k = js.start + scatter(acc, offset, &cell[js.clone()], &usd[js.clone()])?;
                    // A cell outside the current row or band: a new row, or a row outside the
                    // heatmap (the exact path reports it).
                    let c = cell[k] as u32 as usize;
                    if c / stride >= rows {
                        return Some(k);
                    }
                    part.place(c, usd[k], direct);
                    js = k + 1..js.end;
                }
            },
            |(part, direct), j| exact(start + j, part, direct),
        )?;
    }
    let (mut part, mut direct) = state;
    part.finish_row(&mut direct);
    part.count = [(r.len() - shorts) as u64, shorts as u64];
    Ok(part)
}

/// Add `usd[k]` to `acc[cell[k] − offset]` for each `k` in order (the cell in the low 32 bits
/// of `cell[k]`), stopping at the first cell outside `acc`: returns its `k`.
#[expect(clippy::inline_always, reason = "the second pass's inner loop")]
#[inline(always)]
fn scatter(acc: &mut [f64], offset: usize, cell: &[u64], usd: &[f64]) -> Option<usize> {
    let at = |c: u64| (c as u32 as usize).wrapping_sub(offset);
    let len = acc.len();
    let n = cell.len().min(usd.len());
    let (cell, usd) = (&cell[..n], &usd[..n]);
    let mut k = 0;
    // Four at a time: test the four cells, then four plain adds (in order, so a cell
    // repeated among them still sums in position order).
    for (c, u) in cell.chunks_exact(4).zip(usd.chunks_exact(4)) {
        let (i0, i1, i2, i3) = (at(c[0]), at(c[1]), at(c[2]), at(c[3]));
        if i0 >= len || i1 >= len || i2 >= len || i3 >= len {
            break;
        }
        acc[i0] += u[0];
        acc[i1] += u[1];
        acc[i2] += u[2];
        acc[i3] += u[3];
        k += 4;
    }
    for (j, (&c, &u)) in cell.iter().zip(usd).enumerate().skip(k) {
        let Some(a) = acc.get_mut(at(c)) else { return Some(j) };
        *a += u;
    }
    None
}

/// The rows each range of positions may write straight into the outputs: those strictly
/// between the rows of its first and last position, when the time index is a column whose
/// range ends are in order (then no other range has a position in them, whatever the order
/// inside each range). Otherwise none.
fn direct_rows(time: Column<i64>, rows: usize, ranges: &[Range<usize>]) -> Vec<Range<usize>> {
    let none = vec![0..0; ranges.len()];
    let Column::Slice(t) = time else { return none };
    let ends: Vec<(i64, i64)> = ranges.iter().filter(|r| !r.is_empty()).map(|r| (t[r.start], t[r.end - 1])).collect();
    let in_range = |v: i64| v >= 0 && (v as u64) < rows as u64;
    let ordered =
        ends.iter().all(|&(a, z)| in_range(a) && in_range(z) && a <= z) && ends.windows(2).all(|w| w[0].1 <= w[1].0);
    if !ordered || ends.len() != ranges.len() {
        return none;
    }
    ends.iter().map(|&(a, z)| (a as usize + 1)..(z as usize).max(a as usize + 1)).collect()
}

/// The workers' ranges, each with its [`Direct`] rows of the outputs.
fn with_direct<'o>(
    ranges: Vec<Range<usize>>,
    direct: Vec<Range<usize>>,
    n: usize,
    long: &'o mut [f64],
    short: &'o mut [f64],
) -> Vec<(Range<usize>, Option<Direct<'o>>)> {
    let (mut long, mut short) = (long, short);
    let mut done = 0;
    let mut out = Vec::with_capacity(ranges.len());
    for (r, rows) in ranges.into_iter().zip(direct) {
        if rows.is_empty() {
            out.push((r, None));
            continue;
        }
        let skip = (rows.start - done) * n;
        let take = rows.len() * n;
        let (_, rest_l) = std::mem::take(&mut long).split_at_mut(skip);
        let (_, rest_s) = std::mem::take(&mut short).split_at_mut(skip);
        let (mine_l, rest_l) = rest_l.split_at_mut(take);
        let (mine_s, rest_s) = rest_s.split_at_mut(take);
        (long, short) = (rest_l, rest_s);
        done = rows.end;
        out.push((r, Some(Direct { rows, long: mine_l, short: mine_s })));
    }
    out
}

/// Sum the workers' partials into the outputs (row-major `rows × n` per side) and totals,
/// in range order (so the sums do not depend on where each worker held its rows). Rows a
/// worker wrote straight into the outputs and no other worker touched are already final.
fn reduce(parts: Vec<Partial>, b: &Bucketing, long: &mut [f64], short: &mut [f64]) -> Totals {
    let mut tot = Totals::default();
    for part in &parts {
        for s in 0..2 {
            tot.never[s] += part.never[s];
            tot.count[s] += part.count[s];
            tot.entry_qty[s] += part.entry_qty[s];
        }
    }
    let n = b.n;
    let chunks = pool::split_rows(b.rows, n);
    let sums = pool::fill_ranges2(long, short, &chunks, n, |rows, long, short| {
        let mut sums: Vec<RowSums> = Vec::with_capacity(rows.len());
        let mut direct_row = vec![0.0; n];
        for (k, row) in rows.enumerate() {
            let held = parts.iter().any(|p| p.row_cells(row, 0).is_some());
            let writer = parts.iter().position(|p| p.written_sums(row).is_some());
            if !held && let Some(w) = writer {
                sums.push(*parts[w].written_sums(row).expect("written"));
                continue;
            }
            // (`dst` holds the row's final cells after this; its in-grid sum comes below.)
            let mut row_sums = [[0.0; 3]; 2];
            for (s, out) in [&mut *long, &mut *short].into_iter().enumerate() {
                let dst = &mut out[k * n..(k + 1) * n];
                if writer.is_some() {
                    direct_row.copy_from_slice(dst);
                }
                let (mut below, mut above) = (0.0, 0.0);
                let mut first = true;
                for (p, part) in parts.iter().enumerate() {
                    let (lo, inner, hi) = if writer == Some(p) {
                        let ws = part.written_sums(row).expect("written");
                        (ws[s][0], &direct_row[..], ws[s][1])
                    } else if let Some(cells) = part.row_cells(row, s) {
                        (cells[0], &cells[1..=n], cells[n + 1])
                    } else {
                        continue;
                    };
                    if first {
                        dst.copy_from_slice(inner);
                        (below, above) = (lo, hi);
                        first = false;
                    } else {
                        for (d, v) in dst.iter_mut().zip(inner) {
                            *d += v;
                        }
                        below += lo;
                        above += hi;
                    }
                }
                if first {
                    dst.fill(0.0);
                }
                row_sums[s] = [below, above, 0.0];
            }
            sums.push(row_sums);
        }
        for (s, out) in [&*long, &*short].into_iter().enumerate() {
            for (row, total) in sums.iter_mut().zip(row_totals(out, n)) {
                row[s][2] = total;
            }
        }
        sums
    });
    for s in 0..2 {
        for row in sums.iter().flatten() {
            tot.below[s] += row[s][0];
            tot.above[s] += row[s][1];
            tot.in_grid[s] += row[s][2];
        }
    }
    for part in parts {
        if let Some(band) = part.band {
            recycle(band.acc);
        }
    }
    tot
}

/// The sum of each `n`-cell row of `rows`, each in cell order (the bits `Iterator::sum`
/// gives), four rows at a time: one row's additions form a chain that waits on every add's
/// latency, so interleaving independent rows lets them overlap.
fn row_totals(rows: &[f64], n: usize) -> Vec<f64> {
    // The sum of no values, which `Iterator::sum` starts from.
    let zero: f64 = std::iter::empty::<f64>().sum();
    if n == 0 {
        return Vec::new();
    }
    let mut totals = Vec::with_capacity(rows.len() / n);
    let mut quads = rows.chunks_exact(4 * n);
    for quad in &mut quads {
        let (r0, rest) = quad.split_at(n);
        let (r1, rest) = rest.split_at(n);
        let (r2, r3) = rest.split_at(n);
        let mut acc = [zero; 4];
        for (((a, b), c), d) in r0.iter().zip(r1).zip(r2).zip(r3) {
            acc[0] += a;
            acc[1] += b;
            acc[2] += c;
            acc[3] += d;
        }
        totals.extend(acc);
    }
    totals.extend(quads.remainder().chunks_exact(n).map(|r| r.iter().sum::<f64>()));
    totals
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
        accumulate(pos, models, plan.as_ref(), grid, &b, Column::Scalar(0), r, None)
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
    let ranges = pool::split(pos.len());
    let direct = direct_rows(time_index, n_times, &ranges);
    let parts = {
        let work = with_direct(ranges, direct, n, long, short);
        pool::map_items(work, |(r, d)| accumulate(pos, models, plan.as_ref(), grid, &b, time_index, r, d))
    };
    Ok(reduce(first_error(parts)?, &b, long, short))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiers::{Tier, TierTable, TierUnit};
    use crate::venues::venue;

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

    /// A book like the benchmark's: sizes spread over the first tiers (some walk a tier),
    /// leverage capped by the entry tier.
    fn book(n: usize, seed: u64, model: &MarginModel) -> (Vec<f64>, Vec<f64>, Vec<i8>, Vec<f64>) {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut e, mut q, mut s, mut l) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let ev = 80_000.0 + 20_000.0 * next();
            let usd = 10f64.powf(2.0 + 4.5 * next());
            let qv = usd / ev;
            let cap = model.table.tiers()[model.tier_at(qv, ev)].max_leverage;
            e.push(ev);
            q.push(qv);
            s.push(if next() < 0.5 { 1 } else { -1 });
            l.push(f64::min([2.0, 5.0, 10.0, 25.0, 50.0, 100.0][(next() * 6.0) as usize], cap));
        }
        (e, q, s, l)
    }

    /// The heatmap as the kernels defined it before rows were streamed: per worker range one
    /// dense accumulator summed in position order, then the ranges summed in order.
    fn reference(
        pos: &Positions,
        m: &MarginModel,
        grid: &PriceGrid,
        times: &[i64],
        rows: usize,
    ) -> (Vec<f64>, Vec<f64>, Totals) {
        let n = grid.len();
        let w = n + 2;
        let mut sum = vec![0.0; 2 * rows * w];
        let mut tot = Totals::default();
        for r in pool::split(pos.len()) {
            let mut acc = vec![0.0; 2 * rows * w];
            for i in r {
                let side = usize::from(pos.side[i] < 0);
                let margin = MarginInput::Leverage(pos.margin.get(i));
                let p = m.liq_price(f64::from(pos.side[i]), pos.entry[i], pos.qty[i], margin).unwrap();
                tot.count[side] += 1;
                tot.entry_qty[0] += pos.entry[i] * pos.qty[i];
                tot.entry_qty[1] += pos.qty[i];
                if p.is_nan() {
                    tot.never[side] += m.usd_notional(pos.qty[i], pos.entry[i]);
                    continue;
                }
                let slot = match grid.locate(p) {
                    Loc::Below => 0,
                    Loc::In(k) => k + 1,
                    Loc::Above => n + 1,
                };
                acc[side * rows * w + times[i] as usize * w + slot] += m.usd_notional(pos.qty[i], p);
            }
            for (d, v) in sum.iter_mut().zip(&acc) {
                *d += v;
            }
        }
        let (mut long, mut short) = (vec![0.0; rows * n], vec![0.0; rows * n]);
        for (s, out) in [&mut long, &mut short].into_iter().enumerate() {
            for row in 0..rows {
                let cells = &sum[s * rows * w + row * w..][..w];
                tot.below[s] += cells[0];
                tot.above[s] += cells[n + 1];
                tot.in_grid[s] += cells[1..=n].iter().sum::<f64>();
                out[row * n..(row + 1) * n].copy_from_slice(&cells[1..=n]);
            }
        }
        (long, short, tot)
    }

    /// Panic at the first cell whose bits differ.
    /// Equal totals; the moments are summed in a different order, so they only agree closely.
    fn same_totals(got: Totals, want: Totals, what: &str) {
        for k in 0..2 {
            let (g, w) = (got.entry_qty[k], want.entry_qty[k]);
            assert!((g - w).abs() <= 1e-12 * w.abs(), "{what}: entry_qty[{k}] {g} vs {w}");
        }
        assert_eq!(Totals { entry_qty: want.entry_qty, ..got }, want, "{what}: totals");
    }

    fn same_bits(got: &[f64], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        if let Some(k) = (0..got.len()).find(|&k| got[k].to_bits() != want[k].to_bits()) {
            panic!("{what}: cell {k} is {} instead of {}", got[k], want[k]);
        }
    }

    /// Streamed rows give the very same bits as dense accumulators, whatever the order of the
    /// time index: sorted, reversed in places, sorted within each worker but not across, or
    /// scattered; and the map matches too.
    #[test]
    fn heatmap_equals_dense_reference_bit_for_bit() {
        let m = binance();
        let n = 150_000;
        let (e, q, s, l) = book(n, 11, &m);
        let pos = Positions {
            entry: &e,
            qty: &q,
            side: &s,
            margin: Column::Slice(&l),
            margin_kind: MarginKind::Leverage,
            open_time: None,
        };
        let grid = PriceGrid::new(60_000.0, 120_000.0, 25.0).unwrap();
        let rows = 40;
        let sorted: Vec<i64> = (0..n as i64).map(|i| i * rows as i64 / n as i64).collect();
        let mut dip = sorted.clone();
        for t in &mut dip[50_000..50_200] {
            *t -= 3;
        }
        let halves: Vec<i64> = (0..n as i64).map(|i| (i * 2 * rows as i64 / n as i64) % rows as i64).collect();
        let scattered: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % rows as i64).collect();
        let same: Vec<i64> = vec![5; n];
        for (name, times) in
            [("sorted", &sorted), ("dip", &dip), ("halves", &halves), ("scattered", &scattered), ("same", &same)]
        {
            let (mut long, mut short) = (vec![f64::NAN; rows * grid.len()], vec![f64::NAN; rows * grid.len()]);
            let tot =
                liquidation_heatmap(&pos, &Models::one(&m), Column::Slice(times), rows, &grid, &mut long, &mut short)
                    .unwrap();
            let (rl, rs, rt) = reference(&pos, &m, &grid, times, rows);
            same_bits(&long, &rl, &format!("{name}: long"));
            same_bits(&short, &rs, &format!("{name}: short"));
            same_totals(tot, rt, name);
        }
        let zeros = vec![0i64; n];
        let (rl, rs, rt) = reference(&pos, &m, &grid, &zeros, 1);
        let (mut long, mut short) = (vec![0.0; grid.len()], vec![0.0; grid.len()]);
        let tot = liquidation_map(&pos, &Models::one(&m), &grid, &mut long, &mut short).unwrap();
        same_bits(&long, &rl, "map: long");
        same_bits(&short, &rs, "map: short");
        same_totals(tot, rt, "map");
    }

    /// The same with the portable first pass (what machines without AVX2 run).
    #[test]
    fn heatmap_equals_dense_reference_portable_pass() {
        use std::sync::atomic::Ordering;
        crate::fast::FORCE_GENERIC.store(true, Ordering::Relaxed);
        let r = std::panic::catch_unwind(heatmap_equals_dense_reference_bit_for_bit);
        crate::fast::FORCE_GENERIC.store(false, Ordering::Relaxed);
        r.unwrap();
    }

    /// A row outside the heatmap is reported at its index, also mid-stream.
    #[test]
    fn heatmap_reports_first_bad_row() {
        let m = binance();
        let n = 100_000;
        let (e, q, s, l) = book(n, 5, &m);
        let pos = Positions {
            entry: &e,
            qty: &q,
            side: &s,
            margin: Column::Slice(&l),
            margin_kind: MarginKind::Leverage,
            open_time: None,
        };
        let grid = PriceGrid::new(60_000.0, 120_000.0, 25.0).unwrap();
        let mut times: Vec<i64> = (0..n as i64).map(|i| i * 10 / n as i64).collect();
        times[77_777] = 10;
        times[88_888] = -1;
        let (mut long, mut short) = (vec![0.0; 10 * grid.len()], vec![0.0; 10 * grid.len()]);
        let err = liquidation_heatmap(&pos, &Models::one(&m), Column::Slice(&times), 10, &grid, &mut long, &mut short)
            .unwrap_err();
        assert!(matches!(err, LiqError::Position { index: Some(77_777), .. }), "{err:?}");
    }
}
