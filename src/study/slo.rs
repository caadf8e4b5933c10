//! Service-level objectives: goodput (requests per second meeting every latency limit, as
//! DistServe defines it) and the search for the highest arrival rate whose latency percentiles
//! stay within the limits (MLPerf Server's question).

use serde::Serialize;
use statrs::statistics::{Data, OrderStatistics};

use crate::engine::Loop;
use crate::engine::{Outcome, RequestRecord};
use crate::error::{Error, Result};
use crate::metrics::{tpot_of as tpot, ttft_of as ttft, Limits, SteadyWindow, Tally, Windowed};
use crate::scenario::{Run, Scenario, DEFAULT_REQUESTS};
use crate::study::load_test::{requests_for, run_until_steady, simulate_windowed, SteadyRun, RULE};
use crate::warning::Warnings;

/// Latency limits; an absent limit is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    /// Time-to-first-token limit, s.
    pub ttft_s: Option<f64>,
    /// Time-per-output-token limit, s.
    pub tpot_s: Option<f64>,
    /// Percentile of requests that must meet the limits for a rate to count as sustained, in
    /// (0, 100].
    pub percentile: f64,
}

/// How a run fared against an [`Slo`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SloReport {
    /// Requests meeting every limit per simulated second.
    pub goodput_requests_per_s: f64,
    /// Fraction of requests meeting every limit.
    pub met_fraction: f64,
    /// TTFT at the SLO percentile, s.
    pub ttft_at_percentile_s: f64,
    /// TPOT at the SLO percentile, s.
    pub tpot_at_percentile_s: f64,
    /// Whether both percentiles are within their limits.
    pub met: bool,
}

impl Slo {
    /// Check the limits and percentile are meaningful.
    pub fn check(&self) -> Result<()> {
        for (field, v) in [("--slo-ttft-s", self.ttft_s), ("--slo-tpot-s", self.tpot_s)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(Error::arg(
                        field,
                        format!("expected a limit in seconds > 0, found {v}"),
                    ));
                }
            }
        }
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(Error::arg(
                "--slo-percentile",
                format!(
                    "expected a percentile in (0, 100], found {}",
                    self.percentile
                ),
            ));
        }
        Ok(())
    }

    /// The limits, to count against as requests complete.
    pub fn limits(&self) -> Limits {
        Limits {
            ttft_s: self.ttft_s,
            tpot_s: self.tpot_s,
        }
    }

    /// Goodput and percentiles of a run's streamed aggregates ([`Windowed`], fed with
    /// [`Slo::limits`]): over its steady window when it has one (as [`Slo::evaluate_steady`]),
    /// else over the whole run lasting `duration_s` (as [`Slo::evaluate`]); percentiles within
    /// the sketch's error, the window's edges as [`Windowed`] states.
    pub fn evaluate_windowed(&self, w: &Windowed, duration_s: f64) -> SloReport {
        match w.window() {
            Some((win, r)) => self.report(&w.tally(r), win.to_s - win.from_s),
            None => self.report(&w.tally_all(), duration_s),
        }
    }

    /// Goodput and percentiles of a run's streamed aggregates over the whole run lasting
    /// `duration_s` (as [`Slo::evaluate`]).
    pub fn evaluate_whole(&self, w: &Windowed, duration_s: f64) -> SloReport {
        self.report(&w.tally_all(), duration_s)
    }

    /// Goodput and percentiles of a tally over `duration_s` (percentiles within the sketch's
    /// error of [`Slo::evaluate_records`]').
    pub fn report(&self, t: &Tally, duration_s: f64) -> SloReport {
        let q = self.percentile / 100.0;
        let (t1, t2) = (t.ttft_s.quantile(q), t.tpot_s.quantile(q));
        SloReport {
            goodput_requests_per_s: if duration_s > 0.0 {
                t.met as f64 / duration_s
            } else {
                f64::NAN
            },
            met_fraction: if t.requests == 0 {
                f64::NAN
            } else {
                t.met as f64 / t.requests as f64
            },
            ttft_at_percentile_s: t1,
            tpot_at_percentile_s: t2,
            met: self.ttft_s.is_none_or(|l| t1 <= l) && self.tpot_s.is_none_or(|l| t2 <= l),
        }
    }

    fn meets(&self, r: &RequestRecord) -> bool {
        self.ttft_s.is_none_or(|l| ttft(r) <= l) && self.tpot_s.is_none_or(|l| tpot(r) <= l)
    }

    /// Goodput and percentiles of a finished run lasting `duration_s`.
    pub fn evaluate(&self, out: &Outcome, duration_s: f64) -> SloReport {
        self.evaluate_records(&out.requests, duration_s)
    }

    /// As [`Slo::evaluate`], over the run's steady state ([`SteadyWindow`]) when it has one:
    /// whether a rate can be sustained, without the filling and draining of the system.
    pub fn evaluate_steady(&self, out: &Outcome, duration_s: f64) -> SloReport {
        match SteadyWindow::of(&out.requests) {
            Some(w) => self.evaluate_records(&w.records(out), w.to_s - w.from_s),
            None => self.evaluate(out, duration_s),
        }
    }

    /// Goodput and percentiles of some of a run's requests, over `duration_s`.
    pub fn evaluate_records(&self, r: &[RequestRecord], duration_s: f64) -> SloReport {
        let met = r.iter().filter(|x| self.meets(x)).count();
        let q = self.percentile / 100.0;
        let at = |f: fn(&RequestRecord) -> f64| {
            if r.is_empty() {
                f64::NAN
            } else {
                Data::new(r.iter().map(f).collect::<Vec<_>>()).quantile(q)
            }
        };
        let (t1, t2) = (at(ttft), at(tpot));
        SloReport {
            goodput_requests_per_s: if duration_s > 0.0 {
                met as f64 / duration_s
            } else {
                f64::NAN
            },
            met_fraction: if r.is_empty() {
                f64::NAN
            } else {
                met as f64 / r.len() as f64
            },
            ttft_at_percentile_s: t1,
            tpot_at_percentile_s: t2,
            met: self.ttft_s.is_none_or(|l| t1 <= l) && self.tpot_s.is_none_or(|l| t2 <= l),
        }
    }
}

/// Ratio of successive rates while the search brackets its answer from above.
const BRACKET_STEP: f64 = 1.25;

/// The highest rate at which `run` reports the limits met, with that probe's result and the
/// lowest rate found to miss them (infinite if none was): bracketed from `hi / 1.25` down by
/// factors of 1.25 (to `hi / 1e4`; upwards past `hi` when even `hi / 1.25` and `hi` pass), then
/// found by geometric bisection to 1%. `None` if even the lowest rate misses them. `run(rate)` returns
/// whether the limits were met and anything the caller wants kept.
pub fn max_rate<T>(
    hi: f64,
    mut run: impl FnMut(f64) -> Result<(bool, T)>,
) -> Result<Option<(f64, T, f64)>> {
    // Bracket from above in small steps: a probe above the answer stops early on a clear miss,
    // while one far below it is the costliest (requests served a few at a time, one step per
    // token each).
    let floor = hi / 1e4;
    let top = hi;
    let mut hi = hi;
    let mut lo = hi;
    let mut missed = f64::INFINITY;
    let mut best = loop {
        lo = (lo / BRACKET_STEP).max(floor);
        let (ok, t) = run(lo)?;
        if ok {
            break (lo, t);
        }
        missed = lo;
        if lo <= floor {
            return Ok(None);
        }
        hi = lo;
    };
    // The first probe passed: the answer may lie at or above the bracket's top.
    if hi == top {
        for _ in 0..8 {
            let (ok, t) = run(hi)?;
            if !ok {
                missed = hi;
                break;
            }
            (lo, best) = (hi, (hi, t));
            hi *= 4.0;
        }
    }
    for _ in 0..24 {
        if hi / lo < 1.01 {
            break;
        }
        let mid = (lo * hi).sqrt();
        let (ok, t) = run(mid)?;
        if ok {
            lo = mid;
            best = (mid, t);
        } else {
            hi = mid;
            missed = mid;
        }
    }
    Ok(Some((best.0, best.1, missed)))
}

/// The run of `scenario` at the highest Poisson rate whose TTFT and TPOT at `slo`'s percentile
/// meet its limits without saturating (the workload's own rate or concurrency is replaced),
/// with that rate. Each probe is a load test under the shared stopping rule ([`RULE`]) of the
/// workload's requests or ten minutes of arrivals at its rate, whichever is more
/// ([`requests_for`]), so the rate found does not hang on the number of requests asked for.
pub fn find_max_rate(scenario: &Scenario, slo: &Slo) -> Result<(f64, Run, Windowed)> {
    if scenario.workload.sessions.is_some() || scenario.workload.session_file.is_some() {
        return Err(Error::arg(
            "find_max_rate (--find-max-rate)",
            "the search draws independent requests at each rate; for sessions, sweep workload.rate_per_s (sessions/s) with the SLO instead",
        ));
    }
    let system = scenario
        .serve
        .system(&scenario.hardware, &scenario.model, &scenario.overrides)?;
    let settings = scenario.serve.settings()?;
    let asked = scenario.workload.requests.unwrap_or(DEFAULT_REQUESTS);
    let at = |rate: f64, requests: usize| {
        let mut s = scenario.clone();
        s.workload.rate_per_s = Some(rate);
        s.workload.concurrency = None;
        s.workload.requests = Some(requests);
        s
    };
    let test = |rate: f64| -> Result<(bool, (SteadyRun, Loop, Warnings))> {
        let s = at(rate, requests_for(rate, asked));
        let (requests, mode, warnings) = s.requests(&system)?;
        let run = run_until_steady(&requests, Some(slo), RULE, |r| {
            simulate_windowed(
                &system,
                r,
                &settings,
                mode,
                s.record_timeline,
                s.keep_records,
                slo.limits(),
            )
        })?;
        Ok((run.met == Some(true), (run, mode, warnings)))
    };
    // Upper bracket: arrivals a microsecond apart are as good as all at once.
    let offline = at(1e6, asked).run_on(system.clone())?;
    let hi = offline.summary.throughput_requests_per_s * 1.5;
    let Some((rate, (t, mode, warnings), _)) = max_rate(hi, test)? else {
        return Err(Error::arg(
            "--find-max-rate",
            format!(
                "even {:.4} requests/s misses the SLO at p{}; relax the limits or change the system",
                hi / 1e4,
                slo.percentile
            ),
        ));
    };
    Ok((
        rate,
        Run {
            system,
            settings,
            mode,
            outcome: t.outcome,
            summary: t.whole,
            warnings,
        },
        t.windowed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(arrival: f64, first: f64, done: f64, output: u32) -> RequestRecord {
        RequestRecord {
            arrival_s: arrival,
            first_token_s: first,
            completion_s: done,
            prompt_tokens: 10,
            output_tokens: output,
            preemptions: 0,
            instance: 0,
            cached_prompt_tokens: 0,
        }
    }

    #[test]
    fn goodput_counts_requests_meeting_both_limits() {
        let out = Outcome {
            requests: vec![
                rec(0.0, 0.1, 1.1, 11), // TTFT 0.1, TPOT 0.1: meets
                rec(0.0, 0.5, 1.5, 11), // TTFT 0.5: misses TTFT
                rec(0.0, 0.1, 3.1, 11), // TPOT 0.3: misses TPOT
                rec(1.0, 1.2, 1.2, 1),  // one token: TTFT 0.2 meets, no TPOT
            ],
            ..Outcome::default()
        };
        let slo = Slo {
            ttft_s: Some(0.25),
            tpot_s: Some(0.15),
            percentile: 50.0,
        };
        let r = slo.evaluate(&out, 4.0);
        assert_eq!(r.met_fraction, 0.5);
        assert_eq!(r.goodput_requests_per_s, 0.5);
        // Medians: TTFT 0.15 s, TPOT 0.1 s, both within; the 99th percentiles are not.
        assert!(r.met, "{r:?}");
        let strict = Slo {
            percentile: 99.0,
            ..slo
        };
        assert!(!strict.evaluate(&out, 4.0).met);
    }

    #[test]
    fn bisection_finds_a_threshold() {
        let (rate, seen, missed) = max_rate(100.0, |r| Ok((r <= 12.5, r))).unwrap().unwrap();
        assert!(rate <= 12.5 && rate > 12.5 / 1.011, "{rate}");
        assert!(missed > 12.5 && missed / rate < 1.011, "{missed}");
        assert_eq!(rate, seen);
        assert!(max_rate(100.0, |_| Ok((false, ()))).unwrap().is_none());
        // An answer above the bracket's top is found by extending it.
        let (rate, _, _) = max_rate(100.0, |r| Ok((r <= 1000.0, ()))).unwrap().unwrap();
        assert!(rate <= 1000.0 && rate > 1000.0 / 1.011, "{rate}");
    }
}
