//! Cost of one iteration on a GPU replica whose weights and KV cache stream from HBM.
//!
//! Each operator costs `max(flops / (peak * compute_eff), bytes / (hbm_bw * memory_eff))` plus a
//! fixed per-kernel overhead (DESIGN.md section 2). Weights are read once per iteration whatever
//! the batch; KV cache is read per sequence in proportion to its context. A MoE layer reads the
//! experts its tokens touch: `E (1 - (1 - k/E)^T)` of them for T tokens, assuming uniform routing.
//! Tensor parallelism adds two all-reduces per layer; pipeline stages add activation sends and are
//! traversed in turn, so one iteration's latency covers every layer.
//!
//! Attention data parallelism (placement's `attention_dp`) spreads the batch's sequences evenly
//! over the group: each GPU runs attention, dense MLPs, shared experts, router and LM head with
//! whole weights for its own sequences' tokens and reads only their KV cache; the routed experts
//! stay spread over the group. A prefill chunk cannot be split, so the busiest GPU, which sets
//! the step's time, holds the longest chunk besides its share of the rest. The all-reduces give
//! way to two all-to-alls per MoE layer (tokens dispatched to the GPUs of their experts, results
//! combined back): each GPU sends its tokens' hidden states once to each other GPU holding one of
//! their experts.
//!
//! A profile with a GEMM curve for the class its dense GEMMs run on prices the projections, the
//! dense MLP and the LM head by that curve instead ([`super::gemm`]): efficiency rising with the
//! tokens and output width, a floor per GEMM kernel. A profile with a MoE curve for the class
//! the routed experts run on prices them by it ([`super::moe`]): grouped GEMMs padded per
//! touched expert, a time per routed row for routing, permute and combine, a floor per layer.
//!
//! A profile with attention curves prices GQA / MHA attention by them ([`super::attention`]):
//! prefill chunks and decoding sequences as separate kernels per layer, each with its floor,
//! per-head time and padded work; MLA attention by the profile's MLA curves when it has them,
//! else by the scalars. A profile with collective curves prices the all-reduces by the faster of
//! its NCCL and engine all-reduce curves and the all-to-alls by its all-to-all curve, latency
//! and launch included, in place of the interconnect's scalars.
//!
//! Expert-parallel GPUs (attention data parallelism) wait for the busiest: where the model states
//! how unevenly its tokens spread over its experts (`moe.expert_load_cv`), that GPU's routed rows,
//! activations and dispatched bytes are its expected load over the mean
//! ([`super::moe::ExpertImbalance`]); tensor-parallel experts split every expert evenly.
//!
//! Ignored: overlap of communication with compute, kernel fusion beyond the kernel counts below,
//! routing imbalance for models that do not state it (and the batch's imbalance across
//! attention-data-parallel GPUs beyond the longest prefill chunk), and the reduced efficiency of
//! very small GEMMs (the per-kernel overhead stands in for it).

use super::attention::{AttentionPricing, Layers};
use super::batch::Share;
use super::collective::{all_reduce_s, all_to_all_s, send_s};
use super::gemm::{curve_op, InnerDims};
use super::moe::{ExpertImbalance, MoePricing};
use super::{AroundAttention, Batch, CostModel, OpCost, OpKind, StepCost};
use crate::placement::Placement;
use crate::profile::model::AttentionKind;
use crate::profile::{
    CollectiveCurves, ComputeClass, GemmCurve, GemmGroup, GpuSystem, ModelProfile, MoeWork,
};

/// Kernels per layer in each operator: the count a CUDA-graph decode step of vLLM /
/// TensorRT-LLM launches, read off their model code (norms and the gated activation are
/// [`OpKind::Elementwise`]'s).
const KERNELS_ATTN_PROJ: f64 = 3.0; // QKV GEMM, rotary, output GEMM
pub(crate) const KERNELS_ATTN: f64 = 2.0; // KV-cache write, attention
const KERNELS_MLP: f64 = 2.0; // gate-up GEMM, down GEMM
const KERNELS_MOE: f64 = 5.0; // router, top-k/permute, two grouped GEMMs, combine
const KERNELS_MOE_DENSE: f64 = 1.0; // router GEMM: outside the MoE curve's fused layer
const KERNELS_HEAD: f64 = 3.0; // final norm, LM-head GEMM, sampling

/// Element-wise kernels of every layer, as NVIDIA's aiconfigurator-core lays out a TensorRT-LLM
/// decoder layer (sdk/models/llama.py, gpt.py, deepseek.py: `add_norm_1`, `add_norm_2`, and
/// in dense layers `act_gate`): two residual-add-and-norm kernels, each reading the residual
/// and the layer's output and writing the new residual and its normalised copy (4 hidden
/// elements a token), and a gated activation reading the gate and up halves and writing their
/// product (its elements a token: the dense MLP's parameters over the hidden size, per
/// tensor-parallel rank). Elements of 16 bits, as aiconfigurator counts them.
const KERNELS_NORMS: f64 = 2.0;
const NORM_ELEMENTS_PER_HIDDEN: f64 = 4.0;
const ELEMENTWISE_BYTES: f64 = 2.0;

/// Per-device constants of one placed model on one GPU system.
#[derive(Debug, Clone)]
pub struct GpuCost {
    /// Ways the attention, dense-MLP, shared-expert and LM-head weights are split: `tp`, or 1
    /// under attention data parallelism.
    tp: f64,
    /// Ways the batch's tokens are split for those operators: 1, or `tp` under attention data
    /// parallelism.
    dp: f64,
    /// GPUs the routed experts are spread over.
    ep: f64,
    tp_degree: u32,
    pp: f64,
    layers: f64,
    window_layers: f64,
    dense_layers: f64,
    moe_layers: f64,
    hidden: f64,
    act_bytes: f64,
    attn_params: f64,
    dense_mlp_params: f64,
    experts: f64,
    active_experts: f64,
    expert_params: f64,
    shared_params: f64,
    router_params: f64,
    lm_head_params: f64,
    weight_bytes: f64,
    expert_bytes: f64,
    kv_bytes_per_token_layer: f64,
    attn_flops_per_pair_layer: f64,
    window: Option<u64>,
    flops_gemm: f64,
    flops_expert: f64,
    flops_attn: f64,
    mem_bytes_per_s: f64,
    overlap: f64,
    link_bytes_per_s: f64,
    link_latency_s: f64,
    kernel_s: f64,
    iteration_s: f64,
    per_sequence_s: f64,
    /// The GEMM curve, when the profile has one for the class the model's dense GEMMs run on
    /// (boxed: the cost stays small for profiles without).
    curves: Option<Box<Curves>>,
    /// Attention priced by the profile's attention curves, when it has any.
    attention: Option<Box<AttentionPricing>>,
    /// Collectives priced by the profile's collective curves, when it has any, with the raw
    /// per-GPU link bandwidth, bytes/s.
    collectives: Option<Box<(CollectiveCurves, f64)>>,
    /// Routed experts priced by the profile's MoE curve for their class, when it has one.
    moe: Option<Box<MoePricing>>,
    /// Load imbalance of expert-parallel GPUs, when the model states its experts' load spread
    /// and they are expert-parallel (attention data parallelism).
    imbalance: Option<ExpertImbalance>,
}

/// The GEMM curve of one placed model's dense GEMMs.
#[derive(Debug, Clone)]
struct Curves {
    /// Curve and raw peak FLOP/s of the class the dense GEMMs run on.
    gemm: (GemmCurve, f64),
    inner: InnerDims,
    hbm_bytes_per_s: f64,
}

impl GpuCost {
    /// Precompute the per-device constants of `model` placed by `placement` on `gpu`.
    pub fn new(model: &ModelProfile, gpu: &GpuSystem, placement: &Placement) -> Self {
        let d = model.dims();
        let p = &model.precision;
        let eff = &gpu.efficiency;
        let peak = |c: ComputeClass| {
            let (runs_on, rate) = gpu.peak_flops_per_s.resolve(c);
            rate * eff.compute_for(runs_on)
        };
        let peaks = &gpu.peak_flops_per_s;
        let curve = gpu
            .gemm_curves
            .as_ref()
            .and_then(|c| c.for_gemm(p.weights, p.activations, peaks))
            .map(|(k, rate)| (*k, rate));
        let group = placement.tp as f64;
        let (tp, dp) = if placement.attention_dp {
            (1.0, group)
        } else {
            (group, 1.0)
        };
        let layers = model.architecture.layers as f64;
        let window_layers = model
            .attention
            .sliding_window_layer_fraction
            .map_or(0.0, |f| (f * layers).round());
        let kv_split = match model.attention.kind {
            _ if placement.attention_dp => 1.0,
            AttentionKind::Gqa => (placement.tp as u64).min(model.attention.kv_heads) as f64,
            AttentionKind::Mla => 1.0,
        };
        let moe = model.moe.as_ref();
        let curves = curve.map(|gemm| Curves {
            gemm,
            inner: InnerDims::of(model, tp),
            hbm_bytes_per_s: gpu.hbm_bandwidth_bytes_per_s,
        });
        let kv_bytes_per_token_layer =
            d.kv_elements_per_token_per_layer * p.kv_cache.bytes() / kv_split;
        let attention =
            AttentionPricing::new(model, gpu, tp, kv_bytes_per_token_layer).map(Box::new);
        let expert_class = ComputeClass::of_gemm(model.expert_weight_precision(), p.activations);
        let (expert_runs_on, expert_peak) = gpu.peak_flops_per_s.resolve(expert_class);
        let moe_pricing = gpu
            .moe_curves
            .as_ref()
            .and_then(|c| c.for_class(expert_runs_on))
            .filter(|_| moe.is_some())
            .map(|c| {
                Box::new(MoePricing {
                    curve: *c,
                    peak_flops_per_s: expert_peak,
                    hbm_bytes_per_s: gpu.hbm_bandwidth_bytes_per_s,
                })
            });
        let collectives = gpu
            .collective_curves
            .as_ref()
            .map(|c| Box::new((c.clone(), gpu.interconnect.bandwidth_bytes_per_s)));
        GpuCost {
            tp,
            dp,
            ep: group,
            tp_degree: placement.tp,
            pp: placement.pp as f64,
            layers,
            window_layers,
            dense_layers: d.dense_layers as f64,
            moe_layers: d.moe_layers as f64,
            hidden: model.architecture.hidden_size as f64,
            act_bytes: p.activations.bytes(),
            attn_params: d.attn_params_per_layer,
            dense_mlp_params: d.dense_mlp_params_per_layer,
            experts: moe.map_or(0.0, |m| m.experts as f64),
            active_experts: moe.map_or(0.0, |m| m.active_experts as f64),
            expert_params: d.expert_params,
            shared_params: d.shared_expert_params_per_layer,
            router_params: d.router_params_per_layer,
            lm_head_params: d.lm_head_params,
            weight_bytes: p.weights.bytes(),
            expert_bytes: model.expert_weight_precision().bytes(),
            kv_bytes_per_token_layer,
            attn_flops_per_pair_layer: d.attn_flops_per_pair_per_layer,
            window: model.attention.sliding_window_tokens,
            flops_gemm: peak(ComputeClass::of_gemm(p.weights, p.activations)),
            flops_expert: peak(expert_class),
            flops_attn: peak(ComputeClass::of_gemm(p.kv_cache, p.activations)),
            mem_bytes_per_s: gpu.hbm_bandwidth_bytes_per_s * eff.memory,
            overlap: eff.overlap,
            link_bytes_per_s: gpu.interconnect.bandwidth_bytes_per_s * eff.interconnect,
            link_latency_s: gpu.interconnect.latency_s,
            kernel_s: gpu.overheads.kernel_s,
            iteration_s: gpu.overheads.iteration_s,
            per_sequence_s: gpu.overheads.per_sequence_s,
            curves: curves.map(Box::new),
            attention,
            collectives,
            moe: moe_pricing,
            imbalance: moe
                .and_then(|m| m.expert_load_cv)
                .filter(|_| placement.attention_dp)
                .and_then(|cv| {
                    ExpertImbalance::new(cv, moe.map_or(0.0, |m| m.experts as f64), group)
                }),
        }
    }

    /// An operator of dense GEMMs (`flops` in all, as `group`): by the GEMM curve when there
    /// is one, else by the roofline at `flops_per_s`; `gemm_kernels` of its `kernels` are GEMMs.
    fn gemms(
        &self,
        group: impl FnOnce(&InnerDims) -> GemmGroup,
        flops: f64,
        flops_per_s: f64,
        bytes: f64,
        gemm_kernels: f64,
        kernels: f64,
    ) -> OpCost {
        match self.curves.as_deref() {
            Some(Curves {
                gemm: (c, peak),
                inner,
                hbm_bytes_per_s,
            }) => curve_op(
                c,
                *peak,
                *hbm_bytes_per_s,
                group(inner),
                bytes,
                gemm_kernels,
                kernels - gemm_kernels,
                self.kernel_s,
            ),
            None => self.roofline(flops, flops_per_s, bytes, kernels),
        }
    }

    fn roofline(&self, flops: f64, flops_per_s: f64, bytes: f64, kernels: f64) -> OpCost {
        let compute_s = flops / flops_per_s;
        let memory_s = bytes / self.mem_bytes_per_s;
        OpCost {
            flops,
            bytes,
            compute_s,
            memory_s,
            exposed_s: (1.0 - self.overlap) * compute_s.min(memory_s),
            interconnect_s: 0.0,
            overhead_s: kernels * self.kernel_s,
        }
    }
}

impl CostModel for GpuCost {
    fn priced_by(&self, op: OpKind) -> &'static str {
        let collective = |f: fn(&CollectiveCurves) -> bool| {
            self.collectives.as_deref().is_some_and(|(c, _)| f(c))
        };
        match op {
            OpKind::AttentionProjections | OpKind::Mlp | OpKind::LmHead => {
                if self.curves.is_some() {
                    "GEMM curve"
                } else {
                    "roofline (scalar efficiencies)"
                }
            }
            OpKind::Attention => {
                if self.attention.as_ref().is_some_and(|a| a.mla) {
                    "MLA attention curves"
                } else if self.attention.is_some() {
                    "attention curves"
                } else {
                    "roofline (scalar efficiencies)"
                }
            }
            OpKind::Experts if self.moe.is_some() && self.imbalance.is_some() => {
                "MoE curve, busiest expert-parallel GPU"
            }
            OpKind::Experts if self.moe.is_some() => "MoE curve (routed experts)",
            OpKind::Embedding | OpKind::Experts | OpKind::Elementwise => {
                "roofline (scalar efficiencies)"
            }
            OpKind::TensorParallelComm if self.dp <= 1.0 => {
                if collective(|c| c.all_reduce.is_some() || c.all_reduce_custom.is_some()) {
                    "all-reduce curves"
                } else {
                    "link bandwidth and latency"
                }
            }
            OpKind::ExpertParallelComm if self.dp > 1.0 => {
                if collective(|c| c.all_to_all.is_some()) {
                    "all-to-all curve"
                } else {
                    "link bandwidth and latency"
                }
            }
            OpKind::PipelineComm => "link bandwidth and latency",
            OpKind::Host => "host overheads",
            _ => "-",
        }
    }

    fn step(&self, b: &Batch) -> StepCost {
        let mut c = StepCost::default();
        if b.tokens == 0 {
            return c;
        }
        // Tokens, sampled tokens and attention work of the busiest GPU's sequences: all of them
        // unless attention runs data-parallel, where a prefill chunk stays on its sequence's GPU.
        let share = b.busiest_share(self.dp);
        let t = share.tokens;
        let s = b.sampled as f64 / self.dp;
        let act = t * self.hidden * self.act_bytes;

        *c.op_mut(OpKind::Embedding) = self.roofline(
            0.0,
            self.flops_gemm,
            t * self.hidden * self.weight_bytes + act,
            1.0,
        );

        // Projections: 2 FLOPs per parameter per token; weights read once; input and output
        // activations read and written once.
        let params = self.layers * self.attn_params / self.tp;
        *c.op_mut(OpKind::AttentionProjections) = self.gemms(
            |i| GemmGroup {
                m: t,
                params,
                inner: self.layers * i.attn.inner,
                outer: self.layers * i.attn.outer,
                gemms: self.layers * i.attn.gemms,
            },
            2.0 * t * params,
            self.flops_gemm,
            params * self.weight_bytes + self.layers * 2.0 * act,
            self.layers * 2.0,
            self.layers * KERNELS_ATTN_PROJ,
        );

        *c.op_mut(OpKind::Attention) = self.attention_op(b, &share);

        if self.dense_layers > 0.0 {
            let params = self.dense_layers * self.dense_mlp_params / self.tp;
            *c.op_mut(OpKind::Mlp) = self.gemms(
                |i| GemmGroup {
                    m: t,
                    params,
                    inner: self.dense_layers * i.mlp.inner,
                    outer: self.dense_layers * i.mlp.outer,
                    gemms: self.dense_layers * i.mlp.gemms,
                },
                2.0 * t * params,
                self.flops_gemm,
                params * self.weight_bytes + self.dense_layers * 2.0 * act,
                self.dense_layers * 2.0,
                self.dense_layers * KERNELS_MLP,
            );
        }

        // The busiest expert-parallel GPU's load over the mean (1: evenly spread).
        let busiest = match self.imbalance {
            Some(i) if self.moe_layers > 0.0 => i.busiest(b.tokens as f64 * self.active_experts),
            _ => 1.0,
        };
        if self.moe_layers > 0.0 {
            // Expected distinct experts touched by the group's tokens each choosing k of E
            // uniformly; each GPU holds 1/ep of them and computes their tokens' share, the
            // busiest GPU `busiest` times the mean.
            let all = b.tokens as f64;
            let k = self.active_experts;
            let touched = self.experts * (1.0 - (1.0 - k / self.experts).powf(all));
            let layers = self.moe_layers;
            let routed = MoeWork {
                rows: layers * all * k / self.ep * busiest,
                experts: layers * touched / self.ep,
                expert_params: self.expert_params,
                bytes: layers
                    * (touched * self.expert_params * self.expert_bytes / self.ep
                        + 2.0 * act * busiest),
            };
            // Shared experts and the router's gate GEMM: dense over this GPU's own tokens.
            let dense_bytes = layers
                * (self.shared_params * self.expert_bytes + self.router_params * self.weight_bytes)
                / self.tp;
            let dense_flops =
                layers * 2.0 * t * (self.shared_params + self.router_params) / self.tp;
            *c.op_mut(OpKind::Experts) = match self.moe.as_deref() {
                Some(m) => m.op(
                    layers,
                    &routed,
                    self.roofline(
                        dense_flops,
                        self.flops_expert,
                        dense_bytes,
                        layers * KERNELS_MOE_DENSE,
                    ),
                ),
                None => self.roofline(
                    routed.flops() + dense_flops,
                    self.flops_expert,
                    routed.bytes + dense_bytes,
                    layers * KERNELS_MOE,
                ),
            };
        }

        // Norms and the gated activation: memory-bound, by the scalar roofline.
        let norm_elements = self.layers * KERNELS_NORMS * NORM_ELEMENTS_PER_HIDDEN * self.hidden;
        let act_elements = self.dense_layers * self.dense_mlp_params / (self.hidden * self.tp);
        *c.op_mut(OpKind::Elementwise) = self.roofline(
            0.0,
            self.flops_gemm,
            t * (norm_elements + act_elements) * ELEMENTWISE_BYTES,
            self.layers * KERNELS_NORMS + self.dense_layers,
        );

        // LM head: vocabulary split over the tensor-parallel group; fp32 logits written.
        let head = self.lm_head_params / self.tp;
        *c.op_mut(OpKind::LmHead) = self.gemms(
            |_| GemmGroup {
                m: s,
                params: head,
                inner: self.hidden,
                outer: head / self.hidden,
                gemms: 1.0,
            },
            2.0 * s * head,
            self.flops_gemm,
            head * self.weight_bytes + s * head / self.hidden * 4.0,
            1.0,
            KERNELS_HEAD,
        );

        if self.dp > 1.0 {
            // Dispatch and combine per MoE layer: each token goes once to each other GPU that
            // holds one of its k experts (expected ep (1 - (1 - 1/ep)^k) GPUs, its own among them).
            // The busiest GPU receives `busiest` times the mean.
            let peers = self.ep * (1.0 - (1.0 - 1.0 / self.ep).powf(self.active_experts));
            let sent = act * peers * (self.ep - 1.0) / self.ep * busiest;
            let curve = self
                .collectives
                .as_deref()
                .and_then(|(c, link)| c.all_to_all.map(|k| k.time_s(self.tp_degree, sent, *link)));
            let op = c.op_mut(OpKind::ExpertParallelComm);
            match curve {
                // The curve's latency includes the launch.
                Some(a2a) => op.interconnect_s = 2.0 * self.moe_layers * a2a,
                None => {
                    let a2a = all_to_all_s(
                        self.tp_degree,
                        sent,
                        self.link_bytes_per_s,
                        self.link_latency_s,
                    );
                    op.interconnect_s = 2.0 * self.moe_layers * a2a;
                    op.overhead_s = 2.0 * self.moe_layers * self.kernel_s;
                }
            }
            op.bytes = 2.0 * self.moe_layers * sent;
        } else {
            self.all_reduces(&mut c, act);
        }

        if self.pp > 1.0 {
            let op = c.op_mut(OpKind::PipelineComm);
            op.interconnect_s =
                (self.pp - 1.0) * send_s(act, self.link_bytes_per_s, self.link_latency_s);
            op.bytes = (self.pp - 1.0) * act;
        }

        // Each data-parallel GPU's host process handles its own sequences.
        c.op_mut(OpKind::Host).overhead_s =
            self.iteration_s + self.per_sequence_s * b.sequences as f64 / self.dp;
        c
    }

    /// Only attention reads the batch's attention sums: the other operators' times are
    /// `base`'s.
    fn step_s_varied(&self, base: &AroundAttention, b: &Batch) -> f64 {
        if b.tokens == 0 {
            return self.step_s(b);
        }
        let attention = self.attention_op(b, &b.busiest_share(self.dp));
        base.total_s(attention.time_s())
    }

    fn window(&self) -> Option<u64> {
        self.window
    }
}

impl GpuCost {
    /// Attention over `b`, whose busiest GPU's share is `share`: heads split over the
    /// tensor-parallel group, or sequences over the data-parallel one.
    fn attention_op(&self, b: &Batch, share: &Share) -> OpCost {
        let full_layers = self.layers - self.window_layers;
        match self.attention.as_deref() {
            Some(a) => {
                let (prefill, decode) = b.busiest_parts(self.dp);
                let layers = Layers {
                    full: full_layers,
                    window: self.window_layers,
                };
                a.op(layers, &prefill, &decode)
            }
            None => {
                let pairs =
                    full_layers * share.pairs_full + self.window_layers * share.pairs_window;
                let kv_tokens =
                    full_layers * share.kv_read_full + self.window_layers * share.kv_read_window;
                self.roofline(
                    pairs * self.attn_flops_per_pair_layer / self.tp,
                    self.flops_attn,
                    (kv_tokens + self.layers * share.tokens) * self.kv_bytes_per_token_layer,
                    self.layers * KERNELS_ATTN,
                )
            }
        }
    }

    /// Two all-reduces of the hidden state per layer (after attention and after the MLP).
    /// By the faster of the profile's all-reduce curves when it has one (its latency includes
    /// the launch), else by the interconnect's scalars and a kernel launch each.
    fn all_reduces(&self, c: &mut StepCost, act: f64) {
        let curve = self
            .collectives
            .as_deref()
            .and_then(|(c, link)| c.all_reduce_s(self.tp_degree, act, *link));
        let ar = curve.unwrap_or_else(|| {
            all_reduce_s(
                self.tp_degree,
                act,
                self.link_bytes_per_s,
                self.link_latency_s,
            )
        });
        let op = c.op_mut(OpKind::TensorParallelComm);
        op.interconnect_s = 2.0 * self.layers * ar;
        if self.tp_degree > 1 {
            // Each all-reduce is a kernel launch of its own.
            if curve.is_none() {
                op.overhead_s = 2.0 * self.layers * self.kernel_s;
            }
            op.bytes = 2.0 * self.layers * 2.0 * (self.tp - 1.0) / self.tp * act;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::Bound;
    use crate::placement::{place, ParallelRequest};
    use crate::profile::{load_hardware, load_model, HardwareProfile, Override};
    use approx::assert_relative_eq;

    /// A shipped system with its curves removed: these tests check the scalar roofline;
    /// `gemm_curves_price_the_projections_gemm_by_gemm` and the kernel pricer's tests check
    /// the curves.
    fn system(hw: &str, model: &str, sets: &[&str]) -> (HardwareProfile, ModelProfile, Placement) {
        let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
        let mut h = load_hardware(hw, &o).unwrap();
        if let Some(g) = h.gpu.as_mut() {
            g.gemm_curves = None;
            g.attention_curves = None;
            g.collective_curves = None;
            g.moe_curves = None;
        }
        let m = load_model(model, &o).unwrap();
        let p = place(&m, &h, ParallelRequest::default()).unwrap();
        (h, m, p)
    }

    fn cost(hw: &str, model: &str, sets: &[&str]) -> GpuCost {
        let (h, m, p) = system(hw, model, sets);
        GpuCost::new(&m, h.gpu().unwrap(), &p)
    }

    #[test]
    fn decode_at_batch_one_is_memory_bound_below_the_bandwidth_limit() {
        let c = cost("h100-sxm", "llama-3.1-8b", &[]);
        let step = c.step(&Batch::decode(1, 1024, None));
        assert_eq!(step.bound(), Bound::Memory);
        let tok_s = 1.0 / step.total_s();
        // 16.06 GB of weights over 3.35 TB/s cannot beat ~209 tokens/s.
        assert!(tok_s < 3.35e12 / 16.06e9, "{tok_s}");
        assert!(tok_s > 100.0, "{tok_s}");
    }

    #[test]
    fn batching_raises_throughput_many_fold() {
        let c = cost("h100-sxm", "llama-3.1-8b", &[]);
        let one = 1.0 / c.step_s(&Batch::decode(1, 1024, None));
        let many = 64.0 / c.step_s(&Batch::decode(64, 1024, None));
        assert!(
            many > 20.0 * one,
            "batch 1: {one} tok/s, batch 64: {many} tok/s"
        );
    }

    #[test]
    fn fp8_work_runs_at_the_fp8_efficiency_and_bf16_work_ignores_it() {
        let prefill = Batch::prefill(1, 8192, None);
        let fp8 = [
            "model.precision.weights=fp8",
            "model.precision.activations=fp8",
        ];
        let at = |eff: &str, precision: &[&str]| {
            let set = format!("hardware.gpu.efficiency.compute_by_precision.fp8={eff}");
            let mut sets = precision.to_vec();
            sets.push(&set);
            cost("h100-sxm", "llama-3.1-8b", &sets)
                .step(&prefill)
                .op(OpKind::Mlp)
                .compute_s
        };
        // Halving the FP8 efficiency doubles the FP8 GEMMs' compute time.
        assert_relative_eq!(at("0.35", &fp8), 2.0 * at("0.7", &fp8), max_relative = 1e-9);
        // A BF16 model runs at `compute` whatever the FP8 entry says.
        assert_relative_eq!(at("0.35", &[]), at("0.7", &[]), max_relative = 1e-12);
    }

    #[test]
    fn long_prefill_is_compute_bound() {
        let c = cost("h100-sxm", "llama-3.1-8b", &[]);
        assert_eq!(
            c.step(&Batch::prefill(1, 8192, None)).bound(),
            Bound::Compute
        );
    }

    #[test]
    fn decode_step_by_hand() {
        // Llama 3.1 8B, batch 1 after 1023 cached tokens on one H100: weights of the layers
        // (6.98e9 params) + LM head (0.525e9) in bf16 and the KV cache of 1024 tokens at
        // 131072 B, read at the achieved bandwidth; plus kernel and host overheads. With full
        // overlap the (smaller) compute time hides under the memory time.
        let (h, m, p) = system(
            "h100-sxm",
            "llama-3.1-8b",
            &["hardware.gpu.efficiency.overlap=1"],
        );
        let g = h.gpu().unwrap();
        let c = GpuCost::new(&m, g, &p);
        let step = c.step(&Batch::decode(1, 1023, None));
        let d = m.dims();
        let bw = g.hbm_bandwidth_bytes_per_s * g.efficiency.memory;
        let hidden = 4096.0;
        let act = hidden * 2.0;
        let weights = 32.0 * (d.attn_params_per_layer + d.dense_mlp_params_per_layer) * 2.0;
        // Projection and MLP inputs/outputs per layer, plus the embedding gather and its output.
        let acts = 32.0 * 2.0 * act * 2.0 + hidden * 2.0 + act;
        let kv = 32.0 * (1024.0 + 1.0) * 4096.0;
        let head = d.lm_head_params * 2.0 + 128256.0 * 4.0;
        // Element-wise kernels: two add-norms of 4 hidden elements and the gated activation of
        // 3 x 14336, 16-bit, per layer.
        let elementwise = 32.0 * (2.0 * 4.0 * hidden + 3.0 * 14336.0) * 2.0;
        let memory_s = (weights + acts + kv + head + elementwise) / bw;
        // Projections 3, attention 2, MLP 2, element-wise 3 a layer; LM head 3, embedding 1.
        let kernels = 32.0 * (3.0 + 2.0 + 2.0 + 3.0) + 3.0 + 1.0;
        let host = g.overheads.iteration_s + g.overheads.per_sequence_s;
        assert_relative_eq!(
            step.total_s(),
            memory_s + kernels * g.overheads.kernel_s + host,
            max_relative = 1e-9
        );
    }

    #[test]
    fn overlap_hides_the_shorter_of_compute_and_memory() {
        // Each operator costs max(c, m) + (1 - overlap) min(c, m): from full overlap to none,
        // a step lengthens by the sum of its operators' shorter parts.
        let batch = Batch::decode(64, 2048, None);
        let at = |o: &str| {
            let set = format!("hardware.gpu.efficiency.overlap={o}");
            cost("h200-hgx", "llama-3.1-70b", &[&set]).step(&batch)
        };
        let (full, half, none) = (at("1"), at("0.5"), at("0"));
        let shorter: f64 = full.ops.iter().map(|o| o.compute_s.min(o.memory_s)).sum();
        assert!(shorter > 0.0);
        assert_relative_eq!(
            none.total_s(),
            full.total_s() + shorter,
            max_relative = 1e-12
        );
        assert_relative_eq!(
            half.total_s(),
            full.total_s() + 0.5 * shorter,
            max_relative = 1e-12
        );
    }

    #[test]
    fn more_bandwidth_or_flops_is_never_slower_and_longer_context_never_faster() {
        let base = cost("h200-hgx", "llama-3.1-70b", &[]);
        let fast_mem = cost(
            "h200-hgx",
            "llama-3.1-70b",
            &["hardware.gpu.hbm_bandwidth_bytes_per_s=9.6e12"],
        );
        let fast_flops = cost(
            "h200-hgx",
            "llama-3.1-70b",
            &["hardware.gpu.peak_flops_per_s.bf16=2e15"],
        );
        for b in [
            Batch::decode(1, 100, None),
            Batch::decode(128, 8000, None),
            Batch::prefill(1, 8192, None),
            Batch::prefill(4, 512, None),
        ] {
            let t = base.step_s(&b);
            assert!(fast_mem.step_s(&b) <= t);
            assert!(fast_flops.step_s(&b) <= t);
        }
        let mut last = 0.0;
        for ctx in [0, 100, 1000, 10_000, 100_000] {
            let t = base.step_s(&Batch::decode(8, ctx, None));
            assert!(t >= last, "context {ctx}: {t} < {last}");
            last = t;
        }
    }

    #[test]
    fn moe_reads_only_the_experts_its_tokens_touch() {
        let c = cost("h100-sxm", "gpt-oss-20b", &[]);
        // One token touches 4 of 32 experts; many tokens touch nearly all 32.
        let one = c.step(&Batch::decode(1, 10, c.window()));
        let many = c.step(&Batch::decode(256, 10, c.window()));
        let ratio = many.op(OpKind::Experts).bytes / one.op(OpKind::Experts).bytes;
        assert!(ratio > 6.0 && ratio < 8.5, "{ratio}");
    }

    #[test]
    fn a_moe_curve_prices_routed_experts_as_the_kernel_check_does() {
        // Qwen3 235B-A22B over 8 H200s (experts spread 8 ways, no shared expert): the routed
        // part of each MoE layer is the kernel pricer's MoE layer; the router's gate GEMM adds.
        let h = load_hardware("h200-hgx", &[]).unwrap();
        let m = load_model("qwen3-235b-a22b", &[]).unwrap();
        let req = ParallelRequest {
            tp: Some(8),
            ..Default::default()
        };
        let p = place(&m, &h, req).unwrap();
        assert!(!p.attention_dp);
        let g = h.gpu().unwrap();
        let c = GpuCost::new(&m, g, &p);
        assert_eq!(c.priced_by(OpKind::Experts), "MoE curve (routed experts)");
        let op = c
            .step(&Batch::decode(64, 1000, None))
            .op(OpKind::Experts)
            .time_s();
        let moe = m.moe.as_ref().unwrap();
        let shape = crate::cost::kernel::MoeShape {
            tokens: 64,
            hidden: m.architecture.hidden_size,
            inter: moe.expert_intermediate_size,
            topk: moe.active_experts,
            experts: moe.experts,
            tp: 1,
            ep: 8,
            weights: m.expert_weight_precision(),
            activations: m.precision.activations,
            block_fp8: false,
        };
        let layer = crate::cost::kernel::KernelPricer::new(g).moe_experts_s(&shape);
        let router = c.moe_layers * c.router_params / c.tp;
        let dense = c
            .roofline(
                2.0 * 64.0 * router,
                c.flops_expert,
                router * c.weight_bytes,
                c.moe_layers * KERNELS_MOE_DENSE,
            )
            .time_s();
        assert_relative_eq!(op, c.moe_layers * layer + dense, max_relative = 1e-9);
    }

    #[test]
    fn tensor_parallelism_adds_all_reduces_and_splits_weights() {
        let (h, m, _) = system("h200-hgx", "llama-3.1-70b", &[]);
        let p8 = place(
            &m,
            &h,
            ParallelRequest {
                tp: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        let p2 = place(
            &m,
            &h,
            ParallelRequest {
                tp: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let g = h.gpu().unwrap();
        let b = Batch::decode(1, 1000, None);
        let s8 = GpuCost::new(&m, g, &p8).step(&b);
        let s2 = GpuCost::new(&m, g, &p2).step(&b);
        assert!(
            s8.op(OpKind::TensorParallelComm).interconnect_s
                > s2.op(OpKind::TensorParallelComm).interconnect_s
        );
        assert_relative_eq!(
            s8.op(OpKind::Mlp).bytes * 4.0,
            s2.op(OpKind::Mlp).bytes,
            max_relative = 1e-3
        );
        assert!(
            s8.total_s() < s2.total_s(),
            "8-way split should be faster per step at batch 1"
        );
    }

    #[test]
    fn attention_data_parallelism_splits_sequences_and_exchanges_tokens() {
        let (h, m, _) = system("gb200-nvl72", "deepseek-v3", &[]);
        let g = h.gpu().unwrap();
        let at = |attention_dp| {
            let req = ParallelRequest {
                tp: Some(8),
                attention_dp,
                ..Default::default()
            };
            GpuCost::new(&m, g, &place(&m, &h, req).unwrap())
        };
        let b = Batch::decode(512, 4000, None);
        let tp = at(false).step(&b);
        let dp = at(true).step(&b);
        // Each GPU reads its own 64 sequences' latent cache instead of all 512.
        assert_relative_eq!(
            tp.op(OpKind::Attention).bytes,
            8.0 * dp.op(OpKind::Attention).bytes,
            max_relative = 1e-9
        );
        // ...but the whole attention weights for its 64 tokens (8 times the bytes of a
        // tensor-parallel share, less an eighth of the activations' traffic).
        assert_relative_eq!(
            dp.op(OpKind::AttentionProjections).flops,
            tp.op(OpKind::AttentionProjections).flops,
            max_relative = 1e-9
        );
        assert!(
            dp.op(OpKind::AttentionProjections).bytes
                > 5.0 * tp.op(OpKind::AttentionProjections).bytes
        );
        // All-to-alls replace all-reduces: 58 MoE layers, dispatch and combine, each GPU's 64
        // tokens of 7168 fp8 values to the other GPUs holding one of their 8 experts; the
        // busiest GPU (DeepSeek-V3's stated expert-load spread over 8 GPUs) receives more.
        assert_eq!(dp.op(OpKind::TensorParallelComm).interconnect_s, 0.0);
        assert_eq!(tp.op(OpKind::ExpertParallelComm).interconnect_s, 0.0);
        let busiest = ExpertImbalance::new(1.282, 256.0, 8.0)
            .unwrap()
            .busiest(512.0 * 8.0);
        assert!((1.3..1.4).contains(&busiest), "{busiest}");
        let peers = 8.0 * (1.0 - (7.0_f64 / 8.0).powi(8));
        let sent = 64.0 * 7168.0 * peers * 7.0 / 8.0 * busiest;
        assert_relative_eq!(
            dp.op(OpKind::ExpertParallelComm).bytes,
            2.0 * 58.0 * sent,
            max_relative = 1e-9
        );
        let link = g.interconnect.bandwidth_bytes_per_s * g.efficiency.interconnect;
        assert_relative_eq!(
            dp.op(OpKind::ExpertParallelComm).interconnect_s,
            2.0 * 58.0 * (sent / link + g.interconnect.latency_s),
            max_relative = 1e-9
        );
    }

    #[test]
    fn gemm_curves_price_the_projections_gemm_by_gemm() {
        // Llama 3.1 8B on one H100 with a bf16 curve, 48 sequences decoding: the projections
        // are 32 layers of a QKV GEMM (n 6144, k 4096) and an output GEMM (n 4096, k 4096)
        // over 48 tokens, each at the curve's compute time, plus a floor per GEMM and the
        // per-kernel overhead for the norm and rotary kernels; the MLP a gate-up GEMM
        // (n 28672, k 4096) and a down GEMM (n 4096, k 14336).
        let curve = crate::profile::GemmCurve {
            floor_s: 3e-6,
            compute_efficiency: 0.9,
            half_rows: 200.0,
            half_columns: 250.0,
            memory_efficiency: 0.8,
            half_depth: 150.0,
            depth_latency_s: 1e-10,
        };
        let (mut h, m, p) = system("h100-sxm", "llama-3.1-8b", &[]);
        h.gpu.as_mut().unwrap().gemm_curves = Some(crate::profile::GemmCurves {
            bf16: Some(curve),
            ..Default::default()
        });
        let g = h.gpu().unwrap();
        let step = GpuCost::new(&m, g, &p).step(&Batch::decode(48, 1000, None));
        let op = *step.op(OpKind::AttentionProjections);
        let t = 48.0;
        let one = |n: f64, k: f64| curve.compute_s(2.0 * t * n * k, t, n, k, 989.4e12);
        assert_relative_eq!(
            op.compute_s,
            32.0 * (one(6144.0, 4096.0) + one(4096.0, 4096.0)),
            max_relative = 1e-9
        );
        assert_relative_eq!(
            step.op(OpKind::Mlp).compute_s,
            32.0 * (one(28672.0, 4096.0) + one(4096.0, 14336.0)),
            max_relative = 1e-9
        );
        assert_eq!(op.exposed_s, 0.0);
        assert_relative_eq!(
            op.overhead_s,
            32.0 * (2.0 * curve.floor_s + g.overheads.kernel_s),
            max_relative = 1e-12
        );
        let bytes = op.bytes;
        assert_relative_eq!(
            op.memory_s,
            bytes / (3.35e12 * curve.memory_efficiency),
            max_relative = 1e-12
        );
    }

    #[test]
    fn weight_only_models_take_the_weight_only_curve() {
        // Llama 3.1 8B with 4-bit weights and 16-bit activations on an A100 carrying a W4A16
        // curve beside the bf16 one: the projections of 48 decoding tokens are 32 layers of a
        // QKV GEMM (n 6144, k 4096) and an output GEMM (n 4096, k 4096) at the W4A16 curve and
        // the 16-bit peak, with its floor per GEMM.
        let (mut h, m, p) = system(
            "a100-sxm",
            "llama-3.1-8b",
            &["model.precision.weights=int4"],
        );
        let bf16 = GemmCurve {
            floor_s: 4e-6,
            compute_efficiency: 0.8,
            half_rows: 60.0,
            half_columns: 200.0,
            memory_efficiency: 0.75,
            half_depth: 150.0,
            depth_latency_s: 2e-10,
        };
        let wo = GemmCurve {
            floor_s: 1.1e-5,
            compute_efficiency: 0.85,
            half_rows: 40.0,
            half_columns: 700.0,
            memory_efficiency: 0.85,
            half_depth: 50.0,
            depth_latency_s: 0.0,
        };
        h.gpu.as_mut().unwrap().gemm_curves = Some(crate::profile::GemmCurves {
            bf16: Some(bf16),
            int4_weight_only: Some(wo),
            ..Default::default()
        });
        let g = h.gpu().unwrap();
        let op = *GpuCost::new(&m, g, &p)
            .step(&Batch::decode(48, 1000, None))
            .op(OpKind::AttentionProjections);
        let t = 48.0;
        let one = |n: f64, k: f64| wo.compute_s(2.0 * t * n * k, t, n, k, 312e12);
        assert_relative_eq!(
            op.compute_s,
            32.0 * (one(6144.0, 4096.0) + one(4096.0, 4096.0)),
            max_relative = 1e-9
        );
        assert_relative_eq!(
            op.overhead_s,
            32.0 * (2.0 * wo.floor_s + g.overheads.kernel_s),
            max_relative = 1e-12
        );
    }

    #[test]
    fn contexts_grown_are_priced_from_the_base_times_bit_for_bit() {
        // Shipped profiles with their curves and without, a sliding window, tensor, pipeline
        // and attention data parallelism: a decode batch whose contexts grow by j tokens is
        // priced the same from the first iteration's times as whole.
        let shipped = |hw: &str, model: &str, req: ParallelRequest| {
            let h = load_hardware(hw, &[]).unwrap();
            let m = load_model(model, &[]).unwrap();
            GpuCost::new(&m, h.gpu().unwrap(), &place(&m, &h, req).unwrap())
        };
        let dp = ParallelRequest {
            tp: Some(8),
            attention_dp: true,
            ..Default::default()
        };
        let pp = ParallelRequest {
            tp: Some(2),
            pp: Some(2),
            ..Default::default()
        };
        let costs = [
            shipped("h100-sxm", "llama-3.1-8b", ParallelRequest::default()),
            cost("h100-sxm", "llama-3.1-8b", &[]),
            shipped("gb200-nvl72", "gpt-oss-120b", ParallelRequest::default()),
            cost("gb200-nvl72", "gpt-oss-120b", &[]),
            shipped("gb200-nvl72", "deepseek-v3", dp),
            shipped("h100-hgx", "llama-3.1-70b", pp),
        ];
        for c in &costs {
            let mut b = Batch::new(c.window());
            for (i, context) in [0, 7, 100, 127, 128, 129, 1000, 5000].iter().enumerate() {
                for _ in 0..=i {
                    b.push(1, *context, true);
                }
            }
            let times = c.step_times(&b);
            assert_eq!(times.total_s().to_bits(), c.step_s(&b).to_bits());
            let base = times.around_attention();
            let (n, w) = (f64::from(b.sequences), c.window());
            let mut cur = b;
            for j in 1..300 {
                cur.pairs_full += n;
                cur.kv_read_full += n;
                if let Some(w) = w {
                    // Contexts past the window stop growing.
                    let growing = [0, 7, 100, 127, 128, 129, 1000, 5000]
                        .iter()
                        .enumerate()
                        .filter(|(_, &p)| p + j < w)
                        .map(|(i, _)| i as f64 + 1.0)
                        .sum::<f64>();
                    cur.pairs_window += growing;
                    cur.kv_read_window += growing;
                }
                assert_eq!(
                    c.step_s_varied(&base, &cur).to_bits(),
                    c.step_s(&cur).to_bits(),
                    "{j} tokens on"
                );
            }
        }
    }
}
