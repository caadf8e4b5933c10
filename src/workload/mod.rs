//! Workloads: when requests arrive and how long their prompts and outputs are. Arrivals are
//! Poisson, gamma-distributed (bursty), at a rate changing over time, or replayed from a trace
//! ([`read_trace`]); lengths are drawn from a distribution or taken in order from a trace;
//! requests may be the turns of agentic sessions ([`Sessions`]). Deterministic for a seed
//! (ChaCha8).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use statrs::distribution::LogNormal;

use crate::error::{Error, Result};
use crate::warning::Warnings;

mod draw;
mod session;
mod trace;
pub use draw::{Drawn, Draws, RequestSource};
pub use session::{
    parse_sessions, read_sessions, SessionRow, SessionShape, Sessions, Turn, TurnRow,
};
pub use trace::{parse_trace, read_trace};

/// One request to serve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestSpec {
    /// Arrival time, s from the start.
    pub arrival_s: f64,
    /// Prompt length, tokens.
    pub prompt_tokens: u32,
    /// Output length, tokens (at least 1).
    pub output_tokens: u32,
    /// The shared prefix its prompt starts with, if any.
    pub prefix: Option<PromptPrefix>,
    /// Its place in an agentic session, if it is a session's turn.
    pub session: Option<Turn>,
}

impl RequestSpec {
    /// A request without a shared prefix.
    pub fn new(arrival_s: f64, prompt_tokens: u32, output_tokens: u32) -> RequestSpec {
        RequestSpec {
            arrival_s,
            prompt_tokens,
            output_tokens,
            prefix: None,
            session: None,
        }
    }
}

/// A request's shared prompt prefix: the first `tokens` of its prompt are the same for every
/// request of `group` (a system prompt, a repository's context, an agent's history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptPrefix {
    /// The group of requests sharing it.
    pub group: u32,
    /// Its length, tokens (at most the prompt's).
    pub tokens: u32,
}

/// Shared prefixes in a workload: each request belongs to one of `groups` groups, drawn
/// uniformly, and its prompt starts with the group's `tokens`-token prefix (capped at the
/// prompt's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedPrefixes {
    /// Distinct prefixes.
    pub groups: u32,
    /// Prefix length, tokens.
    pub tokens: u32,
}

/// One row of a trace file.
pub type TraceRow = RequestSpec;

/// How requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// Poisson process at `rate_per_s`.
    Poisson {
        /// Mean arrivals per second.
        rate_per_s: f64,
    },
    /// Gamma-distributed gaps with mean `1/rate_per_s` and coefficient of variation `cv`
    /// (cv = 1 is Poisson; cv > 1 is burstier).
    Gamma {
        /// Mean arrivals per second.
        rate_per_s: f64,
        /// Coefficient of variation of the gaps.
        cv: f64,
    },
    /// A Poisson process whose rate changes over time: `(start_s, rate_per_s)` pieces, the first
    /// starting at 0 and each holding until the next starts (the last for ever).
    Schedule(Vec<(f64, f64)>),
    /// All requests at t = 0 (an offline batch).
    AllAtOnce,
    /// Arrival times taken from trace rows, in order.
    Trace(Vec<f64>),
}

/// Check a rate schedule: pieces start at 0 s and then strictly later, every rate finite and
/// at least 0, the last above 0 (so that every request arrives).
fn check_schedule(pieces: &[(f64, f64)]) -> Result<()> {
    let bad = |m: String| Err(Error::arg("rate_schedule (--rate-schedule)", m));
    match pieces.first() {
        None => return bad("expected at least one START_S:RATE piece".into()),
        Some((start, _)) if *start != 0.0 => {
            return bad(format!("the first piece must start at 0 s, found {start}"))
        }
        _ => {}
    }
    for (i, (start, rate)) in pieces.iter().enumerate() {
        if !(rate.is_finite() && *rate >= 0.0) {
            return bad(format!("piece {i}: expected requests/s >= 0, found {rate}"));
        }
        if i > 0 && !(start.is_finite() && *start > pieces[i - 1].0) {
            return bad(format!(
                "piece {i}: expected a start after {} s, found {start}",
                pieces[i - 1].0
            ));
        }
    }
    if pieces.last().is_some_and(|(_, r)| *r == 0.0) {
        return bad("the last piece's rate must be above 0, or later requests never arrive".into());
    }
    Ok(())
}

/// The time at which `mass` more expected arrivals have accumulated after `t` under the
/// piecewise-constant rate `pieces` (time-rescaling: a unit-rate exponential gap in integrated
/// intensity is the next arrival of the Poisson process).
fn schedule_advance(pieces: &[(f64, f64)], mut t: f64, mut mass: f64) -> f64 {
    let mut k = pieces.partition_point(|(start, _)| *start <= t).max(1) - 1;
    loop {
        let rate = pieces[k].1;
        let end = pieces.get(k + 1).map_or(f64::INFINITY, |p| p.0);
        if rate > 0.0 && t + mass / rate <= end {
            return t + mass / rate;
        }
        mass -= rate * (end - t);
        t = end;
        k += 1;
    }
}

/// Parse a rate schedule: `START_S:RATE,START_S:RATE,...` (seconds, requests/s), or a CSV file
/// (a path ending in `.csv`) with the header `start_s,rate_per_s`.
pub fn parse_schedule(text: &str) -> Result<Vec<(f64, f64)>> {
    let field = "rate_schedule (--rate-schedule)";
    let (label, pairs): (String, Vec<String>) = if text.ends_with(".csv") {
        let body = std::fs::read_to_string(text).map_err(|source| Error::Io {
            path: text.to_string(),
            source,
        })?;
        let mut lines = body.lines();
        match lines.next().map(str::trim) {
            Some("start_s,rate_per_s") => {}
            other => {
                return Err(Error::arg(
                    field,
                    format!(
                        "{text}: expected the header start_s,rate_per_s, found {:?}",
                        other.unwrap_or("")
                    ),
                ))
            }
        }
        let pairs = lines
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.replacen(',', ":", 1))
            .collect();
        (format!("{text}: "), pairs)
    } else {
        (String::new(), text.split(',').map(str::to_string).collect())
    };
    pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (s, r) = p.split_once(':').ok_or_else(|| {
                Error::arg(
                    field,
                    format!("{label}piece {i}: expected START_S:RATE, found \"{p}\""),
                )
            })?;
            let num = |x: &str| {
                x.trim().parse::<f64>().map_err(|_| {
                    Error::arg(
                        field,
                        format!(
                            "{label}piece {i}: expected a number, found \"{}\"",
                            x.trim()
                        ),
                    )
                })
            };
            Ok((num(s)?, num(r)?))
        })
        .collect()
}

/// A distribution of token counts.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthDist {
    /// Always `n`.
    Fixed(u32),
    /// Uniform integer in `[min, max]`.
    Uniform {
        /// Smallest value.
        min: u32,
        /// Largest value.
        max: u32,
    },
    /// Log-normal with the given median and log-space sigma.
    LogNormal {
        /// Median, tokens.
        median: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
    /// Taken in order from trace rows (prompt or output column), cycling when exhausted.
    Trace(Vec<u32>),
    /// Drawn uniformly at random from a dataset's values (prompt or output column). A
    /// workload's prompt and output columns of one dataset are drawn with one index per
    /// request, so each request keeps a real (prompt, output) pair.
    Sampled(Vec<u32>),
}

impl LengthDist {
    /// Parse `512`, `uniform:128:2048` or `lognormal:1024:0.8`.
    pub fn parse(flag: &str, s: &str) -> Result<LengthDist> {
        let bad = |m: String| Error::arg(flag, m);
        let int = |x: &str| -> Result<u32> {
            x.trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("expected a whole number of tokens, found \"{x}\"")))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let d = match parts.as_slice() {
            [n] => LengthDist::Fixed(int(n)?),
            ["uniform", a, b] => LengthDist::Uniform {
                min: int(a)?,
                max: int(b)?,
            },
            ["lognormal", m, sd] => LengthDist::LogNormal {
                median: m
                    .parse()
                    .map_err(|_| bad(format!("expected a median in tokens, found \"{m}\"")))?,
                sigma: sd
                    .parse()
                    .map_err(|_| bad(format!("expected sigma as a number, found \"{sd}\"")))?,
            },
            _ => {
                return Err(bad(format!(
                    "expected N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA, found \"{s}\""
                )))
            }
        };
        match &d {
            LengthDist::Fixed(0) => Err(bad("expected at least 1 token".into())),
            LengthDist::Uniform { min, max } if *min == 0 || min > max => {
                Err(bad(format!("expected 1 <= MIN <= MAX, found {min}..{max}")))
            }
            LengthDist::LogNormal { median, sigma }
                if !(median.is_finite()
                    && *median >= 1.0
                    && sigma.is_finite()
                    && *sigma >= 0.0) =>
            {
                Err(bad(format!(
                    "expected MEDIAN >= 1 and SIGMA >= 0, found {median}:{sigma}"
                )))
            }
            _ => Ok(d),
        }
    }

    /// Values a sampled distribution draws from, if it is one.
    fn sampled_len(&self) -> Option<usize> {
        match self {
            LengthDist::Sampled(v) => Some(v.len()),
            _ => None,
        }
    }

    /// The `i`-th request's length before any cap; `pick` is its dataset index for `Sampled`.
    fn sample(&self, i: usize, pick: usize, rng: &mut ChaCha8Rng) -> u32 {
        let v = match self {
            LengthDist::Fixed(n) => *n,
            LengthDist::Uniform { min, max } => rng.random_range(*min..=*max),
            LengthDist::LogNormal { median, sigma } => {
                if *sigma == 0.0 {
                    median.round() as u32
                } else {
                    let d = LogNormal::new(median.ln(), *sigma).expect("checked in parse");
                    rng.sample(d).round().clamp(1.0, f64::from(u32::MAX)) as u32
                }
            }
            LengthDist::Trace(v) => v[i % v.len()],
            LengthDist::Sampled(v) => v[pick % v.len()],
        };
        v.max(1)
    }

    /// Warning kind for lengths of this distribution cut to fit the context.
    fn cap_kind(&self, output: bool) -> &'static str {
        match (self, output) {
            (LengthDist::Trace(_), false) => "trace_prompt_tokens_capped",
            (LengthDist::Trace(_), true) => "trace_output_tokens_capped",
            (LengthDist::Sampled(_), false) => "dataset_prompt_tokens_capped",
            (LengthDist::Sampled(_), true) => "dataset_output_tokens_capped",
            (_, false) => "prompt_tokens_capped",
            (_, true) => "output_tokens_capped",
        }
    }
}

/// A workload: arrivals and lengths for `requests` requests, or for `requests` sessions of
/// several turns each.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Number of requests (of sessions, when `sessions` is set).
    pub requests: usize,
    /// Arrival process.
    pub arrivals: Arrivals,
    /// Prompt lengths.
    pub prompt: LengthDist,
    /// Output lengths.
    pub output: LengthDist,
    /// Shared prompt prefixes, if any.
    pub prefixes: Option<SharedPrefixes>,
    /// Agentic sessions: the arrivals start sessions, `prompt` gives their first turns' prompts
    /// and `output` every turn's output (see [`Sessions`]).
    pub sessions: Option<Sessions>,
}

impl Workload {
    /// Draw the requests for a deployment serving at most `context_tokens` per sequence (prompt
    /// plus output), all at once: [`Workload::drawn`] collected. Fixed lengths that do not fit
    /// are refused: they are what was asked. Lengths drawn from a distribution, a dataset or a
    /// trace are cut to fit (the prompt to leave one output token, the output to the room the
    /// prompt leaves), and every cut is counted in the returned warnings.
    pub fn generate(&self, seed: u64, context_tokens: u64) -> Result<(Vec<RequestSpec>, Warnings)> {
        let drawn = Drawn::new(self.clone(), seed, context_tokens)?;
        Ok((drawn.specs().collect(), drawn.warnings()))
    }

    /// The same requests as [`Workload::generate`], drawn one at a time as a run asks for them
    /// (memory independent of the number of requests), after the same checks.
    pub fn drawn(self, seed: u64, context_tokens: u64) -> Result<Drawn> {
        Drawn::new(self, seed, context_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poisson(n: usize, rate: f64) -> Workload {
        Workload {
            requests: n,
            arrivals: Arrivals::Poisson { rate_per_s: rate },
            prompt: LengthDist::Fixed(100),
            output: LengthDist::Fixed(10),
            prefixes: None,
            sessions: None,
        }
    }

    #[test]
    fn same_seed_same_requests() {
        let w = poisson(100, 5.0);
        assert_eq!(w.generate(7, 4096).unwrap(), w.generate(7, 4096).unwrap());
        assert_ne!(w.generate(7, 4096).unwrap(), w.generate(8, 4096).unwrap());
    }

    #[test]
    fn sampled_lengths_keep_their_pairs_and_cover_the_dataset() {
        let prompts: Vec<u32> = (1..=50).collect();
        let outputs: Vec<u32> = prompts.iter().map(|p| p * 10).collect();
        let w = Workload {
            prompt: LengthDist::Sampled(prompts),
            output: LengthDist::Sampled(outputs),
            ..poisson(2000, 5.0)
        };
        let r = w.generate(3, 1 << 20).unwrap().0;
        assert!(r.iter().all(|q| q.output_tokens == 10 * q.prompt_tokens));
        let seen: std::collections::BTreeSet<u32> = r.iter().map(|q| q.prompt_tokens).collect();
        assert_eq!(
            seen.len(),
            50,
            "2000 uniform draws should reach all 50 rows"
        );
        // Arrivals are those of the same workload with fixed lengths.
        let fixed = poisson(2000, 5.0).generate(3, 1 << 20).unwrap().0;
        assert!(r
            .iter()
            .zip(&fixed)
            .all(|(a, b)| a.arrival_s == b.arrival_s));
        let bad = Workload {
            prompt: LengthDist::Sampled(vec![1, 2]),
            output: LengthDist::Sampled(vec![1]),
            ..poisson(10, 5.0)
        };
        assert!(bad.generate(0, 4096).is_err());
    }

    #[test]
    fn poisson_rate_is_respected() {
        let r = poisson(20_000, 4.0).generate(1, 4096).unwrap().0;
        let rate = r.len() as f64 / r.last().unwrap().arrival_s;
        assert!((rate - 4.0).abs() < 0.1, "{rate}");
    }

    #[test]
    fn gamma_gaps_have_the_requested_cv() {
        let w = Workload {
            arrivals: Arrivals::Gamma {
                rate_per_s: 2.0,
                cv: 3.0,
            },
            ..poisson(50_000, 1.0)
        };
        let r = w.generate(3, 4096).unwrap().0;
        let gaps: Vec<f64> = r
            .windows(2)
            .map(|p| p[1].arrival_s - p[0].arrival_s)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.5).abs() < 0.03, "{mean}");
        assert!(
            (var.sqrt() / mean - 3.0).abs() < 0.2,
            "{}",
            var.sqrt() / mean
        );
    }

    #[test]
    fn trace_errors_name_the_line() {
        let e = parse_trace(
            "t.csv",
            "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,5\n1,x,5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.csv:3:") && e.contains("num_prefill_tokens"),
            "{e}"
        );
        let e = parse_trace(
            "t.csv",
            "arrived_at,num_prefill_tokens,num_decode_tokens\n2,10,5\n1,10,5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("time order"), "{e}");
    }

    #[test]
    fn length_specs_parse_or_explain() {
        assert_eq!(
            LengthDist::parse("--prompt-tokens", "512").unwrap(),
            LengthDist::Fixed(512)
        );
        assert!(LengthDist::parse("--prompt-tokens", "uniform:9:3").is_err());
        assert!(LengthDist::parse("--prompt-tokens", "zipf:3").is_err());
        assert!(LengthDist::parse("--prompt-tokens", "0").is_err());
    }

    #[test]
    fn a_rate_schedule_draws_each_piece_at_its_rate() {
        // 2/s for 500 s, nothing for 100 s, then 10/s: about 1,000 arrivals in the first piece,
        // none in the gap, and the rest at five times the pace.
        let w = Workload {
            requests: 6000,
            arrivals: Arrivals::Schedule(parse_schedule("0:2,500:0,600:10").unwrap()),
            prompt: LengthDist::Fixed(10),
            output: LengthDist::Fixed(10),
            prefixes: None,
            sessions: None,
        };
        let (r, _) = w.generate(7, 4096).unwrap();
        let count = |a: f64, b: f64| {
            r.iter()
                .filter(|x| x.arrival_s >= a && x.arrival_s < b)
                .count() as f64
        };
        assert!((count(0.0, 500.0) / 1000.0 - 1.0).abs() < 0.1);
        assert_eq!(count(500.0, 600.0), 0.0);
        assert!((count(600.0, 700.0) / 1000.0 - 1.0).abs() < 0.1);
        assert!(r.windows(2).all(|p| p[0].arrival_s <= p[1].arrival_s));
    }

    #[test]
    fn schedule_advance_inverts_the_integrated_rate() {
        let pieces = [(0.0, 2.0), (10.0, 0.0), (20.0, 4.0)];
        // 20 expected arrivals fill the first piece; 8 more take 2 s of the third.
        approx::assert_relative_eq!(schedule_advance(&pieces, 0.0, 28.0), 22.0);
        approx::assert_relative_eq!(schedule_advance(&pieces, 5.0, 1.0), 5.5);
        approx::assert_relative_eq!(schedule_advance(&pieces, 12.0, 4.0), 21.0);
    }

    #[test]
    fn bad_rate_schedules_are_refused_with_the_piece() {
        for (text, needle) in [
            ("", "START_S:RATE"),
            ("0:1,5", "piece 1"),
            ("0:1,5:-2", "piece 1"),
            ("0:1,0:2", "piece 1"),
            ("3:1", "start at 0"),
            ("0:1,9:0", "last piece"),
            ("missing-file.csv", "missing-file.csv"),
        ] {
            let e = parse_schedule(text)
                .and_then(|p| check_schedule(&p))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
