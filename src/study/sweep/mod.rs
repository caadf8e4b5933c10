//! What-if sweeps: a base scenario and axes over any profile, workload or serving field, run
//! point by point in parallel. A point's result depends only on the point (its seed is derived
//! from its axis values), so the output is the same whatever the number of threads or shards.
//!
//! Spec format (TOML):
//!
//! ```toml
//! combine = "product"          # or "zip": axes of equal length taken together
//! seeds = "common"             # or "per_point": a seed hashed from each point's values
//!
//! [base]
//! hardware = "gb200-nvl72"
//! model = "llama-3.1-70b"
//! sets = ["model.precision.weights=fp8"]      # optional profile overrides
//! [base.serve]                                # optional: tp, pp, replicas, max_batch, ...
//! [base.workload]                             # rate_per_s or concurrency, lengths, requests
//! concurrency = 64
//!
//! [[axis]]
//! path = "hardware.gpu.hbm_bandwidth_bytes_per_s"
//! from = 4e12
//! to = 16e12
//! steps = 7
//! scale = "linear"             # or "log"
//!
//! [[axis]]
//! path = "workload.concurrency"
//! values = [1, 16, 64]
//! ```
//!
//! Paths start with `hardware.` or `model.` (the same paths as `--set`), `workload.` or
//! `serve.` (the fields of [`WorkloadSpec`](crate::scenario::WorkloadSpec) and
//! [`ServeSpec`](crate::scenario::ServeSpec)).
//!
//! The parts: `spec` (the file's shape, parsing, checking, each point's scenario), `check`
//! (what every point shares, checked before the first runs), `axis`
//! (values, points, seeds), `run` (points in parallel), `output` (rows, shards) and `merge`
//! (shard lines, merging shard outputs).

mod axis;
mod check;
mod merge;
mod output;
mod run;
mod spec;

pub use axis::{
    point_seed, value_short, value_text, Axis, AxisSpec, Combine, Point, Scale, MAX_POINTS,
};
pub use merge::merge;
pub use output::{metric_values, Cell, RowFormat, Shard, METRIC_COLUMNS};
pub use run::{run, run_point, PointResult, RunOptions};
pub use spec::{did_you_mean, BaseSpec, Seeds, SloSpec, Sweep, SweepSpec};

#[cfg(test)]
mod tests;
