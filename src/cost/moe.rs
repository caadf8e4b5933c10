//! Routed experts of the GPU step priced by a profile's MoE curve
//! ([`crate::profile::MoeCurve`]) instead of the scalar efficiencies: the curve's floor per MoE
//! layer, its time per routed row, and the slower of the padded grouped-GEMM compute and the
//! touched experts' weight reads. The rest of the operator (shared experts and the router's
//! gate GEMM, dense GEMMs over the GPU's own tokens) keeps its roofline and kernel count; the
//! two parts run as separate kernels, so their times add.
//! Ignored: routing imbalance across experts (the curve was fitted to evenly spread tokens) and
//! per-block FP8 experts (the step has no such precision; FP8 experts take the `fp8` curve).

use super::OpCost;
use crate::profile::{MoeCurve, MoeWork};

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
