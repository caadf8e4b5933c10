//! The event loop: one run of the engine, from checking its inputs to the outcome. Events are
//! arrivals, iterations ending and KV transfers landing; every event of one instant is handled
//! before any idle instance starts its next iteration, so requests arriving together (or issued
//! on a completion) join the same iteration.

use std::collections::VecDeque;

use super::event::{ns_from_s, s_from_ns, EventQueue, SimTime};
use super::instance::{Instance, Seq, UNSET};
use super::kv_cache::BlockPool;
use super::kv_tiers::{TierStats, TierStore};
use super::prefix_cache::PrefixCache;
use super::upcoming::Upcoming;
use super::{EngineConfig, Loop, Observe, Outcome, RequestRecord, HORIZON_S};
use crate::cost::{Batch, CostModel, StepTimes};
use crate::error::{Error, Result};
use crate::workload::RequestSpec;

/// The record of a request that has not completed.
const UNFINISHED: RequestRecord = RequestRecord {
    arrival_s: f64::NAN,
    first_token_s: f64::NAN,
    completion_s: f64::NAN,
    prompt_tokens: 0,
    output_tokens: 0,
    preemptions: 0,
    instance: 0,
    cached_prompt_tokens: 0,
};

/// What happens at an instant.
pub(super) enum Event {
    /// Request `i` arrives.
    Arrival(u32),
    /// Instance `k`'s iteration ends.
    StepDone(u32),
    /// A request's KV cache reached the decode pool.
    Transferred(u32),
    /// A request's prefix was loaded back from a tier below the KV cache (slot).
    Reloaded(u32),
}

/// The state of one run: requests, instances and the event queue.
pub(super) struct Engine<'a> {
    /// Requests not arrived yet.
    pub(super) upcoming: Upcoming<'a>,
    pub(super) cost: &'a dyn CostModel,
    pub(super) cfg: EngineConfig,
    /// Requests in flight, in reusable slots (indexed by slot, not by request).
    pub(super) seqs: Vec<Seq>,
    /// Slots free for the next arrival.
    pub(super) free_slots: Vec<u32>,
    /// Requests completed.
    pub(super) completed: usize,
    pub(super) instances: Vec<Instance>,
    pub(super) queue: EventQueue<Event>,
    pub(super) out: Outcome,
    /// Called with each completed request's record.
    pub(super) on_complete: Option<super::OnComplete<'a>>,
    /// Keep every request's record in the outcome.
    pub(super) keep_records: bool,
    /// When the last request arrived, once it has.
    pub(super) last_arrival: Option<SimTime>,
    /// Requests arrived so far.
    pub(super) arrived: usize,
    /// The workload has session turns, sent as their predecessors complete.
    pub(super) sessions: bool,
    /// Closed loop: the next request to issue when one completes.
    pub(super) next_closed: Option<u32>,
    /// Keep a [`super::StepRecord`] per iteration.
    pub(super) record: bool,
    /// Round-robin counters of the first (prefill or only) pool and of the decode pool.
    pub(super) turn: [u32; 2],
    /// Run iterations that nothing can change at once ([`super::skip`]).
    pub(super) skip: bool,
    /// Requests arrive at their own times (an open loop).
    pub(super) open_loop: bool,
    /// Open loop: the request whose arrival is queued, if any.
    pub(super) next_arrival: Option<u32>,
    /// Reused buffers of iteration skipping.
    pub(super) scratch: Vec<i64>,
    pub(super) durations: Vec<SimTime>,
    /// Iterations started at the current instant: (instance, duration, batch, its operators'
    /// times).
    pub(super) started: Vec<(u32, SimTime, Batch, StepTimes)>,
    /// Forming the batch being formed preempted a sequence.
    pub(super) preempted_now: bool,
}

/// Settings the engine cannot run with: zero sizes, a disaggregation that leaves a pool empty,
/// negative or infinite transfer and swap costs.
pub(super) fn check_settings(cfg: &EngineConfig) -> Result<()> {
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
    if !(cfg.policy.turn_gap_s >= 0.0 && cfg.policy.turn_gap_s.is_finite()) {
        return Err(Error::arg(
            "sessions",
            format!(
                "expected a finite, non-negative gap between turns, found {} s",
                cfg.policy.turn_gap_s
            ),
        ));
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
    Ok(())
}

/// The instances' KV-cache block pool (every instance starts with the same one).
fn block_pool(cfg: &EngineConfig) -> BlockPool {
    let blocks =
        u32::try_from(cfg.kv_tokens_per_instance / u64::from(cfg.block_tokens)).unwrap_or(u32::MAX);
    BlockPool::new(blocks, cfg.block_tokens)
}

/// Requests the engine cannot serve: empty prompts or outputs, arrivals out of order or past the
/// horizon, a request whose KV cache outgrows one instance, session turns in a closed loop or
/// linked to a turn that is not a later one. True if the workload has sessions.
pub(super) fn check_requests(
    specs: impl Iterator<Item = RequestSpec>,
    cfg: &EngineConfig,
    mode: Loop,
) -> Result<bool> {
    let pool = block_pool(cfg);
    let blocks = pool.total();
    let mut previous = 0.0;
    let mut sessions = false;
    let mut links: Vec<(usize, u32)> = Vec::new();
    let mut follows: Vec<bool> = Vec::new();
    for (i, s) in specs.enumerate() {
        let turn = s.session;
        if let Some(t) = turn {
            sessions = true;
            if mode != Loop::Open {
                return Err(Error::arg(
                    "workload",
                    "session turns are sent as their predecessors complete: give an open loop (a rate starting sessions), not a concurrency",
                ));
            }
            if let Some(n) = t.next {
                links.push((i, n));
            }
            if !(t.think_s.is_finite() && (0.0..=HORIZON_S).contains(&t.think_s)) {
                return Err(Error::arg(
                    "workload",
                    format!(
                        "request {i}: a think time of {:e} s; expected 0 to the simulator's horizon of {HORIZON_S:e} s",
                        t.think_s
                    ),
                ));
            }
        }
        if sessions {
            follows.resize(i, false);
            follows.push(turn.is_some_and(|t| t.follows));
        }
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
        // A later turn's time is only the earliest it may be sent: it keeps no order.
        let later = turn.is_some_and(|t| t.follows);
        if mode == Loop::Open && i > 0 && s.arrival_s < previous && !later {
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
        if !later {
            previous = s.arrival_s;
        }
    }
    for (i, n) in links {
        if !follows.get(n as usize).copied().unwrap_or(false) {
            return Err(Error::arg(
                "workload",
                format!("request {i}: its session's next turn, request {n}, is not a later turn of the workload"),
            ));
        }
    }
    Ok(sessions)
}

impl<'a> Engine<'a> {
    /// A fresh run: every instance idle with an empty cache, no request arrived.
    pub(super) fn new(
        specs: Box<dyn Iterator<Item = RequestSpec> + 'a>,
        total: usize,
        cost: &'a dyn CostModel,
        cfg: EngineConfig,
        observe: Observe<'a>,
        skip: bool,
        sessions: bool,
    ) -> Engine<'a> {
        let pool = block_pool(&cfg);
        let instances = (0..cfg.instances)
            .map(|_| Instance {
                running: Vec::new(),
                waiting: VecDeque::new(),
                waiting_tokens: 0,
                pool: pool.clone(),
                prefix: PrefixCache::default(),
                tiers: cfg
                    .policy
                    .kv_tiers
                    .iter()
                    .flatten()
                    .map(|t| TierStore::new(*t))
                    .collect(),
                step: Vec::new(),
                swap_tokens: 0,
                sending: 0,
                busy: false,
                busy_ns: 0,
            })
            .collect();
        let out = Outcome {
            // Filled in as requests complete; a request that never does keeps NaN times.
            requests: if observe.records {
                vec![UNFINISHED; total]
            } else {
                Vec::new()
            },
            ..Outcome::default()
        };
        // Iteration skipping looks one arrival per instance ahead; session turns are taken in
        // the order their sessions reach them.
        let ahead = if sessions {
            total
        } else {
            cfg.instances as usize + 1
        };
        Engine {
            upcoming: Upcoming::new(specs, total, ahead),
            cost,
            cfg,
            seqs: Vec::new(),
            free_slots: Vec::new(),
            completed: 0,
            instances,
            queue: EventQueue::default(),
            out,
            on_complete: observe.on_complete,
            keep_records: observe.records,
            last_arrival: None,
            arrived: 0,
            sessions,
            next_closed: None,
            record: observe.timeline,
            turn: [0, 0],
            skip,
            open_loop: true,
            next_arrival: None,
            scratch: Vec::new(),
            durations: Vec::new(),
            started: Vec::new(),
            preempted_now: false,
        }
    }

    /// The first arrivals: the first request of an open loop (each arrival schedules the next),
    /// or one request per user of a closed loop at time zero.
    pub(super) fn start(&mut self, mode: Loop) -> Result<()> {
        match mode {
            Loop::Open => {
                if let Some(first) = self.upcoming.get(0) {
                    self.queue
                        .push(ns_from_s(first.arrival_s), Event::Arrival(0));
                    self.next_arrival = Some(0);
                }
            }
            Loop::Closed { concurrency } => {
                if concurrency == 0 {
                    return Err(Error::arg(
                        "--concurrency",
                        "expected at least 1 request in flight",
                    ));
                }
                let start = concurrency.min(self.upcoming.total() as u32);
                for i in 0..start {
                    self.queue.push(0, Event::Arrival(i));
                }
                self.next_closed = Some(start);
                self.open_loop = false;
            }
        }
        Ok(())
    }

    /// Handle events until none is left: every event of one instant first, then idle instances
    /// the instant touched start their next iteration, in index order.
    pub(super) fn run(&mut self, mode: Loop) -> Result<()> {
        let mut touched: Vec<usize> = Vec::new();
        while let Some((now, first)) = self.queue.pop() {
            let mut ev = Some(first);
            while let Some(event) = ev.take() {
                self.handle(event, now, mode, &mut touched);
                if self.queue.peek_time() == Some(now) {
                    ev = self.queue.pop().map(|(_, x)| x);
                }
            }
            touched.sort_unstable();
            touched.dedup();
            for &k in &touched {
                self.try_start(k, now)?;
            }
            self.launch(now);
            touched.clear();
        }
        Ok(())
    }

    /// One event at `now`; the instances it concerns are added to `touched`.
    fn handle(&mut self, event: Event, now: SimTime, mode: Loop, touched: &mut Vec<usize>) {
        match event {
            Event::Arrival(i) => {
                let r = self.admit_slot(i, now);
                self.arrived += 1;
                if self.arrived == self.upcoming.total() {
                    self.last_arrival = Some(now);
                    self.out.backlog_at_last_arrival = self
                        .seqs
                        .iter()
                        .filter(|s| s.done == UNSET && s.first == UNSET)
                        .count();
                }
                let k = self.route(r, false);
                self.seqs[r].instance = k as u32;
                self.enqueue(k, r as u32, false);
                // The open loop's next arrival (a session's later turns are sent on completions).
                if mode == Loop::Open && !self.seqs[r].follows {
                    self.next_arrival = None;
                    let next = self.upcoming.get(i as usize + 1);
                    if let Some(next) = next.filter(|n| !n.session.is_some_and(|t| t.follows)) {
                        self.queue
                            .push(ns_from_s(next.arrival_s), Event::Arrival(i + 1));
                        self.next_arrival = Some(i + 1);
                    }
                }
                touched.push(k);
            }
            Event::StepDone(k) => {
                self.finish_step(k as usize, now);
                touched.push(k as usize);
            }
            Event::Transferred(r) => {
                touched.push(self.seqs[r as usize].instance as usize);
                touched.push(self.arrive_decoded(r as usize));
            }
            Event::Reloaded(r) => touched.push(self.reloaded(r as usize)),
        }
    }

    /// A slot for request `i`, arriving at `now`: a free one or a new one.
    fn admit_slot(&mut self, i: u32, now: SimTime) -> usize {
        let spec = self.upcoming.take(i as usize);
        let seq = Seq {
            req: i,
            prompt: spec.prompt_tokens,
            output: spec.output_tokens,
            prefix: spec.prefix,
            arrival: now,
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
            next: spec.session.and_then(|t| t.next),
            pinned: false,
            follows: spec.session.is_some_and(|t| t.follows),
        };
        match self.free_slots.pop() {
            Some(r) => {
                self.seqs[r as usize] = seq;
                r as usize
            }
            None => {
                self.seqs.push(seq);
                self.seqs.len() - 1
            }
        }
    }

    /// What the run produced; a stall if any request never completed.
    pub(super) fn outcome(self) -> Result<Outcome> {
        let mut out = self.out;
        out.prefix_evictions = self.instances.iter().map(|i| i.prefix.evictions()).sum();
        let tiers = self.instances.first().map_or(0, |i| i.tiers.len());
        out.kv_tiers = vec![TierStats::default(); tiers];
        for inst in &self.instances {
            for (sum, tier) in out.kv_tiers.iter_mut().zip(&inst.tiers) {
                *sum += tier.stats;
            }
        }
        out.busy_s = self
            .instances
            .iter()
            .map(|i| s_from_ns(i.busy_ns))
            .collect();
        out.kv_peak_fraction = self
            .instances
            .iter()
            .map(|i| f64::from(i.pool.peak_used()) / f64::from(i.pool.total().max(1)))
            .fold(0.0, f64::max);
        if self.completed < self.upcoming.total() {
            // The first request arrived and not completed, or the first not arrived.
            let i = self
                .seqs
                .iter()
                .filter(|s| s.done == UNSET)
                .map(|s| s.req as usize)
                .min()
                .unwrap_or(self.completed);
            return Err(Error::Stall {
                time_s: s_from_ns(self.queue.now()),
                running: self.instances.iter().map(|i| i.running.len()).sum(),
                waiting: self.instances.iter().map(|i| i.waiting.len()).sum(),
                reason: format!("request {i} never completed"),
            });
        }
        Ok(out)
    }
}
