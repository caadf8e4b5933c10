//! The discrete-event serving engine: requests arrive, are routed round-robin to instances, and
//! each instance runs iterations of continuous batching with chunked prefill over a paged KV
//! cache, each iteration lasting what the cost model says. Deterministic: no wall clock, no
//! randomness (the workload is drawn before the run), ties broken by insertion order.
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

pub mod event;
pub mod kv_cache;
pub mod policy;
pub mod prefix_cache;

use std::collections::VecDeque;

use serde::Serialize;

use crate::cost::{Batch, CostModel};
use crate::error::{Error, Result};
use crate::workload::RequestSpec;
use event::{ns_from_s, s_from_ns, EventQueue, SimTime};
use kv_cache::BlockPool;
pub use policy::{Disaggregation, PreemptionMode, Priority, Routing, ServingPolicy};
use prefix_cache::PrefixCache;

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
    /// One record per request, in arrival order.
    pub requests: Vec<RequestRecord>,
    /// Every gap between consecutive output tokens of a request, s (single precision: one per
    /// output token, the largest array of a run).
    pub itl_s: Vec<f32>,
    /// Iterations run.
    pub steps: u64,
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

#[derive(Debug, Clone, Copy)]
struct Seq {
    arrival: SimTime,
    kv: u32,
    generated: u32,
    /// KV blocks this sequence owns.
    blocks: u32,
    /// KV blocks it reads from a cached prefix of `prefix_ref`.
    shared_blocks: u32,
    /// The prefix group whose cache entry it references.
    prefix_ref: Option<u32>,
    /// Its KV cache sits in host memory (swap preemption).
    swapped: bool,
    first: SimTime,
    last_token: SimTime,
    done: SimTime,
    preemptions: u32,
    instance: u32,
    cached_prompt: u32,
    admitted: bool,
    /// Speculative decoding: fractional tokens owed, so that a sequence yields on average exactly
    /// the expected tokens per verification step, deterministically.
    credit: f64,
}

const UNSET: SimTime = SimTime::MAX;

/// Longest simulated time, s (about 31.7 years; u64 nanoseconds reach 584 years).
pub const HORIZON_S: f64 = 1e9;

#[derive(Debug)]
struct Instance {
    running: Vec<u32>,
    waiting: VecDeque<u32>,
    /// KV tokens the waiting requests will hold once admitted (for least-KV routing).
    waiting_tokens: u64,
    pool: BlockPool,
    prefix: PrefixCache,
    /// The iteration in flight: (request, tokens computed, speculative decode).
    step: Vec<(u32, u32, bool)>,
    /// Tokens to copy to or from host memory before the next iteration (swap preemption).
    swap_tokens: u64,
    /// Requests whose KV is leaving for a decode instance (their blocks are still held).
    sending: u32,
    busy: bool,
    busy_ns: SimTime,
}

enum Event {
    Arrival(u32),
    StepDone(u32),
    /// A request's KV cache reached the decode pool.
    Transferred(u32),
}

struct Engine<'a> {
    specs: &'a [RequestSpec],
    cost: &'a dyn CostModel,
    cfg: EngineConfig,
    seqs: Vec<Seq>,
    instances: Vec<Instance>,
    queue: EventQueue<Event>,
    out: Outcome,
    /// Closed loop: the next request to issue when one completes.
    next_closed: Option<u32>,
    /// Keep a [`StepRecord`] per iteration.
    record: bool,
    /// Round-robin counters of the first (prefill or only) pool and of the decode pool.
    turn: [u32; 2],
}

/// Tokens of a request's shared prefix that can be cached: whole blocks, and at least one
/// prompt token left to compute (its logits give the first output token).
fn cacheable(spec: &RequestSpec, block_tokens: u32) -> Option<(u32, u32)> {
    let p = spec.prefix?;
    let tokens = p.tokens.min(spec.prompt_tokens.saturating_sub(1));
    let tokens = tokens / block_tokens * block_tokens;
    (tokens > 0).then_some((p.group, tokens))
}

impl Engine<'_> {
    /// Tokens whose KV must be computed before the next output token: prompt plus outputs so far.
    fn known(&self, r: usize) -> u32 {
        self.specs[r].prompt_tokens + self.seqs[r].generated
    }

    /// Instances of pool 0 (arrivals: prefill or colocated) or pool 1 (decode).
    fn pool(&self, decode: bool) -> std::ops::Range<usize> {
        let n = self.cfg.instances as usize;
        match (self.cfg.policy.disaggregation, decode) {
            (Some(d), false) => 0..d.prefill_instances as usize,
            (Some(d), true) => d.prefill_instances as usize..n,
            (None, _) => 0..n,
        }
    }

    fn outstanding(&self, k: usize) -> usize {
        let i = &self.instances[k];
        i.running.len() + i.waiting.len()
    }

    fn kv_load(&self, k: usize) -> u64 {
        let i = &self.instances[k];
        u64::from(i.pool.total() - i.pool.free()) * u64::from(self.cfg.block_tokens)
            + i.waiting_tokens
    }

    /// The instance request `r` joins, among the arrival pool or the decode pool.
    fn route(&mut self, r: usize, decode: bool) -> usize {
        let pool = self.pool(decode);
        let least = |key: &dyn Fn(usize) -> u64| {
            pool.clone()
                .min_by_key(|&k| (key(k), k))
                .expect("pools are non-empty")
        };
        match self.cfg.policy.routing {
            Routing::RoundRobin => {
                let t = &mut self.turn[usize::from(decode)];
                let k = pool.start + (*t as usize % pool.len());
                *t = t.wrapping_add(1);
                k
            }
            Routing::LeastOutstanding => least(&|k| self.outstanding(k) as u64),
            Routing::LeastKv => least(&|k| self.kv_load(k)),
            Routing::PrefixAffinity => {
                let loads = pool.clone().map(|k| self.outstanding(k));
                let (lo, hi) = loads.fold((usize::MAX, 0), |(a, b), l| (a.min(l), b.max(l)));
                match self.specs[r].prefix {
                    Some(p) if !decode && !policy::imbalanced(hi, lo) => {
                        pool.start + affinity_in(p.group, pool.len())
                    }
                    _ => least(&|k| self.outstanding(k) as u64),
                }
            }
        }
    }

    fn enqueue(&mut self, k: usize, r: u32, front: bool) {
        let need = u64::from(self.known(r as usize));
        let inst = &mut self.instances[k];
        inst.waiting_tokens += need;
        if front {
            inst.waiting.push_front(r);
        } else {
            inst.waiting.push_back(r);
        }
    }

    /// Give back a sequence's blocks and its prefix reference.
    fn release(&mut self, k: usize, r: usize) {
        let s = &mut self.seqs[r];
        let inst = &mut self.instances[k];
        inst.pool.release(s.blocks);
        s.blocks = 0;
        s.shared_blocks = 0;
        if let Some(g) = s.prefix_ref.take() {
            inst.prefix.release(g);
        }
    }

    /// Free blocks by evicting unused cached prefixes until `want` are free; false if they cannot.
    fn make_room(&mut self, k: usize, want: u32) -> bool {
        let inst = &mut self.instances[k];
        while inst.pool.free() < want {
            match inst.prefix.evict_one() {
                Some(b) => inst.pool.release(b),
                None => return false,
            }
        }
        true
    }

    /// KV blocks sequence `r` on instance `k` still needs to reach its last token (with a
    /// speculative step's overshoot), beyond those it holds.
    fn blocks_to_finish(&self, k: usize, r: usize) -> u32 {
        let gamma = self.cfg.speculative.map_or(0, |s| s.gamma);
        let total = self.specs[r].prompt_tokens + self.specs[r].output_tokens + gamma;
        let s = &self.seqs[r];
        self.instances[k]
            .pool
            .blocks_for(total)
            .saturating_sub(s.blocks + s.shared_blocks)
    }

    fn preempt(&mut self, k: usize) {
        let v = self.instances[k]
            .running
            .pop()
            .expect("caller checked non-empty") as usize;
        self.release(k, v);
        let swap = self.cfg.policy.preemption == PreemptionMode::Swap;
        let s = &mut self.seqs[v];
        s.preemptions += 1;
        if swap && s.kv > 0 {
            s.swapped = true;
            self.instances[k].swap_tokens += u64::from(s.kv);
        } else {
            s.kv = 0;
        }
        self.enqueue(k, v as u32, true);
    }

    /// Tokens sequence `r` computes next within `budget`, whether it is a speculative decode,
    /// and whether it is decoding at all.
    fn next_work(&self, r: usize, budget: u32) -> (u32, bool, bool) {
        let kv = self.seqs[r].kv;
        let known = self.known(r);
        let decoding = known - kv == 1 && self.seqs[r].generated > 0;
        match (decoding, self.cfg.speculative) {
            // A verification step computes gamma + 1 tokens and needs their KV room.
            (true, Some(s)) => (s.gamma + 1, true, true),
            _ => ((known - kv).min(budget), false, decoding),
        }
    }

    fn push_work(&mut self, k: usize, r: usize, n: u32, speculative: bool, batch: &mut Batch) {
        let kv = self.seqs[r].kv;
        if speculative {
            self.instances[k].step.push((r as u32, 1, true));
            batch.push_sequence(1, u64::from(kv), true, true);
        } else {
            self.instances[k].step.push((r as u32, n, false));
            batch.push_sequence(u64::from(n), u64::from(kv), kv + n == self.known(r), false);
        }
    }

    /// Form the next batch of instance `k`; false if there is nothing to run. With
    /// `prefill_first`, running decodes sit out so waiting requests are admitted and prefilled.
    fn form_batch(&mut self, k: usize, batch: &mut Batch, prefill_first: bool) -> bool {
        let mut budget = self.cfg.max_batched_tokens;
        let mut preempted = false;
        let mut i = 0;
        while i < self.instances[k].running.len() && budget > 0 {
            let r = self.instances[k].running[i] as usize;
            let (n, speculative, decoding) = self.next_work(r, budget);
            if prefill_first && decoding {
                i += 1;
                continue;
            }
            let s = self.seqs[r];
            let want = self.instances[k]
                .pool
                .blocks_for(s.kv + n)
                .saturating_sub(s.blocks + s.shared_blocks);
            // Prefill-first iterations take only free room; preempting for them could evict
            // the same prefill over and over while the decodes holding the room never run.
            if prefill_first && !self.make_room(k, want) {
                i += 1;
                continue;
            }
            let mut preempted_self = false;
            while !self.make_room(k, want) {
                let last = self.instances[k].running.len() - 1;
                self.preempt(k);
                preempted = true;
                if last == i {
                    preempted_self = true;
                    break;
                }
            }
            if preempted_self {
                break;
            }
            self.instances[k].pool.allocate(want);
            self.seqs[r].blocks += want;
            self.push_work(k, r, n, speculative, batch);
            budget = budget.saturating_sub(n);
            i += 1;
        }
        if !preempted || self.instances[k].step.is_empty() {
            while self.instances[k].running.len() < self.cfg.max_batch as usize && budget > 0 {
                let Some(&r) = self.instances[k].waiting.front() else {
                    break;
                };
                let r = r as usize;
                // A fresh request may start after its group's cached prefix.
                let mut hit = None;
                if self.cfg.policy.prefix_caching && self.seqs[r].kv == 0 {
                    if let Some((g, tokens)) = cacheable(&self.specs[r], self.cfg.block_tokens) {
                        if let Some(cached) = self.instances[k].prefix.acquire(g) {
                            hit = Some((g, tokens.min(cached)));
                        }
                    }
                }
                if let Some((_, t)) = hit {
                    self.seqs[r].kv = t;
                    self.seqs[r].shared_blocks = t / self.cfg.block_tokens;
                }
                let (n, speculative, _) = self.next_work(r, budget);
                let s = self.seqs[r];
                let want = self.instances[k]
                    .pool
                    .blocks_for(s.kv + n)
                    .saturating_sub(s.shared_blocks);
                // Without preemption, room for the whole request beside what the running
                // ones still need.
                let need = if self.cfg.policy.preemption == PreemptionMode::Never {
                    let running = &self.instances[k].running;
                    let outstanding: u32 = running
                        .iter()
                        .map(|&q| self.blocks_to_finish(k, q as usize))
                        .sum();
                    want.max(self.blocks_to_finish(k, r)) + outstanding
                } else {
                    want
                };
                if !self.make_room(k, need) {
                    if let Some((g, _)) = hit {
                        self.instances[k].prefix.release(g);
                        self.seqs[r].kv = 0;
                        self.seqs[r].shared_blocks = 0;
                    }
                    break;
                }
                let known = u64::from(self.known(r));
                let inst = &mut self.instances[k];
                inst.pool.allocate(want);
                inst.waiting.pop_front();
                inst.waiting_tokens -= known;
                inst.running.push(r as u32);
                let s = &mut self.seqs[r];
                s.blocks = want;
                s.prefix_ref = hit.map(|(g, _)| g);
                if let Some((_, t)) = hit {
                    if !s.admitted {
                        s.cached_prompt = t;
                    }
                }
                s.admitted = true;
                if s.swapped {
                    s.swapped = false;
                    inst.swap_tokens += u64::from(s.kv);
                }
                self.push_work(k, r, n, speculative, batch);
                budget = budget.saturating_sub(n);
            }
        }
        !self.instances[k].step.is_empty()
    }

    fn try_start(&mut self, k: usize, now: SimTime) -> Result<()> {
        if self.instances[k].busy {
            return Ok(());
        }
        let gamma = self.cfg.speculative.map_or(0, |s| s.gamma);
        let mut batch = Batch::speculative(self.cost.window(), gamma);
        let prefill_first =
            self.cfg.policy.priority == Priority::Prefill && !self.instances[k].waiting.is_empty();
        let mut formed = self.form_batch(k, &mut batch, prefill_first);
        if !formed && prefill_first {
            // Nothing could be admitted: decodes go on.
            formed = self.form_batch(k, &mut batch, false);
        }
        if !formed {
            let inst = &self.instances[k];
            if !inst.waiting.is_empty() && inst.sending == 0 {
                return Err(Error::Stall {
                    time_s: s_from_ns(now),
                    running: inst.running.len(),
                    waiting: inst.waiting.len(),
                    reason: format!(
                        "no request could be admitted with {} of {} KV blocks free",
                        inst.pool.free(),
                        inst.pool.total()
                    ),
                });
            }
            return Ok(());
        }
        let swap_s = self.instances[k].swap_tokens as f64 * self.cfg.policy.swap_s_per_token;
        self.out.swapped_tokens += self.instances[k].swap_tokens;
        self.instances[k].swap_tokens = 0;
        let step_s = self.cost.step_s(&batch) + swap_s;
        if !(step_s.is_finite() && (s_from_ns(now) + step_s) <= HORIZON_S) {
            let inst = &self.instances[k];
            return Err(Error::Stall {
                time_s: s_from_ns(now),
                running: inst.running.len(),
                waiting: inst.waiting.len(),
                reason: format!(
                    "an iteration of {step_s:e} s would run past the simulator's horizon of {HORIZON_S:e} s"
                ),
            });
        }
        let dur = ns_from_s(step_s).max(1);
        let inst = &mut self.instances[k];
        inst.busy = true;
        inst.busy_ns += dur;
        self.out.steps += 1;
        self.out.batch_sequences_sum += u64::from(batch.sequences);
        self.out.batch_tokens_sum += batch.tokens;
        if self.record {
            let inst = &self.instances[k];
            self.out.timeline.push(StepRecord {
                instance: k as u32,
                start_s: s_from_ns(now),
                end_s: s_from_ns(now + dur),
                sequences: batch.sequences,
                tokens: batch.tokens,
                sampled: batch.sampled,
                waiting: inst.waiting.len() as u32,
                kv_used_fraction: (1.0
                    - f64::from(inst.pool.free()) / f64::from(inst.pool.total().max(1)))
                    as f32,
            });
        }
        self.queue.push(now + dur, Event::StepDone(k as u32));
        Ok(())
    }

    fn complete(&mut self, r: usize, now: SimTime) {
        self.seqs[r].done = now;
        if let Some(next) = self.next_closed {
            if (next as usize) < self.specs.len() {
                self.queue.push(now, Event::Arrival(next));
                self.next_closed = Some(next + 1);
            }
        }
    }

    fn finish_step(&mut self, k: usize, now: SimTime) {
        let mut step = std::mem::take(&mut self.instances[k].step);
        let mut left = false;
        let sends = self
            .cfg
            .policy
            .disaggregation
            .filter(|d| k < d.prefill_instances as usize);
        // Decode instances receive whole prompts and never prefill one: nothing to cache.
        let decode_only = self
            .cfg
            .policy
            .disaggregation
            .is_some_and(|d| k >= d.prefill_instances as usize);
        let caches = self.cfg.policy.prefix_caching && !decode_only;
        for &(r, n, speculative) in &step {
            let r = r as usize;
            let known = self.known(r);
            let output = self.specs[r].output_tokens;
            let block_tokens = self.cfg.block_tokens;
            let s = &mut self.seqs[r];
            // Tokens this step yields for the sequence: one, or under speculative decoding the
            // accepted drafts plus the verifier's own token (on average `expected_tokens`).
            let yielded = if speculative {
                let e = self.cfg.speculative.map_or(1.0, |c| c.expected_tokens);
                s.credit += e;
                let m = (s.credit.floor() as u32).clamp(1, output - s.generated);
                s.credit -= f64::from(m);
                s.kv += m;
                m
            } else {
                s.kv += n;
                // A prefix computed here is cached for the group's later requests.
                if caches && s.prefix_ref.is_none() {
                    if let Some((g, tokens)) = cacheable(&self.specs[r], block_tokens) {
                        let inst = &mut self.instances[k];
                        if s.kv >= tokens && !inst.prefix.contains(g) {
                            let b = tokens / block_tokens;
                            inst.prefix.insert(g, b, tokens);
                            s.blocks -= b;
                            s.shared_blocks = b;
                            s.prefix_ref = Some(g);
                        }
                    }
                }
                if s.kv != known {
                    continue;
                }
                1
            };
            if s.first == UNSET {
                s.first = now;
            } else {
                // Tokens verified together arrive together; their gaps are spread evenly.
                let gap = (s_from_ns(now - s.last_token) / f64::from(yielded)) as f32;
                self.out
                    .itl_s
                    .extend(std::iter::repeat_n(gap, yielded as usize));
            }
            s.generated += yielded;
            s.last_token = now;
            if s.generated == output {
                self.release(k, r);
                self.complete(r, now);
                left = true;
            } else if let Some(d) = sends {
                // Prefill done: the prompt's KV leaves for the decode pool, holding its blocks
                // here until it has arrived.
                let t = d.transfer_latency_s + f64::from(s.kv) * d.transfer_s_per_token;
                let dur = ns_from_s(t);
                self.out.kv_transfers += 1;
                self.out.kv_transfer_s += s_from_ns(dur);
                s.done = UNSET - 1; // leaves the running set below, not finished
                self.instances[k].sending += 1;
                self.queue.push(now + dur, Event::Transferred(r as u32));
                left = true;
            }
        }
        if left {
            let seqs = &self.seqs;
            self.instances[k]
                .running
                .retain(|&r| seqs[r as usize].done == UNSET);
        }
        step.clear();
        self.instances[k].step = step;
        self.instances[k].busy = false;
    }

    /// A transferred request leaves its prefill instance and joins a decode instance.
    fn arrive_decoded(&mut self, r: usize) -> usize {
        let src = self.seqs[r].instance as usize;
        self.release(src, r);
        self.instances[src].sending -= 1;
        self.seqs[r].done = UNSET;
        let k = self.route(r, true);
        self.seqs[r].instance = k as u32;
        self.enqueue(k, r as u32, false);
        k
    }
}

fn affinity_in(group: u32, n: usize) -> usize {
    policy::affinity(group, n as u32) as usize
}

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

/// Run the engine over `specs` (sorted by arrival) with `cost` timing every iteration.
pub fn run(
    specs: &[RequestSpec],
    cost: &dyn CostModel,
    cfg: EngineConfig,
    mode: Loop,
) -> Result<Outcome> {
    run_recorded(specs, cost, cfg, mode, false)
}

/// As [`run`], keeping a [`StepRecord`] of every iteration in [`Outcome::timeline`] when
/// `record` is set (for `--trace-out`).
pub fn run_recorded(
    specs: &[RequestSpec],
    cost: &dyn CostModel,
    cfg: EngineConfig,
    mode: Loop,
    record: bool,
) -> Result<Outcome> {
    if cfg.instances == 0
        || cfg.max_batch == 0
        || cfg.max_batched_tokens == 0
        || cfg.block_tokens == 0
    {
        return Err(Error::arg(
            "engine settings",
            format!(
                "instances, max batch, token budget and block size must all be >= 1, found {cfg:?}"
            ),
        ));
    }
    if let Some(d) = cfg.policy.disaggregation {
        if d.prefill_instances == 0 || d.prefill_instances >= cfg.instances {
            return Err(Error::arg(
                "disaggregation",
                format!(
                    "expected 1 to {} prefill instances out of {}, found {}",
                    cfg.instances.saturating_sub(1),
                    cfg.instances,
                    d.prefill_instances
                ),
            ));
        }
        if !(d.transfer_s_per_token >= 0.0
            && d.transfer_s_per_token.is_finite()
            && d.transfer_latency_s >= 0.0
            && d.transfer_latency_s.is_finite())
        {
            return Err(Error::arg(
                "disaggregation",
                format!("expected finite, non-negative transfer costs, found {d:?}"),
            ));
        }
    }
    if !(cfg.policy.swap_s_per_token >= 0.0 && cfg.policy.swap_s_per_token.is_finite()) {
        return Err(Error::arg(
            "preemption",
            format!(
                "expected a finite, non-negative swap time per token, found {}",
                cfg.policy.swap_s_per_token
            ),
        ));
    }
    let blocks =
        u32::try_from(cfg.kv_tokens_per_instance / u64::from(cfg.block_tokens)).unwrap_or(u32::MAX);
    let pool = BlockPool::new(blocks, cfg.block_tokens);
    for (i, s) in specs.iter().enumerate() {
        if s.output_tokens == 0 || s.prompt_tokens == 0 {
            return Err(Error::arg(
                "workload",
                format!(
                    "request {i} has {} prompt and {} output tokens; both must be >= 1",
                    s.prompt_tokens, s.output_tokens
                ),
            ));
        }
        if !(s.arrival_s.is_finite() && (0.0..=HORIZON_S).contains(&s.arrival_s)) {
            return Err(Error::arg(
                "workload",
                format!(
                    "request {i} arrives at {:e} s; expected 0 to the simulator's horizon of {HORIZON_S:e} s (is the rate too low?)",
                    s.arrival_s
                ),
            ));
        }
        if mode == Loop::Open && i > 0 && s.arrival_s < specs[i - 1].arrival_s {
            return Err(Error::arg(
                "workload",
                format!("request {i} arrives before request {}", i - 1),
            ));
        }
        let peak = s.prompt_tokens + s.output_tokens - 1 + cfg.speculative.map_or(0, |x| x.gamma);
        if pool.blocks_for(peak) > blocks {
            return Err(Error::arg(
                "workload",
                format!(
                    "request {i} needs {peak} tokens of KV cache but one instance holds {} ({} blocks of {}); use more devices, a smaller model or precision, or on wafers --kv-spill",
                    u64::from(blocks) * u64::from(cfg.block_tokens),
                    blocks,
                    cfg.block_tokens
                ),
            ));
        }
    }
    let instances = (0..cfg.instances)
        .map(|_| Instance {
            running: Vec::new(),
            waiting: VecDeque::new(),
            waiting_tokens: 0,
            pool: pool.clone(),
            prefix: PrefixCache::default(),
            step: Vec::new(),
            swap_tokens: 0,
            sending: 0,
            busy: false,
            busy_ns: 0,
        })
        .collect();
    let seq0 = Seq {
        arrival: 0,
        kv: 0,
        generated: 0,
        blocks: 0,
        shared_blocks: 0,
        prefix_ref: None,
        swapped: false,
        first: UNSET,
        last_token: UNSET,
        done: UNSET,
        preemptions: 0,
        instance: 0,
        cached_prompt: 0,
        admitted: false,
        credit: 0.0,
    };
    let mut e = Engine {
        specs,
        cost,
        cfg,
        seqs: vec![seq0; specs.len()],
        instances,
        queue: EventQueue::default(),
        out: Outcome::default(),
        next_closed: None,
        record,
        turn: [0, 0],
    };
    match mode {
        Loop::Open => {
            if let Some(first) = specs.first() {
                e.queue.push(ns_from_s(first.arrival_s), Event::Arrival(0));
            }
        }
        Loop::Closed { concurrency } => {
            if concurrency == 0 {
                return Err(Error::arg(
                    "--concurrency",
                    "expected at least 1 request in flight",
                ));
            }
            let start = concurrency.min(specs.len() as u32);
            for i in 0..start {
                e.queue.push(0, Event::Arrival(i));
            }
            e.next_closed = Some(start);
        }
    }
    // Handle every event of one instant before starting iterations, so requests arriving
    // together (or issued on a completion) join the same iteration; then start idle instances
    // in index order.
    let mut touched: Vec<usize> = Vec::new();
    while let Some((now, first)) = e.queue.pop() {
        let mut ev = Some(first);
        while let Some(event) = ev.take() {
            match event {
                Event::Arrival(i) => {
                    let k = e.route(i as usize, false);
                    e.seqs[i as usize].instance = k as u32;
                    e.seqs[i as usize].arrival = now;
                    e.enqueue(k, i, false);
                    if mode == Loop::Open {
                        if let Some(next) = specs.get(i as usize + 1) {
                            e.queue
                                .push(ns_from_s(next.arrival_s), Event::Arrival(i + 1));
                        }
                    }
                    touched.push(k);
                }
                Event::StepDone(k) => {
                    e.finish_step(k as usize, now);
                    touched.push(k as usize);
                }
                Event::Transferred(r) => {
                    touched.push(e.seqs[r as usize].instance as usize);
                    touched.push(e.arrive_decoded(r as usize));
                }
            }
            if e.queue.peek_time() == Some(now) {
                ev = e.queue.pop().map(|(_, x)| x);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for &k in &touched {
            e.try_start(k, now)?;
        }
        touched.clear();
    }
    let mut out = e.out;
    out.requests = specs
        .iter()
        .zip(&e.seqs)
        .map(|(spec, s)| RequestRecord {
            arrival_s: s_from_ns(s.arrival),
            first_token_s: s_from_ns(s.first),
            completion_s: s_from_ns(s.done),
            prompt_tokens: spec.prompt_tokens,
            output_tokens: spec.output_tokens,
            preemptions: s.preemptions,
            instance: s.instance,
            cached_prompt_tokens: s.cached_prompt,
        })
        .collect();
    out.prefix_evictions = e.instances.iter().map(|i| i.prefix.evictions()).sum();
    out.busy_s = e.instances.iter().map(|i| s_from_ns(i.busy_ns)).collect();
    out.kv_peak_fraction = e
        .instances
        .iter()
        .map(|i| f64::from(i.pool.peak_used()) / f64::from(i.pool.total().max(1)))
        .fold(0.0, f64::max);
    out.end_s = e.seqs.iter().map(|s| s_from_ns(s.done)).fold(0.0, f64::max);
    if let Some(i) = e.seqs.iter().position(|s| s.done == UNSET) {
        return Err(Error::Stall {
            time_s: s_from_ns(e.queue.now()),
            running: e.instances.iter().map(|i| i.running.len()).sum(),
            waiting: e.instances.iter().map(|i| i.waiting.len()).sum(),
            reason: format!("request {i} never completed"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::ConstantCost;
    use approx::assert_relative_eq;

    const TEN_MS: ConstantCost = ConstantCost {
        per_step_s: 0.010,
        per_token_s: 0.0,
    };

    fn cfg(max_batch: u32, budget: u32, kv_tokens: u64) -> EngineConfig {
        EngineConfig {
            instances: 1,
            kv_tokens_per_instance: kv_tokens,
            max_batch,
            max_batched_tokens: budget,
            block_tokens: 16,
            speculative: None,
            policy: ServingPolicy::default(),
        }
    }

    fn req(arrival_s: f64, prompt: u32, output: u32) -> RequestSpec {
        RequestSpec::new(arrival_s, prompt, output)
    }

    #[test]
    fn lone_request_by_hand() {
        // Prefill in one 10 ms step yields token 1; four decode steps yield tokens 2-5.
        let out = run(
            &[req(0.0, 100, 5)],
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        let r = out.requests[0];
        assert_relative_eq!(r.first_token_s, 0.010, max_relative = 1e-9);
        assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
        assert_eq!(out.itl_s.len(), 4);
        assert!(out.itl_s.iter().all(|g| (g - 0.010).abs() < 1e-7));
        assert_eq!(out.steps, 5);
    }

    #[test]
    fn batch_limit_queues_the_second_request() {
        let out = run(
            &[req(0.0, 100, 5), req(0.0, 100, 5)],
            &TEN_MS,
            cfg(1, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        assert_relative_eq!(out.requests[1].first_token_s, 0.060, max_relative = 1e-9);
        assert_relative_eq!(out.requests[1].completion_s, 0.100, max_relative = 1e-9);
    }

    #[test]
    fn batched_requests_share_steps() {
        let out = run(
            &[req(0.0, 100, 5), req(0.0, 100, 5)],
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        for r in &out.requests {
            assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
        }
        assert_eq!(out.steps, 5);
        assert_eq!(out.batch_sequences_sum, 10);
    }

    #[test]
    fn chunked_prefill_spreads_a_long_prompt() {
        // 5000 tokens at 2048 per step: chunks of 2048, 2048, 904; the first token ends step 3.
        let out = run(
            &[req(0.0, 5000, 2)],
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        assert_relative_eq!(out.requests[0].first_token_s, 0.030, max_relative = 1e-9);
        assert_eq!(out.batch_tokens_sum, 5000 + 1);
    }

    #[test]
    fn kv_pressure_preempts_and_everything_still_completes() {
        // 4 requests needing up to 10 blocks each share 24 blocks of KV cache.
        let specs: Vec<_> = (0..4).map(|i| req(0.0, 60 + i, 100)).collect();
        let out = run(&specs, &TEN_MS, cfg(8, 2048, 24 * 16), Loop::Open).unwrap();
        assert!(out.requests.iter().map(|r| r.preemptions).sum::<u32>() > 0);
        for r in &out.requests {
            assert!(r.completion_s.is_finite() && r.first_token_s <= r.completion_s);
        }
        assert_eq!(out.itl_s.len(), 4 * 99);
    }

    #[test]
    fn request_larger_than_the_cache_is_refused_up_front() {
        let e = run(
            &[req(0.0, 1000, 100)],
            &TEN_MS,
            cfg(8, 2048, 512),
            Loop::Open,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("needs 1099 tokens of KV cache"),
            "{e}"
        );
    }

    #[test]
    fn closed_loop_issues_the_next_request_on_completion() {
        let specs = vec![req(0.0, 100, 5); 4];
        let out = run(
            &specs,
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Closed { concurrency: 2 },
        )
        .unwrap();
        assert_relative_eq!(out.requests[2].arrival_s, 0.050, max_relative = 1e-9);
        assert_relative_eq!(out.requests[3].completion_s, 0.100, max_relative = 1e-9);
    }

    #[test]
    fn requests_are_routed_round_robin() {
        let specs = vec![req(0.0, 10, 2); 6];
        let mut c = cfg(8, 2048, 10_000);
        c.instances = 3;
        let out = run(&specs, &TEN_MS, c, Loop::Open).unwrap();
        let inst: Vec<u32> = out.requests.iter().map(|r| r.instance).collect();
        assert_eq!(inst, vec![0, 1, 2, 0, 1, 2]);
    }
}

#[cfg(test)]
mod speculative_tests {
    use super::*;
    use crate::cost::ConstantCost;
    use approx::assert_relative_eq;

    /// One request under speculative decoding at 10 ms per iteration; returns its record and
    /// the inter-token gaps.
    fn serve(
        gamma: u32,
        expected_tokens: f64,
        prompt: u32,
        output: u32,
    ) -> (RequestRecord, Vec<f32>) {
        let cfg = EngineConfig {
            instances: 1,
            kv_tokens_per_instance: 10_000,
            max_batch: 8,
            max_batched_tokens: 2048,
            block_tokens: 16,
            speculative: Some(SpecConfig {
                gamma,
                expected_tokens,
            }),
            policy: ServingPolicy::default(),
        };
        let cost = ConstantCost {
            per_step_s: 0.010,
            per_token_s: 0.0,
        };
        let spec = RequestSpec::new(0.0, prompt, output);
        let out = run(&[spec], &cost, cfg, Loop::Open).unwrap();
        (out.requests[0], out.itl_s)
    }

    #[test]
    fn verification_steps_yield_the_expected_tokens() {
        // gamma 1 with every draft accepted: 2 tokens per verification step. Prefill yields token
        // 1 at 10 ms; the other 8 come 2 per step, done at 50 ms; gaps spread to 5 ms each.
        let (r, itl) = serve(1, 2.0, 100, 9);
        assert_relative_eq!(r.first_token_s, 0.010, max_relative = 1e-9);
        assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
        assert_eq!(itl.len(), 8);
        assert!(itl.iter().all(|g| (g - 0.005).abs() < 1e-7));
    }

    #[test]
    fn fractional_expectations_are_paid_out_exactly_on_average() {
        // E = 1.75: prefill yields token 1, then 4 verification steps pay out exactly 7 more.
        let (r, _) = serve(2, 1.75, 10, 8);
        assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use crate::cost::ConstantCost;
    use crate::workload::PromptPrefix;
    use approx::assert_relative_eq;

    /// 10 ms per iteration plus 0.1 ms per computed token.
    const COST: ConstantCost = ConstantCost {
        per_step_s: 0.010,
        per_token_s: 0.000_1,
    };

    fn cfg(instances: u32, kv_tokens: u64, policy: ServingPolicy) -> EngineConfig {
        EngineConfig {
            instances,
            kv_tokens_per_instance: kv_tokens,
            max_batch: 8,
            max_batched_tokens: 2048,
            block_tokens: 16,
            speculative: None,
            policy,
        }
    }

    fn with_prefix(mut r: RequestSpec, group: u32, tokens: u32) -> RequestSpec {
        r.prefix = Some(PromptPrefix { group, tokens });
        r
    }

    #[test]
    fn a_cached_prefix_skips_its_prefill() {
        // Both prompts are 100 tokens, the first 70 shared: 64 of them (4 whole blocks) cached.
        let specs = [
            with_prefix(RequestSpec::new(0.0, 100, 2), 7, 70),
            with_prefix(RequestSpec::new(1.0, 100, 2), 7, 70),
        ];
        let out = run(
            &specs,
            &COST,
            cfg(1, 10_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        let (a, b) = (out.requests[0], out.requests[1]);
        assert_eq!((a.cached_prompt_tokens, b.cached_prompt_tokens), (0, 64));
        // Prefill of 100 tokens: 10 + 10 ms; of the 36 left: 10 + 3.6 ms.
        assert_relative_eq!(a.first_token_s, 0.020, max_relative = 1e-6);
        assert_relative_eq!(b.first_token_s - b.arrival_s, 0.0136, max_relative = 1e-6);
        let off = ServingPolicy {
            prefix_caching: false,
            ..ServingPolicy::default()
        };
        let out = run(&specs, &COST, cfg(1, 10_000, off), Loop::Open).unwrap();
        assert_eq!(out.requests[1].cached_prompt_tokens, 0);
        assert_relative_eq!(out.requests[1].first_token_s, 1.020, max_relative = 1e-6);
    }

    #[test]
    fn unused_prefixes_are_evicted_for_room() {
        // 12 blocks: each request needs 7 (100 + 9 tokens) and leaves 4 cached; the third
        // group's request only fits once the first group's entry is evicted.
        let specs: Vec<_> = (0..3)
            .map(|g| with_prefix(RequestSpec::new(f64::from(g), 100, 10), g, 64))
            .collect();
        let out = run(
            &specs,
            &COST,
            cfg(1, 12 * 16, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        assert!(out.prefix_evictions >= 1, "{}", out.prefix_evictions);
        assert!(out.requests.iter().all(|r| r.completion_s.is_finite()));
    }

    #[test]
    fn disaggregated_prefill_hands_over_to_a_decode_instance() {
        let policy = ServingPolicy {
            disaggregation: Some(Disaggregation {
                prefill_instances: 1,
                transfer_s_per_token: 1e-5,
                transfer_latency_s: 0.001,
            }),
            ..ServingPolicy::default()
        };
        let out = run(
            &[RequestSpec::new(0.0, 100, 3)],
            &COST,
            cfg(2, 10_000, policy),
            Loop::Open,
        )
        .unwrap();
        let r = out.requests[0];
        // Prefill on instance 0: 10 + 10 ms. Transfer: 1 ms + 100 x 10 us = 2 ms. Two decode
        // steps on instance 1 of 10.1 ms each.
        assert_relative_eq!(r.first_token_s, 0.020, max_relative = 1e-6);
        assert_relative_eq!(
            r.completion_s,
            0.020 + 0.002 + 2.0 * 0.0101,
            max_relative = 1e-6
        );
        assert_eq!(r.instance, 1);
        assert_eq!(out.kv_transfers, 1);
        assert!(out.busy_s[0] > 0.0 && out.busy_s[1] > 0.0);
    }

    /// Four requests of 60-63 prompt and 100 output tokens at once, on one instance with room
    /// for 24 blocks of 16 tokens: all four prompts fit, only two whole requests do.
    fn kv_pressure() -> Vec<RequestSpec> {
        (0..4).map(|i| RequestSpec::new(0.0, 60 + i, 100)).collect()
    }

    fn under_kv_pressure(policy: ServingPolicy) -> Outcome {
        run(&kv_pressure(), &COST, cfg(1, 24 * 16, policy), Loop::Open).unwrap()
    }

    #[test]
    fn swapping_moves_kv_instead_of_recomputing_it() {
        let recompute = under_kv_pressure(ServingPolicy::default());
        let swap = |s_per_token: f64| {
            under_kv_pressure(ServingPolicy {
                preemption: PreemptionMode::Swap,
                swap_s_per_token: s_per_token,
                ..ServingPolicy::default()
            })
        };
        let fast = swap(1e-7);
        assert!(fast.swapped_tokens > 0);
        assert_eq!(recompute.swapped_tokens, 0);
        // Swapped sequences resume where they were: fewer tokens computed.
        assert!(fast.batch_tokens_sum < recompute.batch_tokens_sum);
        // A slower host link makes the same swaps cost more.
        let slow = swap(1e-3);
        assert_eq!(slow.swapped_tokens, fast.swapped_tokens);
        assert!(slow.end_s > fast.end_s);
    }

    #[test]
    fn reserving_whole_requests_admits_fewer_and_never_preempts() {
        // Each request needs 11 blocks to finish, so two fit whole at a time.
        let recompute = under_kv_pressure(ServingPolicy::default());
        let never = under_kv_pressure(ServingPolicy {
            preemption: PreemptionMode::Never,
            ..ServingPolicy::default()
        });
        assert!(recompute.requests.iter().any(|r| r.preemptions > 0));
        assert!(never.requests.iter().all(|r| r.preemptions == 0));
        // Two at a time: the last two wait for the first two to finish.
        let (a, c) = (never.requests[0], never.requests[2]);
        assert!(c.first_token_s >= a.completion_s, "{c:?} {a:?}");
        // Every token computed once.
        let tokens: u64 = kv_pressure()
            .iter()
            .map(|s| u64::from(s.prompt_tokens + s.output_tokens - 1))
            .sum();
        assert_eq!(never.batch_tokens_sum, tokens);
    }

    #[test]
    fn prefill_priority_trades_inter_token_gaps_for_first_tokens() {
        // A long decode is running when short prompts arrive one by one.
        let mut specs = vec![RequestSpec::new(0.0, 100, 200)];
        specs.extend((0..20).map(|i| RequestSpec::new(0.1 + 0.05 * f64::from(i), 1500, 2)));
        let decode = run(
            &specs,
            &COST,
            cfg(1, 100_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        let p = ServingPolicy {
            priority: Priority::Prefill,
            ..ServingPolicy::default()
        };
        let prefill = run(&specs, &COST, cfg(1, 100_000, p), Loop::Open).unwrap();
        let max_gap = |o: &Outcome| o.itl_s.iter().cloned().fold(0.0f32, f32::max);
        let ttft = |o: &Outcome| {
            o.requests[1..]
                .iter()
                .map(|r| r.first_token_s - r.arrival_s)
                .sum::<f64>()
        };
        assert!(ttft(&prefill) < ttft(&decode));
        assert!(max_gap(&prefill) > max_gap(&decode));
    }

    #[test]
    fn least_outstanding_routing_avoids_the_busy_instance() {
        // Request 0 is long; round-robin sends request 2 to its instance anyway.
        let specs = [
            RequestSpec::new(0.0, 10, 500),
            RequestSpec::new(0.0, 10, 2),
            RequestSpec::new(0.5, 10, 2),
        ];
        let rr = run(
            &specs,
            &COST,
            cfg(2, 10_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        assert_eq!(rr.requests[2].instance, 0);
        for routing in [Routing::LeastOutstanding, Routing::LeastKv] {
            let p = ServingPolicy {
                routing,
                ..ServingPolicy::default()
            };
            let out = run(&specs, &COST, cfg(2, 10_000, p), Loop::Open).unwrap();
            assert_eq!(out.requests[2].instance, 1, "{routing:?}");
        }
    }

    #[test]
    fn prefix_affinity_keeps_a_group_on_one_instance() {
        let specs: Vec<_> = (0..12)
            .map(|i| with_prefix(RequestSpec::new(f64::from(i), 200, 2), i % 3, 160))
            .collect();
        let p = ServingPolicy {
            routing: Routing::PrefixAffinity,
            ..ServingPolicy::default()
        };
        let out = run(&specs, &COST, cfg(4, 10_000, p), Loop::Open).unwrap();
        for g in 0..3 {
            let homes: Vec<u32> = out
                .requests
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % 3 == g)
                .map(|(_, r)| r.instance)
                .collect();
            assert!(homes.windows(2).all(|w| w[0] == w[1]), "{homes:?}");
        }
        let cached = |o: &Outcome| {
            o.requests
                .iter()
                .map(|r| r.cached_prompt_tokens)
                .sum::<u32>()
        };
        let rr = run(
            &specs,
            &COST,
            cfg(4, 10_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        // Affinity: every request after its group's first hits (9 x 160); round-robin spreads
        // each group over the instances and misses more.
        assert_eq!(cached(&out), 9 * 160);
        assert!(cached(&rr) < cached(&out));
    }
}
