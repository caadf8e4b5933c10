//! Attention and collective curves: the time of one attention kernel or one collective as a
//! smooth function of its work, in place of the scalar efficiencies and the per-kernel overhead,
//! fitted per GPU to measured kernels by `infersim kernels --fit` (`reference/kernels/`).
//!
//! Attention (prefill and decode each have their own curve, GQA / MHA and MLA theirs; five
//! coefficients, more with `half_sequences`, `score_dims` or `window_pad_tokens`):
//!
//! ```text
//! time = floor_s + sequence_heads head_s
//!      + (1 + half_sequences / sequences)
//!        * max((pairs + queries pad_tokens + window_queries window_pad_tokens)
//!                * (flops_per_pair + 4 heads score_dims) / (peak * compute_efficiency),
//!              (kv_tokens + sequences pad_tokens) kv_bytes_per_token / (hbm * memory_efficiency))
//! ```
//!
//! `pairs` are the causal (query, key) pairs, `queries` the new tokens, `kv_tokens` the KV-cache
//! tokens read and written, `sequences` the sequences of the batch, `sequence_heads` the
//! sequences times the query heads (a thread block each: its set-up and final reduction cost
//! `head_s` whatever the context). `pad_tokens` is the work no
//! roofline counts, as keys each query (compute) or each sequence (memory) is padded by: query
//! tiles filled by short prompts, per-sequence blocks of a decode kernel. Decode kernels reach
//! a few per cent of the tensor-core peak on their FLOPs (much of their math runs on CUDA cores),
//! which the fit shows as a low compute efficiency. `half_sequences` (decode curves only, GQA
//! and MLA; the factor counts one kernel's sequences, not a sum over layers) stands for decode
//! kernels that keep a sequence's query heads (of a KV head) in one thread block: few sequences
//! leave the GPU part idle. `score_dims` (GQA prefill curves) stands for the softmax of every
//! score (exponent, running max and sum, on the CUDA cores and special-function units rather
//! than the tensor cores): per (query, key) pair and query head it costs as much as
//! `score_dims` more head dims of the tensor-core math, whatever the head dim, so a kernel of
//! small heads reaches a lower share of the peak than one of large heads (`heads` is
//! `sequence_heads / sequences`). `window_pad_tokens` (GQA prefill curves fitted to rows with a
//! sliding window) counts the keys a query whose keys the window caps (`window_queries`, those
//! past the window's length) visits beyond the window: the kernel walks whole key blocks around
//! the band, so a 128-token window costs a query far more than 128 keys. GQA / MHA curves come per KV-cache precision as the MLA ones do
//! (`prefill_fp8_kv`, `decode_fp8_kv`: the engines run other kernels over an FP8 cache, with a
//! lower floor on Hopper); a profile without them prices an FP8 cache by the 16-bit curve.
//! A GQA decode kernel reads a KV head's cache once for the query heads grouped on it, up to
//! [`MAX_GROUPED_HEADS`]; with more query heads per KV head it groups them 32 at a time, each
//! group reading the cache itself ([`decode_kv_reads`]; NVIDIA's tables show the switch between
//! 32 and 48 query heads per KV head on every GPU, 48 to 128 query heads 2 to 4 times slower).
//! GQA decode curves fitted with thread-block terms (`half_blocks`, `block_s`) count the
//! kernel's thread blocks instead of its sequences: one per sequence and group of query heads
//! on a KV head (one query head per KV head: one per sequence and head), each sequence's cache
//! split over several blocks when it is long and the blocks are few ([`decode_splits`], the
//! engine's own rule); `1 + half_sequences / sequences` becomes `1 + half_blocks / blocks`
//! and every block adds `block_s`. The engine runs a different kernel for one query head per
//! KV head, for more than [`MAX_GROUPED_HEADS`], and for grouped heads of at most
//! [`SMALL_HEAD_DIM`] dims (`decode_mha`, `decode_ungrouped`, `decode_small_heads`; see
//! [`DecodeFamily`]), so those take their own curves where the profile has them. Ignored: the
//! remaining per-shape variants (tile sizes, tensor-core or CUDA-core math), which show as
//! scatter.
//!
//! Collectives (all-reduce and all-to-all each have their own; three coefficients, five with
//! `half_peers` and `pipeline_s`):
//!
//! ```text
//! wire_s = wire_bytes / (link_bandwidth * bandwidth_efficiency * (g - 1) / (g - 1 + half_peers))
//! time   = latency_s + step_latency_s log2(g) + wire_s + 2 sqrt(pipeline_s wire_s)
//! ```
//!
//! with `wire_bytes = 2 (g - 1) / g bytes` for an all-reduce (ring bus bytes, NCCL's definition)
//! and `(g - 1) / g bytes` for an all-to-all, over `g` GPUs. `half_peers` stands for the
//! connections a GPU drives at once: a library moves data to each peer through a bounded number
//! of channels (thread blocks), so one peer leaves part of the GPU's NVLink bandwidth unused and
//! the reached bandwidth rises with the peers `g - 1`, half of `bandwidth_efficiency` at
//! `half_peers` peers. `pipeline_s` is the ramp from latency- to bandwidth-bound: a message cut
//! into `k` chunks, each costing an overhead `o` besides its wire time, through a pipeline `d`
//! chunks deep takes `(k + d)(wire_s / k + o)`, least at `k = sqrt(d wire_s / o)`:
//! `wire_s + 2 sqrt(d o wire_s) + d o` (the optimum of pipelined transfers; Johnsson & Ho,
//! IEEE Trans. Computers 38(9), 1989), so `pipeline_s = d o` and the constant `d o` is part of
//! `latency_s`. The term summarises the library's choice of protocol (LL, LL128, Simple), chunk
//! size and channels by message size, which a single-rate line cannot follow; the fit measures
//! it, the switch points themselves show as scatter.

use serde::{Deserialize, Serialize};

use super::validate::Checker;
use super::Precision;

/// Most query heads a GQA decode kernel serves from one read of a KV head's cache.
pub const MAX_GROUPED_HEADS: f64 = 32.0;

/// Reads of each KV-cache token a GQA / MHA decode kernel makes per KV head, with
/// `heads_per_kv_head` query heads on each: one per group of at most [`MAX_GROUPED_HEADS`]
/// query heads (a thread block each).
pub fn decode_kv_reads(heads_per_kv_head: f64) -> f64 {
    (heads_per_kv_head / MAX_GROUPED_HEADS).ceil().max(1.0)
}

/// Tokens of cache each split of a sequence covers at least, as the engine starts counting
/// splits (TensorRT-LLM `kMinHistoryTokensPerBlock`).
pub const SPLIT_MIN_TOKENS: f64 = 512.0;

/// Thread-block waves per SM the engine aims at before it stops splitting (TensorRT-LLM
/// `kTargetWaveFactor`).
pub const SPLIT_TARGET_WAVES: f64 = 8.0;

/// Thread blocks each sequence's cache is split over by a decode kernel with
/// `blocks_per_sequence` blocks a sequence before splitting (KV heads, or query heads past
/// the grouping limit), over `sequences` sequences of `history_tokens` cached tokens on a GPU
/// of `sms` SMs: TensorRT-LLM's multi-block rule (`computeMultiBlockCount`,
/// cpp/tensorrt_llm/kernels/xqaDispatcher and decoderXQAImplCommon.h): one split per 512 tokens,
/// at most `round(sqrt(8 splits))` (the partial results' reduction grows with them), cut
/// back so the blocks make at most 8 waves over the SMs; at least one.
pub fn decode_splits(
    history_tokens: f64,
    sequences: f64,
    blocks_per_sequence: f64,
    sms: Option<u32>,
) -> f64 {
    let mut m = (history_tokens / SPLIT_MIN_TOKENS).floor();
    m = m.min((8.0 * m).sqrt().round()).max(1.0);
    if let Some(sms) = sms {
        let waves = sequences * blocks_per_sequence * m / f64::from(sms);
        let adj = waves / SPLIT_TARGET_WAVES;
        if adj > 1.0 {
            m = (m / adj).floor();
        }
    }
    m.max(1.0)
}

/// Head dims at or below which grouped heads run the engine's other decode kernel: NVIDIA's
/// Hopper tables show it apart, e.g. on H200 with an FP8 cache a short decode's floor is 8.0 us
/// at 64 dims and 5.7 to 6.3 us at 128 to 256 (`reference/kernels/h200_sxm`, batches of at most
/// 64 KV heads, at most 32 cached tokens).
pub const SMALL_HEAD_DIM: u64 = 64;

/// The decode kernels the engine picks by query heads per KV head and head dim, each with its
/// own curve where the profile has one (else the grouped curve prices it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeFamily {
    /// One query head per KV head (MHA).
    Mha,
    /// 2 to [`MAX_GROUPED_HEADS`] query heads grouped on each KV head (GQA).
    Grouped,
    /// As `Grouped`, heads of at most [`SMALL_HEAD_DIM`] dims.
    SmallHeads,
    /// More than [`MAX_GROUPED_HEADS`]: the query heads grouped 32 at a time, each group
    /// reading the cache itself ([`decode_kv_reads`]).
    Ungrouped,
}

impl DecodeFamily {
    /// The family of a kernel with `heads_per_kv_head` query heads per KV head of `head_dim`
    /// dims.
    pub fn of(heads_per_kv_head: f64, head_dim: u64) -> Self {
        if heads_per_kv_head <= 1.0 {
            DecodeFamily::Mha
        } else if heads_per_kv_head > MAX_GROUPED_HEADS {
            DecodeFamily::Ungrouped
        } else if head_dim <= SMALL_HEAD_DIM {
            DecodeFamily::SmallHeads
        } else {
            DecodeFamily::Grouped
        }
    }
}

/// One attention curve; see the module documentation for its formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionCurve {
    /// Time below which no attention kernel runs, s.
    pub floor_s: f64,
    /// Fraction of the class's peak FLOP/s reached on the padded pairs, in (0, 1].
    pub compute_efficiency: f64,
    /// Fraction of peak HBM bandwidth reached on the padded KV tokens, in (0, 1].
    pub memory_efficiency: f64,
    /// Keys each query (compute) and KV tokens each sequence (memory) are padded by, tokens.
    pub pad_tokens: f64,
    /// Time per sequence and query head (one thread block's set-up and reduction), s.
    pub head_s: f64,
    /// Optional sixth coefficient (decode curves): sequences at which the kernel's roofline part
    /// runs at half its rate, the part taking `1 + half_sequences / sequences` times as long
    /// (a kernel that keeps a sequence's heads together fills the GPU only with many
    /// sequences); absent: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_sequences: Option<f64>,
    /// Optional sixth coefficient (GQA prefill curves): the softmax's work per (query, key)
    /// pair and query head, as head dims of tensor-core math (each adds `4` FLOPs per pair and
    /// head to the compute part), dims; absent: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_dims: Option<f64>,
    /// Optional seventh coefficient (GQA prefill curves): keys each query whose keys a sliding
    /// window caps visits beyond the window (the kernel's key blocks around the band), tokens;
    /// absent: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_pad_tokens: Option<f64>,
    /// Optional coefficient (GQA decode curves), in place of `half_sequences`: thread blocks
    /// at which the roofline part runs at half its rate, the part taking `1 + half_blocks /
    /// blocks` times as long; absent: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_blocks: Option<f64>,
    /// Optional coefficient (GQA decode curves): time per thread block (its set-up, the
    /// partial results of a split cache), s; absent: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_s: Option<f64>,
}

/// The work of one attention kernel (or of several, summed over layers) as a curve prices it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AttentionWork {
    /// Causal (query, key) pairs.
    pub pairs: f64,
    /// New tokens (queries).
    pub queries: f64,
    /// KV-cache tokens read and written.
    pub kv_tokens: f64,
    /// Sequences.
    pub sequences: f64,
    /// Sequences times query heads (on this device).
    pub sequence_heads: f64,
    /// Thread blocks of a decode kernel (sequences times blocks a sequence, split caches
    /// counted, [`decode_splits`]); 0 where no curve counts them.
    pub blocks: f64,
    /// Queries whose keys a sliding window caps (past the window's length; prefill).
    pub window_queries: f64,
}

impl AttentionWork {
    /// The work of `batch` like sequences with `heads` query heads each, every one with `pairs`
    /// (query, key) pairs, `kv` tokens of KV cache read and `new` tokens written.
    pub fn of_batch(batch: f64, heads: f64, pairs: f64, kv: f64, new: f64) -> Self {
        AttentionWork {
            pairs: batch * pairs,
            queries: batch * new,
            kv_tokens: batch * (kv + new),
            sequences: batch,
            sequence_heads: batch * heads,
            window_queries: 0.0,
            blocks: 0.0,
        }
    }
}

impl AttentionCurve {
    /// Coefficients in the curve (six with `half_sequences` or `score_dims`).
    pub const COEFFICIENTS: usize = 5;

    /// Compute-bound part of `w` at `flops_per_pair` and `peak_flops_per_s`, s (no floor).
    pub fn compute_s(&self, w: &AttentionWork, flops_per_pair: f64, peak_flops_per_s: f64) -> f64 {
        let window_pairs = w.window_queries * self.window_pad_tokens.unwrap_or(0.0);
        (w.pairs + w.queries * self.pad_tokens + window_pairs)
            * (flops_per_pair + self.score_flops_per_pair(w))
            / (peak_flops_per_s * self.compute_efficiency)
    }

    /// The softmax's work per (query, key) pair of `w` as tensor-core FLOPs: `4 heads
    /// score_dims` (0 without `score_dims`).
    pub fn score_flops_per_pair(&self, w: &AttentionWork) -> f64 {
        match self.score_dims {
            Some(d) if w.sequences > 0.0 => 4.0 * d * w.sequence_heads / w.sequences,
            _ => 0.0,
        }
    }

    /// Memory-bound part of `w` at `kv_bytes_per_token` and `hbm_bytes_per_s`, s (no floor).
    pub fn memory_s(
        &self,
        w: &AttentionWork,
        kv_bytes_per_token: f64,
        hbm_bytes_per_s: f64,
    ) -> f64 {
        (w.kv_tokens + w.sequences * self.pad_tokens) * kv_bytes_per_token
            / (hbm_bytes_per_s * self.memory_efficiency)
    }

    /// Time of one kernel doing `w`, s.
    pub fn time_s(
        &self,
        w: &AttentionWork,
        flops_per_pair: f64,
        kv_bytes_per_token: f64,
        peak_flops_per_s: f64,
        hbm_bytes_per_s: f64,
    ) -> f64 {
        self.floor_s
            + self.heads_s(w)
            + self.occupancy(w.sequences, w.blocks)
                * self
                    .compute_s(w, flops_per_pair, peak_flops_per_s)
                    .max(self.memory_s(w, kv_bytes_per_token, hbm_bytes_per_s))
    }

    /// Factor on the roofline part of one kernel over `sequences` sequences in `blocks`
    /// thread blocks (1 without `half_blocks` or `half_sequences`).
    pub fn occupancy(&self, sequences: f64, blocks: f64) -> f64 {
        match (self.half_blocks, self.half_sequences) {
            (Some(h), _) if blocks > 0.0 => 1.0 + h / blocks,
            (None, Some(h)) if sequences > 0.0 => 1.0 + h / sequences,
            _ => 1.0,
        }
    }

    /// Per-head and per-block part of `w`, s.
    pub fn heads_s(&self, w: &AttentionWork) -> f64 {
        w.sequence_heads * self.head_s + w.blocks * self.block_s.unwrap_or(0.0)
    }

    fn check(&self, path: &str, c: &mut Checker) {
        c.non_negative(&format!("{path}.floor_s"), self.floor_s);
        c.fraction(
            &format!("{path}.compute_efficiency"),
            self.compute_efficiency,
        );
        c.fraction(&format!("{path}.memory_efficiency"), self.memory_efficiency);
        c.non_negative(&format!("{path}.pad_tokens"), self.pad_tokens);
        c.non_negative(&format!("{path}.head_s"), self.head_s);
        if let Some(h) = self.half_sequences {
            c.non_negative(&format!("{path}.half_sequences"), h);
        }
        if let Some(d) = self.score_dims {
            c.non_negative(&format!("{path}.score_dims"), d);
        }
        if let Some(t) = self.window_pad_tokens {
            c.non_negative(&format!("{path}.window_pad_tokens"), t);
        }
        if let Some(h) = self.half_blocks {
            c.non_negative(&format!("{path}.half_blocks"), h);
        }
        if let Some(t) = self.block_s {
            c.non_negative(&format!("{path}.block_s"), t);
        }
    }
}

/// Attention curves of a GPU; a kind without one uses the scalar efficiencies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionCurves {
    /// Causal GQA / MHA attention over prompt chunks (context attention) with a 16-bit KV
    /// cache (wider caches too; narrower ones without `prefill_fp8_kv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<AttentionCurve>,
    /// One decode step's GQA / MHA attention (generation attention) with a 16-bit KV cache
    /// (wider caches too; narrower ones without `decode_fp8_kv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<AttentionCurve>,
    /// As `prefill`, with an FP8 KV cache (narrower caches too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_fp8_kv: Option<AttentionCurve>,
    /// As `decode`, with an FP8 KV cache (narrower caches too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_fp8_kv: Option<AttentionCurve>,
    /// As `decode`, for one query head per KV head ([`DecodeFamily::Mha`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_mha: Option<AttentionCurve>,
    /// As `decode_mha`, with an FP8 KV cache (narrower caches too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_mha_fp8_kv: Option<AttentionCurve>,
    /// As `decode`, for more query heads per KV head than a kernel groups
    /// ([`DecodeFamily::Ungrouped`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_ungrouped: Option<AttentionCurve>,
    /// As `decode_ungrouped`, with an FP8 KV cache (narrower caches too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_ungrouped_fp8_kv: Option<AttentionCurve>,
    /// As `decode`, for heads of at most [`SMALL_HEAD_DIM`] dims ([`DecodeFamily::SmallHeads`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_small_heads: Option<AttentionCurve>,
    /// As `decode_small_heads`, with an FP8 KV cache (narrower caches too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_small_heads_fp8_kv: Option<AttentionCurve>,
    /// MLA attention over prompt chunks with a 16-bit KV cache (wider caches too), its work
    /// counted un-absorbed (scores over the nope and rotary dims, values over the value dims
    /// of each head) and priced at the 16-bit peak (the math of the kernels it was fitted to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla_prefill: Option<AttentionCurve>,
    /// One decode step's MLA attention with a 16-bit KV cache (wider caches too), its work
    /// counted absorbed (every head scores against the latent and rotary key, sums values over
    /// the latent), at the 16-bit peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla_decode: Option<AttentionCurve>,
    /// As `mla_prefill`, with an FP8 KV cache (narrower caches too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla_prefill_fp8_kv: Option<AttentionCurve>,
    /// As `mla_decode`, with an FP8 KV cache (narrower caches too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla_decode_fp8_kv: Option<AttentionCurve>,
}

impl AttentionCurves {
    /// The (prefill, decode) GQA / MHA curves for a KV cache of `kv_cache`: an FP8 (or
    /// narrower) cache's own curve where the profile has one, else the 16-bit curve.
    pub fn gqa(&self, kv_cache: Precision) -> (Option<AttentionCurve>, Option<AttentionCurve>) {
        if kv_cache.bytes() <= 1.0 {
            (
                self.prefill_fp8_kv.or(self.prefill),
                self.decode_fp8_kv.or(self.decode),
            )
        } else {
            (self.prefill, self.decode)
        }
    }

    /// The GQA / MHA decode curve for a KV cache of `kv_cache` and `heads_per_kv_head` query
    /// heads per KV head of `head_dim` dims: the family's own curve where the profile has one
    /// ([`DecodeFamily`]), else the grouped one ([`Self::gqa`]).
    pub fn gqa_decode(
        &self,
        kv_cache: Precision,
        heads_per_kv_head: f64,
        head_dim: u64,
    ) -> Option<AttentionCurve> {
        let fp8 = kv_cache.bytes() <= 1.0;
        let own = match (DecodeFamily::of(heads_per_kv_head, head_dim), fp8) {
            (DecodeFamily::Mha, false) => self.decode_mha,
            (DecodeFamily::Mha, true) => self.decode_mha_fp8_kv.or(self.decode_mha),
            (DecodeFamily::Ungrouped, false) => self.decode_ungrouped,
            (DecodeFamily::Ungrouped, true) => {
                self.decode_ungrouped_fp8_kv.or(self.decode_ungrouped)
            }
            (DecodeFamily::SmallHeads, false) => self.decode_small_heads,
            (DecodeFamily::SmallHeads, true) => {
                self.decode_small_heads_fp8_kv.or(self.decode_small_heads)
            }
            (DecodeFamily::Grouped, _) => None,
        };
        own.or(self.gqa(kv_cache).1)
    }

    /// The (prefill, decode) MLA curves for a KV cache of `kv_cache`.
    pub fn mla(&self, kv_cache: Precision) -> (Option<AttentionCurve>, Option<AttentionCurve>) {
        if kv_cache.bytes() <= 1.0 {
            (self.mla_prefill_fp8_kv, self.mla_decode_fp8_kv)
        } else {
            (self.mla_prefill, self.mla_decode)
        }
    }

    pub(super) fn check(&self, c: &mut Checker) {
        for (name, curve) in [
            ("prefill", &self.prefill),
            ("decode", &self.decode),
            ("prefill_fp8_kv", &self.prefill_fp8_kv),
            ("decode_fp8_kv", &self.decode_fp8_kv),
            ("decode_mha", &self.decode_mha),
            ("decode_mha_fp8_kv", &self.decode_mha_fp8_kv),
            ("decode_ungrouped", &self.decode_ungrouped),
            ("decode_ungrouped_fp8_kv", &self.decode_ungrouped_fp8_kv),
            ("decode_small_heads", &self.decode_small_heads),
            ("decode_small_heads_fp8_kv", &self.decode_small_heads_fp8_kv),
            ("mla_prefill", &self.mla_prefill),
            ("mla_decode", &self.mla_decode),
            ("mla_prefill_fp8_kv", &self.mla_prefill_fp8_kv),
            ("mla_decode_fp8_kv", &self.mla_decode_fp8_kv),
        ] {
            if let Some(curve) = curve {
                curve.check(&format!("gpu.attention_curves.{name}"), c);
            }
        }
    }
}

/// One collective curve; see the module documentation for its formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectiveCurve {
    /// Fixed latency of one collective, s.
    pub latency_s: f64,
    /// Latency added per doubling of the GPUs taking part, s.
    pub step_latency_s: f64,
    /// Fraction of the interconnect's per-GPU bandwidth reached on the wire bytes with many
    /// peers, in (0, 1].
    pub bandwidth_efficiency: f64,
    /// Optional fourth coefficient: peers (GPUs besides one's own) at which the wire bandwidth
    /// reaches half of `bandwidth_efficiency`, the efficiency over `g` GPUs being
    /// `bandwidth_efficiency (g - 1) / (g - 1 + half_peers)`; absent: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_peers: Option<f64>,
    /// Optional fifth coefficient: pipeline depth times per-chunk overhead of a chunked transfer,
    /// s; the wire time `wire_s` grows by `2 sqrt(pipeline_s wire_s)`; absent: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_s: Option<f64>,
}

impl CollectiveCurve {
    /// Coefficients in the curve (five with `half_peers` and `pipeline_s`).
    pub const COEFFICIENTS: usize = 3;

    /// Fraction of the link bandwidth reached over `gpus` GPUs (2 or more).
    pub fn efficiency(&self, gpus: u32) -> f64 {
        let peers = f64::from(gpus) - 1.0;
        match self.half_peers {
            Some(h) => self.bandwidth_efficiency * peers / (peers + h),
            None => self.bandwidth_efficiency,
        }
    }

    /// Time of a collective over `gpus` GPUs putting `wire_bytes` per GPU on links of
    /// `link_bytes_per_s`, s; nothing to do alone.
    pub fn time_s(&self, gpus: u32, wire_bytes: f64, link_bytes_per_s: f64) -> f64 {
        if gpus <= 1 {
            return 0.0;
        }
        let wire_s = wire_bytes / (link_bytes_per_s * self.efficiency(gpus));
        let pipeline_s = self.pipeline_s.map_or(0.0, |p| 2.0 * (p * wire_s).sqrt());
        self.latency_s + self.step_latency_s * f64::from(gpus).log2() + wire_s + pipeline_s
    }

    fn check(&self, path: &str, c: &mut Checker) {
        c.non_negative(&format!("{path}.latency_s"), self.latency_s);
        c.non_negative(&format!("{path}.step_latency_s"), self.step_latency_s);
        c.fraction(
            &format!("{path}.bandwidth_efficiency"),
            self.bandwidth_efficiency,
        );
        if let Some(h) = self.half_peers {
            c.non_negative(&format!("{path}.half_peers"), h);
        }
        if let Some(p) = self.pipeline_s {
            c.non_negative(&format!("{path}.pipeline_s"), p);
        }
    }
}

/// Bytes each GPU puts on the wire in an all-reduce of `bytes` over `gpus` GPUs (ring).
pub fn all_reduce_wire_bytes(gpus: u32, bytes: f64) -> f64 {
    let g = f64::from(gpus);
    2.0 * (g - 1.0) / g * bytes
}

/// Bytes each GPU sends in an all-to-all of a buffer of `bytes` spread over `gpus` GPUs.
pub fn all_to_all_wire_bytes(gpus: u32, bytes: f64) -> f64 {
    let g = f64::from(gpus);
    (g - 1.0) / g * bytes
}

/// Collective curves of a GPU system; a collective without one uses the interconnect's scalar
/// latency and efficiency.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectiveCurves {
    /// NCCL all-reduce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_reduce: Option<CollectiveCurve>,
    /// The serving engine's own all-reduce kernel (TensorRT-LLM's custom all-reduce); the step
    /// takes the faster of it and NCCL's at each message size, as the engine's automatic choice
    /// does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_reduce_custom: Option<CollectiveCurve>,
    /// NCCL all-to-all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_to_all: Option<CollectiveCurve>,
}

impl CollectiveCurves {
    /// Time of an all-reduce of `bytes` per GPU over `gpus` GPUs by the faster curve, s; `None`
    /// without an all-reduce curve.
    pub fn all_reduce_s(&self, gpus: u32, bytes: f64, link_bytes_per_s: f64) -> Option<f64> {
        let wire = all_reduce_wire_bytes(gpus, bytes);
        [self.all_reduce, self.all_reduce_custom]
            .iter()
            .flatten()
            .map(|c| c.time_s(gpus, wire, link_bytes_per_s))
            .min_by(f64::total_cmp)
    }

    pub(super) fn check(&self, c: &mut Checker) {
        for (name, curve) in [
            ("all_reduce", &self.all_reduce),
            ("all_reduce_custom", &self.all_reduce_custom),
            ("all_to_all", &self.all_to_all),
        ] {
            if let Some(curve) = curve {
                curve.check(&format!("gpu.collective_curves.{name}"), c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// A curve of floor `floor_s` and ideal efficiencies, without pads or optional terms.
    fn plain(floor_s: f64) -> AttentionCurve {
        AttentionCurve {
            floor_s,
            compute_efficiency: 1.0,
            memory_efficiency: 1.0,
            pad_tokens: 0.0,
            head_s: 0.0,
            half_sequences: None,
            score_dims: None,
            window_pad_tokens: None,
            half_blocks: None,
            block_s: None,
        }
    }

    #[test]
    fn attention_pads_queries_in_compute_and_sequences_in_memory() {
        let c = AttentionCurve {
            compute_efficiency: 0.5,
            memory_efficiency: 0.8,
            pad_tokens: 100.0,
            head_s: 1e-9,
            ..plain(5e-6)
        };
        // One 1000-token prompt over 32 heads: (500500 + 1000 * 100) pairs of 4096 FLOPs at
        // 0.5 PFLOP/s, 32 head blocks.
        let w = AttentionWork {
            pairs: 500_500.0,
            queries: 1000.0,
            kv_tokens: 2000.0,
            sequences: 1.0,
            sequence_heads: 32.0,
            window_queries: 0.0,
            blocks: 0.0,
        };
        assert_relative_eq!(
            c.time_s(&w, 4096.0, 256.0, 1e15, 1e12),
            5e-6 + 32e-9 + 600_500.0 * 4096.0 / 0.5e15,
            max_relative = 1e-12
        );
        // 64 decoding sequences of 2000 tokens: memory-bound, each padded by 100 tokens.
        let w = AttentionWork {
            pairs: 64.0 * 2000.0,
            queries: 64.0,
            kv_tokens: 64.0 * 2000.0,
            sequences: 64.0,
            sequence_heads: 64.0 * 32.0,
            window_queries: 0.0,
            blocks: 0.0,
        };
        assert_relative_eq!(
            c.time_s(&w, 4096.0, 4096.0, 1e15, 1e12),
            5e-6 + 64.0 * 32e-9 + 64.0 * 2100.0 * 4096.0 / 0.8e12,
            max_relative = 1e-12
        );
    }

    #[test]
    fn half_sequences_stretch_the_roofline_part_of_few_sequences() {
        let mut c = AttentionCurve {
            compute_efficiency: 0.5,
            memory_efficiency: 0.8,
            ..plain(10e-6)
        };
        // One sequence decoding over 1M cached tokens of 1000 bytes: 1.25 ms of memory.
        let w = AttentionWork {
            pairs: 1e6,
            queries: 1.0,
            kv_tokens: 1e6,
            sequences: 1.0,
            sequence_heads: 16.0,
            window_queries: 0.0,
            blocks: 0.0,
        };
        let plain = c.time_s(&w, 1.0, 1000.0, 1e15, 1e12);
        assert_relative_eq!(plain, 10e-6 + 1.25e-3, max_relative = 1e-12);
        c.half_sequences = Some(2.0);
        assert_relative_eq!(
            c.time_s(&w, 1.0, 1000.0, 1e15, 1e12),
            10e-6 + 3.0 * 1.25e-3,
            max_relative = 1e-12
        );
        assert_relative_eq!(c.occupancy(198.0, 0.0), 1.0 + 2.0 / 198.0);
    }

    #[test]
    fn score_dims_add_softmax_work_per_pair_and_head() {
        let c = AttentionCurve {
            compute_efficiency: 0.5,
            score_dims: Some(64.0),
            ..plain(0.0)
        };
        // Two prompts of 1000 tokens, 8 heads of 128 dims: 4 * 8 * 128 = 4096 FLOPs a pair,
        // plus 4 * 8 * 64 = 2048 for the softmax; 1e6 pairs at 0.5 PFLOP/s.
        let w = AttentionWork {
            pairs: 1e6,
            queries: 2000.0,
            kv_tokens: 4000.0,
            sequences: 2.0,
            sequence_heads: 16.0,
            window_queries: 0.0,
            blocks: 0.0,
        };
        assert_relative_eq!(c.score_flops_per_pair(&w), 2048.0);
        assert_relative_eq!(
            c.time_s(&w, 4096.0, 1.0, 1e15, 1e12),
            1e6 * 6144.0 / 0.5e15,
            max_relative = 1e-12
        );
        // Without sequences there are no heads to count.
        assert_eq!(c.score_flops_per_pair(&AttentionWork::default()), 0.0);
    }

    #[test]
    fn window_pad_tokens_add_keys_to_queries_past_the_window() {
        let c = AttentionCurve {
            compute_efficiency: 0.5,
            pad_tokens: 10.0,
            window_pad_tokens: Some(500.0),
            ..plain(0.0)
        };
        // One 1000-token prompt under a 128-token window: 128 * 129 / 2 + 872 * 128 pairs, 1000
        // queries padded by 10 keys, 872 of them past the window by 500 more; 1000 FLOPs a pair
        // at 0.5 PFLOP/s.
        let pairs = 128.0 * 129.0 / 2.0 + 872.0 * 128.0;
        let w = AttentionWork {
            pairs,
            queries: 1000.0,
            kv_tokens: 1128.0,
            sequences: 1.0,
            sequence_heads: 8.0,
            window_queries: 872.0,
            blocks: 0.0,
        };
        assert_relative_eq!(
            c.time_s(&w, 1000.0, 1.0, 1e15, 1e12),
            (pairs + 10_000.0 + 436_000.0) * 1000.0 / 0.5e15,
            max_relative = 1e-12
        );
    }

    #[test]
    fn decode_splits_follow_the_engine_rule() {
        // One split per 512 tokens, capped at round(sqrt(8 m)): 8192 tokens give 16, cut to 11.
        assert_eq!(decode_splits(8192.0, 1.0, 2.0, Some(132)), 11.0);
        // Short caches are not split.
        assert_eq!(decode_splits(100.0, 1.0, 2.0, Some(132)), 1.0);
        // Many blocks already: 128 x 8 x 8 blocks make 62 waves over 132 SMs, 7.8 times the
        // target of 8, so the 8 splits are cut to one.
        assert_eq!(decode_splits(4096.0, 128.0, 8.0, Some(132)), 1.0);
        // Without an SM count no wave cap applies.
        assert_eq!(decode_splits(4096.0, 128.0, 8.0, None), 8.0);
    }

    #[test]
    fn block_terms_count_thread_blocks() {
        let c = AttentionCurve {
            half_sequences: Some(5.0),
            half_blocks: Some(10.0),
            block_s: Some(1e-6),
            ..plain(0.0)
        };
        // half_blocks takes the place of half_sequences.
        assert_relative_eq!(c.occupancy(2.0, 40.0), 1.25);
        let w = AttentionWork {
            sequences: 2.0,
            blocks: 40.0,
            ..AttentionWork::default()
        };
        assert_relative_eq!(c.heads_s(&w), 40e-6);
    }

    #[test]
    fn decode_families_take_their_own_curves_else_the_grouped_one() {
        let curves = AttentionCurves {
            decode: Some(plain(1.0)),
            decode_mha: Some(plain(2.0)),
            decode_ungrouped_fp8_kv: Some(plain(3.0)),
            ..AttentionCurves::default()
        };
        let floor = |p, ratio| curves.gqa_decode(p, ratio, 128).map(|c| c.floor_s);
        assert_eq!(floor(Precision::Bf16, 1.0), Some(2.0));
        assert_eq!(floor(Precision::Bf16, 8.0), Some(1.0));
        assert_eq!(floor(Precision::Bf16, 64.0), Some(1.0));
        assert_eq!(floor(Precision::Fp8, 64.0), Some(3.0));
        assert_eq!(floor(Precision::Fp8, 1.0), Some(2.0));
        // Small heads without their own curve: the grouped one.
        let small = curves.gqa_decode(Precision::Bf16, 8.0, 64);
        assert_eq!(small.map(|c| c.floor_s), Some(1.0));
    }

    #[test]
    fn decode_reads_the_cache_once_per_group_of_query_heads() {
        assert_eq!(decode_kv_reads(1.0), 1.0);
        assert_eq!(decode_kv_reads(32.0), 1.0);
        assert_eq!(decode_kv_reads(48.0), 2.0);
        assert_eq!(decode_kv_reads(128.0), 4.0);
    }

    #[test]
    fn an_fp8_cache_takes_its_own_gqa_curves_else_the_16_bit_ones() {
        let curve = |floor_s| AttentionCurve {
            floor_s,
            compute_efficiency: 0.5,
            memory_efficiency: 0.5,
            pad_tokens: 0.0,
            head_s: 0.0,
            half_sequences: None,
            score_dims: None,
            window_pad_tokens: None,
            half_blocks: None,
            block_s: None,
        };
        let mut c = AttentionCurves {
            prefill: Some(curve(1.0)),
            decode: Some(curve(2.0)),
            ..AttentionCurves::default()
        };
        assert_eq!(c.gqa(Precision::Fp8), (Some(curve(1.0)), Some(curve(2.0))));
        c.prefill_fp8_kv = Some(curve(3.0));
        c.decode_fp8_kv = Some(curve(4.0));
        assert_eq!(c.gqa(Precision::Fp8), (Some(curve(3.0)), Some(curve(4.0))));
        assert_eq!(c.gqa(Precision::Bf16), (Some(curve(1.0)), Some(curve(2.0))));
    }

    #[test]
    fn the_faster_all_reduce_is_taken() {
        let slow_start = CollectiveCurve {
            latency_s: 10e-6,
            step_latency_s: 2e-6,
            bandwidth_efficiency: 0.8,
            half_peers: None,
            pipeline_s: None,
        };
        let quick_start = CollectiveCurve {
            latency_s: 2e-6,
            step_latency_s: 1e-6,
            bandwidth_efficiency: 0.2,
            half_peers: None,
            pipeline_s: None,
        };
        let c = CollectiveCurves {
            all_reduce: Some(slow_start),
            all_reduce_custom: Some(quick_start),
            all_to_all: None,
        };
        // 8 GPUs, 1 KB: 2 + 3 us + 1750 B / 20 GB/s beats 10 + 6 us.
        assert_relative_eq!(
            c.all_reduce_s(8, 1e3, 1e11).unwrap(),
            5e-6 + 1750.0 / 0.2e11,
            max_relative = 1e-12
        );
        // 8 GPUs, 100 MB: the bandwidth wins.
        assert_relative_eq!(
            c.all_reduce_s(8, 1e8, 1e11).unwrap(),
            16e-6 + 1.75e8 / 0.8e11,
            max_relative = 1e-12
        );
        assert_eq!(slow_start.time_s(1, 1e8, 1e11), 0.0);
        assert!(CollectiveCurves::default()
            .all_reduce_s(8, 1e3, 1e11)
            .is_none());
    }

    #[test]
    fn few_peers_and_the_pipeline_ramp_slow_the_wire() {
        let mut c = CollectiveCurve {
            latency_s: 5e-6,
            step_latency_s: 1e-6,
            bandwidth_efficiency: 0.8,
            half_peers: None,
            pipeline_s: None,
        };
        // 4 GPUs, 3 MB on the wire at 100 GB/s: 5 + 2 us + 3e6 / 0.8e11 = 37.5 us of wire.
        assert_relative_eq!(c.time_s(4, 3e6, 1e11), 44.5e-6, max_relative = 1e-12);
        // One peer as half: 3 peers reach 0.8 * 3 / 4 = 0.6 of the link, 50 us of wire.
        c.half_peers = Some(1.0);
        assert_relative_eq!(c.efficiency(4), 0.6, max_relative = 1e-12);
        assert_relative_eq!(c.efficiency(2), 0.4, max_relative = 1e-12);
        assert_relative_eq!(c.time_s(4, 3e6, 1e11), 57e-6, max_relative = 1e-12);
        // A 2 us pipeline: 2 sqrt(2 us * 50 us) = 20 us more.
        c.pipeline_s = Some(2e-6);
        assert_relative_eq!(c.time_s(4, 3e6, 1e11), 77e-6, max_relative = 1e-12);
        assert_eq!(c.time_s(1, 3e6, 1e11), 0.0);
    }

    #[test]
    fn the_pipeline_term_is_the_best_chunking_of_a_pipelined_transfer() {
        // Depth d = 4, overhead o = 0.5 us per chunk, 50 us of wire: k chunks take
        // (k + d)(wire / k + o); the best k (continuous) is sqrt(d wire / o) = 20 chunks.
        let (d, o, wire) = (4.0, 0.5e-6, 50e-6);
        let best = (1..=2000)
            .map(|i| {
                let k = f64::from(i) / 10.0;
                (k + d) * (wire / k + o)
            })
            .fold(f64::INFINITY, f64::min);
        let c = CollectiveCurve {
            latency_s: d * o,
            step_latency_s: 0.0,
            bandwidth_efficiency: 1.0,
            half_peers: None,
            pipeline_s: Some(d * o),
        };
        // 2 GPUs (one peer), wire bytes at 1e11 B/s taking 50 us.
        assert_relative_eq!(c.time_s(2, wire * 1e11, 1e11), best, max_relative = 1e-9);
    }
}
