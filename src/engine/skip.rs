//! Iteration skipping: when an instance's batch is decode-only and nothing can change it for
//! the next k iterations (no arrival that could reach the instance, no completion, no
//! preemption, no KV-cache room running out, no admission, no prefix to cache), the k
//! iterations are run at once. Each is still priced by the cost model, on the sums the scheduler would have formed
//! (contexts grow by one token per iteration; under a sliding window each context stops
//! growing once it fills the window), so durations, token times and counters are exactly those
//! of stepping one iteration at a time; only the per-sequence walk of each iteration is saved.
//! As only the attention sums change, the cost model may price attention alone and add the
//! other operators' times kept from the first iteration
//! ([`crate::cost::CostModel::step_s_varied`]).
//!
//! The run then looks, from outside the instance, as it would have: the iterations skipped
//! over are applied at once, and the last one is left in flight as an ordinary iteration, ending
//! with its own event. Runs recorded for timelines, and speculative decoding (whose tokens per
//! iteration differ between sequences), step every iteration.

use super::event::{ns_from_s, s_from_ns, SimTime};
use super::event_loop::{Engine, Event};
use super::instance::{add_gaps, UNSET};
use super::policy::Routing;
use super::scheduler::cacheable;
use super::HORIZON_S;
use crate::cost::{Batch, StepTimes};

impl Engine<'_> {
    /// The earliest time at which something from outside instance `k` (an arrival routed to it,
    /// or, conservatively, any event of a closed loop or of disaggregated serving) may touch it;
    /// `others` is the earliest end of an iteration other instances start at this instant.
    fn quiet_until(&self, k: usize, others: SimTime) -> SimTime {
        if !self.open_loop
            || self.sessions
            || self.cfg.policy.disaggregation.is_some()
            || self.cfg.policy.kv_tiers[0].is_some()
        {
            // Completions (which issue a closed loop's next request or a session's next turn),
            // finished prefills (which send their KV) and reloads from a tier are events of
            // the queue.
            return self.queue.peek_time().unwrap_or(UNSET).min(others);
        }
        let Some(next) = self.next_arrival else {
            return UNSET;
        };
        let arrival = |i: usize| {
            self.upcoming
                .get(i)
                .map_or(UNSET, |s| ns_from_s(s.arrival_s))
        };
        let n = self.cfg.instances as usize;
        let turn = self.turn[0];
        match self.cfg.policy.routing {
            // Round robin: the next arrival to reach `k` is known in advance.
            Routing::RoundRobin if turn.checked_add(n as u32).is_some() => {
                let ahead = (k + n - turn as usize % n) % n;
                arrival(next as usize + ahead)
            }
            _ => arrival(next as usize),
        }
    }

    /// Iterations (counting the one just formed) instance `k` may run unchanged: its batch is
    /// every running sequence decoding one token, no prefix would be cached, and none completes
    /// before the last of them; `None` if skipping does not apply.
    ///
    /// A request left waiting stays waiting: the batch was full, or the token budget spent, or
    /// its admission failed for KV room (unless a preemption skipped admission: then the next
    /// iteration tries it), and the free blocks only shrink while the batch decodes
    /// (under `Never` preemption the room the running sequences still need shrinks by as much).
    /// A failed admission leaves nothing changed but cached prefixes evicted, which it did the
    /// first time, and a prefix's recency, whose order among entries repeating it keeps.
    fn skippable(&self, k: usize, batch: &Batch) -> Option<u32> {
        // More tokens than sequences: some sequence computes more than one (a prefill chunk).
        if !self.skip
            || self.record
            || self.cfg.speculative.is_some()
            || batch.tokens != u64::from(batch.sequences)
        {
            return None;
        }
        let inst = &self.instances[k];
        if inst.step.len() != inst.running.len() || self.preempted_now && !inst.waiting.is_empty() {
            return None;
        }
        let prefix_on = self.cfg.policy.prefix_caching
            && self
                .cfg
                .policy
                .disaggregation
                .is_none_or(|d| k < d.prefill_instances as usize);
        let mut most = u32::MAX;
        for &(r, n, speculative) in &inst.step {
            let s = &self.seqs[r as usize];
            if n != 1 || speculative || s.generated == 0 || s.kv + 1 != self.known(r as usize) {
                return None;
            }
            if prefix_on && s.prefix_ref.is_none() {
                if let Some((g, _)) = cacheable(s.prompt, s.prefix, self.cfg.block_tokens) {
                    if !inst.prefix.contains(g) {
                        return None;
                    }
                }
            }
            most = most.min(s.output - s.generated);
        }
        (most > 1).then_some(most)
    }

    /// KV blocks instance `k`'s batch needs beyond those it holds to run `m` iterations.
    fn extra_blocks(&self, k: usize, m: u32) -> u64 {
        let inst = &self.instances[k];
        inst.step
            .iter()
            .map(|&(r, _, _)| {
                let s = &self.seqs[r as usize];
                let need = inst.pool.blocks_for(s.kv + m);
                u64::from(need.saturating_sub(s.blocks + s.shared_blocks))
            })
            .sum()
    }

    /// The most iterations, up to `most`, whose KV blocks instance `k` has free.
    fn blocks_allow(&self, k: usize, most: u32) -> u32 {
        let free = u64::from(self.instances[k].pool.free());
        if self.extra_blocks(k, most) <= free {
            return most;
        }
        let (mut lo, mut hi) = (1, most);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.extra_blocks(k, mid) <= free {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Queue the ends of the iterations started at `now`, in the order they started, each after
    /// skipping what it can.
    pub(super) fn launch(&mut self, now: SimTime) {
        let started = std::mem::take(&mut self.started);
        // The two earliest ends: the earliest end among the others of any one of them.
        let (mut a, mut b) = (UNSET, UNSET);
        for &(_, dur, _, _) in &started {
            let end = now + dur;
            if end < a {
                (a, b) = (end, a);
            } else if end < b {
                b = end;
            }
        }
        for (k, dur, batch, times) in &started {
            let others = if now + dur == a { b } else { a };
            let end = self.skip_ahead(*k as usize, now, *dur, (batch, times), others);
            self.queue.push(end, Event::StepDone(*k));
        }
        self.started = started;
        self.started.clear();
    }

    /// Instance `k` formed `batch` at `now`, an iteration of `dur` whose operators took `times`:
    /// run the iterations after it that nothing can change at once (see the module docs), leaving
    /// the last in flight, and return when that one ends. `others`: see
    /// [`Engine::quiet_until`].
    fn skip_ahead(
        &mut self,
        k: usize,
        now: SimTime,
        dur: SimTime,
        (batch, times): (&Batch, &StepTimes),
        others: SimTime,
    ) -> SimTime {
        let first_end = now + dur;
        let Some(most) = self.skippable(k, batch) else {
            return first_end;
        };
        let most = self.blocks_allow(k, most);
        let limit = self.quiet_until(k, others);
        // Under a sliding window, iteration j reads min(kv + j, w) keys of a sequence: the
        // sequences still growing at j are those with w - kv >= j.
        let mut fill = std::mem::take(&mut self.scratch);
        fill.clear();
        if let Some(w) = batch.window {
            let steps = &self.instances[k].step;
            fill.extend(
                steps
                    .iter()
                    .map(|&(r, _, _)| w as i64 - i64::from(self.seqs[r as usize].kv)),
            );
            fill.sort_unstable();
        }
        let mut durs = std::mem::take(&mut self.durations);
        durs.clear();
        let base = times.around_attention();
        let b = f64::from(batch.sequences);
        let (mut cur, mut end, mut m, mut filled) = (*batch, first_end, 1u32, 0usize);
        while m < most && end < limit {
            let j = i64::from(m) + 1;
            cur.pairs_full += b;
            cur.kv_read_full += b;
            if cur.window.is_some() {
                while filled < fill.len() && fill[filled] < j {
                    filled += 1;
                }
                let growing = (fill.len() - filled) as f64;
                cur.pairs_window += growing;
                cur.kv_read_window += growing;
            }
            // Only the attention sums differ from the batch formed.
            let step_s = self.cost.step_s_varied(&base, &cur);
            if !(step_s.is_finite() && s_from_ns(end) + step_s <= HORIZON_S) {
                break; // the iteration is left to stepping, which reports the stall
            }
            let d = ns_from_s(step_s).max(1);
            durs.push(d);
            end += d;
            m += 1;
        }
        if m > 1 {
            self.apply_skipped(k, first_end, &durs, m);
        }
        self.scratch = fill;
        self.durations = durs;
        end
    }

    /// Apply iterations 1 to `m - 1` of instance `k`'s batch (the first ending at `first_end`,
    /// the later ones lasting `durs`), and form iteration `m`: tokens, gaps, KV blocks, counters.
    fn apply_skipped(&mut self, k: usize, first_end: SimTime, durs: &[SimTime], m: u32) {
        let skipped = m - 1;
        let mut extra = 0;
        let last_token = first_end + durs[..durs.len() - 1].iter().sum::<SimTime>();
        let step = std::mem::take(&mut self.instances[k].step);
        // The first iteration's gaps, a run of sequences sharing a last token at once.
        let mut run: (SimTime, u64) = (UNSET, 0);
        for &(r, _, _) in &step {
            let pool = &self.instances[k].pool;
            let s = &mut self.seqs[r as usize];
            if run.1 > 0 && s.last_token == run.0 {
                run.1 += 1;
            } else {
                add_gaps(&mut self.out.itl_s, first_end, run);
                run = (s.last_token, 1);
            }
            let need = pool.blocks_for(s.kv + m);
            let more = need.saturating_sub(s.blocks + s.shared_blocks);
            extra += u64::from(more);
            s.blocks += more;
            s.kv += skipped;
            s.generated += skipped;
            s.last_token = last_token;
        }
        add_gaps(&mut self.out.itl_s, first_end, run);
        let b = step.len();
        for &d in &durs[..durs.len() - 1] {
            self.out.itl_s.add_n(s_from_ns(d), b as u64);
        }
        let inst = &mut self.instances[k];
        inst.step = step;
        inst.pool.allocate(extra as u32);
        inst.busy_ns += durs.iter().sum::<SimTime>();
        self.out.steps += u64::from(skipped);
        self.out.skipped_steps += u64::from(skipped);
        self.out.batch_sequences_sum += u64::from(skipped) * b as u64;
        self.out.batch_tokens_sum += u64::from(skipped) * b as u64;
    }
}
