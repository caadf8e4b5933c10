//! Dense GEMM operators of the GPU step priced by a profile's GEMM curve
//! ([`crate::profile::GemmCurve`]) instead of the scalar efficiencies.
//!
//! An operator's GEMMs over the same tokens cost, summed, `2 (m + half_rows) (params +
//! half_columns inner) / (peak * compute_efficiency)` of compute, where `inner` is the sum of
//! their inner dimensions; bytes over the curve's memory efficiency; and the curve's floor per
//! GEMM kernel in place of the per-kernel overhead. The curve's form takes the slower of
//! compute and memory (no exposed part). The inner dimensions follow the kernels the step
//! counts: a fused QKV GEMM and an output GEMM; a fused gate-up GEMM and a down GEMM.
//! Ignored: each GEMM's own max of compute and memory (the operator takes the max of the sums).

use super::OpCost;
use crate::profile::model::AttentionKind;
use crate::profile::{GemmCurve, ModelProfile};

/// Sums of GEMM inner dimensions per layer, per device, for each GEMM operator.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InnerDims {
    /// Attention projections.
    pub attn: f64,
    /// Dense MLP.
    pub mlp: f64,
}

impl InnerDims {
    /// The inner dimensions of `model` with attention and dense weights split `tp` ways.
    pub(crate) fn of(model: &ModelProfile, tp: f64) -> Self {
        let a = &model.architecture;
        let at = &model.attention;
        let h = a.hidden_size as f64;
        let heads_out = (at.heads * at.head_dim) as f64 / tp;
        let attn = match at.kind {
            // QKV reads the hidden state; the output projection reads this device's heads.
            AttentionKind::Gqa => h + heads_out,
            // Query down (or full query), KV down, query up, KV up, output.
            AttentionKind::Mla => {
                let q_r = at.q_lora_rank.unwrap_or(0) as f64;
                let kv_r = at.kv_lora_rank.unwrap_or(0) as f64;
                2.0 * h + q_r + kv_r + heads_out
            }
        };
        let mlp = h + a.intermediate_size.unwrap_or(0) as f64 / tp;
        InnerDims { attn, mlp }
    }
}

/// A group of GEMMs over the same `m` tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GemmGroup {
    /// Tokens (rows) of each GEMM.
    pub m: f64,
    /// Weights in all (sum of `n k`).
    pub params: f64,
    /// Sum of the inner dimensions.
    pub inner: f64,
}

/// The cost of an operator made of the GEMM `group` moving `bytes`, with `gemm_kernels` GEMM
/// launches and `other_kernels` other launches at `kernel_s` each, priced by `curve` at
/// `peak_flops_per_s` and `hbm_bytes_per_s`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn curve_op(
    curve: &GemmCurve,
    peak_flops_per_s: f64,
    hbm_bytes_per_s: f64,
    group: GemmGroup,
    bytes: f64,
    gemm_kernels: f64,
    other_kernels: f64,
    kernel_s: f64,
) -> OpCost {
    OpCost {
        flops: 2.0 * group.m * group.params,
        bytes,
        compute_s: curve.group_compute_s(group.m, group.params, group.inner, peak_flops_per_s),
        memory_s: curve.memory_s(bytes, hbm_bytes_per_s),
        exposed_s: 0.0,
        interconnect_s: 0.0,
        overhead_s: gemm_kernels * curve.floor_s + other_kernels * kernel_s,
    }
}
