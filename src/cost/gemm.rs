//! Dense GEMM operators of the GPU step priced by a profile's GEMM curve
//! ([`crate::profile::GemmCurve`]) instead of the scalar efficiencies.
//!
//! An operator's GEMMs over the same tokens cost, summed, `2 (m + half_rows) (params +
//! half_columns inner + half_depth outer + half_columns half_depth gemms) / (peak *
//! compute_efficiency)` of compute, where `inner` and `outer` are the sums of their inner
//! dimensions and output features and `gemms` their number; bytes over the curve's memory
//! efficiency; and the curve's floor per GEMM kernel in place of the per-kernel overhead. The curve's form takes the slower of
//! compute and memory (no exposed part). The inner dimensions follow the kernels the step
//! counts: a fused QKV GEMM and an output GEMM; a fused gate-up GEMM and a down GEMM.
//! Ignored: each GEMM's own max of compute and memory (the operator takes the max of the sums).

use super::OpCost;
use crate::profile::model::AttentionKind;
use crate::profile::{GemmCurve, GemmGroup, ModelProfile};

/// The GEMMs of one operator in one layer, on one device: sums of their inner dimensions and
/// output features, and their number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Dims {
    /// Sum of the inner dimensions `k`.
    pub inner: f64,
    /// Sum of the output features `n`.
    pub outer: f64,
    /// Number of GEMMs.
    pub gemms: f64,
}

/// GEMM dimensions per layer, per device, for each GEMM operator.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InnerDims {
    /// Attention projections.
    pub attn: Dims,
    /// Dense MLP.
    pub mlp: Dims,
}

impl InnerDims {
    /// The GEMM dimensions of `model` with attention and dense weights split `tp` ways.
    pub(crate) fn of(model: &ModelProfile, tp: f64) -> Self {
        let a = &model.architecture;
        let at = &model.attention;
        let h = a.hidden_size as f64;
        let (heads, hd) = (at.heads as f64, at.head_dim as f64);
        let heads_out = heads * hd / tp;
        let attn = match at.kind {
            // QKV reads the hidden state and writes this device's query, key and value heads;
            // the output projection reads its heads and writes the hidden state.
            AttentionKind::Gqa => Dims {
                inner: h + heads_out,
                outer: (heads + 2.0 * at.kv_heads as f64) * hd / tp + h,
                gemms: 2.0,
            },
            // Query down (or full query), KV down (with the shared rotary key), query up, KV up
            // (per-head keys and values), output; the up projections and the output split.
            AttentionKind::Mla => {
                let q_r = at.q_lora_rank.unwrap_or(0) as f64;
                let kv_r = at.kv_lora_rank.unwrap_or(0) as f64;
                let rope = at.rope_head_dim.unwrap_or(0) as f64;
                let query = heads * (hd + rope) / tp;
                let (q_outer, q_gemms) = if q_r > 0.0 {
                    (q_r + query, 2.0)
                } else {
                    (query, 1.0)
                };
                Dims {
                    inner: 2.0 * h + q_r + kv_r + heads_out,
                    outer: q_outer + kv_r + rope + 2.0 * heads_out + h,
                    gemms: q_gemms + 3.0,
                }
            }
        };
        let inter = a.intermediate_size.unwrap_or(0) as f64 / tp;
        let up = if a.gated_mlp { 2.0 * inter } else { inter };
        // Fused gate-up (or up) GEMM, then down.
        let mlp = Dims {
            inner: h + inter,
            outer: up + h,
            gemms: 2.0,
        };
        InnerDims { attn, mlp }
    }
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
        compute_s: curve.group_compute_s(&group, peak_flops_per_s),
        memory_s: curve.memory_s(bytes, hbm_bytes_per_s),
        exposed_s: 0.0,
        interconnect_s: 0.0,
        overhead_s: gemm_kernels * curve.floor_s + other_kernels * kernel_s,
    }
}
