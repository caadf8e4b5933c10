//! Load tests at one arrival rate, and the one stopping rule that validation's server rows and
//! the SLO rate search share.
//!
//! The rule. A test has its requests drawn up front: as many as its full run holds, at least
//! [`RUN_S`] of arrivals (MLPerf's Server runs last ten minutes or more; validation's rows draw
//! about that much at the published rate, the SLO search [`requests_for`] each probe's rate). It first simulates the first eighth of them (at least
//! [`StoppingRule::first_requests`]) and stops there when the rate **clearly misses**: the run
//! saturates, or, over the batches of its steady window ([`Windowed::batch_shares`]), the 95%
//! interval of the share of requests within a latency limit lies wholly below the percentile.
//! Otherwise it runs in full, and the full run's steady window is judged by its percentiles, as
//! MLPerf judges a run. A rate is never judged met early: a backlog growing by 1% of the rate
//! breaks a 2 s TTFT limit only after 200 s, and the system's own drift over a run (KV cache
//! filling as long decodes accumulate) shows only in a long one.

use crate::engine::event::{ns_from_s, s_from_ns};
use crate::engine::{Loop, Observe, Outcome, RequestRecord};
use crate::error::Result;
use crate::metrics::{half_width_95, Limits, SteadyCi, Summary, Windowed};
use crate::study::slo::Slo;
use crate::system::{ServeSettings, System};
use crate::workload::RequestSpec;

/// Simulated arrivals a load test spans at least, s: MLPerf's minimum Server run (LoadGen's
/// `min_duration`, 600,000 ms in mlcommons/inference `mlperf.conf`).
pub const RUN_S: f64 = 600.0;

/// Most requests a load test draws to span [`RUN_S`] (memory grows with them; past a million
/// the run spans less than [`RUN_S`]).
pub const MAX_RUN_REQUESTS: usize = 1_000_000;

/// Requests a load test at `rate_per_s` draws: at least `requests`, and enough to span
/// [`RUN_S`] of arrivals (up to [`MAX_RUN_REQUESTS`]), so that its verdict does not depend on
/// how many were asked for.
pub fn requests_for(rate_per_s: f64, requests: usize) -> usize {
    let span = (rate_per_s * RUN_S).ceil();
    if span.is_finite() && span > requests as f64 {
        (span as usize).min(MAX_RUN_REQUESTS).max(requests)
    } else {
        requests
    }
}

/// When a load test stops early.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoppingRule {
    /// Fewest requests of the first, short run.
    pub first_requests: usize,
    /// The short run's share of the full run.
    pub first_share: f64,
}

/// The rule every load test uses: a short run of an eighth of the requests (2,000 at least).
pub const RULE: StoppingRule = StoppingRule {
    first_requests: 2_000,
    first_share: 0.125,
};

/// One load test's last run.
#[derive(Debug, Clone)]
pub struct SteadyRun {
    /// The run.
    pub outcome: Outcome,
    /// Its summary over the whole run.
    pub whole: Summary,
    /// Its summary over the steady window ([`Windowed::summarise`]); the whole run's when
    /// it has no window.
    pub steady: Summary,
    /// 95% half-widths of the steady estimates by batch means; `None` when the run is too short
    /// for batches.
    pub ci: Option<SteadyCi>,
    /// Requests simulated in the last run.
    pub requests: usize,
    /// The limits' verdict on the steady window's percentiles; `None` without limits.
    pub met: Option<bool>,
    /// True when the test stopped early on a clear miss.
    pub stopped_early: bool,
    /// Mean output length of the requests simulated, tokens.
    pub output_mean_tokens: f64,
    /// Their standard deviation, tokens.
    pub output_sd_tokens: f64,
    /// The run's per-bucket aggregates (window, SLO tallies).
    pub windowed: Windowed,
}

/// Whether the batches' shares within the limits ([`Windowed::batch_shares`]) show a clear
/// miss: the 95% interval of the share within one limit lies wholly below the percentile.
fn clearly_misses(slo: &Slo, per_batch: &[[f64; 2]]) -> bool {
    let q = slo.percentile / 100.0;
    (0..2).any(|i| {
        let xs: Vec<f64> = per_batch.iter().map(|s| s[i]).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        mean + half_width_95(&xs) < q
    })
}

/// Serve `requests` (in arrival order) on `system` feeding a [`Windowed`] as requests complete
/// (counting against `limits`); request records are kept only when `records` asks, the
/// timeline when `timeline` does.
pub fn simulate_windowed(
    system: &System,
    requests: &[RequestSpec],
    settings: &ServeSettings,
    mode: Loop,
    timeline: bool,
    records: bool,
    limits: Limits,
) -> Result<(Outcome, Summary, Windowed)> {
    // The first and last arrival as the engine's clock holds them.
    let clock = |x: f64| s_from_ns(ns_from_s(x));
    let (first, last) = requests
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(f, l), r| {
            let a = clock(r.arrival_s);
            (f.min(a), l.max(a))
        });
    let mut w = Windowed::new(first, last, limits);
    let (outcome, summary) = {
        let mut add = |_: u32, r: &RequestRecord| w.add(r);
        let observe = Observe {
            timeline,
            records,
            on_complete: Some(&mut add),
        };
        system.simulate_observed(requests, settings, mode, observe)?
    };
    Ok((outcome, summary, w))
}

/// A finished run of `n` of a test's `all` requests (`requests`), assessed: the run, and
/// whether it clearly misses `slo`.
fn assess(
    slo: Option<&Slo>,
    requests: &[RequestSpec],
    all: usize,
    (outcome, whole, windowed): (Outcome, Summary, Windowed),
) -> (SteadyRun, bool) {
    let n = requests.len();
    let window = windowed.window();
    let (steady, ci, clear_miss) = match &window {
        Some((_, w)) => (
            windowed.summarise(w, &whole),
            windowed.confidence(w),
            slo.is_some_and(|s| {
                windowed
                    .batch_shares(w)
                    .is_some_and(|b| clearly_misses(s, &b))
            }),
        ),
        None => (whole.clone(), None, false),
    };
    let saturated = whole.saturation.saturated;
    let met = slo.map(|s| {
        window.is_some() && !saturated && s.evaluate_windowed(&windowed, whole.duration_s).met
    });
    let outputs = || requests.iter().map(|r| f64::from(r.output_tokens));
    let mean = outputs().sum::<f64>() / n as f64;
    let var = outputs().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0).max(1.0);
    let run = SteadyRun {
        outcome,
        whole,
        steady,
        ci,
        requests: n,
        met,
        stopped_early: n < all,
        output_mean_tokens: mean,
        output_sd_tokens: var.sqrt(),
        windowed,
    };
    (run, slo.is_some() && (saturated || clear_miss))
}

/// Run a load test over `requests` (drawn up front, in arrival order) by the stopping `rule`:
/// `simulate` runs a prefix of them and returns its outcome and whole-run summary.
pub fn run_until_steady(
    requests: &[RequestSpec],
    slo: Option<&Slo>,
    rule: StoppingRule,
    mut simulate: impl FnMut(&[RequestSpec]) -> Result<(Outcome, Summary, Windowed)>,
) -> Result<SteadyRun> {
    let all = requests.len();
    let first = ((all as f64 * rule.first_share) as usize).max(rule.first_requests);
    if slo.is_some() && first < all {
        let (run, clear_miss) = assess(slo, &requests[..first], all, simulate(&requests[..first])?);
        if clear_miss {
            return Ok(run);
        }
    }
    Ok(assess(slo, requests, all, simulate(requests)?).0)
}
