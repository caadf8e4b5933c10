//! Load tests at one arrival rate, and the one stopping rule that validation's server rows and
//! the SLO rate search share.
//!
//! The rule. A test has its requests drawn up front: as many as its full run holds, at least
//! [`RUN_S`] of arrivals (MLPerf's Server runs last ten minutes or more; validation's rows draw
//! about that much at the published rate, the SLO search [`requests_for`] each probe's rate). It first simulates the first eighth of them (at least
//! [`StoppingRule::first_requests`]) and stops there when the rate **clearly misses**: the run
//! saturates, or, over the batches of its steady window ([`SteadyWindow::batches`]), the 95%
//! interval of the share of requests within a latency limit lies wholly below the percentile.
//! Otherwise it runs in full, and the full run's steady window is judged by its percentiles, as
//! MLPerf judges a run. A rate is never judged met early: a backlog growing by 1% of the rate
//! breaks a 2 s TTFT limit only after 200 s, and the system's own drift over a run (KV cache
//! filling as long decodes accumulate) shows only in a long one.

use crate::engine::{Outcome, RequestRecord};
use crate::error::Result;
use crate::metrics::{half_width_95, tpot_of, ttft_of, SteadyCi, SteadyWindow, Summary};
use crate::study::slo::Slo;
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
    /// Its summary over the steady window ([`SteadyWindow::summarise`]); the whole run's when
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
}

/// Shares of `batch` within the TTFT and the TPOT limit (1 for an absent limit).
fn shares(slo: &Slo, batch: &[&RequestRecord]) -> [f64; 2] {
    let n = batch.len() as f64;
    let within = |limit: Option<f64>, f: fn(&RequestRecord) -> f64| {
        limit.map_or(1.0, |l| {
            batch.iter().filter(|x| f(x) <= l).count() as f64 / n
        })
    };
    [within(slo.ttft_s, ttft_of), within(slo.tpot_s, tpot_of)]
}

/// Whether the batches' shares within the limits show a clear miss: the 95% interval of the
/// share within one limit lies wholly below the percentile.
fn clearly_misses(slo: &Slo, batches: &[Vec<&RequestRecord>]) -> bool {
    let q = slo.percentile / 100.0;
    let per_batch: Vec<[f64; 2]> = batches.iter().map(|b| shares(slo, b)).collect();
    (0..2).any(|i| {
        let xs: Vec<f64> = per_batch.iter().map(|s| s[i]).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        mean + half_width_95(&xs) < q
    })
}

/// A finished run of `n` of a test's `all` requests, assessed: the run, and whether it clearly
/// misses `slo`.
fn assess(
    slo: Option<&Slo>,
    n: usize,
    all: usize,
    outcome: Outcome,
    whole: Summary,
) -> (SteadyRun, bool) {
    let window = SteadyWindow::of(&outcome.requests);
    let (steady, ci, clear_miss) = match &window {
        Some(w) => (
            w.summarise(&outcome, &whole),
            w.confidence(&outcome),
            slo.is_some_and(|s| w.batches(&outcome).is_some_and(|b| clearly_misses(s, &b))),
        ),
        None => (whole.clone(), None, false),
    };
    let saturated = whole.saturation.saturated;
    let met = slo.map(|s| {
        window.is_some() && !saturated && s.evaluate_steady(&outcome, whole.duration_s).met
    });
    let run = SteadyRun {
        outcome,
        whole,
        steady,
        ci,
        requests: n,
        met,
        stopped_early: n < all,
    };
    (run, slo.is_some() && (saturated || clear_miss))
}

/// Run a load test over `requests` (drawn up front, in arrival order) by the stopping `rule`:
/// `simulate` runs a prefix of them and returns its outcome and whole-run summary.
pub fn run_until_steady(
    requests: &[RequestSpec],
    slo: Option<&Slo>,
    rule: StoppingRule,
    mut simulate: impl FnMut(&[RequestSpec]) -> Result<(Outcome, Summary)>,
) -> Result<SteadyRun> {
    let all = requests.len();
    let first = ((all as f64 * rule.first_share) as usize).max(rule.first_requests);
    if slo.is_some() && first < all {
        let (outcome, whole) = simulate(&requests[..first])?;
        let (run, clear_miss) = assess(slo, first, all, outcome, whole);
        if clear_miss {
            return Ok(run);
        }
    }
    let (outcome, whole) = simulate(requests)?;
    Ok(assess(slo, all, all, outcome, whole).0)
}
