//! Python boundary of the market simulator (`_core.Simulator`).

use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::LiqError;
use crate::py::{PyMarginModel, PyPriceGrid, enter, to_pyerr};
use crate::sim::{SimConfig, Simulator};

fn config_from(d: &Bound<'_, PyDict>) -> Result<SimConfig, LiqError> {
    let mut c = SimConfig::default();
    for (k, v) in d.iter() {
        let key: String = k.extract().map_err(|_| LiqError::Invalid("config names must be strings".into()))?;
        if crate::py::is_bool(&v) {
            return Err(LiqError::Invalid(format!("{key} must not be a bool, got {v}")));
        }
        let num =
            |v: &Bound<'_, PyAny>| v.extract::<f64>().map_err(|_| LiqError::Invalid(format!("{key} must be a number")));
        let int =
            |v: &Bound<'_, PyAny>| v.extract::<i64>().map_err(|_| LiqError::Invalid(format!("{key} must be an int")));
        match key.as_str() {
            "seed" => {
                c.seed = v.extract::<u64>().map_err(|_| LiqError::Invalid("seed must be a non-negative int".into()))?;
            }
            "start_ms" => c.start_ms = int(&v)?,
            "step_ms" => c.step_ms = int(&v)?,
            "start_price" => c.start_price = num(&v)?,
            "vol_per_sqrt_hour" => c.vol_per_sqrt_hour = num(&v)?,
            "jumps_per_hour" => c.jumps_per_hour = num(&v)?,
            "jump_size" => c.jump_size = num(&v)?,
            "wick" => c.wick = num(&v)?,
            "impact" => c.impact = num(&v)?,
            "start_oi_usd" => c.start_oi_usd = num(&v)?,
            "oi_drift_per_hour" => c.oi_drift_per_hour = num(&v)?,
            "oi_vol_per_sqrt_hour" => c.oi_vol_per_sqrt_hour = num(&v)?,
            "leverage_mix" => {
                c.leverage_mix = crate::py::number_pairs("leverage_mix", &v).map_err(LiqError::Invalid)?;
            }
            "leverage_spread" => c.leverage_spread = num(&v)?,
            "turnover_per_hour" => c.turnover_per_hour = num(&v)?,
            "turnover_leverage_exponent" => c.turnover_leverage_exponent = num(&v)?,
            "size_median_usd" => c.size_median_usd = num(&v)?,
            "size_sigma" => c.size_sigma = num(&v)?,
            "trades_per_step" => {
                c.trades_per_step =
                    v.extract::<usize>().map_err(|_| LiqError::Invalid("trades_per_step must be an int".into()))?;
            }
            other => return Err(LiqError::Invalid(format!("unknown simulator setting {other:?}"))),
        }
    }
    c.validate()?;
    Ok(c)
}

/// Seeded market simulator with known positions.
#[pyclass(module = "liqfast._core", name = "Simulator")]
pub struct PySimulator {
    inner: Simulator,
}

#[pymethods]
impl PySimulator {
    #[new]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyDict>,
        models: Vec<PyRef<'_, PyMarginModel>>,
        weights: Vec<f64>,
    ) -> PyResult<Self> {
        let cfg = config_from(config).map_err(|e| to_pyerr(py, e))?;
        if models.len() != weights.len() {
            return Err(to_pyerr(py, LiqError::Invalid("one weight per venue model is needed".into())));
        }
        let venues = models.iter().map(|m| m.inner.clone()).zip(weights).collect();
        Simulator::new(cfg, venues).map(|inner| PySimulator { inner }).map_err(|e| to_pyerr(py, e))
    }

    #[getter]
    fn price(&self) -> f64 {
        self.inner.price()
    }

    /// One step: dict with ts_ms, open, high, low, close, oi_usd (list per venue) and
    /// trades / liquidations as lists of tuples (venue, price, qty|usd, side).
    fn step<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.inner.step();
        let d = PyDict::new(py);
        d.set_item("ts_ms", st.ts_ms)?;
        d.set_item("open", st.open)?;
        d.set_item("high", st.high)?;
        d.set_item("low", st.low)?;
        d.set_item("close", st.close)?;
        d.set_item("oi_usd", st.oi_usd)?;
        let trades: Vec<(usize, f64, f64, i8)> = st.trades.iter().map(|t| (t.venue, t.price, t.qty, t.side)).collect();
        d.set_item("trades", PyList::new(py, trades)?)?;
        let liqs: Vec<(usize, f64, f64, i8)> =
            st.liquidations.iter().map(|l| (l.venue, l.price, l.usd, l.side)).collect();
        d.set_item("liquidations", PyList::new(py, liqs)?)?;
        Ok(d)
    }

    /// Run bars; returns a dict: "venues" (list of dicts of arrays) and, with `grid`,
    /// "snapshot_at", "true_long", "true_short" (snapshots × buckets).
    #[pyo3(signature = (n_bars, steps_per_bar, grid=None, every=1))]
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        n_bars: usize,
        steps_per_bar: usize,
        grid: Option<PyRef<'py, PyPriceGrid>>,
        every: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let g = grid.map(|g| g.inner);
        let sim = &mut self.inner;
        let run = enter(py, true, move || sim.run(n_bars, steps_per_bar, g.as_ref(), every))?;
        let d = PyDict::new(py);
        let venues = PyList::empty(py);
        for vb in run.venues {
            let v = PyDict::new(py);
            v.set_item("ts_ms", vb.ts_ms.into_pyarray(py))?;
            v.set_item("open", vb.open.into_pyarray(py))?;
            v.set_item("high", vb.high.into_pyarray(py))?;
            v.set_item("low", vb.low.into_pyarray(py))?;
            v.set_item("close", vb.close.into_pyarray(py))?;
            v.set_item("oi_close_usd", vb.oi_usd.into_pyarray(py))?;
            v.set_item("taker_net_base", vb.taker_net_base.into_pyarray(py))?;
            v.set_item("liq_long_usd", vb.liq_long_usd.into_pyarray(py))?;
            v.set_item("liq_short_usd", vb.liq_short_usd.into_pyarray(py))?;
            v.set_item("profile_price", vb.profile_price.into_pyarray(py))?;
            v.set_item("profile_volume", vb.profile_volume.into_pyarray(py))?;
            v.set_item("profile_offsets", vb.profile_offsets.into_pyarray(py))?;
            venues.append(v)?;
        }
        d.set_item("venues", venues)?;
        if let Some(g) = g {
            let snaps = run.snapshot_at.len();
            d.set_item(
                "snapshot_at",
                run.snapshot_at.into_iter().map(|x| x as i64).collect::<Vec<_>>().into_pyarray(py),
            )?;
            d.set_item("true_long", run.true_long.into_pyarray(py).reshape([snaps, g.len()])?)?;
            d.set_item("true_short", run.true_short.into_pyarray(py).reshape([snaps, g.len()])?)?;
        }
        Ok(d)
    }

    /// The true liquidation map now (all venues, or one): (long, short) USD per bucket.
    #[pyo3(signature = (grid, venue=None))]
    fn true_map<'py>(
        &self,
        py: Python<'py>,
        grid: PyRef<'py, PyPriceGrid>,
        venue: Option<usize>,
    ) -> PyResult<crate::py_model::SidePair<'py>> {
        let g = grid.inner;
        let n = g.len();
        let (mut long, mut short) = (vec![0.0; n], vec![0.0; n]);
        let (mut l, mut s) = (vec![0.0; n], vec![0.0; n]);
        for (v, book) in self.inner.books.iter().enumerate() {
            if venue.is_some_and(|w| w != v) {
                continue;
            }
            book.snapshot(&g, None, 0.0, f64::INFINITY, &mut l, &mut s).map_err(|e| to_pyerr(py, e))?;
            for j in 0..n {
                long[j] += l[j];
                short[j] += s[j];
            }
        }
        Ok((long.into_pyarray(py), short.into_pyarray(py)))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySimulator>()
}
