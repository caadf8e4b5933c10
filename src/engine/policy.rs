//! Serving policies: how requests are routed to instances, which work an iteration favours, what
//! happens to a sequence evicted for KV room, whether shared prompt prefixes are cached, and
//! whether prefill and decode run on separate pools of instances.

use serde::{Deserialize, Serialize};

use super::kv_tiers::{KvTier, MAX_TIERS};

/// How a request picks its instance among those of its pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// In turn, whatever each instance holds.
    #[default]
    RoundRobin,
    /// The instance with the fewest requests running or queued (ties: lowest index).
    LeastOutstanding,
    /// The instance with the fewest KV-cache tokens in use or queued for (ties: lowest index).
    LeastKv,
    /// Requests of one prefix group go to the same instance (a hash of the group), so their
    /// shared prefix is cached once; a session's later turn to the instance keeping its
    /// context, if one does; to the least outstanding when loads are out of balance (over 64
    /// requests apart and 1.5 times, SGLang's router thresholds) or without a prefix.
    PrefixAffinity,
}

/// Which work an iteration serves first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Running sequences (decodes and unfinished prefill chunks) first, then new requests within
    /// the token budget (vLLM V1 with chunked prefill): steady inter-token gaps.
    #[default]
    Decode,
    /// While requests wait, iterations admit and prefill them and running decodes pause (vLLM V0
    /// without chunked prefill): lower TTFT, longer inter-token gaps.
    Prefill,
}

/// What happens to a sequence preempted for KV room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PreemptionMode {
    /// Its KV cache is dropped and recomputed on readmission (vLLM's default).
    #[default]
    Recompute,
    /// Its KV cache is copied to host memory and back on readmission; each copy lengthens the
    /// instance's next iteration by the tokens moved times the host link's time per token.
    Swap,
    /// Never: a request is admitted only when KV room for its prompt and its whole output is
    /// free beside what the running requests still need to finish, so none is ever preempted
    /// (TensorRT-LLM's default capacity policy, GUARANTEED_NO_EVICT). The simulated server
    /// knows each output length; a real one reserves the request's maximum.
    Never,
}

/// Prefill and decode on separate instances (xPyD): after prefill yields the first token, the
/// prompt's KV cache moves to a decode instance over the interconnect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Disaggregation {
    /// Instances `0..prefill_instances` prefill; the rest decode.
    pub prefill_instances: u32,
    /// Time to move one token's KV cache between instances, s.
    pub transfer_s_per_token: f64,
    /// Fixed time of one transfer, s.
    pub transfer_latency_s: f64,
}

/// Everything the engine does beyond FCFS continuous batching on round-robin replicas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServingPolicy {
    /// Request routing.
    pub routing: Routing,
    /// Decode or prefill first.
    pub priority: Priority,
    /// Recompute or swap on preemption.
    pub preemption: PreemptionMode,
    /// Time to copy one token's KV cache to or from host memory, s (used by `Swap`).
    pub swap_s_per_token: f64,
    /// Keep shared prompt prefixes cached between requests.
    pub prefix_caching: bool,
    /// Split a prompt over iterations when the token budget does not hold it (vLLM V1's
    /// default). Off, a prompt is computed whole in one iteration and a waiting request whose
    /// prompt does not fit the budget left holds back the requests behind it until it does
    /// (TensorRT-LLM with `enable_chunked_context` false, its default).
    pub chunked_prefill: bool,
    /// Separate prefill and decode pools, if set.
    pub disaggregation: Option<Disaggregation>,
    /// Tiers below the KV cache that evicted prefixes move down to (none: they are dropped).
    pub kv_tiers: [Option<KvTier>; MAX_TIERS],
    /// Time between a session turn's last token leaving the engine and the client's next turn
    /// reaching it, beyond the client's think time: the network and API stack both ways, s.
    pub turn_gap_s: f64,
}

impl Default for ServingPolicy {
    /// Round-robin, decode first, recompute, prefix caching on (vLLM V1's default), colocated.
    fn default() -> Self {
        ServingPolicy {
            routing: Routing::RoundRobin,
            priority: Priority::Decode,
            preemption: PreemptionMode::Recompute,
            swap_s_per_token: 0.0,
            prefix_caching: true,
            chunked_prefill: true,
            disaggregation: None,
            kv_tiers: [None; MAX_TIERS],
            turn_gap_s: 0.0,
        }
    }
}

/// Load imbalance at which prefix-affinity routing gives way to least-outstanding, as in
/// SGLang's cache-aware router (defaults of its model gateway: `--balance-abs-threshold 64`,
/// `--balance-rel-threshold 1.5`): the most loaded instance has more than 64 requests beyond
/// the least loaded and more than 1.5 times its load.
pub fn imbalanced(max_load: usize, min_load: usize) -> bool {
    max_load > min_load + 64 && max_load as f64 > 1.5 * min_load as f64
}

/// A prefix group's instance under [`Routing::PrefixAffinity`]: a fixed 64-bit mix of the group
/// (SplitMix64's finaliser), so groups spread evenly whatever their numbering.
pub fn affinity(group: u32, instances: u32) -> u32 {
    let mut z = u64::from(group).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % u64::from(instances.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_is_stable_and_spreads() {
        assert_eq!(affinity(7, 4), affinity(7, 4));
        let mut hits = [0u32; 4];
        for g in 0..4000 {
            hits[affinity(g, 4) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (900..1100).contains(&h)), "{hits:?}");
    }

    #[test]
    fn imbalance_needs_both_thresholds() {
        assert!(!imbalanced(64, 0));
        assert!(imbalanced(65, 0));
        assert!(!imbalanced(200, 140)); // 60 apart
        assert!(imbalanced(300, 190)); // 110 apart and 1.58 times
        assert!(!imbalanced(300, 210)); // 90 apart but 1.43 times
    }
}
