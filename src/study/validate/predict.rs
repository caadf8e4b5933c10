//! Predictions of reference rows: the system each row describes, the run its scenario asks for
//! (one step priced, an offline run, or a rate search of server load tests under the shared
//! stopping rule of [`crate::study::load_test`]), and each figure with its 95% confidence
//! interval.

use crate::engine::Loop;
use crate::error::{Error, Result};
use crate::lengths::LengthSet;
use crate::metrics::{ClientModel, ClientSummary, FrontendScale, SteadyCi, Summary};
use crate::placement::ParallelRequest;
use crate::profile::{load_hardware, load_model, Override};
use crate::study::load_test::{run_until_steady, simulate_windowed, SteadyRun, RULE};
use crate::study::slo::{max_rate, Slo};
use crate::system::{ServeSettings, Speculation, System};
use crate::workload::{Arrivals, LengthDist, RequestSpec, Workload};

use super::{Metric, ReferenceRow, Scenario};

/// A simulated figure with the half-width of its 95% confidence interval: `None` for a figure
/// without sampling error (one iteration priced) or a run too short to estimate it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The figure, in the row's unit.
    pub value: f64,
    /// Half-width of its 95% confidence interval, in the row's unit.
    pub half_width: Option<f64>,
}

impl Prediction {
    /// The 95% confidence interval, when there is one.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        self.half_width
            .filter(|h| h.is_finite())
            .map(|h| (self.value - h, self.value + h))
    }
}

/// Build the system a row describes, with extra `overrides` applied after the row's own.
pub fn system_for(row: &ReferenceRow, overrides: &[Override]) -> Result<System> {
    let mut sets = row
        .sets
        .iter()
        .map(|s| Override::parse(s))
        .collect::<Result<Vec<_>>>()?;
    if let Some(g) = &row.software {
        sets.push(Override::parse(&format!(
            "hardware.wafer.software_generation={g}"
        ))?);
    }
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
            max_context: None,
            objective: None,
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
        chunked_prefill: row
            .chunked_prefill
            .unwrap_or(ServeSettings::default().chunked_prefill),
        routing: row.routing.unwrap_or_default(),
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

/// A row's requests, drawn for a context limit of `window`: a row states its lengths, so one
/// that would have to be cut to fit is refused rather than adjusted.
fn draw(row: &ReferenceRow, w: &Workload, window: u64) -> Result<Vec<RequestSpec>> {
    let (requests, warnings) = w.generate(0, window)?;
    if let Some(cut) = warnings.iter().next() {
        return Err(Error::arg(
            format!("row {}", row.id),
            format!(
                "its lengths do not fit: {} ({} requests)",
                cut.message, cut.count
            ),
        ));
    }
    Ok(requests)
}

/// `requests` requests with `lengths` arriving by `arrivals`.
fn workload(lengths: &(LengthDist, LengthDist), requests: usize, arrivals: Arrivals) -> Workload {
    Workload {
        requests,
        arrivals,
        prompt: lengths.0.clone(),
        output: lengths.1.clone(),
        prefixes: None,
        sessions: None,
    }
}

/// A row's figure from a run's (steady) summary, with its half-width from `ci`.
fn pick(metric: Metric, s: &Summary, ci: Option<&SteadyCi>) -> Prediction {
    let (value, h) = match metric {
        Metric::TokensPerSPerUser => (s.tokens_per_s_per_user.mean, None),
        Metric::ThroughputOutputTokensPerS => (
            s.throughput_output_tokens_per_s,
            ci.map(|c| c.throughput_output_tokens_per_s),
        ),
        Metric::TpotMeanS => (s.tpot_s.mean, ci.map(|c| c.tpot_mean_s)),
        Metric::TtftMeanS => (s.ttft_s.mean, ci.map(|c| c.ttft_mean_s)),
        Metric::TpotP50S => (s.tpot_s.p50, ci.map(|c| c.tpot_p50_s)),
        // Load runs have no client view or speed-up: such rows are single-stream ones.
        Metric::ClientTtftMeanS | Metric::SpeculativeSpeedup => (f64::NAN, None),
    };
    Prediction {
        value,
        half_width: h.filter(|h| h.is_finite()),
    }
}

/// Output tokens of the request a client-TTFT row sends: Artificial Analysis' standard workload
/// ("1k input token workload: Approximately 1,000 input tokens, 1,000 output tokens", its
/// performance benchmarking methodology); the output does not change the TTFT.
const CLIENT_OUTPUT_TOKENS: u32 = 1000;

/// Predict a client-TTFT row on `sys`: one request with a `prompt_tokens` prompt served alone,
/// its TTFT seen through the hardware profile's `[frontend]` (no sampling error: one run of a
/// deterministic engine).
fn predict_client_ttft(row: &ReferenceRow, sys: &System, prompt_tokens: u64) -> Result<Prediction> {
    let frontend = sys.hardware.frontend.as_ref().ok_or_else(|| {
        Error::arg(
            format!("row {}", row.id),
            format!(
                "client_ttft_mean_s needs a [frontend] table in hardware profile {}",
                row.hardware
            ),
        )
    })?;
    let prompt = u32::try_from(prompt_tokens).map_err(|_| {
        Error::arg(
            format!("row {}", row.id),
            format!("context_tokens = {prompt_tokens} is too long a prompt"),
        )
    })?;
    let lengths = (
        LengthDist::Fixed(prompt),
        LengthDist::Fixed(CLIENT_OUTPUT_TOKENS),
    );
    let reqs = draw(
        row,
        &workload(&lengths, 1, Arrivals::AllAtOnce),
        sys.context_limit().0,
    )?;
    let (out, _) = sys.simulate(&reqs, &settings(row), Loop::Open)?;
    let model = ClientModel::new(frontend, FrontendScale::default());
    Ok(Prediction {
        value: ClientSummary::of(model, &out.requests).ttft_s.mean,
        half_width: None,
    })
}

/// Predict one single-stream row on `sys`: one decode iteration priced (no sampling error).
fn predict_single(row: &ReferenceRow, sys: &System, context_tokens: u64) -> Result<Prediction> {
    if row.metric == Metric::ClientTtftMeanS {
        return predict_client_ttft(row, sys, context_tokens);
    }
    let mut b = sys.batch();
    b.push_sequence(1, context_tokens, true, true);
    let step_s = sys.step(&b).total_s();
    let yielded = sys
        .speculation
        .as_ref()
        .map_or(1.0, Speculation::expected_tokens);
    let per_user = yielded / step_s;
    let value = match row.metric {
        Metric::TokensPerSPerUser => per_user,
        Metric::TpotMeanS => 1.0 / per_user,
        Metric::SpeculativeSpeedup => {
            if sys.speculation.is_none() {
                return Err(Error::arg(
                    format!("row {}", row.id),
                    "a speculative_speedup row needs its speculative decoding (`speculative`)",
                ));
            }
            // The same sequence without drafts (gamma 0): the target's plain step on the same
            // placement, one token per step.
            let mut plain = crate::cost::Batch::speculative(sys.cost_model().window(), 0);
            plain.push_sequence(1, context_tokens, true, true);
            per_user * sys.step(&plain).total_s()
        }
        other => {
            return Err(Error::arg(
                format!("row {}", row.id),
                format!(
                    "a single_stream scenario measures per-user speed, TPOT or client TTFT, not {other:?}"
                ),
            ))
        }
    };
    Ok(Prediction {
        value,
        half_width: None,
    })
}

/// Predict one row on `sys`.
pub fn predict(row: &ReferenceRow, sys: &System) -> Result<Prediction> {
    match &row.scenario {
        Scenario::SingleStream { context_tokens } => predict_single(row, sys, *context_tokens),
        _ => {
            let (s, ci) = run_scenario(row, sys)?;
            Ok(pick(row.metric, &s, ci.as_ref()))
        }
    }
}

/// Half-width of an offline run's throughput from its drawn lengths: the run serves a sample of
/// a length dataset, so its output-token count is a sample mean with relative 95% half-width
/// 1.96 CV / sqrt(n) (CV of the output lengths drawn); fixed lengths give none. (Batch means do
/// not apply: an offline run fills, runs and drains once.)
fn offline_ci(requests: &[RequestSpec], s: &Summary) -> Option<SteadyCi> {
    let n = requests.len() as f64;
    let outputs = requests.iter().map(|r| f64::from(r.output_tokens));
    let mean = outputs.clone().sum::<f64>() / n;
    let var = outputs.map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if var.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let relative = 1.96 * var.sqrt() / mean / n.sqrt();
    Some(SteadyCi {
        throughput_output_tokens_per_s: relative * s.throughput_output_tokens_per_s,
        ttft_mean_s: f64::NAN,
        tpot_mean_s: f64::NAN,
        tpot_p50_s: f64::NAN,
    })
}

/// Requests of the all-at-once run that brackets a server row's rate search from above: enough
/// for the batch to fill, few enough to be quick (the search extends the bracket if it is low).
const BRACKET_REQUESTS: usize = 20_000;

/// The run an offline or server row describes, summarised (steady state for server rows), with
/// the half-widths of its estimates.
fn run_scenario(row: &ReferenceRow, sys: &System) -> Result<RunFigures> {
    let window = sys.context_limit().0;
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
            let reqs = draw(row, &w, window)?;
            let observe = crate::engine::Observe::default();
            let (_, s) = sys.simulate_observed(&reqs, &settings(row), Loop::Open, observe)?;
            let ci = offline_ci(&reqs, &s);
            Ok((s, ci))
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
            // MLPerf's Server and Interactive scenarios hold the 99th percentiles to the limits.
            let slo = Slo {
                ttft_s: Some(*ttft_limit_s),
                tpot_s: Some(*tpot_limit_s),
                percentile: 99.0,
            };
            let test = |rate: f64| -> Result<(bool, SteadyRun)> {
                let w = workload(&lengths, *requests, Arrivals::Poisson { rate_per_s: rate });
                let reqs = draw(row, &w, window)?;
                let t = run_until_steady(&reqs, Some(&slo), RULE, |r| {
                    let limits = slo.limits();
                    simulate_windowed(sys, r, &settings(row), Loop::Open, false, false, limits)
                })?;
                Ok((t.met == Some(true), t))
            };
            // Upper bracket: the offline request rate can never be met with latency limits.
            let offline = {
                let w = workload(
                    &lengths,
                    (*requests).min(BRACKET_REQUESTS),
                    Arrivals::AllAtOnce,
                );
                sys.simulate(&draw(row, &w, window)?, &settings(row), Loop::Open)?
                    .1
            };
            let hi = offline.throughput_requests_per_s * 1.5;
            match max_rate(hi, test)? {
                Some((rate, t, missed)) => Ok(server_figures(rate, missed, t)),
                None => {
                    let lo = hi / 1e4;
                    let (_, t) = test(lo)?;
                    Err(Error::arg(
                        format!("row {}", row.id),
                        format!(
                            "even {lo:.4} requests/s misses the limits (p99 TTFT {:.3} s, p99 TPOT {:.4} s)",
                            t.steady.ttft_s.p99, t.steady.tpot_s.p99
                        ),
                    ))
                }
            }
        }
    }
}

/// A server row's figures from the run at the highest rate found to meet the limits, `rate`, with
/// `missed` the lowest found to miss them. Throughput is what MLPerf's Server scenario reports:
/// the rate the run was scheduled at, in output tokens (requests per second times the run's mean
/// output); the search places the true highest rate between `rate` and `missed`, and that bracket
/// with the sampling error of the mean output (1.96 CV / sqrt(n)) makes its interval. Latencies
/// are the steady window's, their intervals by batch means.
fn server_figures(rate: f64, missed: f64, t: SteadyRun) -> RunFigures {
    let n = t.requests as f64;
    let (mean, sd) = (t.output_mean_tokens, t.output_sd_tokens);
    let mut s = t.steady;
    s.throughput_output_tokens_per_s = rate * mean;
    // The bracket [rate, missed] is one-sided above the estimate; its width counts in full.
    let bracket = if missed.is_finite() {
        missed - rate
    } else {
        0.0
    };
    let half_width = bracket * mean + 1.96 * sd / n.sqrt() * rate;
    let ci = t.ci.unwrap_or(SteadyCi {
        throughput_output_tokens_per_s: f64::NAN,
        ttft_mean_s: f64::NAN,
        tpot_mean_s: f64::NAN,
        tpot_p50_s: f64::NAN,
    });
    let ci = Some(SteadyCi {
        throughput_output_tokens_per_s: half_width,
        ..ci
    });
    (s, ci)
}

/// A run's (steady) summary with the half-widths of its estimates.
type RunFigures = (Summary, Option<SteadyCi>);

/// Rows that share hardware, model, conditions and scenario describe one run: the run is
/// simulated once and each row reads its own metric from it.
fn run_key(row: &ReferenceRow) -> String {
    format!(
        "{}|{}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        row.hardware,
        row.model,
        row.sets,
        row.tp,
        row.attention_dp,
        row.pp,
        row.max_batch,
        row.max_batched_tokens,
        row.preemption,
        row.chunked_prefill,
        row.routing,
        row.scenario,
        row.speculative
    )
}

/// Predict every row of `rows` with `overrides` applied, simulating each distinct run once, in
/// parallel.
pub fn predict_rows(rows: &[ReferenceRow], overrides: &[Override]) -> Vec<Result<Prediction>> {
    predict_rows_with_progress(rows, overrides, &|| {})
}

/// Units of work [`predict_rows_with_progress`] reports: one per distinct load run, one per row.
pub fn prediction_tasks(rows: &[ReferenceRow]) -> usize {
    let mut keys: Vec<String> = rows
        .iter()
        .filter(|r| !matches!(r.scenario, Scenario::SingleStream { .. }))
        .map(run_key)
        .collect();
    keys.sort();
    keys.dedup();
    keys.len() + rows.len()
}

/// As [`predict_rows`], calling `progress` once per unit of [`prediction_tasks`] as it ends.
pub fn predict_rows_with_progress(
    rows: &[ReferenceRow],
    overrides: &[Override],
    progress: &(dyn Fn() + Sync),
) -> Vec<Result<Prediction>> {
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
    let done: Vec<(String, Option<RunFigures>)> = runs
        .par_iter()
        .map(|(k, r)| {
            let s = system_for(r, overrides).and_then(|sys| run_scenario(r, &sys));
            progress();
            (k.clone(), s.ok())
        })
        .collect();
    rows.par_iter()
        .map(|r| {
            let p = predict_one(r, overrides, &done);
            progress();
            p
        })
        .collect()
}

/// One row's prediction, from its load run's figures when it has one.
fn predict_one(
    r: &ReferenceRow,
    overrides: &[Override],
    done: &[(String, Option<RunFigures>)],
) -> Result<Prediction> {
    match r.scenario {
        Scenario::SingleStream { .. } => system_for(r, overrides).and_then(|sys| predict(r, &sys)),
        _ => {
            let k = run_key(r);
            match done.iter().find(|(x, _)| *x == k).map(|(_, s)| s) {
                Some(Some((s, ci))) => Ok(pick(r.metric, s, ci.as_ref())),
                // Errors are rare and quick: run again for this row's own message.
                _ => system_for(r, overrides).and_then(|sys| predict(r, &sys)),
            }
        }
    }
}
