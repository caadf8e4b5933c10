//! The serving fields of a scenario (`serve.*` in a sweep spec, the layout and engine flags of
//! `simulate`): parallelism, speculative decoding and the serving engine's settings.

use serde::{Deserialize, Serialize};

use crate::engine::{PreemptionMode, Priority, Routing};
use crate::error::{Error, Result};
use crate::limits::{check_count, MAX_BATCH, MAX_DEVICES, MAX_TOKENS};
use crate::placement::{Objective, ParallelRequest};
use crate::profile::{load_hardware, load_model, Override};
use crate::system::{ServeSettings, Speculation, Split, System};

/// Parallelism, speculative decoding and serving-engine settings (`serve.*` in a sweep spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSpec {
    /// Tensor-parallel degree per replica [default: the fewest GPUs that hold the model].
    pub tp: Option<u32>,
    /// Attention data parallelism over the `tp` GPUs, experts spread over them (MoE models on
    /// GPUs) [default: false].
    #[serde(default)]
    pub attention_dp: bool,
    /// Pipeline stages per replica [default: the fewest devices that hold the model].
    pub pp: Option<u32>,
    /// Replicas [default: as many as fit].
    pub replicas: Option<u32>,
    /// Most tokens (prompt plus output) one sequence may hold [default: the model's context
    /// window, or the most that fits when the window does not].
    pub max_context: Option<u64>,
    /// What an automatic layout maximises: `per-user-speed` or `throughput` [default:
    /// per-user speed on wafers, throughput on GPUs].
    pub objective: Option<Objective>,
    /// Speculative decoding: draft model, shipped name or TOML file.
    pub draft: Option<String>,
    /// Speculative decoding: draft tokens per verification step.
    #[serde(default = "default_gamma")]
    pub gamma: u32,
    /// Speculative decoding: probability that the target accepts one draft token.
    pub alpha: Option<f64>,
    /// Most sequences per iteration.
    #[serde(default = "default_max_batch")]
    pub max_batch: u32,
    /// Token budget per iteration (the chunked-prefill chunk).
    #[serde(default = "default_max_batched_tokens")]
    pub max_batched_tokens: u32,
    /// Tokens per KV-cache block.
    #[serde(default = "default_block_tokens")]
    pub block_tokens: u32,
    /// Wafers: let KV cache spill to external memory.
    #[serde(default)]
    pub kv_spill: bool,
    /// Move cached prefixes (idle sessions' contexts) evicted from HBM or SRAM to host or
    /// Grace memory (GPUs) or external memory (wafers), and load them back when needed.
    #[serde(default)]
    pub kv_offload: bool,
    /// Request routing across replicas.
    #[serde(default)]
    pub routing: Routing,
    /// Decode-first or prefill-first iterations.
    #[serde(default)]
    pub priority: Priority,
    /// What preemption does to a sequence's KV cache: recompute or swap.
    #[serde(default)]
    pub preemption: PreemptionMode,
    /// Cache shared prompt prefixes between requests.
    #[serde(default = "default_prefix_caching")]
    pub prefix_caching: bool,
    /// Split prompts over iterations within the token budget (off: each prompt whole in one
    /// iteration, TensorRT-LLM's default).
    #[serde(default = "default_chunked_prefill")]
    pub chunked_prefill: bool,
    /// Disaggregated prefill and decode replicas, `XpYd` (e.g. `1p3d`).
    pub disaggregate: Option<String>,
}

/// Field names of [`ServeSpec`], for suggestions on misspelt paths.
pub const SERVE_FIELDS: &[&str] = &[
    "tp",
    "attention_dp",
    "pp",
    "replicas",
    "max_context",
    "objective",
    "draft",
    "gamma",
    "alpha",
    "max_batch",
    "max_batched_tokens",
    "block_tokens",
    "kv_spill",
    "kv_offload",
    "routing",
    "priority",
    "preemption",
    "prefix_caching",
    "chunked_prefill",
    "disaggregate",
];

fn default_prefix_caching() -> bool {
    ServeSettings::default().prefix_caching
}

fn default_chunked_prefill() -> bool {
    ServeSettings::default().chunked_prefill
}

fn default_gamma() -> u32 {
    4
}
fn default_max_batch() -> u32 {
    ServeSettings::default().max_batch
}
fn default_max_batched_tokens() -> u32 {
    ServeSettings::default().max_batched_tokens
}
fn default_block_tokens() -> u32 {
    ServeSettings::default().block_tokens
}

impl Default for ServeSpec {
    fn default() -> Self {
        ServeSpec {
            tp: None,
            attention_dp: false,
            pp: None,
            replicas: None,
            max_context: None,
            objective: None,
            draft: None,
            gamma: default_gamma(),
            alpha: None,
            max_batch: default_max_batch(),
            max_batched_tokens: default_max_batched_tokens(),
            block_tokens: default_block_tokens(),
            kv_spill: false,
            kv_offload: false,
            routing: Routing::default(),
            priority: Priority::default(),
            preemption: PreemptionMode::default(),
            prefix_caching: default_prefix_caching(),
            chunked_prefill: default_chunked_prefill(),
            disaggregate: None,
        }
    }
}

impl ServeSpec {
    /// The disaggregated split, if any.
    pub fn split(&self) -> Result<Option<Split>> {
        self.disaggregate
            .as_deref()
            .map(|t| Split::parse("disaggregate (--disaggregate)", t))
            .transpose()
    }

    /// Engine settings.
    pub fn settings(&self) -> Result<ServeSettings> {
        check_count("max_batch (--max-batch)", self.max_batch.into(), MAX_BATCH)?;
        check_count(
            "max_batched_tokens (--max-batched-tokens)",
            self.max_batched_tokens.into(),
            MAX_TOKENS,
        )?;
        check_count(
            "block_tokens (--block-tokens)",
            self.block_tokens.into(),
            MAX_TOKENS,
        )?;
        Ok(ServeSettings {
            max_batch: self.max_batch,
            max_batched_tokens: self.max_batched_tokens,
            block_tokens: self.block_tokens,
            kv_spill: self.kv_spill,
            kv_offload: self.kv_offload,
            routing: self.routing,
            priority: self.priority,
            preemption: self.preemption,
            prefix_caching: self.prefix_caching,
            chunked_prefill: self.chunked_prefill,
            disaggregate: self.split()?,
        })
    }

    /// Place the model on the machine (with its draft, if any).
    pub fn system(&self, hardware: &str, model: &str, overrides: &[Override]) -> Result<System> {
        for (what, n) in [
            ("tp (--tp)", self.tp),
            ("pp (--pp)", self.pp),
            ("replicas (--replicas)", self.replicas),
        ] {
            if let Some(n) = n {
                check_count(what, n.into(), MAX_DEVICES)?;
            }
        }
        // Before the engine settings are needed, so a bad one fails before loading profiles.
        self.settings()?;
        let hw = load_hardware(hardware, overrides)?;
        let target = load_model(model, overrides)?;
        let speculation = match (&self.draft, self.alpha) {
            (Some(d), Some(alpha)) => Some(Speculation::load(d, self.gamma, alpha)?),
            (Some(_), None) => {
                return Err(Error::arg(
                    "alpha",
                    "speculative decoding with a draft needs its acceptance rate alpha",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::arg("draft", "alpha is given but no draft model"))
            }
            (None, None) => None,
        };
        // A split fixes the replica count (the engine checks that a given count matches).
        let split = self.split()?.filter(|_| self.replicas.is_none());
        System::with_speculation(
            hw,
            target,
            speculation,
            ParallelRequest {
                tp: self.tp,
                pp: self.pp,
                replicas: self.replicas.or(split.map(|s| s.replicas())),
                attention_dp: self.attention_dp,
                max_context: self.max_context,
                objective: self.objective,
            },
        )
        .map_err(|e| match split {
            Some(s) => Error::arg(
                "disaggregate (--disaggregate)",
                format!("{s} asks for {} replicas: {e}", s.replicas()),
            ),
            None => e,
        })
    }
}
