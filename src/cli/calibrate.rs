//! `infersim calibrate`: fit a hardware profile's free parameters to its reference rows. Prints
//! each parameter's start, fitted value and range, and each row's published figure, fitted
//! prediction and leave-one-out error (table, CSV or JSON); optionally writes the profile with
//! the fitted values.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::{reference_set, Common};
use super::files::{check_output_path, write_file};
use super::text::{count, pretty, progress_spinner};
use crate::error::{Error, Result};
use crate::profile::catalog::profile_text;
use crate::report::{num, Format, Table};
use crate::study::calibrate::{self, Calibration, Param};
use crate::study::validate::Fits;

#[derive(Debug, Args)]
pub(super) struct CalibrateArgs {
    /// Hardware profile whose reference rows are fitted (rows with this `hardware`).
    #[arg(long)]
    hardware: String,
    /// Free parameter and its physical range, e.g.
    /// hardware.gpu.overheads.kernel_s=0:2e-5 (repeatable).
    #[arg(long = "param", value_name = "PATH=MIN:MAX", required = true)]
    params: Vec<String>,
    /// Only these row ids (comma-separated) [default: every row on --hardware].
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Reference rows [default: the shipped reference/published.toml].
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// Write the profile with the fitted values (comments kept) to this file.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Record the fit, its rows and their held-out errors in this fits file (created if absent;
    /// a fit of the same hardware and parameters is replaced), as reference/fits.toml holds them.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// No progress counter (it is shown only when stderr is a terminal).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    common: Common,
}

pub(super) fn run(a: &CalibrateArgs) -> Result<String> {
    for (flag, path) in [("--write", &a.write), ("--record", &a.record)] {
        if let Some(p) = path {
            check_output_path(flag, p)?;
        }
    }
    let params = a
        .params
        .iter()
        .map(|p| Param::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<_> = reference_set(&a.reference)?
        .rows
        .into_iter()
        .filter(|r| r.hardware == a.hardware && (a.rows.is_empty() || a.rows.contains(&r.id)))
        .collect();
    // Start from the profile's own values.
    let (label, text) = profile_text("hardware", &a.hardware)?;
    let start = start_values(&params, &label, &text)?;
    let bar = progress_spinner(a.quiet, "load runs and rows predicted");
    bar.set_message(format!(
        "(fitting {} to {}, then each held-out fold)",
        count(params.len() as u64, "parameter"),
        count(rows.len() as u64, "row")
    ));
    let c = calibrate::calibrate_with_progress(&rows, &params, &start, &|| bar.inc(1));
    bar.finish_and_clear();
    let c = c?;
    if let Some(out) = &a.write {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let note = format!("fitted by infersim calibrate to rows {}", ids.join(", "));
        let new = calibrate::write_values(&text, &params, &c.values, &note)?;
        write_file(out, &new)?;
    }
    if let Some(path) = &a.record {
        let mut fits = if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            Fits::parse(&path.display().to_string(), &text)?
        } else {
            Fits::default()
        };
        fits.record(c.record(&a.hardware));
        write_file(path, &fits.to_toml()?)?;
    }
    match a.common.format {
        Format::Json => Ok(pretty(&json!(c))),
        Format::Csv => {
            let (pt, rt) = tables(&c, &start);
            Ok(format!("{}\n{}", pt.csv(), rt.csv()))
        }
        Format::Table => {
            let (pt, rt) = tables(&c, &start);
            Ok(format!(
                "{}\n{}\nmedian |held-out error| ({}): {}%\n",
                pt.render(),
                rt.render(),
                c.cross_validation,
                num(100.0 * c.median_abs_loo_rel_error, 3)
            ))
        }
    }
}

/// Each parameter's value in the profile text (`label` names it in errors).
fn start_values(params: &[Param], label: &str, text: &str) -> Result<Vec<f64>> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Parse {
        file: label.to_string(),
        message: e.to_string(),
    })?;
    params
        .iter()
        .map(|p| {
            let mut v = &toml::Value::Table(table.clone());
            for k in p.path.split('.').skip(1) {
                v = v.get(k).ok_or_else(|| {
                    Error::arg("--param", format!("{} is not a field of {label}", p.path))
                })?;
            }
            v.as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .ok_or_else(|| Error::arg("--param", format!("{} is not a number", p.path)))
        })
        .collect::<Result<Vec<f64>>>()
}

/// The parameters table and the rows table.
fn tables(c: &Calibration, start: &[f64]) -> (Table, Table) {
    let mut pt = Table::new(["parameter", "start", "fitted", "min", "max"]);
    for ((p, v), s0) in c.params.iter().zip(&c.values).zip(start) {
        pt.row([
            p.path.clone(),
            format!("{s0:.4e}"),
            format!("{v:.4e}"),
            format!("{:e}", p.min),
            format!("{:e}", p.max),
        ]);
    }
    let mut rt = Table::new([
        "row",
        "published",
        "fitted_prediction",
        "fitted_error_%",
        "leave_one_out_error_%",
    ]);
    for r in &c.rows {
        rt.row([
            r.id.clone(),
            num(r.published, 4),
            num(r.fitted_prediction, 4),
            num(100.0 * r.fitted_rel_error, 3),
            num(100.0 * r.loo_rel_error, 3),
        ]);
    }
    (pt, rt)
}
