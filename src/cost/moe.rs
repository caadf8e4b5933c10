//! Routed experts of the GPU step priced by a profile's MoE curve
//! ([`crate::profile::MoeCurve`]) instead of the scalar efficiencies: the curve's floor per MoE
//! layer, its time per routed row, and the slower of the padded grouped-GEMM compute and the
//! touched experts' weight reads. The rest of the operator (shared experts and the router's
//! gate GEMM, dense GEMMs over the GPU's own tokens) keeps its roofline and kernel count; the
//! two parts run as separate kernels, so their times add.
//! Ignored: per-block FP8 experts (the step has no such precision; FP8 experts take the `fp8`
//! curve).
//!
//! Expert-load imbalance ([`ExpertImbalance`]): under expert parallelism each GPU computes the
//! tokens routed to its own experts, and the step waits for the busiest GPU. The curve was
//! fitted to evenly spread tokens, so a model whose tokens per expert vary (its profile's
//! `moe.expert_load_cv`) has the busiest GPU's routed rows and dispatched activations scaled by
//! its expected load over the mean.

use super::OpCost;
use crate::profile::{MoeCurve, MoeWork};
use statrs::distribution::{ContinuousCDF, Normal};

/// The expected load of the busiest of `ep` expert-parallel GPUs relative to the mean, each GPU
/// holding `E / ep` of the `E` experts. A GPU's load varies with its experts' popularity (the
/// tokens per expert have coefficient of variation `cv`, experts taken as independent: `cv^2
/// ep / E`) and with the sampling of `R` routed rows over the GPUs (multinomial: `(ep - 1) /
/// R`); the sum of the two is the squared coefficient of variation of a GPU's load. Loads are
/// taken as lognormal with that spread (non-negative and skewed to the right, as hot experts
/// make them), and the busiest as the expected largest of `ep` draws, at `z`, the expected
/// largest of `ep` standard normals (Blom's approximation, `Phi^-1((ep - 0.375) / (ep +
/// 0.25))`): `exp(-s^2 / 2 + s z)` with `s^2 = ln(1 + cv_gpu^2)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ExpertImbalance {
    /// GPUs the experts are spread over.
    ep: f64,
    /// Squared coefficient of variation of a GPU's load from its experts' popularity.
    popularity_cv2: f64,
    /// Expected largest of `ep` standard normals.
    z: f64,
}

impl ExpertImbalance {
    /// Imbalance over `ep` GPUs holding `experts` experts whose loads vary by `cv`; `None`
    /// where there is nothing to balance (one GPU).
    pub(crate) fn new(cv: f64, experts: f64, ep: f64) -> Option<Self> {
        if ep <= 1.0 || experts <= 0.0 {
            return None;
        }
        let normal = Normal::standard();
        Some(ExpertImbalance {
            ep,
            popularity_cv2: cv * cv * ep / experts,
            z: normal.inverse_cdf((ep - 0.375) / (ep + 0.25)),
        })
    }

    /// Expected load of the busiest GPU over the mean when `rows` token-expert pairs are routed
    /// in all (at least 1).
    pub(crate) fn busiest(&self, rows: f64) -> f64 {
        let sampling = if rows > 0.0 {
            (self.ep - 1.0) / rows
        } else {
            0.0
        };
        let s2 = (self.popularity_cv2 + sampling).ln_1p();
        (-0.5 * s2 + s2.sqrt() * self.z).exp()
    }
}

/// The MoE curve of one placed model's routed experts.
#[derive(Debug, Clone)]
pub(crate) struct MoePricing {
    /// The curve of the class the experts run on.
    pub curve: MoeCurve,
    /// Raw peak FLOP/s of that class.
    pub peak_flops_per_s: f64,
    /// Raw HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
}

impl MoePricing {
    /// The operator made of `layers` MoE layers' routed experts doing `routed` (summed over
    /// the layers) and of `other`, the rest of those layers' work priced by the roofline.
    pub(crate) fn op(&self, layers: f64, routed: &MoeWork, other: OpCost) -> OpCost {
        let c = &self.curve;
        let (cr, mr) = (
            c.compute_s(routed, self.peak_flops_per_s),
            c.memory_s(routed, self.hbm_bytes_per_s),
        );
        let compute_s = cr + other.compute_s;
        let memory_s = mr + other.memory_s;
        // Each part takes the slower of its own bounds; what the sums' max leaves out shows as
        // exposed time.
        let parts = cr.max(mr) + other.compute_s.max(other.memory_s) + other.exposed_s;
        OpCost {
            flops: routed.flops() + other.flops,
            bytes: routed.bytes + other.bytes,
            compute_s,
            memory_s,
            exposed_s: (parts - compute_s.max(memory_s)).max(0.0),
            interconnect_s: 0.0,
            overhead_s: layers * c.floor_s + routed.rows * c.row_s + other.overhead_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn busiest_gpu_by_hand_and_against_the_measurement() {
        // DeepSeek-R1 on 32 GB200 without load balancing (TensorRT-LLM tech blog 4, Table 1):
        // tokens per expert slot mean 128, standard deviation 164.1 (cv 1.282); per GPU (8
        // experts each) standard deviation 491.6 of 1,024 (0.480), the busiest GPU 1.564 above
        // the mean (2.564 times it), averaged over layers and iterations.
        let cv = 164.1 / 128.0;
        let i = ExpertImbalance::new(cv, 256.0, 32.0).unwrap();
        // By hand: cv_gpu^2 = 1.6436 / 8 = 0.20545 (0.453, the measured 0.480 less 6%);
        // s^2 = ln 1.20545 = 0.18685; z_32 = Phi^-1(31.625 / 32.25) = 2.0667;
        // exp(-0.09343 + 0.43227 x 2.0667) = 2.2254.
        let rows = 1e12;
        assert_relative_eq!(i.busiest(rows), 2.2254, max_relative = 1e-3);
        // 13% under the measured 2.564: hot experts weigh more than a lognormal tail.
        assert!((i.busiest(rows) / 2.564 - 1.0).abs() < 0.15);
        // Eight GPUs of 32 experts each, as NVIDIA's MLPerf DeepSeek-R1 runs (EP 8): milder.
        let eight = ExpertImbalance::new(cv, 256.0, 8.0).unwrap();
        assert!((1.25..1.45).contains(&eight.busiest(rows)));
        // Few rows add sampling spread; one GPU has nothing to balance.
        assert!(eight.busiest(64.0) > eight.busiest(rows));
        assert!(ExpertImbalance::new(cv, 256.0, 1.0).is_none());
    }

    #[test]
    fn the_routed_and_dense_parts_add() {
        let p = MoePricing {
            curve: MoeCurve {
                floor_s: 30e-6,
                row_s: 1e-8,
                compute_efficiency: 0.5,
                pad_rows: 100.0,
                memory_efficiency: 0.8,
            },
            peak_flops_per_s: 1e15,
            hbm_bytes_per_s: 1e12,
        };
        // Two layers, memory-bound routed part; a compute-bound dense part with 4 us exposed.
        let routed = MoeWork {
            rows: 32.0,
            experts: 16.0,
            expert_params: 1e7,
            bytes: 8e8,
        };
        let other = OpCost {
            flops: 1e12,
            bytes: 1e6,
            compute_s: 2e-3,
            memory_s: 1e-6,
            exposed_s: 4e-6,
            interconnect_s: 0.0,
            overhead_s: 5e-6,
        };
        let op = p.op(2.0, &routed, other);
        let routed_s = 60e-6 + 32e-8 + (8e8 / 0.8e12f64).max(2.0 * 1632.0 * 1e7 / 0.5e15);
        assert_relative_eq!(
            op.time_s(),
            routed_s + 2e-3 + 4e-6 + 5e-6,
            max_relative = 1e-12
        );
    }
}
