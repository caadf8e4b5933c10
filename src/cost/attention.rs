//! The GPU step's attention priced by a profile's attention curves
//! ([`crate::profile::AttentionCurve`]) instead of the scalar efficiencies.
//!
//! A step's prefill chunks and its decoding sequences (speculative verifications among them)
//! run as separate kernels, one of each per layer, as TensorRT-LLM and vLLM launch context and
//! generation attention: each part is priced by its own curve (or, without one, by the scalar
//! roofline and the per-kernel overhead), and the parts' times add. The curve's floor stands for
//! the whole kernel, KV-cache write included (the measured kernels include it), so a curve
//! replaces the step's per-kernel overheads of attention. Layers are summed before the curve's
//! max of compute and memory is taken (layers under a sliding window and under full attention
//! differ in work, not in which bound they hit).
//!
//! GQA / MHA attention takes the profile's curves for its KV-cache precision (an FP8 cache its
//! `_fp8_kv` curves where the profile has them, else the 16-bit ones, and its decode part the
//! curve of its kernel family, `gqa_decode`); its decode part reads the KV cache as the kernel
//! does, once per group of query heads a decode kernel groups ([`decode_kv_reads`]), in thread
//! blocks split as the engine splits them ([`decode_splits`], by the sequences' mean history).
//!
//! MLA attention takes the profile's MLA curves for its KV-cache precision, when it has any
//! (else the scalars price it, as before): prefill counted un-absorbed, decode absorbed, both at
//! the 16-bit peak, as the curves were fitted (`AttentionCurves`); decode's `half_sequences`
//! term counts the sequences of one kernel (one layer).

use super::batch::Share;
use super::gpu::KERNELS_ATTN;
use super::kernel::{prefill_math, MlaDims};
use super::OpCost;
use crate::profile::kernel_curves::{decode_kv_reads, decode_splits};
use crate::profile::{
    AttentionCurve, AttentionWork, ComputeClass, GpuSystem, ModelProfile, Precision,
};

/// The constants of one placed model's attention, per device.
#[derive(Debug, Clone)]
pub(crate) struct AttentionPricing {
    /// Prefill (context) curve, if the profile has one.
    pub prefill: Option<AttentionCurve>,
    /// Decode (generation) curve, if the profile has one.
    pub decode: Option<AttentionCurve>,
    /// Query heads per layer on one device.
    pub heads: f64,
    /// FLOPs per (query, key) pair per layer on one device.
    pub flops_per_pair: f64,
    /// The same for a prefill part priced by its curve (MLA: un-absorbed).
    pub prefill_flops_per_pair: f64,
    /// Whether the curves are MLA curves.
    pub mla: bool,
    /// KV-cache bytes per token per layer on one device.
    pub kv_bytes_per_token: f64,
    /// The same as a decode part priced by its curve reads them ([`decode_kv_reads`]).
    pub decode_kv_bytes_per_token: f64,
    /// Thread blocks a decode kernel runs per sequence before splitting its cache: KV heads on
    /// one device times the groups of up to 32 query heads on each (MLA: 0, its curve counts
    /// none).
    pub decode_blocks_per_sequence: f64,
    /// Streaming multiprocessors per GPU, if the profile states them ([`decode_splits`]).
    pub sms: Option<u32>,
    /// Raw peak FLOP/s of the class attention runs on.
    pub peak_flops_per_s: f64,
    /// The same for a prefill part priced by its curve (GQA over an FP8 cache: the cache's
    /// class, [`prefill_math`]).
    pub prefill_peak_flops_per_s: f64,
    /// Scalar-efficient FLOP/s, for a part without a curve.
    pub flops_per_s: f64,
    /// Raw HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// Scalar-efficient HBM bandwidth, bytes/s, for a part without a curve.
    pub mem_bytes_per_s: f64,
    /// Scalar compute-memory overlap, for a part without a curve.
    pub overlap: f64,
    /// Per-kernel overhead, s, for a part without a curve.
    pub kernel_s: f64,
    /// Attention kernels per layer counted by the scalar model.
    pub kernels_per_layer: f64,
}

/// Layers of each kind of one placed model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layers {
    /// Layers under full attention.
    pub full: f64,
    /// Layers under the sliding window.
    pub window: f64,
}

impl AttentionPricing {
    /// The attention of `model` on `gpu`, `tp` ways tensor parallel, with `kv_bytes_per_token`
    /// of KV cache per token and layer on one device, when the profile has attention curves for
    /// its kind; `None` otherwise (the scalars price it).
    pub(crate) fn new(
        model: &ModelProfile,
        gpu: &GpuSystem,
        tp: f64,
        kv_bytes_per_token: f64,
    ) -> Option<Self> {
        let curves = gpu.attention_curves.as_ref()?;
        let p = &model.precision;
        let d = model.dims();
        let flops_per_pair = d.attn_flops_per_pair_per_layer / tp;
        let heads = model.attention.heads as f64 / tp;
        let attn_class = ComputeClass::of_gemm(p.kv_cache, p.activations);
        let mla = MlaDims::of(model);
        let (prefill, decode, prefill_flops_per_pair, curve_class, prefill_class, reads, blocks) =
            match mla {
                Some(mla) => {
                    let (prefill, decode) = curves.mla(p.kv_cache);
                    let class = ComputeClass::of_gemm(p.kv_cache, Precision::Bf16);
                    (
                        prefill,
                        decode,
                        heads * mla.prefill_flops_per_pair_head,
                        class,
                        class,
                        1.0,
                        0.0,
                    )
                }
                // Decode at the peak its curve was fitted at: NVIDIA's generation tables state no
                // math precision, and `kernels --fit` prices them with 16-bit activations.
                None => {
                    // Query heads per KV head on one device (KV heads replicated past `tp`).
                    let kv_heads = (model.attention.kv_heads as f64 / tp).max(1.0);
                    let prefill = curves.gqa(p.kv_cache).0;
                    let decode =
                        curves.gqa_decode(p.kv_cache, heads / kv_heads, model.attention.head_dim);
                    let reads = decode_kv_reads(heads / kv_heads);
                    (
                        prefill,
                        decode,
                        flops_per_pair,
                        ComputeClass::of_gemm(p.kv_cache, Precision::Bf16),
                        ComputeClass::of_gemm(p.kv_cache, prefill_math(p.kv_cache, p.activations)),
                        reads,
                        kv_heads * reads,
                    )
                }
            };
        if prefill.is_none() && decode.is_none() && mla.is_some() {
            return None;
        }
        let (runs_on, _) = gpu.peak_flops_per_s.resolve(attn_class);
        Some(AttentionPricing {
            prefill,
            decode,
            heads,
            flops_per_pair,
            prefill_flops_per_pair,
            mla: mla.is_some(),
            kv_bytes_per_token,
            decode_kv_bytes_per_token: kv_bytes_per_token * reads,
            decode_blocks_per_sequence: blocks,
            sms: gpu.streaming_multiprocessors,
            peak_flops_per_s: gpu.peak_flops_per_s.resolve(curve_class).1,
            prefill_peak_flops_per_s: gpu.peak_flops_per_s.resolve(prefill_class).1,
            flops_per_s: gpu.peak_flops_per_s.resolve(attn_class).1
                * gpu.efficiency.compute_for(runs_on),
            hbm_bytes_per_s: gpu.hbm_bandwidth_bytes_per_s,
            mem_bytes_per_s: gpu.hbm_bandwidth_bytes_per_s * gpu.efficiency.memory,
            overlap: gpu.efficiency.overlap,
            kernel_s: gpu.overheads.kernel_s,
            kernels_per_layer: KERNELS_ATTN,
        })
    }

    /// The attention operator over `layers` for the busiest GPU's prefill chunks `prefill` and
    /// other sequences `decode`.
    pub(crate) fn op(&self, layers: Layers, prefill: &Share, decode: &Share) -> OpCost {
        let all = layers.full + layers.window;
        let mut op = OpCost::default();
        let (mut compute_s, mut memory_s, mut roof_s) = (0.0, 0.0, 0.0);
        for (part, curve, flops_per_pair, peak_flops_per_s, read_bytes_per_token, blocks_per_seq) in [
            (
                prefill,
                self.prefill,
                self.prefill_flops_per_pair,
                self.prefill_peak_flops_per_s,
                self.kv_bytes_per_token,
                0.0,
            ),
            (
                decode,
                self.decode,
                self.flops_per_pair,
                self.peak_flops_per_s,
                self.decode_kv_bytes_per_token,
                self.decode_blocks_per_sequence,
            ),
        ] {
            if part.tokens <= 0.0 {
                continue;
            }
            let flops_per_pair = if curve.is_some() {
                flops_per_pair
            } else {
                self.flops_per_pair
            };
            // One decode kernel's thread blocks: the engine splits each sequence's cache by the
            // history of the longest (here the mean of the full-attention layers', else the
            // window's).
            let kernel_blocks = if blocks_per_seq > 0.0 && part.sequences > 0.0 {
                let read = if part.kv_read_full > 0.0 {
                    part.kv_read_full
                } else {
                    part.kv_read_window
                };
                let history = read / part.sequences;
                let splits = decode_splits(history, part.sequences, blocks_per_seq, self.sms);
                part.sequences * blocks_per_seq * splits
            } else {
                0.0
            };
            let work = AttentionWork {
                pairs: layers.full * part.pairs_full + layers.window * part.pairs_window,
                queries: all * part.tokens,
                kv_tokens: layers.full * part.kv_read_full
                    + layers.window * part.kv_read_window
                    + all * part.tokens,
                sequences: all * part.sequences,
                sequence_heads: all * part.sequences * self.heads,
                window_queries: layers.window * part.window_queries,
                blocks: all * kernel_blocks,
            };
            let flops = work.pairs * flops_per_pair;
            let bytes = work.kv_tokens * self.kv_bytes_per_token;
            op.flops += flops;
            op.bytes += bytes;
            let (c, m, exposed) = match curve {
                Some(k) => {
                    op.overhead_s += all * k.floor_s + k.heads_s(&work);
                    // One kernel per layer: its occupancy counts one layer's sequences and blocks.
                    let f = k.occupancy(part.sequences, kernel_blocks);
                    (
                        f * k.compute_s(&work, flops_per_pair, peak_flops_per_s),
                        f * k.memory_s(&work, read_bytes_per_token, self.hbm_bytes_per_s),
                        0.0,
                    )
                }
                None => {
                    op.overhead_s += all * self.kernels_per_layer * self.kernel_s;
                    let (c, m) = (flops / self.flops_per_s, bytes / self.mem_bytes_per_s);
                    (c, m, (1.0 - self.overlap) * c.min(m))
                }
            };
            compute_s += c;
            memory_s += m;
            roof_s += c.max(m) + exposed;
        }
        // The parts run one after the other: their roofline times add, kept on the side of the
        // larger sum.
        if compute_s >= memory_s {
            op.compute_s = roof_s;
            op.memory_s = memory_s;
        } else {
            op.compute_s = compute_s;
            op.memory_s = roof_s;
        }
        op
    }
}
