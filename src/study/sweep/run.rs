//! Running a sweep: points in parallel on a thread pool, each point's failure kept in its row,
//! rows written in point order as they finish.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::axis::Point;
use super::output::{RowFormat, Shard};
use super::spec::Sweep;
use crate::energy::EnergyCost;
use crate::engine::RequestRecord;
use crate::error::{Error, Result};
use crate::metrics::{Summary, Tally};
use crate::study::slo::SloReport;
use crate::warning::Warnings;

/// The result of one point: its summary, or the error that stopped it.
#[derive(Debug, Clone)]
pub struct PointResult {
    /// Index in the full sweep.
    pub index: usize,
    /// Axis values.
    pub values: Vec<toml::Value>,
    /// Seed used (None if the point failed before drawing its workload).
    pub seed: Option<u64>,
    /// Placement, as `tp x pp x replicas`.
    pub placement: Option<(u32, u32, u32)>,
    /// Summary, or the error message.
    pub outcome: std::result::Result<Summary, String>,
    /// Energy and cost of the run, if it ran.
    pub energy: Option<EnergyCost>,
    /// Goodput against `[base.slo]`, if given and the point ran.
    pub slo: Option<SloReport>,
    /// The highest rate meeting `[base.slo]`, when it asks for the search.
    pub max_rate_per_s: Option<f64>,
    /// Adjustments made to what the point asked (lengths cut, context limited).
    pub warnings: Warnings,
}

/// A point not run because the output had already failed.
fn skipped(point: &Point) -> PointResult {
    PointResult {
        index: point.index,
        values: point.values.clone(),
        seed: None,
        placement: None,
        outcome: Err("not run: the output could not be written".into()),
        energy: None,
        slo: None,
        max_rate_per_s: None,
        warnings: Warnings::default(),
    }
}

/// Run one point; failures become the row's error, never a panic or an abort.
pub fn run_point(sweep: &Sweep, point: &Point) -> PointResult {
    let mut r = skipped(point);
    let scenario = match sweep.scenario(point) {
        Ok((s, seed)) => {
            r.seed = Some(seed);
            s
        }
        Err(e) => {
            r.outcome = Err(e.to_string());
            return r;
        }
    };
    let system =
        match scenario
            .serve
            .system(&scenario.hardware, &scenario.model, &scenario.overrides)
        {
            Ok(s) => s,
            Err(e) => {
                r.outcome = Err(e.to_string());
                return r;
            }
        };
    let p = &system.placement;
    r.placement = Some((p.tp, p.pp, p.replicas));
    // The SLO counts every request as it completes, over the whole run.
    let ran = match sweep.spec.base.slo {
        Some(slo) if slo.find_max_rate => crate::study::slo::find_max_rate(&scenario, &slo.slo())
            .map(|(rate, run, windowed)| {
                r.max_rate_per_s = Some(rate);
                let report = slo.slo().evaluate_whole(&windowed, run.summary.duration_s);
                (run, Some(report))
            }),
        Some(slo) => {
            let (limits, mut tally) = (slo.slo().limits(), Tally::default());
            scenario
                .drawn(&system)
                .and_then(|(requests, mode, warnings)| {
                    let mut add = |_: u32, x: &RequestRecord| tally.add(&limits, x);
                    scenario.serve_on(system, &requests, mode, warnings, Some(&mut add))
                })
                .map(|run| {
                    let report = slo.slo().report(&tally, run.summary.duration_s);
                    (run, Some(report))
                })
        }
        None => scenario.run_on(system).map(|run| (run, None)),
    };
    match ran {
        Ok((run, slo_report)) => {
            r.energy = Some(EnergyCost::of(&run.system, &run.summary));
            r.slo = slo_report;
            r.warnings = run.warnings;
            r.outcome = Ok(run.summary);
        }
        Err(e) => r.outcome = Err(e.to_string()),
    }
    r
}

/// Writes rows in point order as they complete (holding back the ones that finish early), and
/// flushes after each, so an interrupted sweep keeps every row before the first unfinished one.
struct OrderedWriter<'a> {
    next: usize,
    pending: BTreeMap<usize, String>,
    out: &'a mut (dyn Write + Send),
    error: Option<std::io::Error>,
    /// Set at the first write error: the points not yet started are skipped.
    failed: &'a AtomicBool,
}

impl OrderedWriter<'_> {
    fn put(&mut self, position: usize, line: String) {
        self.pending.insert(position, line);
        while let Some(line) = self.pending.remove(&self.next) {
            if self.error.is_none() {
                if let Err(e) = self
                    .out
                    .write_all(line.as_bytes())
                    .and_then(|_| self.out.flush())
                {
                    self.error = Some(e);
                    self.failed.store(true, Ordering::Relaxed);
                }
            }
            self.next += 1;
        }
    }
}

/// Options of one sweep run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Threads (at least 1).
    pub jobs: usize,
    /// Only this shard's points.
    pub shard: Option<Shard>,
    /// Row format.
    pub format: RowFormat,
}

/// Run the sweep (this shard's points) on `jobs` threads, writing the header and one row per
/// point to `out` in point order; `progress` is called once per point run. Returns the
/// results in point order. At the first write error the points not yet started are skipped and
/// the error is returned ([`Error::Write`], its path `sweep output`).
pub fn run(
    sweep: &Sweep,
    opts: RunOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<PointResult>> {
    let io_err = |source: std::io::Error| Error::Write {
        path: "sweep output".into(),
        source,
    };
    if let Some(line) = opts.shard.map(|s| sweep.shard_line(s, opts.format)) {
        out.write_all(line.as_bytes()).map_err(io_err)?;
    }
    if opts.format == RowFormat::Csv {
        out.write_all(sweep.csv_header().as_bytes())
            .map_err(io_err)?;
    }
    let points = sweep.shard(opts.shard);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::arg("--jobs", e.to_string()))?;
    let failed = AtomicBool::new(false);
    let writer = Mutex::new(OrderedWriter {
        next: 0,
        pending: BTreeMap::new(),
        out,
        error: None,
        failed: &failed,
    });
    let results: Vec<PointResult> = pool.install(|| {
        points
            .par_iter()
            .enumerate()
            .map(|(pos, p)| {
                if failed.load(Ordering::Relaxed) {
                    return skipped(p);
                }
                let r = run_point(sweep, p);
                let line = sweep.row(&r, opts.format);
                writer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .put(pos, line);
                progress();
                r
            })
            .collect()
    });
    let w = writer
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = w.error {
        return Err(io_err(e));
    }
    Ok(results)
}
