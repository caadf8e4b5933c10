//! KV-cache tiers below HBM or SRAM (host or Grace memory on GPUs, external memory on wafers):
//! a cached prefix evicted from an instance's KV cache (an idle session's context, least
//! recently used first) moves down to the first tier, and from a full tier, least recently used
//! first, to the next; past the last it is dropped. A request whose prefix sits in a tier, on
//! reaching the head of its queue, takes the blocks for it and loads it back over the tier's
//! link at the tier's time per token, one load at a time per link (loads of one instance queue
//! behind each other), while the instance goes on computing (as vLLM with LMCache and NVIDIA
//! Dynamo's KV block manager load at scheduling time, overlapped with compute); then it is
//! admitted as a cache hit.
//! Moving an entry down is written through without stalling the instance (its bytes are
//! counted, its time not); an entry lives in one tier at a time.

use std::collections::BTreeMap;

use serde::Serialize;

use super::event::{ns_from_s, s_from_ns, SimTime};
use super::event_loop::{Engine, Event};
use super::scheduler::cacheable;

/// Most tiers an instance has.
pub const MAX_TIERS: usize = 2;

/// One tier as an instance sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KvTier {
    /// KV-cache tokens the tier holds for one instance.
    pub capacity_tokens: u64,
    /// Time to move one token's KV cache between the tier and the instance, s.
    pub s_per_token: f64,
}

/// What one tier did over a run, summed over instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TierStats {
    /// Prefixes found in the tier and loaded back.
    pub hits: u64,
    /// Tokens of KV cache moved down into the tier.
    pub tokens_in: u64,
    /// Tokens of KV cache loaded back from the tier.
    pub tokens_out: u64,
    /// Time requests spent waiting for loads from the tier (queueing on its link included), s.
    pub load_s: f64,
    /// Entries dropped from the tier for room (to the next tier, or lost past the last).
    pub evictions: u64,
}

impl std::ops::AddAssign for TierStats {
    fn add_assign(&mut self, o: TierStats) {
        self.hits += o.hits;
        self.tokens_in += o.tokens_in;
        self.tokens_out += o.tokens_out;
        self.load_s += o.load_s;
        self.evictions += o.evictions;
    }
}

/// One tier's entries on one instance.
#[derive(Debug, Clone)]
pub(super) struct TierStore {
    tier: KvTier,
    used_tokens: u64,
    /// group -> (tokens, last use).
    entries: BTreeMap<u32, (u32, u64)>,
    tick: u64,
    /// When the tier's link is free for the next load.
    pub(super) link_free: SimTime,
    pub(super) stats: TierStats,
}

impl TierStore {
    pub(super) fn new(tier: KvTier) -> TierStore {
        TierStore {
            tier,
            used_tokens: 0,
            entries: BTreeMap::new(),
            tick: 0,
            link_free: 0,
            stats: TierStats::default(),
        }
    }

    pub(super) fn tier(&self) -> KvTier {
        self.tier
    }

    pub(super) fn contains(&self, group: u32) -> bool {
        self.entries.contains_key(&group)
    }

    /// Keep `tokens` of `group`'s prefix; the entries pushed out for room, least recently used
    /// first (nothing is kept if it is larger than the tier, and it is returned itself).
    pub(super) fn insert(&mut self, group: u32, tokens: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        if let Some((t, _)) = self.entries.remove(&group) {
            self.used_tokens -= u64::from(t);
        }
        if u64::from(tokens) > self.tier.capacity_tokens {
            return vec![(group, tokens)];
        }
        while self.used_tokens + u64::from(tokens) > self.tier.capacity_tokens {
            let (&g, &(t, _)) = self
                .entries
                .iter()
                .min_by_key(|(&g, &(_, used))| (used, g))
                .expect("used tokens come from entries");
            self.entries.remove(&g);
            self.used_tokens -= u64::from(t);
            self.stats.evictions += 1;
            out.push((g, t));
        }
        self.tick += 1;
        self.entries.insert(group, (tokens, self.tick));
        self.used_tokens += u64::from(tokens);
        self.stats.tokens_in += u64::from(tokens);
        out
    }

    /// Tokens of `group`'s entry, if held.
    pub(super) fn held(&self, group: u32) -> Option<u32> {
        self.entries.get(&group).map(|&(t, _)| t)
    }

    /// Take `group`'s entry out to load it back; its tokens.
    pub(super) fn take(&mut self, group: u32) -> Option<u32> {
        let (t, _) = self.entries.remove(&group)?;
        self.used_tokens -= u64::from(t);
        Some(t)
    }
}

impl Engine<'_> {
    /// Request `r`, at the head of instance `k`'s queue at `now`: if its prefix is in a tier
    /// below the cache (and not in the cache) and blocks can be found for it, the blocks are
    /// taken, the load starts and true is returned: the request leaves the queue and rejoins
    /// its head once loaded, the blocks held for it meanwhile. False otherwise.
    pub(super) fn reload(&mut self, k: usize, r: usize, now: SimTime) -> bool {
        let bt = self.cfg.block_tokens;
        let s = &self.seqs[r];
        if !self.cfg.policy.prefix_caching || self.instances[k].tiers.is_empty() || s.kv != 0 {
            return false;
        }
        let Some((group, tokens)) = cacheable(s.prompt, s.prefix, bt) else {
            return false;
        };
        let inst = &self.instances[k];
        if inst.prefix.contains(group) {
            return false;
        }
        let Some(t) = inst.tiers.iter().position(|x| x.contains(group)) else {
            return false;
        };
        let held = inst.tiers[t].held(group).expect("found above");
        let load = held.min(tokens) / bt * bt;
        let blocks = load / bt;
        if !self.make_room(k, blocks) || !self.instances[k].tiers[t].contains(group) {
            // No room (or making it pushed the entry out of the tier): the prompt is computed.
            return false;
        }
        let inst = &mut self.instances[k];
        inst.tiers[t].take(group);
        inst.pool.allocate(blocks);
        // The request's reference keeps the blocks until it is admitted.
        inst.prefix.insert(group, blocks, load);
        let tier = &mut inst.tiers[t];
        let start = now.max(tier.link_free);
        let end = start + ns_from_s(f64::from(load) * tier.tier().s_per_token);
        tier.link_free = end;
        tier.stats.hits += 1;
        tier.stats.tokens_out += u64::from(load);
        tier.stats.load_s += s_from_ns(end - now);
        self.seqs[r].pinned = true;
        self.queue.push(end, Event::Reloaded(r as u32));
        true
    }

    /// Request `r`'s prefix has been loaded back into its instance's cache: it rejoins the head
    /// of its queue. The instance.
    pub(super) fn reloaded(&mut self, r: usize) -> usize {
        let k = self.seqs[r].instance as usize;
        self.enqueue(k, r as u32, true);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_tier_pushes_out_its_least_recently_used_entries() {
        let mut t = TierStore::new(KvTier {
            capacity_tokens: 100,
            s_per_token: 1e-6,
        });
        assert!(t.insert(1, 40).is_empty());
        assert!(t.insert(2, 40).is_empty());
        assert_eq!(t.insert(3, 50), vec![(1, 40)]);
        assert_eq!(t.take(2), Some(40));
        assert_eq!(t.take(2), None);
        assert_eq!(t.insert(4, 500), vec![(4, 500)]);
        assert!(t.contains(3) && !t.contains(4));
        assert_eq!(t.stats.evictions, 1);
    }
}
