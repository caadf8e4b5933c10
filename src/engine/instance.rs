//! One instance's iterations: starting one (the scheduler forms the batch, the cost model prices
//! it) and ending one (tokens yielded, prefixes cached, requests completed or sent to a decode
//! instance), with the per-request and per-instance state they change.

use std::collections::VecDeque;

use super::event::{ns_from_s, s_from_ns, SimTime};
use super::event_loop::{Engine, Event};
use super::kv_cache::BlockPool;
use super::kv_tiers::TierStore;
use super::policy::Priority;
use super::prefix_cache::PrefixCache;
use super::scheduler::cacheable;
use super::{RequestRecord, StepRecord, HORIZON_S};
use crate::cost::Batch;
use crate::error::{Error, Result};
use crate::sketch::Sketch;
use crate::workload::PromptPrefix;

/// A request's state in the engine, in a slot of [`Engine::seqs`] from its arrival to its
/// completion (slots are reused: the engine's memory follows the requests in flight, and its
/// hot loops touch only theirs). Two cache lines, what every iteration touches in the first.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Seq {
    /// Tokens whose KV cache is computed (or read from a cached prefix).
    pub(super) kv: u32,
    /// Output tokens so far.
    pub(super) generated: u32,
    /// KV blocks this sequence owns.
    pub(super) blocks: u32,
    /// KV blocks it reads from a cached prefix of `prefix_ref`.
    pub(super) shared_blocks: u32,
    /// Prompt length, tokens.
    pub(super) prompt: u32,
    /// Output length, tokens.
    pub(super) output: u32,
    pub(super) last_token: SimTime,
    pub(super) done: SimTime,
    pub(super) first: SimTime,
    /// Speculative decoding: fractional tokens owed, so that a sequence yields on average exactly
    /// the expected tokens per verification step, deterministically.
    pub(super) credit: f64,
    /// The prefix group whose cache entry it references.
    pub(super) prefix_ref: Option<u32>,
    pub(super) instance: u32,
    pub(super) preemptions: u32,
    /// The request's index in the workload.
    pub(super) req: u32,
    pub(super) cached_prompt: u32,
    pub(super) arrival: SimTime,
    /// The shared prefix its prompt starts with, if any.
    pub(super) prefix: Option<PromptPrefix>,
    /// Its session's next turn (a workload index), sent when it completes.
    pub(super) next: Option<u32>,
    /// It holds a reference to its prefix, loaded back from a tier, until admitted.
    pub(super) pinned: bool,
    /// Its KV cache sits in host memory (swap preemption).
    pub(super) swapped: bool,
    pub(super) admitted: bool,
    /// A session's later turn (sent on its predecessor's completion).
    pub(super) follows: bool,
}

/// A time not reached yet (a request not started, not finished).
pub(super) const UNSET: SimTime = SimTime::MAX;

/// One instance's queues, cache and iteration in flight.
#[derive(Debug)]
pub(super) struct Instance {
    pub(super) running: Vec<u32>,
    pub(super) waiting: VecDeque<u32>,
    /// KV tokens the waiting requests will hold once admitted (for least-KV routing).
    pub(super) waiting_tokens: u64,
    pub(super) pool: BlockPool,
    pub(super) prefix: PrefixCache,
    /// The tiers below its KV cache, first (fastest) first.
    pub(super) tiers: Vec<TierStore>,
    /// The iteration in flight: (request, tokens computed, speculative decode).
    pub(super) step: Vec<(u32, u32, bool)>,
    /// Tokens to copy to or from host memory before the next iteration (swap preemption).
    pub(super) swap_tokens: u64,
    /// Requests whose KV is leaving for a decode instance (their blocks are still held).
    pub(super) sending: u32,
    pub(super) busy: bool,
    pub(super) busy_ns: SimTime,
}

/// The gaps of a run of `run.1` sequences whose last token came at `run.0` and whose next
/// came at `now`.
pub(super) fn add_gaps(itl: &mut Sketch, now: SimTime, run: (SimTime, u64)) {
    if run.1 > 0 {
        itl.add_each(s_from_ns(now - run.0), run.1);
    }
}

impl Engine<'_> {
    /// Tokens whose KV must be computed before the next output token: prompt plus outputs so far.
    pub(super) fn known(&self, r: usize) -> u32 {
        let s = &self.seqs[r];
        s.prompt + s.generated
    }

    /// Start instance `k`'s next iteration at `now` if it is idle and has work (its end is queued
    /// by [`Engine::launch`]); a stall if requests wait that can never be admitted, or the
    /// iteration would outlast the horizon.
    pub(super) fn try_start(&mut self, k: usize, now: SimTime) -> Result<()> {
        if self.instances[k].busy {
            return Ok(());
        }
        let gamma = self.cfg.speculative.map_or(0, |s| s.gamma);
        let mut batch = Batch::speculative(self.cost.window(), gamma);
        self.preempted_now = false;
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
                return Err(self.stall(
                    k,
                    now,
                    format!(
                        "no request could be admitted with {} of {} KV blocks free",
                        inst.pool.free(),
                        inst.pool.total()
                    ),
                ));
            }
            return Ok(());
        }
        let swap_s = self.instances[k].swap_tokens as f64 * self.cfg.policy.swap_s_per_token;
        self.out.swapped_tokens += self.instances[k].swap_tokens;
        self.instances[k].swap_tokens = 0;
        let times = self.cost.step_times(&batch);
        let step_s = times.total_s() + swap_s;
        if !(step_s.is_finite() && (s_from_ns(now) + step_s) <= HORIZON_S) {
            return Err(self.stall(
                k,
                now,
                format!(
                    "an iteration of {step_s:e} s would run past the simulator's horizon of {HORIZON_S:e} s"
                ),
            ));
        }
        let dur = ns_from_s(step_s).max(1);
        let inst = &mut self.instances[k];
        inst.busy = true;
        inst.busy_ns += dur;
        self.out.steps += 1;
        self.out.batch_sequences_sum += u64::from(batch.sequences);
        self.out.batch_tokens_sum += batch.tokens;
        if self.record {
            self.record_step(k, now, dur, &batch);
        }
        self.started.push((k as u32, dur, batch, times));
        Ok(())
    }

    /// Instance `k` cannot go on at `now`, for `reason`.
    fn stall(&self, k: usize, now: SimTime, reason: String) -> Error {
        let inst = &self.instances[k];
        Error::Stall {
            time_s: s_from_ns(now),
            running: inst.running.len(),
            waiting: inst.waiting.len(),
            reason,
        }
    }

    /// Keep the iteration starting now on instance `k` in the timeline.
    fn record_step(&mut self, k: usize, now: SimTime, dur: SimTime, batch: &Batch) {
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

    /// Request `r` finished at `now`: its record is kept and its slot freed; a closed loop
    /// issues the next request.
    fn complete(&mut self, r: usize, now: SimTime) {
        let s = &mut self.seqs[r];
        s.done = now;
        let record = RequestRecord {
            arrival_s: s_from_ns(s.arrival),
            first_token_s: s_from_ns(s.first),
            completion_s: s_from_ns(now),
            prompt_tokens: s.prompt,
            output_tokens: s.output,
            preemptions: s.preemptions,
            instance: s.instance,
            cached_prompt_tokens: s.cached_prompt,
        };
        let i = s.req;
        if self.keep_records {
            self.out.requests[i as usize] = record;
        }
        if let Some(f) = self.on_complete.as_mut() {
            f(i, &record);
        }
        self.out.end_s = self.out.end_s.max(record.completion_s);
        self.completed += 1;
        self.free_slots.push(r as u32);
        if let Some(next) = self.seqs[r].next {
            // The session's next turn, once the client has seen this one's last token, thought,
            // and sent it through the network and API stack.
            let spec = self
                .upcoming
                .get(next as usize)
                .expect("a session's turns are held until sent");
            let think = spec.session.map_or(0.0, |t| t.think_s) + self.cfg.policy.turn_gap_s;
            let at = now
                .saturating_add(ns_from_s(think))
                .max(ns_from_s(spec.arrival_s));
            self.queue.push(at, Event::Arrival(next));
        }
        if let Some(next) = self.next_closed {
            if (next as usize) < self.upcoming.total() {
                self.queue.push(now, Event::Arrival(next));
                self.next_closed = Some(next + 1);
            }
        }
    }

    /// Instance `k`'s iteration ended at `now`: every sequence in it takes its tokens; finished
    /// requests leave, and under disaggregation finished prefills leave for the decode pool.
    pub(super) fn finish_step(&mut self, k: usize, now: SimTime) {
        let mut step = std::mem::take(&mut self.instances[k].step);
        let mut left = false;
        let sends = self
            .cfg
            .policy
            .disaggregation
            .filter(|d| k < d.prefill_instances as usize);
        // Sequences whose last token came at the same time take the same gap: a run of them
        // (one token each) is added at once, as adding them one by one would.
        let mut run: (SimTime, u64) = (UNSET, 0);
        for &(r, n, speculative) in &step {
            let r = r as usize;
            let Some(yielded) = self.yielded(k, r, n, speculative) else {
                continue;
            };
            let s = &mut self.seqs[r];
            if s.first == UNSET {
                s.first = now;
                if self.last_arrival == Some(now) {
                    // A first token at the last arrival's instant does not count as waiting.
                    self.out.backlog_at_last_arrival -= 1;
                }
            } else if yielded == 1 && run.1 > 0 && s.last_token == run.0 {
                run.1 += 1;
            } else {
                add_gaps(&mut self.out.itl_s, now, run);
                run = (s.last_token, 0);
                if yielded == 1 {
                    run.1 = 1;
                } else {
                    // Tokens verified together arrive together; their gaps are spread evenly.
                    let gap = s_from_ns(now - s.last_token) / f64::from(yielded);
                    self.out.itl_s.add_n(gap, u64::from(yielded));
                }
            }
            s.generated += yielded;
            s.last_token = now;
            if s.generated == s.output {
                self.keep_context(k, r);
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
        add_gaps(&mut self.out.itl_s, now, run);
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

    /// Sequence `r` computed `n` tokens (or one speculative verification) on instance `k`: its
    /// KV grows, a prefix it completed is cached, and the output tokens it yields are returned
    /// (none for a prefill chunk short of the prompt's end).
    fn yielded(&mut self, k: usize, r: usize, n: u32, speculative: bool) -> Option<u32> {
        let known = self.known(r);
        let s = &mut self.seqs[r];
        let output = s.output;
        if speculative {
            // The accepted drafts plus the verifier's own token (on average `expected_tokens`).
            let e = self.cfg.speculative.map_or(1.0, |c| c.expected_tokens);
            s.credit += e;
            let m = (s.credit.floor() as u32).clamp(1, output - s.generated);
            s.credit -= f64::from(m);
            s.kv += m;
            return Some(m);
        }
        s.kv += n;
        self.cache_prefix(k, r);
        (self.seqs[r].kv == known).then_some(1)
    }

    /// A prefix sequence `r` has just computed is cached on instance `k` for its group's later
    /// requests (decode instances receive whole prompts and never prefill one: nothing to cache).
    fn cache_prefix(&mut self, k: usize, r: usize) {
        let decode_only = self
            .cfg
            .policy
            .disaggregation
            .is_some_and(|d| k >= d.prefill_instances as usize);
        let block_tokens = self.cfg.block_tokens;
        let s = &mut self.seqs[r];
        if !self.cfg.policy.prefix_caching || decode_only || s.prefix_ref.is_some() {
            return;
        }
        if let Some((g, tokens)) = cacheable(s.prompt, s.prefix, block_tokens) {
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

    /// A transferred request leaves its prefill instance and joins a decode instance.
    pub(super) fn arrive_decoded(&mut self, r: usize) -> usize {
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
