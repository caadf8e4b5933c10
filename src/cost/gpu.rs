//! Cost of one iteration on a GPU replica whose weights and KV cache stream from HBM.
//!
//! Each operator costs `max(flops / (peak * compute_eff), bytes / (hbm_bw * memory_eff))` plus a
//! fixed per-kernel overhead (DESIGN.md section 2). Weights are read once per iteration whatever
//! the batch; KV cache is read per sequence in proportion to its context. A MoE layer reads the
//! experts its tokens touch: `E (1 - (1 - k/E)^T)` of them for T tokens, assuming uniform routing.
//! Tensor parallelism adds two all-reduces per layer; pipeline stages add activation sends and are
//! traversed in turn, so one iteration's latency covers every layer.
//!
//! Ignored: overlap of communication with compute, kernel fusion beyond the kernel counts below,
//! routing imbalance across experts, and the reduced efficiency of very small GEMMs (the per-kernel
//! overhead stands in for it).

use super::collective::{all_reduce_s, send_s};
use super::{Batch, CostModel, OpCost, OpKind, StepCost};
use crate::placement::Placement;
use crate::profile::model::AttentionKind;
use crate::profile::{ComputeClass, GpuSystem, ModelProfile};

/// Kernels per layer in each operator (fused norms counted with the GEMM they precede): the
/// count a CUDA-graph decode step of vLLM / TensorRT-LLM launches, read off their model code.
const KERNELS_ATTN_PROJ: f64 = 4.0; // norm, QKV GEMM, rotary, output GEMM
const KERNELS_ATTN: f64 = 2.0; // KV-cache write, attention
const KERNELS_MLP: f64 = 3.0; // norm, gate-up GEMM with activation, down GEMM
const KERNELS_MOE: f64 = 6.0; // norm, router, top-k/permute, two grouped GEMMs, combine
const KERNELS_HEAD: f64 = 3.0; // final norm, LM-head GEMM, sampling

/// Per-device constants of one placed model on one GPU system.
#[derive(Debug, Clone)]
pub struct GpuCost {
    tp: f64,
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
    link_bytes_per_s: f64,
    link_latency_s: f64,
    kernel_s: f64,
    iteration_s: f64,
    per_sequence_s: f64,
}

impl GpuCost {
    /// Precompute the per-device constants of `model` placed by `placement` on `gpu`.
    pub fn new(model: &ModelProfile, gpu: &GpuSystem, placement: &Placement) -> Self {
        let d = model.dims();
        let p = &model.precision;
        let eff = &gpu.efficiency;
        let peak = |c: ComputeClass| gpu.peak_flops_per_s.for_class(c) * eff.compute;
        let tp = placement.tp as f64;
        let layers = model.architecture.layers as f64;
        let window_layers = model
            .attention
            .sliding_window_layer_fraction
            .map_or(0.0, |f| (f * layers).round());
        let kv_split = match model.attention.kind {
            AttentionKind::Gqa => (placement.tp as u64).min(model.attention.kv_heads) as f64,
            AttentionKind::Mla => 1.0,
        };
        let moe = model.moe.as_ref();
        GpuCost {
            tp,
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
            kv_bytes_per_token_layer: d.kv_elements_per_token_per_layer * p.kv_cache.bytes()
                / kv_split,
            attn_flops_per_pair_layer: d.attn_flops_per_pair_per_layer,
            window: model.attention.sliding_window_tokens,
            flops_gemm: peak(ComputeClass::of_gemm(p.weights, p.activations)),
            flops_expert: peak(ComputeClass::of_gemm(
                model.expert_weight_precision(),
                p.activations,
            )),
            flops_attn: peak(ComputeClass::of_gemm(p.kv_cache, p.activations)),
            mem_bytes_per_s: gpu.hbm_bandwidth_bytes_per_s * eff.memory,
            link_bytes_per_s: gpu.interconnect.bandwidth_bytes_per_s * eff.interconnect,
            link_latency_s: gpu.interconnect.latency_s,
            kernel_s: gpu.overheads.kernel_s,
            iteration_s: gpu.overheads.iteration_s,
            per_sequence_s: gpu.overheads.per_sequence_s,
        }
    }

    fn roofline(&self, flops: f64, flops_per_s: f64, bytes: f64, kernels: f64) -> OpCost {
        OpCost {
            flops,
            bytes,
            compute_s: flops / flops_per_s,
            memory_s: bytes / self.mem_bytes_per_s,
            interconnect_s: 0.0,
            overhead_s: kernels * self.kernel_s,
        }
    }
}

impl CostModel for GpuCost {
    fn step(&self, b: &Batch) -> StepCost {
        let mut c = StepCost::default();
        if b.tokens == 0 {
            return c;
        }
        let t = b.tokens as f64;
        let s = b.sampled as f64;
        let act = t * self.hidden * self.act_bytes;

        *c.op_mut(OpKind::Embedding) = self.roofline(0.0, self.flops_gemm, t * self.hidden * self.weight_bytes + act, 1.0);

        // Projections: 2 FLOPs per parameter per token; weights read once; input and output
        // activations read and written once.
        let params = self.layers * self.attn_params / self.tp;
        *c.op_mut(OpKind::AttentionProjections) = self.roofline(
            2.0 * t * params,
            self.flops_gemm,
            params * self.weight_bytes + self.layers * 2.0 * act,
            self.layers * KERNELS_ATTN_PROJ,
        );

        // Attention: heads split over the tensor-parallel group.
        let full_layers = self.layers - self.window_layers;
        let pairs = full_layers * b.pairs_full + self.window_layers * b.pairs_window;
        let kv_tokens = full_layers * b.kv_read_full + self.window_layers * b.kv_read_window;
        *c.op_mut(OpKind::Attention) = self.roofline(
            pairs * self.attn_flops_per_pair_layer / self.tp,
            self.flops_attn,
            (kv_tokens + self.layers * t) * self.kv_bytes_per_token_layer,
            self.layers * KERNELS_ATTN,
        );

        if self.dense_layers > 0.0 {
            let params = self.dense_layers * self.dense_mlp_params / self.tp;
            *c.op_mut(OpKind::Mlp) = self.roofline(
                2.0 * t * params,
                self.flops_gemm,
                params * self.weight_bytes + self.dense_layers * 2.0 * act,
                self.dense_layers * KERNELS_MLP,
            );
        }

        if self.moe_layers > 0.0 {
            // Expected distinct experts touched by t tokens each choosing k of E uniformly.
            let touched = self.experts * (1.0 - (1.0 - self.active_experts / self.experts).powf(t));
            let bytes = self.moe_layers
                * ((touched * self.expert_params + self.shared_params) * self.expert_bytes
                    + self.router_params * self.weight_bytes)
                / self.tp;
            let flops = self.moe_layers
                * 2.0
                * t
                * (self.active_experts * self.expert_params + self.shared_params + self.router_params)
                / self.tp;
            *c.op_mut(OpKind::Experts) = self.roofline(
                flops,
                self.flops_expert,
                bytes + self.moe_layers * 2.0 * act,
                self.moe_layers * KERNELS_MOE,
            );
        }

        // LM head: vocabulary split over the tensor-parallel group; fp32 logits written.
        let head = self.lm_head_params / self.tp;
        *c.op_mut(OpKind::LmHead) = self.roofline(
            2.0 * s * head,
            self.flops_gemm,
            head * self.weight_bytes + s * head / self.hidden * 4.0,
            KERNELS_HEAD,
        );

        // Two all-reduces of the hidden state per layer (after attention and after the MLP).
        let ar = all_reduce_s(self.tp_degree, act, self.link_bytes_per_s, self.link_latency_s);
        c.op_mut(OpKind::TensorParallelComm).interconnect_s = 2.0 * self.layers * ar;
        if self.tp_degree > 1 {
            // Each all-reduce is a kernel launch of its own.
            c.op_mut(OpKind::TensorParallelComm).overhead_s = 2.0 * self.layers * self.kernel_s;
        }
        c.op_mut(OpKind::TensorParallelComm).bytes = if self.tp_degree > 1 {
            2.0 * self.layers * 2.0 * (self.tp - 1.0) / self.tp * act
        } else {
            0.0
        };

        if self.pp > 1.0 {
            let op = c.op_mut(OpKind::PipelineComm);
            op.interconnect_s =
                (self.pp - 1.0) * send_s(act, self.link_bytes_per_s, self.link_latency_s);
            op.bytes = (self.pp - 1.0) * act;
        }

        c.op_mut(OpKind::Host).overhead_s =
            self.iteration_s + self.per_sequence_s * b.sequences as f64;
        c
    }

    fn window(&self) -> Option<u64> {
        self.window
    }
}
