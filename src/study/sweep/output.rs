//! Sweep outputs: one row per point as CSV or JSON Lines (units in every column name), shards
//! of the points for job arrays (merging them is in `merge`).

use std::path::Path;

use serde_json::json;

use super::axis::{value_text, Point};
use super::run::PointResult;
use super::spec::Sweep;
use crate::energy::EnergyCost;
use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::report::{csv_cell, tidy};
use crate::study::slo::SloReport;

fn value_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        other => json!(other.to_string()),
    }
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

/// One metric cell of a sweep row, typed as `simulate`'s JSON types it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A count.
    Int(u64),
    /// A measured or derived quantity.
    Num(f64),
    /// A yes/no verdict.
    Bool(bool),
    /// Not available for this point: an empty CSV cell, a JSON `null`.
    Missing,
}

impl Cell {
    /// A number from an optional value (NaN counts as missing).
    fn num(x: Option<f64>) -> Cell {
        match x {
            Some(v) if !v.is_nan() => Cell::Num(v),
            _ => Cell::Missing,
        }
    }

    /// The value as a number for plots (booleans as 0 / 1, NaN when missing).
    pub fn as_f64(self) -> f64 {
        match self {
            Cell::Int(i) => i as f64,
            Cell::Num(x) => x,
            Cell::Bool(b) => f64::from(u8::from(b)),
            Cell::Missing => f64::NAN,
        }
    }

    /// Text of a CSV cell (floats through [`tidy`]).
    fn csv(self) -> String {
        match self {
            Cell::Int(i) => i.to_string(),
            Cell::Num(x) => tidy(x).to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Missing => String::new(),
        }
    }

    /// A JSON value (floats through [`tidy`]).
    fn json(self) -> serde_json::Value {
        match self {
            Cell::Int(i) => json!(i),
            Cell::Num(x) => json!(tidy(x)),
            Cell::Bool(b) => json!(b),
            Cell::Missing => serde_json::Value::Null,
        }
    }
}

/// The values of [`METRIC_COLUMNS`] for a summary and its energy and cost.
pub fn metric_values(
    s: &Summary,
    e: Option<&EnergyCost>,
    slo: Option<&SloReport>,
    max_rate_per_s: Option<f64>,
) -> Vec<Cell> {
    let mut v = vec![
        Cell::Int(s.requests as u64),
        Cell::Num(s.duration_s),
        Cell::Num(s.throughput_output_tokens_per_s),
        Cell::Num(s.throughput_input_tokens_per_s),
        Cell::Num(s.throughput_requests_per_s),
    ];
    for d in [
        s.ttft_s,
        s.tpot_s,
        s.itl_s,
        s.e2e_s,
        s.tokens_per_s_per_user,
    ] {
        v.extend([d.mean, d.p50, d.p90, d.p99].map(|x| Cell::num(Some(x))));
    }
    v.extend([
        Cell::Num(s.utilisation),
        Cell::Num(s.mean_batch_sequences),
        Cell::Num(s.kv_peak_fraction),
        Cell::Int(s.preemptions),
        Cell::Bool(s.saturation.saturated),
        e.map_or(Cell::Missing, |e| Cell::Int(u64::from(e.usage.devices))),
        Cell::num(e.and_then(EnergyCost::mean_power_w)),
        Cell::num(e.and_then(EnergyCost::j_per_output_token)),
        Cell::num(e.and_then(EnergyCost::usd_per_million_output_tokens)),
        Cell::Num(s.prefix_cache_hit_fraction),
        Cell::Int(s.swapped_tokens),
        Cell::Int(s.kv_transfers),
        Cell::num(slo.map(|r| r.goodput_requests_per_s)),
        slo.map_or(Cell::Missing, |r| Cell::Bool(r.met)),
        Cell::num(max_rate_per_s),
    ]);
    v
}

/// A point's warnings as one CSV cell: `kind:count` pairs joined by `;` (empty when none; the
/// messages are in the JSON Lines output).
fn warnings_cell(r: &PointResult) -> String {
    r.warnings
        .iter()
        .map(|w| format!("{}:{}", w.kind, w.count))
        .collect::<Vec<_>>()
        .join(";")
}

impl Sweep {
    /// The header line of CSV output.
    pub fn csv_header(&self) -> String {
        let mut h = vec!["point".to_string()];
        h.extend(self.axes.iter().map(|a| a.path.clone()));
        h.extend(
            [
                "seed", "status", "error", "warnings", "tp", "pp", "replicas",
            ]
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
                        cells.extend(["ok".to_string(), String::new(), warnings_cell(r)]);
                        cells.extend([opt(tp), opt(pp), opt(replicas)]);
                        cells.extend(
                            metric_values(s, r.energy.as_ref(), r.slo.as_ref(), r.max_rate_per_s)
                                .into_iter()
                                .map(Cell::csv),
                        );
                    }
                    Err(e) => {
                        cells.extend(["error".to_string(), csv_cell(e), warnings_cell(r)]);
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
                    "tp": tp, "pp": pp, "replicas": replicas, "warnings": r.warnings,
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
                            m.insert((*k).to_string(), v.json());
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

impl Sweep {
    /// The points of shard `k` of `n` (interleaved: index % n == k).
    pub fn shard(&self, shard: Option<Shard>) -> Vec<&Point> {
        self.points
            .iter()
            .filter(|p| shard.is_none_or(|s| p.index % s.count == s.index))
            .collect()
    }
}
