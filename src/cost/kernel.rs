//! One kernel priced the way the GPU cost model ([`super::gpu`]) prices the operator it belongs
//! to: a GEMM of `m x n x k`, one layer's attention over a batch, one collective. The step's
//! operators sum such work over layers and price the sums with the same roofline, so a kernel's
//! error here is the error the step model makes on that piece of work. Used by
//! `infersim kernels` to compare the model with measured kernel latencies
//! (`reference/kernels/`).
//!
//! Mirrors `GpuCost`: compute at the peak of the operands' tensor-core class times its
//! efficiency, memory at the HBM bandwidth times its efficiency, `max + (1 - overlap) min`, plus
//! the per-kernel overhead for each kernel the step counts for that work; or, where the profile
//! has them, by its GEMM, attention and collective curves, as the step does.

use super::collective::{all_reduce_s, all_to_all_s};
use super::gpu::KERNELS_ATTN;
use crate::profile::kernel_curves::{all_to_all_wire_bytes, decode_kv_reads, decode_splits};
use crate::profile::model::AttentionKind;
use crate::profile::{
    AttentionCurve, AttentionWork, ComputeClass, GpuSystem, ModelProfile, MoeWork, Precision,
};

/// The constants of one GPU system that price single kernels.
#[derive(Debug, Clone)]
pub struct KernelPricer {
    gpu: GpuSystem,
}

/// One layer's attention for a batch of equal sequences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionShape {
    /// Sequences in the batch.
    pub batch: u64,
    /// Query heads.
    pub heads: u64,
    /// Key-value heads.
    pub kv_heads: u64,
    /// Elements per head.
    pub head_dim: u64,
    /// Sliding window, tokens (`None`: full attention).
    pub window: Option<u64>,
    /// Precision of the attention math's activations.
    pub activations: Precision,
    /// Precision of the KV cache.
    pub kv_cache: Precision,
}

/// The work of one attention kernel: `4 heads head_dim` FLOPs a (query, key) pair,
/// `2 kv_heads head_dim` elements of KV cache a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionKernel {
    /// Pairs, queries, KV tokens read and written, sequences.
    pub work: AttentionWork,
    /// FLOPs per (query, key) pair.
    pub flops_per_pair: f64,
    /// KV-cache bytes per token.
    pub kv_bytes_per_token: f64,
}

/// Per-head constants of an MLA model's attention, as the step counts them
/// ([`crate::profile::ModelDims`]): the decode kernel with the up-projections absorbed, every
/// query head scoring against the cached latent and the shared rotary key; and, for prefill
/// priced by an MLA curve, un-absorbed, as the engines' context kernels run it (keys and values
/// up-projected, each head scoring over its nope and rotary dims and summing its value dims).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlaDims {
    /// FLOPs per (query, key) pair and query head, absorbed.
    pub flops_per_pair_head: f64,
    /// FLOPs per (query, key) pair and query head, un-absorbed: `2 (head_dim + rope) + 2
    /// head_dim`.
    pub prefill_flops_per_pair_head: f64,
    /// KV-cache elements per token (latent plus rotary key).
    pub kv_elements_per_token: f64,
}

impl MlaDims {
    /// The constants of `model`'s attention; `None` unless it is MLA.
    pub fn of(model: &ModelProfile) -> Option<MlaDims> {
        if model.attention.kind != AttentionKind::Mla {
            return None;
        }
        let d = model.dims();
        let at = &model.attention;
        let (hd, rope) = (at.head_dim as f64, at.rope_head_dim.unwrap_or(0) as f64);
        Some(MlaDims {
            flops_per_pair_head: d.attn_flops_per_pair_per_layer / at.heads as f64,
            prefill_flops_per_pair_head: 2.0 * (hd + rope) + 2.0 * hd,
            kv_elements_per_token: d.kv_elements_per_token_per_layer,
        })
    }
}

/// One layer's MLA attention on one GPU for a batch of equal sequences, full attention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlaShape {
    /// Sequences in the batch.
    pub batch: u64,
    /// Query heads on this GPU.
    pub heads: u64,
    /// The model's per-head constants.
    pub dims: MlaDims,
    /// Precision of the attention math's activations.
    pub activations: Precision,
    /// Precision of the KV cache.
    pub kv_cache: Precision,
}

impl MlaShape {
    fn kernel(&self, pairs: f64, kv: f64, new: f64) -> AttentionKernel {
        self.kernel_at(pairs, kv, new, self.dims.flops_per_pair_head)
    }

    fn kernel_at(
        &self,
        pairs: f64,
        kv: f64,
        new: f64,
        flops_per_pair_head: f64,
    ) -> AttentionKernel {
        let b = self.batch as f64;
        AttentionKernel {
            work: AttentionWork::of_batch(b, self.heads as f64, pairs, kv, new),
            flops_per_pair: self.heads as f64 * flops_per_pair_head,
            kv_bytes_per_token: self.dims.kv_elements_per_token * self.kv_cache.bytes(),
        }
    }

    /// Causal attention over `self.batch` prompts of `prompt` tokens each, nothing cached,
    /// counted absorbed (as the scalar step counts it).
    pub fn prefill(&self, prompt: u64) -> AttentionKernel {
        let n = prompt as f64;
        self.kernel(n * (n + 1.0) / 2.0, n, n)
    }

    /// The same work counted un-absorbed (as an MLA prefill curve prices it).
    pub fn prefill_unabsorbed(&self, prompt: u64) -> AttentionKernel {
        let n = prompt as f64;
        self.kernel_at(
            n * (n + 1.0) / 2.0,
            n,
            n,
            self.dims.prefill_flops_per_pair_head,
        )
    }

    /// One decode step of `self.batch` sequences with `cached` tokens each in the KV cache.
    pub fn decode(&self, cached: u64) -> AttentionKernel {
        let seen = (cached + 1) as f64;
        self.kernel(seen, seen, 1.0)
    }
}

/// One MoE layer's routed experts: `tokens` each routed to `topk` of `experts` gated experts
/// (`3 hidden inter` weights each, their intermediate width split `tp` ways, the experts
/// spread over `ep` GPUs), routing uniform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoeShape {
    /// Tokens in the layer.
    pub tokens: u64,
    /// Model width.
    pub hidden: u64,
    /// Each expert's intermediate width.
    pub inter: u64,
    /// Experts each token is routed to.
    pub topk: u64,
    /// Experts in the layer.
    pub experts: u64,
    /// Ways each expert's intermediate width is split.
    pub tp: u64,
    /// GPUs the experts are spread over.
    pub ep: u64,
    /// Precision of the experts' weights.
    pub weights: Precision,
    /// Precision of the activations.
    pub activations: Precision,
    /// FP8 scaled per block (priced by the `fp8_block` curve when the profile has one).
    pub block_fp8: bool,
}

impl MoeShape {
    /// The work on one GPU, as the step counts it: `T k / ep` rows; the experts of this GPU
    /// the tokens touch (`E / ep (1 - (1 - k/E)^T)` of them), their weights read once; the
    /// tokens' activations read and written.
    pub fn work(&self) -> MoeWork {
        let (t, e, k) = (self.tokens as f64, self.experts as f64, self.topk as f64);
        let ep = self.ep as f64;
        let expert_params = 3.0 * self.hidden as f64 * self.inter as f64 / self.tp as f64;
        let experts = e / ep * (1.0 - (1.0 - k / e).powf(t));
        MoeWork {
            rows: t * k / ep,
            experts,
            expert_params,
            bytes: experts * expert_params * self.weights.bytes()
                + 2.0 * t * self.hidden as f64 * self.activations.bytes(),
        }
    }
}

impl AttentionShape {
    /// Per sequence: `pairs` (query, key) pairs, `kv` tokens of KV cache read, `new` tokens
    /// written to it.
    fn kernel(&self, pairs: f64, kv: f64, new: f64) -> AttentionKernel {
        let b = self.batch as f64;
        AttentionKernel {
            work: AttentionWork::of_batch(b, self.heads as f64, pairs, kv, new),
            flops_per_pair: 4.0 * (self.heads * self.head_dim) as f64,
            kv_bytes_per_token: 2.0
                * (self.kv_heads * self.head_dim) as f64
                * self.kv_cache.bytes(),
        }
    }

    /// Causal attention over `self.batch` prompts of `prompt` tokens each, nothing cached.
    pub fn prefill(&self, prompt: u64) -> AttentionKernel {
        let n = prompt as f64;
        let (pairs, kv) = match self.window {
            // Sum of min(i, w) for i in 1..=n.
            Some(w) if (w as f64) < n => {
                let w = w as f64;
                (w * (w + 1.0) / 2.0 + (n - w) * w, w)
            }
            _ => (n * (n + 1.0) / 2.0, n),
        };
        let mut k = self.kernel(pairs, kv, n);
        // Queries past the window: the window caps their keys.
        if let Some(w) = self.window {
            k.work.window_queries = self.batch as f64 * prompt.saturating_sub(w) as f64;
        }
        k
    }

    /// One decode step of `self.batch` sequences with `cached` tokens each in the KV cache.
    pub fn decode(&self, cached: u64) -> AttentionKernel {
        let seen = match self.window {
            Some(w) => (cached + 1).min(w),
            None => cached + 1,
        } as f64;
        self.kernel(seen, seen, 1.0)
    }

    /// As [`Self::decode`], the KV bytes per token counted as a decode kernel reads them: once
    /// per KV head and group of up to 32 query heads on it ([`decode_kv_reads`]); and its
    /// thread blocks as it runs them, one per sequence and such group, each sequence's whole
    /// history (`cached + 1` tokens, a window notwithstanding) split over [`decode_splits`] on
    /// a GPU of `sms` SMs.
    pub fn decode_read(&self, cached: u64, sms: Option<u32>) -> AttentionKernel {
        let mut k = self.decode(cached);
        let reads = decode_kv_reads(self.heads as f64 / self.kv_heads as f64);
        k.kv_bytes_per_token *= reads;
        let (b, per_sequence) = (self.batch as f64, self.kv_heads as f64 * reads);
        k.work.blocks = b * per_sequence * decode_splits((cached + 1) as f64, b, per_sequence, sms);
        k
    }
}

/// The precision of the math a GQA / MHA prefill curve prices a kernel over a `kv_cache` cache
/// with `activations` at: the cache's when it is FP8 or narrower, else the activations'.
/// NVIDIA's context-attention tables (`reference/kernels/*/context_attention.csv`) show a
/// 16-bit-activation kernel over an FP8 cache running as fast as an all-FP8 one, not at the
/// 16-bit rate: TensorRT-LLM's context kernels over an FP8 cache run FP8 math.
pub fn prefill_math(kv_cache: Precision, activations: Precision) -> Precision {
    if kv_cache.bytes() <= 1.0 {
        kv_cache
    } else {
        activations
    }
}

/// FLOPs and bytes of a GEMM of `m` tokens through an `n x k` weight, as the step model counts
/// them: `2 m n k`; the weight read once, the input read and the output written at the
/// activation precision.
pub fn gemm_work(m: u64, n: u64, k: u64, weights: Precision, acts: Precision) -> (f64, f64) {
    let (m, n, k) = (m as f64, n as f64, k as f64);
    (
        2.0 * m * n * k,
        n * k * weights.bytes() + (m * k + m * n) * acts.bytes(),
    )
}

impl KernelPricer {
    /// Price kernels on `gpu` as its profile stands.
    pub fn new(gpu: &GpuSystem) -> Self {
        KernelPricer { gpu: gpu.clone() }
    }

    /// Price kernels on `gpu` with its scalar efficiencies only, ignoring any GEMM, attention,
    /// collective and MoE curves.
    pub fn scalar(gpu: &GpuSystem) -> Self {
        let mut gpu = gpu.clone();
        gpu.gemm_curves = None;
        gpu.attention_curves = None;
        gpu.collective_curves = None;
        gpu.moe_curves = None;
        KernelPricer { gpu }
    }

    /// The GPU system priced.
    pub fn gpu(&self) -> &GpuSystem {
        &self.gpu
    }

    fn flops_per_s(&self, weights: Precision, activations: Precision) -> f64 {
        let (runs_on, rate) = self
            .gpu
            .peak_flops_per_s
            .resolve(ComputeClass::of_gemm(weights, activations));
        rate * self.gpu.efficiency.compute_for(runs_on)
    }

    fn roofline(&self, flops: f64, flops_per_s: f64, bytes: f64, kernels: f64) -> f64 {
        let compute_s = flops / flops_per_s;
        let memory_s = bytes / (self.gpu.hbm_bandwidth_bytes_per_s * self.gpu.efficiency.memory);
        compute_s.max(memory_s)
            + (1.0 - self.gpu.efficiency.overlap) * compute_s.min(memory_s)
            + kernels * self.gpu.overheads.kernel_s
    }

    /// A GEMM of `m` tokens through an `n x k` weight, s: `2 m n k` FLOPs; the weight read once,
    /// the input (`m x k`) read and the output (`m x n`) written at the activation precision, as
    /// the step model counts its projections. Priced by the profile's GEMM curve for the class
    /// the work runs on when it has one, else by the scalar efficiencies and one kernel overhead.
    pub fn gemm_s(&self, m: u64, n: u64, k: u64, weights: Precision, acts: Precision) -> f64 {
        let (flops, bytes) = gemm_work(m, n, k, weights, acts);
        let shape = [m as f64, n as f64, k as f64];
        let peaks = &self.gpu.peak_flops_per_s;
        let curve = self
            .gpu
            .gemm_curves
            .as_ref()
            .and_then(|c| c.for_gemm(weights, acts, peaks));
        match curve {
            Some((c, peak)) => c.time_s(
                flops,
                bytes,
                shape,
                peak,
                self.gpu.hbm_bandwidth_bytes_per_s,
            ),
            None => self.roofline(flops, self.flops_per_s(weights, acts), bytes, 1.0),
        }
    }

    /// A GEMM in FP8 scaled per block, s: by the profile's `fp8_block` curve when it has one,
    /// else as any FP8 GEMM ([`KernelPricer::gemm_s`]).
    pub fn gemm_block_fp8_s(&self, m: u64, n: u64, k: u64) -> f64 {
        let fp8 = Precision::Fp8;
        let curves = self.gpu.gemm_curves.as_ref();
        let (runs_on, peak) = self
            .gpu
            .peak_flops_per_s
            .resolve(ComputeClass::of_gemm(fp8, fp8));
        match curves.and_then(|c| c.fp8_block) {
            Some(c) if runs_on == ComputeClass::Fp8 => {
                let (flops, bytes) = gemm_work(m, n, k, fp8, fp8);
                let shape = [m as f64, n as f64, k as f64];
                c.time_s(
                    flops,
                    bytes,
                    shape,
                    peak,
                    self.gpu.hbm_bandwidth_bytes_per_s,
                )
            }
            _ => self.gemm_s(m, n, k, fp8, fp8),
        }
    }

    /// One MoE layer's routed experts on one GPU, s, priced as the step prices them (see
    /// [`MoeShape::work`] for the work): by the profile's MoE curve for the class the experts
    /// run on (`fp8_block` for FP8 scaled per block, when it has one) when there is one, else
    /// by the scalar efficiencies and four kernels (permute, two grouped GEMMs, combine).
    pub fn moe_experts_s(&self, m: &MoeShape) -> f64 {
        let w = m.work();
        let (runs_on, peak) = self
            .gpu
            .peak_flops_per_s
            .resolve(ComputeClass::of_gemm(m.weights, m.activations));
        let curves = self.gpu.moe_curves.as_ref();
        let curve = match curves {
            Some(c) if m.block_fp8 && runs_on == ComputeClass::Fp8 && c.fp8_block.is_some() => {
                c.fp8_block.as_ref()
            }
            Some(c) => c.for_class(runs_on),
            None => None,
        };
        match curve {
            Some(c) => c.time_s(&w, peak, self.gpu.hbm_bandwidth_bytes_per_s),
            None => self.roofline(
                w.flops(),
                self.flops_per_s(m.weights, m.activations),
                w.bytes,
                4.0,
            ),
        }
    }

    /// One layer's causal attention over `a.batch` prompts of `prompt` tokens each, nothing
    /// cached before, s.
    pub fn prefill_attention_s(&self, a: &AttentionShape, prompt: u64) -> f64 {
        let curve = self.gqa_curves(a.kv_cache).0;
        let math = if curve.is_some() {
            prefill_math(a.kv_cache, a.activations)
        } else {
            a.activations
        };
        self.attention_s(a.kv_cache, math, &a.prefill(prompt), curve)
    }

    /// One decode step of one layer's attention for `a.batch` sequences with `cached` tokens
    /// each in the KV cache, s; by a curve, the KV cache read as the kernel reads it
    /// ([`AttentionShape::decode_read`]).
    pub fn decode_attention_s(&self, a: &AttentionShape, cached: u64) -> f64 {
        let curves = self.gpu.attention_curves.as_ref();
        let ratio = a.heads as f64 / a.kv_heads as f64;
        match curves.and_then(|c| c.gqa_decode(a.kv_cache, ratio, a.head_dim)) {
            Some(c) => {
                let k = a.decode_read(cached, self.gpu.streaming_multiprocessors);
                self.attention_s(a.kv_cache, a.activations, &k, Some(c))
            }
            None => self.attention_s(a.kv_cache, a.activations, &a.decode(cached), None),
        }
    }

    /// The profile's (prefill, decode) GQA / MHA curves for a `kv_cache` cache.
    fn gqa_curves(&self, kv_cache: Precision) -> (Option<AttentionCurve>, Option<AttentionCurve>) {
        let curves = self.gpu.attention_curves.as_ref();
        curves.map_or((None, None), |c| c.gqa(kv_cache))
    }

    /// One layer's MLA attention over `a.batch` prompts of `prompt` tokens each, s: by the
    /// profile's MLA prefill curve for the KV cache's precision when it has one, else as any
    /// attention by the scalars.
    pub fn mla_prefill_attention_s(&self, a: &MlaShape, prompt: u64) -> f64 {
        match self.mla_curves(a.kv_cache).0 {
            Some(c) => self.mla_curve_s(c, a, &a.prefill_unabsorbed(prompt)),
            None => self.attention_s(a.kv_cache, a.activations, &a.prefill(prompt), None),
        }
    }

    /// One decode step of one layer's MLA attention for `a.batch` sequences with `cached`
    /// tokens each in the KV cache, s: by the MLA decode curve, else the scalars.
    pub fn mla_decode_attention_s(&self, a: &MlaShape, cached: u64) -> f64 {
        match self.mla_curves(a.kv_cache).1 {
            Some(c) => self.mla_curve_s(c, a, &a.decode(cached)),
            None => self.attention_s(a.kv_cache, a.activations, &a.decode(cached), None),
        }
    }

    fn mla_curves(&self, kv_cache: Precision) -> (Option<AttentionCurve>, Option<AttentionCurve>) {
        let curves = self.gpu.attention_curves.as_ref();
        curves.map_or((None, None), |c| c.mla(kv_cache))
    }

    fn mla_curve_s(&self, c: AttentionCurve, a: &MlaShape, k: &AttentionKernel) -> f64 {
        let peak = self.mla_peak_flops_per_s(a.kv_cache);
        let hbm = self.gpu.hbm_bandwidth_bytes_per_s;
        c.time_s(&k.work, k.flops_per_pair, k.kv_bytes_per_token, peak, hbm)
    }

    /// Raw peak FLOP/s an MLA curve prices at for a `kv_cache` cache: of 16-bit math over it,
    /// the math of every measured MLA kernel.
    pub fn mla_peak_flops_per_s(&self, kv_cache: Precision) -> f64 {
        self.gpu
            .peak_flops_per_s
            .resolve(ComputeClass::of_gemm(kv_cache, Precision::Bf16))
            .1
    }

    /// Raw peak FLOP/s of the tensor-core class attention over a `kv_cache` cache with
    /// `activations` runs on.
    pub fn attention_peak_flops_per_s(&self, kv_cache: Precision, activations: Precision) -> f64 {
        self.gpu
            .peak_flops_per_s
            .resolve(ComputeClass::of_gemm(kv_cache, activations))
            .1
    }

    /// By `curve` when there is one (its floor stands for the whole kernel, KV-cache write
    /// included), else by the roofline and the step's attention kernel count.
    fn attention_s(
        &self,
        kv_cache: Precision,
        activations: Precision,
        k: &AttentionKernel,
        curve: Option<AttentionCurve>,
    ) -> f64 {
        let hbm = self.gpu.hbm_bandwidth_bytes_per_s;
        if let Some(c) = curve {
            let peak = self.attention_peak_flops_per_s(kv_cache, activations);
            return c.time_s(&k.work, k.flops_per_pair, k.kv_bytes_per_token, peak, hbm);
        }
        self.roofline(
            k.work.pairs * k.flops_per_pair,
            self.flops_per_s(kv_cache, activations),
            k.work.kv_tokens * k.kv_bytes_per_token,
            KERNELS_ATTN,
        )
    }

    fn link(&self) -> (f64, f64) {
        let i = &self.gpu.interconnect;
        (
            i.bandwidth_bytes_per_s * self.gpu.efficiency.interconnect,
            i.latency_s,
        )
    }

    /// An all-reduce of `bytes` per GPU over `gpus` GPUs by NCCL (`custom`: by the serving
    /// engine's own kernel), s: by that library's curve when the profile has one, else by the
    /// interconnect's scalars with a kernel launch.
    pub fn all_reduce_s(&self, gpus: u32, bytes: f64, custom: bool) -> f64 {
        let curves = self.gpu.collective_curves.as_ref();
        let curve = curves.and_then(|c| {
            if custom {
                c.all_reduce_custom
            } else {
                c.all_reduce
            }
        });
        if let Some(c) = curve {
            let wire = crate::profile::kernel_curves::all_reduce_wire_bytes(gpus, bytes);
            return c.time_s(gpus, wire, self.gpu.interconnect.bandwidth_bytes_per_s);
        }
        let (bw, lat) = self.link();
        all_reduce_s(gpus, bytes, bw, lat) + self.gpu.overheads.kernel_s
    }

    /// An all-to-all over `gpus` GPUs in which each GPU's buffer of `bytes` is spread evenly
    /// over all of them (NCCL's `alltoall`: it sends `(gpus - 1) / gpus` of it), s: by the
    /// profile's all-to-all curve when it has one, else by the interconnect's scalars.
    pub fn all_to_all_s(&self, gpus: u32, bytes: f64) -> f64 {
        let wire = all_to_all_wire_bytes(gpus, bytes);
        let curve = self
            .gpu
            .collective_curves
            .as_ref()
            .and_then(|c| c.all_to_all);
        if let Some(c) = curve {
            return c.time_s(gpus, wire, self.gpu.interconnect.bandwidth_bytes_per_s);
        }
        let (bw, lat) = self.link();
        all_to_all_s(gpus, wire, bw, lat) + self.gpu.overheads.kernel_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{Batch, CostModel, GpuCost, OpKind};
    use crate::placement::{place, ParallelRequest};
    use crate::profile::{load_hardware, load_model};
    use approx::assert_relative_eq;

    #[test]
    fn a_gemm_with_a_curve_is_priced_by_it() {
        let c = crate::profile::GemmCurve {
            floor_s: 3e-6,
            compute_efficiency: 0.9,
            half_rows: 200.0,
            half_columns: 250.0,
            memory_efficiency: 0.8,
            half_depth: 100.0,
            depth_latency_s: 1e-9,
        };
        let mut h = load_hardware("h100-sxm", &[]).unwrap();
        h.gpu.as_mut().unwrap().gemm_curves = Some(crate::profile::GemmCurves {
            bf16: Some(c),
            ..Default::default()
        });
        let g = h.gpu().unwrap();
        let (flops, bytes) = gemm_work(16, 4096, 4096, Precision::Bf16, Precision::Bf16);
        assert_relative_eq!(
            KernelPricer::new(g).gemm_s(16, 4096, 4096, Precision::Bf16, Precision::Bf16),
            c.time_s(flops, bytes, [16.0, 4096.0, 4096.0], 989.4e12, 3.35e12),
            max_relative = 1e-12
        );
    }

    #[test]
    fn block_fp8_gemms_take_their_own_curve_or_fall_back_to_fp8() {
        let mut h = load_hardware("h100-sxm", &[]).unwrap();
        let fp8 = Precision::Fp8;
        let p = KernelPricer::new(h.gpu().unwrap());
        let c = h
            .gpu()
            .unwrap()
            .gemm_curves
            .clone()
            .unwrap()
            .fp8_block
            .unwrap();
        let (flops, bytes) = gemm_work(64, 8192, 8192, fp8, fp8);
        assert_relative_eq!(
            p.gemm_block_fp8_s(64, 8192, 8192),
            c.time_s(flops, bytes, [64.0, 8192.0, 8192.0], 1978.9e12, 3.35e12),
            max_relative = 1e-12
        );
        h.gpu
            .as_mut()
            .unwrap()
            .gemm_curves
            .as_mut()
            .unwrap()
            .fp8_block = None;
        let p = KernelPricer::new(h.gpu().unwrap());
        assert_eq!(
            p.gemm_block_fp8_s(64, 8192, 8192),
            p.gemm_s(64, 8192, 8192, fp8, fp8)
        );
    }

    #[test]
    fn one_token_reads_only_its_experts() {
        // One bf16 token through 2 of 8 experts of 4096 x 14336 on one GPU: memory-bound, the
        // two experts' weights read once, the token's activations in and out, four kernels.
        let h = load_hardware("h100-sxm", &[]).unwrap();
        let g = h.gpu().unwrap();
        let bf16 = Precision::Bf16;
        let mut shape = MoeShape {
            tokens: 1,
            hidden: 4096,
            inter: 14336,
            topk: 2,
            experts: 8,
            tp: 1,
            ep: 1,
            weights: bf16,
            activations: bf16,
            block_fp8: false,
        };
        let p = KernelPricer::scalar(g);
        let s = p.moe_experts_s(&shape);
        let params = 3.0 * 4096.0 * 14336.0;
        let memory = (2.0 * params * 2.0 + 2.0 * 4096.0 * 2.0) / (3.35e12 * g.efficiency.memory);
        let compute = 2.0 * 2.0 * params / (989.4e12 * g.efficiency.compute);
        assert_relative_eq!(
            s,
            memory + (1.0 - g.efficiency.overlap) * compute + 4.0 * g.overheads.kernel_s,
            max_relative = 1e-9
        );
        // Spread over 4 GPUs, each reads and computes a quarter of the experts' share.
        shape.ep = 4;
        assert!(p.moe_experts_s(&shape) < s / 2.0);
    }

    #[test]
    fn moe_layers_take_their_formats_curve_or_fall_back() {
        // DeepSeek-V3's layer on H200 at 64 tokens, experts over 8 GPUs, FP8 per block.
        let mut h = load_hardware("h200-hgx", &[]).unwrap();
        let fp8 = Precision::Fp8;
        let shape = MoeShape {
            tokens: 64,
            hidden: 7168,
            inter: 2048,
            topk: 8,
            experts: 256,
            tp: 1,
            ep: 8,
            weights: fp8,
            activations: fp8,
            block_fp8: true,
        };
        let curves = h.gpu().unwrap().moe_curves.clone().unwrap();
        let (peak, hbm) = (1978.9e12, 4.8e12);
        let p = KernelPricer::new(h.gpu().unwrap());
        let block = curves.fp8_block.unwrap().time_s(&shape.work(), peak, hbm);
        assert_relative_eq!(p.moe_experts_s(&shape), block, max_relative = 1e-12);
        // Per-tensor FP8 takes the fp8 curve; so does per-block FP8 without a curve of its own.
        let tensor = curves.fp8.unwrap().time_s(&shape.work(), peak, hbm);
        let per_tensor = MoeShape {
            block_fp8: false,
            ..shape
        };
        assert_relative_eq!(p.moe_experts_s(&per_tensor), tensor, max_relative = 1e-12);
        let g = h.gpu.as_mut().unwrap();
        g.moe_curves.as_mut().unwrap().fp8_block = None;
        let p = KernelPricer::new(h.gpu().unwrap());
        assert_relative_eq!(p.moe_experts_s(&shape), tensor, max_relative = 1e-12);
        // Without MoE curves, the scalars.
        h.gpu.as_mut().unwrap().moe_curves = None;
        let g = h.gpu().unwrap();
        assert_eq!(
            KernelPricer::new(g).moe_experts_s(&shape),
            KernelPricer::scalar(g).moe_experts_s(&shape)
        );
    }

    #[test]
    fn a_large_gemm_runs_at_the_efficient_peak() {
        let h = load_hardware("h100-sxm", &[]).unwrap();
        let g = h.gpu().unwrap();
        let p = KernelPricer::scalar(g);
        let s = p.gemm_s(8192, 8192, 8192, Precision::Bf16, Precision::Bf16);
        let compute = 2.0 * 8192f64.powi(3) / (989.4e12 * g.efficiency.compute);
        let memory = 3.0 * 8192f64.powi(2) * 2.0 / (3.35e12 * g.efficiency.memory);
        assert_relative_eq!(
            s,
            compute + (1.0 - g.efficiency.overlap) * memory + g.overheads.kernel_s,
            max_relative = 1e-12
        );
    }

    #[test]
    fn decode_attention_matches_the_step_models_attention_per_layer() {
        // Llama 3.1 8B on one H100: the step's attention operator over its 32 layers is 32 times
        // one layer's attention priced here.
        let h = load_hardware("h100-sxm", &[]).unwrap();
        let m = load_model("llama-3.1-8b", &[]).unwrap();
        let pl = place(&m, &h, ParallelRequest::default()).unwrap();
        let g = h.gpu().unwrap();
        let step = GpuCost::new(&m, g, &pl).step(&Batch::decode(16, 2047, None));
        let op = step.op(OpKind::Attention);
        let shape = AttentionShape {
            batch: 16,
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            window: None,
            activations: m.precision.activations,
            kv_cache: m.precision.kv_cache,
        };
        let one = KernelPricer::new(g).decode_attention_s(&shape, 2047);
        let whole = op.compute_s.max(op.memory_s) + op.exposed_s + op.overhead_s;
        assert_relative_eq!(32.0 * one, whole, max_relative = 1e-9);
    }

    #[test]
    fn decode_past_the_grouping_limit_reads_the_cache_once_per_group_of_query_heads() {
        // Llama 3.1 8B made 64 query heads of 64 dims on one KV head, over an FP8 cache, on one
        // H100: past 32 query heads per KV head the ungrouped FP8-KV decode curve reads the
        // cache once per 32 query heads, twice, in the kernel as in the step.
        let h = load_hardware("h100-sxm", &[]).unwrap();
        let mut m = load_model("llama-3.1-8b", &[]).unwrap();
        (
            m.attention.heads,
            m.attention.kv_heads,
            m.attention.head_dim,
        ) = (64, 1, 64);
        m.precision.kv_cache = Precision::Fp8;
        let pl = place(&m, &h, ParallelRequest::default()).unwrap();
        let g = h.gpu().unwrap();
        let shape = AttentionShape {
            batch: 16,
            heads: 64,
            kv_heads: 1,
            head_dim: 64,
            window: None,
            activations: m.precision.activations,
            kv_cache: Precision::Fp8,
        };
        let one = KernelPricer::new(g).decode_attention_s(&shape, 2047);
        // The ungrouped family's FP8-KV curve, its thread blocks one per group of 32 query heads.
        let curves = g.attention_curves.as_ref().unwrap();
        let c = curves.gqa_decode(Precision::Fp8, 64.0, 64).unwrap();
        assert_eq!(Some(c), curves.decode_ungrouped_fp8_kv);
        let k = shape.decode_read(2047, g.streaming_multiprocessors);
        // 2 x 64 dims x 1 byte a token, read twice.
        assert_relative_eq!(k.kv_bytes_per_token, 2.0 * 128.0);
        assert!(k.work.blocks >= 16.0 * 2.0);
        let peak = g.peak_flops_per_s.bf16;
        let hbm = g.hbm_bandwidth_bytes_per_s;
        let read = c.time_s(&k.work, k.flops_per_pair, 2.0 * 128.0, peak, hbm);
        assert_relative_eq!(one, read, max_relative = 1e-12);
        assert_relative_eq!(
            c.memory_s(&k.work, k.kv_bytes_per_token, hbm),
            2.0 * c.memory_s(&k.work, 128.0, hbm)
        );
        let step = GpuCost::new(&m, g, &pl).step(&Batch::decode(16, 2047, None));
        let op = step.op(OpKind::Attention);
        let whole = op.compute_s.max(op.memory_s) + op.exposed_s + op.overhead_s;
        assert_relative_eq!(32.0 * one, whole, max_relative = 1e-9);
    }

    fn shape_of(batch: u64, s: &MlaShape) -> MlaShape {
        MlaShape { batch, ..*s }
    }

    #[test]
    fn mla_attention_matches_the_step_models_attention_per_layer() {
        // DeepSeek-V3 at tensor parallelism 8 on B200: 16 heads per GPU, the latent read whole.
        let h = load_hardware("b200-hgx", &[]).unwrap();
        let m = load_model("deepseek-v3", &[]).unwrap();
        let req = ParallelRequest {
            tp: Some(8),
            ..Default::default()
        };
        let pl = place(&m, &h, req).unwrap();
        let g = h.gpu().unwrap();
        let step = GpuCost::new(&m, g, &pl).step(&Batch::decode(4, 2047, None));
        let op = step.op(OpKind::Attention);
        let shape = MlaShape {
            batch: 4,
            heads: 16,
            dims: MlaDims::of(&m).unwrap(),
            activations: m.precision.activations,
            kv_cache: m.precision.kv_cache,
        };
        // Latent 512 + rotary key 64; scores over 576 dims, values over 512.
        assert_relative_eq!(shape.dims.kv_elements_per_token, 576.0);
        assert_relative_eq!(shape.dims.flops_per_pair_head, 2.0 * 576.0 + 2.0 * 512.0);
        // Priced by the profile's MLA decode curve, in the step as here.
        assert!(g.attention_curves.as_ref().unwrap().mla_decode.is_some());
        let p = KernelPricer::new(g);
        let whole =
            |op: &crate::cost::OpCost| op.compute_s.max(op.memory_s) + op.exposed_s + op.overhead_s;
        let one = p.mla_decode_attention_s(&shape, 2047);
        assert_relative_eq!(61.0 * one, whole(op), max_relative = 1e-9);
        // Prefill by the MLA prefill curve, un-absorbed: 2 (128 + 64) + 2 x 128 FLOPs a pair
        // and head.
        assert_relative_eq!(shape.dims.prefill_flops_per_pair_head, 640.0);
        let cost = GpuCost::new(&m, g, &pl);
        let step = cost.step(&Batch::prefill(2, 3000, None));
        let one = p.mla_prefill_attention_s(&shape_of(2, &shape), 3000);
        assert_relative_eq!(
            61.0 * one,
            whole(step.op(OpKind::Attention)),
            max_relative = 1e-9
        );
        // Without MLA curves, the scalars, as before.
        let mut h = h.clone();
        let a = h.gpu.as_mut().unwrap().attention_curves.as_mut().unwrap();
        (a.mla_prefill, a.mla_decode) = (None, None);
        let g = h.gpu().unwrap();
        assert_eq!(
            KernelPricer::new(g).mla_decode_attention_s(&shape, 2047),
            KernelPricer::scalar(g).mla_decode_attention_s(&shape, 2047)
        );
        assert_eq!(
            GpuCost::new(&m, g, &pl).priced_by(OpKind::Attention),
            "roofline (scalar efficiencies)"
        );
        assert!(MlaDims::of(&load_model("llama-3.1-8b", &[]).unwrap()).is_none());
    }

    #[test]
    fn a_window_caps_what_a_prefill_sees() {
        let h = load_hardware("h100-sxm", &[]).unwrap();
        // The scalar roofline: the pairs alone (a curve adds padding the window does not cap).
        let p = KernelPricer::scalar(h.gpu().unwrap());
        let mut a = AttentionShape {
            batch: 1,
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            window: None,
            activations: Precision::Bf16,
            kv_cache: Precision::Bf16,
        };
        let full = p.prefill_attention_s(&a, 8192);
        a.window = Some(1024);
        assert!(p.prefill_attention_s(&a, 8192) < full / 4.0);
        a.window = Some(100_000);
        assert_relative_eq!(p.prefill_attention_s(&a, 8192), full, max_relative = 1e-12);
    }
}
