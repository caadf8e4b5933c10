//! GEMM efficiency curves: the time of one GEMM as a smooth function of its shape, in place of
//! the scalar efficiencies, fitted per GPU and tensor-core class to measured kernels by
//! `infersim kernels --fit` (`reference/kernels/`).
//!
//! ```text
//! time = floor_s + max(flops / (peak * compute_efficiency)
//!                          * (1 + half_rows / m) * (1 + half_columns / n) * (1 + half_depth / k),
//!                      k * depth_latency_s,
//!                      bytes / (hbm_bandwidth * memory_efficiency))
//! ```
//!
//! Seven coefficients.
//! The compute efficiency saturates in the rows `m` (tokens) and the output features `n` (a GEMM
//! short in either fills few output tiles of the GPU's processors) and in the inner dimension
//! `k`: each output tile pays a fixed cost (filling the pipeline of operand loads, and for
//! block-scaled formats loading the scales, before its first multiply; writing the tile after
//! its last) worth `half_depth` steps of the inner loop, so a GEMM with `k = half_depth` runs at
//! half the efficiency of a deep one. A GEMM of few output tiles leaves most processors idle and
//! runs at the latency of one tile's inner loop, which walks `k` step by step: `depth_latency_s`
//! per element of `k` (a pipeline step's load and multiply latency over the elements it
//! covers). `floor_s` is the time no kernel goes below (launch).
//! Ignored: split-K and wave quantisation (the last partial wave of output tiles), which the
//! measured tables show as scatter around the curve.

use serde::{Deserialize, Serialize};

use super::hardware::PeakFlops;
use super::precision::{ComputeClass, Precision};
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
    /// Inner dimension at which the compute efficiency is half its large-`k` value: the fixed
    /// cost of one output tile in steps of the inner loop. Optional; absent: 0 (no such cost).
    #[serde(default)]
    pub half_depth: f64,
    /// Latency of one tile's inner loop per element of the inner dimension, s: no GEMM's
    /// compute part is shorter than `k * depth_latency_s`. Optional; absent: 0.
    #[serde(default)]
    pub depth_latency_s: f64,
}

impl GemmCurve {
    /// Coefficients in the curve.
    pub const COEFFICIENTS: usize = 7;

    /// Compute-bound part of a GEMM of `flops` over `m` rows, `n` output features and inner
    /// dimension `k`, at `peak_flops_per_s`, s (no floor): the longer of the throughput and the
    /// inner loop's latency.
    pub fn compute_s(&self, flops: f64, m: f64, n: f64, k: f64, peak_flops_per_s: f64) -> f64 {
        let throughput_s = flops / (peak_flops_per_s * self.compute_efficiency)
            * (1.0 + self.half_rows / m)
            * (1.0 + self.half_columns / n)
            * (1.0 + self.half_depth / k);
        throughput_s.max(k * self.depth_latency_s)
    }

    /// Compute-bound part of a group of GEMMs over the same `m` rows (`group`), s (no floor):
    /// the sum of the throughput parts of [`GemmCurve::compute_s`] over the group, which comes
    /// to `2 (m + half_rows) sum (n + half_columns) (k + half_depth) / (peak *
    /// compute_efficiency)`, the sum being `params + half_columns inner + half_depth outer +
    /// half_columns half_depth gemms`, or the sum of their inner loops' latencies (`inner *
    /// depth_latency_s`) if longer. Ignored: GEMMs of the group bound by latency while others
    /// are bound by throughput (the group takes the longer of the two sums).
    pub fn group_compute_s(&self, group: &GemmGroup, peak_flops_per_s: f64) -> f64 {
        let g = group;
        if g.m <= 0.0 || g.params <= 0.0 {
            return 0.0;
        }
        let (hc, hk) = (self.half_columns, self.half_depth);
        let tiles = g.params + hc * g.inner + hk * g.outer + hc * hk * g.gemms;
        let throughput_s =
            2.0 * (g.m + self.half_rows) * tiles / (peak_flops_per_s * self.compute_efficiency);
        throughput_s.max(g.inner * self.depth_latency_s)
    }

    /// Memory-bound part of a GEMM moving `bytes` at `hbm_bytes_per_s`, s (no floor).
    pub fn memory_s(&self, bytes: f64, hbm_bytes_per_s: f64) -> f64 {
        bytes / (hbm_bytes_per_s * self.memory_efficiency)
    }

    /// Time of one GEMM of `shape` (`[m, n, k]`), s.
    pub fn time_s(&self, flops: f64, bytes: f64, shape: [f64; 3], peak: f64, hbm: f64) -> f64 {
        let [m, n, k] = shape;
        self.floor_s
            + self
                .compute_s(flops, m, n, k, peak)
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
        c.non_negative(&format!("{path}.half_depth"), self.half_depth);
        c.non_negative(&format!("{path}.depth_latency_s"), self.depth_latency_s);
    }
}

/// A group of GEMMs over the same `m` rows, as [`GemmCurve::group_compute_s`] prices it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmGroup {
    /// Tokens (rows) of each GEMM.
    pub m: f64,
    /// Weights in all (sum of `n k`).
    pub params: f64,
    /// Sum of the inner dimensions `k`.
    pub inner: f64,
    /// Sum of the output features `n`.
    pub outer: f64,
    /// Number of GEMMs.
    pub gemms: f64,
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
    /// Weight-only GEMMs with 4-bit integer weights and 16-bit activations (W4A16: weights
    /// dequantised to 16 bits before the multiply, other kernels than 16-bit GEMMs): used for
    /// them in place of `bf16`, at the 16-bit rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int4_weight_only: Option<GemmCurve>,
    /// Weight-only GEMMs with 8-bit integer weights and 16-bit activations (W8A16), as
    /// `int4_weight_only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_weight_only: Option<GemmCurve>,
    /// GEMMs with 8-bit integer weights and activations (SmoothQuant W8A8) at the INT8 rate
    /// (`peak_flops_per_s.int8`): used for them in place of the class curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<GemmCurve>,
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

    /// The curve of a GEMM with `weights` and `activations` on a GPU of peaks `peaks`, with the
    /// peak it is priced at: the weight-only or INT8 curve when the formats are those and the
    /// profile has it, else the curve of the class the GEMM runs on
    /// ([`GemmCurves::for_class`]), if any.
    pub fn for_gemm(
        &self,
        weights: Precision,
        activations: Precision,
        peaks: &PeakFlops,
    ) -> Option<(&GemmCurve, f64)> {
        let (runs_on, rate) = peaks.resolve(ComputeClass::of_gemm(weights, activations));
        let wide = matches!(activations, Precision::Bf16 | Precision::Fp16);
        let special = match weights {
            Precision::Int4 if wide => self.int4_weight_only.as_ref().map(|c| (c, rate)),
            Precision::Int8 if wide => self.int8_weight_only.as_ref().map(|c| (c, rate)),
            Precision::Int8 if activations == Precision::Int8 => {
                self.int8.as_ref().map(|c| (c, peaks.int8_rate()))
            }
            _ => None,
        };
        special.or_else(|| self.for_class(runs_on).map(|c| (c, rate)))
    }

    pub(super) fn check(&self, c: &mut Checker) {
        for (name, curve) in [
            ("fp32", &self.fp32),
            ("bf16", &self.bf16),
            ("fp8", &self.fp8),
            ("fp4", &self.fp4),
            ("fp8_block", &self.fp8_block),
            ("int4_weight_only", &self.int4_weight_only),
            ("int8_weight_only", &self.int8_weight_only),
            ("int8", &self.int8),
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

    fn curve() -> GemmCurve {
        GemmCurve {
            floor_s: 3e-6,
            compute_efficiency: 0.8,
            half_rows: 100.0,
            half_columns: 300.0,
            memory_efficiency: 0.8,
            half_depth: 200.0,
            depth_latency_s: 0.0,
        }
    }

    #[test]
    fn the_inner_dimension_term_prices_a_fixed_cost_per_tile() {
        let c = curve();
        // m 100, n 300, k 200: each factor is 2, so 8 times the FLOPs at 0.8 of 1e15.
        let flops = 2.0 * 100.0 * 300.0 * 200.0;
        assert_relative_eq!(
            c.compute_s(flops, 100.0, 300.0, 200.0, 1e15),
            flops / 0.8e15 * 8.0,
            max_relative = 1e-12
        );
        // Without the term the same GEMM costs half as much.
        let flat = GemmCurve {
            half_depth: 0.0,
            ..c
        };
        assert_relative_eq!(
            flat.compute_s(flops, 100.0, 300.0, 200.0, 1e15),
            flops / 0.8e15 * 4.0,
            max_relative = 1e-12
        );
        // Time: floor plus the slower of compute and memory (1.2e6 bytes at 0.8 of 1e12).
        assert_relative_eq!(
            c.time_s(flops, 1.2e6, [100.0, 300.0, 200.0], 1e15, 1e12),
            3e-6 + 1.5e-6,
            max_relative = 1e-12
        );
    }

    #[test]
    fn a_small_gemm_takes_at_least_its_inner_loop_latency() {
        let c = GemmCurve {
            depth_latency_s: 1e-9,
            ..curve()
        };
        // m 100, n 300, k 200: throughput 1.2e-7 s (above), latency 200 ns: the latency.
        let flops = 2.0 * 100.0 * 300.0 * 200.0;
        assert_relative_eq!(
            c.compute_s(flops, 100.0, 300.0, 200.0, 1e15),
            2e-7,
            max_relative = 1e-12
        );
        // A large GEMM (m = n = k = 8192) is bound by throughput: factors 1.0122, 1.0366, 1.0244.
        let big = 2.0 * 8192f64.powi(3);
        let f = (1.0 + 100.0 / 8192.0) * (1.0 + 300.0 / 8192.0) * (1.0 + 200.0 / 8192.0);
        assert_relative_eq!(
            c.compute_s(big, 8192.0, 8192.0, 8192.0, 1e15),
            big / 0.8e15 * f,
            max_relative = 1e-12
        );
        // A group: the sum of latencies when that is longer (two GEMMs of k 200 and 300).
        let group = GemmGroup {
            m: 1.0,
            params: 300.0 * 200.0 + 200.0 * 300.0,
            inner: 500.0,
            outer: 500.0,
            gemms: 2.0,
        };
        assert_relative_eq!(c.group_compute_s(&group, 1e15), 5e-7, max_relative = 1e-12);
    }

    #[test]
    fn a_group_costs_the_sum_of_its_gemms() {
        let c = curve();
        // QKV (n 6144, k 4096) and output (n 4096, k 4096) of 64 tokens.
        let m = 64.0;
        let one = |n: f64, k: f64| c.compute_s(2.0 * m * n * k, m, n, k, 1e15);
        let group = GemmGroup {
            m,
            params: 6144.0 * 4096.0 + 4096.0 * 4096.0,
            inner: 8192.0,
            outer: 6144.0 + 4096.0,
            gemms: 2.0,
        };
        assert_relative_eq!(
            c.group_compute_s(&group, 1e15),
            one(6144.0, 4096.0) + one(4096.0, 4096.0),
            max_relative = 1e-12
        );
        let empty = GemmGroup { m: 0.0, ..group };
        assert_eq!(c.group_compute_s(&empty, 1e15), 0.0);
    }

    #[test]
    fn weight_only_and_int8_gemms_take_their_own_curves_when_present() {
        let peaks = PeakFlops {
            fp32: None,
            bf16: 300e12,
            fp8: None,
            fp4: None,
            int8: Some(600e12),
        };
        let bf16 = curve();
        let wo = GemmCurve {
            floor_s: 8e-6,
            ..bf16
        };
        let int8 = GemmCurve {
            floor_s: 7e-6,
            ..bf16
        };
        let mut curves = GemmCurves {
            bf16: Some(bf16),
            int4_weight_only: Some(wo),
            int8: Some(int8),
            ..GemmCurves::default()
        };
        use Precision::*;
        let pick = |c: &GemmCurves, w, a| c.for_gemm(w, a, &peaks).map(|(c, p)| (c.floor_s, p));
        assert_eq!(pick(&curves, Int4, Bf16), Some((8e-6, 300e12)));
        assert_eq!(pick(&curves, Int4, Fp16), Some((8e-6, 300e12)));
        // No W8A16 curve: the 16-bit curve.
        assert_eq!(pick(&curves, Int8, Bf16), Some((3e-6, 300e12)));
        assert_eq!(pick(&curves, Int8, Int8), Some((7e-6, 600e12)));
        assert_eq!(pick(&curves, Bf16, Bf16), Some((3e-6, 300e12)));
        // Without an INT8 curve, INT8 work runs where FP8 resolves: the 16-bit class here.
        curves.int8 = None;
        assert_eq!(pick(&curves, Int8, Int8), Some((3e-6, 300e12)));
        assert_eq!(peaks.int8_rate(), 600e12);
    }
}
