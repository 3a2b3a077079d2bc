//! The Python boundary, and the only module that knows about Python. Each function here:
//! converts and validates its arguments while holding the GIL, detaches for the kernel when
//! the work is large, turns panics into `LiqfastError`, and maps `LiqError` to the matching
//! class of the exception hierarchy defined in `liqfast/errors.py`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt};

use crate::aggregate::{self, Column, MarginKind, Models, Positions, Totals};
use crate::error::{Field, LiqError, Problem};
use crate::grid::{self, Loc};
use crate::margin::{self, ContractKind, Leg, MarginInput};
use crate::tiers::{Tier, TierTable, TierUnit};
use crate::{pool, venues};

mod exc {
    pyo3::import_exception!(liqfast.errors, LiqfastError);
    pyo3::import_exception!(liqfast.errors, InvalidInputError);
    pyo3::import_exception!(liqfast.errors, InvalidPositionError);
    pyo3::import_exception!(liqfast.errors, LeverageTooHighError);
    pyo3::import_exception!(liqfast.errors, InvalidArrayError);
    pyo3::import_exception!(liqfast.errors, InvalidTierTableError);
    pyo3::import_exception!(liqfast.errors, InvalidBarsError);
    pyo3::import_exception!(liqfast.errors, CheckpointError);
    pyo3::import_exception!(liqfast.errors, UnknownVenueError);
    pyo3::import_exception!(liqfast.errors, GridError);
}

/// Work below this many positions stays attached: detaching costs more than it frees.
const DETACH_MIN: usize = 4_096;

pub(crate) fn to_pyerr(py: Python<'_>, e: LiqError) -> PyErr {
    let msg = e.to_string();
    match e {
        LiqError::Position { index, problem } => {
            let err = if matches!(problem, Problem::LeverageTooHigh { .. }) {
                exc::LeverageTooHighError::new_err(msg)
            } else {
                exc::InvalidPositionError::new_err(msg)
            };
            // Best effort: the message already names the row.
            let _ = err.value(py).setattr("index", index);
            err
        }
        LiqError::Array(_) => exc::InvalidArrayError::new_err(msg),
        LiqError::Tiers(_) => exc::InvalidTierTableError::new_err(msg),
        LiqError::Grid(_) => exc::GridError::new_err(msg),
        LiqError::Bars { index, .. } => {
            let err = exc::InvalidBarsError::new_err(msg);
            let _ = err.value(py).setattr("index", index);
            err
        }
        LiqError::Checkpoint(_) => exc::CheckpointError::new_err(msg),
        LiqError::Invalid(_) => exc::InvalidInputError::new_err(msg),
    }
}

/// Run `f` (detached from the interpreter when `detach`), converting panics and errors.
pub(crate) fn enter<T, F>(py: Python<'_>, detach: bool, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, LiqError> + Send,
{
    let guarded = move || catch_unwind(AssertUnwindSafe(f));
    let out = if detach { py.detach(guarded) } else { guarded() };
    match out {
        Ok(r) => r.map_err(|e| to_pyerr(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(exc::LiqfastError::new_err(format!("internal error (please report): {what}")))
        }
    }
}

fn array_error(name: &str, want: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    match obj.cast::<PyUntypedArray>() {
        Ok(a) => exc::InvalidArrayError::new_err(format!(
            "{name} must be a 1-D {want} array, got a {}-D {} array",
            a.ndim(),
            a.dtype()
        )),
        Err(_) => exc::InvalidArrayError::new_err(format!(
            "{name} must be a numpy {want} array, got {}",
            obj.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
        )),
    }
}

/// Borrow a contiguous 1-D array of exactly element type `T` (no silent conversion).
pub(crate) fn array<'py, T: numpy::Element>(
    name: &str,
    want: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    let a = obj.cast::<PyArray1<T>>().map_err(|_| array_error(name, want, obj))?;
    let r = a.try_readonly().map_err(|e| exc::InvalidArrayError::new_err(format!("{name}: {e}")))?;
    if r.as_slice().is_err() {
        return Err(exc::InvalidArrayError::new_err(format!(
            "{name} must be C-contiguous (got a strided view; pass np.ascontiguousarray({name}))"
        )));
    }
    Ok(r)
}

/// Whether `obj` is a bool, Python's or numpy's: both convert to numbers (True as 1), and a
/// bool where a number belongs is a mistake, not a leverage of 1x.
pub(crate) fn is_bool(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyBool>()
        || obj.get_type().name().is_ok_and(|n| n.to_cow().is_ok_and(|n| n == "bool" || n == "bool_"))
}

/// A list of (leverage, weight) number pairs, as settings dicts give the leverage mix; `Err`
/// holds the message. Bools are refused like everywhere else (`(True, 1)` is no 1x entry).
pub(crate) fn number_pairs(name: &str, obj: &Bound<'_, PyAny>) -> Result<Vec<(f64, f64)>, String> {
    let bad = || format!("{name} must be a list of (leverage, weight) pairs of numbers");
    let pairs = obj.extract::<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>>().map_err(|_| bad())?;
    pairs
        .iter()
        .map(|(a, b)| match (a.extract::<f64>(), b.extract::<f64>()) {
            (Ok(x), Ok(y)) if !is_bool(a) && !is_bool(b) => Ok((x, y)),
            _ => Err(bad()),
        })
        .collect()
}

/// `obj` as messages show it (its repr, cut short).
fn shown(obj: &Bound<'_, PyAny>) -> String {
    let r = obj.repr().map_or_else(|_| "?".into(), |r| r.to_string());
    if r.chars().count() > 60 { format!("{}...", r.chars().take(60).collect::<String>()) } else { r }
}

/// A number argument as f64: a Python or numpy int or float, not a bool nor a string. `Err`
/// holds the message naming the argument, for the caller to raise as the class that fits.
fn real(name: &str, obj: &Bound<'_, PyAny>) -> Result<f64, String> {
    match obj.extract::<f64>() {
        Ok(v) if !is_bool(obj) => Ok(v),
        _ => Err(format!("{name} must be a number, got {}", shown(obj))),
    }
}

/// [`real`], raised as `InvalidInputError`.
fn number(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    real(name, obj).map_err(exc::InvalidInputError::new_err)
}

/// A per-position argument given as a float or a float64 array.
pub(crate) enum FloatArg<'py> {
    Scalar(f64),
    Array(PyReadonlyArray1<'py, f64>),
}

impl<'py> FloatArg<'py> {
    pub(crate) fn extract(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if obj.cast::<PyUntypedArray>().is_ok() {
            return array::<f64>(name, "float64", obj).map(FloatArg::Array);
        }
        match obj.extract::<f64>() {
            Ok(v) if !is_bool(obj) => Ok(FloatArg::Scalar(v)),
            _ => Err(exc::InvalidArrayError::new_err(format!(
                "{name} must be a float or a float64 array, got {}",
                shown(obj)
            ))),
        }
    }

    pub(crate) fn column(&self) -> Column<'_, f64> {
        match self {
            FloatArg::Scalar(v) => Column::Scalar(*v),
            FloatArg::Array(a) => Column::Slice(a.as_slice().expect("checked contiguous")),
        }
    }
}

enum IntArg<'py> {
    Scalar(i64),
    Array(PyReadonlyArray1<'py, i64>),
}

impl<'py> IntArg<'py> {
    fn extract(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if obj.cast::<PyUntypedArray>().is_ok() {
            return array::<i64>(name, "int64", obj).map(IntArg::Array);
        }
        match obj.extract::<i64>() {
            Ok(v) if !is_bool(obj) => Ok(IntArg::Scalar(v)),
            Err(_) if obj.is_instance_of::<PyInt>() && !is_bool(obj) => {
                Err(exc::InvalidInputError::new_err(format!("{name} {} is outside the int64 range", shown(obj))))
            }
            _ => Err(exc::InvalidArrayError::new_err(format!(
                "{name} must be an int or an int64 array, got {}",
                shown(obj)
            ))),
        }
    }

    fn column(&self) -> Column<'_, i64> {
        match self {
            IntArg::Scalar(v) => Column::Scalar(*v),
            IntArg::Array(a) => Column::Slice(a.as_slice().expect("checked contiguous")),
        }
    }
}

fn parse_side(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    if is_bool(obj) {
        return Err(exc::InvalidPositionError::new_err(format!("side must be 'long'/'short' or +1/-1, got {obj}")));
    }
    if let Ok(s) = obj.extract::<String>() {
        return match s.to_ascii_lowercase().as_str() {
            "long" | "buy" => Ok(1.0),
            "short" | "sell" => Ok(-1.0),
            _ => Err(exc::InvalidPositionError::new_err(format!("side must be 'long'/'short' or +1/-1, got {s:?}"))),
        };
    }
    match obj.extract::<f64>() {
        Ok(v) if v == 1.0 || v == -1.0 => Ok(v),
        _ => Err(exc::InvalidPositionError::new_err(format!("side must be 'long'/'short' or +1/-1, got {obj}"))),
    }
}

fn margin_kind(kind: &str) -> PyResult<MarginKind> {
    match kind {
        "leverage" => Ok(MarginKind::Leverage),
        "margin" => Ok(MarginKind::Amount),
        _ => Err(exc::InvalidInputError::new_err(format!("margin kind must be 'leverage' or 'margin', got {kind:?}"))),
    }
}

// ---------------------------------------------------------------------------------------
// MarginModel
// ---------------------------------------------------------------------------------------

/// A venue formula bound to a contract size, fee rate and tier table.
#[pyclass(frozen, module = "liqfast._core", name = "MarginModel")]
pub struct PyMarginModel {
    pub(crate) inner: margin::MarginModel,
    venue: &'static str,
    formula: &'static str,
}

#[pymethods]
impl PyMarginModel {
    /// Build from a venue id, a formula name, and the data: tiers as
    /// `(floor, cap, mmr, maint_amount, max_leverage)` rows measured in `tier_unit`.
    #[new]
    #[pyo3(signature = (venue, formula, contract_size, fee_rate, tier_unit, tiers))]
    fn new(
        py: Python<'_>,
        venue: &str,
        formula: &str,
        contract_size: f64,
        fee_rate: f64,
        tier_unit: &str,
        tiers: Vec<(f64, f64, f64, f64, f64)>,
    ) -> PyResult<Self> {
        let v = venues::venue(venue).ok_or_else(|| unknown_venue(venue))?;
        let f = v.formula(Some(formula), None).map_err(|e| to_pyerr(py, e))?;
        let unit = TierUnit::parse(tier_unit).map_err(|e| to_pyerr(py, e))?;
        let rows = tiers
            .into_iter()
            .map(|(floor, cap, mmr, maint_amount, max_leverage)| Tier { floor, cap, mmr, maint_amount, max_leverage })
            .collect();
        let table = TierTable::new(unit, rows).map_err(|e| to_pyerr(py, e))?;
        let inner = margin::MarginModel::new(f.rules, contract_size, fee_rate, table).map_err(|e| to_pyerr(py, e))?;
        Ok(PyMarginModel { inner, venue: v.id, formula: f.name })
    }

    /// Same model with an explicit maintenance rate and/or deduction (see liqfast docs);
    /// `size_hint` (default 0) is the tier measure whose rate applies when only the
    /// deduction is given.
    #[pyo3(signature = (mmr=None, maint_amount=None, size_hint=None))]
    fn with_overrides(
        &self,
        py: Python<'_>,
        mmr: Option<&Bound<'_, PyAny>>,
        maint_amount: Option<&Bound<'_, PyAny>>,
        size_hint: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mmr = mmr.map(|v| number("mmr", v)).transpose()?;
        let maint_amount = maint_amount.map(|v| number("maint_amount", v)).transpose()?;
        let size_hint = size_hint.map_or(Ok(0.0), |v| number("size_hint", v))?;
        let inner = self.inner.with_overrides(mmr, maint_amount, size_hint).map_err(|e| to_pyerr(py, e))?;
        Ok(PyMarginModel { inner, venue: self.venue, formula: self.formula })
    }

    #[getter]
    fn venue(&self) -> &'static str {
        self.venue
    }

    #[getter]
    fn formula(&self) -> &'static str {
        self.formula
    }

    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner.rules.kind {
            ContractKind::Linear => "linear",
            ContractKind::Inverse => "inverse",
        }
    }

    #[getter]
    fn contract_size(&self) -> f64 {
        self.inner.contract_size
    }

    #[getter]
    fn fee_rate(&self) -> f64 {
        self.inner.fee_rate
    }

    #[getter]
    fn tier_unit(&self) -> &'static str {
        self.inner.table.unit().name()
    }

    #[getter]
    fn overridden(&self) -> bool {
        self.inner.overridden
    }

    /// Tier rows `(floor, cap, mmr, maint_amount, max_leverage)`.
    #[getter]
    fn tiers(&self) -> Vec<(f64, f64, f64, f64, f64)> {
        self.inner.table.tiers().iter().map(|t| (t.floor, t.cap, t.mmr, t.maint_amount, t.max_leverage)).collect()
    }

    /// Liquidation price of one position (`nan` when none exists). Exactly one of
    /// `leverage` / `margin` must be given.
    #[pyo3(signature = (side, entry, qty, *, leverage=None, margin=None))]
    fn liquidation_price(
        &self,
        py: Python<'_>,
        side: &Bound<'_, PyAny>,
        entry: &Bound<'_, PyAny>,
        qty: &Bound<'_, PyAny>,
        leverage: Option<&Bound<'_, PyAny>>,
        margin: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let side = parse_side(side)?;
        let (entry, qty) = (number("entry", entry)?, number("qty", qty)?);
        let m = match (leverage, margin) {
            (Some(l), None) => MarginInput::Leverage(number("leverage", l)?),
            (None, Some(m)) => MarginInput::Amount(number("margin", m)?),
            _ => {
                return Err(exc::InvalidInputError::new_err("give exactly one of leverage= or margin="));
            }
        };
        self.inner.liq_price(side, entry, qty, m).map_err(|p| to_pyerr(py, LiqError::single(p)))
    }

    /// Index of the tier that applies to `qty` at `price`.
    fn tier_at(&self, py: Python<'_>, qty: &Bound<'_, PyAny>, price: &Bound<'_, PyAny>) -> PyResult<usize> {
        let (qty, price) = qty_price(py, qty, price)?;
        Ok(self.inner.tier_at(qty, price))
    }

    /// USD value of `qty` at `price` (size·price for linear, face value for inverse).
    fn usd_notional(&self, py: Python<'_>, qty: &Bound<'_, PyAny>, price: &Bound<'_, PyAny>) -> PyResult<f64> {
        let (qty, price) = qty_price(py, qty, price)?;
        Ok(self.inner.usd_notional(qty, price))
    }

    fn __repr__(&self) -> String {
        format!(
            "MarginModel(venue={:?}, formula={:?}, contract_size={}, fee_rate={}, tiers={}{})",
            self.venue,
            self.formula,
            self.inner.contract_size,
            self.inner.fee_rate,
            self.inner.table.tiers().len(),
            if self.inner.overridden { ", overridden" } else { "" }
        )
    }
}

/// The `qty` and `price` of a tier or notional look-up, checked as a position's are (a NaN
/// or negative one has no tier: the table search would put it in the first).
fn qty_price(py: Python<'_>, qty: &Bound<'_, PyAny>, price: &Bound<'_, PyAny>) -> PyResult<(f64, f64)> {
    let (qty, price) = (number("qty", qty)?, number("price", price)?);
    margin::MarginModel::check_factor(Field::Qty, qty)
        .and_then(|()| margin::MarginModel::check_factor(Field::Price, price))
        .map_err(|p| to_pyerr(py, LiqError::single(p)))?;
    Ok((qty, price))
}

fn unknown_venue(venue: &str) -> PyErr {
    let known: Vec<&str> = venues::VENUES.iter().map(|v| v.id).collect();
    exc::UnknownVenueError::new_err(format!("unknown venue {venue:?}; known venues: {}", known.join(", ")))
}

/// Venue ids, in a stable order.
#[pyfunction]
#[pyo3(name = "venues")]
fn py_venues() -> Vec<&'static str> {
    venues::VENUES.iter().map(|v| v.id).collect()
}

/// Formulas of a venue, oldest first: `(name, since_ms or None, description)`; the last one is
/// current.
#[pyfunction]
#[pyo3(name = "venue_formulas")]
fn py_venue_formulas(venue: &str) -> PyResult<Vec<(&'static str, Option<i64>, &'static str)>> {
    let v = venues::venue(venue).ok_or_else(|| unknown_venue(venue))?;
    Ok(v.formulas.iter().map(|f| (f.name, f.since_ms, f.doc)).collect())
}

/// Name of the formula in force for a position of `venue` opened at `t_ms` (epoch ms).
#[pyfunction]
#[pyo3(name = "formula_at")]
fn py_formula_at(venue: &str, t_ms: i64) -> PyResult<&'static str> {
    let v = venues::venue(venue).ok_or_else(|| unknown_venue(venue))?;
    Ok(v.formula_at(t_ms).name)
}

/// Contract kind of a venue: "linear" or "inverse".
#[pyfunction]
#[pyo3(name = "venue_kind")]
fn py_venue_kind(venue: &str) -> PyResult<&'static str> {
    let v = venues::venue(venue).ok_or_else(|| unknown_venue(venue))?;
    Ok(match v.kind {
        ContractKind::Linear => "linear",
        ContractKind::Inverse => "inverse",
    })
}

// ---------------------------------------------------------------------------------------
// PriceGrid
// ---------------------------------------------------------------------------------------

/// Uniform price grid: bucket k covers `[lo + k·step, lo + (k+1)·step)`.
#[pyclass(frozen, eq, module = "liqfast._core", name = "PriceGrid")]
#[derive(PartialEq)]
pub struct PyPriceGrid {
    pub(crate) inner: grid::PriceGrid,
}

#[pymethods]
impl PyPriceGrid {
    #[new]
    fn new(py: Python<'_>, lo: &Bound<'_, PyAny>, hi: &Bound<'_, PyAny>, step: &Bound<'_, PyAny>) -> PyResult<Self> {
        let arg = |name: &str, v: &Bound<'_, PyAny>| real(&format!("grid {name}"), v).map_err(exc::GridError::new_err);
        let (lo, hi, step) = (arg("lo", lo)?, arg("hi", hi)?, arg("step", step)?);
        grid::PriceGrid::new(lo, hi, step).map(|inner| PyPriceGrid { inner }).map_err(|e| to_pyerr(py, e))
    }

    #[getter]
    fn lo(&self) -> f64 {
        self.inner.lo()
    }

    #[getter]
    fn hi(&self) -> f64 {
        self.inner.hi()
    }

    #[getter]
    fn step(&self) -> f64 {
        self.inner.step()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The `len + 1` bucket edges.
    fn edges<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        (0..=self.inner.len()).map(|k| self.inner.edge(k)).collect::<Vec<_>>().into_pyarray(py)
    }

    /// Bucket mid-points.
    fn centers<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        let half = self.inner.step() / 2.0;
        (0..self.inner.len()).map(|k| self.inner.edge(k) + half).collect::<Vec<_>>().into_pyarray(py)
    }

    /// Bucket index of `price`: -1 below the grid, `len` at or above its top.
    fn locate(&self, price: &Bound<'_, PyAny>) -> PyResult<i64> {
        let price = number("price", price)?;
        // (The kernels count a NaN price as below; asked directly, it has no bucket.)
        if price.is_nan() {
            return Err(exc::InvalidInputError::new_err("price must be a number, got nan"));
        }
        Ok(match self.inner.locate(price) {
            Loc::Below => -1,
            Loc::In(k) => k as i64,
            Loc::Above => self.inner.len() as i64,
        })
    }

    fn __getnewargs__(&self) -> (f64, f64, f64) {
        (self.inner.lo(), self.inner.hi(), self.inner.step())
    }

    /// Equal grids hash equal (grids key caches); `+ 0.0` folds −0 into +0, which `==` equates.
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ((self.inner.lo() + 0.0).to_bits(), (self.inner.step() + 0.0).to_bits(), self.inner.len()).hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        format!(
            "PriceGrid(lo={}, hi={}, step={}, buckets={})",
            self.inner.lo(),
            self.inner.hi(),
            self.inner.step(),
            self.inner.len()
        )
    }
}

/// A round bucket width near 0.05 % of `price`, a multiple of `tick` (0 = no tick).
#[pyfunction]
#[pyo3(name = "auto_step")]
#[pyo3(signature = (price, tick=0.0))]
fn py_auto_step(py: Python<'_>, price: &Bound<'_, PyAny>, tick: f64) -> PyResult<f64> {
    let price = real("price", price).map_err(exc::GridError::new_err)?;
    grid::auto_step(price, tick).map_err(|e| to_pyerr(py, e))
}

// ---------------------------------------------------------------------------------------
// Batch kernels
// ---------------------------------------------------------------------------------------

/// Borrowed batch inputs, checked for dtype and layout.
struct Batch<'py> {
    entry: PyReadonlyArray1<'py, f64>,
    qty: PyReadonlyArray1<'py, f64>,
    side: PyReadonlyArray1<'py, i8>,
    margin: FloatArg<'py>,
    kind: MarginKind,
    open_time: Option<IntArg<'py>>,
}

impl<'py> Batch<'py> {
    fn extract(
        entry: &Bound<'py, PyAny>,
        qty: &Bound<'py, PyAny>,
        side: &Bound<'py, PyAny>,
        margin: &Bound<'py, PyAny>,
        kind: &str,
        open_time: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Batch {
            entry: array("entry", "float64", entry)?,
            qty: array("qty", "float64", qty)?,
            side: array("side", "int8", side)?,
            margin: FloatArg::extract(if kind == "leverage" { "leverage" } else { "margin" }, margin)?,
            kind: margin_kind(kind)?,
            open_time: open_time.map(|t| IntArg::extract("open_time", t)).transpose()?,
        })
    }

    fn positions(&self) -> Positions<'_> {
        Positions {
            entry: self.entry.as_slice().expect("checked contiguous"),
            qty: self.qty.as_slice().expect("checked contiguous"),
            side: self.side.as_slice().expect("checked contiguous"),
            margin: self.margin.column(),
            margin_kind: self.kind,
            open_time: self.open_time.as_ref().map(IntArg::column),
        }
    }
}

/// Clone the inner models out of Python objects so the kernel can run detached.
fn models_of(models: &[PyRef<'_, PyMarginModel>], since: &[Option<i64>]) -> PyResult<Vec<margin::MarginModel>> {
    if models.is_empty() || models.len() != since.len() {
        return Err(exc::InvalidInputError::new_err("models and since must be non-empty and of equal length"));
    }
    Ok(models.iter().map(|m| m.inner.clone()).collect())
}

fn totals_dict<'py>(py: Python<'py>, t: &Totals) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("in_grid", (t.in_grid[0], t.in_grid[1]))?;
    d.set_item("below", (t.below[0], t.below[1]))?;
    d.set_item("above", (t.above[0], t.above[1]))?;
    d.set_item("never", (t.never[0], t.never[1]))?;
    d.set_item("count", (t.count[0], t.count[1]))?;
    // qty-weighted mean entry (NaN for an empty book), the default anchor of cumulative curves
    d.set_item("mean_entry", t.entry_qty[0] / t.entry_qty[1])?;
    Ok(d)
}

/// Liquidation price per position. `models`/`since`: one model, or one per venue formula
/// (oldest first) with the instant each applies from, picked per row by `open_time`.
#[pyfunction]
#[pyo3(name = "liquidation_prices")]
#[pyo3(signature = (models, since, entry, qty, side, margin, margin_kind, open_time=None))]
fn py_liquidation_prices<'py>(
    py: Python<'py>,
    models: Vec<PyRef<'py, PyMarginModel>>,
    since: Vec<Option<i64>>,
    entry: &Bound<'py, PyAny>,
    qty: &Bound<'py, PyAny>,
    side: &Bound<'py, PyAny>,
    margin: &Bound<'py, PyAny>,
    margin_kind: &str,
    open_time: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let batch = Batch::extract(entry, qty, side, margin, margin_kind, open_time)?;
    let owned = models_of(&models, &since)?;
    let pos = batch.positions();
    let n = pos.len();
    // The output comes from numpy's allocator (which asks for huge pages for large arrays,
    // so filling fresh memory takes a few page faults instead of thousands) and is filled
    // in place while detached; nothing else can see the new array meanwhile.
    let out = PyArray1::<f64>::zeros(py, n, false);
    {
        let mut rw = out.readwrite();
        let dst = rw.as_slice_mut().map_err(|e| exc::LiqfastError::new_err(format!("internal error: {e}")))?;
        enter(py, n >= DETACH_MIN, || {
            aggregate::liquidation_prices(&pos, &Models { models: &owned, since: &since }, dst)
        })?;
    }
    Ok(out)
}

type MapOut<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>, Bound<'py, PyDict>);

/// Fused 1-D liquidation map: `(long_usd, short_usd, totals)` per bucket of `grid`.
#[pyfunction]
#[pyo3(name = "liquidation_map")]
#[pyo3(signature = (models, since, entry, qty, side, margin, margin_kind, grid, open_time=None))]
fn py_liquidation_map<'py>(
    py: Python<'py>,
    models: Vec<PyRef<'py, PyMarginModel>>,
    since: Vec<Option<i64>>,
    entry: &Bound<'py, PyAny>,
    qty: &Bound<'py, PyAny>,
    side: &Bound<'py, PyAny>,
    margin: &Bound<'py, PyAny>,
    margin_kind: &str,
    grid: PyRef<'py, PyPriceGrid>,
    open_time: Option<&Bound<'py, PyAny>>,
) -> PyResult<MapOut<'py>> {
    let batch = Batch::extract(entry, qty, side, margin, margin_kind, open_time)?;
    let owned = models_of(&models, &since)?;
    let g = grid.inner;
    let pos = batch.positions();
    let (long, short) = (PyArray1::<f64>::zeros(py, g.len(), false), PyArray1::<f64>::zeros(py, g.len(), false));
    let t = {
        let (mut l, mut s) = (long.readwrite(), short.readwrite());
        let internal = |e: numpy::AsSliceError| exc::LiqfastError::new_err(format!("internal error: {e}"));
        let (l, s) = (l.as_slice_mut().map_err(internal)?, s.as_slice_mut().map_err(internal)?);
        enter(py, pos.len() >= DETACH_MIN, || {
            aggregate::liquidation_map(&pos, &Models { models: &owned, since: &since }, &g, l, s)
        })?
    };
    Ok((long, short, totals_dict(py, &t)?))
}

type HeatOut<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>, Bound<'py, PyDict>);

/// Fused 2-D liquidation heatmap: `(long[n_times, buckets], short[...], totals)`.
#[pyfunction]
#[pyo3(name = "liquidation_heatmap")]
#[pyo3(signature = (models, since, entry, qty, side, margin, margin_kind, time_index, n_times, grid, open_time=None))]
fn py_liquidation_heatmap<'py>(
    py: Python<'py>,
    models: Vec<PyRef<'py, PyMarginModel>>,
    since: Vec<Option<i64>>,
    entry: &Bound<'py, PyAny>,
    qty: &Bound<'py, PyAny>,
    side: &Bound<'py, PyAny>,
    margin: &Bound<'py, PyAny>,
    margin_kind: &str,
    time_index: &Bound<'py, PyAny>,
    n_times: &Bound<'py, PyAny>,
    grid: PyRef<'py, PyPriceGrid>,
    open_time: Option<&Bound<'py, PyAny>>,
) -> PyResult<HeatOut<'py>> {
    let n_times = match n_times.extract::<usize>() {
        Ok(n) if !is_bool(n_times) => n,
        // An int past usize is past the cell limit as well (as the kernel says of smaller ones).
        Err(_) if n_times.is_instance_of::<PyInt>() && !is_bool(n_times) && n_times.gt(0)? => {
            return Err(exc::GridError::new_err(format!(
                "heatmap of {} time rows exceeds the limit of {} cells per side",
                shown(n_times),
                aggregate::MAX_HEATMAP_CELLS
            )));
        }
        _ => {
            return Err(exc::InvalidInputError::new_err(format!(
                "n_times must be a positive int, got {}",
                shown(n_times)
            )));
        }
    };
    let batch = Batch::extract(entry, qty, side, margin, margin_kind, open_time)?;
    let time_index = IntArg::extract("time_index", time_index)?;
    let owned = models_of(&models, &since)?;
    let g = grid.inner;
    let pos = batch.positions();
    let ti = time_index.column();
    if n_times == 0 || n_times.checked_mul(g.len()).is_none_or(|c| c > aggregate::MAX_HEATMAP_CELLS) {
        // Too large or empty: let the kernel name the problem (it checks the sizes before it
        // touches the outputs), without asking numpy for the memory first.
        let models = Models { models: &owned, since: &since };
        enter(py, false, || aggregate::liquidation_heatmap(&pos, &models, ti, n_times, &g, &mut [], &mut []))?;
        return Err(exc::LiqfastError::new_err("internal error: heatmap size accepted"));
    }
    let shape = [n_times, g.len()];
    let (long, short) = (PyArray2::<f64>::zeros(py, shape, false), PyArray2::<f64>::zeros(py, shape, false));
    let t = {
        let (mut l, mut s) = (long.readwrite(), short.readwrite());
        let internal = |e: numpy::AsSliceError| exc::LiqfastError::new_err(format!("internal error: {e}"));
        let (l, s) = (l.as_slice_mut().map_err(internal)?, s.as_slice_mut().map_err(internal)?);
        enter(py, pos.len() >= DETACH_MIN, || {
            aggregate::liquidation_heatmap(&pos, &Models { models: &owned, since: &since }, ti, n_times, &g, l, s)
        })?
    };
    Ok((long, short, totals_dict(py, &t)?))
}

/// Highest leverage `model` allows per position: the maximum of the tier at its entry
/// notional.
#[pyfunction]
#[pyo3(name = "max_leverages")]
fn py_max_leverages<'py>(
    py: Python<'py>,
    model: PyRef<'py, PyMarginModel>,
    entry: &Bound<'py, PyAny>,
    qty: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (entry, qty) = (array::<f64>("entry", "float64", entry)?, array::<f64>("qty", "float64", qty)?);
    let (e, q) = (entry.as_slice().expect("checked contiguous"), qty.as_slice().expect("checked contiguous"));
    let out = PyArray1::<f64>::zeros(py, e.len(), false);
    {
        let mut rw = out.readwrite();
        let dst = rw.as_slice_mut().map_err(|e| exc::LiqfastError::new_err(format!("internal error: {e}")))?;
        let m = &model.inner;
        enter(py, e.len() >= DETACH_MIN, || aggregate::max_leverages(m, e, q, dst))?;
    }
    Ok(out)
}

/// Cross-margin liquidation price of a hedge-mode pair sharing one wallet (Binance FAQ);
/// either leg may be omitted. `wallet` is net of other positions' maintenance and PnL.
#[pyfunction]
#[pyo3(name = "hedge_liquidation_price")]
#[pyo3(signature = (model, wallet, long_entry=None, long_qty=None, short_entry=None, short_qty=None))]
fn py_hedge_liquidation_price(
    py: Python<'_>,
    model: PyRef<'_, PyMarginModel>,
    wallet: f64,
    long_entry: Option<f64>,
    long_qty: Option<f64>,
    short_entry: Option<f64>,
    short_qty: Option<f64>,
) -> PyResult<f64> {
    let leg = |e: Option<f64>, q: Option<f64>, name: &str| -> PyResult<Option<Leg>> {
        match (e, q) {
            (Some(entry), Some(qty)) => Ok(Some(Leg { entry, qty })),
            (None, None) => Ok(None),
            _ => Err(exc::InvalidInputError::new_err(format!("{name} leg needs both entry and qty"))),
        }
    };
    let long = leg(long_entry, long_qty, "long")?;
    let short = leg(short_entry, short_qty, "short")?;
    margin::hedge_liq_price(&model.inner, long, short, wallet).map_err(|e| to_pyerr(py, e))
}

/// Benchmark probe: read every byte of `buffers` (uint8 views) on the pool; returns a checksum.
/// Its run time is the memory-bandwidth floor for kernels reading the same bytes.
#[pyfunction]
#[pyo3(name = "_stream_read")]
fn py_stream_read(py: Python<'_>, buffers: Vec<PyReadonlyArray1<'_, u8>>) -> PyResult<u64> {
    let slices: Vec<&[u8]> = buffers
        .iter()
        .map(|b| b.as_slice().map_err(|_| exc::InvalidArrayError::new_err("buffers must be contiguous uint8 views")))
        .collect::<PyResult<_>>()?;
    enter(py, true, || Ok(crate::probe::stream_read(&slices)))
}

/// Number of worker threads of the shared pool.
#[pyfunction]
#[pyo3(name = "thread_count")]
fn py_thread_count() -> usize {
    pool::threads()
}

/// Called in a forked child: drop the parent's (thread-less) pool.
#[pyfunction]
#[pyo3(name = "_reset_pool_after_fork")]
fn py_reset_pool_after_fork() {
    pool::reset_after_fork();
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("build_profile", if cfg!(debug_assertions) { "debug" } else { "release" })?;
    m.add_class::<PyMarginModel>()?;
    m.add_class::<PyPriceGrid>()?;
    m.add_function(wrap_pyfunction!(py_venues, m)?)?;
    m.add_function(wrap_pyfunction!(py_venue_formulas, m)?)?;
    m.add_function(wrap_pyfunction!(py_venue_kind, m)?)?;
    m.add_function(wrap_pyfunction!(py_formula_at, m)?)?;
    m.add_function(wrap_pyfunction!(py_auto_step, m)?)?;
    m.add_function(wrap_pyfunction!(py_liquidation_prices, m)?)?;
    m.add_function(wrap_pyfunction!(py_liquidation_map, m)?)?;
    m.add_function(wrap_pyfunction!(py_liquidation_heatmap, m)?)?;
    m.add_function(wrap_pyfunction!(py_hedge_liquidation_price, m)?)?;
    m.add_function(wrap_pyfunction!(py_max_leverages, m)?)?;
    m.add_function(wrap_pyfunction!(py_thread_count, m)?)?;
    m.add_function(wrap_pyfunction!(py_stream_read, m)?)?;
    crate::py_model::register(m)?;
    crate::py_sim::register(m)?;
    crate::py_decode::register(m)?;
    m.add_function(wrap_pyfunction!(py_reset_pool_after_fork, m)?)?;
    Ok(())
}
