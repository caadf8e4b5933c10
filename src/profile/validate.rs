//! A small collector of validation problems, so `validate()` reports every problem at once, and
//! the physical ranges profile values must lie in.
//!
//! Why ranges: a value that is finite but absurd (a bandwidth of 1e-300 bytes/s, a power of
//! 1e308 W) makes derived times and energies overflow to infinity, which outputs print as "not
//! available": a wrong answer that looks like a missing one. Each range below spans every real
//! device with a wide margin (at least 10x past the largest shipped value at the top) and stops
//! far short of where the arithmetic overflows.

use crate::error::Problem;

/// Collects [`Problem`]s with their field paths.
#[derive(Debug, Default)]
pub struct Checker {
    /// Problems found so far.
    pub problems: Vec<Problem>,
}

impl Checker {
    /// Record a problem at `path`.
    pub fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// `x` must be finite and > 0.
    pub fn positive(&mut self, path: &str, x: f64) {
        if !(x.is_finite() && x > 0.0) {
            self.fail(path, format!("expected a finite number > 0, found {x}"));
        }
    }

    /// `x` must be finite and >= 0.
    pub fn non_negative(&mut self, path: &str, x: f64) {
        if !(x.is_finite() && x >= 0.0) {
            self.fail(path, format!("expected a finite number >= 0, found {x}"));
        }
    }

    /// `x` must lie in (0, 1].
    pub fn fraction(&mut self, path: &str, x: f64) {
        if !(x.is_finite() && x > 0.0 && x <= 1.0) {
            self.fail(path, format!("expected a fraction in (0, 1], found {x}"));
        }
    }

    /// `x` must lie in [0, 1].
    pub fn unit_interval(&mut self, path: &str, x: f64) {
        if !(x.is_finite() && (0.0..=1.0).contains(&x)) {
            self.fail(path, format!("expected a number in [0, 1], found {x}"));
        }
    }

    /// An integer count must be in `1..=max` (a bound of [`crate::limits`] or [`range`]).
    pub fn count(&mut self, path: &str, n: u64, max: u64) {
        if n == 0 {
            self.fail(path, "expected an integer >= 1, found 0");
        } else if n > max {
            self.fail(path, format!("expected at most {max}, found {n}"));
        }
    }

    /// `x` must lie in the physical range `lo..=hi` (see [`range`]).
    pub fn in_range(&mut self, path: &str, x: f64, (lo, hi): (f64, f64)) {
        if x.is_finite() && lo <= x && x <= hi {
            return;
        }
        let message = if !x.is_finite() || (lo > 0.0 && x <= 0.0) {
            format!(
                "expected a finite number > 0 (from {lo:e} to {hi:e}, a physical range), found {x}"
            )
        } else {
            format!("expected a number from {lo:e} to {hi:e} (a physical range), found {x:e}")
        };
        self.fail(path, message);
    }

    /// A name must be non-empty.
    pub fn non_empty(&mut self, path: &str, s: &str) {
        if s.trim().is_empty() {
            self.fail(path, "expected a non-empty string");
        }
    }
}

/// Physical ranges of profile values, inclusive, in the unit of the field's name.
pub mod range {
    /// Memory, link and fabric bandwidths, bytes/s: from 1 kB/s (below any memory or link) to
    /// 1e18 (40x a WSE-3's 2.7e16 on-wafer fabric, the fastest shipped).
    pub const BANDWIDTH_BYTES_PER_S: (f64, f64) = (1e3, 1e18);
    /// Peak FLOP/s per device: from 1e6 to 1e19 (80x a WSE-3's published 1.25e17).
    pub const FLOPS_PER_S: (f64, f64) = (1e6, 1e19);
    /// Memory capacities, bytes: from 1 kB to 1e18 (1 EB; the largest shipped is 1.5e12 of
    /// external memory). External memory may also be 0 (none).
    pub const CAPACITY_BYTES: (f64, f64) = (1e3, 1e18);
    /// Fixed times (kernel, iteration, per-sequence overheads, latencies), s: from 0 to 10 s
    /// (measured ones are microseconds to milliseconds).
    pub const TIME_S: (f64, f64) = (0.0, 10.0);
    /// Power of one device, W: from 1 W to 1 MW (a WSE-3 system draws 23 kW).
    pub const POWER_W: (f64, f64) = (1.0, 1e6);
    /// Price of one device for one hour, US$: from 1e-4 to 1e5 (the dearest shipped is 59).
    pub const USD_PER_DEVICE_HOUR: (f64, f64) = (1e-4, 1e5);
    /// Cores per wafer: up to 1e9 (a WSE-3 has 9e5).
    pub const CORES: u64 = 1_000_000_000;
    /// Clock of a core, Hz: from 1 MHz to 100 GHz (shipped cores run near 1 GHz).
    pub const CLOCK_HZ: (f64, f64) = (1e6, 1e11);
    /// Clock cycles of one elementary step (a fabric hop, FLOPs per cycle): 0 to 1e6.
    pub const CYCLES: (f64, f64) = (0.0, 1e6);
    /// Matrix phases per layer crossing a wafer's fabric: up to 1,000 (the shipped value is 4).
    pub const FABRIC_PHASES: (f64, f64) = (0.0, 1e3);
    /// Model dimensions (layers, hidden and FFN widths, heads, head width, experts), each up to
    /// 1e6: the largest published models have 10^2 layers and widths of 10^4 to 10^5, and
    /// products of a few dimensions must stay exact in 64-bit integers.
    pub const MODEL_DIMENSION: u64 = 1_000_000;
    /// Vocabulary and context window, tokens: up to 1e9 (published: 10^5 and 10^7).
    pub const MODEL_TOKENS: u64 = 1_000_000_000;
}
