//! The router: which instance a request joins, among the arrival pool (prefill instances under
//! disaggregation, every instance otherwise) or the decode pool, by the policy's [`Routing`].

use super::event_loop::Engine;
use super::policy::{self, Routing};

impl Engine<'_> {
    /// Instances of pool 0 (arrivals: prefill or colocated) or pool 1 (decode).
    fn pool(&self, decode: bool) -> std::ops::Range<usize> {
        let n = self.cfg.instances as usize;
        match (self.cfg.policy.disaggregation, decode) {
            (Some(d), false) => 0..d.prefill_instances as usize,
            (Some(d), true) => d.prefill_instances as usize..n,
            (None, _) => 0..n,
        }
    }

    /// Requests running or queued at instance `k`.
    fn outstanding(&self, k: usize) -> usize {
        let i = &self.instances[k];
        i.running.len() + i.waiting.len()
    }

    /// KV-cache tokens instance `k` holds or has queued requests for.
    fn kv_load(&self, k: usize) -> u64 {
        let i = &self.instances[k];
        u64::from(i.pool.total() - i.pool.free()) * u64::from(self.cfg.block_tokens)
            + i.waiting_tokens
    }

    /// Whether instance `k` keeps `group`'s cached prefix, in its KV cache or a tier below.
    fn holds(&self, k: usize, group: u32) -> bool {
        let i = &self.instances[k];
        i.prefix.contains(group) || i.tiers.iter().any(|t| t.contains(group))
    }

    /// The instance request `r` joins, among the arrival pool or the decode pool.
    pub(super) fn route(&mut self, r: usize, decode: bool) -> usize {
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
                match self.seqs[r].prefix {
                    Some(p) if !decode && !policy::imbalanced(hi, lo) => {
                        let home =
                            pool.start + policy::affinity(p.group, pool.len() as u32) as usize;
                        // A session's later turn goes where its context is kept, if anywhere.
                        let held = self.seqs[r]
                            .follows
                            .then(|| pool.clone().find(|&k| self.holds(k, p.group)));
                        held.flatten().unwrap_or(home)
                    }
                    _ => least(&|k| self.outstanding(k) as u64),
                }
            }
        }
    }
}
