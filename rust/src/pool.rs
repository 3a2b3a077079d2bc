//! One persistent thread pool for every parallel kernel. Starting threads costs milliseconds
//! on small machines, so the pool is built once and reused; after `fork()` the child gets a
//! fresh one (the parent's worker threads do not exist in the child).

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// Below this many items a kernel runs on the calling thread: fanning out costs more than it
/// saves.
pub const PARALLEL_MIN: usize = 32_768;

static POOL: Mutex<Option<Arc<ThreadPool>>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("LIQFAST_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

fn pool() -> Arc<ThreadPool> {
    let mut guard = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    guard
        .get_or_insert_with(|| {
            Arc::new(
                ThreadPoolBuilder::new()
                    .num_threads(default_threads())
                    .thread_name(|i| format!("liqfast-{i}"))
                    .build()
                    .expect("cannot start the liqfast thread pool"),
            )
        })
        .clone()
}

/// Number of worker threads kernels use.
#[must_use]
pub fn threads() -> usize {
    pool().current_num_threads()
}

/// Forget the pool in a forked child. Its threads were not copied by `fork()`, so it must
/// not be used or dropped (dropping would wait for threads that do not exist).
pub fn reset_after_fork() {
    let mut guard = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(old) = guard.take() {
        std::mem::forget(old);
    }
}

/// Split `0..n` into one contiguous range per worker (a single range when `n` is small).
#[must_use]
pub fn split(n: usize) -> Vec<Range<usize>> {
    let parts = if n < PARALLEL_MIN { 1 } else { threads().min(n.div_ceil(PARALLEL_MIN / 4)) };
    let chunk = n.div_ceil(parts.max(1)).max(1);
    (0..n).step_by(chunk).map(|s| s..(s + chunk).min(n)).collect()
}

/// Run `f` over each range, on the pool when there is more than one, and return the results
/// in range order.
pub fn map_ranges<T, F>(ranges: Vec<Range<usize>>, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(Range<usize>) -> T + Sync + Send,
{
    if ranges.len() <= 1 {
        return ranges.into_iter().map(f).collect();
    }
    pool().install(|| ranges.into_par_iter().map(&f).collect())
}

/// Run `f` over matching chunks of `out` (one per range).
pub fn fill_ranges<T, F>(out: &mut [T], ranges: &[Range<usize>], f: F) -> Vec<crate::error::Result<()>>
where
    T: Send,
    F: Fn(Range<usize>, &mut [T]) -> crate::error::Result<()> + Sync + Send,
{
    let mut parts: Vec<(Range<usize>, &mut [T])> = Vec::with_capacity(ranges.len());
    let mut rest = out;
    for r in ranges {
        let (head, tail) = rest.split_at_mut(r.len());
        parts.push((r.clone(), head));
        rest = tail;
    }
    if parts.len() <= 1 {
        return parts.into_iter().map(|(r, o)| f(r, o)).collect();
    }
    pool().install(|| parts.into_par_iter().map(|(r, o)| f(r, o)).collect())
}
