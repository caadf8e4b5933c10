//! Validation: predict every published figure in the reference set (`reference/published.toml`)
//! under its stated conditions and report the relative error of each, with a summary.
//!
//! Scenarios:
//! - `single_stream`: one sequence decoding after `context_tokens` (how per-user speeds such as
//!   Artificial Analysis' or Cerebras' are measured);
//! - `offline`: every request submitted at once, throughput over the run (MLPerf Offline);
//! - `server`: Poisson arrivals at the highest rate whose TTFT and TPOT percentiles stay within
//!   the limits (MLPerf Server / Interactive), found by bisection; metrics at that rate, over the
//!   run's steady state ([`SteadyWindow`]), as an MLPerf run of ten minutes or more measures them.
//!
//! Rows that describe the same run (a throughput row and the latencies of that run) share one
//! simulation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::{Loop, PreemptionMode};
use crate::error::{Error, Result};
use crate::lengths::LengthSet;
use crate::metrics::{SteadyWindow, Summary};
use crate::placement::ParallelRequest;
use crate::profile::{load_hardware, load_model, Override};
use crate::study::slo::max_rate;
use crate::system::{ServeSettings, Speculation, System};
use crate::workload::{Arrivals, LengthDist, Workload};

/// The shipped reference set.
pub const SHIPPED: &str = include_str!("../../reference/published.toml");

/// The reference file: a list of rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    /// Every published figure the simulator can express.
    pub row: Vec<ReferenceRow>,
}

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
        }
    }
}

/// The conditions a figure was measured under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scenario {
    /// One sequence decoding after `context_tokens` cached tokens.
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
    /// What is measured.
    pub metric: Metric,
    /// Measurement conditions.
    pub scenario: Scenario,
    /// Speculative decoding, if used.
    pub speculative: Option<RowSpeculation>,
    /// The published value, in `unit`.
    pub published: f64,
    /// Unit of `published` (SI: tokens/s or s).
    pub unit: String,
    /// Largest |relative error| the regression tests accept.
    pub tolerance: f64,
    /// Why that tolerance.
    pub tolerance_reason: String,
    /// True when a profile's free parameters were fitted to this row.
    #[serde(default)]
    pub fitted: bool,
    /// Publication date.
    pub date: String,
    /// Source and grade (\[P\] primary, \[S\] secondary).
    pub source: String,
    /// Assumptions made to express the row.
    #[serde(default)]
    pub notes: String,
}

/// Prediction for one row.
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
    /// Published value.
    pub published: f64,
    /// predicted / published - 1.
    pub rel_error: f64,
    /// Tolerance of the regression test.
    pub tolerance: f64,
    /// True if a profile was fitted to this row.
    pub fitted: bool,
    /// `ok` or why there is no prediction.
    pub status: String,
}

/// Count, median and max of |relative error| over the rows with a prediction.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationSummary {
    /// Rows with a prediction.
    pub n: usize,
    /// Median |relative error|.
    pub median_abs_rel_error: f64,
    /// Largest |relative error|.
    pub max_abs_rel_error: f64,
    /// Median |relative error| over rows no profile was fitted to.
    pub median_abs_rel_error_unfitted: f64,
}

/// Parse a reference file.
pub fn parse(label: &str, text: &str) -> Result<Vec<ReferenceRow>> {
    let f: ReferenceFile = toml::from_str(text).map_err(|e| Error::Parse {
        file: label.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut seen = BTreeMap::new();
    for r in &f.row {
        if seen.insert(r.id.clone(), ()).is_some() {
            return Err(Error::Invalid {
                file: label.into(),
                problems: vec![crate::error::Problem::new(
                    format!("row {}", r.id),
                    "duplicate id",
                )],
            });
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
                Error::Invalid {
                    file: label.into(),
                    problems: vec![crate::error::Problem::new(
                        format!("row {} scenario.lengths", r.id),
                        e.to_string(),
                    )],
                }
            })?;
        }
        if !(r.published.is_finite()
            && r.published > 0.0
            && r.tolerance.is_finite()
            && r.tolerance > 0.0)
        {
            return Err(Error::Invalid {
                file: label.into(),
                problems: vec![crate::error::Problem::new(
                    format!("row {}", r.id),
                    "published and tolerance must be finite and > 0",
                )],
            });
        }
    }
    Ok(f.row)
}

/// Build the system a row describes, with extra `overrides` applied after the row's own.
pub fn system_for(row: &ReferenceRow, overrides: &[Override]) -> Result<System> {
    let mut sets = row
        .sets
        .iter()
        .map(|s| Override::parse(s))
        .collect::<Result<Vec<_>>>()?;
    sets.extend_from_slice(overrides);
    let speculation = match &row.speculative {
        Some(s) => Some(Speculation::load(&s.draft, s.gamma, s.alpha)?),
        None => None,
    };
    System::with_speculation(
        load_hardware(&row.hardware, &sets)?,
        load_model(&row.model, &sets)?,
        speculation,
        ParallelRequest {
            tp: row.tp,
            pp: row.pp,
            replicas: None,
            attention_dp: row.attention_dp,
        },
    )
}

fn settings(row: &ReferenceRow) -> ServeSettings {
    ServeSettings {
        max_batch: row.max_batch.unwrap_or(ServeSettings::default().max_batch),
        max_batched_tokens: row
            .max_batched_tokens
            .unwrap_or(ServeSettings::default().max_batched_tokens),
        preemption: row.preemption.unwrap_or_default(),
        ..ServeSettings::default()
    }
}

/// Largest relative gap allowed between a row's `prompt_tokens` and its length dataset's mean.
const PROMPT_MEAN_GAP: f64 = 0.05;

/// The lengths of a row's requests: every request `prompt` / `output` tokens, or, with `lengths`,
/// pairs drawn from that dataset (a shipped name or a CSV path; see [`LengthSet`]). A dataset's
/// prompts are used as they are, and `prompt` must agree with their mean within 5%; its outputs
/// are scaled to the mean `output`, since a run's outputs are the model's own, whose mean the
/// benchmark publishes, rather than the dataset's reference answers.
pub fn row_lengths(
    id: &str,
    prompt: u32,
    output: u32,
    lengths: Option<&str>,
) -> Result<(LengthDist, LengthDist)> {
    let Some(name) = lengths else {
        return Ok((LengthDist::Fixed(prompt), LengthDist::Fixed(output)));
    };
    let set = LengthSet::load(name)?;
    let mean = set.mean_prompt();
    if (mean / f64::from(prompt) - 1.0).abs() > PROMPT_MEAN_GAP {
        return Err(Error::arg(
            format!("row {id}"),
            format!(
                "prompt_tokens = {prompt} but the mean prompt of \"{name}\" is {mean:.1}; \
                 expected them within {:.0}%",
                100.0 * PROMPT_MEAN_GAP
            ),
        ));
    }
    Ok(set.dists(Some(f64::from(output))))
}

/// `requests` requests with `lengths` arriving by `arrivals`.
fn workload(lengths: &(LengthDist, LengthDist), requests: usize, arrivals: Arrivals) -> Workload {
    Workload {
        requests,
        arrivals,
        prompt: lengths.0.clone(),
        output: lengths.1.clone(),
        prefixes: None,
    }
}

fn pick(metric: Metric, s: &Summary) -> f64 {
    match metric {
        Metric::TokensPerSPerUser => s.tokens_per_s_per_user.mean,
        Metric::ThroughputOutputTokensPerS => s.throughput_output_tokens_per_s,
        Metric::TpotMeanS => s.tpot_s.mean,
        Metric::TtftMeanS => s.ttft_s.mean,
        Metric::TpotP50S => s.tpot_s.p50,
    }
}

/// 99th percentile, as MLPerf's Server and Interactive scenarios use.
fn meets(s: &Summary, ttft: f64, tpot: f64) -> bool {
    s.ttft_s.p99 <= ttft && s.tpot_s.p99 <= tpot
}

/// Predict one row on `sys`.
pub fn predict(row: &ReferenceRow, sys: &System) -> Result<f64> {
    match &row.scenario {
        Scenario::SingleStream { context_tokens } => {
            let mut b = sys.batch();
            b.push_sequence(1, *context_tokens, true, true);
            let step_s = sys.step(&b).total_s();
            let yielded = sys
                .speculation
                .as_ref()
                .map_or(1.0, Speculation::expected_tokens);
            let per_user = yielded / step_s;
            Ok(match row.metric {
                Metric::TokensPerSPerUser => per_user,
                Metric::TpotMeanS => 1.0 / per_user,
                other => {
                    return Err(Error::arg(
                        format!("row {}", row.id),
                        format!(
                        "a single_stream scenario measures per-user speed or TPOT, not {other:?}"
                    ),
                    ))
                }
            })
        }
        _ => Ok(pick(row.metric, &run_scenario(row, sys)?)),
    }
}

/// The run an offline or server row describes, summarised (steady state for server rows).
fn run_scenario(row: &ReferenceRow, sys: &System) -> Result<Summary> {
    let window = sys.model.architecture.context_window_tokens;
    match &row.scenario {
        Scenario::SingleStream { .. } => Err(Error::arg(
            format!("row {}", row.id),
            "a single_stream scenario has no run",
        )),
        Scenario::Offline {
            prompt_tokens,
            output_tokens,
            requests,
            lengths,
        } => {
            let lengths = row_lengths(&row.id, *prompt_tokens, *output_tokens, lengths.as_deref())?;
            let w = workload(&lengths, *requests, Arrivals::AllAtOnce);
            let reqs = w.generate(0, window)?;
            let (_, s) = sys.simulate(&reqs, &settings(row), Loop::Open)?;
            Ok(s)
        }
        Scenario::Server {
            prompt_tokens,
            output_tokens,
            requests,
            lengths,
            ttft_limit_s,
            tpot_limit_s,
        } => {
            let lengths = row_lengths(&row.id, *prompt_tokens, *output_tokens, lengths.as_deref())?;
            let run = |rate: f64| -> Result<(Summary, bool)> {
                let w = workload(&lengths, *requests, Arrivals::Poisson { rate_per_s: rate });
                let reqs = w.generate(0, window)?;
                let (out, whole) = sys.simulate(&reqs, &settings(row), Loop::Open)?;
                // MLPerf's figures are of a long run in steady state; so are these. A run with
                // too few requests in steady state (its queue still growing) counts as a miss.
                Ok(match SteadyWindow::of(&out.requests) {
                    Some(w) => (w.summarise(&out, &whole), whole.saturation.saturated),
                    None => (whole, true),
                })
            };
            // Upper bracket: the offline request rate can never be met with latency limits.
            let offline = {
                let w = workload(&lengths, *requests, Arrivals::AllAtOnce);
                sys.simulate(&w.generate(0, window)?, &settings(row), Loop::Open)?
                    .1
            };
            let limits = |(s, saturated): &(Summary, bool)| {
                !saturated && meets(s, *ttft_limit_s, *tpot_limit_s)
            };
            let hi = offline.throughput_requests_per_s * 1.5;
            match max_rate(hi, |rate| run(rate).map(|s| (limits(&s), s.0)))? {
                Some((_, best)) => Ok(best),
                None => {
                    let lo = hi / 1e4;
                    let (at_lo, _) = run(lo)?;
                    Err(Error::arg(
                        format!("row {}", row.id),
                        format!(
                            "even {lo:.4} requests/s misses the limits (p99 TTFT {:.3} s, p99 TPOT {:.4} s)",
                            at_lo.ttft_s.p99, at_lo.tpot_s.p99
                        ),
                    ))
                }
            }
        }
    }
}

/// Rows that share hardware, model, conditions and scenario describe one run: the run is
/// simulated once and each row reads its own metric from it.
fn run_key(row: &ReferenceRow) -> String {
    format!(
        "{}|{}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        row.hardware,
        row.model,
        row.sets,
        row.tp,
        row.attention_dp,
        row.pp,
        row.max_batch,
        row.max_batched_tokens,
        row.preemption,
        row.scenario,
        row.speculative
    )
}

/// Predict every row of `rows` with `overrides` applied, simulating each distinct run once, in
/// parallel.
pub fn predict_rows(rows: &[ReferenceRow], overrides: &[Override]) -> Vec<Result<f64>> {
    use rayon::prelude::*;
    let mut runs: Vec<(String, &ReferenceRow)> = Vec::new();
    for r in rows {
        let k = run_key(r);
        if !matches!(r.scenario, Scenario::SingleStream { .. })
            && !runs.iter().any(|(x, _)| *x == k)
        {
            runs.push((k, r));
        }
    }
    let done: Vec<(String, Option<Summary>)> = runs
        .par_iter()
        .map(|(k, r)| {
            let s = system_for(r, overrides).and_then(|sys| run_scenario(r, &sys));
            (k.clone(), s.ok())
        })
        .collect();
    rows.par_iter()
        .map(|r| match r.scenario {
            Scenario::SingleStream { .. } => {
                system_for(r, overrides).and_then(|sys| predict(r, &sys))
            }
            _ => {
                let k = run_key(r);
                match done.iter().find(|(x, _)| *x == k).map(|(_, s)| s) {
                    Some(Some(s)) => Ok(pick(r.metric, s)),
                    // Errors are rare and quick: run again for this row's own message.
                    _ => system_for(r, overrides)
                        .and_then(|sys| run_scenario(r, &sys))
                        .map(|s| pick(r.metric, &s)),
                }
            }
        })
        .collect()
}

/// Predict every row; a row that cannot be simulated is reported with its reason.
pub fn run(rows: &[ReferenceRow], overrides: &[Override]) -> Vec<RowResult> {
    rows.iter()
        .zip(predict_rows(rows, overrides))
        .map(|(row, predicted)| {
            let (predicted, status) = match predicted {
                Ok(p) => (p, "ok".to_string()),
                Err(e) => (f64::NAN, e.to_string()),
            };
            RowResult {
                id: row.id.clone(),
                family: row.family.clone(),
                hardware: row.hardware.clone(),
                model: row.model.clone(),
                metric: row.metric,
                predicted,
                published: row.published,
                rel_error: predicted / row.published - 1.0,
                tolerance: row.tolerance,
                fitted: row.fitted,
                status,
            }
        })
        .collect()
}

/// Median of a sample (NaN when empty).
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

/// Summary over the rows with a prediction.
pub fn summarise(results: &[RowResult]) -> ValidationSummary {
    let errs: Vec<f64> = results
        .iter()
        .filter(|r| r.rel_error.is_finite())
        .map(|r| r.rel_error.abs())
        .collect();
    let unfitted: Vec<f64> = results
        .iter()
        .filter(|r| r.rel_error.is_finite() && !r.fitted)
        .map(|r| r.rel_error.abs())
        .collect();
    ValidationSummary {
        n: errs.len(),
        median_abs_rel_error: median(errs.clone()),
        max_abs_rel_error: errs.iter().copied().fold(f64::NAN, f64::max),
        median_abs_rel_error_unfitted: median(unfitted),
    }
}
