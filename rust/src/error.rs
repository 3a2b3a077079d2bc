//! Error type shared by every kernel. Knows nothing of Python; `py.rs` maps each variant to
//! the matching class of the `LiqfastError` hierarchy.

use std::fmt;

/// Which input of a position was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Entry,
    Qty,
    Leverage,
    Margin,
    TimeIndex,
    /// A price given on its own (tier and notional look-ups).
    Price,
}

impl Field {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Field::Entry => "entry",
            Field::Qty => "qty",
            Field::Leverage => "leverage",
            Field::Margin => "margin",
            Field::TimeIndex => "time_index",
            Field::Price => "price",
        }
    }
}

/// What was wrong with one position.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// NaN or infinite.
    NotFinite(Field, f64),
    /// Zero or negative where a positive number is required.
    NotPositive(Field, f64),
    /// Negative where zero is allowed.
    Negative(Field, f64),
    /// Outside its allowed range (message says which).
    OutOfRange(Field, f64, &'static str),
    /// An integer outside its allowed range (printed as the integer it is).
    IntOutOfRange(Field, i64, &'static str),
    /// Side other than +1 / -1.
    BadSide(i64),
    /// The posted margin does not cover maintenance at the entry price: the exchange would
    /// liquidate such a position immediately, so it cannot exist.
    BelowMaintenanceAtEntry { margin: f64, maintenance: f64 },
    /// Leverage above what the tier at the entry notional allows.
    LeverageTooHigh { leverage: f64, max_leverage: f64, tier: usize },
    /// A cross wallet that does not cover the legs' maintenance net of their PnL at any leg's
    /// entry price: the later leg was opened there, so the account cannot hold both.
    WalletBelowMaintenance { wallet: f64, needed: f64 },
}

/// A float as messages show it: as Rust displays it, but in exponent form when very large or
/// very small (`1e300`, not 301 digits).
#[derive(Clone, Copy, Debug)]
pub struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0.abs();
        if a.is_finite() && a != 0.0 && !(1e-5..1e16).contains(&a) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotFinite(field, v) => write!(f, "{} must be finite, got {}", field.name(), Num(*v)),
            Problem::NotPositive(field, v) => write!(f, "{} must be > 0, got {}", field.name(), Num(*v)),
            Problem::Negative(field, v) => write!(f, "{} must be >= 0, got {}", field.name(), Num(*v)),
            Problem::OutOfRange(field, v, range) => {
                write!(f, "{} must be {range}, got {}", field.name(), Num(*v))
            }
            Problem::IntOutOfRange(field, v, range) => write!(f, "{} must be {range}, got {v}", field.name()),
            Problem::BadSide(v) => write!(f, "side must be +1 (long) or -1 (short), got {v}"),
            Problem::BelowMaintenanceAtEntry { margin, maintenance } => write!(
                f,
                "margin {} does not cover the maintenance margin {} at the entry price (the \
                 position would be liquidated on opening)",
                Num(*margin),
                Num(*maintenance)
            ),
            Problem::LeverageTooHigh { leverage, max_leverage, tier } => write!(
                f,
                "leverage {} exceeds the maximum {} of tier {} at the entry notional",
                Num(*leverage),
                Num(*max_leverage),
                tier + 1
            ),
            Problem::WalletBelowMaintenance { wallet, needed } => write!(
                f,
                "wallet {} does not cover the maintenance margin net of the legs' PnL ({}) at any \
                 leg's entry price (the account would be liquidated on opening)",
                Num(*wallet),
                Num(*needed)
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum LiqError {
    /// A position (row `index` of a batch, or the single position when `None`) is invalid.
    Position { index: Option<usize>, problem: Problem },
    /// Array shape, length or layout problem.
    Array(String),
    /// A tier table that is not usable (unordered, gaps, rates out of range...).
    Tiers(String),
    /// Price grid construction or use problem.
    Grid(String),
    /// Bar series / model input problem (issue: model).
    Bars { index: Option<usize>, message: String },
    /// Other invalid argument (bad option value, unknown formula name...).
    Invalid(String),
    /// Checkpoint bytes that cannot be restored.
    Checkpoint(String),
}

impl LiqError {
    #[must_use]
    pub fn at(index: usize, problem: Problem) -> Self {
        LiqError::Position { index: Some(index), problem }
    }

    #[must_use]
    pub fn single(problem: Problem) -> Self {
        LiqError::Position { index: None, problem }
    }

    /// Attach a row index to a position error raised by a scalar helper.
    #[must_use]
    pub fn with_index(self, i: usize) -> Self {
        match self {
            LiqError::Position { index: None, problem } => LiqError::Position { index: Some(i), problem },
            other => other,
        }
    }
}

impl fmt::Display for LiqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiqError::Position { index: Some(i), problem } => write!(f, "position {i}: {problem}"),
            LiqError::Position { index: None, problem } => write!(f, "{problem}"),
            LiqError::Array(m) | LiqError::Tiers(m) | LiqError::Grid(m) | LiqError::Invalid(m) => f.write_str(m),
            LiqError::Bars { index: Some(i), message } => write!(f, "bar {i}: {message}"),
            LiqError::Bars { index: None, message } => f.write_str(message),
            LiqError::Checkpoint(m) => write!(f, "cannot restore checkpoint: {m}"),
        }
    }
}

impl std::error::Error for LiqError {}

pub type Result<T, E = LiqError> = std::result::Result<T, E>;
