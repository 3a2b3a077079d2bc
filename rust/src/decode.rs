//! Fast decoding of the hot WebSocket channels: every venue's trades and the liquidations of
//! Binance, Bybit, OKX, Bitget and Gate, straight from the frame bytes into normalised
//! events (base units, USD notional, taker side, liquidated *position* side, exchange time).
//!
//! This is a fast path, not a second reference: `liqfast.exchanges` keeps the msgspec
//! normalisers as the definition of every venue's semantics, and this module handles a
//! strict subset of frames — exactly the ones it can normalise identically. Anything else
//! (another channel, a control frame, an unexpected type or shape, a value it cannot prove it
//! converts identically, an unknown instrument) is *declined* with [`Reject`], and the caller
//! hands the frame to the reference path, which decides whether it is data, control, or a
//! decode error. Declining never has side effects, so a declined frame costs only time.
//!
//! The scanner is hand-written rather than a general JSON parser (serde_json was not
//! benchmarked against it): one pass validates the *whole* frame as JSON while it reads the
//! few fields it needs, straight into numbers (eight digits at a time, Clinger's exact fast
//! path for decimals), with no allocation and no dependency. It never panics — malformed
//! input, any nesting depth and truncation all end in `Err`. Rules that keep the subset provably identical to the
//! reference decoders (msgspec, `strict=False`):
//! * any string containing an escape or a non-ASCII byte is declined (keys included);
//! * a float is a JSON number, or a string holding exactly a JSON number; non-finite results
//!   and negative zero are declined (msgspec reads `"-0"` as `0.0` but `-0.0` as `-0.0`);
//! * an integer is a JSON integer or a string of one (no fraction or exponent), within `i64`;
//! * a known field appearing twice, and nesting deeper than [`MAX_DEPTH`], are declined.
//!
//! Units come from a [`Resolve`] implementation (the caller's instrument metadata).
//!
//! [`binance_agg_trades_csv`] does the same for the backfill's hot path, the rows of
//! data.binance.vision `aggTrades` files.

use std::fmt;

/// Why a frame was not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not valid JSON (truncated, garbage, control characters in a string...).
    Malformed,
    /// Valid so far, but outside what this decoder handles: another channel, a control frame,
    /// an unexpected type, an unknown instrument. The reference normaliser decides.
    Unsupported,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reject::Malformed => "malformed JSON frame",
            Reject::Unsupported => "frame outside the fast decoder's shapes",
        })
    }
}

type R<T> = Result<T, Reject>;

/// Deepest container nesting the scanner follows (deeper input is declined, never a stack
/// overflow).
pub const MAX_DEPTH: u32 = 64;

/// Longest number literal read as a float (longer ones are declined).
const MAX_NUMBER_LEN: usize = 64;

/// Gate batches public liquidations per contract and cycle since this instant (UTC ms); the
/// same constant as `liqfast.exchanges.gate.BATCHED_SINCE_MS`.
pub const GATE_BATCHED_SINCE_MS: i64 = 1_787_184_000_000;

/// Byte range of a string's content inside the frame (never escaped, always ASCII).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[must_use]
    pub fn bytes(self, frame: &[u8]) -> &[u8] {
        &frame[self.start as usize..self.end as usize]
    }

    /// The text of the span (ASCII by construction, so this is infallible in practice).
    #[must_use]
    #[inline]
    pub fn text(self, frame: &[u8]) -> &str {
        let b = self.bytes(frame);
        // `is_ascii` is a few instructions on these short spans; `from_utf8`'s general
        // validation cost ~40 cycles per call, a tenth of an OKX frame's decode.
        if b.is_ascii() {
            // SAFETY: ASCII bytes are valid UTF-8.
            unsafe { std::str::from_utf8_unchecked(b) }
        } else {
            ""
        }
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// Which wire protocol a frame is read as. Linear/inverse variants differ in units only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    BinanceUsdm,
    BinanceCoinm,
    BybitLinear,
    BybitInverse,
    /// OKX swaps: linear or inverse per instrument.
    Okx,
    BitgetLinear,
    GateLinear,
    GateInverse,
    /// KuCoin Futures: linear or inverse per instrument.
    Kucoin,
    Hyperliquid,
}

impl Proto {
    /// The protocol of a normaliser's venue id ("okx-inverse" and "kucoin-inverse" share a
    /// socket, and a normaliser, with their linear siblings).
    #[must_use]
    pub fn from_venue(venue: &str) -> Option<Proto> {
        Some(match venue {
            "binance-usdm" => Proto::BinanceUsdm,
            "binance-coinm" => Proto::BinanceCoinm,
            "bybit-linear" => Proto::BybitLinear,
            "bybit-inverse" => Proto::BybitInverse,
            "okx-linear" | "okx-inverse" => Proto::Okx,
            "bitget-linear" => Proto::BitgetLinear,
            "gate-linear" => Proto::GateLinear,
            "gate-inverse" => Proto::GateInverse,
            "kucoin-linear" | "kucoin-inverse" => Proto::Kucoin,
            "hyperliquid" => Proto::Hyperliquid,
            _ => return None,
        })
    }
}

/// Contract metadata of one instrument, as the resolver knows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contract {
    /// Caller's handle (e.g. an index into its own table); events carry it back so the
    /// caller can name the instrument's venue.
    pub handle: u32,
    pub linear: bool,
    /// Base coin per contract (linear) or USD per contract (inverse).
    pub size: f64,
}

/// Caller-side state the decoder needs. Each method is only called when a frame needs it.
pub trait Resolve {
    /// Contract of `symbol`, or `None` when unknown (the frame is declined: the reference
    /// path looks the instrument up, or counts the missing metadata).
    fn contract(&mut self, symbol: &str) -> Option<Contract>;
    /// Whether liquidations of `symbol` are wanted (a connector's symbol filter).
    fn wants_liquidations(&mut self, symbol: &str) -> bool;
    /// Bitget: whether a liquidation's `amount` is in base coin (else quote currency).
    fn bitget_amount_in_base(&mut self) -> bool {
        false
    }
}

/// Taker side of a trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

/// Side of the liquidated position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PosSide {
    Long,
    Short,
}

/// OKX `posSide` as sent ("net" in one-way mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OkxPos {
    Long,
    Short,
    Net,
}

/// A venue's trade id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeId {
    None,
    Int(i64),
    /// A string id (possibly empty: Bybit's default).
    Str(Span),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completeness {
    Snapshot1s,
    All500ms,
    Partial,
    Aggregated,
    Batched1s,
}

impl Completeness {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Completeness::Snapshot1s => "snapshot_1s",
            Completeness::All500ms => "all_500ms",
            Completeness::Partial => "partial",
            Completeness::Aggregated => "aggregated",
            Completeness::Batched1s => "batched_1s",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceKind {
    AvgFill,
    Order,
    Bankruptcy,
}

impl PriceKind {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            PriceKind::AvgFill => "avg_fill",
            PriceKind::Order => "order",
            PriceKind::Bankruptcy => "bankruptcy",
        }
    }
}

/// Identity of an OKX liquidation as OKX re-sends it after a (re)subscribe: the caller
/// de-duplicates on `(symbol, ts, order side, posSide, sz, bkPx)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OkxKey {
    pub order_sell: bool,
    pub pos: OkxPos,
    pub sz: f64,
    pub bk_px: f64,
}

/// Where an event's venue id comes from.
pub const OWN_VENUE: u32 = u32::MAX;

/// One normalised event, its strings as spans of the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Trade {
        /// `OWN_VENUE` (the normaliser's venue) or the [`Contract::handle`] of the
        /// instrument whose venue to use (OKX, KuCoin).
        venue: u32,
        symbol: Span,
        ts: i64,
        price: f64,
        base: f64,
        usd: f64,
        side: Side,
        id: TradeId,
    },
    Liquidation {
        venue: u32,
        symbol: Span,
        ts: i64,
        side: PosSide,
        price: f64,
        base: f64,
        usd: f64,
        completeness: Completeness,
        price_kind: PriceKind,
        /// OKX only: the identity to de-duplicate on.
        okx: Option<OkxKey>,
    },
    /// Not an event for consumers: the normaliser records `price` as the symbol's last trade
    /// price (Binance raw trades, as the reference does).
    LastPrice { symbol: Span, price: f64 },
}

/// Decode one frame of `proto`, appending its events to `out`. `Ok` means a data frame of a
/// channel handled here (possibly without events: filtered or empty). On `Err` nothing is
/// appended.
pub fn decode<Res: Resolve>(proto: Proto, frame: &[u8], res: &mut Res, out: &mut Vec<Event>) -> Result<(), Reject> {
    if frame.len() > u32::MAX as usize {
        return Err(Reject::Unsupported);
    }
    let n = out.len();
    let r = match proto {
        Proto::BinanceUsdm => binance(frame, false, res, out),
        Proto::BinanceCoinm => binance(frame, true, res, out),
        Proto::BybitLinear => bybit(frame, false, out),
        Proto::BybitInverse => bybit(frame, true, out),
        Proto::Okx => okx(frame, res, out),
        Proto::BitgetLinear => bitget(frame, res, out),
        Proto::GateLinear | Proto::GateInverse => gate(frame, res, out),
        Proto::Kucoin => kucoin(frame, res, out),
        Proto::Hyperliquid => hyperliquid(frame, out),
    };
    if r.is_err() {
        out.truncate(n);
    }
    r
}

// -- scanner ------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

/// A number literal: byte range, shape, and (when it fits) its decimal digits and exponent.
#[derive(Clone, Copy)]
struct Num {
    start: usize,
    end: usize,
    /// No fraction and no exponent.
    int: bool,
    neg: bool,
    /// The first (up to 19) significant digits as an integer...
    mant: u64,
    /// ...times 10 to this power, exactly unless `lossy`.
    exp: i32,
    /// Digits were dropped or the exponent is out of any useful range.
    lossy: bool,
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

impl Num {
    /// The literal's value, correctly rounded: exact operands and one IEEE operation when
    /// the digits fit (Clinger's fast path), the standard library's parser otherwise — like
    /// the reference decoders.
    #[inline]
    fn value(&self, b: &[u8]) -> R<f64> {
        if !self.lossy && self.mant <= 1 << 53 && (-22..=22).contains(&self.exp) {
            let m = self.mant as f64;
            let v = if self.exp >= 0 { m * POW10[self.exp as usize] } else { m / POW10[(-self.exp) as usize] };
            return Ok(if self.neg { -v } else { v });
        }
        let text = &b[self.start..self.end];
        if text.len() > MAX_NUMBER_LEN {
            return Err(Reject::Unsupported);
        }
        std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).ok_or(Reject::Unsupported)
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Nonzero if any byte of `w` is below `n` (n <= 128), or is 128 or more.
#[inline]
fn swar_special(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let slash = w ^ (ONES * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    zero(quote) | zero(slash) | below | (w & HIGHS)
}

/// Decimal digits accumulated into an integer, eight at a time. Past 19 digits the value
/// is meaningless and only `count` (which then says "lossy") and the end position matter.
#[derive(Default)]
struct Digits {
    value: u64,
    count: u32,
}

impl Digits {
    /// Consume the run of digits starting at `j`; returns the position after it.
    #[inline]
    fn run(&mut self, b: &[u8], mut j: usize) -> usize {
        while let Some(chunk) = b.get(j..j + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let v = u64::from_le_bytes(w).wrapping_sub(ONES * u64::from(b'0'));
            // high bit set in every byte that is not a digit (below '0' wraps, above '9' carries)
            let non_digit = (v | v.wrapping_add(ONES * 0x76)) & HIGHS;
            let n = non_digit.trailing_zeros() / 8; // leading digits in the chunk (0..=8)
            if n > 0 {
                self.push(v << (64 - 8 * n), n);
            }
            j += n as usize;
            if n < 8 {
                return j;
            }
        }
        while let Some(&d @ b'0'..=b'9') = b.get(j) {
            self.push(u64::from(d - b'0') << 56, 1);
            j += 1;
        }
        j
    }

    /// Append the `n` digits held in the top `n` bytes of `v` (one digit value per byte,
    /// most significant first from the lowest of them).
    #[inline]
    fn push(&mut self, v: u64, n: u32) {
        // the classic SWAR reduction of eight one-digit bytes (leading zero bytes are zeros)
        let v = (v.wrapping_mul(10).wrapping_add(v >> 8)) & 0x00FF_00FF_00FF_00FF;
        let v = (v.wrapping_mul(100).wrapping_add(v >> 16)) & 0x0000_FFFF_0000_FFFF;
        let v = (v.wrapping_mul(10_000).wrapping_add(v >> 32)) & 0x0000_0000_FFFF_FFFF;
        self.value = self.value.wrapping_mul(POW10_U64[n as usize]).wrapping_add(v);
        self.count += n;
    }
}

const POW10_U64: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

impl<'a> Cur<'a> {
    fn at(b: &'a [u8], i: usize) -> Self {
        Cur { b, i }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// Next non-blank byte (not consumed).
    #[inline]
    fn peek(&mut self) -> R<u8> {
        // compact JSON has no blanks: one test for the common case (blanks are all <= b' ')
        if let Some(&c) = self.b.get(self.i)
            && c > b' '
        {
            return Ok(c);
        }
        self.ws();
        self.b.get(self.i).copied().ok_or(Reject::Malformed)
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Reject::Malformed)
        }
    }

    /// The string at the cursor (which is on its opening quote): its content's span.
    /// Escapes and non-ASCII bytes are declined; control characters are malformed.
    #[inline]
    fn string(&mut self) -> R<Span> {
        let b = self.b;
        let start = self.i + 1;
        let mut j = start;
        // eight bytes at a time: the lowest flagged byte of a chunk is exactly the first
        // special one (flags only spill upwards)
        while let Some(chunk) = b.get(j..j + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let special = swar_special(u64::from_le_bytes(w));
            if special != 0 {
                j += (special.trailing_zeros() / 8) as usize;
                return self.string_end(start, j);
            }
            j += 8;
        }
        while let Some(&c) = b.get(j) {
            if c == b'"' || c < 0x20 || c == b'\\' || c >= 0x80 {
                return self.string_end(start, j);
            }
            j += 1;
        }
        Err(Reject::Malformed)
    }

    /// The string that started at `start` meets its first special byte at `j`.
    #[inline]
    fn string_end(&mut self, start: usize, j: usize) -> R<Span> {
        match self.b[j] {
            b'"' => {
                self.i = j + 1;
                Ok(Span { start: start as u32, end: j as u32 })
            }
            c if c < 0x20 => Err(Reject::Malformed),
            _ => Err(Reject::Unsupported),
        }
    }

    /// A number literal at the cursor, validated against the JSON grammar; its digits are
    /// accumulated on the way (eight at a time).
    #[inline]
    fn number(&mut self) -> R<Num> {
        let b = self.b;
        let start = self.i;
        let mut j = start;
        let neg = b.get(j) == Some(&b'-');
        if neg {
            j += 1;
        }
        let mut acc = Digits::default();
        match b.get(j) {
            Some(b'0') => {
                j += 1;
                acc.count = 1;
            }
            Some(b'1'..=b'9') => j = acc.run(b, j),
            _ => return Err(Reject::Malformed),
        }
        let int_digits = acc.count;
        let mut int = true;
        if b.get(j) == Some(&b'.') {
            int = false;
            let k = acc.run(b, j + 1);
            if k == j + 1 {
                return Err(Reject::Malformed);
            }
            j = k;
        }
        // a leading "0" is not a significant digit but costs one of the 19
        let mut exp = -((acc.count - int_digits) as i32);
        let mut lossy = acc.count > 19;
        if matches!(b.get(j), Some(b'e' | b'E')) {
            int = false;
            j += 1;
            let eneg = match b.get(j) {
                Some(b'-') => {
                    j += 1;
                    true
                }
                Some(b'+') => {
                    j += 1;
                    false
                }
                _ => false,
            };
            if !matches!(b.get(j), Some(b'0'..=b'9')) {
                return Err(Reject::Malformed);
            }
            let mut e = 0i32;
            while let Some(&d @ b'0'..=b'9') = b.get(j) {
                e = (e * 10 + i32::from(d - b'0')).min(100_000);
                j += 1;
            }
            lossy |= e >= 100_000;
            exp += if eneg { -e } else { e };
        }
        self.i = j;
        Ok(Num { start, end: j, int, neg, mant: acc.value, exp, lossy })
    }

    /// Skip (and validate) any value.
    fn skip(&mut self, depth: u32) -> R<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                if depth >= MAX_DEPTH {
                    return Err(Reject::Unsupported);
                }
                self.object(|c, _| c.skip(depth + 1))
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(Reject::Unsupported);
                }
                self.array(|c| c.skip(depth + 1))
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => Err(Reject::Malformed),
        }
    }

    /// Validate a number literal without reading it.
    #[inline]
    fn skip_number(&mut self) -> R<()> {
        let b = self.b;
        let mut j = self.i + usize::from(b.get(self.i) == Some(&b'-'));
        let digits = |j: &mut usize| {
            let s = *j;
            while matches!(b.get(*j), Some(b'0'..=b'9')) {
                *j += 1;
            }
            *j > s
        };
        match b.get(j) {
            Some(b'0') => j += 1,
            Some(b'1'..=b'9') => {
                digits(&mut j);
            }
            _ => return Err(Reject::Malformed),
        }
        if b.get(j) == Some(&b'.') {
            j += 1;
            if !digits(&mut j) {
                return Err(Reject::Malformed);
            }
        }
        if matches!(b.get(j), Some(b'e' | b'E')) {
            j += 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if !digits(&mut j) {
                return Err(Reject::Malformed);
            }
        }
        self.i = j;
        Ok(())
    }

    /// Iterate an object's members: `f(cursor at the value, key)` must consume the value.
    #[inline]
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a [u8]) -> R<()>) -> R<()> {
        if self.peek()? != b'{' {
            return Err(Reject::Unsupported);
        }
        self.i += 1;
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return Err(Reject::Malformed);
            }
            let k = self.string()?;
            if self.peek()? != b':' {
                return Err(Reject::Malformed);
            }
            self.i += 1;
            self.ws();
            f(self, k.bytes(self.b))?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Reject::Malformed),
            }
        }
    }

    /// Iterate an array's items: `f(cursor at the item)` must consume the item.
    #[inline]
    fn array(&mut self, mut f: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        if self.peek()? != b'[' {
            return Err(Reject::Unsupported);
        }
        self.i += 1;
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            f(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Reject::Malformed),
            }
        }
    }

    // -- typed values (the cursor is on the value) ----------------------------------------------

    #[inline]
    fn str_val(&mut self) -> R<Span> {
        if self.peek()? != b'"' {
            return Err(Reject::Unsupported);
        }
        self.string()
    }

    /// A string value equal to one of `options`: its index.
    #[inline]
    fn choice(&mut self, options: &[&[u8]]) -> R<usize> {
        let s = self.str_val()?.bytes(self.b);
        options.iter().position(|o| *o == s).ok_or(Reject::Unsupported)
    }

    fn bool_val(&mut self) -> R<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => Err(Reject::Unsupported),
        }
    }

    /// A number, or a string holding exactly one (read in one pass: a quoted value that is
    /// not exactly a number literal is declined without looking further).
    #[inline]
    fn num_val(&mut self) -> R<Num> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                let n = self.number().map_err(|_| Reject::Unsupported)?;
                if self.b.get(self.i) != Some(&b'"') {
                    return Err(Reject::Unsupported);
                }
                self.i += 1;
                Ok(n)
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Reject::Unsupported),
        }
    }

    /// An integer: a JSON integer or a string holding one, within i64.
    #[inline]
    fn int_val(&mut self) -> R<i64> {
        let n = self.num_val()?;
        if !n.int || n.lossy {
            return Err(Reject::Unsupported);
        }
        let v = i64::try_from(n.mant).map_err(|_| Reject::Unsupported)?;
        Ok(if n.neg { -v } else { v })
    }

    /// A float: a JSON number or a string holding exactly one (see [`Num::value`]); non-finite
    /// results and negative zero are declined (msgspec reads `"-0"` as `0.0`).
    #[inline]
    fn f64_val(&mut self) -> R<f64> {
        let n = self.num_val()?;
        let v = n.value(self.b)?;
        if !v.is_finite() || (v == 0.0 && n.neg) {
            return Err(Reject::Unsupported);
        }
        Ok(v)
    }

    /// The rest of the frame is blank.
    fn end(&mut self) -> R<()> {
        self.ws();
        if self.i == self.b.len() { Ok(()) } else { Err(Reject::Malformed) }
    }
}

/// Record the position of a field's value (declining a field seen twice), then skip it.
#[inline]
fn mark(slot: &mut Option<usize>, c: &mut Cur<'_>) -> R<()> {
    if slot.is_some() {
        return Err(Reject::Unsupported);
    }
    *slot = Some(c.i);
    c.skip(1)
}

/// Set a field once (a second occurrence declines the frame).
#[inline]
fn once<T>(slot: &mut Option<T>, v: T) -> R<()> {
    if slot.is_some() {
        return Err(Reject::Unsupported);
    }
    *slot = Some(v);
    Ok(())
}

/// Raise a flag once (a second occurrence declines the frame).
#[inline]
fn first(flag: &mut bool) -> R<()> {
    if *flag {
        return Err(Reject::Unsupported);
    }
    *flag = true;
    Ok(())
}

/// A frame's payload field (`data`, `result`) whose parser needs fields (topic, channel) that
/// may come before or after it: parsed in place when they came first, otherwise its position
/// is kept and it is parsed after the object. A second payload field declines the frame.
#[derive(Default)]
struct Payload {
    at: Option<usize>,
    parsed: bool,
}

impl Payload {
    /// At the payload field: parse it now if the topic is known, else remember where it is.
    #[inline]
    fn here<T>(&mut self, c: &mut Cur<'_>, topic: Option<T>, parse: impl FnOnce(&mut Cur<'_>, T) -> R<()>) -> R<()> {
        match topic {
            Some(t) => {
                first(&mut self.parsed)?;
                parse(c, t)
            }
            None => mark(&mut self.at, c),
        }
    }

    /// After the object: parse a payload that came before its topic (the frame must have one).
    #[inline]
    fn finish<T>(self, c: &mut Cur<'_>, topic: T, parse: impl FnOnce(&mut Cur<'_>, T) -> R<()>) -> R<()> {
        if self.parsed {
            return if self.at.is_some() { Err(Reject::Unsupported) } else { Ok(()) };
        }
        c.i = need(self.at)?;
        parse(c, topic)
    }
}

#[inline]
fn need<T>(v: Option<T>) -> R<T> {
    v.ok_or(Reject::Unsupported)
}

/// A top-level object frame: members through `f`, nothing but blanks after it.
fn top<'a>(frame: &'a [u8], f: impl FnMut(&mut Cur<'a>, &'a [u8]) -> R<()>) -> R<Cur<'a>> {
    let mut c = Cur::at(frame, 0);
    c.object(f)?;
    c.end()?;
    Ok(c)
}

/// Epoch milliseconds from s/ms/µs/ns by magnitude (`liqfast.exchanges.base.ms` for ints).
#[must_use]
pub fn ms(ts: i64) -> i64 {
    let a = ts.unsigned_abs();
    if a < 100_000_000_000 {
        ts * 1000
    } else if a < 100_000_000_000_000 {
        ts
    } else if a < 100_000_000_000_000_000 {
        ts.div_euclid(1000)
    } else {
        ts.div_euclid(1_000_000)
    }
}

/// `usd / price`, declining where Python would raise ZeroDivisionError.
#[inline]
fn per(usd: f64, price: f64) -> R<f64> {
    if price == 0.0 { Err(Reject::Unsupported) } else { Ok(usd / price) }
}

// -- Binance ------------------------------------------------------------------------------------

fn binance<Res: Resolve>(frame: &[u8], inverse: bool, res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    let mut data = false;
    top(frame, |c, k| match k {
        b"data" => {
            first(&mut data)?;
            binance_data(c, inverse, res, out)
        }
        // subscribe acks and errors: the reference path
        b"id" | b"error" => Err(Reject::Unsupported),
        _ => c.skip(1),
    })?;
    if data { Ok(()) } else { Err(Reject::Unsupported) }
}

fn binance_data<Res: Resolve>(c: &mut Cur<'_>, inverse: bool, res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    // Fields are read with the types they have in the event they belong to, whatever the
    // tag turns out to be: a type mismatch in a field the tagged event does not use only
    // declines a frame the reference would accept (safe), never the other way round.
    let (mut e, mut s, mut a, mut t_id, mut p, mut q, mut t, mut m, mut big_e, mut o) =
        (None, None, None, None, None, None, None, None, None, None);
    c.object(|c, k| match k {
        b"e" => once(&mut e, c.choice(&[b"aggTrade", b"trade", b"forceOrder"])?),
        b"s" => once(&mut s, c.str_val()?),
        b"a" => once(&mut a, c.int_val()?),
        b"t" => once(&mut t_id, c.int_val()?),
        b"p" => once(&mut p, c.f64_val()?),
        b"q" => once(&mut q, c.f64_val()?),
        b"T" => once(&mut t, c.int_val()?),
        b"m" => once(&mut m, c.bool_val()?),
        b"E" => once(&mut big_e, c.int_val()?),
        b"X" => c.str_val().map(|_| ()),
        b"o" => once(&mut o, ForceOrderBody::read(c)?),
        _ => c.skip(2),
    })?;
    let tag = need(e)?;
    if tag == 2 {
        need(big_e)?;
        return need(o)?.emit(c.b, inverse, res, out);
    }
    // aggTrade (id "a"), or a raw trade (id "t", and the symbol's last price is recorded)
    let raw = tag == 1;
    let id = need(if raw { t_id } else { a })?;
    let (symbol, price, qty, ts, maker) = (need(s)?, need(p)?, need(q)?, need(t)?, need(m)?);
    let (base, usd) = if inverse {
        let size = need(res.contract(symbol.text(c.b)))?.size;
        let usd = qty * size;
        (per(usd, price)?, usd)
    } else {
        (qty, price * qty)
    };
    let side = if maker { Side::Sell } else { Side::Buy };
    out.push(Event::Trade { venue: OWN_VENUE, symbol, ts, price, base, usd, side, id: TradeId::Int(id) });
    if raw {
        out.push(Event::LastPrice { symbol, price });
    }
    Ok(())
}

/// The `o` object of a Binance `forceOrder` event (required fields checked on use).
struct ForceOrderBody {
    s: Option<Span>,
    side: Option<usize>,
    q: Option<f64>,
    p: Option<f64>,
    t: Option<i64>,
    ap: Option<f64>,
    z: Option<f64>,
}

impl ForceOrderBody {
    fn read(c: &mut Cur<'_>) -> R<ForceOrderBody> {
        let mut o = ForceOrderBody { s: None, side: None, q: None, p: None, t: None, ap: None, z: None };
        c.object(|c, k| match k {
            b"s" => once(&mut o.s, c.str_val()?),
            b"S" => once(&mut o.side, c.choice(&[b"SELL", b"BUY"])?),
            b"q" => once(&mut o.q, c.f64_val()?),
            b"p" => once(&mut o.p, c.f64_val()?),
            b"T" => once(&mut o.t, c.int_val()?),
            b"ap" => once(&mut o.ap, c.f64_val()?),
            b"z" => once(&mut o.z, c.f64_val()?),
            b"X" => c.str_val().map(|_| ()),
            _ => c.skip(3),
        })?;
        Ok(o)
    }

    fn emit<Res: Resolve>(self, frame: &[u8], inverse: bool, res: &mut Res, out: &mut Vec<Event>) -> R<()> {
        let (symbol, side, q, p, ts) = (need(self.s)?, need(self.side)?, need(self.q)?, need(self.p)?, need(self.t)?);
        if !res.wants_liquidations(symbol.text(frame)) {
            return Ok(());
        }
        let (ap, z) = (self.ap.unwrap_or(0.0), self.z.unwrap_or(0.0));
        let (price, price_kind) = if ap > 0.0 { (ap, PriceKind::AvgFill) } else { (p, PriceKind::Order) };
        let qty = if z > 0.0 { z } else { q };
        let (base, usd) = if inverse {
            let usd = qty * need(res.contract(symbol.text(frame)))?.size;
            (per(usd, price)?, usd)
        } else {
            (qty, qty * price)
        };
        // the order side: a forced SELL closes a long
        let side = if side == 0 { PosSide::Long } else { PosSide::Short };
        out.push(Event::Liquidation {
            venue: OWN_VENUE,
            symbol,
            ts,
            side,
            price,
            base,
            usd,
            completeness: Completeness::Snapshot1s,
            price_kind,
            okx: None,
        });
        Ok(())
    }
}

// -- Bybit --------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum BybitTopic {
    Trades,
    Liquidations,
}

fn bybit(frame: &[u8], inverse: bool, out: &mut Vec<Event>) -> R<()> {
    let mut topic: Option<BybitTopic> = None;
    let mut seen_topic = false;
    let mut payload = Payload::default();
    let mut c = top(frame, |c, k| match k {
        b"topic" => {
            first(&mut seen_topic)?;
            let t = c.str_val()?.bytes(c.b);
            topic = Some(if t.starts_with(b"publicTrade.") {
                BybitTopic::Trades
            } else if t.starts_with(b"allLiquidation.") {
                BybitTopic::Liquidations
            } else {
                return Err(Reject::Unsupported);
            });
            Ok(())
        }
        b"type" => c.str_val().map(|_| ()),
        b"ts" => c.int_val().map(|_| ()),
        b"data" => payload.here(c, topic, |c, t| bybit_data(c, t, inverse, out)),
        // pong / subscribe answers
        b"op" | b"success" | b"ret_msg" => Err(Reject::Unsupported),
        _ => c.skip(1),
    })?;
    payload.finish(&mut c, need(topic)?, |c, t| bybit_data(c, t, inverse, out))
}

fn bybit_data(c: &mut Cur<'_>, topic: BybitTopic, inverse: bool, out: &mut Vec<Event>) -> R<()> {
    c.array(|c| {
        let (mut t, mut s, mut side, mut v, mut p, mut id) = (None, None, None, None, None, None);
        let trades = topic == BybitTopic::Trades;
        c.object(|c, k| match k {
            b"T" => once(&mut t, c.int_val()?),
            b"s" => once(&mut s, c.str_val()?),
            b"S" => once(&mut side, c.choice(&[b"Buy", b"Sell"])?),
            b"v" => once(&mut v, c.f64_val()?),
            b"p" => once(&mut p, c.f64_val()?),
            b"i" if trades => once(&mut id, c.str_val()?),
            _ => c.skip(3),
        })?;
        let (ts, symbol, buy, v, price) = (need(t)?, need(s)?, need(side)? == 0, need(v)?, need(p)?);
        let (base, usd) = if inverse { (per(v, price)?, v) } else { (v, v * price) };
        out.push(if trades {
            let side = if buy { Side::Buy } else { Side::Sell };
            let id = TradeId::Str(id.unwrap_or_default());
            Event::Trade { venue: OWN_VENUE, symbol, ts, price, base, usd, side, id }
        } else {
            // S is the side of the liquidated POSITION on Bybit ("Buy" = a long)
            let side = if buy { PosSide::Long } else { PosSide::Short };
            Event::Liquidation {
                venue: OWN_VENUE,
                symbol,
                ts,
                side,
                price,
                base,
                usd,
                completeness: Completeness::All500ms,
                price_kind: PriceKind::Bankruptcy,
                okx: None,
            }
        });
        Ok(())
    })
}

// -- OKX ----------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum OkxChannel {
    Trades,
    Liquidations,
}

/// An `arg` object whose string fields are all strings: the field selected by `want`.
fn arg_field<const W: usize>(c: &mut Cur<'_>, fields: &[&[u8]], want: [&[u8]; W]) -> R<[Option<Span>; W]> {
    let mut got = [None; W];
    c.object(|c, k| {
        if let Some(w) = want.iter().position(|w| *w == k) {
            return once(&mut got[w], c.str_val()?);
        }
        if fields.contains(&k) { c.str_val().map(|_| ()) } else { c.skip(2) }
    })?;
    Ok(got)
}

fn okx<Res: Resolve>(frame: &[u8], res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    let mut channel: Option<OkxChannel> = None;
    let mut payload = Payload::default();
    let mut c = top(frame, |c, k| match k {
        b"arg" => {
            if channel.is_some() {
                return Err(Reject::Unsupported);
            }
            let got = arg_field(c, &[b"instId", b"instType"], [b"channel"])?;
            let ch = need(got[0])?.bytes(c.b);
            channel = Some(match ch {
                b"trades" | b"trades-all" => OkxChannel::Trades,
                b"liquidation-orders" => OkxChannel::Liquidations,
                _ => return Err(Reject::Unsupported),
            });
            Ok(())
        }
        b"data" => payload.here(c, channel, |c, ch| okx_data(c, ch, res, out)),
        b"event" | b"code" | b"msg" => Err(Reject::Unsupported),
        _ => c.skip(1),
    })?;
    payload.finish(&mut c, need(channel)?, |c, ch| okx_data(c, ch, res, out))
}

fn okx_data<Res: Resolve>(c: &mut Cur<'_>, ch: OkxChannel, res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    match ch {
        OkxChannel::Trades => c.array(|c| {
            let (mut inst, mut tid, mut px, mut sz, mut side, mut ts) = (None, None, None, None, None, None);
            c.object(|c, k| match k {
                b"instId" => once(&mut inst, c.str_val()?),
                b"tradeId" => once(&mut tid, c.str_val()?),
                b"px" => once(&mut px, c.f64_val()?),
                b"sz" => once(&mut sz, c.f64_val()?),
                b"side" => once(&mut side, c.choice(&[b"buy", b"sell"])?),
                b"ts" => once(&mut ts, c.int_val()?),
                _ => c.skip(3),
            })?;
            let (symbol, tid, price, sz, buy, ts) =
                (need(inst)?, need(tid)?, need(px)?, need(sz)?, need(side)? == 0, need(ts)?);
            let k = need(res.contract(symbol.text(c.b)))?;
            let (base, usd) = if k.linear {
                let b = sz * k.size;
                (b, b * price)
            } else {
                let usd = sz * k.size;
                (per(usd, price)?, usd)
            };
            let side = if buy { Side::Buy } else { Side::Sell };
            out.push(Event::Trade { venue: k.handle, symbol, ts, price, base, usd, side, id: TradeId::Str(tid) });
            Ok(())
        }),
        OkxChannel::Liquidations => c.array(|c| {
            // details come before instId on the wire: read (and type) them in the same pass,
            // keeping the first few; a longer list is read again from its position
            let mut first: [OkxDetail; DETAILS_INLINE] = [(false, OkxPos::Net, 0.0, 0.0, 0); DETAILS_INLINE];
            let (mut inst, mut details, mut count) = (None, None, 0usize);
            c.object(|c, k| match k {
                b"instId" => once(&mut inst, c.str_val()?),
                b"details" => {
                    once(&mut details, c.i)?;
                    c.array(|d| {
                        let x = okx_detail(d)?;
                        if let Some(slot) = first.get_mut(count) {
                            *slot = x;
                        }
                        count += 1;
                        Ok(())
                    })
                }
                b"instType" => c.str_val().map(|_| ()),
                _ => c.skip(3),
            })?;
            let symbol = need(inst)?;
            let at = need(details)?;
            if !res.wants_liquidations(symbol.text(c.b)) {
                return Ok(());
            }
            // the contract is looked up once per group, as the reference does
            let k = need(res.contract(symbol.text(c.b)))?;
            let mut emit = |(order_sell, pos, bk_px, sz, ts): OkxDetail| -> R<()> {
                // posSide is the position side (hedge mode); in one-way mode ("net") the
                // order side tells it: a forced sell closes a long.
                let side = match pos {
                    OkxPos::Long => PosSide::Long,
                    OkxPos::Short => PosSide::Short,
                    OkxPos::Net => {
                        if order_sell {
                            PosSide::Long
                        } else {
                            PosSide::Short
                        }
                    }
                };
                let (base, usd) = if k.linear {
                    let b = sz * k.size;
                    (b, b * bk_px)
                } else {
                    let usd = sz * k.size;
                    (per(usd, bk_px)?, usd)
                };
                out.push(Event::Liquidation {
                    venue: k.handle,
                    symbol,
                    ts,
                    side,
                    price: bk_px,
                    base,
                    usd,
                    completeness: Completeness::Partial,
                    price_kind: PriceKind::Bankruptcy,
                    okx: Some(OkxKey { order_sell, pos, sz, bk_px }),
                });
                Ok(())
            };
            if count <= DETAILS_INLINE {
                first[..count].iter().try_for_each(|&x| emit(x))
            } else {
                Cur::at(c.b, at).array(|d| emit(okx_detail(d)?))
            }
        }),
    }
}

/// OKX liquidation details kept from the first pass (more are read again).
const DETAILS_INLINE: usize = 8;

/// (order side is sell, posSide, bkPx, sz, ts)
type OkxDetail = (bool, OkxPos, f64, f64, i64);

/// One OKX liquidation detail: (order side is sell, posSide, bkPx, sz, ts).
fn okx_detail(c: &mut Cur<'_>) -> R<OkxDetail> {
    let (mut side, mut pos, mut px, mut sz, mut ts) = (None, None, None, None, None);
    c.object(|c, k| match k {
        b"side" => once(&mut side, c.choice(&[b"buy", b"sell"])?),
        b"posSide" => once(&mut pos, c.choice(&[b"long", b"short", b"net"])?),
        b"bkPx" => once(&mut px, c.f64_val()?),
        b"sz" => once(&mut sz, c.f64_val()?),
        b"ts" => once(&mut ts, c.int_val()?),
        _ => c.skip(4),
    })?;
    let pos = match need(pos)? {
        0 => OkxPos::Long,
        1 => OkxPos::Short,
        _ => OkxPos::Net,
    };
    Ok((need(side)? == 1, pos, need(px)?, need(sz)?, need(ts)?))
}

// -- Bitget -------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitgetTopic {
    Trades(Span),
    Liquidations,
}

fn bitget<Res: Resolve>(frame: &[u8], res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    let mut topic: Option<BitgetTopic> = None;
    let mut payload = Payload::default();
    let mut c = top(frame, |c, k| match k {
        b"arg" => {
            if topic.is_some() {
                return Err(Reject::Unsupported);
            }
            let got = arg_field(c, &[b"instType", b"channel", b"instId"], [b"topic", b"symbol"])?;
            topic = Some(match need(got[0])?.bytes(c.b) {
                b"publicTrade" => BitgetTopic::Trades(need(got[1])?),
                b"liquidation" => BitgetTopic::Liquidations,
                _ => return Err(Reject::Unsupported),
            });
            Ok(())
        }
        b"action" => c.str_val().map(|_| ()),
        b"ts" => c.int_val().map(|_| ()),
        b"data" => payload.here(c, topic, |c, t| bitget_data(c, t, res, out)),
        b"event" | b"code" | b"msg" => Err(Reject::Unsupported),
        _ => c.skip(1),
    })?;
    payload.finish(&mut c, need(topic)?, |c, t| bitget_data(c, t, res, out))
}

fn bitget_data<Res: Resolve>(c: &mut Cur<'_>, topic: BitgetTopic, res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    match topic {
        BitgetTopic::Trades(symbol) => c.array(|c| {
            let (mut id, mut p, mut v, mut side, mut t) = (None, None, None, None, None);
            c.object(|c, k| match k {
                b"i" => once(&mut id, c.str_val()?),
                b"p" => once(&mut p, c.f64_val()?),
                b"v" => once(&mut v, c.f64_val()?),
                b"S" => once(&mut side, c.choice(&[b"buy", b"sell"])?),
                b"T" => once(&mut t, c.int_val()?),
                _ => c.skip(3),
            })?;
            let (id, price, v, buy, ts) = (need(id)?, need(p)?, need(v)?, need(side)? == 0, need(t)?);
            let side = if buy { Side::Buy } else { Side::Sell };
            out.push(Event::Trade {
                venue: OWN_VENUE,
                symbol,
                ts,
                price,
                base: v,
                usd: v * price,
                side,
                id: TradeId::Str(id),
            });
            Ok(())
        }),
        BitgetTopic::Liquidations => {
            let mut in_base: Option<bool> = None;
            c.array(|c| {
                let (mut s, mut side, mut p, mut a, mut t) = (None, None, None, None, None);
                c.object(|c, k| match k {
                    b"symbol" => once(&mut s, c.str_val()?),
                    b"side" => once(&mut side, c.choice(&[b"buy", b"sell"])?),
                    b"price" => once(&mut p, c.f64_val()?),
                    b"amount" => once(&mut a, c.f64_val()?),
                    b"ts" => once(&mut t, c.int_val()?),
                    _ => c.skip(3),
                })?;
                let (symbol, long, price, amount, ts) = (need(s)?, need(side)? == 0, need(p)?, need(a)?, need(t)?);
                if !res.wants_liquidations(symbol.text(c.b)) {
                    return Ok(());
                }
                let in_base = *in_base.get_or_insert_with(|| res.bitget_amount_in_base());
                let (base, usd) = if in_base { (amount, amount * price) } else { (per(amount, price)?, amount) };
                out.push(Event::Liquidation {
                    venue: OWN_VENUE,
                    symbol,
                    ts: ms(ts),
                    side: if long { PosSide::Long } else { PosSide::Short },
                    price,
                    base,
                    usd,
                    completeness: Completeness::Aggregated,
                    price_kind: PriceKind::Order,
                    okx: None,
                });
                Ok(())
            })
        }
    }
}

// -- Gate ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum GateChannel {
    Trades,
    Liquidations,
}

fn gate<Res: Resolve>(frame: &[u8], res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    let (mut channel, mut event): (Option<GateChannel>, Option<bool>) = (None, None);
    let mut payload = Payload::default();
    let mut c = top(frame, |c, k| match k {
        b"channel" => once(
            &mut channel,
            match c.choice(&[b"futures.trades", b"futures.public_liquidates"])? {
                0 => GateChannel::Trades,
                _ => GateChannel::Liquidations,
            },
        ),
        // "update" (or "all"): data; anything else is an ack or an error
        b"event" => once(&mut event, c.choice(&[b"update", b"all"]).map(|_| true)?),
        b"time" | b"time_ms" => c.int_val().map(|_| ()),
        b"result" => payload.here(c, channel.filter(|_| event == Some(true)), |c, ch| gate_result(c, ch, res, out)),
        _ => c.skip(1),
    })?;
    let ch = need(channel)?;
    need(event)?;
    payload.finish(&mut c, ch, |c, ch| gate_result(c, ch, res, out))
}

fn gate_result<Res: Resolve>(c: &mut Cur<'_>, ch: GateChannel, res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    match ch {
        GateChannel::Trades => c.array(|c| {
            let (mut size, mut id, mut price, mut contract, mut ct, mut ct_ms) = (None, None, None, None, None, None);
            c.object(|c, k| match k {
                b"size" => once(&mut size, c.f64_val()?),
                b"id" => once(&mut id, c.int_val()?),
                b"price" => once(&mut price, c.f64_val()?),
                b"contract" => once(&mut contract, c.str_val()?),
                b"create_time" => once(&mut ct, c.int_val()?),
                b"create_time_ms" => once(&mut ct_ms, c.int_val()?),
                _ => c.skip(3),
            })?;
            let (size, id, price, symbol) = (need(size)?, need(id)?, need(price)?, need(contract)?);
            let ct_ms = ct_ms.unwrap_or(0);
            let ts = if ct_ms == 0 { need(ct.unwrap_or(0).checked_mul(1000))? } else { ct_ms };
            let k = need(res.contract(symbol.text(c.b)))?;
            // `size if size >= 0 else -size`, as the reference writes it (keeps -0.0)
            let qty = if size >= 0.0 { size } else { -size };
            let (base, usd) = if k.linear {
                let b = qty * k.size;
                (b, b * price)
            } else {
                let usd = qty * k.size;
                (per(usd, price)?, usd)
            };
            let side = if size < 0.0 { Side::Sell } else { Side::Buy };
            out.push(Event::Trade { venue: OWN_VENUE, symbol, ts, price, base, usd, side, id: TradeId::Int(id) });
            Ok(())
        }),
        GateChannel::Liquidations => {
            let mut one = |c: &mut Cur<'_>| -> R<()> {
                let (mut price, mut size, mut contract, mut t_ms, mut t) = (None, None, None, None, None);
                c.object(|c, k| match k {
                    b"price" => once(&mut price, c.f64_val()?),
                    b"size" => once(&mut size, c.f64_val()?),
                    b"contract" => once(&mut contract, c.str_val()?),
                    b"time_ms" => once(&mut t_ms, c.int_val()?),
                    b"time" => once(&mut t, c.int_val()?),
                    _ => c.skip(3),
                })?;
                let (price, size, symbol) = (need(price)?, need(size)?, need(contract)?);
                let (t_ms, t) = (t_ms.unwrap_or(0), t.unwrap_or(0));
                if !res.wants_liquidations(symbol.text(c.b)) {
                    return Ok(());
                }
                let k = need(res.contract(symbol.text(c.b)))?;
                if size == 0.0 {
                    return Err(Reject::Unsupported); // the reference raises: a decode error
                }
                let qty = size.abs();
                let (base, usd) = if k.linear {
                    let b = qty * k.size;
                    (b, b * price)
                } else {
                    let usd = qty * k.size;
                    (if price > 0.0 { usd / price } else { f64::NAN }, usd)
                };
                let ts = if t_ms == 0 { ms(t) } else { t_ms };
                let completeness =
                    if ts >= GATE_BATCHED_SINCE_MS { Completeness::Batched1s } else { Completeness::Snapshot1s };
                out.push(Event::Liquidation {
                    venue: OWN_VENUE,
                    symbol,
                    ts,
                    // negative size: the forced order sells, a long was liquidated
                    side: if size < 0.0 { PosSide::Long } else { PosSide::Short },
                    price,
                    base,
                    usd,
                    completeness,
                    price_kind: PriceKind::Order,
                    okx: None,
                });
                Ok(())
            };
            if c.peek()? == b'[' { c.array(one) } else { one(c) }
        }
    }
}

// -- KuCoin -------------------------------------------------------------------------------------

fn kucoin<Res: Resolve>(frame: &[u8], res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    let (mut is_msg, mut is_match, mut topic) = (None, None, None);
    let mut payload = Payload::default();
    let mut c = top(frame, |c, k| match k {
        b"type" => once(&mut is_msg, c.choice(&[b"message"]).map(|_| true)?),
        b"subject" => once(&mut is_match, c.choice(&[b"match"]).map(|_| true)?),
        b"topic" => once(&mut topic, c.str_val()?),
        b"data" => payload.here(c, is_msg.and(is_match), |c, _| kucoin_match(c, res, out)),
        _ => c.skip(1),
    })?;
    need(is_msg)?;
    need(is_match)?;
    need(topic)?;
    payload.finish(&mut c, (), |c, ()| kucoin_match(c, res, out))
}

fn kucoin_match<Res: Resolve>(c: &mut Cur<'_>, res: &mut Res, out: &mut Vec<Event>) -> R<()> {
    let (mut s, mut side, mut size, mut price, mut ts, mut tid) = (None, None, None, None, None, None);
    c.object(|c, k| match k {
        b"symbol" => once(&mut s, c.str_val()?),
        b"side" => once(&mut side, c.choice(&[b"buy", b"sell"])?),
        b"size" => once(&mut size, c.f64_val()?),
        b"price" => once(&mut price, c.f64_val()?),
        b"ts" => once(&mut ts, c.int_val()?),
        b"tradeId" => once(&mut tid, c.str_val()?),
        _ => c.skip(2),
    })?;
    let (symbol, buy, size, price, ts) = (need(s)?, need(side)? == 0, need(size)?, need(price)?, need(ts)?);
    let k = need(res.contract(symbol.text(c.b)))?;
    let (base, usd) = if k.linear {
        let b = size * k.size;
        (b, b * price)
    } else {
        let usd = size * k.size;
        (per(usd, price)?, usd)
    };
    let id = match tid {
        Some(t) if !t.is_empty() => TradeId::Str(t),
        _ => TradeId::None,
    };
    let side = if buy { Side::Buy } else { Side::Sell };
    out.push(Event::Trade { venue: k.handle, symbol, ts: ms(ts), price, base, usd, side, id });
    Ok(())
}

// -- Hyperliquid --------------------------------------------------------------------------------

fn hyperliquid(frame: &[u8], out: &mut Vec<Event>) -> R<()> {
    let mut trades: Option<bool> = None;
    let mut payload = Payload::default();
    let mut c = top(frame, |c, k| match k {
        b"channel" => once(&mut trades, c.choice(&[b"trades"]).map(|_| true)?),
        b"data" => payload.here(c, trades, |c, _| hyperliquid_trades(c, out)),
        _ => c.skip(1),
    })?;
    need(trades)?;
    payload.finish(&mut c, (), |c, ()| hyperliquid_trades(c, out))
}

fn hyperliquid_trades(c: &mut Cur<'_>, out: &mut Vec<Event>) -> R<()> {
    c.array(|c| {
        let (mut coin, mut side, mut px, mut sz, mut time, mut tid) = (None, None, None, None, None, None);
        c.object(|c, k| match k {
            b"coin" => once(&mut coin, c.str_val()?),
            b"side" => once(&mut side, c.choice(&[b"B", b"A"])?),
            b"px" => once(&mut px, c.f64_val()?),
            b"sz" => once(&mut sz, c.f64_val()?),
            b"time" => once(&mut time, c.int_val()?),
            b"tid" => once(&mut tid, c.int_val()?),
            _ => c.skip(3),
        })?;
        let (symbol, buy, price, sz, ts) = (need(coin)?, need(side)? == 0, need(px)?, need(sz)?, need(time)?);
        let id = match tid {
            Some(t) if t != 0 => TradeId::Int(t),
            _ => TradeId::None,
        };
        let side = if buy { Side::Buy } else { Side::Sell };
        out.push(Event::Trade { venue: OWN_VENUE, symbol, ts, price, base: sz, usd: sz * price, side, id });
        Ok(())
    })
}

// -- Binance aggTrades CSV (backfill) ------------------------------------------------------------

/// One row of a Binance `aggTrades` CSV (data.binance.vision), normalised: `ts` is the
/// transaction time, `side` the taker side (`is_buyer_maker` true: the taker sold).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CsvTrade {
    pub id: i64,
    pub ts: i64,
    pub price: f64,
    pub base: f64,
    pub usd: f64,
    pub side: Side,
}

/// The trades of `block`, complete lines of a Binance `aggTrades` CSV
/// (`agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker`),
/// normalised like `liqfast.exchanges.backfill` does: quantities in base coin (USD-M) or in
/// contracts of `contract_size` USD (`inverse`, COIN-M). While `*header_pending`, the first
/// non-empty row is a header if its first field does not start with a digit (older files have
/// none); the flag is cleared at the first non-empty row.
///
/// The subset handled is what the files contain: unquoted ASCII fields, `\n` or `\r\n` line
/// ends, integers as plain digits and decimals in JSON number syntax. Anything else — quotes,
/// a lone `\r`, non-ASCII, fewer than 7 fields, another number spelling, a zero price of an
/// inverse contract — is declined and the caller parses the file the reference way. On
/// `Err` nothing is appended and the flag is unchanged.
pub fn binance_agg_trades_csv(
    block: &[u8],
    header_pending: &mut bool,
    inverse: bool,
    contract_size: f64,
    out: &mut Vec<CsvTrade>,
) -> Result<(), Reject> {
    let n = out.len();
    let mut pending = *header_pending;
    let r = csv_rows(block, &mut pending, |f| {
        let id = csv_int(f[0])?;
        let (price, qty, ts) = (csv_f64(f[1])?, csv_f64(f[2])?, csv_int(f[5])?);
        let (base, usd) = if inverse {
            let usd = qty * contract_size;
            (per(usd, price)?, usd)
        } else {
            (qty, qty * price)
        };
        let maker = f[6].trim_ascii().eq_ignore_ascii_case(b"true");
        out.push(CsvTrade { id, ts, price, base, usd, side: if maker { Side::Sell } else { Side::Buy } });
        Ok(())
    });
    if r.is_ok() {
        *header_pending = pending;
    } else {
        out.truncate(n);
    }
    r
}

/// Each non-empty row of `block` with at least 7 fields, header skipped (see above).
fn csv_rows(block: &[u8], pending: &mut bool, mut row: impl FnMut(&[&[u8]; 7]) -> R<()>) -> R<()> {
    if block.iter().any(|&c| c == b'"' || c >= 0x80) {
        return Err(Reject::Unsupported);
    }
    for line in block.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.contains(&b'\r') {
            return Err(Reject::Unsupported);
        }
        let mut f: [&[u8]; 7] = [&[]; 7];
        let mut fields = line.split(|&c| c == b',');
        for slot in &mut f {
            *slot = fields.next().ok_or(Reject::Unsupported)?;
        }
        if std::mem::take(pending) && !f[0].trim_ascii().first().is_some_and(u8::is_ascii_digit) {
            continue; // header row
        }
        row(&f)?;
    }
    Ok(())
}

/// `int(text)` for plain digits (with an optional minus), within i64.
fn csv_int(text: &[u8]) -> R<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Reject::Unsupported);
    }
    std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).ok_or(Reject::Unsupported)
}

/// `float(text)` for a JSON number literal (finite; `-0` is `-0.0`, as in Python).
fn csv_f64(text: &[u8]) -> R<f64> {
    let mut c = Cur::at(text, 0);
    let n = c.number().map_err(|_| Reject::Unsupported)?;
    if n.end != text.len() {
        return Err(Reject::Unsupported);
    }
    let v = n.value(text)?;
    if v.is_finite() { Ok(v) } else { Err(Reject::Unsupported) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Default)]
    struct Table {
        contracts: HashMap<String, Contract>,
        only: Option<Vec<String>>,
        base_amount: bool,
    }

    impl Resolve for Table {
        fn contract(&mut self, symbol: &str) -> Option<Contract> {
            self.contracts.get(symbol).copied()
        }
        fn wants_liquidations(&mut self, symbol: &str) -> bool {
            self.only.as_ref().is_none_or(|o| o.iter().any(|s| s == symbol))
        }
        fn bitget_amount_in_base(&mut self) -> bool {
            self.base_amount
        }
    }

    fn table(entries: &[(&str, bool, f64)]) -> Table {
        let mut t = Table::default();
        for (i, (s, linear, size)) in entries.iter().enumerate() {
            t.contracts.insert((*s).to_string(), Contract { handle: i as u32, linear: *linear, size: *size });
        }
        t
    }

    fn run(proto: Proto, frame: &str, res: &mut Table) -> R<Vec<Event>> {
        let mut out = Vec::new();
        decode(proto, frame.as_bytes(), res, &mut out)?;
        Ok(out)
    }

    const AGG: &str = r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1723161255123,"s":"BTCUSDT","a":2234567890,"p":"61234.50","q":"0.015","f":4123456789,"l":4123456791,"T":1723161255120,"m":true}}"#;

    #[test]
    fn binance_agg_trade_taker_side_and_units() {
        let f = AGG;
        let ev = run(Proto::BinanceUsdm, f, &mut Table::default()).unwrap();
        let Event::Trade { symbol, ts, price, base, usd, side, id, venue } = ev[0] else { panic!() };
        assert_eq!(symbol.text(f.as_bytes()), "BTCUSDT");
        assert_eq!(
            (ts, price, base, usd, side, id, venue),
            (1_723_161_255_120, 61234.5, 0.015, 61234.5 * 0.015, Side::Sell, TradeId::Int(2_234_567_890), OWN_VENUE)
        );
    }

    #[test]
    fn binance_raw_trade_records_the_last_price() {
        let f = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":2,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}"#;
        let ev = run(Proto::BinanceUsdm, f, &mut Table::default()).unwrap();
        assert!(matches!(ev[0], Event::Trade { id: TradeId::Int(5_266_583_935), side: Side::Buy, ts: 2, .. }));
        assert!(matches!(ev[1], Event::LastPrice { price, .. } if price == 61800.3));
        let bad = f.replace(r#""X":"MARKET""#, r#""X":1"#);
        assert_eq!(run(Proto::BinanceUsdm, &bad, &mut Table::default()), Err(Reject::Unsupported));
    }

    #[test]
    fn binance_coinm_needs_contract_size() {
        let f = r#"{"stream":"x","data":{"e":"aggTrade","s":"BTCUSD_PERP","a":1,"p":"50000","q":"3","T":5,"m":false}}"#;
        assert_eq!(run(Proto::BinanceCoinm, f, &mut Table::default()), Err(Reject::Unsupported));
        let ev = run(Proto::BinanceCoinm, f, &mut table(&[("BTCUSD_PERP", false, 100.0)])).unwrap();
        let Event::Trade { base, usd, side, .. } = ev[0] else { panic!() };
        assert_eq!((base, usd, side), (300.0 / 50000.0, 300.0, Side::Buy));
    }

    #[test]
    fn binance_force_order_side_is_position() {
        let f = r#"{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9911","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}}"#;
        let ev = run(Proto::BinanceUsdm, f, &mut Table::default()).unwrap();
        let Event::Liquidation { side, price, price_kind, base, completeness, .. } = ev[0] else { panic!() };
        assert_eq!(
            (side, price, price_kind, base, completeness),
            (PosSide::Long, 9911.0, PriceKind::AvgFill, 0.014, Completeness::Snapshot1s)
        );
        let mut only = Table { only: Some(vec!["ETHUSDT".into()]), ..Table::default() };
        assert_eq!(run(Proto::BinanceUsdm, f, &mut only).unwrap(), vec![]);
    }

    #[test]
    fn acks_and_other_streams_are_declined() {
        let mut t = Table::default();
        for f in [
            r#"{"result":null,"id":1}"#,
            r#"{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1}}"#,
            r#"{"stream":"!markPrice@arr","data":[]}"#,
            r#"{"data":{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1","q":"1","T":1,"m":true},"id":3}"#,
        ] {
            assert_eq!(run(Proto::BinanceUsdm, f, &mut t), Err(Reject::Unsupported), "{f}");
        }
    }

    #[test]
    fn garbage_is_malformed_or_declined() {
        let mut t = Table::default();
        for f in ["", "{", "{garbage", "[1,]", "{\"a\":1,}", "{\"a\":01}", "{\"a\":\"\x01\"}", "{} x", "nul"] {
            assert!(run(Proto::BinanceUsdm, f, &mut t).is_err(), "{f:?}");
        }
        assert_eq!(run(Proto::BinanceUsdm, "{\"a\":1}garbage", &mut t), Err(Reject::Malformed));
        let deep = "[".repeat(100_000);
        assert!(run(Proto::Okx, &format!("{{\"x\":{deep}"), &mut t).is_err());
    }

    #[test]
    fn numbers_follow_the_reference_rules() {
        let mk = |p: &str| format!(r#"{{"data":{{"e":"aggTrade","s":"X","a":1,"p":{p},"q":"1","T":1,"m":true}}}}"#);
        let mut t = Table::default();
        let price = |p: &str, t: &mut Table| match run(Proto::BinanceUsdm, &mk(p), t) {
            Ok(v) => match v[0] {
                Event::Trade { price, .. } => Ok(price),
                Event::Liquidation { .. } | Event::LastPrice { .. } => unreachable!(),
            },
            Err(e) => Err(e),
        };
        assert_eq!(price("\"1.5\"", &mut t), Ok(1.5));
        assert_eq!(price("2", &mut t), Ok(2.0));
        assert_eq!(price("\"1e5\"", &mut t), Ok(100_000.0));
        for bad in ["\"nan\"", "\"inf\"", "\" 1\"", "\"1_0\"", "\".5\"", "\"-0\"", "-0.0", "\"1e999\"", "true", "null"]
        {
            assert_eq!(price(bad, &mut t), Err(Reject::Unsupported), "{bad}");
        }
    }

    #[test]
    fn okx_trades_and_liquidations_use_contracts() {
        let mut t = table(&[("BTC-USDT-SWAP", true, 0.01), ("BTC-USD-SWAP", false, 100.0)]);
        let f = r#"{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","tradeId":"130639474","px":"42219.9","sz":"12","side":"buy","ts":"1630048897897","count":"3"}]}"#;
        let Event::Trade { base, ts, id, venue, .. } = run(Proto::Okx, f, &mut t).unwrap()[0] else { panic!() };
        assert_eq!((base, ts, venue), (12.0 * 0.01, 1_630_048_897_897, 0));
        assert!(matches!(id, TradeId::Str(s) if s.text(f.as_bytes()) == "130639474"));
        let l = r#"{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"40000","ccy":"","posSide":"net","side":"buy","sz":"13","ts":"1692266434010"}],"instFamily":"BTC-USD","instId":"BTC-USD-SWAP","instType":"SWAP","uly":"BTC-USD"}]}"#;
        let Event::Liquidation { side, base, usd, okx, venue, .. } = run(Proto::Okx, l, &mut t).unwrap()[0] else {
            panic!()
        };
        assert_eq!((side, usd, base, venue), (PosSide::Short, 1300.0, 1300.0 / 40000.0, 1));
        assert_eq!(okx, Some(OkxKey { order_sell: false, pos: OkxPos::Net, sz: 13.0, bk_px: 40000.0 }));
        assert_eq!(run(Proto::Okx, f, &mut Table::default()), Err(Reject::Unsupported));
        assert_eq!(
            run(Proto::Okx, r#"{"event":"subscribe","arg":{"channel":"trades"}}"#, &mut t),
            Err(Reject::Unsupported)
        );
    }

    #[test]
    fn bybit_gate_bitget_kucoin_hyperliquid() {
        let mut t = table(&[("BTC_USDT", true, 0.0001), ("XBTUSDTM", true, 0.001)]);
        let f = r#"{"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,"data":[{"T":1739502302929,"s":"ROSEUSDT","S":"Buy","v":"20000","p":"0.04499"}]}"#;
        let Event::Liquidation { side, usd, .. } = run(Proto::BybitLinear, f, &mut t).unwrap()[0] else { panic!() };
        assert_eq!((side, usd), (PosSide::Long, 20000.0 * 0.04499));
        let g = r#"{"time":1541503698,"time_ms":1541503698123,"channel":"futures.trades","event":"update","result":[{"size":-108,"id":27753479,"create_time":1545136464,"create_time_ms":1545136464123,"price":"96.4","contract":"BTC_USDT"}]}"#;
        let Event::Trade { side, base, ts, .. } = run(Proto::GateLinear, g, &mut t).unwrap()[0] else { panic!() };
        assert_eq!((side, base, ts), (Side::Sell, 108.0 * 0.0001, 1_545_136_464_123));
        let gl = r#"{"channel":"futures.public_liquidates","event":"update","time":1541505434,"time_ms":1541505434123,"result":[{"price":"215.1","size":"-124.5","time_ms":1541486601123,"contract":"BTC_USDT"}]}"#;
        let Event::Liquidation { side, completeness, .. } = run(Proto::GateLinear, gl, &mut t).unwrap()[0] else {
            panic!()
        };
        assert_eq!((side, completeness), (PosSide::Long, Completeness::Snapshot1s));
        let b = r#"{"action":"update","arg":{"instType":"usdt-futures","topic":"liquidation"},"data":[{"symbol":"BTCUSDT","side":"buy","price":"60000","amount":"150000","ts":"1791500000000"}]}"#;
        let Event::Liquidation { side, base, .. } = run(Proto::BitgetLinear, b, &mut t).unwrap()[0] else { panic!() };
        assert_eq!((side, base), (PosSide::Long, 2.5));
        let k = r#"{"topic":"/contractMarket/execution:XBTUSDTM","type":"message","subject":"match","sn":1,"data":{"symbol":"XBTUSDTM","sequence":1,"side":"buy","size":102,"price":"57.75","tradeId":"1694749771273","ts":1705708799996000000}}"#;
        let Event::Trade { ts, base, .. } = run(Proto::Kucoin, k, &mut t).unwrap()[0] else { panic!() };
        assert_eq!((ts, base), (1_705_708_799_996, 102.0 * 0.001));
        let h = r#"{"channel":"trades","data":[{"coin":"BTC","side":"A","px":"105056.0","sz":"0.00219","time":1737918794873,"hash":"0x1","tid":121451470284048,"users":["0x2","0x3"]}]}"#;
        let Event::Trade { side, id, .. } = run(Proto::Hyperliquid, h, &mut t).unwrap()[0] else { panic!() };
        assert_eq!((side, id), (Side::Sell, TradeId::Int(121_451_470_284_048)));
    }

    #[test]
    fn agg_trades_csv_rows() {
        let csv = b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\r\n\
            1000,60000.5,0.01,1,1,1723075200000,true\r\n\r\n1001,60001,2,2,3,1723075200001, False \n";
        let (mut pending, mut out) = (true, Vec::new());
        binance_agg_trades_csv(csv, &mut pending, false, 1.0, &mut out).unwrap();
        assert!(!pending);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            CsvTrade {
                id: 1000,
                ts: 1_723_075_200_000,
                price: 60000.5,
                base: 0.01,
                usd: 0.01 * 60000.5,
                side: Side::Sell
            }
        );
        assert_eq!((out[1].side, out[1].usd), (Side::Buy, 120_002.0));
        // no header in older files: the first row is data
        let mut out2 = Vec::new();
        binance_agg_trades_csv(b"5,100,3,0,0,7,false\n", &mut true, true, 10.0, &mut out2).unwrap();
        assert_eq!((out2[0].usd, out2[0].base), (30.0, 0.3));
        for bad in [
            &b"1,\"2\",3,4,5,6,true\n"[..],
            b"1,2,3\n",
            b"1,2,3,4,5,6\rtrue\n",
            b"1,1e400,1,1,1,1,true\n",
            b"x1,2,3,4,5,6,true\n1,2",
        ] {
            let mut pending = false;
            assert!(binance_agg_trades_csv(bad, &mut pending, false, 1.0, &mut out2).is_err(), "{bad:?}");
        }
        assert_eq!(out2.len(), 1);
    }

    #[test]
    fn ms_matches_the_reference_magnitudes() {
        assert_eq!(ms(1_700_000_000), 1_700_000_000_000);
        assert_eq!(ms(1_700_000_000_123), 1_700_000_000_123);
        assert_eq!(ms(1_700_000_000_123_456), 1_700_000_000_123);
        assert_eq!(ms(1_700_000_000_123_456_789), 1_700_000_000_123);
        assert_eq!(ms(-1_700_000_000_123_456_789), -1_700_000_000_124);
        assert_eq!(ms(i64::MIN), i64::MIN.div_euclid(1_000_000));
    }

    const PROTOS: [Proto; 10] = [
        Proto::BinanceUsdm,
        Proto::BinanceCoinm,
        Proto::BybitLinear,
        Proto::BybitInverse,
        Proto::Okx,
        Proto::BitgetLinear,
        Proto::GateLinear,
        Proto::GateInverse,
        Proto::Kucoin,
        Proto::Hyperliquid,
    ];

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), p in 0usize..10) {
            let mut t = Table::default();
            let mut out = Vec::new();
            let _ = decode(PROTOS[p], &bytes, &mut t, &mut out);
        }

        #[test]
        fn truncated_frames_are_rejected(cut in 0usize..400) {
            let f = AGG.as_bytes();
            let cut = cut.min(f.len() - 1);
            let mut out = Vec::new();
            prop_assert!(decode(Proto::BinanceUsdm, &f[..cut], &mut Table::default(), &mut out).is_err());
            prop_assert!(out.is_empty());
        }
    }
}
