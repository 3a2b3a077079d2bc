//! liqfast core: exact per-exchange liquidation prices and fused liquidation map/heatmap
//! aggregation. Every module here works on plain Rust values and slices; only `py.rs`
//! (behind the `python` feature) knows about Python and numpy.

pub mod aggregate;
pub mod book;
pub mod decode;
pub mod error;
mod fast;
pub mod grid;
pub mod margin;
pub mod model;
pub mod pool;
pub mod probe;
pub mod seen;
pub mod sim;
pub mod tiers;
pub mod venues;

#[cfg(feature = "python")]
mod py;
#[cfg(feature = "python")]
mod py_decode;
#[cfg(feature = "python")]
mod py_model;
#[cfg(feature = "python")]
mod py_sim;

#[cfg(test)]
mod vectors;
