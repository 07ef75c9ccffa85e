//! Shared by the micro-benchmark examples (`verify_cost`, `rules_cost`); not an example
//! itself, as cargo only takes `examples/*.rs` and `examples/*/main.rs`.

use std::time::{Duration, Instant};

/// Runs `f` `iterations` times in 10 batches, after one batch to warm up; the median of the
/// batches' mean per call, so that a burst of other load on the machine counts less.
pub(crate) fn time(iterations: u32, mut f: impl FnMut()) -> Duration {
    let batch = iterations.div_ceil(10).max(1);
    for _ in 0..batch {
        f();
    }
    let mut means: Vec<Duration> = (0..10)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed() / batch
        })
        .collect();
    means.sort();
    means[means.len() / 2]
}
