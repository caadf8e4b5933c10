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
//! `serve.` (the fields of [`WorkloadSpec`] and [`ServeSpec`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Deserialize;
use serde_json::json;

use crate::energy::EnergyCost;
use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::profile::catalog::{is_path, profile_text, Target};
use crate::profile::Override;
use crate::report::csv_cell;
use crate::scenario::{Scenario, ServeSpec, WorkloadSpec, SERVE_FIELDS, WORKLOAD_FIELDS};
use crate::study::slo::{Slo, SloReport};

/// How axes combine into points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Every combination; the first axis varies slowest.
    #[default]
    Product,
    /// The i-th value of every axis together; axes must have equal lengths.
    Zip,
}

/// Where each point's random seed comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seeds {
    /// `workload.seed` for every point: the same random draws wherever the axes allow (common
    /// random numbers), so that neighbouring points differ by the axis, not by sampling noise.
    #[default]
    Common,
    /// Derived from `workload.seed` and the point's axis values: independent draws per point,
    /// for averaging over points.
    PerPoint,
}

/// Spacing of a range axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Equal steps.
    #[default]
    Linear,
    /// Equal ratios.
    Log,
}

/// The base scenario of a sweep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// Hardware profile: shipped name or TOML file (relative to the spec).
    pub hardware: String,
    /// Model profile: shipped name or TOML file (relative to the spec).
    pub model: String,
    /// Profile overrides, as `--set`.
    #[serde(default)]
    pub sets: Vec<String>,
    /// Serving fields ([`ServeSpec`]).
    #[serde(default)]
    pub serve: toml::Table,
    /// Workload fields ([`WorkloadSpec`]).
    #[serde(default)]
    pub workload: toml::Table,
    /// Latency limits for the goodput columns, if any.
    pub slo: Option<SloSpec>,
}

/// `[base.slo]`: latency limits every point's goodput is counted against.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Time-to-first-token limit, s.
    pub ttft_s: Option<f64>,
    /// Time-per-output-token limit, s.
    pub tpot_s: Option<f64>,
    /// Percentile for the `slo_met` column and the rate search [default: 99].
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    /// Run every point at the highest Poisson rate meeting the limits at the percentile (the
    /// workload's rate or concurrency is replaced), reported as `max_rate_per_s`.
    #[serde(default)]
    pub find_max_rate: bool,
}

fn default_percentile() -> f64 {
    99.0
}

impl SloSpec {
    /// As the SLO type the metrics use.
    pub fn slo(&self) -> Slo {
        Slo {
            ttft_s: self.ttft_s,
            tpot_s: self.tpot_s,
            percentile: self.percentile,
        }
    }
}

/// One axis: a path and its values, listed or as a range.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisSpec {
    /// Dotted path: `hardware.*`, `model.*`, `workload.*` or `serve.*`.
    pub path: String,
    /// Listed values.
    pub values: Option<Vec<toml::Value>>,
    /// Range start (inclusive).
    pub from: Option<toml::Value>,
    /// Range end (inclusive).
    pub to: Option<toml::Value>,
    /// Range points (at least 2).
    pub steps: Option<u32>,
    /// Range spacing.
    #[serde(default)]
    pub scale: Scale,
}

/// A sweep spec file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// How axes combine.
    #[serde(default)]
    pub combine: Combine,
    /// Seed policy.
    #[serde(default)]
    pub seeds: Seeds,
    /// The base scenario.
    pub base: BaseSpec,
    /// The axes, in order.
    #[serde(default, rename = "axis")]
    pub axes: Vec<AxisSpec>,
}

/// One axis with its values expanded.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Dotted path.
    pub path: String,
    /// Values in order.
    pub values: Vec<toml::Value>,
}

/// One point of a sweep: its index in the full sweep and a value per axis.
#[derive(Debug, Clone)]
pub struct Point {
    /// Index in the full (unsharded) sweep.
    pub index: usize,
    /// One value per axis, in axis order.
    pub values: Vec<toml::Value>,
}

/// A parsed, checked sweep, ready to run.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The spec file (for error messages).
    pub file: String,
    /// Folder against which relative paths in the spec resolve.
    pub dir: PathBuf,
    /// The spec.
    pub spec: SweepSpec,
    /// Expanded axes.
    pub axes: Vec<Axis>,
    /// Every point, in order.
    pub points: Vec<Point>,
}

/// Text of a TOML value as it appears in outputs: numbers without quotes, strings bare.
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Short text of a value for tables and legends: large or tiny floats in exponent form.
pub fn value_short(v: &toml::Value) -> String {
    match v {
        toml::Value::Float(f) if *f != 0.0 && (f.abs() >= 1e5 || f.abs() < 1e-3) => {
            format!("{f:e}")
        }
        other => value_text(other),
    }
}

fn value_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        other => json!(other.to_string()),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `wrong`, if close enough to be a likely misspelling.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|(d, c)| *d <= (wrong.len().max(c.len()) / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

/// Every leaf path of a TOML table, dotted, with `prefix`.
fn leaf_paths(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in t {
        let p = format!("{prefix}.{k}");
        match v {
            toml::Value::Table(sub) => leaf_paths(&p, sub, out),
            _ => out.push(p),
        }
    }
}

fn expand_axis(file: &str, i: usize, a: &AxisSpec) -> Result<Axis> {
    let field = |name: &str| format!("{file}: axis {} ({}) {name}", i + 1, a.path);
    let values = match (&a.values, &a.from, &a.to, a.steps) {
        (Some(v), None, None, None) => {
            if v.is_empty() {
                return Err(Error::arg(field("values"), "expected at least one value"));
            }
            v.clone()
        }
        (None, Some(from), Some(to), Some(steps)) => {
            let num = |name: &str, v: &toml::Value| -> Result<f64> {
                match v {
                    toml::Value::Integer(i) => Ok(*i as f64),
                    toml::Value::Float(f) if f.is_finite() => Ok(*f),
                    other => Err(Error::arg(
                        field(name),
                        format!("expected a finite number, found {other}"),
                    )),
                }
            };
            let (lo, hi) = (num("from", from)?, num("to", to)?);
            if !(2..=MAX_POINTS as u32).contains(&steps) {
                return Err(Error::arg(
                    field("steps"),
                    format!("expected 2 to {MAX_POINTS} points in a range, found {steps}"),
                ));
            }
            if a.scale == Scale::Log && !(lo > 0.0 && hi > 0.0) {
                return Err(Error::arg(
                    field("scale"),
                    format!("a log range needs from and to > 0, found {lo} and {hi}"),
                ));
            }
            let integers = from.is_integer() && to.is_integer();
            let mut out: Vec<toml::Value> = Vec::with_capacity(steps as usize);
            for k in 0..steps {
                let f = f64::from(k) / f64::from(steps - 1);
                let x = match a.scale {
                    Scale::Linear => lo + (hi - lo) * f,
                    Scale::Log => (lo.ln() + (hi.ln() - lo.ln()) * f).exp(),
                };
                let v = if integers {
                    toml::Value::Integer(x.round() as i64)
                } else {
                    // Ten significant digits: 16 rather than 15.999999999999998 from exp(ln).
                    toml::Value::Float(format!("{x:.9e}").parse().unwrap_or(x))
                };
                // Rounding a range to integers can repeat a value (always next to its twin, the range
                // being monotone); keep it once.
                if out.last() != Some(&v) {
                    out.push(v);
                }
            }
            out
        }
        _ => {
            return Err(Error::arg(
                field("values"),
                "give either values = [...] or from, to and steps (with an optional scale)",
            ))
        }
    };
    Ok(Axis {
        path: a.path.trim().to_string(),
        values,
    })
}

/// Most points a sweep may have (a guard against a typo such as `steps = 1e9`).
pub const MAX_POINTS: usize = 1_000_000;

/// Derive a point's seed from the base seed and its axis values (SplitMix64 over FNV-1a).
pub fn point_seed(base: u64, axes: &[Axis], values: &[toml::Value]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (a, v) in axes.iter().zip(values) {
        for b in a
            .path
            .bytes()
            .chain(std::iter::once(b'='))
            .chain(value_text(v).bytes())
            .chain(std::iter::once(0))
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut z = base ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sweep {
    /// Read, parse and check a spec file.
    pub fn load(path: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Sweep::parse(&path.display().to_string(), &text, dir)
    }

    /// Parse and check a spec; `dir` resolves relative paths inside it.
    pub fn parse(file: &str, text: &str, dir: PathBuf) -> Result<Sweep> {
        let spec: SweepSpec = toml::from_str(text).map_err(|e| Error::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if let Some(slo) = spec.base.slo {
            slo.slo()
                .check()
                .map_err(|e| Error::arg(format!("{file}: [base.slo]"), e.to_string()))?;
        }
        let axes = spec
            .axes
            .iter()
            .enumerate()
            .map(|(i, a)| expand_axis(file, i, a))
            .collect::<Result<Vec<_>>>()?;
        let total = match spec.combine {
            Combine::Product => axes
                .iter()
                .try_fold(1usize, |n, a| n.checked_mul(a.values.len())),
            Combine::Zip => Some(axes.first().map_or(1, |a| a.values.len())),
        };
        if total.is_none_or(|n| n > MAX_POINTS) {
            return Err(Error::arg(
                format!("{file}: axes"),
                format!("the axes make more than {MAX_POINTS} points; split the sweep"),
            ));
        }
        let points = match spec.combine {
            Combine::Product => {
                let mut points = vec![Vec::new()];
                for a in &axes {
                    points = points
                        .into_iter()
                        .flat_map(|p: Vec<toml::Value>| {
                            a.values.iter().map(move |v| {
                                let mut q = p.clone();
                                q.push(v.clone());
                                q
                            })
                        })
                        .collect();
                }
                points
            }
            Combine::Zip => {
                let n = axes.first().map_or(1, |a| a.values.len());
                if let Some(a) = axes.iter().find(|a| a.values.len() != n) {
                    return Err(Error::arg(
                        format!("{file}: combine = \"zip\""),
                        format!(
                            "axes must have equal lengths; {} has {} values, {} has {n}",
                            a.path,
                            a.values.len(),
                            axes[0].path
                        ),
                    ));
                }
                (0..n)
                    .map(|i| axes.iter().map(|a| a.values[i].clone()).collect())
                    .collect()
            }
        };
        let points = points
            .into_iter()
            .enumerate()
            .map(|(index, values)| Point { index, values })
            .collect();
        let sweep = Sweep {
            file: file.to_string(),
            dir,
            spec,
            axes,
            points,
        };
        sweep.check_paths()?;
        Ok(sweep)
    }

    fn profile_spec(&self, s: &str) -> String {
        let p = Path::new(s);
        if is_path(s) && p.is_relative() {
            self.dir.join(p).display().to_string()
        } else {
            s.to_string()
        }
    }

    /// Check every axis path names an existing field, suggesting the likely one when not.
    fn check_paths(&self) -> Result<()> {
        let base = &self.spec.base;
        let mut seen = Vec::new();
        for a in &self.axes {
            if seen.contains(&a.path) {
                return Err(Error::arg(
                    format!("{}: axis {}", self.file, a.path),
                    "the same path is swept twice",
                ));
            }
            seen.push(a.path.clone());
            let (head, rest) = a.path.split_once('.').unwrap_or((a.path.as_str(), ""));
            let bad = |message: String| {
                Error::arg(format!("{}: axis path {}", self.file, a.path), message)
            };
            match head {
                "workload" | "serve" => {
                    let fields = if head == "workload" {
                        WORKLOAD_FIELDS
                    } else {
                        SERVE_FIELDS
                    };
                    if !fields.contains(&rest) {
                        let hint = did_you_mean(rest, fields.iter().copied())
                            .map(|f| format!("; did you mean {head}.{f}?"))
                            .unwrap_or_default();
                        return Err(bad(format!(
                            "no field \"{rest}\" in {head} (fields: {}){hint}",
                            fields.join(", ")
                        )));
                    }
                }
                "hardware" | "model" => {
                    // Leaf paths present in the base profile; optional fields a profile omits
                    // are accepted here and checked when the point loads.
                    let spec = if head == "hardware" {
                        &base.hardware
                    } else {
                        &base.model
                    };
                    let kind = if head == "hardware" {
                        "hardware"
                    } else {
                        "model"
                    };
                    let (_, text) = profile_text(kind, &self.profile_spec(spec))?;
                    let table: toml::Table =
                        text.parse().map_err(|e: toml::de::Error| Error::Parse {
                            file: spec.clone(),
                            message: e.to_string(),
                        })?;
                    let mut paths = Vec::new();
                    leaf_paths(head, &table, &mut paths);
                    if !paths.contains(&a.path) {
                        if let Some(s) = did_you_mean(&a.path, paths.iter().map(String::as_str)) {
                            return Err(bad(format!("no such field in {spec}; did you mean {s}?")));
                        }
                    }
                }
                _ => {
                    return Err(bad(
                        "expected a path starting with hardware., model., workload. or serve."
                            .into(),
                    ))
                }
            }
        }
        Ok(())
    }

    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        section: &str,
        point: &Point,
        t: toml::Table,
    ) -> Result<T> {
        toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Parse {
                file: format!("{} [base.{section}] at point {}", self.file, point.index),
                message: e.to_string().trim_end().to_string(),
            })
    }

    /// The scenario of one point, with its seed.
    pub fn scenario(&self, point: &Point) -> Result<(Scenario, u64)> {
        let base = &self.spec.base;
        let mut overrides = base
            .sets
            .iter()
            .map(|s| Override::parse(s))
            .collect::<Result<Vec<_>>>()?;
        let mut serve = base.serve.clone();
        let mut workload = base.workload.clone();
        for (a, v) in self.axes.iter().zip(&point.values) {
            let (head, rest) = a.path.split_once('.').unwrap_or((a.path.as_str(), ""));
            match head {
                "hardware" | "model" => overrides.push(Override {
                    spec: format!("{}={}", a.path, value_text(v)),
                    target: if head == "hardware" {
                        Target::Hardware
                    } else {
                        Target::Model
                    },
                    path: rest.split('.').map(str::to_string).collect(),
                    value: v.clone(),
                }),
                "serve" => {
                    serve.insert(rest.to_string(), v.clone());
                }
                _ => {
                    workload.insert(rest.to_string(), v.clone());
                }
            }
        }
        let serve: ServeSpec = self.typed("serve", point, serve)?;
        let mut workload_spec: WorkloadSpec = self.typed("workload", point, workload)?;
        workload_spec.resolve_paths(&self.dir);
        let seed = match self.spec.seeds {
            Seeds::PerPoint => point_seed(workload_spec.seed, &self.axes, &point.values),
            Seeds::Common => workload_spec.seed,
        };
        workload_spec.seed = seed;
        Ok((
            Scenario {
                hardware: self.profile_spec(&base.hardware),
                model: self.profile_spec(&base.model),
                overrides,
                serve,
                workload: workload_spec,
                record_timeline: false,
            },
            seed,
        ))
    }

    /// The points of shard `k` of `n` (interleaved: index % n == k).
    pub fn shard(&self, shard: Option<Shard>) -> Vec<&Point> {
        self.points
            .iter()
            .filter(|p| shard.is_none_or(|s| p.index % s.count == s.index))
            .collect()
    }
}

/// The `k`-th of `n` interleaved slices of the points (0-based, as Slurm array and Kubernetes
/// indexed-job indices are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0..count.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parse `K/N`.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || {
            Error::arg(
                "--shard",
                format!("expected K/N with 0 <= K < N, found \"{s}\""),
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

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
}

/// Run one point; failures become the row's error, never a panic or an abort.
pub fn run_point(sweep: &Sweep, point: &Point) -> PointResult {
    let mut r = PointResult {
        index: point.index,
        values: point.values.clone(),
        seed: None,
        placement: None,
        outcome: Err(String::new()),
        energy: None,
        slo: None,
        max_rate_per_s: None,
    };
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
    let ran = match sweep.spec.base.slo {
        Some(slo) if slo.find_max_rate => crate::study::slo::find_max_rate(&scenario, &slo.slo())
            .map(|(rate, run)| {
                r.max_rate_per_s = Some(rate);
                run
            }),
        _ => scenario.run_on(system),
    };
    match ran {
        Ok(run) => {
            r.energy = Some(EnergyCost::of(&run.system, &run.summary));
            r.slo = sweep
                .spec
                .base
                .slo
                .map(|x| x.slo().evaluate(&run.outcome, run.summary.duration_s));
            r.outcome = Ok(run.summary);
        }
        Err(e) => r.outcome = Err(e.to_string()),
    }
    r
}

/// Output formats of sweep rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl RowFormat {
    /// From a file name: `.jsonl` / `.json` / `.ndjson` give JSON Lines, anything else CSV.
    pub fn of_path(p: &Path) -> RowFormat {
        match p.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "json" | "ndjson") => RowFormat::JsonLines,
            _ => RowFormat::Csv,
        }
    }
}

/// Summary columns written for every point (units in the names).
pub const METRIC_COLUMNS: &[&str] = &[
    "requests",
    "duration_s",
    "throughput_output_tokens_per_s",
    "throughput_input_tokens_per_s",
    "throughput_requests_per_s",
    "ttft_s_mean",
    "ttft_s_p50",
    "ttft_s_p90",
    "ttft_s_p99",
    "tpot_s_mean",
    "tpot_s_p50",
    "tpot_s_p90",
    "tpot_s_p99",
    "itl_s_mean",
    "itl_s_p50",
    "itl_s_p90",
    "itl_s_p99",
    "e2e_s_mean",
    "e2e_s_p50",
    "e2e_s_p90",
    "e2e_s_p99",
    "tokens_per_s_per_user_mean",
    "tokens_per_s_per_user_p50",
    "tokens_per_s_per_user_p90",
    "tokens_per_s_per_user_p99",
    "utilisation",
    "mean_batch_sequences",
    "kv_peak_fraction",
    "preemptions",
    "saturated",
    "devices",
    "mean_power_w",
    "energy_j_per_output_token",
    "cost_usd_per_million_output_tokens",
    "prefix_cache_hit_fraction",
    "swapped_tokens",
    "kv_transfers",
    "goodput_requests_per_s",
    "slo_met",
    "max_rate_per_s",
];

/// The values of [`METRIC_COLUMNS`] for a summary and its energy and cost, as numbers (booleans
/// as 0 / 1, NaN where a value is not available: an empty CSV cell, a JSON `null`).
pub fn metric_values(
    s: &Summary,
    e: Option<&EnergyCost>,
    slo: Option<&SloReport>,
    max_rate_per_s: Option<f64>,
) -> Vec<f64> {
    let mut v = vec![
        s.requests as f64,
        s.duration_s,
        s.throughput_output_tokens_per_s,
        s.throughput_input_tokens_per_s,
        s.throughput_requests_per_s,
    ];
    for d in [
        s.ttft_s,
        s.tpot_s,
        s.itl_s,
        s.e2e_s,
        s.tokens_per_s_per_user,
    ] {
        v.extend([d.mean, d.p50, d.p90, d.p99]);
    }
    v.extend([
        s.utilisation,
        s.mean_batch_sequences,
        s.kv_peak_fraction,
        s.preemptions as f64,
        f64::from(u8::from(s.saturation.saturated)),
        e.map_or(f64::NAN, |e| f64::from(e.usage.devices)),
        e.and_then(EnergyCost::mean_power_w).unwrap_or(f64::NAN),
        e.and_then(EnergyCost::j_per_output_token)
            .unwrap_or(f64::NAN),
        e.and_then(EnergyCost::usd_per_million_output_tokens)
            .unwrap_or(f64::NAN),
        s.prefix_cache_hit_fraction,
        s.swapped_tokens as f64,
        s.kv_transfers as f64,
        slo.map_or(f64::NAN, |r| r.goodput_requests_per_s),
        slo.map_or(f64::NAN, |r| f64::from(u8::from(r.met))),
        max_rate_per_s.unwrap_or(f64::NAN),
    ]);
    v
}

/// A number as a CSV cell: empty when not available (NaN).
fn number_cell(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        x.to_string()
    }
}

impl Sweep {
    /// The header line of CSV output.
    pub fn csv_header(&self) -> String {
        let mut h = vec!["point".to_string()];
        h.extend(self.axes.iter().map(|a| a.path.clone()));
        h.extend(
            ["seed", "status", "error", "tp", "pp", "replicas"]
                .iter()
                .map(|s| s.to_string()),
        );
        h.extend(METRIC_COLUMNS.iter().map(|s| s.to_string()));
        h.join(",") + "\n"
    }

    /// One output line for a point (newline-terminated).
    pub fn row(&self, r: &PointResult, format: RowFormat) -> String {
        let (tp, pp, replicas) = r
            .placement
            .map_or((None, None, None), |(a, b, c)| (Some(a), Some(b), Some(c)));
        match format {
            RowFormat::Csv => {
                let mut cells = vec![r.index.to_string()];
                cells.extend(r.values.iter().map(|v| csv_cell(&value_text(v))));
                cells.push(r.seed.map_or(String::new(), |s| s.to_string()));
                let opt = |x: Option<u32>| x.map_or(String::new(), |v| v.to_string());
                match &r.outcome {
                    Ok(s) => {
                        cells.extend(["ok".to_string(), String::new()]);
                        cells.extend([opt(tp), opt(pp), opt(replicas)]);
                        cells.extend(
                            metric_values(s, r.energy.as_ref(), r.slo.as_ref(), r.max_rate_per_s)
                                .into_iter()
                                .map(number_cell),
                        );
                    }
                    Err(e) => {
                        cells.extend(["error".to_string(), csv_cell(e)]);
                        cells.extend([opt(tp), opt(pp), opt(replicas)]);
                        cells.extend(METRIC_COLUMNS.iter().map(|_| String::new()));
                    }
                }
                cells.join(",") + "\n"
            }
            RowFormat::JsonLines => {
                let axes: serde_json::Map<String, serde_json::Value> = self
                    .axes
                    .iter()
                    .zip(&r.values)
                    .map(|(a, v)| (a.path.clone(), value_json(v)))
                    .collect();
                let mut o = json!({
                    "point": r.index, "axes": axes, "seed": r.seed,
                    "tp": tp, "pp": pp, "replicas": replicas,
                });
                let m = o.as_object_mut().expect("an object");
                match &r.outcome {
                    Ok(s) => {
                        m.insert("status".into(), json!("ok"));
                        m.insert("error".into(), serde_json::Value::Null);
                        for (k, v) in METRIC_COLUMNS.iter().zip(metric_values(
                            s,
                            r.energy.as_ref(),
                            r.slo.as_ref(),
                            r.max_rate_per_s,
                        )) {
                            m.insert((*k).to_string(), json!(v));
                        }
                    }
                    Err(e) => {
                        m.insert("status".into(), json!("error"));
                        m.insert("error".into(), json!(e));
                    }
                }
                serde_json::to_string(&o).expect("JSON of plain values") + "\n"
            }
        }
    }
}

/// Writes rows in point order as they complete (holding back the ones that finish early), and
/// flushes after each, so an interrupted sweep keeps every row before the first unfinished one.
struct OrderedWriter<'a> {
    next: usize,
    pending: BTreeMap<usize, String>,
    out: &'a mut (dyn Write + Send),
    error: Option<std::io::Error>,
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
/// point to `out` in point order; `progress` is called once per finished point. Returns the
/// results in point order.
pub fn run(
    sweep: &Sweep,
    opts: RunOptions,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<PointResult>> {
    let io_err = |source: std::io::Error| Error::Io {
        path: "sweep output".into(),
        source,
    };
    if opts.format == RowFormat::Csv {
        out.write_all(sweep.csv_header().as_bytes())
            .map_err(io_err)?;
    }
    let points = sweep.shard(opts.shard);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::arg("--jobs", e.to_string()))?;
    let writer = Mutex::new(OrderedWriter {
        next: 0,
        pending: BTreeMap::new(),
        out,
        error: None,
    });
    let results: Vec<PointResult> = pool.install(|| {
        points
            .par_iter()
            .enumerate()
            .map(|(pos, p)| {
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

/// Merge shard outputs (CSV with identical headers, or JSON Lines) into one, rows in point
/// order: the same bytes an unsharded run writes.
pub fn merge(inputs: &[(String, String)]) -> Result<String> {
    let mut header: Option<(String, String)> = None;
    let mut rows: BTreeMap<usize, (String, String)> = BTreeMap::new();
    for (name, text) in inputs {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
        let Some(first) = lines.peek().copied() else {
            continue;
        };
        let json = first.trim_start().starts_with('{');
        if !json {
            let h = lines.next().expect("peeked").to_string();
            match &header {
                None => header = Some((name.clone(), h)),
                Some((hn, hh)) if *hh != h => {
                    return Err(Error::arg(
                        format!("merge {name}"),
                        format!("its header differs from {hn}'s: not shards of one sweep"),
                    ))
                }
                _ => {}
            }
        } else if header.is_some() {
            return Err(Error::arg(
                format!("merge {name}"),
                "JSON Lines mixed with CSV inputs",
            ));
        }
        for (n, line) in lines.enumerate() {
            let index = if json {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("point").and_then(serde_json::Value::as_u64))
                    .map(|i| i as usize)
            } else {
                line.split(',').next().and_then(|c| c.parse().ok())
            };
            let index = index.ok_or_else(|| Error::Trace {
                file: name.clone(),
                line: n + 1 + usize::from(!json),
                message: "expected a sweep row starting with its point index".into(),
            })?;
            if let Some((other, _)) = rows.insert(index, (name.clone(), line.to_string())) {
                return Err(Error::arg(
                    format!("merge {name}"),
                    format!("point {index} is also in {other}: overlapping shards"),
                ));
            }
        }
    }
    let mut out = String::new();
    if let Some((_, h)) = header {
        out.push_str(&h);
        out.push('\n');
    }
    for (_, (_, line)) in rows {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
[base]
hardware = "h100-sxm"
model = "llama-3.2-1b"
[base.workload]
concurrency = 4
requests = 20
prompt_tokens = 128
output_tokens = 16

[[axis]]
path = "hardware.gpu.hbm_bandwidth_bytes_per_s"
from = 1e12
to = 4e12
steps = 4

[[axis]]
path = "workload.concurrency"
values = [1, 8]
"#;

    fn sweep(text: &str) -> Result<Sweep> {
        Sweep::parse("spec.toml", text, PathBuf::new())
    }

    #[test]
    fn product_and_zip_expand_in_order() {
        let s = sweep(SPEC).unwrap();
        assert_eq!(s.points.len(), 8);
        assert_eq!(value_text(&s.points[1].values[1]), "8");
        assert_eq!(value_text(&s.points[2].values[0]), "2000000000000");
        let zipped = SPEC
            .replace("steps = 4", "steps = 2")
            .replace("[base]", "combine = \"zip\"\n[base]");
        assert_eq!(sweep(&zipped).unwrap().points.len(), 2);
        let bad_zip = SPEC.replace("[base]", "combine = \"zip\"\n[base]");
        assert!(sweep(&bad_zip)
            .unwrap_err()
            .to_string()
            .contains("equal lengths"));
    }

    #[test]
    fn log_ranges_of_integers_round_and_dedupe() {
        let t = SPEC.replace(
            "values = [1, 8]",
            "from = 1\nto = 4\nsteps = 5\nscale = \"log\"",
        );
        let s = sweep(&t).unwrap();
        let v: Vec<String> = s.axes[1].values.iter().map(value_text).collect();
        assert_eq!(v, ["1", "2", "3", "4"]);
    }

    #[test]
    fn misspelt_paths_get_a_suggestion() {
        for (wrong, right) in [
            ("workload.concurency", "workload.concurrency"),
            (
                "hardware.gpu.hbm_bandwith_bytes_per_s",
                "hardware.gpu.hbm_bandwidth_bytes_per_s",
            ),
            ("serve.max_bach", "serve.max_batch"),
        ] {
            let t = SPEC.replace(
                "path = \"workload.concurrency\"",
                &format!("path = \"{wrong}\""),
            );
            let e = sweep(&t).unwrap_err().to_string();
            assert!(e.contains(&format!("did you mean {right}?")), "{e}");
        }
        let e = sweep(&SPEC.replace("workload.concurrency", "load.concurrency"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("hardware., model., workload. or serve."), "{e}");
    }

    #[test]
    fn failing_points_record_their_error_and_the_rest_run() {
        let t = SPEC.replace("values = [1, 8]", "values = [1, 0]");
        let s = sweep(&t).unwrap();
        let mut out = Vec::new();
        let rows = run(
            &s,
            RunOptions {
                jobs: 2,
                shard: None,
                format: RowFormat::Csv,
            },
            &mut out,
            &|| {},
        )
        .unwrap();
        assert_eq!(rows.len(), 8);
        assert!(rows[0].outcome.is_ok());
        assert!(rows[1]
            .outcome
            .as_ref()
            .unwrap_err()
            .contains("concurrency"));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 9);
        assert!(text.lines().nth(2).unwrap().contains(",error,"));
    }

    #[test]
    fn seeds_depend_on_the_point_only() {
        let s = sweep(SPEC).unwrap();
        let a = point_seed(0, &s.axes, &s.points[3].values);
        assert_eq!(a, point_seed(0, &s.axes, &s.points[3].values));
        assert_ne!(a, point_seed(0, &s.axes, &s.points[2].values));
        assert_ne!(a, point_seed(1, &s.axes, &s.points[3].values));
    }

    #[test]
    fn shards_partition_the_points() {
        let s = sweep(SPEC).unwrap();
        let mut all: Vec<usize> = (0..3)
            .flat_map(|k| s.shard(Some(Shard { index: k, count: 3 })))
            .map(|p| p.index)
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("1/0").is_err());
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
    }

    #[test]
    fn did_you_mean_keeps_to_near_misses() {
        assert_eq!(
            did_you_mean("concurency", ["concurrency", "rate_per_s"]),
            Some("concurrency")
        );
        assert_eq!(did_you_mean("xyz", ["concurrency", "rate_per_s"]), None);
    }
}
