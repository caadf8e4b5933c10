//! `infersim kernels`: the GPU cost model's price of single kernels against NVIDIA's measured
//! latencies (`reference/kernels/`), per hardware profile, operator kind and split: shapes,
//! median and 90th-percentile |relative error|, signed median (table, CSV or JSON).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::Common;
use super::text::pretty;
use crate::error::{Error, Result};
use crate::profile::load_hardware;
use crate::report::{num, Format, Table};
use crate::study::kernels::{self, table, Summary};

#[derive(Debug, Args)]
pub(super) struct KernelsArgs {
    /// Hardware profiles to check (repeatable) [default: every profile in the tables' index.csv].
    #[arg(long, value_name = "NAME")]
    hardware: Vec<String>,
    /// Directory of the kernel tables and their index.csv.
    #[arg(long, value_name = "DIR", default_value = "reference/kernels")]
    tables: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Every summary row of the check, profiles in index order.
fn summaries(a: &KernelsArgs) -> Result<Vec<Summary>> {
    let overrides = a.common.overrides()?;
    let index = table::index(&a.tables)?;
    for h in &a.hardware {
        if !index.iter().any(|(name, _)| name == h) {
            let known: Vec<&str> = index.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::arg(
                "--hardware",
                format!(
                    "no kernel tables for \"{h}\"; available: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for (name, dir) in &index {
        if !a.hardware.is_empty() && !a.hardware.contains(name) {
            continue;
        }
        let hw = load_hardware(name, &overrides)?;
        let gpu = hw.gpu().ok_or_else(|| {
            Error::arg(
                "--hardware",
                format!("{name} is not a GPU system; kernel tables are GPU measurements"),
            )
        })?;
        let tables = table::load(dir)?;
        out.extend(kernels::check(name, gpu, &tables));
    }
    Ok(out)
}

fn render(rows: &[Summary]) -> Table {
    let mut t = Table::new([
        "hardware",
        "op",
        "shapes",
        "n",
        "median_|err|_%",
        "p90_|err|_%",
        "median_err_%",
    ]);
    for r in rows {
        t.row([
            r.hardware.clone(),
            r.op.name().to_string(),
            r.split.name().to_string(),
            r.n.to_string(),
            num(100.0 * r.median_abs_rel_error, 3),
            num(100.0 * r.p90_abs_rel_error, 3),
            num(100.0 * r.median_rel_error, 3),
        ]);
    }
    t
}

pub(super) fn run(a: &KernelsArgs) -> Result<String> {
    let rows = summaries(a)?;
    match a.common.format {
        Format::Json => Ok(pretty(&json!({ "rows": rows }))),
        Format::Csv => Ok(render(&rows).csv()),
        Format::Table => Ok(format!(
            "Kernel latencies predicted by the GPU cost model against NVIDIA's measurements \
             ({}): error = predicted / measured - 1. Shapes: held_out = every other row of each \
             table, model = every shape of Llama 3.1 70B at tensor parallelism 4.\n\n{}",
            a.tables.display(),
            render(&rows).render()
        )),
    }
}
