//! Model profiles (`models/*.toml`): the architecture of one transformer, dense or MoE, and the
//! numeric formats it is served in; plus the quantities derived from it (parameter counts, KV-cache
//! bytes per token, attention FLOPs per query-key pair).
//!
//! Ignored on purpose: biases, norms and rotary tables (well under 0.1% of parameters), and the
//! multi-token-prediction modules of DeepSeek-style models (counted by their speculative use, not
//! as part of the model).

use serde::{Deserialize, Serialize};

use super::precision::Precision;
use super::validate::range::{MODEL_DIMENSION, MODEL_TOKENS};
use super::validate::Checker;
use crate::error::Problem;

/// A model profile as written in TOML.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProfile {
    /// Short identifier, equal to the file stem (e.g. `llama-3.1-8b`).
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// True for undisclosed models whose architecture is an assumption stated in the file.
    pub hypothesis: bool,
    /// Layer stack and widths.
    pub architecture: Architecture,
    /// Attention shape.
    pub attention: Attention,
    /// Mixture-of-experts layers; absent for dense models.
    pub moe: Option<Moe>,
    /// Numeric formats served.
    pub precision: Precisions,
    /// Published parameter counts, used to check the architecture (absent for hypotheses).
    pub published: Option<PublishedCounts>,
}

/// Layer stack and widths.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Transformer blocks.
    pub layers: u32,
    /// Model (residual stream) width.
    pub hidden_size: u64,
    /// Width of the dense feed-forward layers (required where any layer is dense).
    pub intermediate_size: Option<u64>,
    /// True for gated MLPs (SwiGLU: gate, up and down matrices); false for two-matrix MLPs.
    pub gated_mlp: bool,
    /// Vocabulary size.
    pub vocab_size: u64,
    /// True when the LM head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Longest context the model accepts, tokens (prompt + output).
    pub context_window_tokens: u64,
}

/// Attention mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKind {
    /// Multi-head or grouped-query attention: K and V cached per KV head.
    Gqa,
    /// Multi-head latent attention (DeepSeek-V2/V3): one compressed latent cached per token.
    Mla,
}

/// Attention shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attention {
    /// `gqa` (covers MHA when kv_heads = heads) or `mla`.
    pub kind: AttentionKind,
    /// Query heads.
    pub heads: u64,
    /// Key/value heads (GQA); for MLA, set equal to `heads`.
    pub kv_heads: u64,
    /// Width of one head (for MLA: the non-rotary query/key part, also the value width).
    pub head_dim: u64,
    /// Sliding-window length for the layers that use one, tokens.
    pub sliding_window_tokens: Option<u64>,
    /// Fraction of layers using the sliding window (e.g. 0.5 when they alternate).
    pub sliding_window_layer_fraction: Option<f64>,
    /// MLA: rank of the compressed KV latent.
    pub kv_lora_rank: Option<u64>,
    /// MLA: rank of the compressed query.
    pub q_lora_rank: Option<u64>,
    /// MLA: width of the decoupled rotary key shared by all heads.
    pub rope_head_dim: Option<u64>,
}

/// Mixture-of-experts layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moe {
    /// Routed experts per MoE layer.
    pub experts: u64,
    /// Routed experts each token activates (top-k).
    pub active_experts: u64,
    /// Width of one routed expert's feed-forward layer.
    pub expert_intermediate_size: u64,
    /// Always-active shared experts per MoE layer.
    pub shared_experts: u64,
    /// Width of one shared expert (required when shared_experts > 0).
    pub shared_expert_intermediate_size: Option<u64>,
    /// Leading layers that are dense rather than MoE (DeepSeek-V3: 3).
    pub first_dense_layers: u32,
    /// After the leading dense layers, every n-th layer is MoE and the rest dense (1 = all MoE;
    /// Llama 4 Maverick: 2).
    pub layer_interval: u32,
    /// Coefficient of variation (standard deviation over mean) of the tokens a routed expert
    /// receives in one layer and iteration, as measured on served traffic; absent: tokens
    /// spread evenly over the experts. Under expert parallelism the busiest GPU sets the step
    /// (see the GPU cost model).
    #[serde(default)]
    pub expert_load_cv: Option<f64>,
}

/// Numeric formats the model is served in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precisions {
    /// Weights of attention, dense MLP, embeddings and LM head.
    pub weights: Precision,
    /// Routed- and shared-expert weights, when they differ from `weights` (gpt-oss: mxfp4).
    pub expert_weights: Option<Precision>,
    /// Activations (sets the GEMM rate together with the weight format).
    pub activations: Precision,
    /// KV cache entries.
    pub kv_cache: Precision,
}

/// Published parameter counts, for checking the architecture fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedCounts {
    /// Total parameters as published (embeddings included).
    pub total_params: f64,
    /// Parameters active per token as published (MoE), or equal to total.
    pub active_params: f64,
    /// False when the publisher's active count leaves out the input embedding (a table lookup,
    /// not a matrix product), as the gpt-oss model card does; absent means it is included.
    pub active_counts_embedding: Option<bool>,
}

/// Quantities derived once from a validated profile; what the cost model consumes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDims {
    /// Attention projection parameters per layer.
    pub attn_params_per_layer: f64,
    /// Dense MLP parameters per dense layer.
    pub dense_mlp_params_per_layer: f64,
    /// Parameters of one routed expert.
    pub expert_params: f64,
    /// Parameters of all shared experts of one MoE layer.
    pub shared_expert_params_per_layer: f64,
    /// Router parameters per MoE layer.
    pub router_params_per_layer: f64,
    /// Dense layers.
    pub dense_layers: u32,
    /// MoE layers.
    pub moe_layers: u32,
    /// Input embedding parameters.
    pub embedding_params: f64,
    /// LM head parameters (read every step even when tied).
    pub lm_head_params: f64,
    /// KV-cache elements stored per token per layer.
    pub kv_elements_per_token_per_layer: f64,
    /// Attention FLOPs per (query, key) pair per layer (scores plus weighted values).
    pub attn_flops_per_pair_per_layer: f64,
    /// Total parameters.
    pub total_params: f64,
    /// Parameters active per token.
    pub active_params: f64,
}

impl ModelProfile {
    /// Every problem in the profile, with field paths.
    pub fn validate(&self) -> Vec<Problem> {
        let mut c = Checker::default();
        c.non_empty("name", &self.name);
        let a = &self.architecture;
        c.count("architecture.layers", a.layers.into(), MODEL_DIMENSION);
        c.count("architecture.hidden_size", a.hidden_size, MODEL_DIMENSION);
        c.count("architecture.vocab_size", a.vocab_size, MODEL_TOKENS);
        let window = a.context_window_tokens;
        c.count("architecture.context_window_tokens", window, MODEL_TOKENS);
        if let Some(i) = a.intermediate_size {
            c.count("architecture.intermediate_size", i, MODEL_DIMENSION);
        }
        let at = &self.attention;
        c.count("attention.heads", at.heads, MODEL_DIMENSION);
        c.count("attention.kv_heads", at.kv_heads, MODEL_DIMENSION);
        c.count("attention.head_dim", at.head_dim, MODEL_DIMENSION);
        if at.kv_heads > 0 && !at.heads.is_multiple_of(at.kv_heads) {
            c.fail(
                "attention.kv_heads",
                format!(
                    "attention.heads ({}) must be divisible by attention.kv_heads ({})",
                    at.heads, at.kv_heads
                ),
            );
        }
        match (at.sliding_window_tokens, at.sliding_window_layer_fraction) {
            (None, None) => {}
            (Some(w), Some(f)) => {
                c.count("attention.sliding_window_tokens", w, MODEL_TOKENS);
                c.fraction("attention.sliding_window_layer_fraction", f);
            }
            _ => c.fail(
                "attention.sliding_window_tokens",
                "sliding_window_tokens and sliding_window_layer_fraction go together; give both or neither",
            ),
        }
        let mla_fields = [
            ("attention.kv_lora_rank", at.kv_lora_rank),
            ("attention.q_lora_rank", at.q_lora_rank),
            ("attention.rope_head_dim", at.rope_head_dim),
        ];
        match at.kind {
            AttentionKind::Mla => {
                for (p, v) in mla_fields {
                    match v {
                        None => c.fail(p, "required when attention.kind = \"mla\""),
                        Some(v) => c.count(p, v, MODEL_DIMENSION),
                    }
                }
            }
            AttentionKind::Gqa => {
                for (p, v) in mla_fields {
                    if v.is_some() {
                        c.fail(p, "only meaningful when attention.kind = \"mla\"");
                    }
                }
            }
        }
        let (dense_layers, moe_layers) = self.layer_split();
        if let Some(m) = &self.moe {
            c.count("moe.experts", m.experts, MODEL_DIMENSION);
            c.count("moe.active_experts", m.active_experts, MODEL_DIMENSION);
            let width = m.expert_intermediate_size;
            c.count("moe.expert_intermediate_size", width, MODEL_DIMENSION);
            c.count(
                "moe.layer_interval",
                m.layer_interval.into(),
                MODEL_DIMENSION,
            );
            if let Some(cv) = m.expert_load_cv {
                c.in_range("moe.expert_load_cv", cv, (0.0, 100.0));
            }
            if m.active_experts > m.experts {
                c.fail(
                    "moe.active_experts",
                    format!(
                        "expected at most moe.experts ({}), found {}",
                        m.experts, m.active_experts
                    ),
                );
            }
            if m.first_dense_layers >= a.layers {
                c.fail(
                    "moe.first_dense_layers",
                    format!(
                        "expected fewer than architecture.layers ({}), found {}",
                        a.layers, m.first_dense_layers
                    ),
                );
            }
            if m.shared_experts > MODEL_DIMENSION {
                let n = m.shared_experts;
                c.fail(
                    "moe.shared_experts",
                    format!("expected at most {MODEL_DIMENSION}, found {n}"),
                );
            }
            if let Some(w) = m.shared_expert_intermediate_size {
                c.count("moe.shared_expert_intermediate_size", w, MODEL_DIMENSION);
            }
            match (m.shared_experts, m.shared_expert_intermediate_size) {
                (0, Some(_)) => c.fail(
                    "moe.shared_expert_intermediate_size",
                    "given but moe.shared_experts = 0",
                ),
                (n, None) if n > 0 => c.fail(
                    "moe.shared_expert_intermediate_size",
                    "required when moe.shared_experts > 0",
                ),
                _ => {}
            }
        }
        if dense_layers > 0 && a.intermediate_size.is_none() {
            c.fail(
                "architecture.intermediate_size",
                format!("required: the model has {dense_layers} dense layers"),
            );
        }
        let _ = moe_layers;
        if self.moe.is_none() && self.precision.expert_weights.is_some() {
            c.fail(
                "precision.expert_weights",
                "only meaningful with a [moe] section",
            );
        }
        match (&self.published, self.hypothesis) {
            (Some(p), _) => {
                c.positive("published.total_params", p.total_params);
                c.positive("published.active_params", p.active_params);
            }
            (None, false) => c.fail(
                "published",
                "a non-hypothesis model must give its published parameter counts",
            ),
            (None, true) => {}
        }
        c.problems
    }

    /// Dense and MoE layer counts.
    pub fn layer_split(&self) -> (u32, u32) {
        let layers = self.architecture.layers;
        match &self.moe {
            None => (layers, 0),
            Some(m) => {
                let after = layers.saturating_sub(m.first_dense_layers);
                let moe = after / m.layer_interval.max(1);
                (layers - moe, moe)
            }
        }
    }

    /// Bytes per element of expert weights.
    pub fn expert_weight_precision(&self) -> Precision {
        self.precision
            .expert_weights
            .unwrap_or(self.precision.weights)
    }

    /// Derived dimensions. Call on a validated profile.
    pub fn dims(&self) -> ModelDims {
        let a = &self.architecture;
        let at = &self.attention;
        let h = a.hidden_size as f64;
        let (heads, kv_heads, hd) = (at.heads as f64, at.kv_heads as f64, at.head_dim as f64);
        let mlp_mats = if a.gated_mlp { 3.0 } else { 2.0 };

        let (attn_params, kv_elems, flops_per_pair) = match at.kind {
            AttentionKind::Gqa => (
                // Q and O: h x heads*hd each; K and V: h x kv_heads*hd each.
                2.0 * h * heads * hd + 2.0 * h * kv_heads * hd,
                2.0 * kv_heads * hd,
                // QK^T and PV: 2 FLOPs per multiply-add, hd per head each.
                4.0 * heads * hd,
            ),
            AttentionKind::Mla => {
                let kv_r = at.kv_lora_rank.unwrap_or(0) as f64;
                let q_r = at.q_lora_rank.unwrap_or(0) as f64;
                let rope = at.rope_head_dim.unwrap_or(0) as f64;
                // DeepSeek-V3 report: q down/up, kv down (+ shared rope key), kv up to
                // per-head K (nope) and V, output projection.
                let params = h * q_r
                    + q_r * heads * (hd + rope)
                    + h * (kv_r + rope)
                    + kv_r * heads * 2.0 * hd
                    + heads * hd * h;
                // Cached: the latent plus the shared rotary key.
                let elems = kv_r + rope;
                // Decode with absorbed up-projections: scores over kv_r + rope, values over kv_r.
                let flops = 2.0 * heads * (kv_r + rope) + 2.0 * heads * kv_r;
                (params, elems, flops)
            }
        };
        let dense_mlp = a.intermediate_size.unwrap_or(0) as f64 * h * mlp_mats;
        let (dense_layers, moe_layers) = self.layer_split();
        let (expert, shared, router, k) = match &self.moe {
            None => (0.0, 0.0, 0.0, 0.0),
            Some(m) => (
                m.expert_intermediate_size as f64 * h * mlp_mats,
                m.shared_experts as f64
                    * m.shared_expert_intermediate_size.unwrap_or(0) as f64
                    * h
                    * mlp_mats,
                h * m.experts as f64,
                m.active_experts as f64,
            ),
        };
        let n_experts = self.moe.as_ref().map_or(0.0, |m| m.experts as f64);
        let embedding = a.vocab_size as f64 * h;
        let lm_head = embedding;
        let layers = a.layers as f64;
        let untied_head = if a.tied_embeddings { 0.0 } else { lm_head };
        let common =
            layers * attn_params + dense_layers as f64 * dense_mlp + embedding + untied_head;
        let moe_total = moe_layers as f64 * (n_experts * expert + shared + router);
        let moe_active = moe_layers as f64 * (k * expert + shared + router);
        ModelDims {
            attn_params_per_layer: attn_params,
            dense_mlp_params_per_layer: dense_mlp,
            expert_params: expert,
            shared_expert_params_per_layer: shared,
            router_params_per_layer: router,
            dense_layers,
            moe_layers,
            embedding_params: embedding,
            lm_head_params: lm_head,
            kv_elements_per_token_per_layer: kv_elems,
            attn_flops_per_pair_per_layer: flops_per_pair,
            total_params: common + moe_total,
            active_params: common + moe_active,
        }
    }

    /// Layers attending over a sliding window rather than the whole sequence (0 without one).
    pub fn window_layers(&self) -> f64 {
        self.attention
            .sliding_window_layer_fraction
            .map_or(0.0, |f| (f * self.architecture.layers as f64).round())
    }

    /// The share of [`ModelProfile::kv_bytes_per_token`] a sequence of `tokens` keeps per token
    /// on average: full-attention layers keep every token, sliding-window layers at most their
    /// window (gpt-oss: 128 tokens on half its layers). 1 without sliding windows.
    pub fn kv_share(&self, tokens: u64) -> f64 {
        let layers = self.architecture.layers as f64;
        let window = self.window_layers();
        match self.attention.sliding_window_tokens {
            Some(w) if window > 0.0 && tokens > 0 => {
                let kept = (w.min(tokens) as f64) / tokens as f64;
                ((layers - window) + window * kept) / layers
            }
            _ => 1.0,
        }
    }

    /// KV-cache bytes one token occupies across all layers (unsharded).
    pub fn kv_bytes_per_token(&self) -> f64 {
        self.dims().kv_elements_per_token_per_layer
            * self.architecture.layers as f64
            * self.precision.kv_cache.bytes()
    }

    /// Bytes of all weights at their served precision.
    pub fn weight_bytes(&self) -> f64 {
        let d = self.dims();
        let wb = self.precision.weights.bytes();
        let eb = self.expert_weight_precision().bytes();
        let expert_total = d.moe_layers as f64
            * (self.moe.as_ref().map_or(0.0, |m| m.experts as f64) * d.expert_params
                + d.shared_expert_params_per_layer);
        (d.total_params - expert_total) * wb + expert_total * eb
    }
}
