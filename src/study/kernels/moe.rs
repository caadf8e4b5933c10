//! Fitting MoE curves ([`MoeCurve`]) to the training half of a GPU's fused-MoE table, one per
//! format the GPU runs natively, by the same Levenberg-Marquardt on log error as the other
//! curves ([`super::fit`]), from fixed starting points (the best kept). The floor, per-row
//! time and padding are searched as logarithms, efficiencies as logits. Rows of DeepSeek-V3 /
//! R1's layer ([`super::MODEL_MOE`]) and every other remaining row are held out.

use serde::Serialize;

use super::fit::{levenberg_marquardt, logistic, logit};
use super::table::KernelTables;
use super::{is_model_moe, splits, Split, BLOCK_FP8};
use crate::profile::{ComputeClass, GpuSystem, MoeCurve, MoeCurves, MoeWork};

/// The published MoE format each curve is fitted to, with the class it runs on; `fp8_block`
/// fills the curve of that name.
pub const MOE_FORMATS: [(ComputeClass, &str); 4] = [
    (ComputeClass::Bf16, "bfloat16"),
    (ComputeClass::Fp8, "fp8"),
    (ComputeClass::Fp4, "nvfp4"),
    (ComputeClass::Fp8, BLOCK_FP8),
];

/// A MoE curve fitted to one format's training rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoeFit {
    /// Tensor-core class the experts run on.
    pub class: ComputeClass,
    /// Format whose rows it was fitted to.
    pub format: &'static str,
    /// Training rows used.
    pub n: usize,
    /// Root mean squared log error on them.
    pub rms_log_error: f64,
    /// The fitted curve.
    pub curve: MoeCurve,
}

impl MoeFit {
    /// Name of the profile's curve this fit fills (`bf16`, `fp8`, `fp4`, `fp8_block`).
    pub fn slot(&self) -> &'static str {
        if self.format == BLOCK_FP8 {
            BLOCK_FP8
        } else {
            self.class.name()
        }
    }
}

fn curve_of(x: &[f64; 5]) -> MoeCurve {
    MoeCurve {
        floor_s: x[0].exp(),
        row_s: x[1].exp(),
        compute_efficiency: logistic(x[2]),
        pad_rows: x[3].exp(),
        memory_efficiency: logistic(x[4]),
    }
}

/// The curve minimising the squared log error over `pts` (work, measured latency) at
/// `peak_flops_per_s` and `hbm_bytes_per_s`, with its mean squared log error; `None` with
/// fewer than eight points.
pub fn fit_moe(
    pts: &[(MoeWork, f64)],
    peak_flops_per_s: f64,
    hbm_bytes_per_s: f64,
) -> Option<(MoeCurve, f64)> {
    if pts.len() < 8 {
        return None;
    }
    let res = |x: &[f64; 5]| -> Vec<f64> {
        let c = curve_of(x);
        pts.iter()
            .map(|(w, t)| (c.time_s(w, peak_flops_per_s, hbm_bytes_per_s) / t).ln())
            .collect()
    };
    let starts: [[f64; 5]; 3] = [
        [20e-6, 1e-9, 0.5, 64.0, 0.7],
        [50e-6, 1e-8, 0.3, 128.0, 0.5],
        [10e-6, 1e-10, 0.7, 16.0, 0.8],
    ];
    let (x, loss) = starts
        .iter()
        .map(|s| {
            let x = [s[0].ln(), s[1].ln(), logit(s[2]), s[3].ln(), logit(s[4])];
            levenberg_marquardt(x, res)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((curve_of(&x), loss / pts.len() as f64))
}

/// MoE curves of `gpu` fitted to the training half of `tables`' MoE rows, one per format in
/// [`MOE_FORMATS`] whose class the GPU runs natively and which has rows.
pub fn fit_moe_curves(gpu: &GpuSystem, tables: &KernelTables) -> Vec<MoeFit> {
    let m = &tables.moe;
    let split = splits(m, is_model_moe);
    let hbm = gpu.hbm_bandwidth_bytes_per_s;
    MOE_FORMATS
        .into_iter()
        .filter_map(|(class, format)| {
            let (runs_on, peak) = gpu.peak_flops_per_s.resolve(class);
            if runs_on != class {
                return None;
            }
            let pts: Vec<(MoeWork, f64)> = m
                .iter()
                .zip(&split)
                .filter(|(r, s)| r.format == format && **s == Split::Train)
                .map(|(r, _)| (r.shape.work(), r.latency_s))
                .collect();
            let (curve, mse) = fit_moe(&pts, peak, hbm)?;
            Some(MoeFit {
                class,
                format,
                n: pts.len(),
                rms_log_error: mse.sqrt(),
                curve,
            })
        })
        .collect()
}

/// `gpu` with the fitted MoE curves in place of any it had.
pub fn with_moe_curves(gpu: &GpuSystem, fits: &[MoeFit]) -> GpuSystem {
    let mut curves = MoeCurves::default();
    for f in fits {
        let slot = match f.class {
            _ if f.format == BLOCK_FP8 => &mut curves.fp8_block,
            ComputeClass::Bf16 => &mut curves.bf16,
            ComputeClass::Fp8 => &mut curves.fp8,
            ComputeClass::Fp4 => &mut curves.fp4,
            ComputeClass::Fp32 => continue,
        };
        *slot = Some(f.curve);
    }
    let mut g = gpu.clone();
    g.moe_curves = Some(curves);
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn a_moe_fit_recovers_the_curve_a_synthetic_table_was_made_with() {
        let truth = MoeCurve {
            floor_s: 30e-6,
            row_s: 2e-9,
            compute_efficiency: 0.6,
            pad_rows: 80.0,
            memory_efficiency: 0.75,
        };
        let (peak, hbm) = (2e15, 8e12);
        let mut pts = Vec::new();
        for (hidden, inter, k, e) in [(4096.0, 1536.0, 8.0, 128.0), (6144.0, 16384.0, 2.0, 8.0)] {
            for t in [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0] {
                let params: f64 = 3.0 * hidden * inter;
                let touched = e * (1.0 - (1.0f64 - k / e).powf(t));
                let w = MoeWork {
                    rows: t * k,
                    experts: touched,
                    expert_params: params,
                    bytes: touched * params + 4.0 * t * hidden,
                };
                pts.push((w, truth.time_s(&w, peak, hbm)));
            }
        }
        let (fit, mse) = fit_moe(&pts, peak, hbm).unwrap();
        assert!(mse < 1e-10, "{mse}");
        assert_relative_eq!(fit.floor_s, truth.floor_s, max_relative = 1e-3);
        assert_relative_eq!(fit.pad_rows, truth.pad_rows, max_relative = 1e-3);
        assert_relative_eq!(
            fit.memory_efficiency,
            truth.memory_efficiency,
            max_relative = 1e-3
        );
        assert!(fit_moe(&pts[..4], peak, hbm).is_none());
    }
}
