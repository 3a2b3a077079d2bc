//! Python boundary of the fast frame decoder (`_core.FrameDecoder`): the hot WebSocket
//! channels decoded and normalised in Rust (`decode.rs`), emitted as the very
//! `liqfast.events.Trade` / `Liquidation` objects the reference normalisers build.
//!
//! One decoder belongs to one normaliser (its *owner*, held weakly: the owner holds the
//! decoder) and reads the owner's state where a frame needs it, so the reference path and the
//! fast path share one state: `instruments` (contract sizes, identity-checked per symbol so
//! replaced entries are seen), `symbols` (the liquidation filter), `liq_amount` (Bitget),
//! `_seen_liqs` (a `SeenSet`, below) and `duplicates` (OKX re-sends), `last_prices` (Binance
//! raw trades). The frames
//! and events it handles through `on_message` are counted in the decoder (`messages`,
//! `events`), which the owner's `Counters` add in. A frame the Rust decoder declines goes to
//! the owner's reference path (`fallback`), which also counts garbage; a Rust panic is
//! caught, counted in `panics` and handled the same way, so nothing here can take a feed
//! down.
//!
//! The work per frame is well under a microsecond, so it runs attached (detaching would cost
//! more than it frees); `binance_agg_trades` parses megabytes of CSV and detaches.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyWeakrefReference};
use pyo3::{PyTraverseError, intern};

use crate::decode::{self, Contract, Event, OWN_VENUE, OkxPos, PosSide, Proto, Reject, Resolve, Side, TradeId};
use crate::seen::{Identity, SeenSet, TS_RANGE};

mod exc {
    pyo3::import_exception!(liqfast.errors, UnknownVenueError);
    pyo3::import_exception!(liqfast.errors, InvalidInputError);
}

/// Symbols cached per decoder before the cache starts over (a venue sending garbage symbols
/// must not grow it without bound).
const MAX_SYMBOLS: usize = 4_096;

/// One symbol: its interned Python string and, once looked up, its instrument.
struct Sym {
    key: Box<[u8]>,
    name: Py<PyString>,
    /// The instrument object the contract fields were read from; re-read when the owner's
    /// dict holds another object for the symbol.
    inst: Option<Py<PyAny>>,
    venue: Option<Py<PyString>>,
    linear: bool,
    size: f64,
}

/// Python objects every frame needs, created once.
struct Consts {
    trade: Py<PyAny>,
    liquidation: Py<PyAny>,
    buy: Py<PyString>,
    sell: Py<PyString>,
    long: Py<PyString>,
    short: Py<PyString>,
    /// Completeness and price-kind codes (`decode::Completeness::code`, `PriceKind::code`).
    codes: Vec<(&'static str, Py<PyString>)>,
}

impl Consts {
    fn code<'py>(&self, py: Python<'py>, code: &'static str) -> Bound<'py, PyString> {
        match self.codes.iter().find(|(c, _)| *c == code) {
            Some((_, s)) => s.bind(py).clone(),
            None => PyString::intern(py, code),
        }
    }
}

/// The symbol table: `index` maps symbol bytes to `syms` entries (an event's venue handle
/// is an entry index).
#[derive(Default)]
struct Symbols {
    index: HashMap<Box<[u8]>, u32>,
    syms: Vec<Sym>,
    last: u32,
}

impl Symbols {
    fn get(&mut self, py: Python<'_>, key: &[u8]) -> u32 {
        if let Some(s) = self.syms.get(self.last as usize)
            && *s.key == *key
        {
            return self.last;
        }
        let i = if let Some(&i) = self.index.get(key) {
            i
        } else {
            let i = self.syms.len() as u32;
            let name = PyString::intern(py, std::str::from_utf8(key).unwrap_or("")).unbind();
            self.syms.push(Sym { key: key.into(), name, inst: None, venue: None, linear: true, size: 0.0 });
            self.index.insert(key.into(), i);
            i
        };
        self.last = i;
        i
    }

    fn clear(&mut self) {
        self.index.clear();
        self.syms.clear();
        self.last = 0;
    }
}

/// The owning normaliser (None without one: then no instruments, no filter). Attributes
/// are read when a frame needs them, so rebinding one is seen at once.
struct Owner<'py> {
    obj: Bound<'py, PyAny>,
}

impl<'py> Owner<'py> {
    fn get(&self, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        self.obj.getattr(name)
    }

    fn set(&self, name: &Bound<'py, PyString>, value: Bound<'py, PyAny>) -> PyResult<()> {
        self.obj.setattr(name, value)
    }
}

/// `decode::Resolve` over the owner's Python state. A Python error while resolving (an
/// owner without the expected attributes) declines the frame.
struct PyResolve<'a, 'py> {
    py: Python<'py>,
    owner: &'a Owner<'py>,
    symbols: &'a mut Symbols,
    instruments: Option<Bound<'py, PyDict>>,
}

impl PyResolve<'_, '_> {
    fn lookup(&mut self, symbol: &str) -> PyResult<Option<Contract>> {
        let py = self.py;
        let i = self.symbols.get(py, symbol.as_bytes());
        if self.instruments.is_none() {
            self.instruments = Some(self.owner.get(intern!(py, "instruments"))?.cast_into::<PyDict>()?);
        }
        let Some(dict) = &self.instruments else { return Ok(None) };
        let e = &mut self.symbols.syms[i as usize];
        let Some(inst) = dict.get_item(e.name.bind(py))? else { return Ok(None) };
        if !e.inst.as_ref().is_some_and(|c| c.is(&inst)) {
            let kind = inst.getattr(intern!(py, "kind"))?;
            let linear = match kind.cast::<PyString>()?.to_str()? {
                "linear" => true,
                "inverse" => false,
                _ => return Ok(None),
            };
            e.size = inst.getattr(intern!(py, "contract_size"))?.extract()?;
            e.venue = Some(inst.getattr(intern!(py, "venue"))?.cast_into::<PyString>()?.unbind());
            e.linear = linear;
            e.inst = Some(inst.unbind());
        }
        Ok(Some(Contract { handle: i, linear: e.linear, size: e.size }))
    }
}

impl Resolve for PyResolve<'_, '_> {
    fn contract(&mut self, symbol: &str) -> Option<Contract> {
        self.lookup(symbol).ok().flatten()
    }

    fn wants_liquidations(&mut self, symbol: &str) -> bool {
        let py = self.py;
        let Ok(only) = self.owner.get(intern!(py, "symbols")) else { return true };
        if only.is_none() {
            return true;
        }
        let i = self.symbols.get(py, symbol.as_bytes());
        only.contains(self.symbols.syms[i as usize].name.bind(py)).unwrap_or(true)
    }

    fn bitget_amount_in_base(&mut self) -> bool {
        // as the reference: "quote" means quote currency, anything else base coin
        let py = self.py;
        self.owner.get(intern!(py, "liq_amount")).and_then(|v| v.extract::<String>()).is_ok_and(|v| v != "quote")
    }
}

/// Fast decoder of one normaliser's hot channels. See the module documentation.
#[pyclass(module = "liqfast._core", name = "FrameDecoder")]
pub struct PyFrameDecoder {
    proto: Proto,
    venue: Py<PyString>,
    /// Weak: the owner holds the decoder (its `on_message` is the decoder's), and a strong
    /// reference back would make every normaliser a reference cycle.
    owner: Option<Py<PyWeakrefReference>>,
    fallback: Option<Py<PyAny>>,
    consts: Consts,
    symbols: Symbols,
    decoded: Vec<Event>,
    /// Frames decoded here (by any method).
    #[pyo3(get)]
    handled: u64,
    /// Frames :meth:`on_message` / :meth:`feed_many` decoded here, and the events they
    /// gave: the owner's `Counters` add these to its own (declined frames are counted by
    /// the reference path).
    #[pyo3(get)]
    messages: u64,
    #[pyo3(get)]
    events: u64,
    /// Frames handed to the reference path (other channels, control frames, garbage...).
    #[pyo3(get)]
    declined: u64,
    /// Rust panics caught (a bug: the frame went to the reference path).
    #[pyo3(get)]
    panics: u64,
    /// Why the last declined frame was declined: "malformed", "unsupported" or "error".
    #[pyo3(get)]
    last_reject: &'static str,
}

/// What decoding one frame gave.
enum Outcome {
    /// Events appended to `out` (a data frame).
    Done(usize),
    Declined,
}

impl PyFrameDecoder {
    /// Decode `data` and append its events to `out` (nothing appended when declined).
    fn run(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        recv: &Bound<'_, PyAny>,
        out: &Bound<'_, PyList>,
    ) -> Outcome {
        let obj = match &self.owner {
            None => py.None().into_bound(py),
            Some(w) => match w.bind(py).upgrade() {
                Some(o) => o,
                None => return self.decline("error"), // owner gone: nothing to normalise for
            },
        };
        let owner = Owner { obj };
        let bytes: &[u8] = if let Ok(b) = data.cast::<PyBytes>() {
            b.as_bytes()
        } else if let Ok(s) = data.cast::<PyString>() {
            match s.to_str() {
                Ok(s) => s.as_bytes(),
                Err(_) => return self.decline("unsupported"),
            }
        } else {
            return self.decline("unsupported");
        };
        if self.symbols.syms.len() > MAX_SYMBOLS {
            self.symbols.clear();
        }
        self.decoded.clear();
        let (proto, symbols, decoded) = (self.proto, &mut self.symbols, &mut self.decoded);
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            let mut res = PyResolve { py, owner: &owner, symbols, instruments: None };
            decode::decode(proto, bytes, &mut res, decoded)
        }));
        match decoded {
            Ok(Ok(())) => {}
            Ok(Err(Reject::Malformed)) => return self.decline("malformed"),
            Ok(Err(Reject::Unsupported)) => return self.decline("unsupported"),
            Err(_) => {
                self.panics += 1;
                return self.decline("error");
            }
        }
        let n = out.len();
        if let Ok(k) = self.emit(py, bytes, recv, &owner, out) {
            self.handled += 1;
            Outcome::Done(k)
        } else {
            // only an owner without the attributes of a normaliser gets here (or no memory):
            // the reference path redoes the frame
            let _ = out.del_slice(n, out.len());
            self.decline("error")
        }
    }

    /// The fallback and the owner to call it with (None once the owner is gone).
    fn fallback_call<'py>(&self, py: Python<'py>) -> Option<(Py<PyAny>, Bound<'py, PyAny>)> {
        let f = self.fallback.as_ref()?.clone_ref(py);
        let owner = match &self.owner {
            Some(w) => w.bind(py).upgrade()?,
            None => py.None().into_bound(py),
        };
        Some((f, owner))
    }

    fn decline(&mut self, why: &'static str) -> Outcome {
        self.declined += 1;
        self.last_reject = why;
        Outcome::Declined
    }

    fn venue_of<'py>(&self, py: Python<'py>, handle: u32) -> &Bound<'py, PyString> {
        if handle != OWN_VENUE
            && let Some(Some(v)) = self.symbols.syms.get(handle as usize).map(|s| s.venue.as_ref())
        {
            return v.bind(py);
        }
        self.venue.bind(py)
    }

    /// Build the events of the decoded frame into `out`; returns how many.
    fn emit(
        &mut self,
        py: Python<'_>,
        frame: &[u8],
        recv: &Bound<'_, PyAny>,
        owner: &Owner<'_>,
        out: &Bound<'_, PyList>,
    ) -> PyResult<usize> {
        let mut k = 0;
        // the owner's `_seen_liqs`, read once per frame (only OKX liquidations need it)
        let mut seen: Option<Bound<'_, PySeenSet>> = None;
        for i in 0..self.decoded.len() {
            let ev = self.decoded[i];
            match ev {
                Event::Trade { venue, symbol, ts, price, base, usd, side, id } => {
                    let s = self.symbols.get(py, symbol.bytes(frame));
                    let c = &self.consts;
                    let side = if side == Side::Buy { &c.buy } else { &c.sell };
                    let id = match id {
                        TradeId::None => py.None().into_bound(py),
                        TradeId::Int(v) => v.into_pyobject(py)?.into_any(),
                        TradeId::Str(sp) => PyString::new(py, sp.text(frame)).into_any(),
                    };
                    let args = (
                        self.venue_of(py, venue),
                        self.symbols.syms[s as usize].name.bind(py),
                        ts,
                        recv,
                        price,
                        base,
                        usd,
                        side.bind(py),
                        id,
                    );
                    out.append(c.trade.bind(py).call1(args)?)?;
                }
                Event::Liquidation { venue, symbol, ts, side, price, base, usd, completeness, price_kind, okx } => {
                    if let Some(key) = okx {
                        let set = match seen {
                            Some(ref set) => set,
                            None => seen.insert(owner.get(intern!(py, "_seen_liqs"))?.cast_into::<PySeenSet>()?),
                        };
                        let id = Identity {
                            symbol: symbol.text(frame),
                            ts: ts.into(),
                            order_sell: key.order_sell,
                            pos: key.pos,
                            sz: key.sz,
                            bk_px: key.bk_px,
                        };
                        if set.try_borrow_mut()?.seen.check_add(&id) {
                            let attr = intern!(py, "duplicates");
                            let n: i64 = owner.get(attr)?.extract()?;
                            owner.set(attr, (n + 1).into_pyobject(py)?.into_any())?;
                            continue;
                        }
                    }
                    let s = self.symbols.get(py, symbol.bytes(frame));
                    let c = &self.consts;
                    let name = self.symbols.syms[s as usize].name.bind(py);
                    let side = if side == PosSide::Long { &c.long } else { &c.short };
                    let args = (
                        self.venue_of(py, venue),
                        name,
                        ts,
                        recv,
                        side.bind(py),
                        price,
                        base,
                        usd,
                        c.code(py, completeness.code()),
                        c.code(py, price_kind.code()),
                    );
                    out.append(c.liquidation.bind(py).call1(args)?)?;
                }
                Event::LastPrice { symbol, price } => {
                    let s = self.symbols.get(py, symbol.bytes(frame));
                    let prices = owner.get(pyo3::intern!(py, "last_prices"))?.cast_into::<PyDict>()?;
                    prices.set_item(self.symbols.syms[s as usize].name.bind(py), price)?;
                    continue;
                }
            }
            k += 1;
        }
        Ok(k)
    }
}

#[pymethods]
impl PyFrameDecoder {
    /// FrameDecoder(owner, venue, fallback=None)
    /// --
    ///
    /// A fast decoder for the normaliser `owner` of `venue` (a venue id such as
    /// "binance-usdm"; "okx-linear" and "kucoin-linear" cover both of their venues).
    /// `fallback(owner, data, recv_ms, ctx, out) -> bool` is the reference `on_message`
    /// (typically the normaliser class's own, unbound) that :meth:`on_message` hands
    /// declined frames to. The decoder keeps only a weak reference to `owner`.
    #[new]
    #[pyo3(signature = (owner, venue, fallback=None))]
    fn py_new(py: Python<'_>, owner: Bound<'_, PyAny>, venue: &str, fallback: Option<Py<PyAny>>) -> PyResult<Self> {
        let proto = Proto::from_venue(venue)
            .ok_or_else(|| exc::UnknownVenueError::new_err(format!("no fast decoder for venue {venue:?}")))?;
        let events = py.import(pyo3::intern!(py, "liqfast.events"))?;
        let s = |t: &str| PyString::intern(py, t).unbind();
        let consts = Consts {
            trade: events.getattr("Trade")?.unbind(),
            liquidation: events.getattr("Liquidation")?.unbind(),
            buy: s("buy"),
            sell: s("sell"),
            long: s("long"),
            short: s("short"),
            codes: [
                "snapshot_1s",
                "all_500ms",
                "partial",
                "aggregated",
                "batched_1s",
                "avg_fill",
                "order",
                "bankruptcy",
            ]
            .into_iter()
            .map(|c| (c, s(c)))
            .collect(),
        };
        Ok(PyFrameDecoder {
            proto,
            venue: PyString::intern(py, venue).unbind(),
            owner: if owner.is_none() { None } else { Some(PyWeakrefReference::new(&owner)?.unbind()) },
            fallback,
            consts,
            symbols: Symbols::default(),
            decoded: Vec::new(),
            handled: 0,
            messages: 0,
            events: 0,
            declined: 0,
            panics: 0,
            last_reject: "",
        })
    }

    /// The venue id this decoder was made for.
    #[getter]
    fn venue<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        self.venue.bind(py).clone()
    }

    /// Decode one frame (bytes or str) into `out`. Returns the number of events appended,
    /// or None when the frame is declined (see :attr:`last_reject`) — then nothing was
    /// appended and no state changed. Counters of the owner are not touched.
    fn decode(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        recv_ms: &Bound<'_, PyAny>,
        out: &Bound<'_, PyList>,
    ) -> Option<usize> {
        match self.run(py, data, recv_ms, out) {
            Outcome::Done(n) => Some(n),
            Outcome::Declined => None,
        }
    }

    /// The owner's ``on_message``: decode one frame into ``out`` and count it
    /// (``messages``, ``events``); a declined frame goes to ``fallback``. Returns whether it
    /// was a data frame. Never raises for bad input.
    fn on_message<'py>(
        slf: &Bound<'py, Self>,
        data: &Bound<'py, PyAny>,
        recv_ms: &Bound<'py, PyAny>,
        ctx: &Bound<'py, PyAny>,
        out: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let fallback = {
            let mut me = slf.borrow_mut();
            if let Ok(list) = out.cast::<PyList>() {
                if let Outcome::Done(n) = me.run(py, data, recv_ms, list) {
                    me.messages += 1;
                    me.events += n as u64;
                    return Ok(pyo3::types::PyBool::new(py, true).to_owned().into_any());
                }
            }
            me.fallback_call(py)
        };
        match fallback {
            Some((f, owner)) => f.bind(py).call1((owner, data, recv_ms, ctx, out)),
            None => Ok(pyo3::types::PyBool::new(py, false).to_owned().into_any()),
        }
    }

    /// ``on_message`` over many frames (replay, backfill): ``recv_ms`` is one time for all
    /// or one per frame. Events are appended to ``out`` in frame order; declined frames go
    /// through ``fallback`` in their place. Returns the number of data frames.
    fn feed_many<'py>(
        slf: &Bound<'py, Self>,
        frames: &Bound<'py, PyList>,
        recv_ms: &Bound<'py, PyAny>,
        ctx: &Bound<'py, PyAny>,
        out: &Bound<'py, PyList>,
    ) -> PyResult<usize> {
        let py = slf.py();
        let recvs = recv_ms.cast::<PyList>().ok();
        if let Some(r) = recvs
            && r.len() != frames.len()
        {
            return Err(exc::InvalidInputError::new_err(format!(
                "{} frames but {} receive times",
                frames.len(),
                r.len()
            )));
        }
        let mut data_frames = 0;
        for (i, data) in frames.iter().enumerate() {
            let recv = match recvs {
                Some(r) => r.get_item(i)?,
                None => recv_ms.clone(),
            };
            let fallback = {
                let mut me = slf.borrow_mut();
                match me.run(py, &data, &recv, out) {
                    Outcome::Done(n) => {
                        me.messages += 1;
                        me.events += n as u64;
                        data_frames += 1;
                        continue;
                    }
                    Outcome::Declined => me.fallback_call(py),
                }
            };
            if let Some((f, owner)) = fallback
                && f.bind(py).call1((owner, &data, &recv, ctx, out))?.is_truthy()?
            {
                data_frames += 1;
            }
        }
        Ok(data_frames)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.owner)?;
        visit.call(&self.fallback)?;
        for s in &self.symbols.syms {
            visit.call(&s.inst)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.owner = None;
        self.fallback = None;
        self.symbols.clear();
    }
}

/// SeenSet(capacity)
/// --
///
/// The last ``capacity`` OKX liquidation identities ``(inst_id, ts, side, pos_side, sz,
/// bk_px)``, oldest forgotten first: how ``OkxNormalizer`` drops the liquidations OKX re-sends
/// after a (re)subscribe. Its reference path calls :meth:`check_add`; its ``FrameDecoder``
/// checks the same set natively. Equality is that of the tuples: floats by value (``-0.0``
/// is ``0.0``), a NaN equal to nothing.
#[pyclass(module = "liqfast._core", name = "SeenSet")]
pub struct PySeenSet {
    seen: SeenSet,
}

/// The wire spelling of an OKX order side (true: sell) and position side.
fn sides(side: &str, pos_side: &str) -> PyResult<(bool, OkxPos)> {
    let order_sell = match side {
        "buy" => false,
        "sell" => true,
        _ => return Err(PyValueError::new_err(format!("side must be 'buy' or 'sell', not {side:?}"))),
    };
    let pos = match pos_side {
        "long" => OkxPos::Long,
        "short" => OkxPos::Short,
        "net" => OkxPos::Net,
        _ => {
            return Err(PyValueError::new_err(format!("pos_side must be 'long', 'short' or 'net', not {pos_side:?}")));
        }
    };
    Ok((order_sell, pos))
}

/// An int argument in `range` (else ValueError, also for ints too large to convert).
fn int_in(v: &Bound<'_, PyAny>, what: &str, range: std::ops::Range<i128>) -> PyResult<i128> {
    let out_of_range = || PyValueError::new_err(format!("{what} out of range: {v}"));
    let x: i128 =
        v.extract().map_err(|e: PyErr| if e.is_instance_of::<PyOverflowError>(v.py()) { out_of_range() } else { e })?;
    if range.contains(&x) { Ok(x) } else { Err(out_of_range()) }
}

#[pymethods]
impl PySeenSet {
    #[new]
    fn py_new(capacity: &Bound<'_, PyAny>) -> PyResult<Self> {
        let capacity = int_in(capacity, "capacity (at least 1)", 1..i128::from(u32::MAX))?;
        Ok(PySeenSet { seen: SeenSet::new(capacity as usize) })
    }

    /// Whether this liquidation was among the remembered ones; if not, it is remembered now.
    fn check_add(
        &mut self,
        inst_id: &str,
        ts: &Bound<'_, PyAny>,
        side: &str,
        pos_side: &str,
        sz: f64,
        bk_px: f64,
    ) -> PyResult<bool> {
        // msgspec (the reference's decoder) gives an int64 or a uint64
        let ts = int_in(ts, "ts (an int64 or uint64)", TS_RANGE)?;
        let (order_sell, pos) = sides(side, pos_side)?;
        Ok(self.seen.check_add(&Identity { symbol: inst_id, ts, order_sell, pos, sz, bk_px }))
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.seen.capacity()
    }

    fn __len__(&self) -> usize {
        self.seen.len()
    }

    /// The remembered identities as ``(inst_id, ts, side, pos_side, sz, bk_px)``, oldest first.
    fn keys(&self) -> Vec<(&str, i128, &'static str, &'static str, f64, f64)> {
        self.seen
            .iter()
            .map(|i| {
                let pos = match i.pos {
                    OkxPos::Long => "long",
                    OkxPos::Short => "short",
                    OkxPos::Net => "net",
                };
                (i.symbol, i.ts, if i.order_sell { "sell" } else { "buy" }, pos, i.sz, i.bk_px)
            })
            .collect()
    }
}

/// binance_agg_trades(block, header_pending, venue, symbol, inverse, contract_size)
/// --
///
/// The trades of ``block`` (complete lines of a data.binance.vision ``aggTrades`` CSV) as
/// ``(exchange_ts_ms, liqfast.events.Trade)`` pairs (what the backfill parsers yield), with
/// whether the header row is still to come; None when the block is outside what the fast
/// parser handles (the caller parses the file the reference way).
#[pyfunction]
#[pyo3(name = "binance_agg_trades")]
fn py_binance_agg_trades<'py>(
    py: Python<'py>,
    block: &[u8],
    header_pending: bool,
    venue: &Bound<'py, PyString>,
    symbol: &Bound<'py, PyString>,
    inverse: bool,
    contract_size: f64,
) -> PyResult<Option<(Bound<'py, PyList>, bool)>> {
    let mut rows = Vec::new();
    let mut pending = header_pending;
    let parsed = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| {
            decode::binance_agg_trades_csv(block, &mut pending, inverse, contract_size, &mut rows)
        }))
    });
    if !matches!(parsed, Ok(Ok(()))) {
        return Ok(None);
    }
    let trade = py.import(pyo3::intern!(py, "liqfast.events"))?.getattr(pyo3::intern!(py, "Trade"))?;
    let (buy, sell) = (PyString::intern(py, "buy"), PyString::intern(py, "sell"));
    let out = PyList::empty(py);
    for r in rows {
        let ts = r.ts.into_pyobject(py)?;
        let side = if r.side == Side::Buy { &buy } else { &sell };
        let t = trade.call1((venue, symbol, &ts, &ts, r.price, r.base, r.usd, side, r.id))?;
        out.append(PyTuple::new(py, [ts.into_any(), t])?)?;
    }
    Ok(Some((out, pending)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFrameDecoder>()?;
    m.add_class::<PySeenSet>()?;
    m.add_function(wrap_pyfunction!(py_binance_agg_trades, m)?)?;
    Ok(())
}
