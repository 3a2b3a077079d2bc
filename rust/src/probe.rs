//! Memory-bandwidth probe for the benchmarks: stream through the same input bytes a kernel
//! reads, on the same pool, doing (almost) nothing else. Its time is the floor a fused kernel
//! is measured against.

use crate::pool;

/// Sum every 8-byte word of every buffer (so the reads cannot be optimised away), splitting
/// each buffer across the pool like the kernels split positions.
#[must_use]
pub fn stream_read(buffers: &[&[u8]]) -> u64 {
    let longest = buffers.iter().map(|b| b.len()).max().unwrap_or(0);
    let parts = pool::map_ranges(pool::split(longest), |r| {
        let mut acc = 0u64;
        for b in buffers {
            let (lo, hi) = (r.start.min(b.len()), r.end.min(b.len()));
            let mut words = b[lo..hi].chunks_exact(8);
            for w in &mut words {
                acc = acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            }
            for &x in words.remainder() {
                acc = acc.wrapping_add(u64::from(x));
            }
        }
        acc
    });
    parts.into_iter().fold(0, u64::wrapping_add)
}
