//! What validation remembers between runs, in three files checked into `reference/`:
//! - `known-misses.toml`: the rows known to miss their tolerance, each with its error when listed
//!   and its suspected cause;
//! - `validate-results.toml`: every row's error as last accepted (written by
//!   `infersim validate --write-results`; committing it is the act that accepts a change);
//! - `fits.toml`: each fit of profile parameters to reference rows, with its cross-validated
//!   errors (written by `infersim calibrate --record`).
//!
//! [`strict_problems`] is the ratchet `validate --strict` applies: no miss outside the ledger, no
//! listed miss that passes, no error moved more than [`MAX_MOVE`] from its accepted value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RowResult, Verdict};
use crate::error::{Error, Result};

/// The shipped known-miss ledger.
pub const SHIPPED_MISSES: &str = include_str!("../../../reference/known-misses.toml");
/// The shipped accepted results.
pub const SHIPPED_RESULTS: &str = include_str!("../../../reference/validate-results.toml");
/// The shipped fit records.
pub const SHIPPED_FITS: &str = include_str!("../../../reference/fits.toml");

/// Largest change of a row's relative error from its accepted value that `--strict` lets pass:
/// 2 points.
pub const MAX_MOVE: f64 = 0.02;

fn parse_toml<T: serde::de::DeserializeOwned>(label: &str, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Parse {
        file: label.to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// A row known to miss its tolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownMiss {
    /// Row identifier.
    pub id: String,
    /// Its relative error when listed.
    pub error: Option<f64>,
    /// The suspected cause, with what was measured to suspect it.
    pub cause: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    #[serde(default)]
    miss: Vec<KnownMiss>,
}

/// The known-miss ledger.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Its entries, in file order.
    pub misses: Vec<KnownMiss>,
}

impl Ledger {
    /// Parse a ledger file (`[[miss]]` tables); ids must be unique and causes given.
    pub fn parse(label: &str, text: &str) -> Result<Ledger> {
        let f: LedgerFile = parse_toml(label, text)?;
        let mut seen = BTreeMap::new();
        for m in &f.miss {
            if seen.insert(m.id.as_str(), ()).is_some() || m.cause.trim().is_empty() {
                return Err(Error::arg(
                    format!("{label}: miss {}", m.id),
                    "expected each row listed once, with its cause",
                ));
            }
        }
        Ok(Ledger { misses: f.miss })
    }

    /// The shipped ledger.
    pub fn shipped() -> Result<Ledger> {
        Ledger::parse("reference/known-misses.toml", SHIPPED_MISSES)
    }

    /// The entry for row `id`.
    pub fn get(&self, id: &str) -> Option<&KnownMiss> {
        self.misses.iter().find(|m| m.id == id)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptedFile {
    error: BTreeMap<String, f64>,
}

/// Every row's relative error as last accepted (NaN for a row that could not be simulated).
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    /// Relative error by row id.
    pub errors: BTreeMap<String, f64>,
}

impl Accepted {
    /// The shipped accepted results.
    pub fn shipped() -> Result<Accepted> {
        Accepted::parse("reference/validate-results.toml", SHIPPED_RESULTS)
    }

    /// Parse an accepted-results file (an `[error]` table of row id to relative error).
    pub fn parse(label: &str, text: &str) -> Result<Accepted> {
        let f: AcceptedFile = parse_toml(label, text)?;
        Ok(Accepted { errors: f.error })
    }
}

/// The accepted-results file for `results`: what `--strict` will compare later runs with.
pub fn write_results(results: &[RowResult]) -> String {
    let mut out = String::from(
        "# Every reference row's relative error (predicted / published - 1) as last accepted.\n\
         # Written by `infersim validate --write-results reference/validate-results.toml`;\n\
         # `infersim validate --strict` fails when a row's error moves more than 2 points from\n\
         # its value here. Committing a change to this file is what accepts a change of results.\n\
         \n[error]\n",
    );
    for r in results {
        let e = if r.rel_error.is_finite() {
            format!("{:.6}", r.rel_error)
        } else {
            "nan".to_string()
        };
        out.push_str(&format!("{:?} = {e}\n", r.id));
    }
    out
}

/// A fit of profile parameters to reference rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRecord {
    /// The hardware profile fitted.
    pub hardware: String,
    /// The fitted fields, as `--set` paths.
    pub params: Vec<String>,
    /// Their fitted values, in the order of `params`.
    pub values: Vec<f64>,
    /// The rows fitted to.
    pub rows: Vec<String>,
    /// How the values were found, and the command that reproduces them.
    pub method: String,
    /// Each row's relative error when predicted with parameters fitted without it (its fold);
    /// empty when the fit has as many parameters as rows.
    #[serde(default)]
    pub held_out_error: BTreeMap<String, f64>,
}

impl FitRecord {
    /// True when the fit has no more rows than parameters: it reproduces its rows by
    /// construction, which is no evidence of agreement.
    pub fn exactly_determined(&self) -> bool {
        self.rows.len() <= self.params.len()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FitsFile {
    #[serde(default)]
    fit: Vec<FitRecord>,
}

/// The recorded fits.
#[derive(Debug, Clone, Default)]
pub struct Fits {
    /// Every fit, in file order.
    pub fits: Vec<FitRecord>,
}

impl Fits {
    /// Parse a fits file (`[[fit]]` tables); a row may belong to one fit only.
    pub fn parse(label: &str, text: &str) -> Result<Fits> {
        let f: FitsFile = parse_toml(label, text)?;
        let mut seen = BTreeMap::new();
        for fit in &f.fit {
            if fit.params.len() != fit.values.len() || fit.params.is_empty() {
                return Err(Error::arg(
                    format!("{label}: fit of {}", fit.hardware),
                    "expected one value per parameter",
                ));
            }
            for r in &fit.rows {
                if seen.insert(r.as_str(), ()).is_some() {
                    return Err(Error::arg(
                        format!("{label}: fit of {}", fit.hardware),
                        format!("row {r} belongs to two fits"),
                    ));
                }
            }
        }
        Ok(Fits { fits: f.fit })
    }

    /// The shipped fit records.
    pub fn shipped() -> Result<Fits> {
        Fits::parse("reference/fits.toml", SHIPPED_FITS)
    }

    /// The fit that used row `id`.
    pub fn of(&self, id: &str) -> Option<&FitRecord> {
        self.fits.iter().find(|f| f.rows.iter().any(|r| r == id))
    }

    /// True if a recorded fit used row `id`.
    pub fn fitted(&self, id: &str) -> bool {
        self.of(id).is_some()
    }

    /// Row `id`'s held-out error in its fit's cross-validation.
    pub fn loo(&self, id: &str) -> Option<f64> {
        self.of(id)?.held_out_error.get(id).copied()
    }

    /// Replace the record of the same hardware and parameters as `fit`, or add it.
    pub fn record(&mut self, fit: FitRecord) {
        match self
            .fits
            .iter_mut()
            .find(|f| f.hardware == fit.hardware && f.params == fit.params)
        {
            Some(f) => *f = fit,
            None => self.fits.push(fit),
        }
    }

    /// The file's text.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(&FitsFile {
            fit: self.fits.clone(),
        })
        .map_err(|e| Error::arg("--record", e.to_string()))?;
        Ok(format!(
            "# Fits of hardware-profile parameters to reference rows, with each row's error when it\n\
             # is held out of the fit. Written by `infersim calibrate --record reference/fits.toml`;\n\
             # `infersim validate` marks these rows as fitted and prints their held-out errors.\n\n{body}"
        ))
    }
}

/// Why `validate --strict` fails on `results`, if it does: misses outside the `ledger`, listed
/// misses that now pass, ledger entries for unknown rows, and errors missing from `accepted` or
/// moved more than [`MAX_MOVE`] from it. Empty when the run passes.
pub fn strict_problems(results: &[RowResult], ledger: &Ledger, accepted: &Accepted) -> Vec<String> {
    let mut problems = Vec::new();
    let pct = |e: f64| format!("{:+.1}%", 100.0 * e);
    for r in results {
        match (r.verdict, r.known_miss) {
            (Verdict::Miss, false) => problems.push(format!(
                "{} misses its tolerance ({} against +-{:.0}%) and is not in the known-miss ledger",
                r.id,
                pct(r.rel_error),
                100.0 * r.tolerance
            )),
            (Verdict::Pass, true) => problems.push(format!(
                "{} now passes ({}): take it out of the known-miss ledger",
                r.id,
                pct(r.rel_error)
            )),
            _ => {}
        }
        match accepted.errors.get(&r.id) {
            None => problems.push(format!(
                "{} has no accepted error; accept it with --write-results",
                r.id
            )),
            Some(&a) => {
                let same =
                    (a.is_nan() && r.rel_error.is_nan()) || (a - r.rel_error).abs() <= MAX_MOVE;
                if !same {
                    problems.push(format!(
                        "{}'s error moved from {} to {} (more than {:.0} points); accept it with --write-results",
                        r.id,
                        pct(a),
                        pct(r.rel_error),
                        100.0 * MAX_MOVE
                    ));
                }
            }
        }
    }
    let known = |id: &str| results.iter().any(|r| r.id == id);
    for m in &ledger.misses {
        if !known(&m.id) {
            problems.push(format!(
                "the known-miss ledger lists {}, which is not a reference row",
                m.id
            ));
        }
    }
    for id in accepted.errors.keys() {
        if !known(id) {
            problems.push(format!(
                "the accepted results list {id}, which is not a reference row"
            ));
        }
    }
    problems
}
