//! The instance scheduler: what one instance's next iteration computes (vLLM-style, within a
//! token budget and a sequence limit). Running sequences go first, in admission order, each
//! taking one decode token (or a speculative verification) or its next prefill chunk; when KV
//! blocks run out the most recently admitted sequence is preempted. Then, unless that preempted
//! something, waiting requests are admitted first-come first-served while sequences, blocks and
//! budget last, starting after their group's cached prefix when one is held.

use super::event_loop::Engine;
use super::policy::PreemptionMode;
use crate::cost::Batch;
use crate::workload::PromptPrefix;

/// Tokens of a request's shared prefix that can be cached: whole blocks, and at least one
/// prompt token left to compute (its logits give the first output token).
pub(super) fn cacheable(
    prompt_tokens: u32,
    prefix: Option<PromptPrefix>,
    block_tokens: u32,
) -> Option<(u32, u32)> {
    let p = prefix?;
    let tokens = p.tokens.min(prompt_tokens.saturating_sub(1));
    let tokens = tokens / block_tokens * block_tokens;
    (tokens > 0).then_some((p.group, tokens))
}

impl Engine<'_> {
    /// Queue request `r` at instance `k`, at the head (a preempted request) or the tail.
    pub(super) fn enqueue(&mut self, k: usize, r: u32, front: bool) {
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
    pub(super) fn release(&mut self, k: usize, r: usize) {
        let s = &mut self.seqs[r];
        let inst = &mut self.instances[k];
        inst.pool.release(s.blocks);
        s.blocks = 0;
        s.shared_blocks = 0;
        if let Some(g) = s.prefix_ref.take() {
            inst.prefix.release(g);
        }
    }

    /// A session turn that completes on instance `k` with a next turn to come leaves its whole
    /// context (whole blocks of it) cached for that turn, in place of the shorter context it
    /// started from: the blocks it holds stay where they are. Kept only where prefixes are
    /// cached and the next turn can be routed (not on a decode-only instance).
    pub(super) fn keep_context(&mut self, k: usize, r: usize) {
        let s = self.seqs[r];
        let decode_only = self
            .cfg
            .policy
            .disaggregation
            .is_some_and(|d| k >= d.prefill_instances as usize);
        let (Some(_), Some(p)) = (s.next, s.prefix) else {
            return;
        };
        if !self.cfg.policy.prefix_caching || decode_only {
            return;
        }
        let bt = self.cfg.block_tokens;
        let tokens = s.kv / bt * bt;
        let blocks = tokens / bt;
        if blocks == 0 || blocks > s.blocks + s.shared_blocks {
            return;
        }
        self.release(k, r);
        let inst = &mut self.instances[k];
        if let Some(b) = inst.prefix.remove_unused(p.group) {
            inst.pool.release(b);
        }
        if inst.prefix.contains(p.group) {
            // Another request reads the older context: it stays, the longer one is dropped.
            return;
        }
        inst.pool.allocate(blocks);
        inst.prefix.insert(p.group, blocks, tokens);
        inst.prefix.release(p.group);
    }

    /// Free blocks by evicting unused cached prefixes until `want` are free (each moving down to
    /// the tiers below, if any); false if they cannot.
    #[inline]
    pub(super) fn make_room(&mut self, k: usize, want: u32) -> bool {
        self.instances[k].pool.free() >= want || self.evict_for(k, want)
    }

    /// [`Engine::make_room`] when fewer than `want` blocks are free.
    fn evict_for(&mut self, k: usize, want: u32) -> bool {
        let inst = &mut self.instances[k];
        while inst.pool.free() < want {
            match inst.prefix.evict_entry() {
                Some((group, blocks, tokens)) => {
                    inst.pool.release(blocks);
                    if inst.tiers.is_empty() {
                        continue;
                    }
                    let mut down = vec![(group, tokens)];
                    for tier in &mut inst.tiers {
                        down = down
                            .into_iter()
                            .flat_map(|(g, t)| tier.insert(g, t))
                            .collect();
                    }
                }
                None => return false,
            }
        }
        true
    }

    /// KV blocks sequence `r` on instance `k` still needs to reach its last token (with a
    /// speculative step's overshoot), beyond those it holds.
    fn blocks_to_finish(&self, k: usize, r: usize) -> u32 {
        let gamma = self.cfg.speculative.map_or(0, |s| s.gamma);
        let s = &self.seqs[r];
        let total = s.prompt + s.output + gamma;
        self.instances[k]
            .pool
            .blocks_for(total)
            .saturating_sub(s.blocks + s.shared_blocks)
    }

    /// Preempt instance `k`'s most recently admitted sequence: its KV cache is dropped (to be
    /// recomputed) or swapped to host memory, and it goes back to the head of the queue.
    fn preempt(&mut self, k: usize) {
        let v = self.instances[k]
            .running
            .pop()
            .expect("caller checked non-empty") as usize;
        self.release(k, v);
        self.preempted_now = true;
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

    /// Whether `n` tokens, the most of sequence `r`'s remaining prompt the budget left holds, may
    /// start it: always with chunked prefill; without, only if they are the whole of it. A
    /// prompt longer than the whole budget (which an engine without chunking refuses; here
    /// possible after a recompute preemption folds the generated tokens into the prompt) is
    /// still split, so the run ends.
    fn fits_whole(&self, r: usize, n: u32) -> bool {
        let whole = self.known(r) - self.seqs[r].kv;
        self.cfg.policy.chunked_prefill || n >= whole || whole > self.cfg.max_batched_tokens
    }

    /// Put `n` tokens of sequence `r` (or one speculative verification) in the batch.
    #[inline(always)]
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
    pub(super) fn form_batch(&mut self, k: usize, batch: &mut Batch, prefill_first: bool) -> bool {
        let mut budget = self.cfg.max_batched_tokens;
        let preempted = self.schedule_running(k, batch, prefill_first, &mut budget);
        if !preempted || self.instances[k].step.is_empty() {
            self.admit_waiting(k, batch, &mut budget);
        }
        !self.instances[k].step.is_empty()
    }

    /// The running sequences' work, in admission order, preempting from the back for KV room;
    /// true if anything was preempted.
    fn schedule_running(
        &mut self,
        k: usize,
        batch: &mut Batch,
        prefill_first: bool,
        budget: &mut u32,
    ) -> bool {
        let mut preempted = false;
        let mut i = 0;
        while i < self.instances[k].running.len() && *budget > 0 {
            let r = self.instances[k].running[i] as usize;
            let (n, speculative, decoding) = self.next_work(r, *budget);
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
            if want > 0 {
                // Most decoding tokens land in a block the sequence holds already.
                self.instances[k].pool.allocate(want);
                self.seqs[r].blocks += want;
            }
            self.push_work(k, r, n, speculative, batch);
            *budget = budget.saturating_sub(n);
            i += 1;
        }
        preempted
    }

    /// Admit waiting requests first-come first-served while sequences, blocks and budget last.
    fn admit_waiting(&mut self, k: usize, batch: &mut Batch, budget: &mut u32) {
        while self.instances[k].running.len() < self.cfg.max_batch as usize && *budget > 0 {
            let Some(&r) = self.instances[k].waiting.front() else {
                break;
            };
            if !self.admit(k, r as usize, batch, budget) {
                break;
            }
        }
    }

    /// A fresh request's cached prefix on instance `k`, acquired: (group, tokens it skips). The
    /// sequence starts after it.
    fn acquire_prefix(&mut self, k: usize, r: usize) -> Option<(u32, u32)> {
        if !self.cfg.policy.prefix_caching || self.seqs[r].kv != 0 {
            return None;
        }
        let s = &self.seqs[r];
        let (g, tokens) = cacheable(s.prompt, s.prefix, self.cfg.block_tokens)?;
        let cached = self.instances[k].prefix.acquire(g)?;
        if std::mem::take(&mut self.seqs[r].pinned) {
            // The reference its reload took becomes this one.
            self.instances[k].prefix.release(g);
        }
        let t = tokens.min(cached);
        self.seqs[r].kv = t;
        self.seqs[r].shared_blocks = t / self.cfg.block_tokens;
        Some((g, t))
    }

    /// Blocks that must be free to admit request `r`, whose first step takes `want`: just those,
    /// or without preemption room for the whole request beside what the running ones still need.
    fn admission_need(&self, k: usize, r: usize, want: u32) -> u32 {
        if self.cfg.policy.preemption != PreemptionMode::Never {
            return want;
        }
        let outstanding: u32 = self.instances[k]
            .running
            .iter()
            .map(|&q| self.blocks_to_finish(k, q as usize))
            .sum();
        want.max(self.blocks_to_finish(k, r)) + outstanding
    }

    /// Admit request `r`, at the head of instance `k`'s queue, and put its first work in the
    /// batch; false (and the queue unchanged) if its blocks cannot be found.
    fn admit(&mut self, k: usize, r: usize, batch: &mut Batch, budget: &mut u32) -> bool {
        if self.reload(k, r, self.queue.now()) {
            // Its prefix is in a tier below: it leaves the queue until loaded back.
            let known = u64::from(self.known(r));
            let inst = &mut self.instances[k];
            inst.waiting.pop_front();
            inst.waiting_tokens -= known;
            return true;
        }
        let hit = self.acquire_prefix(k, r);
        let (n, speculative, _) = self.next_work(r, *budget);
        let s = self.seqs[r];
        let want = self.instances[k]
            .pool
            .blocks_for(s.kv + n)
            .saturating_sub(s.shared_blocks);
        if !self.fits_whole(r, n) || !self.make_room(k, self.admission_need(k, r, want)) {
            if let Some((g, _)) = hit {
                self.instances[k].prefix.release(g);
                self.seqs[r].kv = 0;
                self.seqs[r].shared_blocks = 0;
            }
            return false;
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
        *budget = budget.saturating_sub(n);
        true
    }
}
