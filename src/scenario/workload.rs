//! The workload fields of a scenario (`workload.*` in a sweep spec, the workload flags of
//! `simulate`) and the workload they build: arrivals, lengths, traces, shared prefixes, rate
//! schedules and agentic sessions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::Loop;
use crate::error::{Error, Result};
use crate::lengths::{shipped_names, LengthSet};
use crate::limits::{check_count, MAX_REQUESTS, MAX_USERS};
use crate::workload::{
    read_sessions, read_trace, Arrivals, LengthDist, SessionShape, Sessions, SharedPrefixes,
    Workload,
};

/// Requests a workload draws when it does not say (and has no trace to count).
pub const DEFAULT_REQUESTS: usize = 1000;

/// Arrival process of an open-loop workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    /// Exponential gaps at the rate.
    #[default]
    Poisson,
    /// Gamma gaps at the rate with coefficient of variation `burstiness`.
    Gamma,
}

/// A length distribution as written by users: a whole number of tokens, or the text form
/// `N`, `uniform:MIN:MAX`, `lognormal:MEDIAN:SIGMA`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LengthText {
    /// A fixed length, tokens.
    Tokens(i64),
    /// A distribution in text form.
    Text(String),
}

impl LengthText {
    fn parse(&self, field: &str) -> Result<LengthDist> {
        match self {
            LengthText::Tokens(n) => LengthDist::parse(field, &n.to_string()),
            LengthText::Text(s) => LengthDist::parse(field, s),
        }
    }
}

/// The workload fields of a scenario (`workload.*` in a sweep spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Open loop: mean arrival rate, requests/s.
    pub rate_per_s: Option<f64>,
    /// Open loop with a rate that changes over time: `START_S:RATE,...` (seconds, requests/s;
    /// Poisson arrivals, each rate holding until the next piece starts) or a CSV file with the
    /// header `start_s,rate_per_s`.
    pub rate_schedule: Option<String>,
    /// Closed loop: users each keeping one request in flight.
    pub concurrency: Option<u32>,
    /// Arrival process for `rate_per_s`.
    #[serde(default)]
    pub arrival: ArrivalKind,
    /// Coefficient of variation of gaps for `arrival = "gamma"`.
    #[serde(default = "default_burstiness")]
    pub burstiness: f64,
    /// Requests to simulate [default: 1000, or every row of `trace`].
    pub requests: Option<usize>,
    /// Prompt lengths, tokens.
    #[serde(default = "default_prompt")]
    pub prompt_tokens: LengthText,
    /// Output lengths, tokens.
    #[serde(default = "default_output")]
    pub output_tokens: LengthText,
    /// Replay a trace CSV: arrivals and lengths.
    pub trace: Option<PathBuf>,
    /// Take lengths in order from a trace CSV instead of `prompt_tokens` / `output_tokens`.
    pub lengths_from: Option<PathBuf>,
    /// Draw (prompt, output) pairs at random from a length dataset instead of `prompt_tokens` /
    /// `output_tokens`: a shipped name (e.g. `mlperf-llama2-70b`) or a CSV with the header
    /// `prompt_tokens,output_tokens`.
    pub sample_lengths: Option<String>,
    /// Shared prompt prefixes: how many distinct prefixes (requests pick one uniformly).
    pub prefix_groups: Option<u32>,
    /// Shared prompt prefixes: tokens at the start of each prompt shared within its group
    /// (capped at the prompt's length).
    pub prefix_tokens: Option<u32>,
    /// Agentic sessions: how many to draw. The arrival process (`rate_per_s` or
    /// `rate_schedule`) then starts sessions, `prompt_tokens` gives each first turn's prompt and
    /// `output_tokens` every turn's output; each later turn's prompt is the whole context so far
    /// plus `turn_input_tokens`, sent `think_s` after the previous turn's last token.
    pub sessions: Option<usize>,
    /// Agentic sessions: turns per session (a distribution, like lengths) [default: 20].
    #[serde(default = "default_session_turns")]
    pub session_turns: LengthText,
    /// Agentic sessions: new tokens each later turn adds to the context (tool results, a user
    /// message) [default: 2000].
    #[serde(default = "default_turn_input")]
    pub turn_input_tokens: LengthText,
    /// Agentic sessions: time from a turn's last token to the next turn being sent (the client
    /// running its tools), s [default: 5].
    #[serde(default = "default_think_s")]
    pub think_s: f64,
    /// Agentic sessions read from a JSONL file, one session per line (see docs/workloads-and-serving.md).
    pub session_file: Option<PathBuf>,
    /// Random seed for arrivals and lengths.
    #[serde(default)]
    pub seed: u64,
}

/// Field names of [`WorkloadSpec`], for suggestions on misspelt paths.
pub const WORKLOAD_FIELDS: &[&str] = &[
    "rate_per_s",
    "rate_schedule",
    "concurrency",
    "arrival",
    "burstiness",
    "requests",
    "prompt_tokens",
    "output_tokens",
    "trace",
    "lengths_from",
    "sample_lengths",
    "prefix_groups",
    "prefix_tokens",
    "sessions",
    "session_turns",
    "turn_input_tokens",
    "think_s",
    "session_file",
    "seed",
];

fn default_burstiness() -> f64 {
    2.0
}
fn default_prompt() -> LengthText {
    LengthText::Tokens(1024)
}
fn default_output() -> LengthText {
    LengthText::Tokens(256)
}
fn default_session_turns() -> LengthText {
    LengthText::Tokens(20)
}
fn default_turn_input() -> LengthText {
    LengthText::Tokens(2000)
}
fn default_think_s() -> f64 {
    5.0
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            rate_per_s: None,
            rate_schedule: None,
            concurrency: None,
            arrival: ArrivalKind::Poisson,
            burstiness: default_burstiness(),
            requests: None,
            prompt_tokens: default_prompt(),
            output_tokens: default_output(),
            trace: None,
            lengths_from: None,
            sample_lengths: None,
            prefix_groups: None,
            prefix_tokens: None,
            sessions: None,
            session_turns: default_session_turns(),
            turn_input_tokens: default_turn_input(),
            think_s: default_think_s(),
            session_file: None,
            seed: 0,
        }
    }
}

impl WorkloadSpec {
    /// Resolve relative trace and length-file paths against `dir` (a sweep spec's folder).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in [
            &mut self.trace,
            &mut self.lengths_from,
            &mut self.session_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        // A rate schedule is inline pieces or a CSV path.
        if let Some(s) = &mut self.rate_schedule {
            if s.ends_with(".csv") && Path::new(s.as_str()).is_relative() {
                *s = dir.join(&*s).display().to_string();
            }
        }
        // A length dataset is a shipped name or a path.
        if let Some(s) = &mut self.sample_lengths {
            if !shipped_names().contains(&s.as_str()) && Path::new(s.as_str()).is_relative() {
                *s = dir.join(&*s).display().to_string();
            }
        }
    }

    fn prefixes(&self) -> Result<Option<SharedPrefixes>> {
        match (self.prefix_groups, self.prefix_tokens) {
            (None, None) => Ok(None),
            (Some(groups), Some(tokens)) => Ok(Some(SharedPrefixes { groups, tokens })),
            _ => Err(Error::arg(
                "prefix_groups / prefix_tokens (--prefix-groups, --prefix-tokens)",
                "give both the number of shared prefixes and their length, or neither",
            )),
        }
    }

    /// Agentic sessions, if asked for: drawn or read, and how many.
    fn sessions(&self) -> Result<Option<(Sessions, usize)>> {
        let field = "sessions / session_file (--sessions, --session-file)";
        let (sessions, n) = match (self.sessions, &self.session_file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(Error::arg(
                    field,
                    "give a number of sessions to draw or a file to read, not both",
                ))
            }
            (Some(n), None) => {
                check_count("sessions (--sessions)", n as u64, MAX_REQUESTS)?;
                if !(self.think_s.is_finite() && self.think_s >= 0.0) {
                    return Err(Error::arg(
                        "think_s (--think-s)",
                        format!("expected a time >= 0 s, found {}", self.think_s),
                    ));
                }
                let shape = SessionShape {
                    turns: self
                        .session_turns
                        .parse("session_turns (--session-turns)")?,
                    turn_input: self
                        .turn_input_tokens
                        .parse("turn_input_tokens (--turn-input-tokens)")?,
                    think_s: self.think_s,
                };
                (Sessions::Drawn(shape), n)
            }
            (None, Some(path)) => {
                let rows = read_sessions(path)?;
                let n = rows.len();
                (Sessions::File(rows), n)
            }
        };
        if self.trace.is_some()
            || self.concurrency.is_some()
            || self.requests.is_some()
            || self.prefix_groups.is_some()
        {
            return Err(Error::arg(
                field,
                "sessions pace their own turns and share their own context; drop trace, concurrency, requests and prefix_groups",
            ));
        }
        Ok(Some((sessions, n)))
    }

    /// The workload and whether it runs open or closed loop.
    pub fn build(&self) -> Result<(Workload, Loop)> {
        if let Some((sessions, n)) = self.sessions()? {
            // Sessions whose file gives every start need no arrival process.
            let timed = matches!(&sessions, Sessions::File(rows) if rows[0].start_s.is_some());
            let mut spec = self.clone();
            spec.sessions = None;
            spec.session_file = None;
            spec.requests = Some(n);
            if spec.rate_per_s.is_none() && spec.rate_schedule.is_none() {
                if !timed {
                    return Err(Error::arg(
                        "workload",
                        "sessions start at rate_per_s (--rate SESSIONS_PER_S) or by rate_schedule (--rate-schedule), or at each session's start_s in the sessions file",
                    ));
                }
                spec.rate_per_s = Some(1.0);
            }
            let (mut w, mode) = spec.build()?;
            if timed {
                w.arrivals = Arrivals::AllAtOnce;
            }
            w.sessions = Some(sessions);
            return Ok((w, mode));
        }
        let prefixes = self.prefixes()?;
        if let Some(path) = &self.trace {
            if self.rate_per_s.is_some()
                || self.rate_schedule.is_some()
                || self.concurrency.is_some()
                || self.lengths_from.is_some()
                || self.sample_lengths.is_some()
            {
                return Err(Error::arg(
                    "workload.trace",
                    "a trace gives arrivals and lengths; drop rate_per_s, rate_schedule, concurrency, lengths_from and sample_lengths",
                ));
            }
            let rows = read_trace(path)?;
            let requests = self.requests.unwrap_or(rows.len());
            check_count("requests (--requests)", requests as u64, MAX_REQUESTS)?;
            let w = Workload {
                requests,
                arrivals: Arrivals::Trace(rows.iter().map(|r| r.arrival_s).collect()),
                prompt: LengthDist::Trace(rows.iter().map(|r| r.prompt_tokens).collect()),
                output: LengthDist::Trace(rows.iter().map(|r| r.output_tokens).collect()),
                prefixes,
                sessions: None,
            };
            return Ok((w, Loop::Open));
        }
        let (prompt, output) = match (&self.lengths_from, &self.sample_lengths) {
            (Some(_), Some(_)) => return Err(Error::arg(
                "workload",
                "give lengths_from (--lengths-from) or sample_lengths (--sample-lengths), not both",
            )),
            (None, Some(set)) => LengthSet::load(set)?.dists(None),
            (Some(path), None) => {
                let rows = read_trace(path)?;
                (
                    LengthDist::Trace(rows.iter().map(|r| r.prompt_tokens).collect()),
                    LengthDist::Trace(rows.iter().map(|r| r.output_tokens).collect()),
                )
            }
            (None, None) => (
                self.prompt_tokens
                    .parse("prompt_tokens (--prompt-tokens)")?,
                self.output_tokens
                    .parse("output_tokens (--output-tokens)")?,
            ),
        };
        let given = [
            self.rate_per_s.is_some(),
            self.rate_schedule.is_some(),
            self.concurrency.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(Error::arg(
                "workload",
                "give one of rate_per_s (--rate, open loop), rate_schedule (--rate-schedule, open loop) or concurrency (--concurrency, closed loop)",
            ));
        }
        let (arrivals, mode) = match (self.rate_per_s, self.concurrency) {
            _ if self.rate_schedule.is_some() => {
                if self.arrival != ArrivalKind::Poisson {
                    return Err(Error::arg(
                        "workload.arrival (--arrival)",
                        "a rate schedule draws Poisson arrivals; drop arrival = \"gamma\"",
                    ));
                }
                let text = self.rate_schedule.as_deref().unwrap_or_default();
                (
                    Arrivals::Schedule(crate::workload::parse_schedule(text)?),
                    Loop::Open,
                )
            }
            (Some(_), Some(_)) => unreachable!("refused above"),
            (Some(rate), None) => (
                match self.arrival {
                    ArrivalKind::Poisson => Arrivals::Poisson { rate_per_s: rate },
                    ArrivalKind::Gamma => Arrivals::Gamma {
                        rate_per_s: rate,
                        cv: self.burstiness,
                    },
                },
                Loop::Open,
            ),
            (None, Some(c)) => {
                check_count("concurrency (--concurrency)", u64::from(c), MAX_USERS)?;
                (Arrivals::AllAtOnce, Loop::Closed { concurrency: c })
            }
            (None, None) => {
                return Err(Error::arg(
                    "workload",
                    "give rate_per_s (--rate REQ_PER_S, open loop), rate_schedule (--rate-schedule START_S:RATE,..., open loop), concurrency (--concurrency USERS, closed loop) or trace (--trace FILE)",
                ))
            }
        };
        let requests = self.requests.unwrap_or(DEFAULT_REQUESTS);
        check_count("requests (--requests)", requests as u64, MAX_REQUESTS)?;
        Ok((
            Workload {
                requests,
                arrivals,
                prompt,
                output,
                prefixes,
                sessions: None,
            },
            mode,
        ))
    }
}
