//! Calibration: fit a hardware profile's free parameters to reference rows by least squares on
//! log error (`sum ln(predicted / published)^2`), each parameter bounded to a physical range, and
//! report leave-one-out error (every row predicted with parameters fitted without it), so the
//! accuracy claimed is prediction, not memory.
//!
//! Optimiser: cyclic coordinate descent, each coordinate by golden-section search over its bounds
//! (in log space when the lower bound is positive). Enough for the handful of smooth parameters
//! a profile has; not a global optimiser.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::profile::Override;
use crate::study::validate::{predict_rows_with_progress, FitRecord, ReferenceRow};

/// A free parameter: a profile field and its physical range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// Dotted path as for `--set`, e.g. `hardware.gpu.overheads.kernel_s`.
    pub path: String,
    /// Smallest physical value.
    pub min: f64,
    /// Largest physical value.
    pub max: f64,
}

impl Param {
    /// Parse `PATH=MIN:MAX`.
    pub fn parse(spec: &str) -> Result<Param> {
        let bad = |m: &str| {
            Error::arg(
                "--param",
                format!("{m}; expected PATH=MIN:MAX, found \"{spec}\""),
            )
        };
        let (path, range) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (lo, hi) = range
            .split_once(':')
            .ok_or_else(|| bad("no ':' in the range"))?;
        let min: f64 = lo.trim().parse().map_err(|_| bad("MIN is not a number"))?;
        let max: f64 = hi.trim().parse().map_err(|_| bad("MAX is not a number"))?;
        if !(min.is_finite() && max.is_finite() && min >= 0.0 && min < max) {
            return Err(bad("expected 0 <= MIN < MAX"));
        }
        if !path.trim().starts_with("hardware.") {
            return Err(bad(
                "calibration fits hardware fields (a path starting with hardware.)",
            ));
        }
        Ok(Param {
            path: path.trim().to_string(),
            min,
            max,
        })
    }

    fn unit_of(&self, x: f64) -> f64 {
        if self.min > 0.0 {
            (x.ln() - self.min.ln()) / (self.max.ln() - self.min.ln())
        } else {
            (x - self.min) / (self.max - self.min)
        }
    }

    fn value_at(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        if self.min > 0.0 {
            (self.min.ln() + u * (self.max.ln() - self.min.ln())).exp()
        } else {
            self.min + u * (self.max - self.min)
        }
    }
}

fn overrides(params: &[Param], values: &[f64]) -> Result<Vec<Override>> {
    params
        .iter()
        .zip(values)
        .map(|(p, v)| Override::parse(&format!("{}={v:e}", p.path)))
        .collect()
}

/// Predictions of `rows` with the parameters set to `values`.
pub fn predictions(rows: &[ReferenceRow], params: &[Param], values: &[f64]) -> Result<Vec<f64>> {
    predictions_with(rows, params, values, &|| {})
}

/// [`predictions`], calling `progress` once per unit of work (see `prediction_tasks`).
fn predictions_with(
    rows: &[ReferenceRow],
    params: &[Param],
    values: &[f64],
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<f64>> {
    let o = overrides(params, values)?;
    predict_rows_with_progress(rows, &o, progress)
        .into_iter()
        .map(|p| p.map(|p| p.value))
        .collect()
}

fn loss(
    rows: &[ReferenceRow],
    params: &[Param],
    values: &[f64],
    progress: &(dyn Fn() + Sync),
) -> f64 {
    match predictions_with(rows, params, values, progress) {
        Ok(p) => p
            .iter()
            .zip(rows)
            .map(|(p, r)| {
                let e = (p / r.published).ln();
                if e.is_finite() {
                    e * e
                } else {
                    1e6
                }
            })
            .sum(),
        // A setting the model cannot run (e.g. a model that no longer fits) is out of bounds.
        Err(_) => 1e12,
    }
}

/// Fit `params` to `rows` starting from `start`; returns the values and the final loss.
pub fn fit(rows: &[ReferenceRow], params: &[Param], start: &[f64]) -> (Vec<f64>, f64) {
    fit_with(rows, params, start, &|| {})
}

/// [`fit`], calling `progress` once per unit of prediction work.
fn fit_with(
    rows: &[ReferenceRow],
    params: &[Param],
    start: &[f64],
    progress: &(dyn Fn() + Sync),
) -> (Vec<f64>, f64) {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let mut u: Vec<f64> = params
        .iter()
        .zip(start)
        .map(|(p, &x)| p.unit_of(x.clamp(p.min, p.max)))
        .collect();
    let values =
        |u: &[f64]| -> Vec<f64> { params.iter().zip(u).map(|(p, &x)| p.value_at(x)).collect() };
    let mut best = loss(rows, params, &values(&u), progress);
    for _round in 0..200 {
        let before = best;
        for j in 0..params.len() {
            let eval = |x: f64, u: &mut Vec<f64>| {
                u[j] = x;
                loss(rows, params, &values(u), progress)
            };
            let (mut a, mut b) = (0.0_f64, 1.0_f64);
            let mut trial = u.clone();
            let mut c = b - GOLDEN * (b - a);
            let mut d = a + GOLDEN * (b - a);
            let (mut fc, mut fd) = (eval(c, &mut trial), eval(d, &mut trial));
            for _ in 0..30 {
                if fc < fd {
                    b = d;
                    d = c;
                    fd = fc;
                    c = b - GOLDEN * (b - a);
                    fc = eval(c, &mut trial);
                } else {
                    a = c;
                    c = d;
                    fc = fd;
                    d = a + GOLDEN * (b - a);
                    fd = eval(d, &mut trial);
                }
            }
            let x = (a + b) / 2.0;
            let fx = eval(x, &mut trial);
            if fx < best {
                best = fx;
                u[j] = x;
            }
        }
        // One parameter is done after one search; more need rounds until none improves.
        if params.len() == 1 || before - best <= 1e-12 * before.max(1e-300) {
            break;
        }
    }
    (values(&u), best)
}

/// One row's fit and leave-one-out outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RowFit {
    /// Row identifier.
    pub id: String,
    /// Published value.
    pub published: f64,
    /// Prediction with all rows fitted.
    pub fitted_prediction: f64,
    /// Relative error with all rows fitted.
    pub fitted_rel_error: f64,
    /// Relative error of the prediction made with parameters fitted without this row (without its
    /// fold, when k-fold); NaN when nothing can be held out.
    pub loo_rel_error: f64,
}

/// The outcome of a calibration.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Parameters fitted.
    pub params: Vec<Param>,
    /// Fitted values, in the order of `params`.
    pub values: Vec<f64>,
    /// Per-row errors.
    pub rows: Vec<RowFit>,
    /// Median |leave-one-out relative error| (of the held-out folds when k-fold).
    pub median_abs_loo_rel_error: f64,
    /// How rows were held out: leave-one-out, k-fold, or none.
    pub cross_validation: String,
}

impl Calibration {
    /// The fit as validation records it (`reference/fits.toml`): `hardware`'s parameters, the
    /// rows, the held-out errors, and how to reproduce it.
    pub fn record(&self, hardware: &str) -> FitRecord {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("--param {}={}:{}", p.path, p.min, p.max))
            .collect();
        FitRecord {
            hardware: hardware.to_string(),
            params: self.params.iter().map(|p| p.path.clone()).collect(),
            values: self.values.iter().map(|&v| written(v)).collect(),
            rows: self.rows.iter().map(|r| r.id.clone()).collect(),
            method: format!(
                "infersim calibrate --hardware {hardware} {} --rows (the rows above); cross-validation: {}",
                params.join(" "),
                self.cross_validation
            ),
            held_out_error: self
                .rows
                .iter()
                .filter(|r| r.loo_rel_error.is_finite())
                .map(|r| (r.id.clone(), r.loo_rel_error))
                .collect(),
        }
    }
}

/// Folds of the cross-validation of `rows` rows fitting `params` parameters: none when the rows
/// do not outnumber the parameters (nothing can be held out), each row its own fold up to ten
/// rows, five folds past that (rows dealt round-robin).
pub fn folds(rows: usize, params: usize) -> usize {
    match rows {
        n if n <= params => 0,
        n if n <= 10 => n,
        _ => 5,
    }
}

/// Fit `params` to `rows` from `start`, then refit without each row (or each fold of rows, see
/// [`folds`]) to predict it.
pub fn calibrate(rows: &[ReferenceRow], params: &[Param], start: &[f64]) -> Result<Calibration> {
    calibrate_with_progress(rows, params, start, &|| {})
}

/// [`calibrate`], calling `progress` once per unit of prediction work (the number of units is not
/// known in advance: the searches stop when they converge).
pub fn calibrate_with_progress(
    rows: &[ReferenceRow],
    params: &[Param],
    start: &[f64],
    progress: &(dyn Fn() + Sync),
) -> Result<Calibration> {
    if rows.is_empty() || params.is_empty() {
        return Err(Error::arg(
            "calibrate",
            "needs at least one row and one --param",
        ));
    }
    if rows.len() < params.len() {
        return Err(Error::arg(
            "calibrate",
            format!(
                "{} rows cannot determine {} parameters",
                rows.len(),
                params.len()
            ),
        ));
    }
    let (values, _) = fit_with(rows, params, start, progress);
    let fitted = predictions(rows, params, &values)?;
    let k = folds(rows.len(), params.len());
    use rayon::prelude::*;
    // Each fold's rows predicted with the parameters fitted to the other folds.
    let held: Vec<(usize, f64)> = (0..k)
        .into_par_iter()
        .flat_map_iter(|f| {
            let (inside, rest): (Vec<_>, Vec<_>) = rows
                .iter()
                .cloned()
                .enumerate()
                .partition(|(i, _)| i % k == f);
            let rest: Vec<ReferenceRow> = rest.into_iter().map(|(_, r)| r).collect();
            let (v, _) = fit_with(&rest, params, &values, progress);
            let ids: Vec<usize> = inside.iter().map(|(i, _)| *i).collect();
            let held_rows: Vec<ReferenceRow> = inside.into_iter().map(|(_, r)| r).collect();
            let p =
                predictions(&held_rows, params, &v).unwrap_or_else(|_| vec![f64::NAN; ids.len()]);
            ids.into_iter()
                .zip(p)
                .map(|(i, p)| (i, p / rows[i].published - 1.0))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut loo = vec![f64::NAN; rows.len()];
    for (i, e) in held {
        loo[i] = e;
    }
    let mut abs: Vec<f64> = loo
        .iter()
        .filter(|e| e.is_finite())
        .map(|e| e.abs())
        .collect();
    abs.sort_by(f64::total_cmp);
    let median = match abs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => abs[n / 2],
        n => (abs[n / 2 - 1] + abs[n / 2]) / 2.0,
    };
    Ok(Calibration {
        params: params.to_vec(),
        rows: rows
            .iter()
            .zip(&fitted)
            .zip(&loo)
            .map(|((r, p), l)| RowFit {
                id: r.id.clone(),
                published: r.published,
                fitted_prediction: *p,
                fitted_rel_error: p / r.published - 1.0,
                loo_rel_error: *l,
            })
            .collect(),
        values,
        median_abs_loo_rel_error: median,
        cross_validation: match k {
            0 => "none: no more rows than parameters".to_string(),
            k if k == rows.len() => "leave-one-out".to_string(),
            k => format!("{k}-fold"),
        },
    })
}

/// A fitted value as profiles carry it: five significant digits.
fn written(v: f64) -> f64 {
    format!("{v:.4e}").parse().unwrap_or(v)
}

/// Rewrite `key = value` lines of a profile's TOML text for the fitted parameters, keeping
/// every comment, and note the fit beside each value.
pub fn write_values(text: &str, params: &[Param], values: &[f64], note: &str) -> Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (p, v) in params.iter().zip(values) {
        let parts: Vec<&str> = p.path.split('.').skip(1).collect();
        let (key, section) = parts
            .split_last()
            .ok_or_else(|| Error::arg("--param", "empty path"))?;
        let section = section.join(".");
        let mut current = String::new();
        let mut done = false;
        for line in lines.iter_mut() {
            let t = line.trim();
            if t.starts_with('[') && t.ends_with(']') {
                current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
                continue;
            }
            let is_key = t.split_once('=').is_some_and(|(k, _)| k.trim() == *key);
            if current == section && is_key {
                *line = format!("{key} = {v:.4e}  # {note}");
                done = true;
                break;
            }
        }
        if !done {
            return Err(Error::arg(
                "--write",
                format!("no line `{key} = ...` in section [{section}] of the profile"),
            ));
        }
    }
    Ok(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::validate::{Metric, Scenario};

    fn row(id: &str, model: &str, wafers: u32, published: f64) -> ReferenceRow {
        ReferenceRow {
            id: id.into(),
            family: "test".into(),
            hardware: "wse-3".into(),
            model: model.into(),
            sets: vec![format!("hardware.wafer.wafers={wafers}")],
            tp: None,
            attention_dp: false,
            pp: None,
            max_batch: None,
            max_batched_tokens: None,
            preemption: None,
            chunked_prefill: None,
            routing: None,
            metric: Metric::TokensPerSPerUser,
            scenario: Scenario::SingleStream {
                context_tokens: 1024,
            },
            speculative: None,
            software: None,
            published,
            unit: "tokens/s".into(),
            uncertainty: None,
            date: String::new(),
            source: String::new(),
            notes: String::new(),
        }
    }

    #[test]
    fn recovers_known_parameters_from_synthetic_rows() {
        // Generate "published" speeds from known parameters, then fit from elsewhere.
        let params = vec![
            Param::parse("hardware.wafer.software.2024-10.layer_sync_s=1e-8:1e-4").unwrap(),
            Param::parse("hardware.wafer.link.latency_s=1e-8:1e-4").unwrap(),
        ];
        let truth = [3e-6, 5e-6];
        let shape = [
            row("a", "llama-3.1-8b", 1, 1.0),
            row("b", "llama-3.1-70b", 4, 1.0),
            row("c", "gpt-oss-120b", 2, 1.0),
            row("d", "llama-3.2-1b", 1, 1.0),
        ];
        let speeds = predictions(&shape, &params, &truth).unwrap();
        let rows: Vec<ReferenceRow> = shape
            .iter()
            .zip(&speeds)
            .map(|(r, s)| ReferenceRow {
                published: *s,
                ..r.clone()
            })
            .collect();
        let c = calibrate(&rows, &params, &[1e-6, 1e-6]).unwrap();
        for (got, want) in c.values.iter().zip(truth) {
            approx::assert_relative_eq!(*got, want, max_relative = 1e-3);
        }
        assert!(c.median_abs_loo_rel_error < 1e-3, "{c:?}");
    }

    #[test]
    fn fitted_values_are_written_into_the_profile_text() {
        let text =
            "[wafer]\nfabric_hop_latency_s = 1e-9 # old\n[wafer.efficiency]\ncompute = 0.1\n";
        let params = vec![Param::parse("hardware.wafer.efficiency.compute=0.001:0.5").unwrap()];
        let out = write_values(text, &params, &[0.25], "fitted").unwrap();
        assert!(out.contains("compute = 2.5000e-1  # fitted"), "{out}");
        assert!(out.contains("fabric_hop_latency_s = 1e-9 # old"));
        assert!(Param::parse("model.layers=1:2").is_err());
        assert!(Param::parse("hardware.x=3:1").is_err());
    }
}
