//! `infersim validate`: predict every published figure in the reference set and print, per
//! row, the prediction, the published figure, the error against its tolerance, and a summary of
//! the errors (table, CSV or JSON).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::{reference_rows, Common};
use super::text::pretty;
use crate::error::Result;
use crate::report::{num, Format, Table};
use crate::study::validate;

#[derive(Debug, Args)]
pub(super) struct ValidateArgs {
    /// Reference rows to check [default: the shipped reference/published.toml].
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

pub(super) fn run(a: &ValidateArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let rows = reference_rows(&a.reference)?;
    let results = validate::run(&rows, &overrides);
    let summary = validate::summarise(&results);
    match a.common.format {
        Format::Json => Ok(pretty(&json!({
            "rows": results.iter().map(|r| json!({
                "id": r.id, "family": r.family, "hardware": r.hardware, "model": r.model,
                "metric": r.metric, "predicted": r.predicted, "published": r.published,
                "rel_error": r.rel_error, "tolerance": r.tolerance, "fitted": r.fitted,
                "status": r.status,
            })).collect::<Vec<_>>(),
            "summary": summary,
        }))),
        Format::Csv => Ok(rows_table(&results).csv()),
        Format::Table => Ok(format!(
            "{}\n{} rows predicted; median |error| {}% (rows not fitted to: {}%), max |error| {}%\n",
            rows_table(&results).render(),
            summary.n,
            num(100.0 * summary.median_abs_rel_error, 3),
            num(100.0 * summary.median_abs_rel_error_unfitted, 3),
            num(100.0 * summary.max_abs_rel_error, 3)
        )),
    }
}

/// One row per reference row, by family.
fn rows_table(results: &[validate::RowResult]) -> Table {
    let mut t = Table::new([
        "family",
        "id",
        "metric",
        "predicted",
        "published",
        "error_%",
        "tolerance_%",
        "role",
        "status",
    ]);
    let mut sorted: Vec<&validate::RowResult> = results.iter().collect();
    sorted.sort_by(|x, y| x.family.cmp(&y.family));
    for r in sorted {
        t.row([
            r.family.clone(),
            r.id.clone(),
            r.metric.name().to_string(),
            num(r.predicted, 4),
            num(r.published, 4),
            num(100.0 * r.rel_error, 3),
            num(100.0 * r.tolerance, 3),
            if r.fitted { "fitted" } else { "prediction" }.to_string(),
            r.status.clone(),
        ]);
    }
    t
}
