//! Python boundary of the estimation model (`_core.Model`). Same rules as `py.rs`: validate
//! while attached, detach for long work, map errors to the liqfast exception classes.

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::book::{LONG, SHORT};
use crate::error::LiqError;
use crate::grid::PriceGrid;
use crate::model::{self, Bar, EntryRule, HeatmapRecorder, Model, Params, SideRule};
use crate::py::{PyMarginModel, PyPriceGrid, array, enter, to_pyerr};

/// One venue's bars as arrays: ts_ms, open, high, low, close, OI (USD), taker net (base).
type BarArrays<'py> = (
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
);
/// Per-bar entry profiles, flat: prices, volumes, row offsets.
type ProfileArrays<'py> = (PyReadonlyArray1<'py, f64>, PyReadonlyArray1<'py, f64>, PyReadonlyArray1<'py, i64>);
/// Long and short USD per bucket.
pub(crate) type SidePair<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);
/// (long, short) as `rows × buckets` arrays.
type SideRows<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>);

fn invalid(m: String) -> LiqError {
    LiqError::Invalid(m)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
}

/// A scalar int argument; InvalidInputError naming it rather than pyo3's bare TypeError.
fn int_arg(py: Python<'_>, name: &str, obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    // (A bool is no time: True was the instant 1.)
    match obj.extract::<i64>() {
        Ok(v) if !crate::py::is_bool(obj) => Ok(v),
        _ => Err(to_pyerr(py, invalid(format!("{name} must be an int within int64, got {}", type_name(obj))))),
    }
}

/// A scalar float argument, likewise.
fn float_arg(py: Python<'_>, name: &str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    // (A bool is no number: True was an open interest of 1 USD.)
    match obj.extract::<f64>() {
        Ok(v) if !crate::py::is_bool(obj) => Ok(v),
        _ => Err(to_pyerr(py, invalid(format!("{name} must be a number, got {}", type_name(obj))))),
    }
}

/// A side argument: "long" or "short" (`what` lists what else is allowed, for the message).
fn side_arg(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<usize> {
    match obj.extract::<String>().as_deref() {
        Ok("long") => Ok(LONG),
        Ok("short") => Ok(SHORT),
        _ => Err(to_pyerr(py, invalid(format!("side must be {what}, got {obj}")))),
    }
}

/// The leverage filter's bounds: 0 <= lo <= hi (hi may be infinite). Reversed bounds kept
/// nothing and NaN ones everything in a snapshot but nothing in a replay, all silently.
fn check_leverage_range(lo: f64, hi: f64) -> Result<(), LiqError> {
    if lo >= 0.0 && lo <= hi {
        Ok(())
    } else {
        Err(invalid(format!("leverage range must have 0 <= low <= high, got ({lo}, {hi})")))
    }
}

/// Parameters from a dict with the field names of `liqfast.model.ModelParams`.
fn params_from(d: &Bound<'_, PyDict>) -> Result<Params, LiqError> {
    let mut p = Params::default();
    let (mut entry_rule, mut entry_points) = (None::<String>, None::<usize>);
    let (mut side_rule, mut taker_tilt) = (None::<String>, None::<f64>);
    for (k, v) in d.iter() {
        let key: String = k.extract().map_err(|_| invalid("parameter names must be strings".into()))?;
        if crate::py::is_bool(&v) {
            return Err(invalid(format!("{key} must not be a bool, got {v}")));
        }
        let num = |v: &Bound<'_, PyAny>| v.extract::<f64>().map_err(|_| invalid(format!("{key} must be a number")));
        let int = |v: &Bound<'_, PyAny>| {
            v.extract::<usize>().map_err(|_| invalid(format!("{key} must be a non-negative int")))
        };
        let text = |v: &Bound<'_, PyAny>| v.extract::<String>().map_err(|_| invalid(format!("{key} must be a string")));
        match key.as_str() {
            "leverage_mix" => {
                p.leverage_mix = crate::py::number_pairs("leverage_mix", &v).map_err(invalid)?;
            }
            "leverage_spread" => p.leverage_spread = num(&v)?,
            "leverage_points" => p.leverage_points = int(&v)?,
            "entry_rule" => entry_rule = Some(text(&v)?),
            "entry_points" => entry_points = Some(int(&v)?),
            "side_rule" => side_rule = Some(text(&v)?),
            "taker_tilt" => taker_tilt = Some(num(&v)?),
            "turnover_per_hour" => p.turnover_per_hour = num(&v)?,
            "turnover_leverage_exponent" => p.turnover_leverage_exponent = num(&v)?,
            "decay_per_hour" => p.decay_per_hour = num(&v)?,
            "intrabar" => p.intrabar = num(&v)?,
            "position_usd" => p.position_usd = num(&v)?,
            "prune_below" => p.prune_below = num(&v)?,
            "background" => p.background = num(&v)?,
            "swing" => p.swing = num(&v)?,
            "swing_exponent" => p.swing_exponent = num(&v)?,
            other => return Err(invalid(format!("unknown model parameter {other:?}"))),
        }
    }
    p.entry = match entry_rule.as_deref().unwrap_or("range") {
        "typical" => EntryRule::Typical,
        "close" => EntryRule::Close,
        "range" => EntryRule::Range(entry_points.unwrap_or(3)),
        "profile" => EntryRule::Profile(entry_points.unwrap_or(3)),
        other => return Err(invalid(format!("entry_rule must be typical, close, range or profile, got {other:?}"))),
    };
    // Checked even when the side rule does not use it: a bad value is a mistake either way.
    if let Some(t) = taker_tilt
        && !(0.0..=1.0).contains(&t)
    {
        return Err(invalid(format!("taker_tilt must be in [0, 1], got {t}")));
    }
    p.side = match side_rule.as_deref().unwrap_or("even") {
        "even" => SideRule::Even,
        "taker" => SideRule::TakerTilt(taker_tilt.unwrap_or(0.5)),
        other => return Err(invalid(format!("side_rule must be even or taker, got {other:?}"))),
    };
    p.validate()?;
    Ok(p)
}

/// Bars of one venue from column arrays.
fn bars_from(ts: &PyReadonlyArray1<'_, i64>, cols: [&PyReadonlyArray1<'_, f64>; 6]) -> Result<Vec<Bar>, LiqError> {
    let ts = ts.as_slice().map_err(|_| LiqError::Array("ts_ms must be contiguous".into()))?;
    let c: Vec<&[f64]> = cols
        .iter()
        .map(|a| a.as_slice().map_err(|_| LiqError::Array("bar columns must be contiguous".into())))
        .collect::<Result<_, _>>()?;
    let n = ts.len();
    if let Some(bad) = c.iter().position(|col| col.len() != n) {
        let names = ["open", "high", "low", "close", "oi_close_usd", "taker_net_base"];
        return Err(LiqError::Array(format!("{} has {} rows but ts_ms has {n}", names[bad], c[bad].len())));
    }
    Ok((0..n)
        .map(|i| Bar {
            ts_ms: ts[i],
            open: c[0][i],
            high: c[1][i],
            low: c[2][i],
            close: c[3][i],
            oi_usd: c[4][i],
            taker_net_base: c[5][i],
        })
        .collect())
}

/// Per-bar (price, volume) lists from flat arrays and row offsets.
fn profile_from(p: &ProfileArrays<'_>) -> Result<model::Profiles, LiqError> {
    let (price, vol, off) = (p.0.as_slice(), p.1.as_slice(), p.2.as_slice());
    let (Ok(price), Ok(vol), Ok(off)) = (price, vol, off) else {
        return Err(LiqError::Array("profile arrays must be contiguous".into()));
    };
    if price.len() != vol.len() {
        return Err(LiqError::Array(format!(
            "profile prices ({}) and volumes ({}) differ in length",
            price.len(),
            vol.len()
        )));
    }
    let mut out = Vec::with_capacity(off.len().saturating_sub(1));
    for w in off.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a < 0 || b < a || b as usize > price.len() {
            return Err(LiqError::Array(format!("profile offsets must be non-decreasing within 0..={}", price.len())));
        }
        out.push((a as usize..b as usize).map(|i| (price[i], vol[i])).collect());
    }
    Ok(out)
}

/// The estimation model: per-venue position books driven by bars.
#[pyclass(module = "liqfast._core", name = "Model")]
pub struct PyModel {
    inner: Model,
}

#[pymethods]
impl PyModel {
    #[new]
    fn new(py: Python<'_>, params: &Bound<'_, PyDict>) -> PyResult<Self> {
        let p = params_from(params).map_err(|e| to_pyerr(py, e))?;
        Model::new(p).map(|inner| PyModel { inner }).map_err(|e| to_pyerr(py, e))
    }

    /// Add a venue (its formulas oldest first, with the instant each applies from); returns
    /// its index.
    fn add_venue(
        &mut self,
        py: Python<'_>,
        models: Vec<PyRef<'_, PyMarginModel>>,
        since: Vec<Option<i64>>,
        bar_ms: i64,
    ) -> PyResult<usize> {
        let ms = models.iter().map(|m| m.inner.clone()).collect();
        self.inner.add_venue(ms, since, bar_ms).map_err(|e| to_pyerr(py, e))
    }

    /// Number of venues.
    fn venue_count(&self) -> usize {
        self.inner.venues.len()
    }

    /// (leverage, weight) of every band.
    fn leverage_points(&self) -> Vec<(f64, f64)> {
        self.inner.points.clone()
    }

    /// Advance venue `venue` by one bar; returns (long_usd, short_usd, gap, warmup) in model
    /// notional (before any venue scale). `profile`: the bar's [(price, volume)] for the
    /// profile entry rule.
    #[pyo3(signature = (venue, ts_ms, open, high, low, close, oi_usd, taker_net_base=None, profile=None))]
    fn step(
        &mut self,
        py: Python<'_>,
        venue: usize,
        ts_ms: &Bound<'_, PyAny>,
        open: &Bound<'_, PyAny>,
        high: &Bound<'_, PyAny>,
        low: &Bound<'_, PyAny>,
        close: &Bound<'_, PyAny>,
        oi_usd: &Bound<'_, PyAny>,
        taker_net_base: Option<&Bound<'_, PyAny>>,
        profile: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, f64, bool, bool)> {
        let bar = Bar {
            ts_ms: int_arg(py, "ts_ms", ts_ms)?,
            open: float_arg(py, "open", open)?,
            high: float_arg(py, "high", high)?,
            low: float_arg(py, "low", low)?,
            close: float_arg(py, "close", close)?,
            oi_usd: float_arg(py, "oi_close_usd", oi_usd)?,
            taker_net_base: taker_net_base.map_or(Ok(f64::NAN), |t| float_arg(py, "taker_net_base", t))?,
        };
        let profile: Option<Vec<(f64, f64)>> = profile
            .map(|p| {
                p.extract().map_err(|_| {
                    to_pyerr(
                        py,
                        invalid(format!("profile must be a list of (price, volume) pairs, got {}", type_name(p))),
                    )
                })
            })
            .transpose()?;
        let o = self.inner.step(venue, &bar, 0, profile.as_deref(), |_, _, _| {}).map_err(|e| to_pyerr(py, e))?;
        Ok((o.long_usd, o.short_usd, o.gap, o.warmup))
    }

    /// Replay bar series (one `(ts_ms, open, high, low, close, oi_close_usd, taker_net_base)`
    /// tuple of arrays per venue) merged on time. Returns a dict of arrays: ts_ms, long_usd,
    /// short_usd, gap, warmup and, with `grid`, heatmap_long/heatmap_short (columns × buckets)
    /// and heatmap_at (timeline index of each column's last bar), one column per
    /// `resolution_ms`.
    /// `profiles`: per venue None or (price, volume, offsets) arrays: bar i's profile is
    /// rows offsets[i]..offsets[i+1].
    #[pyo3(signature = (bars, scale, grid=None, resolution_ms=3_600_000, lev_lo=0.0, lev_hi=f64::INFINITY, profiles=None))]
    fn replay<'py>(
        &mut self,
        py: Python<'py>,
        bars: Vec<BarArrays<'py>>,
        scale: Vec<f64>,
        grid: Option<PyRef<'py, PyPriceGrid>>,
        resolution_ms: i64,
        lev_lo: f64,
        lev_hi: f64,
        profiles: Option<Vec<Option<ProfileArrays<'py>>>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        check_leverage_range(lev_lo, lev_hi).map_err(|e| to_pyerr(py, e))?;
        let profiles: Option<Vec<Option<model::Profiles>>> = profiles
            .map(|ps| ps.iter().map(|p| p.as_ref().map(profile_from).transpose()).collect::<Result<_, _>>())
            .transpose()
            .map_err(|e| to_pyerr(py, e))?;
        let series: Vec<Vec<Bar>> = bars
            .iter()
            .map(|(t, o, h, l, c, oi, tk)| bars_from(t, [o, h, l, c, oi, tk]))
            .collect::<Result<_, _>>()
            .map_err(|e| to_pyerr(py, e))?;
        let grid: Option<PriceGrid> = grid.map(|g| g.inner);
        let model = &mut self.inner;
        let (rep, heat) = enter(py, true, move || {
            let mut rec = grid.map(|g| HeatmapRecorder {
                grid: g,
                resolution_ms,
                lev_lo,
                lev_hi,
                long: vec![],
                short: vec![],
                at: vec![],
            });
            let rep = model::replay(model, &series, &scale, rec.as_mut(), profiles.as_deref())?;
            Ok((rep, rec))
        })?;
        let d = PyDict::new(py);
        d.set_item("ts_ms", rep.ts.into_pyarray(py))?;
        d.set_item("long_usd", rep.long_usd.into_pyarray(py))?;
        d.set_item("short_usd", rep.short_usd.into_pyarray(py))?;
        d.set_item("gap", rep.gap.into_pyarray(py))?;
        d.set_item("warmup", rep.warmup.into_pyarray(py))?;
        if let Some(h) = heat {
            let cols = h.at.len();
            let n = h.grid.len();
            d.set_item("heatmap_long", h.long.into_pyarray(py).reshape([cols, n])?)?;
            d.set_item("heatmap_short", h.short.into_pyarray(py).reshape([cols, n])?)?;
            d.set_item("heatmap_at", h.at.into_iter().map(|x| x as i64).collect::<Vec<_>>().into_pyarray(py))?;
        }
        Ok(d)
    }

    /// Exact live maps of venue `venue` (or all venues, each times `scale[v]`) on `grid`, one
    /// row per leverage band `(low, high)` (default: one band of every leverage), with a side
    /// filter ("long", "short" or None); arrays are `bands × buckets`. All bands come from one
    /// scan of each book, a cohort in the first band that holds it.
    #[pyo3(signature = (grid, scale, venue=None, side=None, bands=None))]
    fn snapshot<'py>(
        &self,
        py: Python<'py>,
        grid: PyRef<'py, PyPriceGrid>,
        scale: Vec<f64>,
        venue: Option<usize>,
        side: Option<&Bound<'py, PyAny>>,
        bands: Option<Vec<(f64, f64)>>,
    ) -> PyResult<SideRows<'py>> {
        let side = side.map(|s| side_arg(py, s, "'long', 'short' or None")).transpose()?;
        let bands = bands.unwrap_or_else(|| vec![(0.0, f64::INFINITY)]);
        if bands.is_empty() {
            return Err(to_pyerr(py, invalid("bands must not be empty".into())));
        }
        for &(lo, hi) in &bands {
            check_leverage_range(lo, hi).map_err(|e| to_pyerr(py, e))?;
        }
        if scale.len() != self.inner.venues.len() {
            return Err(to_pyerr(
                py,
                invalid(format!("{} scales for {} venues", scale.len(), self.inner.venues.len())),
            ));
        }
        let g = grid.inner;
        let size = g.len() * bands.len();
        let (mut long, mut short) = (vec![0.0; size], vec![0.0; size]);
        let (mut l, mut s) = (vec![0.0; size], vec![0.0; size]);
        for (v, vb) in self.inner.venues.iter().enumerate() {
            if venue.is_some_and(|want| want != v) {
                continue;
            }
            vb.book.snapshot_bands(&g, side, &bands, &mut l, &mut s).map_err(|e| to_pyerr(py, e))?;
            for j in 0..size {
                long[j] += l[j] * scale[v];
                short[j] += s[j] * scale[v];
            }
        }
        let shape = [bands.len(), g.len()];
        Ok((long.into_pyarray(py).reshape(shape)?, short.into_pyarray(py).reshape(shape)?))
    }

    /// A venue's realized liquidation of `usd` at `price` removes matching mass near it
    /// (within `tolerance` of the price, default 0.2 %).
    #[pyo3(signature = (venue, side, price, usd, tolerance=None))]
    fn evidence(
        &mut self,
        py: Python<'_>,
        venue: usize,
        side: &Bound<'_, PyAny>,
        price: &Bound<'_, PyAny>,
        usd: &Bound<'_, PyAny>,
        tolerance: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let s = side_arg(py, side, "'long' or 'short'")?;
        let (price, usd) = (float_arg(py, "price", price)?, float_arg(py, "usd", usd)?);
        let tolerance = tolerance.map_or(Ok(0.002), |t| float_arg(py, "tolerance", t))?;
        let vb = self.inner.venues.get_mut(venue).ok_or_else(|| to_pyerr(py, invalid(format!("no venue {venue}"))))?;
        vb.book.evidence(s, price, usd, tolerance).map_err(|e| to_pyerr(py, e))
    }

    /// Live USD per side of a venue: (long, short).
    fn side_usd(&self, py: Python<'_>, venue: usize) -> PyResult<(f64, f64)> {
        let vb = self.inner.venues.get(venue).ok_or_else(|| to_pyerr(py, invalid(format!("no venue {venue}"))))?;
        Ok((vb.book.side_usd(LONG), vb.book.side_usd(SHORT)))
    }

    /// Number of live cohorts of a venue.
    fn cohort_count(&self, py: Python<'_>, venue: usize) -> PyResult<usize> {
        let vb = self.inner.venues.get(venue).ok_or_else(|| to_pyerr(py, invalid(format!("no venue {venue}"))))?;
        Ok(vb.book.len())
    }

    /// Live cohorts of a venue as arrays: side, entry, usd, leverage, liq, open_ms, weight.
    fn cohorts<'py>(&self, py: Python<'py>, venue: usize) -> PyResult<Bound<'py, PyDict>> {
        let vb = self.inner.venues.get(venue).ok_or_else(|| to_pyerr(py, invalid(format!("no venue {venue}"))))?;
        let b = &vb.book;
        let cs: Vec<_> = b.cohorts().collect();
        let d = PyDict::new(py);
        d.set_item("side", cs.iter().map(|c| c.side).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("entry", cs.iter().map(|c| c.entry).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("usd", cs.iter().map(|c| b.usd(c)).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("leverage", cs.iter().map(|c| c.leverage).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("liq", cs.iter().map(|c| c.liq).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("open_ms", cs.iter().map(|c| c.open_ms).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("weight", cs.iter().map(|c| c.weight).collect::<Vec<_>>().into_pyarray(py))?;
        Ok(d)
    }

    /// Cohorts a venue refused (margin below maintenance at the assumed position size).
    fn rejected(&self, py: Python<'_>, venue: usize) -> PyResult<u64> {
        let vb = self.inner.venues.get(venue).ok_or_else(|| to_pyerr(py, invalid(format!("no venue {venue}"))))?;
        Ok(vb.rejected)
    }

    /// Everything as bytes; `Model.restore` rebuilds it bit for bit.
    fn checkpoint<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.checkpoint())
    }

    #[staticmethod]
    fn restore(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Model::restore(data).map(|inner| PyModel { inner }).map_err(|e| to_pyerr(py, e))
    }
}

/// Validate bar columns without running a model (first problem raises InvalidBarsError).
#[pyfunction]
#[pyo3(name = "check_bars")]
fn py_check_bars(
    py: Python<'_>,
    ts_ms: &Bound<'_, PyAny>,
    open: &Bound<'_, PyAny>,
    high: &Bound<'_, PyAny>,
    low: &Bound<'_, PyAny>,
    close: &Bound<'_, PyAny>,
    oi_close_usd: &Bound<'_, PyAny>,
    taker_net_base: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let ts = array::<i64>("ts_ms", "int64", ts_ms)?;
    let cols = [
        array::<f64>("open", "float64", open)?,
        array::<f64>("high", "float64", high)?,
        array::<f64>("low", "float64", low)?,
        array::<f64>("close", "float64", close)?,
        array::<f64>("oi_close_usd", "float64", oi_close_usd)?,
        array::<f64>("taker_net_base", "float64", taker_net_base)?,
    ];
    let bars =
        bars_from(&ts, [&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]]).map_err(|e| to_pyerr(py, e))?;
    for (i, b) in bars.iter().enumerate() {
        model::check_bar(b, i).map_err(|e| to_pyerr(py, e))?;
        if i > 0 && b.ts_ms <= bars[i - 1].ts_ms {
            let what = if b.ts_ms == bars[i - 1].ts_ms { "duplicate" } else { "out of order" };
            return Err(to_pyerr(
                py,
                LiqError::Bars {
                    index: Some(i),
                    message: format!("timestamps must increase: {} follows {} ({what})", b.ts_ms, bars[i - 1].ts_ms),
                },
            ));
        }
    }
    Ok(())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(py_check_bars, m)?)?;
    Ok(())
}
