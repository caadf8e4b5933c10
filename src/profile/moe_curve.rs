//! MoE grouped-GEMM curves: the time of one MoE layer's routed experts on one GPU as a smooth
//! function of the tokens each expert receives, in place of the scalar efficiencies and the
//! per-kernel overhead, fitted per GPU and format to NVIDIA's fused-MoE measurements by
//! `infersim kernels --fit` (`reference/kernels/*/moe.csv`).
//!
//! What the measurement holds (aiconfigurator's `collector/trtllm/collect_moe.py` times
//! TensorRT-LLM's `moe.forward(hidden_states, router_logits)` with `reduce_results=False` on one
//! GPU): the routing method's top-k and renormalisation over given router logits, the
//! activations' quantisation, the permutation of tokens to their experts, the gated MLP's two
//! grouped GEMMs with the activation between them, and the finalize kernel that un-permutes and
//! combines each token's experts with their weights. Outside it: the router's gate GEMM (the
//! logits are an input), any all-reduce or all-to-all (one GPU, no reduction), and routing
//! imbalance (rows with tokens spread evenly over the experts).
//!
//! ```text
//! time = floor_s + rows row_s
//!      + max(2 (rows + experts pad_rows) expert_params / (peak * compute_efficiency),
//!            bytes / (hbm * memory_efficiency))
//! ```
//!
//! Five coefficients. `rows` are the (token, expert) pairs this GPU computes (`T k / ep` for `T`
//! tokens each routed to `k` experts spread over `ep` GPUs); `experts` the experts of this GPU
//! that receive a token; `expert_params` one expert's weights on this GPU (`3 hidden inter / tp`);
//! `bytes` the touched experts' weights and the rows' activations. `pad_rows` is the rows each
//! expert's GEMM is padded by (a grouped GEMM tiles each expert's rows: with few tokens per
//! expert the tiles run mostly empty, so the efficiency is `m / (m + pad_rows)` at `m` tokens
//! per expert); `row_s` the time per row of the routing, permutation and combine kernels, which
//! move every row whatever the GEMMs' bound; `floor_s` the launches and set-up of the fused
//! layer. Ignored: wave quantisation and the kernel tactic the autotuner picks per shape, which
//! show as scatter around the curve.

use serde::{Deserialize, Serialize};

use super::precision::ComputeClass;
use super::validate::Checker;

/// One MoE curve; see the module documentation for its formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeCurve {
    /// Time below which no MoE layer runs (launches and set-up of the fused kernels), s.
    pub floor_s: f64,
    /// Time per routed row (token, expert pair) of the routing, permute and combine kernels, s.
    pub row_s: f64,
    /// Fraction of the class's peak FLOP/s reached on the padded rows, in (0, 1].
    pub compute_efficiency: f64,
    /// Rows each touched expert's GEMMs are padded by (tile padding), tokens.
    pub pad_rows: f64,
    /// Fraction of peak HBM bandwidth reached on the weights and activations, in (0, 1].
    pub memory_efficiency: f64,
}

/// The work of one MoE layer's routed experts on one GPU (or of several layers, summed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MoeWork {
    /// (token, expert) pairs computed on this GPU.
    pub rows: f64,
    /// Experts of this GPU that receive at least one token.
    pub experts: f64,
    /// One expert's weights on this GPU (its gate, up and down projections).
    pub expert_params: f64,
    /// Bytes moved: the touched experts' weights and the rows' activations.
    pub bytes: f64,
}

impl MoeWork {
    /// FLOPs of the work: `2 rows expert_params`.
    pub fn flops(&self) -> f64 {
        2.0 * self.rows * self.expert_params
    }
}

impl MoeCurve {
    /// Coefficients in the curve.
    pub const COEFFICIENTS: usize = 5;

    /// Compute-bound part of `w` at `peak_flops_per_s`, s (no floor).
    pub fn compute_s(&self, w: &MoeWork, peak_flops_per_s: f64) -> f64 {
        if w.rows <= 0.0 {
            return 0.0;
        }
        2.0 * (w.rows + w.experts * self.pad_rows) * w.expert_params
            / (peak_flops_per_s * self.compute_efficiency)
    }

    /// Memory-bound part of `w` at `hbm_bytes_per_s`, s (no floor).
    pub fn memory_s(&self, w: &MoeWork, hbm_bytes_per_s: f64) -> f64 {
        w.bytes / (hbm_bytes_per_s * self.memory_efficiency)
    }

    /// Fixed part of `w`: the floor and the per-row time, s.
    pub fn fixed_s(&self, w: &MoeWork) -> f64 {
        self.floor_s + w.rows * self.row_s
    }

    /// Time of one layer doing `w`, s.
    pub fn time_s(&self, w: &MoeWork, peak_flops_per_s: f64, hbm_bytes_per_s: f64) -> f64 {
        self.fixed_s(w)
            + self
                .compute_s(w, peak_flops_per_s)
                .max(self.memory_s(w, hbm_bytes_per_s))
    }

    fn check(&self, path: &str, c: &mut Checker) {
        c.non_negative(&format!("{path}.floor_s"), self.floor_s);
        c.non_negative(&format!("{path}.row_s"), self.row_s);
        c.fraction(
            &format!("{path}.compute_efficiency"),
            self.compute_efficiency,
        );
        c.non_negative(&format!("{path}.pad_rows"), self.pad_rows);
        c.fraction(&format!("{path}.memory_efficiency"), self.memory_efficiency);
    }
}

/// MoE curves by the tensor-core class the experts run on; a class without one uses the scalar
/// efficiencies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeCurves {
    /// BF16 experts (TensorRT-LLM's CUTLASS fused MoE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<MoeCurve>,
    /// FP8 experts scaled per tensor (CUTLASS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp8: Option<MoeCurve>,
    /// NVFP4 experts (CUTLASS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp4: Option<MoeCurve>,
    /// FP8 experts scaled per block (CUTLASS on Hopper, DeepGEMM on Blackwell): used by the
    /// kernel check for that format. The step has no per-block precision and prices FP8
    /// experts by `fp8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp8_block: Option<MoeCurve>,
}

impl MoeCurves {
    /// The curve of experts running on `class` tensor cores, if the profile has one.
    pub fn for_class(&self, class: ComputeClass) -> Option<&MoeCurve> {
        match class {
            ComputeClass::Fp32 => None,
            ComputeClass::Bf16 => self.bf16.as_ref(),
            ComputeClass::Fp8 => self.fp8.as_ref(),
            ComputeClass::Fp4 => self.fp4.as_ref(),
        }
    }

    pub(super) fn check(&self, c: &mut Checker) {
        for (name, curve) in [
            ("bf16", &self.bf16),
            ("fp8", &self.fp8),
            ("fp4", &self.fp4),
            ("fp8_block", &self.fp8_block),
        ] {
            if let Some(curve) = curve {
                curve.check(&format!("gpu.moe_curves.{name}"), c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn few_tokens_per_expert_pay_for_padded_rows() {
        let c = MoeCurve {
            floor_s: 20e-6,
            row_s: 1e-9,
            compute_efficiency: 0.5,
            pad_rows: 64.0,
            memory_efficiency: 0.8,
        };
        // 8 experts each given 8 rows of a 1e8-parameter expert: compute pays 8 + 64 rows each.
        let w = MoeWork {
            rows: 64.0,
            experts: 8.0,
            expert_params: 1e8,
            bytes: 1e6,
        };
        assert_relative_eq!(
            c.time_s(&w, 1e15, 1e12),
            20e-6 + 64e-9 + 2.0 * (64.0 + 512.0) * 1e8 / 0.5e15,
            max_relative = 1e-12
        );
        // The same weights read from a slow memory: memory-bound.
        let w = MoeWork { bytes: 1e10, ..w };
        assert_relative_eq!(
            c.time_s(&w, 1e15, 1e12),
            20e-6 + 64e-9 + 1e10 / 0.8e12,
            max_relative = 1e-12
        );
        assert_eq!(c.compute_s(&MoeWork::default(), 1e15), 0.0);
    }
}
