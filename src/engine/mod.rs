//! The discrete-event serving engine: requests arrive, are routed round-robin to instances, and
//! each instance runs iterations of continuous batching with chunked prefill over a paged KV
//! cache, each iteration lasting what the cost model says. Deterministic: no wall clock, no
//! randomness (the workload is drawn before the run, or in order as the run reaches it), ties
//! broken by insertion order.
//!
//! Scheduling (vLLM-style, per iteration, within a token budget and a sequence limit): running
//! sequences first, in admission order, each taking one decode token or its next prefill chunk;
//! when KV blocks run out, the most recently admitted sequence is preempted by recomputation
//! (its cache freed, back to the head of the queue); then, if nothing was preempted, waiting
//! requests are admitted first-come first-served while blocks and budget last.
//!
//! An instance is one replica, or one pipeline lane of a replica (vLLM's virtual engines): a
//! replica with `pp` stages runs `pp` lanes that share its KV cache equally. Contention between
//! lanes for the same stage is ignored.
//!
//! The parts: [`event`] (the time-ordered queue), `event_loop` (the run: arrivals, iterations
//! ending, KV transfers, in time order), `router` (which instance a request joins), `scheduler`
//! (what an instance's next iteration computes: admission, chunking, preemption), `instance`
//! (an iteration starting and ending on one instance), `skip` (decode-only iterations that
//! nothing can change, run at once), over [`kv_cache`], [`prefix_cache`] and [`kv_tiers`] (the
//! memory below the cache), with the settings in [`policy`].
//!
//! A session's later turn is not drawn at its own time: it arrives when its predecessor
//! completes, after the client's think time and the network and API stack
//! ([`policy::ServingPolicy::turn_gap_s`]); under prefix caching the predecessor's whole context
//! stays cached for it.

pub mod event;
mod event_loop;
mod instance;
pub mod kv_cache;
pub mod kv_tiers;
pub mod policy;
pub mod prefix_cache;
mod router;
mod scheduler;
mod skip;
mod upcoming;

use serde::Serialize;

use crate::cost::CostModel;
use crate::error::Result;
use crate::sketch::Sketch;
use crate::workload::RequestSource;
pub use kv_tiers::{KvTier, TierStats, MAX_TIERS};
pub use policy::{Disaggregation, PreemptionMode, Priority, Routing, ServingPolicy};

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EngineConfig {
    /// Independent instances (replicas x pipeline lanes).
    pub instances: u32,
    /// KV-cache tokens each instance holds.
    pub kv_tokens_per_instance: u64,
    /// Most sequences in one iteration.
    pub max_batch: u32,
    /// Most tokens computed in one iteration (the chunked-prefill budget).
    pub max_batched_tokens: u32,
    /// Tokens per KV-cache block.
    pub block_tokens: u32,
    /// Speculative decoding, if on.
    pub speculative: Option<SpecConfig>,
    /// Routing, priority, preemption, prefix caching and disaggregation.
    pub policy: ServingPolicy,
}

/// Speculative decoding as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpecConfig {
    /// Draft tokens proposed per decoding sequence per step.
    pub gamma: u32,
    /// Expected tokens each verification step yields per sequence (at least 1).
    pub expected_tokens: f64,
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Arrival, s.
    pub arrival_s: f64,
    /// First output token, s.
    pub first_token_s: f64,
    /// Last output token, s.
    pub completion_s: f64,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Times it was preempted.
    pub preemptions: u32,
    /// Instance that served it (under disaggregation, its decode instance once transferred).
    pub instance: u32,
    /// Prompt tokens read from the prefix cache instead of computed (first admission).
    pub cached_prompt_tokens: u32,
}

/// Everything a run produced, before aggregation.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One record per request, in arrival order, when kept ([`Observe::records`]); empty
    /// otherwise.
    pub requests: Vec<RequestRecord>,
    /// Requests arrived and still without a first token just after the last request arrived
    /// (the last arrival counted; first tokens at that instant not).
    pub backlog_at_last_arrival: usize,
    /// Gaps between consecutive output tokens of a request, s, one per output token after the
    /// first, in a quantile sketch (a run's largest sample, kept in bounded memory).
    pub itl_s: Sketch,
    /// Iterations run.
    pub steps: u64,
    /// Of those, iterations run at once by iteration skipping (priced one by one all the same).
    pub skipped_steps: u64,
    /// Sum over iterations of sequences in the batch.
    pub batch_sequences_sum: u64,
    /// Sum over iterations of tokens computed.
    pub batch_tokens_sum: u64,
    /// Busy time of each instance, s.
    pub busy_s: Vec<f64>,
    /// Largest fraction of any instance's KV cache in use.
    pub kv_peak_fraction: f64,
    /// Time of the last completion, s.
    pub end_s: f64,
    /// Tokens of KV cache copied to or from host memory by swap preemption.
    pub swapped_tokens: u64,
    /// Prefix-cache entries evicted for room.
    pub prefix_evictions: u64,
    /// KV-cache transfers from prefill to decode instances.
    pub kv_transfers: u64,
    /// Time spent in those transfers, summed over requests, s.
    pub kv_transfer_s: f64,
    /// What each KV tier below the cache did (one entry per tier, none without tiers).
    pub kv_tiers: Vec<TierStats>,
    /// Every iteration, when recorded ([`run_recorded`]); empty otherwise.
    pub timeline: Vec<StepRecord>,
}

/// One iteration of one instance, for timelines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepRecord {
    /// Instance that ran it.
    pub instance: u32,
    /// Start, s.
    pub start_s: f64,
    /// End, s.
    pub end_s: f64,
    /// Sequences in the batch.
    pub sequences: u32,
    /// Tokens computed.
    pub tokens: u64,
    /// Sequences that sampled an output token (decodes and final prefill chunks).
    pub sampled: u32,
    /// Requests queued at the instance when the iteration started.
    pub waiting: u32,
    /// Fraction of the instance's KV-cache blocks in use when the iteration started.
    pub kv_used_fraction: f32,
}

/// Longest simulated time, s (about 31.7 years; u64 nanoseconds reach 584 years).
pub const HORIZON_S: f64 = 1e9;

/// How requests enter the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loop {
    /// Requests arrive at their `arrival_s`, whatever the system does.
    Open,
    /// `concurrency` users each send a request, wait for its last token and send the next at
    /// once; `arrival_s` is ignored.
    Closed {
        /// Requests in flight.
        concurrency: u32,
    },
}

/// Called with a request's index and record as it completes.
pub type OnComplete<'o> = &'o mut dyn FnMut(u32, &RequestRecord);

/// What a run keeps and reports besides its aggregates.
#[derive(Default)]
pub struct Observe<'o> {
    /// Keep a [`StepRecord`] of every iteration in [`Outcome::timeline`] (for `--trace-out`).
    pub timeline: bool,
    /// Keep every request's record in [`Outcome::requests`] (memory grows with the run).
    pub records: bool,
    /// Called with each request's index and record as it completes, in completion order.
    pub on_complete: Option<OnComplete<'o>>,
}

/// Run the engine over `specs` (sorted by arrival) with `cost` timing every iteration, keeping
/// every request's record.
pub fn run<R: RequestSource + ?Sized>(
    specs: &R,
    cost: &dyn CostModel,
    cfg: EngineConfig,
    mode: Loop,
) -> Result<Outcome> {
    run_recorded(specs, cost, cfg, mode, false)
}

/// As [`run`], stepping every iteration one at a time (no iteration skipping): the reference
/// that skipping is checked against.
pub fn run_stepwise<R: RequestSource + ?Sized>(
    specs: &R,
    cost: &dyn CostModel,
    cfg: EngineConfig,
    mode: Loop,
) -> Result<Outcome> {
    let observe = Observe {
        records: true,
        ..Observe::default()
    };
    run_with(specs, cost, cfg, mode, observe, false)
}

/// As [`run`], keeping a [`StepRecord`] of every iteration in [`Outcome::timeline`] when
/// `record` is set (for `--trace-out`).
pub fn run_recorded<R: RequestSource + ?Sized>(
    specs: &R,
    cost: &dyn CostModel,
    cfg: EngineConfig,
    mode: Loop,
    record: bool,
) -> Result<Outcome> {
    let observe = Observe {
        timeline: record,
        records: true,
        on_complete: None,
    };
    run_with(specs, cost, cfg, mode, observe, true)
}

/// As [`run`], keeping and reporting what `observe` asks for.
pub fn run_observed<'a, R: RequestSource + ?Sized>(
    specs: &'a R,
    cost: &'a dyn CostModel,
    cfg: EngineConfig,
    mode: Loop,
    observe: Observe<'a>,
) -> Result<Outcome> {
    run_with(specs, cost, cfg, mode, observe, true)
}

/// The run: the requests checked in one pass over `specs`, then served as a second pass draws
/// them.
fn run_with<'a, R: RequestSource + ?Sized>(
    specs: &'a R,
    cost: &'a dyn CostModel,
    cfg: EngineConfig,
    mode: Loop,
    observe: Observe<'a>,
    skip: bool,
) -> Result<Outcome> {
    event_loop::check_settings(&cfg)?;
    let sessions = event_loop::check_requests(specs.specs(), &cfg, mode)?;
    let mut engine = event_loop::Engine::new(
        specs.specs(),
        specs.count(),
        cost,
        cfg,
        observe,
        skip,
        sessions,
    );
    engine.start(mode)?;
    engine.run(mode)?;
    engine.outcome()
}

#[cfg(test)]
mod tests;
