//! Validation: predict every published figure in the reference set (`reference/published.toml`)
//! under its stated conditions, and judge each by a tolerance fixed in advance.
//!
//! Scenarios:
//! - `single_stream`: one sequence decoding after `context_tokens` (how per-user speeds such as
//!   Artificial Analysis' or Cerebras' are measured);
//! - `offline`: every request submitted at once, throughput over the run (MLPerf Offline);
//! - `server`: Poisson arrivals at the highest rate whose TTFT and TPOT percentiles stay within
//!   the limits (MLPerf Server / Interactive), found by bisection of load tests under the shared
//!   stopping rule ([`crate::study::load_test`]); metrics at that rate, over the run's steady
//!   state, as an MLPerf run of ten minutes or more measures them.
//!
//! Rows that describe the same run (a throughput row and the latencies of that run) share one
//! simulation.
//!
//! Judging. Each row's tolerance comes from its tolerance class, which is set by what the row
//! measures ([`class_of`]) and declared once in the reference file with the noise it stands for;
//! a row carries its own only when its source states an uncertainty, and quotes it. A row
//! *passes* when its prediction's 95% interval reaches inside the tolerance and is narrower than
//! a quarter of it; otherwise, or when it cannot be simulated, it *misses*. Whether a miss is
//! known, and whether any error moved since it was last accepted, is the ledger's business (`ledger.rs`).

mod ledger;
mod predict;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::{PreemptionMode, Routing};
use crate::error::{Error, Problem, Result};
use crate::profile::Override;

pub use ledger::{
    strict_problems, write_results, Accepted, FitRecord, Fits, KnownMiss, Ledger, MAX_MOVE,
    SHIPPED_FITS, SHIPPED_MISSES, SHIPPED_RESULTS,
};
pub use predict::{
    predict, predict_rows, predict_rows_with_progress, prediction_tasks, row_lengths, system_for,
    Prediction,
};

/// The shipped reference set.
pub const SHIPPED: &str = include_str!("../../../reference/published.toml");

/// Widest tolerance a class may have: past it a "pass" says little.
pub const MAX_CLASS_WIDTH: f64 = 0.25;

/// The reference file: the tolerance classes and the rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    /// Tolerance classes by name ([`CLASSES`] must all be there).
    pub class: BTreeMap<String, ToleranceClass>,
    /// Every published figure the simulator can express.
    pub row: Vec<ReferenceRow>,
}

/// A tolerance class: how far a prediction may be from a published figure of one kind, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceClass {
    /// Largest |relative error| that passes, in (0, [`MAX_CLASS_WIDTH`]].
    pub width: f64,
    /// What the class's rows measure.
    pub measures: String,
    /// The noise the width stands for, with its sources.
    pub reason: String,
}

/// The class names, in the order [`class_of`] assigns them.
pub const CLASSES: [&str; 5] = [
    "single_stream_speed",
    "load_throughput",
    "load_mean_tpot",
    "load_mean_ttft",
    "client_ttft",
];

/// What a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Output tokens per second seen by one request during decode (1 / TPOT).
    TokensPerSPerUser,
    /// System output tokens per second.
    ThroughputOutputTokensPerS,
    /// Mean time per output token, s.
    TpotMeanS,
    /// Mean time to first token, s.
    TtftMeanS,
    /// Median time per output token, s.
    TpotP50S,
    /// Mean time to first token measured at the client: the server's with the hardware
    /// profile's `[frontend]` (network and API stack) added, s.
    ClientTtftMeanS,
    /// Per-user decode speed with the row's speculative decoding over the speed of the same
    /// system's target decoding alone (a ratio, as speculative-decoding speed-ups are published):
    /// it judges what drafting and verification cost relative to a plain step, apart from the
    /// plain step's own error.
    SpeculativeSpeedup,
}

impl Metric {
    /// Name as written in reference files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TokensPerSPerUser => "tokens_per_s_per_user",
            Metric::ThroughputOutputTokensPerS => "throughput_output_tokens_per_s",
            Metric::TpotMeanS => "tpot_mean_s",
            Metric::TtftMeanS => "ttft_mean_s",
            Metric::TpotP50S => "tpot_p50_s",
            Metric::ClientTtftMeanS => "client_ttft_mean_s",
            Metric::SpeculativeSpeedup => "speculative_speedup",
        }
    }
}

/// The conditions a figure was measured under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scenario {
    /// One sequence decoding after `context_tokens` cached tokens (for `client_ttft_mean_s`:
    /// one request with a prompt of `context_tokens` on an idle system).
    SingleStream {
        /// Tokens in the KV cache when the measured token is produced.
        context_tokens: u64,
    },
    /// All requests at once; throughput over the run.
    Offline {
        /// Prompt tokens per request (the mean, when `lengths` is set).
        prompt_tokens: u32,
        /// Output tokens per request (the mean, when `lengths` is set).
        output_tokens: u32,
        /// Requests submitted.
        requests: usize,
        /// Length dataset the requests are drawn from (see [`row_lengths`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lengths: Option<String>,
    },
    /// The highest Poisson rate meeting latency limits at a percentile.
    Server {
        /// Prompt tokens per request (the mean, when `lengths` is set).
        prompt_tokens: u32,
        /// Output tokens per request (the mean, when `lengths` is set).
        output_tokens: u32,
        /// Requests per probe run.
        requests: usize,
        /// Length dataset the requests are drawn from (see [`row_lengths`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lengths: Option<String>,
        /// TTFT limit at the percentile, s.
        ttft_limit_s: f64,
        /// TPOT limit at the percentile, s.
        tpot_limit_s: f64,
    },
}

/// Speculative decoding of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpeculation {
    /// Draft model profile.
    pub draft: String,
    /// Draft tokens per step.
    pub gamma: u32,
    /// Acceptance rate of one draft token.
    pub alpha: f64,
}

/// An uncertainty the source of a figure states ("1,000+", "~1,500"), quoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatedUncertainty {
    /// The |relative error| it allows.
    pub width: f64,
    /// The source's words.
    pub quote: String,
}

/// One published figure with its conditions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRow {
    /// Unique identifier.
    pub id: String,
    /// Hardware family for grouping (e.g. "NVIDIA Hopper", "Cerebras WSE-3").
    pub family: String,
    /// Hardware profile.
    pub hardware: String,
    /// Model profile.
    pub model: String,
    /// Profile overrides that state the conditions (devices, precision, ...).
    #[serde(default)]
    pub sets: Vec<String>,
    /// Tensor-parallel degree, if the source states it.
    pub tp: Option<u32>,
    /// Attention data parallelism over the `tp` GPUs, if the source states it.
    #[serde(default)]
    pub attention_dp: bool,
    /// Pipeline stages, if the source states them.
    pub pp: Option<u32>,
    /// Most sequences per iteration, if the source states it (default: the engine default).
    pub max_batch: Option<u32>,
    /// Most tokens per iteration, if the source states it (default: the engine default).
    pub max_batched_tokens: Option<u32>,
    /// What the server does when KV room runs out (default: the engine default, recompute).
    pub preemption: Option<PreemptionMode>,
    /// Whether prompts are split over iterations (default: the engine default, on).
    pub chunked_prefill: Option<bool>,
    /// How requests are spread over the replicas, if the source states it (default: the
    /// engine default, round robin).
    pub routing: Option<Routing>,
    /// What is measured.
    pub metric: Metric,
    /// Measurement conditions.
    pub scenario: Scenario,
    /// Speculative decoding, if used.
    pub speculative: Option<RowSpeculation>,
    /// Wafer rows: the serving-software generation of the row's date (a key of the profile's
    /// `[wafer.software]`); absent: the profile's default, the newest.
    pub software: Option<String>,
    /// The published value, in `unit`.
    pub published: f64,
    /// Unit of `published` (SI: tokens/s or s).
    pub unit: String,
    /// The source's own stated uncertainty, which replaces the class's width.
    pub uncertainty: Option<StatedUncertainty>,
    /// Publication date.
    pub date: String,
    /// Source and grade (\[P\] primary, \[S\] secondary).
    pub source: String,
    /// Assumptions made to express the row.
    #[serde(default)]
    pub notes: String,
}

/// The tolerance class of a row, set by what it measures: a TTFT measured at the client, a
/// single stream's speed (or the ratio of two, a speculative speed-up), or under load the
/// throughput, the mean (or median) TPOT, the mean TTFT.
pub fn class_of(row: &ReferenceRow) -> &'static str {
    match (&row.scenario, row.metric) {
        (_, Metric::ClientTtftMeanS) => CLASSES[4],
        (Scenario::SingleStream { .. }, _) | (_, Metric::SpeculativeSpeedup) => CLASSES[0],
        (_, Metric::ThroughputOutputTokensPerS | Metric::TokensPerSPerUser) => CLASSES[1],
        (_, Metric::TpotMeanS | Metric::TpotP50S) => CLASSES[2],
        (_, Metric::TtftMeanS) => CLASSES[3],
    }
}

/// A parsed reference set.
#[derive(Debug, Clone)]
pub struct ReferenceSet {
    /// Tolerance classes by name.
    pub classes: BTreeMap<String, ToleranceClass>,
    /// The rows, in file order.
    pub rows: Vec<ReferenceRow>,
}

impl ReferenceSet {
    /// The shipped reference set.
    pub fn shipped() -> Result<ReferenceSet> {
        parse("reference/published.toml", SHIPPED)
    }

    /// The same classes with only the rows `keep` accepts.
    pub fn filtered(&self, keep: impl Fn(&ReferenceRow) -> bool) -> ReferenceSet {
        ReferenceSet {
            classes: self.classes.clone(),
            rows: self.rows.iter().filter(|r| keep(r)).cloned().collect(),
        }
    }

    /// A row's tolerance: its stated uncertainty, or its class's width.
    pub fn tolerance(&self, row: &ReferenceRow) -> f64 {
        row.uncertainty
            .as_ref()
            .map_or_else(|| self.classes[class_of(row)].width, |u| u.width)
    }
}

/// Whether a row's prediction passes its tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The prediction's interval reaches inside the tolerance and is narrow enough to say so.
    Pass,
    /// Outside the tolerance, too uncertain to tell, or no prediction.
    Miss,
}

/// Prediction for one row, judged.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// Row identifier.
    pub id: String,
    /// Hardware family.
    pub family: String,
    /// Hardware profile.
    pub hardware: String,
    /// Model profile.
    pub model: String,
    /// What is measured.
    pub metric: Metric,
    /// Predicted value (NaN/null when the row could not be simulated).
    pub predicted: f64,
    /// 95% confidence interval of the prediction, when it has sampling error.
    pub ci95: Option<(f64, f64)>,
    /// Published value.
    pub published: f64,
    /// predicted / published - 1.
    pub rel_error: f64,
    /// Largest |rel_error| that passes.
    pub tolerance: f64,
    /// The row's tolerance class, or `stated` for the source's own uncertainty.
    pub tolerance_class: String,
    /// True if a recorded fit used this row.
    pub fitted: bool,
    /// Relative error of the row predicted by that fit's cross-validation (the parameters fitted
    /// without it), when the fit has one.
    pub loo_rel_error: Option<f64>,
    /// Pass or miss.
    pub verdict: Verdict,
    /// True if the row is in the known-miss ledger.
    pub known_miss: bool,
    /// The ledger's cause for a known miss.
    pub cause: Option<String>,
    /// `ok` or why there is no prediction.
    pub status: String,
}

/// Medians and counts over the rows. A row without a prediction counts as an infinite error.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationSummary {
    /// Rows.
    pub n: usize,
    /// Median |relative error|.
    pub median_abs_rel_error: f64,
    /// Largest |relative error| (null when a row has no prediction).
    pub max_abs_rel_error: f64,
    /// Median |relative error| over rows no recorded fit used: the headline.
    pub median_abs_rel_error_unfitted: f64,
    /// Rows no recorded fit used.
    pub n_unfitted: usize,
    /// Median |cross-validated relative error| over the fitted rows that have one.
    pub median_abs_loo_rel_error: f64,
    /// Rows that miss.
    pub misses: usize,
    /// Misses not in the known-miss ledger.
    pub unlisted_misses: usize,
}

/// One parse problem in `label`.
fn invalid(label: &str, path: String, message: impl Into<String>) -> Error {
    Error::Invalid {
        file: label.into(),
        problems: vec![Problem::new(path, message)],
    }
}

/// Parse a reference file: the classes (each of [`CLASSES`], widths in (0, 25%]) and the rows
/// (unique ids, positive figures, length datasets that match their stated means).
pub fn parse(label: &str, text: &str) -> Result<ReferenceSet> {
    let f: ReferenceFile = toml::from_str(text).map_err(|e| Error::Parse {
        file: label.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    for name in CLASSES {
        let Some(c) = f.class.get(name) else {
            return Err(invalid(
                label,
                format!("class.{name}"),
                "missing tolerance class",
            ));
        };
        if !(c.width > 0.0 && c.width <= MAX_CLASS_WIDTH) {
            return Err(invalid(
                label,
                format!("class.{name}.width"),
                format!(
                    "expected a width in (0, {MAX_CLASS_WIDTH}], found {}",
                    c.width
                ),
            ));
        }
    }
    if let Some(name) = f.class.keys().find(|k| !CLASSES.contains(&k.as_str())) {
        return Err(invalid(
            label,
            format!("class.{name}"),
            format!("unknown class; expected one of {}", CLASSES.join(", ")),
        ));
    }
    let mut seen = BTreeMap::new();
    for r in &f.row {
        if seen.insert(r.id.clone(), ()).is_some() {
            return Err(invalid(label, format!("row {}", r.id), "duplicate id"));
        }
        if let Scenario::Offline {
            prompt_tokens,
            output_tokens,
            lengths: Some(l),
            ..
        }
        | Scenario::Server {
            prompt_tokens,
            output_tokens,
            lengths: Some(l),
            ..
        } = &r.scenario
        {
            row_lengths(&r.id, *prompt_tokens, *output_tokens, Some(l)).map_err(|e| {
                invalid(
                    label,
                    format!("row {} scenario.lengths", r.id),
                    e.to_string(),
                )
            })?;
        }
        if !(r.published.is_finite() && r.published > 0.0) {
            return Err(invalid(
                label,
                format!("row {} published", r.id),
                "expected a finite figure > 0",
            ));
        }
        if let Some(u) = &r.uncertainty {
            if !(u.width > 0.0 && u.width.is_finite()) || u.quote.trim().is_empty() {
                return Err(invalid(
                    label,
                    format!("row {} uncertainty", r.id),
                    "expected a width > 0 and the source's words in quote",
                ));
            }
        }
    }
    Ok(ReferenceSet {
        classes: f.class,
        rows: f.row,
    })
}

/// Judge a prediction against `tolerance`: a pass needs its 95% interval (the point when it has
/// none) to reach inside the tolerance, and the interval's half-width to be at most a quarter of
/// the tolerance, both relative to the published figure.
pub fn judge(prediction: &Result<Prediction>, published: f64, tolerance: f64) -> Verdict {
    let Ok(p) = prediction else {
        return Verdict::Miss;
    };
    let (lo, hi) = p.ci95().unwrap_or((p.value, p.value));
    let (lo, hi) = (lo / published - 1.0, hi / published - 1.0);
    let narrow = p
        .half_width
        .is_none_or(|h| h / published <= tolerance / 4.0);
    if narrow && p.value.is_finite() && hi >= -tolerance && lo <= tolerance {
        Verdict::Pass
    } else {
        Verdict::Miss
    }
}

/// Predict every row of `set` and judge it; `ledger` marks the known misses and `fits` the rows
/// a recorded fit used. A row that cannot be simulated is a miss, reported with its reason.
pub fn run(
    set: &ReferenceSet,
    overrides: &[Override],
    ledger: &Ledger,
    fits: &Fits,
) -> Vec<RowResult> {
    run_with_progress(set, overrides, ledger, fits, &|| {})
}

/// As [`run`], calling `progress` once per unit of [`prediction_tasks`] as it ends.
pub fn run_with_progress(
    set: &ReferenceSet,
    overrides: &[Override],
    ledger: &Ledger,
    fits: &Fits,
    progress: &(dyn Fn() + Sync),
) -> Vec<RowResult> {
    set.rows
        .iter()
        .zip(predict_rows_with_progress(&set.rows, overrides, progress))
        .map(|(row, prediction)| {
            let tolerance = set.tolerance(row);
            let verdict = judge(&prediction, row.published, tolerance);
            let (value, ci95, status) = match prediction {
                Ok(p) => (p.value, p.ci95(), "ok".to_string()),
                Err(e) => (f64::NAN, None, e.to_string()),
            };
            let known = ledger.get(&row.id);
            RowResult {
                id: row.id.clone(),
                family: row.family.clone(),
                hardware: row.hardware.clone(),
                model: row.model.clone(),
                metric: row.metric,
                predicted: value,
                ci95,
                published: row.published,
                rel_error: value / row.published - 1.0,
                tolerance,
                tolerance_class: if row.uncertainty.is_some() {
                    "stated".to_string()
                } else {
                    class_of(row).to_string()
                },
                fitted: fits.fitted(&row.id),
                loo_rel_error: fits.loo(&row.id),
                verdict,
                known_miss: known.is_some(),
                cause: known.map(|k| k.cause.clone()),
                status,
            }
        })
        .collect()
}

/// Median of a sample (NaN when empty; infinities sort last).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// |relative error| of a result, infinite when it has no prediction.
fn abs_error(r: &RowResult) -> f64 {
    if r.rel_error.is_finite() {
        r.rel_error.abs()
    } else {
        f64::INFINITY
    }
}

/// Summary over every row; rows without a prediction count as infinite errors.
pub fn summarise(results: &[RowResult]) -> ValidationSummary {
    let errs: Vec<f64> = results.iter().map(abs_error).collect();
    let unfitted: Vec<f64> = results
        .iter()
        .filter(|r| !r.fitted)
        .map(abs_error)
        .collect();
    let loo: Vec<f64> = results
        .iter()
        .filter_map(|r| r.loo_rel_error)
        .map(|e| {
            if e.is_finite() {
                e.abs()
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let misses = results.iter().filter(|r| r.verdict == Verdict::Miss);
    ValidationSummary {
        n: results.len(),
        median_abs_rel_error: median(errs.clone()),
        max_abs_rel_error: errs.iter().copied().fold(f64::NAN, f64::max),
        n_unfitted: unfitted.len(),
        median_abs_rel_error_unfitted: median(unfitted),
        median_abs_loo_rel_error: median(loo),
        misses: misses.clone().count(),
        unlisted_misses: misses.filter(|r| !r.known_miss).count(),
    }
}

#[cfg(test)]
mod tests;
