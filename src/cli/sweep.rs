//! `infersim sweep`: run a what-if sweep from a spec file, points in parallel. Writes one row
//! per point (CSV or JSON Lines) to standard output or a file; in table format prints a table of
//! the points' key figures with a line on what ran and the errors of failed points; optionally
//! a chart of one metric along the first axis.

use std::path::PathBuf;

use clap::Args;

use super::args::Common;
use super::files::{check_output_path, write_file, AtomicFile};
use super::text::{count, progress_bar};
use crate::error::{Error, Result};
use crate::limits::{check_count, MAX_JOBS};
use crate::report::plot;
use crate::report::{num, Format, Table};
use crate::study::sweep::{self, PointResult, RowFormat, RunOptions, Shard, Sweep};

#[derive(Debug, Args)]
pub(super) struct SweepArgs {
    /// Sweep spec (TOML): a [base] scenario and [[axis]] tables over hardware.*, model.*,
    /// workload.* or serve.* paths (see examples/ and docs/sweeps-and-scale-out.md).
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
    /// Draw every point as throughput (--pareto-y) against median per-user speed with the Pareto
    /// frontier joined and its points named (SVG).
    #[arg(long, value_name = "FILE.svg")]
    pareto_out: Option<PathBuf>,
    /// Throughput measure of the Pareto chart.
    #[arg(long, value_enum, default_value_t = plot::ParetoY::PerDevice)]
    pareto_y: plot::ParetoY,
    #[command(flatten)]
    common: Common,
}

pub(super) fn run(a: &SweepArgs) -> Result<String> {
    let mut sweep = Sweep::load(&a.spec)?;
    // Command-line --set applies to every point, after the spec's own `sets`.
    sweep.spec.base.sets.extend(a.common.set.iter().cloned());
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
    let jobs = match a.jobs {
        Some(n) => {
            check_count("--jobs", n as u64, MAX_JOBS)?;
            n
        }
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    if let Some(path) = &a.plot_out {
        check_plot_y(&a.plot_y)?;
        check_output_path("--plot-out", path)?;
    }
    if let Some(path) = &a.out {
        check_output_path("--out", path)?;
    }
    if let Some(path) = &a.pareto_out {
        check_output_path("--pareto-out", path)?;
    }
    sweep.check_before_run(&sweep.shard(shard))?;
    let format = match (&a.out, a.common.format) {
        (Some(p), _) => RowFormat::of_path(p),
        (None, Format::Json) => RowFormat::JsonLines,
        _ => RowFormat::Csv,
    };
    let n = sweep.shard(shard).len();
    let bar = progress_bar(a.quiet, n, "points");
    let opts = RunOptions {
        jobs,
        shard,
        format,
    };
    let progress = || bar.inc(1);
    let (results, rows) = run_points(a, &sweep, opts, &progress)?;
    bar.finish_and_clear();
    if let Some(path) = &a.plot_out {
        write_file(path, &plot::sweep_chart(&sweep, &results, &a.plot_y)?)?;
    }
    if let Some(path) = &a.pareto_out {
        write_file(path, &plot::pareto_chart(&sweep, &results, a.pareto_y)?)?;
    }
    let out = if a.common.format == Format::Table {
        table_output(a, &sweep, &results, jobs, shard)
    } else {
        rows.unwrap_or_default()
    };
    every_point_failed(&results, out)
}

/// A sweep whose every point failed is a runtime failure (exit code 1); its output is still
/// printed.
fn every_point_failed(results: &[PointResult], out: String) -> Result<String> {
    let failed: Vec<&String> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err())
        .collect();
    if results.is_empty() || failed.len() < results.len() {
        return Ok(out);
    }
    Err(Error::CheckFailed {
        what: "sweep".into(),
        report: out,
        problems: vec![format!(
            "every one of its {} points failed; the first: {}",
            results.len(),
            failed[0]
        )],
    })
}

/// --plot-y must name an output column.
fn check_plot_y(y: &str) -> Result<()> {
    if !sweep::METRIC_COLUMNS.contains(&y) {
        let hint = sweep::did_you_mean(y, sweep::METRIC_COLUMNS.iter().copied())
            .map(|c| format!("; did you mean {c}?"))
            .unwrap_or_default();
        return Err(Error::arg(
            "--plot-y",
            format!("no output column \"{y}\"{hint}"),
        ));
    }
    Ok(())
}

/// Run the points, streaming their rows to --out, or else keeping them to print.
fn run_points(
    a: &SweepArgs,
    sweep: &Sweep,
    opts: RunOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<(Vec<PointResult>, Option<String>)> {
    Ok(match &a.out {
        Some(path) => {
            // Rows stream to a temporary file, renamed to `path` when every row is written.
            let mut file = AtomicFile::create(path)?;
            let r = sweep::run(sweep, opts, &mut file, progress).map_err(|e| match e {
                Error::Write { source, .. } => file.error(source),
                e => e,
            })?;
            file.commit()?;
            (r, None)
        }
        None => {
            let mut buf: Vec<u8> = Vec::new();
            let r = sweep::run(sweep, opts, &mut buf, progress)?;
            (r, Some(String::from_utf8_lossy(&buf).into_owned()))
        }
    })
}

/// The table of points, a line on what ran, and the error of each failed point.
fn table_output(
    a: &SweepArgs,
    sweep: &Sweep,
    results: &[PointResult],
    jobs: usize,
    shard: Option<Shard>,
) -> String {
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
    for r in results {
        t.row(point_cells(r, with_slo, with_rate, &mut errors));
    }
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    let mut out = t.render();
    out.push_str(&format!(
        "\n{} run on {}{}; {failed} failed{}\n",
        count(results.len() as u64, "point"),
        count(jobs as u64, "thread"),
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
    out
}

/// One point's table cells; a failed point's error goes to `errors`.
fn point_cells(
    r: &PointResult,
    with_slo: bool,
    with_rate: bool,
    errors: &mut String,
) -> Vec<String> {
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
    cells
}
