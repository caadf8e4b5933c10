//! `infersim validate`: predict every published figure in the reference set and judge each by
//! its tolerance class. Prints the misses first (signed error, interval, cause when known), then
//! the passes, the known misses with their causes, the recorded fits and a summary led by the
//! error on rows nothing was fitted to (table, CSV or JSON). `--strict` also applies the ledger's
//! ratchet and exits 1 when it fails; `--write-results` accepts the run's errors.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::{reference_set, Common};
use super::files::{check_output_path, write_file};
use super::text::{count, pretty, progress_bar};
use crate::error::{Error, Result};
use crate::report::{num, Format, Table};
use crate::study::validate::{self, Accepted, Fits, Ledger, RowResult, ValidationSummary, Verdict};

#[derive(Debug, Args)]
pub(super) struct ValidateArgs {
    /// Reference rows to check [default: the shipped reference/published.toml].
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// Known-miss ledger [default: the shipped reference/known-misses.toml].
    #[arg(long, value_name = "FILE")]
    ledger: Option<PathBuf>,
    /// Accepted errors that --strict compares with [default: the shipped
    /// reference/validate-results.toml].
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Recorded fits, which mark rows as fitted [default: the shipped reference/fits.toml].
    #[arg(long, value_name = "FILE")]
    fits: Option<PathBuf>,
    /// Exit 1 when a row misses and is not in the ledger, a listed row passes, or any row's
    /// error moved more than 2 points from its accepted value.
    #[arg(long)]
    strict: bool,
    /// Accept this run: write every row's error to FILE (the accepted results --strict uses).
    #[arg(long, value_name = "FILE")]
    write_results: Option<PathBuf>,
    /// No progress bar (it is shown only when stderr is a terminal).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    common: Common,
}

/// `path`'s text, or `shipped` when no path is given, with the label for messages.
fn text_of(path: &Option<PathBuf>, shipped_label: &str, shipped: &str) -> Result<(String, String)> {
    match path {
        None => Ok((shipped_label.to_string(), shipped.to_string())),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })?;
            Ok((p.display().to_string(), text))
        }
    }
}

pub(super) fn run(a: &ValidateArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    if let Some(out) = &a.write_results {
        check_output_path("--write-results", out)?;
    }
    let set = reference_set(&a.reference)?;
    let (label, text) = text_of(
        &a.ledger,
        "reference/known-misses.toml",
        validate::SHIPPED_MISSES,
    )?;
    let ledger = Ledger::parse(&label, &text)?;
    let (label, text) = text_of(&a.fits, "reference/fits.toml", validate::SHIPPED_FITS)?;
    let fits = Fits::parse(&label, &text)?;
    let (label, text) = text_of(
        &a.results,
        "reference/validate-results.toml",
        validate::SHIPPED_RESULTS,
    )?;
    // Read before the run so that a malformed file fails fast.
    let accepted = if a.strict {
        Some(Accepted::parse(&label, &text)?)
    } else {
        None
    };
    let bar = progress_bar(
        a.quiet,
        validate::prediction_tasks(&set.rows),
        "load runs and rows",
    );
    let results = validate::run_with_progress(&set, &overrides, &ledger, &fits, &|| bar.inc(1));
    bar.finish_and_clear();
    let summary = validate::summarise(&results);
    if let Some(out) = &a.write_results {
        write_file(out, &validate::write_results(&results))?;
    }
    let report = match a.common.format {
        Format::Json => pretty(&json!({
            "rows": results.iter().map(row_json).collect::<Vec<_>>(),
            "summary": summary,
            "fits": fits.fits,
        })),
        Format::Csv => rows_table(&results).csv(),
        Format::Table => format!(
            "{}\n{}{}{}",
            rows_table(&results).render(),
            known_misses_text(&results),
            fits_text(&fits),
            summary_text(&summary)
        ),
    };
    if let Some(accepted) = accepted {
        let problems = validate::strict_problems(&results, &ledger, &accepted);
        if !problems.is_empty() {
            return Err(Error::CheckFailed {
                what: "validate --strict".into(),
                report,
                problems,
            });
        }
    }
    Ok(report)
}

fn row_json(r: &RowResult) -> serde_json::Value {
    json!({
        "id": r.id, "family": r.family, "hardware": r.hardware, "model": r.model,
        "metric": r.metric, "predicted": r.predicted,
        "ci95": r.ci95.map(|(lo, hi)| [lo, hi]),
        "published": r.published, "rel_error": r.rel_error,
        "tolerance": r.tolerance, "tolerance_class": r.tolerance_class,
        "verdict": r.verdict, "known_miss": r.known_miss, "cause": r.cause,
        "fitted": r.fitted, "loo_rel_error": r.loo_rel_error,
        "status": r.status,
    })
}

/// `x` as a percentage, or `-` when absent.
fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| num(100.0 * x, 3))
}

/// One line per reference row: misses first (unlisted ones before known ones), by |error|.
fn rows_table(results: &[RowResult]) -> Table {
    let mut t = Table::new([
        "verdict",
        "id",
        "metric",
        "class",
        "tolerance_%",
        "predicted",
        "ci95",
        "published",
        "error_%",
        "role",
        "held_out_error_%",
        "status",
    ]);
    let mut sorted: Vec<&RowResult> = results.iter().collect();
    let abs = |r: &RowResult| {
        if r.rel_error.is_finite() {
            r.rel_error.abs()
        } else {
            f64::INFINITY
        }
    };
    sorted.sort_by(|x, y| {
        (x.verdict == Verdict::Pass, x.known_miss)
            .cmp(&(y.verdict == Verdict::Pass, y.known_miss))
            .then(abs(y).total_cmp(&abs(x)))
    });
    for r in sorted {
        let verdict = match (r.verdict, r.known_miss) {
            (Verdict::Pass, _) => "pass",
            (Verdict::Miss, true) => "miss (known)",
            (Verdict::Miss, false) => "MISS",
        };
        t.row([
            verdict.to_string(),
            r.id.clone(),
            r.metric.name().to_string(),
            r.tolerance_class.clone(),
            num(100.0 * r.tolerance, 3),
            num(r.predicted, 4),
            r.ci95.map_or_else(
                || "-".into(),
                |(lo, hi)| format!("{}..{}", num(lo, 4), num(hi, 4)),
            ),
            num(r.published, 4),
            pct(Some(r.rel_error)),
            if r.fitted { "fitted" } else { "prediction" }.to_string(),
            pct(r.loo_rel_error),
            r.status.clone(),
        ]);
    }
    t
}

/// The known misses that still miss, with their causes.
fn known_misses_text(results: &[RowResult]) -> String {
    let known: Vec<&RowResult> = results
        .iter()
        .filter(|r| r.known_miss && r.verdict == Verdict::Miss)
        .collect();
    if known.is_empty() {
        return String::new();
    }
    let mut s = String::from("Known misses (reference/known-misses.toml) and their causes:\n");
    for r in known {
        s.push_str(&format!(
            "  {} ({}%): {}\n",
            r.id,
            pct(Some(r.rel_error)),
            r.cause.as_deref().unwrap_or("")
        ));
    }
    s.push('\n');
    s
}

/// The recorded fits, with what their rows can and cannot show.
fn fits_text(fits: &Fits) -> String {
    if fits.fits.is_empty() {
        return String::new();
    }
    let mut s = String::from("Fits (reference/fits.toml):\n");
    for f in &fits.fits {
        let p = f.params.len();
        let what = if f.exactly_determined() {
            format!(
                "{} from {}: exactly determined, its rows reproduce by construction and show no agreement",
                count(p as u64, "parameter"),
                count(f.rows.len() as u64, "row")
            )
        } else {
            let held: Vec<f64> = f.held_out_error.values().map(|e| e.abs()).collect();
            format!(
                "{} from {}; median |held-out error| {}%",
                count(p as u64, "parameter"),
                count(f.rows.len() as u64, "row"),
                num(100.0 * validate::median(held), 3)
            )
        };
        s.push_str(&format!(
            "  {} {}: {what}\n",
            f.hardware,
            f.params.join(", ")
        ));
    }
    s.push('\n');
    s
}

fn summary_text(s: &ValidationSummary) -> String {
    format!(
        "{} rows: {} pass, {} miss ({} not in the known-miss ledger).\n\
         Rows nothing was fitted to ({}): median |error| {}%. Fitted rows: median |held-out error| {}%.\n\
         All rows: median |error| {}%, max {}%.\n",
        s.n,
        s.n - s.misses,
        s.misses,
        s.unlisted_misses,
        s.n_unfitted,
        num(100.0 * s.median_abs_rel_error_unfitted, 3),
        num(100.0 * s.median_abs_loo_rel_error, 3),
        num(100.0 * s.median_abs_rel_error, 3),
        num(100.0 * s.max_abs_rel_error, 3)
    )
}
