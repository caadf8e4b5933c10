//! Prefix caching (vLLM's automatic prefix caching, SGLang's radix cache), reduced to one shared
//! prefix per group: the KV blocks of a group's prefix stay in an instance's pool after the
//! request that computed them, and later requests of the group start their prefill after it.
//! Only whole blocks are cached. The cache has no room of its own: its entries hold blocks of
//! the instance's KV pool, and an entry no running request uses is evicted, least recently used
//! first, when the pool runs short.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    blocks: u32,
    tokens: u32,
    refs: u32,
    last_use: u64,
}

/// The cached prefixes of one instance.
#[derive(Debug, Clone, Default)]
pub struct PrefixCache {
    entries: BTreeMap<u32, Entry>,
    tick: u64,
    evictions: u64,
}

impl PrefixCache {
    /// Take a reference to `group`'s cached prefix; its length in tokens, or `None` if absent.
    pub fn acquire(&mut self, group: u32) -> Option<u32> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(&group).map(|e| {
            e.refs += 1;
            e.last_use = tick;
            e.tokens
        })
    }

    /// Drop a reference taken by [`acquire`](Self::acquire) or [`insert`](Self::insert).
    pub fn release(&mut self, group: u32) {
        if let Some(e) = self.entries.get_mut(&group) {
            e.refs = e.refs.saturating_sub(1);
        }
    }

    /// Whether `group` is cached.
    pub fn contains(&self, group: u32) -> bool {
        self.entries.contains_key(&group)
    }

    /// Cache `blocks` blocks holding `tokens` tokens of `group`'s prefix, handed over by the
    /// request that computed them (which keeps one reference).
    pub fn insert(&mut self, group: u32, blocks: u32, tokens: u32) {
        self.tick += 1;
        self.entries.insert(
            group,
            Entry {
                blocks,
                tokens,
                refs: 1,
                last_use: self.tick,
            },
        );
    }

    /// Remove `group`'s entry if no request references it (to be replaced); its blocks.
    pub fn remove_unused(&mut self, group: u32) -> Option<u32> {
        match self.entries.get(&group) {
            Some(e) if e.refs == 0 => self.entries.remove(&group).map(|e| e.blocks),
            _ => None,
        }
    }

    /// Evict the least recently used entry that no request references; its blocks, or `None`
    /// if every entry is in use.
    pub fn evict_one(&mut self) -> Option<u32> {
        self.evict_entry().map(|(_, blocks, _)| blocks)
    }

    /// As [`evict_one`](Self::evict_one): the entry's group, blocks and tokens.
    pub fn evict_entry(&mut self) -> Option<(u32, u32, u32)> {
        let (&group, _) = self
            .entries
            .iter()
            .filter(|(_, e)| e.refs == 0)
            .min_by_key(|(&g, e)| (e.last_use, g))?;
        self.evictions += 1;
        self.entries
            .remove(&group)
            .map(|e| (group, e.blocks, e.tokens))
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_unreferenced_entry_goes_first() {
        let mut c = PrefixCache::default();
        c.insert(1, 4, 64);
        c.insert(2, 2, 32);
        c.insert(3, 1, 16);
        c.release(1);
        c.release(2);
        // 3 is referenced and cannot go; 1 was used before 2 but is used again now.
        assert_eq!(c.acquire(1), Some(64));
        c.release(1);
        assert_eq!(c.evict_one(), Some(2));
        assert_eq!(c.evict_one(), Some(4));
        assert_eq!(c.evict_one(), None);
        assert!(c.contains(3) && !c.contains(1));
        assert_eq!(c.evictions(), 2);
        assert_eq!(c.acquire(9), None);
    }
}
