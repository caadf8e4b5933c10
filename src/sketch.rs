//! Streaming latency distributions: a quantile sketch with bounded relative error, so that a
//! run keeps a few kilobytes per distribution instead of one value per token.
//!
//! The sketch is a DDSketch (Masson, Rim and Lee, "DDSketch: a fast and fully-mergeable quantile
//! sketch with relative-error guarantees", VLDB 2019) from the `sketches-ddsketch` crate: values
//! fall in logarithmic bins of ratio `(1 + a) / (1 - a)`, so every quantile it returns is within
//! relative error `a` ([`RELATIVE_ERROR`]) of the value of that rank; sketches of the same
//! settings merge exactly (per-window sketches add up to the run's); a value can be added with a
//! count in constant time (a stretch of skipped iterations gives every sequence in the batch the
//! same gap). Memory grows with the logarithm of the range of values seen, not with their
//! number. Count, mean, minimum and maximum are kept exactly beside it.
//!
//! Quantiles are read as the exact percentiles of `metrics::Dist::of` are (R-8: interpolating
//! between the two order statistics around `(n + 1/3) q + 1/3`), each order statistic from the
//! sketch, so a sketched percentile is within [`RELATIVE_ERROR`] of the exact one.

use sketches_ddsketch::{Config, DDSketch};

/// Relative error of a sketched quantile against the value of its rank (half a percent).
pub const RELATIVE_ERROR: f64 = 0.005;

/// Most bins a sketch grows to: at [`RELATIVE_ERROR`] one decade takes about 230 bins, so 4,096
/// cover 1 ns to beyond 10^8 s without folding the smallest values together.
const MAX_BINS: u32 = 4096;

/// Smallest value told apart from zero, s (one nanosecond: the engine's clock tick).
const MIN_VALUE: f64 = 1e-9;

/// A mergeable distribution of non-negative values (latencies, s; speeds, tokens/s).
#[derive(Clone)]
pub struct Sketch {
    bins: DDSketch,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Run-length of the last value added and not yet binned (repeats are common: every
    /// sequence of an iteration sees the same gap).
    pending: (f64, u64),
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            bins: DDSketch::new(Config::new(RELATIVE_ERROR, MAX_BINS, MIN_VALUE)),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            pending: (0.0, 0),
        }
    }
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.count)
            .field("mean", &self.mean())
            .field("min", &self.min())
            .field("max", &self.max())
            .finish()
    }
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Sketch::default()
    }

    /// Add `value` once.
    pub fn add(&mut self, value: f64) {
        self.add_n(value, 1);
    }

    /// Add `value` `n` times (constant time). Non-finite values are ignored.
    pub fn add_n(&mut self, value: f64, n: u64) {
        if n == 0 || !value.is_finite() {
            return;
        }
        self.sum += value * n as f64;
        self.count_n(value, n);
    }

    /// Add `value` `n` times, the sum growing by `value` `n` times over: the sketch is the one
    /// `n` calls of [`Sketch::add`] leave, bit for bit (where [`Sketch::add_n`] adds `n value`
    /// to the sum at once), without binning or bookkeeping each.
    pub fn add_each(&mut self, value: f64, n: u64) {
        if n == 0 || !value.is_finite() {
            return;
        }
        for _ in 0..n {
            self.sum += value;
        }
        self.count_n(value, n);
    }

    /// Count, extremes and the pending run of `n` values `value`.
    fn count_n(&mut self, value: f64, n: u64) {
        self.count += n;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if self.pending.1 > 0 && self.pending.0 == value {
            self.pending.1 += n;
        } else {
            self.flush();
            self.pending = (value, n);
        }
    }

    /// Bin the pending run of repeated values.
    fn flush(&mut self) {
        let (v, n) = std::mem::take(&mut self.pending);
        self.bins.add_with_count(v, n);
    }

    /// The bins with the pending run in them.
    fn settled(&self) -> std::borrow::Cow<'_, DDSketch> {
        if self.pending.1 == 0 {
            return std::borrow::Cow::Borrowed(&self.bins);
        }
        let mut b = self.bins.clone();
        b.add_with_count(self.pending.0, self.pending.1);
        std::borrow::Cow::Owned(b)
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        self.flush();
        // Same settings on both sides: the merge cannot fail.
        let _ = self.bins.merge(&other.settled());
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact mean; NaN when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }

    /// Exact smallest value; NaN when empty.
    pub fn min(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.min
        }
    }

    /// Exact largest value; NaN when empty.
    pub fn max(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.max
        }
    }

    /// The `q` quantile (0 to 1), R-8 as statrs computes it, within [`RELATIVE_ERROR`]; NaN when
    /// empty or for `q` outside 0 to 1.
    pub fn quantile(&self, q: f64) -> f64 {
        self.quantiles([q])[0]
    }

    /// Several quantiles at once (the pending run binned once).
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [f64; N] {
        let b = self.settled();
        let n = self.count;
        // The value of 0-based rank `r`: the bin holding it (clamped: a bin's representative
        // value may lie just past the extremes seen); the extremes are exact.
        let rank = |r: u64| {
            if r == 0 {
                return self.min;
            }
            if r + 1 >= n {
                return self.max;
            }
            // The sketch reads rank floor(q (n - 1)): aim at the middle of rank r.
            let q = ((r as f64 + 0.5) / (n - 1) as f64).min(1.0);
            match b.quantile(q) {
                Ok(Some(v)) => v.clamp(self.min, self.max),
                _ => f64::NAN,
            }
        };
        qs.map(|q| {
            if n == 0 || !(0.0..=1.0).contains(&q) {
                return f64::NAN;
            }
            // R-8 (Hyndman and Fan 1996), 1-based h.
            let h = (n as f64 + 1.0 / 3.0) * q + 1.0 / 3.0;
            let lo = h.floor();
            if lo < 1.0 {
                return self.min;
            }
            if lo >= n as f64 {
                return self.max;
            }
            let (a, b) = (rank(lo as u64 - 1), rank(lo as u64));
            a + (h - lo) * (b - a)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Dist;

    #[test]
    fn adding_each_of_a_run_is_adding_them_one_by_one() {
        let runs = [
            (0.1, 3),
            (0.1, 1),
            (0.2, 7),
            (1e-3, 1),
            (0.2, 2),
            (0.1, 5),
            (7.5, 0),
        ];
        let (mut one, mut each) = (Sketch::new(), Sketch::new());
        for (v, n) in runs {
            for _ in 0..n {
                one.add(v);
            }
            each.add_each(v, n);
        }
        assert_eq!(one.count(), each.count());
        assert_eq!(one.mean().to_bits(), each.mean().to_bits());
        assert_eq!((one.min(), one.max()), (each.min(), each.max()));
        let qs = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0];
        assert_eq!(
            one.quantiles(qs).map(f64::to_bits),
            each.quantiles(qs).map(f64::to_bits)
        );
    }

    /// A deterministic sample of `n` values shaped by `shape` (0: log-normal-like spread over
    /// three decades, 1: two modes, 2: few distinct values, 3: a heavy tail).
    fn sample(n: usize, shape: usize) -> Vec<f64> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                match shape {
                    0 => 1e-3 * 10f64.powf(3.0 * u),
                    1 => {
                        if u < 0.7 {
                            0.020 + 0.002 * u
                        } else {
                            0.045 + 0.01 * u
                        }
                    }
                    2 => [0.010, 0.012, 0.023, 0.051][(u * 4.0) as usize % 4],
                    _ => 0.01 / (1.0 - 0.999 * u),
                }
            })
            .collect()
    }

    #[test]
    fn sketched_percentiles_are_within_one_percent_of_exact() {
        for shape in 0..4 {
            for n in [1_000, 20_000] {
                let values = sample(n, shape);
                let mut s = Sketch::new();
                values.iter().for_each(|&v| s.add(v));
                let (a, b) = (Dist::of(values), Dist::of_sketch(&s));
                for (exact, sketched) in [(a.p50, b.p50), (a.p90, b.p90), (a.p99, b.p99)] {
                    let rel = (sketched - exact).abs() / exact;
                    assert!(rel < 0.01, "shape {shape} n {n}: {sketched} vs {exact}");
                }
                approx::assert_relative_eq!(a.mean, b.mean, max_relative = 1e-12);
            }
        }
    }

    #[test]
    fn counts_merges_and_repeats_agree_with_adding_one_by_one() {
        let values = sample(5_000, 0);
        let mut one = Sketch::new();
        values.iter().for_each(|&v| one.add(v));
        // The same values in two halves, merged, and as runs of repeats.
        let (mut left, mut right) = (Sketch::new(), Sketch::new());
        values[..2_000].iter().for_each(|&v| left.add(v));
        values[2_000..].iter().for_each(|&v| right.add(v));
        left.merge(&right);
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(one.quantile(q), left.quantile(q));
        }
        assert_eq!(left.count(), 5_000);
        let mut runs = Sketch::new();
        runs.add_n(0.02, 3);
        runs.add_n(0.02, 2);
        runs.add(0.05);
        assert_eq!(runs.count(), 6);
        approx::assert_relative_eq!(runs.mean(), 0.15 / 6.0, max_relative = 1e-12);
        assert_eq!((runs.min(), runs.max()), (0.02, 0.05));
        approx::assert_relative_eq!(runs.quantile(0.5), 0.02, max_relative = RELATIVE_ERROR);
        // Empty: NaN everywhere, and merging it changes nothing.
        let empty = Sketch::new();
        assert!(empty.quantile(0.5).is_nan() && empty.mean().is_nan());
        runs.merge(&empty);
        assert_eq!(runs.count(), 6);
    }
}
