//! `sweep` and `merge`: the command-line side of [`crate::study::sweep`].

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::{write_file, Common};
use crate::error::{Error, Result};
use crate::report::plot;
use crate::report::{num, Format, Table};
use crate::study::sweep::{self, RowFormat, RunOptions, Shard, Sweep};

#[derive(Debug, Args)]
pub(super) struct SweepArgs {
    /// Sweep spec (TOML): a [base] scenario and [[axis]] tables over hardware.*, model.*,
    /// workload.* or serve.* paths (see examples/ and the README).
    #[arg(value_name = "SPEC.toml")]
    spec: PathBuf,
    /// Threads running points [default: every core].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run only the K-th of N interleaved slices of the points (0-based: 0/4 .. 3/4), for job
    /// arrays; combine the outputs with `infersim merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Stream one row per point to FILE as points finish, in point order, flushed row by row:
    /// CSV, or JSON Lines when FILE ends in .jsonl.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// No progress bar (it is shown only when stderr is a terminal).
    #[arg(long, short)]
    quiet: bool,
    /// Draw the first axis against --plot-y, one series per value of the other axes (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot_out: Option<PathBuf>,
    /// Metric on the plot's y axis: any output column, e.g. throughput_output_tokens_per_s.
    #[arg(
        long,
        default_value = "tokens_per_s_per_user_p50",
        value_name = "COLUMN"
    )]
    plot_y: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub(super) struct MergeArgs {
    /// Shard outputs (CSV or JSON Lines) from `infersim sweep --shard K/N --out FILE`.
    #[arg(value_name = "FILE", required = true)]
    inputs: Vec<PathBuf>,
    /// Write the merged rows here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(super) fn sweep_cmd(a: &SweepArgs) -> Result<String> {
    let mut sweep = Sweep::load(&a.spec)?;
    // Command-line --set applies to every point, after the spec's own `sets`.
    sweep.spec.base.sets.extend(a.common.set.iter().cloned());
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
    let jobs = match a.jobs {
        Some(0) => return Err(Error::arg("--jobs", "expected at least 1 thread")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    if a.plot_out.is_some() {
        let y = a.plot_y.as_str();
        if !sweep::METRIC_COLUMNS.contains(&y) {
            let hint = sweep::did_you_mean(y, sweep::METRIC_COLUMNS.iter().copied())
                .map(|c| format!("; did you mean {c}?"))
                .unwrap_or_default();
            return Err(Error::arg(
                "--plot-y",
                format!("no output column \"{y}\"{hint}"),
            ));
        }
    }
    let format = match (&a.out, a.common.format) {
        (Some(p), _) => RowFormat::of_path(p),
        (None, Format::Json) => RowFormat::JsonLines,
        _ => RowFormat::Csv,
    };
    let n = sweep.shard(shard).len();
    let bar = if a.quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(n as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} points, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    };
    let opts = RunOptions {
        jobs,
        shard,
        format,
    };
    let progress = || bar.inc(1);
    let (results, rows) = match &a.out {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            let mut file = std::io::BufWriter::new(file);
            let r = sweep::run(&sweep, opts, &mut file, &progress)?;
            (r, None)
        }
        None => {
            let mut buf: Vec<u8> = Vec::new();
            let r = sweep::run(&sweep, opts, &mut buf, &progress)?;
            (r, Some(String::from_utf8_lossy(&buf).into_owned()))
        }
    };
    bar.finish_and_clear();
    if let Some(path) = &a.plot_out {
        write_file(path, &plot::sweep_chart(&sweep, &results, &a.plot_y)?)?;
    }
    if a.common.format != Format::Table {
        return Ok(rows.unwrap_or_default());
    }
    let mut headers: Vec<String> = vec!["point".into()];
    headers.extend(sweep.axes.iter().map(|x| x.path.clone()));
    headers.extend(
        [
            "status",
            "throughput_tokens_per_s",
            "per_user_p50_tokens_per_s",
            "ttft_p99_ms",
            "tpot_p50_ms",
            "J/token",
            "$/M_tokens",
            "saturated",
        ]
        .map(String::from),
    );
    let with_slo = sweep.spec.base.slo.is_some();
    if with_slo {
        headers.push("goodput_req/s".into());
    }
    let with_rate = sweep.spec.base.slo.is_some_and(|x| x.find_max_rate);
    if with_rate {
        headers.push("max_rate_req/s".into());
    }
    let mut t = Table::new(headers);
    let mut errors = String::new();
    for r in &results {
        let mut cells: Vec<String> = vec![r.index.to_string()];
        cells.extend(r.values.iter().map(sweep::value_short));
        match &r.outcome {
            Ok(s) => cells.extend([
                "ok".into(),
                num(s.throughput_output_tokens_per_s, 4),
                num(s.tokens_per_s_per_user.p50, 4),
                num(s.ttft_s.p99 * 1e3, 4),
                num(s.tpot_s.p50 * 1e3, 4),
                num(
                    r.energy
                        .and_then(|e| e.j_per_output_token())
                        .unwrap_or(f64::NAN),
                    4,
                ),
                num(
                    r.energy
                        .and_then(|e| e.usd_per_million_output_tokens())
                        .unwrap_or(f64::NAN),
                    4,
                ),
                if s.saturation.saturated { "yes" } else { "no" }.into(),
            ]),
            Err(e) => {
                cells.extend(["error".into()]);
                cells.extend((0..7).map(|_| "-".to_string()));
                errors.push_str(&format!("point {}: {e}\n", r.index));
            }
        }
        if with_slo {
            cells.push(
                r.slo
                    .map_or("-".into(), |x| num(x.goodput_requests_per_s, 4)),
            );
        }
        if with_rate {
            cells.push(r.max_rate_per_s.map_or("-".into(), |x| num(x, 4)));
        }
        t.row(cells);
    }
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    let mut out = t.render();
    out.push_str(&format!(
        "\n{} points run on {jobs} thread(s){}; {failed} failed{}\n",
        results.len(),
        shard.map_or(String::new(), |s| format!(
            " (shard {}/{} of {})",
            s.index,
            s.count,
            sweep.points.len()
        )),
        a.out
            .as_ref()
            .map_or(String::new(), |p| format!("; rows in {}", p.display()))
    ));
    if !errors.is_empty() {
        out.push_str(&errors);
    }
    Ok(out)
}

pub(super) fn merge_cmd(a: &MergeArgs) -> Result<String> {
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
