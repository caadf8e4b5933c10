//! A scenario: everything one `simulate` run needs (machine, model, parallelism, serving
//! settings, workload), as typed values that come either from command-line flags or from a
//! TOML table (a sweep's `[base]` with its axis values applied). Both paths build the same
//! [`Scenario`] and run it the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{Loop, Observe, OnComplete, Outcome, RequestRecord};
use crate::engine::{PreemptionMode, Priority, Routing};
use crate::error::{Error, Result};
use crate::lengths::{shipped_names, LengthSet};
use crate::limits::{check_count, MAX_BATCH, MAX_DEVICES, MAX_REQUESTS, MAX_TOKENS, MAX_USERS};
use crate::metrics::Summary;
use crate::placement::{Objective, ParallelRequest};
use crate::profile::{load_hardware, load_model, Override};
use crate::system::{ServeSettings, Speculation, Split, System};
use crate::warning::Warnings;
use crate::workload::{
    read_sessions, read_trace, Arrivals, Drawn, LengthDist, RequestSource, RequestSpec,
    SessionShape, Sessions, SharedPrefixes, Workload,
};

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

/// Parallelism, speculative decoding and serving-engine settings (`serve.*` in a sweep spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSpec {
    /// Tensor-parallel degree per replica [default: the fewest GPUs that hold the model].
    pub tp: Option<u32>,
    /// Attention data parallelism over the `tp` GPUs, experts spread over them (MoE models on
    /// GPUs) [default: false].
    #[serde(default)]
    pub attention_dp: bool,
    /// Pipeline stages per replica [default: the fewest devices that hold the model].
    pub pp: Option<u32>,
    /// Replicas [default: as many as fit].
    pub replicas: Option<u32>,
    /// Most tokens (prompt plus output) one sequence may hold [default: the model's context
    /// window, or the most that fits when the window does not].
    pub max_context: Option<u64>,
    /// What an automatic layout maximises: `per-user-speed` or `throughput` [default:
    /// per-user speed on wafers, throughput on GPUs].
    pub objective: Option<Objective>,
    /// Speculative decoding: draft model, shipped name or TOML file.
    pub draft: Option<String>,
    /// Speculative decoding: draft tokens per verification step.
    #[serde(default = "default_gamma")]
    pub gamma: u32,
    /// Speculative decoding: probability that the target accepts one draft token.
    pub alpha: Option<f64>,
    /// Most sequences per iteration.
    #[serde(default = "default_max_batch")]
    pub max_batch: u32,
    /// Token budget per iteration (the chunked-prefill chunk).
    #[serde(default = "default_max_batched_tokens")]
    pub max_batched_tokens: u32,
    /// Tokens per KV-cache block.
    #[serde(default = "default_block_tokens")]
    pub block_tokens: u32,
    /// Wafers: let KV cache spill to external memory.
    #[serde(default)]
    pub kv_spill: bool,
    /// Move cached prefixes (idle sessions' contexts) evicted from HBM or SRAM to host or
    /// Grace memory (GPUs) or external memory (wafers), and load them back when needed.
    #[serde(default)]
    pub kv_offload: bool,
    /// Request routing across replicas.
    #[serde(default)]
    pub routing: Routing,
    /// Decode-first or prefill-first iterations.
    #[serde(default)]
    pub priority: Priority,
    /// What preemption does to a sequence's KV cache: recompute or swap.
    #[serde(default)]
    pub preemption: PreemptionMode,
    /// Cache shared prompt prefixes between requests.
    #[serde(default = "default_prefix_caching")]
    pub prefix_caching: bool,
    /// Disaggregated prefill and decode replicas, `XpYd` (e.g. `1p3d`).
    pub disaggregate: Option<String>,
}

/// Field names of [`ServeSpec`], for suggestions on misspelt paths.
pub const SERVE_FIELDS: &[&str] = &[
    "tp",
    "attention_dp",
    "pp",
    "replicas",
    "max_context",
    "objective",
    "draft",
    "gamma",
    "alpha",
    "max_batch",
    "max_batched_tokens",
    "block_tokens",
    "kv_spill",
    "kv_offload",
    "routing",
    "priority",
    "preemption",
    "prefix_caching",
    "disaggregate",
];

fn default_prefix_caching() -> bool {
    ServeSettings::default().prefix_caching
}

fn default_gamma() -> u32 {
    4
}
fn default_max_batch() -> u32 {
    ServeSettings::default().max_batch
}
fn default_max_batched_tokens() -> u32 {
    ServeSettings::default().max_batched_tokens
}
fn default_block_tokens() -> u32 {
    ServeSettings::default().block_tokens
}

impl Default for ServeSpec {
    fn default() -> Self {
        ServeSpec {
            tp: None,
            attention_dp: false,
            pp: None,
            replicas: None,
            max_context: None,
            objective: None,
            draft: None,
            gamma: default_gamma(),
            alpha: None,
            max_batch: default_max_batch(),
            max_batched_tokens: default_max_batched_tokens(),
            block_tokens: default_block_tokens(),
            kv_spill: false,
            kv_offload: false,
            routing: Routing::default(),
            priority: Priority::default(),
            preemption: PreemptionMode::default(),
            prefix_caching: default_prefix_caching(),
            disaggregate: None,
        }
    }
}

impl ServeSpec {
    /// The disaggregated split, if any.
    pub fn split(&self) -> Result<Option<Split>> {
        self.disaggregate
            .as_deref()
            .map(|t| Split::parse("disaggregate (--disaggregate)", t))
            .transpose()
    }

    /// Engine settings.
    pub fn settings(&self) -> Result<ServeSettings> {
        check_count("max_batch (--max-batch)", self.max_batch.into(), MAX_BATCH)?;
        check_count(
            "max_batched_tokens (--max-batched-tokens)",
            self.max_batched_tokens.into(),
            MAX_TOKENS,
        )?;
        check_count(
            "block_tokens (--block-tokens)",
            self.block_tokens.into(),
            MAX_TOKENS,
        )?;
        Ok(ServeSettings {
            max_batch: self.max_batch,
            max_batched_tokens: self.max_batched_tokens,
            block_tokens: self.block_tokens,
            kv_spill: self.kv_spill,
            kv_offload: self.kv_offload,
            routing: self.routing,
            priority: self.priority,
            preemption: self.preemption,
            prefix_caching: self.prefix_caching,
            disaggregate: self.split()?,
        })
    }

    /// Place the model on the machine (with its draft, if any).
    pub fn system(&self, hardware: &str, model: &str, overrides: &[Override]) -> Result<System> {
        for (what, n) in [
            ("tp (--tp)", self.tp),
            ("pp (--pp)", self.pp),
            ("replicas (--replicas)", self.replicas),
        ] {
            if let Some(n) = n {
                check_count(what, n.into(), MAX_DEVICES)?;
            }
        }
        // Before the engine settings are needed, so a bad one fails before loading profiles.
        self.settings()?;
        let hw = load_hardware(hardware, overrides)?;
        let target = load_model(model, overrides)?;
        let speculation = match (&self.draft, self.alpha) {
            (Some(d), Some(alpha)) => Some(Speculation::load(d, self.gamma, alpha)?),
            (Some(_), None) => {
                return Err(Error::arg(
                    "alpha",
                    "speculative decoding with a draft needs its acceptance rate alpha",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::arg("draft", "alpha is given but no draft model"))
            }
            (None, None) => None,
        };
        // A split fixes the replica count (the engine checks that a given count matches).
        let split = self.split()?.filter(|_| self.replicas.is_none());
        System::with_speculation(
            hw,
            target,
            speculation,
            ParallelRequest {
                tp: self.tp,
                pp: self.pp,
                replicas: self.replicas.or(split.map(|s| s.replicas())),
                attention_dp: self.attention_dp,
                max_context: self.max_context,
                objective: self.objective,
            },
        )
        .map_err(|e| match split {
            Some(s) => Error::arg(
                "disaggregate (--disaggregate)",
                format!("{s} asks for {} replicas: {e}", s.replicas()),
            ),
            None => e,
        })
    }
}

/// Requests a workload draws when it does not say (and has no trace to count).
pub const DEFAULT_REQUESTS: usize = 1000;

/// One simulate run, fully described.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Hardware profile: shipped name or TOML file.
    pub hardware: String,
    /// Model profile: shipped name or TOML file.
    pub model: String,
    /// Profile overrides (`hardware.*`, `model.*`).
    pub overrides: Vec<Override>,
    /// Parallelism and serving settings.
    pub serve: ServeSpec,
    /// The workload.
    pub workload: WorkloadSpec,
    /// Keep every iteration in the outcome's timeline (for `--trace-out`).
    pub record_timeline: bool,
    /// Keep every request's record in the outcome (for outputs that read them all: charts,
    /// traces, SLO verdicts); without them a run's memory does not grow with its requests.
    pub keep_records: bool,
}

/// What one scenario produced.
#[derive(Debug)]
pub struct Run {
    /// The placed system.
    pub system: System,
    /// Engine settings used.
    pub settings: ServeSettings,
    /// Open or closed loop.
    pub mode: Loop,
    /// Per-request records and raw samples.
    pub outcome: Outcome,
    /// Aggregates.
    pub summary: Summary,
    /// Every adjustment made to what was asked (lengths cut, context limited).
    pub warnings: Warnings,
}

impl Scenario {
    /// Place, draw the workload, serve it, aggregate.
    pub fn run(&self) -> Result<Run> {
        let system = self
            .serve
            .system(&self.hardware, &self.model, &self.overrides)?;
        self.run_on(system)
    }

    /// As [`Scenario::run`] on an already placed system, the workload drawn as the run reaches
    /// it.
    pub fn run_on(&self, system: System) -> Result<Run> {
        let (requests, mode, warnings) = self.drawn(&system)?;
        self.serve_on(system, &requests, mode, warnings, None)
    }

    /// As [`Scenario::run`], handing each request's index and record to `on_complete` as it
    /// completes (for records streamed to a file).
    pub fn run_streamed(&self, on_complete: &mut dyn FnMut(u32, &RequestRecord)) -> Result<Run> {
        let system = self
            .serve
            .system(&self.hardware, &self.model, &self.overrides)?;
        let (requests, mode, warnings) = self.drawn(&system)?;
        self.serve_on(system, &requests, mode, warnings, Some(on_complete))
    }

    /// The workload's requests as drawn for `system` (its context limit caps drawn lengths, and
    /// the warnings count every cut), and how they enter.
    pub fn requests(&self, system: &System) -> Result<(Vec<RequestSpec>, Loop, Warnings)> {
        let (workload, mode) = self.workload.build()?;
        let mut warnings = system.warnings();
        let (requests, drawn) = workload.generate(self.workload.seed, system.context_limit().0)?;
        warnings.extend(&drawn);
        Ok((requests, mode, warnings))
    }

    /// As [`Scenario::requests`], drawn on demand instead of held (the warnings from one pass
    /// of drawing).
    pub fn drawn(&self, system: &System) -> Result<(Drawn, Loop, Warnings)> {
        let (workload, mode) = self.workload.build()?;
        let mut warnings = system.warnings();
        let requests = workload.drawn(self.workload.seed, system.context_limit().0)?;
        warnings.extend(&requests.warnings());
        Ok((requests, mode, warnings))
    }

    /// Serve `requests` on `system` and aggregate; `warnings` are the adjustments made so far;
    /// `on_complete`, if any, sees each request's record as it completes.
    pub fn serve_on<R: RequestSource + ?Sized>(
        &self,
        system: System,
        requests: &R,
        mode: Loop,
        warnings: Warnings,
        on_complete: Option<OnComplete<'_>>,
    ) -> Result<Run> {
        let settings = self.serve.settings()?;
        let observe = Observe {
            timeline: self.record_timeline,
            records: self.keep_records,
            on_complete,
        };
        let (outcome, summary) = system.simulate_observed(requests, &settings, mode, observe)?;
        Ok(Run {
            system,
            settings,
            mode,
            outcome,
            summary,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_names_are_accepted(fields: &[&str], parse: impl Fn(toml::Table) -> bool) {
        for f in fields {
            let value = match *f {
                "arrival" => toml::Value::String("gamma".into()),
                "routing" => toml::Value::String("least_kv".into()),
                "priority" => toml::Value::String("prefill".into()),
                "preemption" => toml::Value::String("swap".into()),
                "disaggregate" => toml::Value::String("1p1d".into()),
                "objective" => toml::Value::String("throughput".into()),
                "prompt_tokens" | "output_tokens" | "trace" | "lengths_from" | "sample_lengths"
                | "draft" | "rate_schedule" | "session_turns" | "turn_input_tokens"
                | "session_file" => toml::Value::String("x".into()),
                "kv_spill" | "kv_offload" | "prefix_caching" | "attention_dp" => {
                    toml::Value::Boolean(true)
                }
                "rate_per_s" | "burstiness" | "alpha" | "think_s" => toml::Value::Float(0.5),
                _ => toml::Value::Integer(1),
            };
            let mut t = toml::Table::new();
            t.insert((*f).to_string(), value);
            assert!(parse(t), "{f} is listed but not a field");
        }
    }

    #[test]
    fn listed_field_names_match_the_structs() {
        field_names_are_accepted(WORKLOAD_FIELDS, |t| {
            toml::Value::Table(t).try_into::<WorkloadSpec>().is_ok()
        });
        field_names_are_accepted(SERVE_FIELDS, |t| {
            toml::Value::Table(t).try_into::<ServeSpec>().is_ok()
        });
        let mut t = toml::Table::new();
        t.insert("rate".into(), toml::Value::Float(1.0));
        assert!(toml::Value::Table(t).try_into::<WorkloadSpec>().is_err());
    }

    #[test]
    fn workload_needs_exactly_one_load_kind() {
        let mut w = WorkloadSpec::default();
        assert!(w.build().is_err());
        w.rate_per_s = Some(1.0);
        assert_eq!(w.build().unwrap().1, Loop::Open);
        w.concurrency = Some(4);
        assert!(w.build().is_err());
        w.rate_per_s = None;
        assert_eq!(w.build().unwrap().1, Loop::Closed { concurrency: 4 });
    }
}
