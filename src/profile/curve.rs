//! GEMM efficiency curves: the time of one GEMM as a smooth function of its shape, in place of
//! the scalar efficiencies, fitted per GPU and tensor-core class to measured kernels by
//! `infersim kernels --fit` (`reference/kernels/`).
//!
//! ```text
//! time = floor_s + max(flops / (peak * compute_efficiency) * (1 + half_rows / m) * (1 + half_columns / n),
//!                      bytes / (hbm_bandwidth * memory_efficiency))
//! ```
//!
//! Five coefficients.
//! The compute efficiency saturates in the rows `m` (tokens) and the output features `n` (a GEMM
//! short in either fills few output tiles of the GPU's processors); `floor_s` is the time no
//! kernel goes below (launch, prologue, epilogue). Ignored: the inner dimension `k`, split-K
//! and wave quantisation, which the measured tables show as scatter around the curve.

use serde::{Deserialize, Serialize};

use super::precision::ComputeClass;
use super::validate::Checker;

/// One GEMM curve; see the module documentation for its formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GemmCurve {
    /// Time below which no GEMM kernel runs, s.
    pub floor_s: f64,
    /// Fraction of the class's peak FLOP/s reached by GEMMs large in both `m` and `n`, in (0, 1].
    pub compute_efficiency: f64,
    /// Rows (tokens) at which the compute efficiency is half its large-`m` value.
    pub half_rows: f64,
    /// Output features at which the compute efficiency is half its large-`n` value.
    pub half_columns: f64,
    /// Fraction of peak HBM bandwidth reached by memory-bound GEMMs, in (0, 1].
    pub memory_efficiency: f64,
}

impl GemmCurve {
    /// Coefficients in the curve.
    pub const COEFFICIENTS: usize = 5;

    /// Compute-bound part of a GEMM of `flops` over `m` rows and `n` output features, at
    /// `peak_flops_per_s`, s (no floor).
    pub fn compute_s(&self, flops: f64, m: f64, n: f64, peak_flops_per_s: f64) -> f64 {
        flops / (peak_flops_per_s * self.compute_efficiency)
            * (1.0 + self.half_rows / m)
            * (1.0 + self.half_columns / n)
    }

    /// Compute-bound part of a group of GEMMs over the same `m` rows holding `params` weights in
    /// all (the sum of their `n k`) and `inner` the sum of their inner dimensions `k`, s (no
    /// floor): the sum of [`GemmCurve::compute_s`] over the group, which comes to
    /// `2 (m + half_rows) (params + half_columns inner) / (peak * compute_efficiency)`.
    pub fn group_compute_s(&self, m: f64, params: f64, inner: f64, peak_flops_per_s: f64) -> f64 {
        if m <= 0.0 || params <= 0.0 {
            return 0.0;
        }
        2.0 * (m + self.half_rows) * (params + self.half_columns * inner)
            / (peak_flops_per_s * self.compute_efficiency)
    }

    /// Memory-bound part of a GEMM moving `bytes` at `hbm_bytes_per_s`, s (no floor).
    pub fn memory_s(&self, bytes: f64, hbm_bytes_per_s: f64) -> f64 {
        bytes / (hbm_bytes_per_s * self.memory_efficiency)
    }

    /// Time of one GEMM, s.
    pub fn time_s(&self, flops: f64, bytes: f64, m: f64, n: f64, peak: f64, hbm: f64) -> f64 {
        self.floor_s
            + self
                .compute_s(flops, m, n, peak)
                .max(self.memory_s(bytes, hbm))
    }

    fn check(&self, path: &str, c: &mut Checker) {
        c.non_negative(&format!("{path}.floor_s"), self.floor_s);
        c.fraction(
            &format!("{path}.compute_efficiency"),
            self.compute_efficiency,
        );
        c.non_negative(&format!("{path}.half_rows"), self.half_rows);
        c.non_negative(&format!("{path}.half_columns"), self.half_columns);
        c.fraction(&format!("{path}.memory_efficiency"), self.memory_efficiency);
    }
}

/// GEMM curves by the tensor-core class the work runs on; a class without one uses the scalar
/// efficiencies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GemmCurves {
    /// FP32 / TF32 GEMMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp32: Option<GemmCurve>,
    /// BF16 / FP16 GEMMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<GemmCurve>,
    /// FP8 GEMMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp8: Option<GemmCurve>,
    /// FP4 GEMMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp4: Option<GemmCurve>,
    /// FP8 GEMMs scaled per block (1x128 activations, 128x128 weights), other kernels than the
    /// per-tensor ones: used by the kernel check for that format. The step has no per-block
    /// precision yet and prices FP8 GEMMs by `fp8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp8_block: Option<GemmCurve>,
}

impl GemmCurves {
    /// The curve of work running on `class` tensor cores, if the profile has one.
    pub fn for_class(&self, class: ComputeClass) -> Option<&GemmCurve> {
        match class {
            ComputeClass::Fp32 => self.fp32.as_ref(),
            ComputeClass::Bf16 => self.bf16.as_ref(),
            ComputeClass::Fp8 => self.fp8.as_ref(),
            ComputeClass::Fp4 => self.fp4.as_ref(),
        }
    }

    pub(super) fn check(&self, c: &mut Checker) {
        for (name, curve) in [
            ("fp32", &self.fp32),
            ("bf16", &self.bf16),
            ("fp8", &self.fp8),
            ("fp4", &self.fp4),
            ("fp8_block", &self.fp8_block),
        ] {
            if let Some(curve) = curve {
                curve.check(&format!("gpu.gemm_curves.{name}"), c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn a_group_costs_the_sum_of_its_gemms() {
        let c = GemmCurve {
            floor_s: 3e-6,
            compute_efficiency: 0.8,
            half_rows: 100.0,
            half_columns: 300.0,
            memory_efficiency: 0.8,
        };
        // QKV (n 6144, k 4096) and output (n 4096, k 4096) of 64 tokens.
        let m = 64.0;
        let one = |n: f64, k: f64| c.compute_s(2.0 * m * n * k, m, n, 1e15);
        let params = 6144.0 * 4096.0 + 4096.0 * 4096.0;
        assert_relative_eq!(
            c.group_compute_s(m, params, 8192.0, 1e15),
            one(6144.0, 4096.0) + one(4096.0, 4096.0),
            max_relative = 1e-12
        );
        assert_eq!(c.group_compute_s(0.0, params, 8192.0, 1e15), 0.0);
    }
}
