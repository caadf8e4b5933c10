//! Sweep specs: the TOML shape (a base scenario and axes), parsing and checking every name
//! before the first point runs, and the scenario of each point.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::axis::{expand_axis, point_seed, points, value_text, Axis, AxisSpec, Combine, Point};
use crate::error::{Error, Result};
use crate::profile::catalog::{is_path, profile_text, Target};
use crate::profile::Override;
use crate::scenario::{Scenario, ServeSpec, WorkloadSpec, SERVE_FIELDS, WORKLOAD_FIELDS};
use crate::study::slo::Slo;

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
    /// A hash of the spec file's text (FNV-1a), identifying the sweep in shard outputs.
    pub spec_hash: u64,
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
        let points = points(file, spec.combine, &axes)?;
        let sweep = Sweep {
            file: file.to_string(),
            dir,
            spec,
            axes,
            points,
            spec_hash: super::merge::fnv1a(text.as_bytes(), super::merge::FNV_OFFSET),
        };
        sweep.check_paths()?;
        Ok(sweep)
    }

    pub(super) fn profile_spec(&self, s: &str) -> String {
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
                // Goodput counts the requests meeting the limits as they complete.
                keep_records: false,
            },
            seed,
        ))
    }
}
