//! What a user may set about serving a placed model: the serving engine's settings, a
//! prefill/decode split, speculative decoding.

use serde::Serialize;

use crate::cost::expected_tokens_per_step;
use crate::engine::{PreemptionMode, Priority, Routing};
use crate::error::{Error, Result};
use crate::profile::ModelProfile;

/// Serving-engine settings a user may change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServeSettings {
    /// Most sequences per iteration (vLLM `max_num_seqs`, default 256).
    pub max_batch: u32,
    /// Token budget per iteration: the chunked-prefill chunk (vLLM `max_num_batched_tokens`).
    pub max_batched_tokens: u32,
    /// Tokens per KV-cache block (vLLM default 16).
    pub block_tokens: u32,
    /// Let KV cache spill past fast memory into external memory (wafers), paying for the reads,
    /// instead of queueing requests until room frees up.
    pub kv_spill: bool,
    /// How requests are routed to replicas.
    pub routing: Routing,
    /// Decode or prefill first within an iteration.
    pub priority: Priority,
    /// Recompute or swap a preempted sequence's KV cache.
    pub preemption: PreemptionMode,
    /// Keep shared prompt prefixes cached (vLLM V1's default: on).
    pub prefix_caching: bool,
    /// Split prompts over iterations within the token budget (vLLM V1's default: on); off, each
    /// prompt is computed whole in one iteration, as TensorRT-LLM does by default.
    pub chunked_prefill: bool,
    /// Prefill and decode on separate replicas: (prefill replicas, decode replicas).
    pub disaggregate: Option<Split>,
    /// Move cached prefixes evicted from HBM or SRAM to the tier below (host or Grace memory,
    /// external memory) and load them back when needed, instead of dropping them.
    pub kv_offload: bool,
}

/// A disaggregated split of replicas, written `XpYd` (e.g. `1p3d`: one prefill replica, three
/// decode replicas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Split {
    /// Replicas that prefill.
    pub prefill: u32,
    /// Replicas that decode.
    pub decode: u32,
}

impl Split {
    /// Parse `XpYd` with X, Y >= 1.
    pub fn parse(field: &str, text: &str) -> Result<Split> {
        let bad = || {
            Error::arg(
                field,
                format!("expected XpYd with X, Y >= 1 (e.g. 1p3d: 1 prefill and 3 decode replicas), found \"{text}\""),
            )
        };
        let t = text.trim().to_ascii_lowercase();
        let (x, rest) = t.split_once('p').ok_or_else(bad)?;
        let y = rest.strip_suffix('d').ok_or_else(bad)?;
        let prefill: u32 = x.parse().map_err(|_| bad())?;
        let decode: u32 = y.parse().map_err(|_| bad())?;
        if prefill == 0 || decode == 0 {
            return Err(bad());
        }
        let max = crate::limits::MAX_DEVICES;
        crate::limits::check_count(field, u64::from(prefill) + u64::from(decode), max)?;
        Ok(Split { prefill, decode })
    }

    /// Replicas in all.
    pub fn replicas(&self) -> u32 {
        self.prefill + self.decode
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}p{}d", self.prefill, self.decode)
    }
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            max_batch: 256,
            max_batched_tokens: 2048,
            block_tokens: 16,
            kv_spill: false,
            routing: Routing::RoundRobin,
            priority: Priority::Decode,
            preemption: PreemptionMode::Recompute,
            prefix_caching: true,
            chunked_prefill: true,
            disaggregate: None,
            kv_offload: false,
        }
    }
}

/// Speculative decoding: a draft model proposing `gamma` tokens, each accepted with
/// probability `alpha`.
#[derive(Debug, Clone)]
pub struct Speculation {
    /// The draft model, run on the target's devices.
    pub draft: ModelProfile,
    /// Draft tokens per verification step.
    pub gamma: u32,
    /// Probability that the target accepts one draft token, in [0, 1].
    pub alpha: f64,
}

impl Speculation {
    /// Load the draft profile by shipped name or path (target overrides do not apply to it).
    pub fn load(draft: &str, gamma: u32, alpha: f64) -> Result<Speculation> {
        Ok(Speculation {
            draft: crate::profile::load_model(draft, &[])?,
            gamma,
            alpha,
        })
    }

    /// Expected tokens per verification step.
    pub fn expected_tokens(&self) -> f64 {
        expected_tokens_per_step(self.gamma, self.alpha)
    }
}
