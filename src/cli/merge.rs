//! `infersim merge`: merge the outputs of sharded sweep runs (CSV or JSON Lines) into one file,
//! as an unsharded run writes it; prints the merged rows, or writes them to --out.

use std::path::PathBuf;

use clap::Args;

use super::files::{check_output_path, write_file};
use crate::error::{Error, Result};
use crate::study::sweep;

#[derive(Debug, Args)]
pub(super) struct MergeArgs {
    /// Shard outputs (CSV or JSON Lines) from `infersim sweep --shard K/N --out FILE`.
    #[arg(value_name = "FILE", required = true)]
    inputs: Vec<PathBuf>,
    /// Write the merged rows here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(super) fn run(a: &MergeArgs) -> Result<String> {
    if let Some(out) = &a.out {
        check_output_path("--out", out)?;
    }
    let inputs = a
        .inputs
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|t| (p.display().to_string(), t))
                .map_err(|source| Error::Io {
                    path: p.display().to_string(),
                    source,
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let merged = sweep::merge(&inputs)?;
    match &a.out {
        Some(path) => {
            write_file(path, &merged)?;
            Ok(String::new())
        }
        None => Ok(merged),
    }
}
