//! A small collector of validation problems, so `validate()` reports every problem at once.

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

    /// An integer count must be >= 1.
    pub fn at_least_one(&mut self, path: &str, n: u64) {
        if n == 0 {
            self.fail(path, "expected an integer >= 1, found 0");
        }
    }

    /// An integer count must be in `1..=max` (a bound of [`crate::limits`]).
    pub fn count(&mut self, path: &str, n: u64, max: u64) {
        if n == 0 {
            self.fail(path, "expected an integer >= 1, found 0");
        } else if n > max {
            self.fail(
                path,
                format!("expected at most {max}, found {n} (a bound on what one run can hold)"),
            );
        }
    }

    /// A name must be non-empty.
    pub fn non_empty(&mut self, path: &str, s: &str) {
        if s.trim().is_empty() {
            self.fail(path, "expected a non-empty string");
        }
    }
}
