//! Metrics: aggregates of a run's per-request records (docs/outputs.md, "Metrics", defines each).
//!
//! A run's summary is aggregated as requests complete ([`Collector`], in `stream`): latency
//! percentiles (TTFT, TPOT, E2E, per-user speed, and inter-token gaps, one per token) come from
//! quantile sketches ([`crate::sketch`]) within half a percent of the exact R-8 ones; means and
//! totals are exact sums. The steady-state window, its confidence intervals and the shares within
//! latency limits come from per-arrival-time buckets of such aggregates ([`Windowed`], in
//! `steady`, which states the window edge's error); from kept records ([`SteadyWindow`]) they are
//! exact (statrs' `quantile`, the R-8 / median-unbiased estimator, Hyndman & Fan 1996), the
//! reference the streamed figures are tested against.
//! Saturation is judged over the whole run, two ways. At its end: requests that arrive late wait
//! far longer for their first token than those that arrive early and a backlog is still waiting
//! when the last request arrives. Anywhere in it ([`overload`]): the backlog (requests arrived
//! and still without a first token), read at [`OVERLOAD_SPANS`] + 1 evenly spaced instants from
//! the first arrival to the last, rises at every instant over at least three spans in a row
//! (15% of the run) and ends that stretch at least twice as large and at least
//! `max(10, requests / 20)`: a queue growing over a sustained window, however it ends.
//!
//! Confidence intervals of steady-state estimates use batch means (Law, *Simulation Modeling and
//! Analysis*, 5th ed., section 9.5.3): the steady window is cut into [`CI_BATCHES`] consecutive
//! spans, each span's estimate is one observation, and the interval is Student's t over them.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::statistics::{Data, OrderStatistics};

use crate::engine::{Outcome, RequestRecord};
use crate::sketch::Sketch;

pub mod client;
mod steady;
mod stream;
pub use client::{ClientCollector, ClientModel, ClientSummary, FrontendScale};
pub use steady::{Limits, Tally, Windowed, WINDOW_BUCKETS};
pub use stream::Collector;

/// Mean and percentiles of a sample; NaN (JSON `null`) for an empty sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Dist {
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Dist {
    /// Summarise a sketched sample: exact mean, percentiles within the sketch's relative error
    /// ([`crate::sketch::RELATIVE_ERROR`]).
    pub fn of_sketch(s: &Sketch) -> Dist {
        let [p50, p90, p99] = s.quantiles([0.5, 0.9, 0.99]);
        Dist {
            mean: s.mean(),
            p50,
            p90,
            p99,
        }
    }

    /// Summarise `values` (consumed: sorted in place by the percentile routine).
    pub fn of(values: Vec<f64>) -> Dist {
        if values.is_empty() {
            return Dist {
                mean: f64::NAN,
                p50: f64::NAN,
                p90: f64::NAN,
                p99: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let mut d = Data::new(values);
        Dist {
            mean,
            p50: d.quantile(0.5),
            p90: d.quantile(0.9),
            p99: d.quantile(0.99),
        }
    }
}

/// Whether the offered load exceeded what the system serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Saturation {
    /// True when the queue grew without bound over the run.
    pub saturated: bool,
    /// Requests arrived but without a first token when the last request arrived.
    pub backlog_at_last_arrival: usize,
    /// Mean TTFT of the last quarter of arrivals over that of the first quarter.
    pub ttft_growth: f64,
    /// Start of the first stretch over which the queue grew ([`overload`]), s; `None` if none.
    pub overloaded_from_s: Option<f64>,
    /// End of that stretch, s.
    pub overloaded_to_s: Option<f64>,
}

/// Spans the run is cut into to look for a growing queue.
pub const OVERLOAD_SPANS: usize = 20;

/// The first stretch of a run of `requests` requests over which its queue grew (see the module
/// docs), from its backlog read at evenly spaced instants ([`Collector::backlog`]): (from, to)
/// in seconds of simulated time, or `None`.
pub fn overload(at: &[(f64, usize)], requests: usize) -> Option<(f64, f64)> {
    let floor = (requests / 20).max(10);
    let rises = |j: usize| at[j].1 > at[j - 1].1;
    let mut start = 0;
    for j in 1..at.len() {
        if !rises(j) {
            start = j;
            continue;
        }
        let (b0, b1) = (at[start].1, at[j].1);
        if j - start >= 3 && b1 >= floor && b1 >= 2 * b0.max(1) {
            // The stretch goes on while the queue keeps rising.
            let end = (j + 1..at.len())
                .take_while(|&k| rises(k))
                .last()
                .unwrap_or(j);
            return Some((at[start].0, at[end].0));
        }
    }
    None
}

/// Aggregates of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Requests served.
    pub requests: usize,
    /// Simulated time from start to the last completion, s.
    pub duration_s: f64,
    /// Output tokens generated over the run.
    pub output_tokens: u64,
    /// Output tokens per simulated second.
    pub throughput_output_tokens_per_s: f64,
    /// Prompt tokens per simulated second.
    pub throughput_input_tokens_per_s: f64,
    /// Completed requests per simulated second.
    pub throughput_requests_per_s: f64,
    /// Time to first token.
    pub ttft_s: Dist,
    /// Time per output token after the first, per request.
    pub tpot_s: Dist,
    /// Gaps between consecutive output tokens, over all tokens (percentiles sketched, within
    /// [`crate::sketch::RELATIVE_ERROR`]).
    pub itl_s: Dist,
    /// Arrival to last token.
    pub e2e_s: Dist,
    /// Decode speed seen by each request, 1 / TPOT.
    pub tokens_per_s_per_user: Dist,
    /// Fraction of the run each instance was computing, averaged over instances.
    pub utilisation: f64,
    /// Mean sequences per iteration.
    pub mean_batch_sequences: f64,
    /// Mean tokens computed per iteration.
    pub mean_batch_tokens: f64,
    /// Largest fraction of one instance's KV cache in use.
    pub kv_peak_fraction: f64,
    /// Preemptions (recomputations or swaps) over the run.
    pub preemptions: u64,
    /// Fraction of prompt tokens read from the prefix cache instead of computed.
    pub prefix_cache_hit_fraction: f64,
    /// KV-cache tokens copied to or from host memory by swap preemption.
    pub swapped_tokens: u64,
    /// KV-cache transfers from prefill to decode replicas (disaggregated serving).
    pub kv_transfers: u64,
    /// Mean time of one such transfer, s (NaN without transfers).
    pub kv_transfer_mean_s: f64,
    /// What each KV tier below the cache did (`--kv-offload`; empty without tiers).
    pub kv_tiers: Vec<crate::engine::TierStats>,
    /// Iterations run.
    pub steps: u64,
    /// Saturation verdict.
    pub saturation: Saturation,
}

/// TPOT of every request with more than one output token, and the per-user speeds (1 / TPOT)
/// of those with a positive TPOT.
fn tpots_and_speeds<'a>(
    r: impl Iterator<Item = &'a crate::engine::RequestRecord>,
) -> (Vec<f64>, Vec<f64>) {
    let tpots: Vec<f64> = r
        .filter(|x| x.output_tokens > 1)
        .map(|x| (x.completion_s - x.first_token_s) / f64::from(x.output_tokens - 1))
        .collect();
    let speeds = tpots
        .iter()
        .filter(|t| **t > 0.0)
        .map(|t| 1.0 / t)
        .collect();
    (tpots, speeds)
}

/// The [`Collector`] of a run's kept records, fed in index order; `open_loop` as in
/// [`summarise`].
pub fn collect(out: &Outcome, open_loop: bool) -> Collector {
    let r = &out.requests;
    let arrivals = open_loop.then(|| {
        let first = r.iter().map(|x| x.arrival_s).fold(f64::INFINITY, f64::min);
        let last = r
            .iter()
            .map(|x| x.arrival_s)
            .fold(f64::NEG_INFINITY, f64::max);
        (first, last)
    });
    let mut c = Collector::new(r.len(), arrivals);
    for (i, x) in r.iter().enumerate() {
        c.add(i as u32, x);
    }
    c
}

/// Aggregate a run's outcome from its kept records ([`collect`]); `open_loop` is false for
/// closed-loop runs, which cannot saturate.
pub fn summarise(out: &Outcome, open_loop: bool) -> Summary {
    summarise_collected(out, &collect(out, open_loop), open_loop)
}

/// Aggregate a run's outcome and the [`Collector`] fed its records as they completed.
pub fn summarise_collected(out: &Outcome, c: &Collector, open_loop: bool) -> Summary {
    let n = c.completed;
    let duration = out.end_s;
    let per_s = |x: f64| {
        if duration > 0.0 {
            x / duration
        } else {
            f64::NAN
        }
    };
    let in_tokens = c.prompt_tokens as f64;
    let backlog = out.backlog_at_last_arrival;
    let growth = c.ttft_growth();
    let overloaded = if open_loop {
        overload(&c.backlog(), n)
    } else {
        None
    };
    let saturated =
        open_loop && (growth > 2.0 && backlog >= (n / 20).max(10) || overloaded.is_some());

    let instances = out.busy_s.len().max(1) as f64;
    Summary {
        requests: n,
        duration_s: duration,
        output_tokens: c.output_tokens,
        throughput_output_tokens_per_s: per_s(c.output_tokens as f64),
        throughput_input_tokens_per_s: per_s(in_tokens),
        throughput_requests_per_s: per_s(n as f64),
        ttft_s: Dist::of_sketch(&c.ttft_s),
        tpot_s: Dist::of_sketch(&c.tpot_s),
        itl_s: Dist::of_sketch(&out.itl_s),
        e2e_s: Dist::of_sketch(&c.e2e_s),
        tokens_per_s_per_user: Dist::of_sketch(&c.tokens_per_s_per_user),
        utilisation: if duration > 0.0 {
            out.busy_s.iter().sum::<f64>() / instances / duration
        } else {
            0.0
        },
        mean_batch_sequences: out.batch_sequences_sum as f64 / out.steps.max(1) as f64,
        mean_batch_tokens: out.batch_tokens_sum as f64 / out.steps.max(1) as f64,
        kv_peak_fraction: out.kv_peak_fraction,
        preemptions: c.preemptions,
        prefix_cache_hit_fraction: if in_tokens > 0.0 {
            c.cached_prompt_tokens as f64 / in_tokens
        } else {
            0.0
        },
        swapped_tokens: out.swapped_tokens,
        kv_transfers: out.kv_transfers,
        kv_transfer_mean_s: if out.kv_transfers > 0 {
            out.kv_transfer_s / out.kv_transfers as f64
        } else {
            f64::NAN
        },
        kv_tiers: out.kv_tiers.clone(),
        steps: out.steps,
        saturation: Saturation {
            saturated,
            backlog_at_last_arrival: backlog,
            ttft_growth: growth,
            overloaded_from_s: overloaded.map(|o| o.0),
            overloaded_to_s: overloaded.map(|o| o.1),
        },
    }
}

/// Batches a steady window is cut into for confidence intervals: within the 10 to 30 that batch
/// means calls for (Law, section 9.5.3), so that each batch is long against the correlation of
/// neighbouring requests and the t quantile (2.09 at 19 degrees of freedom) is near the normal's.
pub const CI_BATCHES: usize = 20;

/// Fewest requests each batch needs for its mean latency and its share within a limit to mean
/// anything.
pub const MIN_BATCH_REQUESTS: usize = 50;

/// Half-width of the 95% confidence interval of the mean of `batches` (one estimate per batch),
/// Student's t with `k - 1` degrees of freedom; NaN for fewer than two batches or a non-finite
/// batch.
pub fn half_width_95(batches: &[f64]) -> f64 {
    let k = batches.len();
    if k < 2 || batches.iter().any(|x| !x.is_finite()) {
        return f64::NAN;
    }
    let mean = batches.iter().sum::<f64>() / k as f64;
    let var = batches.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    let t = StudentsT::new(0.0, 1.0, (k - 1) as f64).map_or(f64::NAN, |d| d.inverse_cdf(0.975));
    t * (var / k as f64).sqrt()
}

/// 95% confidence half-widths of the steady-state estimates a load test reports, s or tokens/s
/// as the estimate (NaN where the run cannot give one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SteadyCi {
    /// Output tokens per second.
    pub throughput_output_tokens_per_s: f64,
    /// Mean TTFT, s.
    pub ttft_mean_s: f64,
    /// Mean TPOT, s.
    pub tpot_mean_s: f64,
    /// Median TPOT, s.
    pub tpot_p50_s: f64,
}

impl SteadyCi {
    /// True when every half-width is at most `precision` times its estimate in `s`.
    pub fn within(&self, s: &Summary, precision: f64) -> bool {
        [
            (
                self.throughput_output_tokens_per_s,
                s.throughput_output_tokens_per_s,
            ),
            (self.ttft_mean_s, s.ttft_s.mean),
            (self.tpot_mean_s, s.tpot_s.mean),
            (self.tpot_p50_s, s.tpot_s.p50),
        ]
        .iter()
        .all(|&(h, x)| h <= precision * x.abs())
    }
}

/// TPOT of one request; 0 for a one-token output (it has no gaps).
pub fn tpot_of(r: &RequestRecord) -> f64 {
    if r.output_tokens > 1 {
        (r.completion_s - r.first_token_s) / f64::from(r.output_tokens - 1)
    } else {
        0.0
    }
}

/// TTFT of one request.
pub fn ttft_of(r: &RequestRecord) -> f64 {
    r.first_token_s - r.arrival_s
}

/// The part of an open-loop run in steady state: requests arriving at least one median lifetime
/// (arrival to last token) after the first arrival and at least one before the last. They
/// started after the system had filled and finished, typically, before it drained, as nearly
/// every request of a long load test (MLPerf Server runs ten minutes or more) does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SteadyWindow {
    /// First arrival counted, s.
    pub from_s: f64,
    /// Last arrival counted, s.
    pub to_s: f64,
    /// Requests arriving in the window.
    pub requests: usize,
}

/// Fewest requests a steady-state window must hold for its 99th percentiles to mean anything.
pub const MIN_STEADY_REQUESTS: usize = 100;

impl SteadyWindow {
    /// The window of a run's records (in arrival order), or `None` when fewer than
    /// [`MIN_STEADY_REQUESTS`] arrive inside it (the run is too short for its load).
    pub fn of(r: &[crate::engine::RequestRecord]) -> Option<SteadyWindow> {
        let (first, last) = (r.first()?.arrival_s, r.last()?.arrival_s);
        let lifetime = Dist::of(r.iter().map(|x| x.completion_s - x.arrival_s).collect()).p50;
        let (from_s, to_s) = (first + lifetime, last - lifetime);
        let requests = r
            .iter()
            .filter(|x| x.arrival_s >= from_s && x.arrival_s <= to_s)
            .count();
        (requests >= MIN_STEADY_REQUESTS).then_some(SteadyWindow {
            from_s,
            to_s,
            requests,
        })
    }

    /// The records of the requests arriving in the window.
    pub fn records(&self, out: &Outcome) -> Vec<crate::engine::RequestRecord> {
        out.requests
            .iter()
            .filter(|x| x.arrival_s >= self.from_s && x.arrival_s <= self.to_s)
            .cloned()
            .collect()
    }

    /// `whole` (the run's summary) with its latencies taken over the requests arriving in the
    /// window and its throughputs over the completions between the window's start and the last
    /// arrival (before the queue drains). Other fields stay those of the whole run.
    pub fn summarise(&self, out: &Outcome, whole: &Summary) -> Summary {
        let inside: Vec<_> = out
            .requests
            .iter()
            .filter(|x| x.arrival_s >= self.from_s && x.arrival_s <= self.to_s)
            .collect();
        let last_arrival = out.requests.last().map_or(0.0, |x| x.arrival_s);
        let span = last_arrival - self.from_s;
        let done: Vec<_> = out
            .requests
            .iter()
            .filter(|x| x.completion_s >= self.from_s && x.completion_s <= last_arrival)
            .collect();
        let rate = |f: fn(&crate::engine::RequestRecord) -> f64| {
            done.iter().map(|x| f(x)).sum::<f64>() / span
        };
        let (tpots, speeds) = tpots_and_speeds(inside.iter().copied());
        Summary {
            throughput_output_tokens_per_s: rate(|x| f64::from(x.output_tokens)),
            throughput_input_tokens_per_s: rate(|x| f64::from(x.prompt_tokens)),
            throughput_requests_per_s: rate(|_| 1.0),
            ttft_s: Dist::of(
                inside
                    .iter()
                    .map(|x| x.first_token_s - x.arrival_s)
                    .collect(),
            ),
            tpot_s: Dist::of(tpots),
            e2e_s: Dist::of(
                inside
                    .iter()
                    .map(|x| x.completion_s - x.arrival_s)
                    .collect(),
            ),
            tokens_per_s_per_user: Dist::of(speeds),
            ..whole.clone()
        }
    }

    /// The window's requests in [`CI_BATCHES`] consecutive spans of arrival time; `None` when a
    /// span holds fewer than [`MIN_BATCH_REQUESTS`].
    pub fn batches<'a>(&self, out: &'a Outcome) -> Option<Vec<Vec<&'a RequestRecord>>> {
        let span = (self.to_s - self.from_s) / CI_BATCHES as f64;
        let mut batches = vec![Vec::new(); CI_BATCHES];
        for x in &out.requests {
            if x.arrival_s >= self.from_s && x.arrival_s <= self.to_s {
                let b = (((x.arrival_s - self.from_s) / span) as usize).min(CI_BATCHES - 1);
                batches[b].push(x);
            }
        }
        batches
            .iter()
            .all(|b| b.len() >= MIN_BATCH_REQUESTS)
            .then_some(batches)
    }

    /// Confidence half-widths of [`SteadyWindow::summarise`]'s estimates by batch means: latencies
    /// over the batches of [`SteadyWindow::batches`], throughput over as many equal spans of the
    /// completions it counts. `None` when the window is too short for batches.
    pub fn confidence(&self, out: &Outcome) -> Option<SteadyCi> {
        let batches = self.batches(out)?;
        let over = |f: &dyn Fn(&[&RequestRecord]) -> f64| {
            half_width_95(&batches.iter().map(|b| f(b)).collect::<Vec<_>>())
        };
        let mean_of = |b: &[&RequestRecord], g: fn(&RequestRecord) -> f64| {
            b.iter().map(|x| g(x)).sum::<f64>() / b.len() as f64
        };
        let last_arrival = out.requests.last().map_or(0.0, |x| x.arrival_s);
        let span = (last_arrival - self.from_s) / CI_BATCHES as f64;
        let mut tokens = [0.0; CI_BATCHES];
        for x in &out.requests {
            if x.completion_s >= self.from_s && x.completion_s <= last_arrival {
                let b = (((x.completion_s - self.from_s) / span) as usize).min(CI_BATCHES - 1);
                tokens[b] += f64::from(x.output_tokens);
            }
        }
        let throughput: Vec<f64> = tokens.iter().map(|t| t / span).collect();
        Some(SteadyCi {
            throughput_output_tokens_per_s: half_width_95(&throughput),
            ttft_mean_s: over(&|b| mean_of(b, ttft_of)),
            tpot_mean_s: over(&|b| {
                let t: Vec<f64> = b
                    .iter()
                    .filter(|x| x.output_tokens > 1)
                    .map(|x| tpot_of(x))
                    .collect();
                t.iter().sum::<f64>() / t.len() as f64
            }),
            tpot_p50_s: over(&|b| {
                Dist::of(
                    b.iter()
                        .filter(|x| x.output_tokens > 1)
                        .map(|x| tpot_of(x))
                        .collect(),
                )
                .p50
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RequestRecord;

    /// One arrival a second for `n` seconds; each request's first token after `ttft` (ten times
    /// that for the first `slow`) and its last (11 tokens) after `life`.
    fn steady_run(n: usize, ttft: f64, life: f64, slow: usize) -> Outcome {
        let requests = (0..n)
            .map(|i| {
                let k = if i < slow { 10.0 } else { 1.0 };
                let a = i as f64;
                RequestRecord {
                    arrival_s: a,
                    first_token_s: a + k * ttft,
                    completion_s: a + life,
                    prompt_tokens: 5,
                    output_tokens: 11,
                    preemptions: 0,
                    instance: 0,
                    cached_prompt_tokens: 0,
                }
            })
            .collect();
        let mut out = Outcome {
            requests,
            ..Outcome::default()
        };
        out.end_s = out
            .requests
            .iter()
            .map(|r| r.completion_s)
            .fold(0.0, f64::max);
        out
    }

    #[test]
    fn steady_window_skips_one_lifetime_at_each_end() {
        let out = steady_run(1000, 0.5, 10.0, 0);
        let w = SteadyWindow::of(&out.requests).unwrap();
        assert_eq!((w.from_s, w.to_s, w.requests), (10.0, 989.0, 980));
        let whole = summarise(&out, true);
        let s = w.summarise(&out, &whole);
        // Completions from t = 10 to the last arrival (t = 999): requests 0 to 989, one a
        // second over 989 s, 11 tokens each.
        approx::assert_relative_eq!(s.throughput_requests_per_s, 990.0 / 989.0);
        approx::assert_relative_eq!(s.throughput_output_tokens_per_s, 11.0 * 990.0 / 989.0);
        approx::assert_relative_eq!(s.ttft_s.p99, 0.5);
        approx::assert_relative_eq!(s.tpot_s.mean, 0.95, max_relative = 1e-12);
        // Too short a run for its lifetime has no steady state.
        assert!(SteadyWindow::of(&steady_run(100, 0.5, 10.0, 0).requests).is_none());
    }

    #[test]
    fn steady_window_leaves_out_the_warm_up() {
        // The first 20 requests wait ten times as long (a cold start), all before the window
        // opens at t = 40: the whole run's p99 TTFT sees them, the steady window does not.
        let out = steady_run(1000, 0.5, 40.0, 20);
        let whole = summarise(&out, true);
        let w = SteadyWindow::of(&out.requests).unwrap();
        assert!(whole.ttft_s.p99 > 4.0, "{}", whole.ttft_s.p99);
        approx::assert_relative_eq!(w.summarise(&out, &whole).ttft_s.p99, 0.5);
    }

    #[test]
    fn percentiles_of_a_known_sample() {
        let d = Dist::of((1..=101).map(f64::from).collect());
        assert_eq!(d.mean, 51.0);
        assert_eq!(d.p50, 51.0);
        // h = (n + 1/3) p + 1/3, interpolating between order statistics h and h + 1.
        approx::assert_relative_eq!(
            d.p90,
            91.0 + (101.0 + 1.0 / 3.0) * 0.9 + 1.0 / 3.0 - 91.0,
            max_relative = 1e-12
        );
        approx::assert_relative_eq!(
            d.p99,
            (101.0 + 1.0 / 3.0) * 0.99 + 1.0 / 3.0,
            max_relative = 1e-12
        );
        assert!(Dist::of(vec![]).mean.is_nan());
    }
}
