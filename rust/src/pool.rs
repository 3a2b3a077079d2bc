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

/// Ranges per worker. More than one, so that a worker slowed down (by other load on its
/// core, say) hands part of its share to the others, which take ranges as they finish
/// theirs; few, so that each range stays long.
const RANGES_PER_THREAD: usize = 4;

/// Split `0..n` into a few contiguous ranges per worker (a single range when `n` is small).
#[must_use]
pub fn split(n: usize) -> Vec<Range<usize>> {
    let parts = if n < PARALLEL_MIN { 1 } else { (threads() * RANGES_PER_THREAD).min(n.div_ceil(PARALLEL_MIN / 4)) };
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
    // One range per task, so idle workers can take any of them.
    pool().install(|| ranges.into_par_iter().with_max_len(1).map(&f).collect())
}

/// Run `f` over each item, on the pool when there is more than one, and return the results
/// in item order.
pub fn map_items<I, T, F>(items: Vec<I>, f: F) -> Vec<T>
where
    I: Send,
    T: Send,
    F: Fn(I) -> T + Sync + Send,
{
    if items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    pool().install(|| items.into_par_iter().with_max_len(1).map(&f).collect())
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
    pool().install(|| parts.into_par_iter().with_max_len(1).map(|(r, o)| f(r, o)).collect())
}

/// Split `0..rows` rows of `width` cells into one contiguous range per worker (a single
/// range when there are few cells).
#[must_use]
pub fn split_rows(rows: usize, width: usize) -> Vec<Range<usize>> {
    let parts = if rows.saturating_mul(width) < PARALLEL_MIN { 1 } else { threads().min(rows) };
    let chunk = rows.div_ceil(parts.max(1)).max(1);
    (0..rows).step_by(chunk).map(|s| s..(s + chunk).min(rows)).collect()
}

/// Run `f` over matching chunks of `a` and `b` (one per range of rows of `width` elements)
/// and return the results in range order.
pub fn fill_ranges2<T, R, F>(a: &mut [T], b: &mut [T], ranges: &[Range<usize>], width: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(Range<usize>, &mut [T], &mut [T]) -> R + Sync + Send,
{
    let mut parts: Vec<(Range<usize>, &mut [T], &mut [T])> = Vec::with_capacity(ranges.len());
    let (mut rest_a, mut rest_b) = (a, b);
    for r in ranges {
        let (head_a, tail_a) = rest_a.split_at_mut(r.len() * width);
        let (head_b, tail_b) = rest_b.split_at_mut(r.len() * width);
        parts.push((r.clone(), head_a, head_b));
        (rest_a, rest_b) = (tail_a, tail_b);
    }
    if parts.len() <= 1 {
        return parts.into_iter().map(|(r, a, b)| f(r, a, b)).collect();
    }
    pool().install(|| parts.into_par_iter().map(|(r, a, b)| f(r, a, b)).collect())
}
