//! The steady-state window, its confidence intervals and the share of requests within latency
//! limits, from aggregates fed one record at a time (memory independent of the run's length).
//!
//! The window ([`SteadyWindow`]) needs the median lifetime, known only at the run's end. So the
//! arrivals' span (first to last arrival, known before the run) is cut into
//! [`WINDOW_BUCKETS`] equal buckets, and each bucket keeps, for the requests arriving in it,
//! sketches of TTFT, TPOT, lifetime and per-user speed (which merge: [`crate::sketch`]), exact
//! sums and counts, and the counts within each latency limit; and, for the requests completing
//! in it, their tokens. At the end the window's edges, one median lifetime (from the run's
//! lifetime sketch) inside the first and last arrival, are rounded to the nearest bucket edge,
//! and the window's figures are the merged buckets inside. Against the kept-record path
//! ([`SteadyWindow::of`]) a window edge moves by at most half a bucket (1/2,000 of the arrival
//! span) plus the sketch's error on the median lifetime ([`crate::sketch::RELATIVE_ERROR`] of
//! it); percentiles carry the sketch's error; means, counts and totals are exact over the
//! requests inside. Confidence batches are whole buckets: batch `j` of the window's `k`
//! buckets is buckets `j k / 20` up to `(j + 1) k / 20`.

use super::{
    half_width_95, Dist, SteadyCi, SteadyWindow, Summary, CI_BATCHES, MIN_BATCH_REQUESTS,
    MIN_STEADY_REQUESTS,
};
use crate::engine::RequestRecord;
use crate::sketch::Sketch;

/// Buckets the arrivals' span is cut into (a window edge is within half of one).
pub const WINDOW_BUCKETS: usize = 1000;

/// Latency limits counted against as requests complete; an absent limit is not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// TTFT limit, s.
    pub ttft_s: Option<f64>,
    /// TPOT limit, s (a one-token request's TPOT is 0).
    pub tpot_s: Option<f64>,
}

/// Aggregates of the requests arriving, or completing, in one bucket.
#[derive(Debug, Clone, Default)]
struct Bucket {
    /// Requests arriving in the bucket.
    arrived: u64,
    ttft_s: Sketch,
    /// TPOT of requests with more than one output token.
    tpot_s: Sketch,
    /// Requests with one output token (TPOT 0 against a limit).
    one_token: u64,
    e2e_s: Sketch,
    speed: Sketch,
    within_ttft: u64,
    within_tpot: u64,
    /// Within every limit.
    met: u64,
    /// Requests completing in the bucket (completions after the last arrival are not kept).
    done: u64,
    done_output_tokens: u64,
    done_prompt_tokens: u64,
}

/// Per-bucket aggregates of an open-loop run (see the module docs).
#[derive(Debug, Clone)]
pub struct Windowed {
    first_s: f64,
    last_s: f64,
    width_s: f64,
    limits: Limits,
    buckets: Vec<Bucket>,
}

/// What a set of requests did against the limits: counts, and TTFT and TPOT (0 for one-token
/// requests) sketched.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Requests.
    pub requests: u64,
    /// Requests within every limit.
    pub met: u64,
    /// Their TTFT, s.
    pub ttft_s: Sketch,
    /// Their TPOT, s (0 for a one-token request).
    pub tpot_s: Sketch,
}

impl Tally {
    /// Count one completed request against `limits`.
    pub fn add(&mut self, limits: &Limits, r: &RequestRecord) {
        let (ttft, tpot) = (super::ttft_of(r), super::tpot_of(r));
        self.requests += 1;
        self.met += u64::from(
            limits.ttft_s.is_none_or(|l| ttft <= l) && limits.tpot_s.is_none_or(|l| tpot <= l),
        );
        self.ttft_s.add(ttft);
        self.tpot_s.add(tpot);
    }
}

impl Windowed {
    /// For a run whose arrivals span `first_s` to `last_s` (as the engine's clock holds them).
    pub fn new(first_s: f64, last_s: f64, limits: Limits) -> Windowed {
        Windowed {
            first_s,
            last_s,
            width_s: (last_s - first_s).max(0.0) / WINDOW_BUCKETS as f64,
            limits,
            buckets: vec![Bucket::default(); WINDOW_BUCKETS],
        }
    }

    /// The bucket of time `t` (clamped to the span).
    fn slot(&self, t: f64) -> usize {
        if self.width_s > 0.0 {
            (((t - self.first_s) / self.width_s).max(0.0) as usize).min(WINDOW_BUCKETS - 1)
        } else {
            0
        }
    }

    /// Add one completed request's record.
    pub fn add(&mut self, r: &RequestRecord) {
        let ttft = super::ttft_of(r);
        let tpot = super::tpot_of(r);
        let ok_ttft = self.limits.ttft_s.is_none_or(|l| ttft <= l);
        let ok_tpot = self.limits.tpot_s.is_none_or(|l| tpot <= l);
        let a = self.slot(r.arrival_s);
        let b = &mut self.buckets[a];
        b.arrived += 1;
        b.ttft_s.add(ttft);
        b.e2e_s.add(r.completion_s - r.arrival_s);
        if r.output_tokens > 1 {
            b.tpot_s.add(tpot);
            if tpot > 0.0 {
                b.speed.add(1.0 / tpot);
            }
        } else {
            b.one_token += 1;
        }
        b.within_ttft += u64::from(ok_ttft);
        b.within_tpot += u64::from(ok_tpot);
        b.met += u64::from(ok_ttft && ok_tpot);
        if r.completion_s <= self.last_s {
            let c = self.slot(r.completion_s);
            let b = &mut self.buckets[c];
            b.done += 1;
            b.done_output_tokens += u64::from(r.output_tokens);
            b.done_prompt_tokens += u64::from(r.prompt_tokens);
        }
    }

    /// Edge of bucket `i`, s.
    fn edge(&self, i: usize) -> f64 {
        if i == WINDOW_BUCKETS {
            self.last_s
        } else {
            self.first_s + self.width_s * i as f64
        }
    }

    /// The median lifetime (arrival to last token) of every request added.
    pub fn median_lifetime_s(&self) -> f64 {
        let mut e2e = Sketch::new();
        self.buckets.iter().for_each(|b| e2e.merge(&b.e2e_s));
        e2e.quantile(0.5)
    }

    /// The steady window ([`SteadyWindow`]) with its edges at bucket edges, and its first and
    /// last bucket + 1; `None` when fewer than [`MIN_STEADY_REQUESTS`] arrive inside it.
    pub fn window(&self) -> Option<(SteadyWindow, std::ops::Range<usize>)> {
        let lifetime = self.median_lifetime_s();
        if !(self.width_s > 0.0 && lifetime.is_finite()) {
            return None;
        }
        let at = |t: f64| ((t - self.first_s) / self.width_s).round().max(0.0) as usize;
        let lo = at(self.first_s + lifetime).min(WINDOW_BUCKETS);
        let hi = at(self.last_s - lifetime).min(WINDOW_BUCKETS);
        if lo >= hi {
            return None;
        }
        let requests: u64 = self.buckets[lo..hi].iter().map(|b| b.arrived).sum();
        (requests as usize >= MIN_STEADY_REQUESTS).then(|| {
            (
                SteadyWindow {
                    from_s: self.edge(lo),
                    to_s: self.edge(hi),
                    requests: requests as usize,
                },
                lo..hi,
            )
        })
    }

    /// `whole` with its latencies over the requests arriving in buckets `w` and its
    /// throughputs over the completions from the window's start to the last arrival, as
    /// [`SteadyWindow::summarise`] gives them from kept records.
    pub fn summarise(&self, w: &std::ops::Range<usize>, whole: &Summary) -> Summary {
        let inside = &self.buckets[w.clone()];
        let merged = |f: fn(&Bucket) -> &Sketch| {
            let mut s = Sketch::new();
            inside.iter().for_each(|b| s.merge(f(b)));
            Dist::of_sketch(&s)
        };
        let span = self.last_s - self.edge(w.start);
        let done = &self.buckets[w.start..];
        let rate = |f: fn(&Bucket) -> u64| done.iter().map(f).sum::<u64>() as f64 / span;
        Summary {
            throughput_output_tokens_per_s: rate(|b| b.done_output_tokens),
            throughput_input_tokens_per_s: rate(|b| b.done_prompt_tokens),
            throughput_requests_per_s: rate(|b| b.done),
            ttft_s: merged(|b| &b.ttft_s),
            tpot_s: merged(|b| &b.tpot_s),
            e2e_s: merged(|b| &b.e2e_s),
            tokens_per_s_per_user: merged(|b| &b.speed),
            ..whole.clone()
        }
    }

    /// Buckets `r` cut into [`CI_BATCHES`] consecutive runs of whole buckets; `None` when there
    /// are fewer buckets than batches.
    fn cut(r: &std::ops::Range<usize>) -> Option<Vec<std::ops::Range<usize>>> {
        let k = r.len();
        (k >= CI_BATCHES).then(|| {
            (0..CI_BATCHES)
                .map(|j| r.start + j * k / CI_BATCHES..r.start + (j + 1) * k / CI_BATCHES)
                .collect()
        })
    }

    /// The window's batches, `None` when one holds fewer than [`MIN_BATCH_REQUESTS`] arrivals.
    fn batches(&self, w: &std::ops::Range<usize>) -> Option<Vec<std::ops::Range<usize>>> {
        let batches = Self::cut(w)?;
        batches
            .iter()
            .all(|b| {
                self.buckets[b.clone()]
                    .iter()
                    .map(|x| x.arrived)
                    .sum::<u64>()
                    >= MIN_BATCH_REQUESTS as u64
            })
            .then_some(batches)
    }

    /// Confidence half-widths of [`Windowed::summarise`]'s estimates by batch means, as
    /// [`SteadyWindow::confidence`] gives them; `None` when the window is too short.
    pub fn confidence(&self, w: &std::ops::Range<usize>) -> Option<SteadyCi> {
        let batches = self.batches(w)?;
        let over = |f: &dyn Fn(&[Bucket]) -> f64| {
            half_width_95(
                &batches
                    .iter()
                    .map(|b| f(&self.buckets[b.clone()]))
                    .collect::<Vec<_>>(),
            )
        };
        let merged = |b: &[Bucket], f: fn(&Bucket) -> &Sketch| {
            let mut s = Sketch::new();
            b.iter().for_each(|x| s.merge(f(x)));
            s
        };
        let done = Self::cut(&(w.start..WINDOW_BUCKETS))?;
        let throughput: Vec<f64> = done
            .iter()
            .map(|b| {
                let tokens: u64 = self.buckets[b.clone()]
                    .iter()
                    .map(|x| x.done_output_tokens)
                    .sum();
                tokens as f64 / (self.edge(b.end) - self.edge(b.start))
            })
            .collect();
        Some(SteadyCi {
            throughput_output_tokens_per_s: half_width_95(&throughput),
            ttft_mean_s: over(&|b| merged(b, |x| &x.ttft_s).mean()),
            tpot_mean_s: over(&|b| merged(b, |x| &x.tpot_s).mean()),
            tpot_p50_s: over(&|b| merged(b, |x| &x.tpot_s).quantile(0.5)),
        })
    }

    /// Per batch of the window, the shares of its requests within the TTFT and the TPOT limit
    /// (1 for an absent limit); `None` when the window is too short for batches.
    pub fn batch_shares(&self, w: &std::ops::Range<usize>) -> Option<Vec<[f64; 2]>> {
        let batches = self.batches(w)?;
        Some(
            batches
                .iter()
                .map(|b| {
                    let inside = &self.buckets[b.clone()];
                    let n = inside.iter().map(|x| x.arrived).sum::<u64>() as f64;
                    let share = |limit: Option<f64>, f: fn(&Bucket) -> u64| {
                        limit.map_or(1.0, |_| inside.iter().map(f).sum::<u64>() as f64 / n)
                    };
                    [
                        share(self.limits.ttft_s, |x| x.within_ttft),
                        share(self.limits.tpot_s, |x| x.within_tpot),
                    ]
                })
                .collect(),
        )
    }

    /// The requests arriving in buckets `r` against the limits.
    pub fn tally(&self, r: std::ops::Range<usize>) -> Tally {
        let mut t = Tally::default();
        for b in &self.buckets[r] {
            t.requests += b.arrived;
            t.met += b.met;
            t.ttft_s.merge(&b.ttft_s);
            t.tpot_s.merge(&b.tpot_s);
            t.tpot_s.add_n(0.0, b.one_token);
        }
        t
    }

    /// Every request added against the limits.
    pub fn tally_all(&self) -> Tally {
        self.tally(0..WINDOW_BUCKETS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Outcome;
    use crate::metrics::summarise;

    /// An open-loop run of `n` requests: Poisson-like arrivals at `rate`, a warm-up whose first
    /// requests wait longer, and lengths and latencies drawn from a seeded generator.
    fn run(n: usize, rate: f64, seed: u64) -> Outcome {
        let mut x = seed | 1;
        let mut u = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut t = 0.0;
        let requests = (0..n)
            .map(|i| {
                t += -(1.0 - u()).ln() / rate;
                let warm = if i < n / 50 { 5.0 } else { 1.0 };
                let ttft = warm * 0.05 * (1.0 + 4.0 * u() * u());
                let output = 1 + (300.0 * u()) as u32;
                let tpot = 0.02 * (1.0 + u());
                RequestRecord {
                    arrival_s: t,
                    first_token_s: t + ttft,
                    completion_s: t + ttft + tpot * f64::from(output - 1),
                    prompt_tokens: 100 + (900.0 * u()) as u32,
                    output_tokens: output,
                    preemptions: 0,
                    instance: 0,
                    cached_prompt_tokens: 0,
                }
            })
            .collect::<Vec<_>>();
        let end_s = requests.iter().map(|r| r.completion_s).fold(0.0, f64::max);
        Outcome {
            requests,
            end_s,
            ..Outcome::default()
        }
    }

    fn close(a: f64, b: f64, rel: f64, what: &str) {
        assert!(
            (a - b).abs() <= rel * b.abs(),
            "{what}: streamed {a}, kept {b}"
        );
    }

    #[test]
    fn streamed_window_agrees_with_kept_records() {
        let limits = Limits {
            ttft_s: Some(0.2),
            tpot_s: Some(0.035),
        };
        for (n, rate, seed) in [(20_000, 50.0, 1), (50_000, 200.0, 7), (8_000, 10.0, 42)] {
            let out = run(n, rate, seed);
            let r = &out.requests;
            let (first, last) = (r[0].arrival_s, r[n - 1].arrival_s);
            let mut w = Windowed::new(first, last, limits);
            r.iter().for_each(|x| w.add(x));
            let kept = SteadyWindow::of(r).unwrap();
            let (win, range) = w.window().unwrap();
            // Edges within half a bucket and the sketch's error on the median lifetime.
            let lifetime = Dist::of(r.iter().map(|x| x.completion_s - x.arrival_s).collect()).p50;
            let edge = (last - first) / WINDOW_BUCKETS as f64 / 2.0
                + crate::sketch::RELATIVE_ERROR * lifetime;
            assert!((win.from_s - kept.from_s).abs() <= edge, "{n}: from");
            assert!((win.to_s - kept.to_s).abs() <= edge, "{n}: to");
            close(win.requests as f64, kept.requests as f64, 0.002, "requests");
            let whole = summarise(&out, true);
            let (a, b) = (w.summarise(&range, &whole), kept.summarise(&out, &whole));
            let pairs = [
                (a.ttft_s, b.ttft_s),
                (a.tpot_s, b.tpot_s),
                (a.e2e_s, b.e2e_s),
                (a.tokens_per_s_per_user, b.tokens_per_s_per_user),
            ];
            for (s, k) in pairs {
                close(s.mean, k.mean, 0.002, "mean");
                for (x, y) in [(s.p50, k.p50), (s.p90, k.p90), (s.p99, k.p99)] {
                    close(x, y, 0.01, "percentile");
                }
            }
            close(
                a.throughput_output_tokens_per_s,
                b.throughput_output_tokens_per_s,
                0.002,
                "throughput",
            );
            // Batch-means half-widths: the batches' edges move with the window's.
            let (cs, ck) = (
                w.confidence(&range).unwrap(),
                kept.confidence(&out).unwrap(),
            );
            for (x, y) in [
                (cs.ttft_mean_s, ck.ttft_mean_s),
                (cs.tpot_mean_s, ck.tpot_mean_s),
                (cs.tpot_p50_s, ck.tpot_p50_s),
                (
                    cs.throughput_output_tokens_per_s,
                    ck.throughput_output_tokens_per_s,
                ),
            ] {
                close(x, y, 0.15, "half-width");
            }
            // The limits' tallies: counts exact over the window's requests.
            let t = w.tally(range);
            let met = kept
                .records(&out)
                .iter()
                .filter(|x| super::super::ttft_of(x) <= 0.2 && super::super::tpot_of(x) <= 0.035)
                .count();
            close(t.met as f64, met as f64, 0.002, "met");
            assert_eq!(t.requests as usize, win.requests);
        }
    }
}
