//! The kernel check: the GPU cost model's price of single kernels (GEMMs, prefill and decode
//! attention, collectives; [`crate::cost::kernel`]) against NVIDIA's measured latencies of the
//! same shapes (`reference/kernels/`, read by [`table`]), per GPU and operator kind: how many
//! shapes, the median and 90th percentile of |predicted / measured - 1|, and the signed median.
//!
//! Shapes are split two ways so that a fitted model can be judged on what it did not see:
//! interleaved (the tables' rows in file order, every other row held out) and one whole model
//! (every shape of Llama 3.1 70B at tensor parallelism 4, which the extraction keeps in full;
//! for MoE layers every row of DeepSeek-V3 / R1's layer, of which the extraction keeps one row
//! in 29 to 49 like the rest). Collectives have no model block, nor has MLA attention: its
//! tables measure DeepSeek-V3's kernel alone (the only MLA model, [`MLA_MODEL`], its heads at
//! every tensor parallelism), so they hold out interleaved rows only. The MoE table's routed experts
//! are checked as the step prices them (by the profile's MoE curve when it has one); ignored:
//! all-gather and reduce-scatter (the cost model has no such operators).

pub mod curves;
pub mod fit;
pub mod moe;
pub mod table;

use serde::Serialize;

use crate::cost::kernel::{gemm_work, AttentionShape, KernelPricer, MlaDims, MlaShape};
use crate::profile::{ComputeClass, GemmCurve, GemmCurves, GpuSystem, Precision};
use table::KernelTables;

/// GEMM (n, k) of Llama 3.1 70B at tensor parallelism 4 (QKV, output, gate or up, down), the
/// block `tools/kernels/extract.py` keeps whole.
pub const MODEL_GEMMS: [(u64, u64); 4] = [(2560, 8192), (8192, 2048), (7168, 8192), (8192, 7168)];
/// Attention (heads, KV heads, head dim) of the same model at tensor parallelism 4.
pub const MODEL_ATTENTION: (u64, u64, u64) = (16, 2, 128);

/// MoE layer (hidden, expert intermediate width, experts per token, experts) of
/// DeepSeek-V3 / R1, whose every row of the MoE tables is held out of the fit.
pub const MODEL_MOE: (u64, u64, u64, u64) = (7168, 2048, 8, 256);

/// The model whose MLA attention the MLA tables measure (its per-head constants price them).
pub const MLA_MODEL: &str = "deepseek-v3";

/// The operator kinds checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelOp {
    /// A GEMM of any published format.
    Gemm,
    /// Causal attention over whole prompts.
    PrefillAttention,
    /// One decode step's attention.
    DecodeAttention,
    /// MLA attention over whole prompts.
    MlaPrefillAttention,
    /// One decode step's MLA attention.
    MlaDecodeAttention,
    /// NCCL all-reduce.
    AllReduceNccl,
    /// TensorRT-LLM's own all-reduce kernel.
    AllReduceCustom,
    /// NCCL all-to-all.
    AllToAllNccl,
    /// One MoE layer's routed experts (grouped GEMMs).
    MoeExperts,
}

impl KernelOp {
    /// Every kind, in report order.
    pub const ALL: [KernelOp; 9] = [
        KernelOp::Gemm,
        KernelOp::PrefillAttention,
        KernelOp::DecodeAttention,
        KernelOp::MlaPrefillAttention,
        KernelOp::MlaDecodeAttention,
        KernelOp::AllReduceNccl,
        KernelOp::AllReduceCustom,
        KernelOp::AllToAllNccl,
        KernelOp::MoeExperts,
    ];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelOp::Gemm => "gemm",
            KernelOp::PrefillAttention => "prefill_attention",
            KernelOp::DecodeAttention => "decode_attention",
            KernelOp::MlaPrefillAttention => "mla_prefill_attention",
            KernelOp::MlaDecodeAttention => "mla_decode_attention",
            KernelOp::AllReduceNccl => "all_reduce_nccl",
            KernelOp::AllReduceCustom => "all_reduce_custom",
            KernelOp::AllToAllNccl => "all_to_all_nccl",
            KernelOp::MoeExperts => "moe_experts",
        }
    }
}

/// Which part of a table a shape belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The interleaved half a fit may use.
    Train,
    /// The other interleaved half.
    HeldOut,
    /// The whole model's shapes, never used by a fit.
    Model,
}

impl Split {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::HeldOut => "held_out",
            Split::Model => "model",
        }
    }
}

/// One measured shape and the model's price of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Operator kind.
    pub op: KernelOp,
    /// GEMM format as published (`bfloat16`, `fp8`, ...); empty for other kinds.
    pub format: &'static str,
    /// Part of the table.
    pub split: Split,
    /// Predicted latency, s.
    pub predicted_s: f64,
    /// Measured latency, s.
    pub measured_s: f64,
}

impl Sample {
    /// `predicted / measured - 1`.
    pub fn rel_error(&self) -> f64 {
        self.predicted_s / self.measured_s - 1.0
    }
}

/// Error statistics of one hardware profile, operator kind and split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Hardware profile.
    pub hardware: String,
    /// Operator kind.
    pub op: KernelOp,
    /// GEMMs: the format (`all` for every format together); empty for other kinds.
    pub format: String,
    /// Shapes judged.
    pub split: Split,
    /// Number of shapes.
    pub n: usize,
    /// Median of |predicted / measured - 1|.
    pub median_abs_rel_error: f64,
    /// 90th percentile of |predicted / measured - 1|.
    pub p90_abs_rel_error: f64,
    /// Median of predicted / measured - 1 (negative: the model is fast).
    pub median_rel_error: f64,
}

/// Interleaved split of the `i`-th row of a table that is not in the model block.
pub(crate) fn interleaved(i: usize) -> Split {
    if i.is_multiple_of(2) {
        Split::Train
    } else {
        Split::HeldOut
    }
}

/// Assign splits to rows in file order: the model block, then every other remaining row.
pub(crate) fn splits<T>(rows: &[T], in_model: impl Fn(&T) -> bool) -> Vec<Split> {
    let mut i = 0;
    rows.iter()
        .map(|r| {
            if in_model(r) {
                Split::Model
            } else {
                i += 1;
                interleaved(i - 1)
            }
        })
        .collect()
}

pub(crate) fn attention_shape(r: &table::AttentionRow) -> AttentionShape {
    AttentionShape {
        batch: r.batch,
        heads: r.heads,
        kv_heads: r.kv_heads,
        head_dim: r.head_dim,
        window: r.window,
        activations: r.activations,
        kv_cache: r.kv_cache,
    }
}

pub(crate) fn mla_shape(r: &table::MlaRow, dims: MlaDims) -> MlaShape {
    MlaShape {
        batch: r.batch,
        heads: r.heads,
        dims,
        activations: r.activations,
        kv_cache: r.kv_cache,
    }
}

pub(crate) fn is_model_attention(r: &table::AttentionRow) -> bool {
    (r.heads, r.kv_heads, r.head_dim) == MODEL_ATTENTION
}

pub(crate) fn is_model_moe(r: &table::MoeRow) -> bool {
    (r.shape.hidden, r.shape.inter, r.shape.topk, r.shape.experts) == MODEL_MOE
}

/// The operator kind a collective row is checked as, if any.
pub(crate) fn comm_kind(r: &table::CommRow) -> Option<KernelOp> {
    match (r.library.starts_with("nccl"), r.op.as_str()) {
        (true, "all_reduce") => Some(KernelOp::AllReduceNccl),
        (false, "all_reduce") => Some(KernelOp::AllReduceCustom),
        (true, "alltoall") => Some(KernelOp::AllToAllNccl),
        _ => None,
    }
}

/// Every shape of `tables` priced by `pricer`, MLA attention with the constants `mla`.
pub fn samples(pricer: &KernelPricer, tables: &KernelTables, mla: MlaDims) -> Vec<Sample> {
    let mut out = Vec::new();
    let g = &tables.gemm;
    for (r, split) in g
        .iter()
        .zip(splits(g, |r| MODEL_GEMMS.contains(&(r.n, r.k))))
    {
        out.push(Sample {
            op: KernelOp::Gemm,
            format: r.format,
            split,
            predicted_s: if r.format == BLOCK_FP8 {
                pricer.gemm_block_fp8_s(r.m, r.n, r.k)
            } else {
                pricer.gemm_s(r.m, r.n, r.k, r.weights, r.activations)
            },
            measured_s: r.latency_s,
        });
    }
    for (rows, op) in [
        (&tables.prefill, KernelOp::PrefillAttention),
        (&tables.decode, KernelOp::DecodeAttention),
    ] {
        for (r, split) in rows.iter().zip(splits(rows, is_model_attention)) {
            let shape = attention_shape(r);
            out.push(Sample {
                op,
                format: "",
                split,
                predicted_s: match op {
                    KernelOp::PrefillAttention => pricer.prefill_attention_s(&shape, r.tokens),
                    _ => pricer.decode_attention_s(&shape, r.tokens),
                },
                measured_s: r.latency_s,
            });
        }
    }
    for (rows, op) in [
        (&tables.mla_prefill, KernelOp::MlaPrefillAttention),
        (&tables.mla_decode, KernelOp::MlaDecodeAttention),
    ] {
        for (i, r) in rows.iter().enumerate() {
            let shape = mla_shape(r, mla);
            out.push(Sample {
                op,
                format: "",
                split: interleaved(i),
                predicted_s: match op {
                    KernelOp::MlaPrefillAttention => {
                        pricer.mla_prefill_attention_s(&shape, r.tokens)
                    }
                    _ => pricer.mla_decode_attention_s(&shape, r.tokens),
                },
                measured_s: r.latency_s,
            });
        }
    }
    let c = &tables.comm;
    let checked: Vec<_> = c
        .iter()
        .filter_map(|r| comm_kind(r).map(|k| (k, r)))
        .collect();
    for (i, (op, r)) in checked.into_iter().enumerate() {
        let predicted_s = match op {
            KernelOp::AllToAllNccl => pricer.all_to_all_s(r.gpus, r.bytes),
            KernelOp::AllReduceCustom => pricer.all_reduce_s(r.gpus, r.bytes, true),
            _ => pricer.all_reduce_s(r.gpus, r.bytes, false),
        };
        out.push(Sample {
            op,
            format: "",
            split: interleaved(i),
            predicted_s,
            measured_s: r.latency_s,
        });
    }
    let m = &tables.moe;
    for (r, split) in m.iter().zip(splits(m, is_model_moe)) {
        out.push(Sample {
            op: KernelOp::MoeExperts,
            format: r.format,
            split,
            predicted_s: pricer.moe_experts_s(&r.shape),
            measured_s: r.latency_s,
        });
    }
    out
}

/// The `q`-quantile of sorted values, interpolating linearly between ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn summary(hardware: &str, op: KernelOp, format: &str, split: Split, errors: Vec<f64>) -> Summary {
    let mut signed = errors;
    let mut abs: Vec<f64> = signed.iter().map(|e| e.abs()).collect();
    signed.sort_by(f64::total_cmp);
    abs.sort_by(f64::total_cmp);
    Summary {
        hardware: hardware.to_string(),
        op,
        format: format.to_string(),
        split,
        n: abs.len(),
        median_abs_rel_error: quantile(&abs, 0.5),
        p90_abs_rel_error: quantile(&abs, 0.9),
        median_rel_error: quantile(&signed, 0.5),
    }
}

/// Statistics of the samples of one hardware profile, per operator kind and split (`splits`),
/// in report order, GEMMs over every format (`all`) and then per format; kinds, formats or
/// splits without samples are left out.
pub fn summarise(hardware: &str, samples: &[Sample], splits: &[Split]) -> Vec<Summary> {
    let mut out = Vec::new();
    for op in KernelOp::ALL {
        let mut formats: Vec<&str> = Vec::new();
        for s in samples.iter().filter(|s| s.op == op) {
            if !formats.contains(&s.format) {
                formats.push(s.format);
            }
        }
        let groups: Vec<(&str, Option<&str>)> =
            if matches!(op, KernelOp::Gemm | KernelOp::MoeExperts) {
                std::iter::once(("all", None))
                    .chain(formats.iter().map(|&f| (f, Some(f))))
                    .collect()
            } else {
                vec![("", None)]
            };
        for (label, only) in groups {
            for &split in splits {
                let errors: Vec<f64> = samples
                    .iter()
                    .filter(|s| s.op == op && s.split == split)
                    .filter(|s| only.is_none_or(|f| s.format == f))
                    .map(Sample::rel_error)
                    .collect();
                if !errors.is_empty() {
                    out.push(summary(hardware, op, label, split, errors));
                }
            }
        }
    }
    out
}

/// The check of one GPU system against its tables, MLA attention with the constants `mla`.
pub fn check(
    hardware: &str,
    pricer: &KernelPricer,
    tables: &KernelTables,
    mla: MlaDims,
) -> Vec<Summary> {
    let s = samples(pricer, tables, mla);
    summarise(hardware, &s, &[Split::HeldOut, Split::Model])
}

/// The profile's GEMM curves and the published format each is fitted to: per tensor-core
/// class the format whose weights and activations are both of that class, scaled per tensor;
/// FP8 scaled per block; the weight-only formats (4- and 8-bit integer weights, 16-bit
/// activations) and SmoothQuant (8-bit integer weights and activations).
pub const FIT_FORMATS: [(&str, &str); 7] = [
    ("bf16", "bfloat16"),
    ("fp8", "fp8"),
    ("fp4", "nvfp4"),
    ("fp8_block", BLOCK_FP8),
    ("int4_weight_only", "int4_wo"),
    ("int8_weight_only", "int8_wo"),
    ("int8", "sq"),
];

/// The published format of FP8 GEMMs scaled per block, fitted to a curve of its own
/// (`gemm_curves.fp8_block`) on GPUs that run FP8 natively.
pub const BLOCK_FP8: &str = "fp8_block";

/// A curve fitted to one format's training rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassFit {
    /// The profile's curve it fills (`gemm_curves.<curve>`).
    pub curve_name: &'static str,
    /// Format whose rows it was fitted to.
    pub format: &'static str,
    /// Training rows used.
    pub n: usize,
    /// Root mean squared log error on them.
    pub rms_log_error: f64,
    /// The fitted curve.
    pub curve: GemmCurve,
}

/// The peak FLOP/s the curve `name` prices GEMMs of `weights` and `activations` at on `gpu`
/// ([`GemmCurves::for_gemm`]), or `None` when the GPU lacks the class's tensor cores (a
/// per-class curve whose work would run on a wider class).
fn curve_peak(
    gpu: &GpuSystem,
    name: &str,
    weights: Precision,
    activations: Precision,
) -> Option<f64> {
    let peaks = &gpu.peak_flops_per_s;
    let class = ComputeClass::of_gemm(weights, activations);
    let (runs_on, rate) = peaks.resolve(class);
    match name {
        "int8" => Some(peaks.int8_rate()),
        "int4_weight_only" | "int8_weight_only" => Some(rate),
        _ => (runs_on == class).then_some(rate),
    }
}

/// GEMM curves of `gpu` fitted to the training half of `tables`' GEMMs, one per curve of
/// [`FIT_FORMATS`] the GPU can run that has rows of its format.
pub fn fit_curves(gpu: &GpuSystem, tables: &KernelTables) -> Vec<ClassFit> {
    let g = &tables.gemm;
    let split = splits(g, |r| MODEL_GEMMS.contains(&(r.n, r.k)));
    let mut out = Vec::new();
    for (name, format) in FIT_FORMATS {
        let rows: Vec<_> = g
            .iter()
            .zip(&split)
            .filter(|(r, s)| r.format == format && **s == Split::Train)
            .map(|(r, _)| r)
            .collect();
        let Some(first) = rows.first() else {
            continue;
        };
        let Some(peak) = curve_peak(gpu, name, first.weights, first.activations) else {
            continue;
        };
        let points: Vec<fit::GemmPoint> = rows
            .iter()
            .map(|r| {
                let (flops, bytes) = gemm_work(r.m, r.n, r.k, r.weights, r.activations);
                fit::GemmPoint {
                    flops,
                    bytes,
                    m: r.m as f64,
                    n: r.n as f64,
                    k: r.k as f64,
                    latency_s: r.latency_s,
                }
            })
            .collect();
        if let Some((curve, mse)) = fit::fit_gemm(&points, peak, gpu.hbm_bandwidth_bytes_per_s) {
            out.push(ClassFit {
                curve_name: name,
                format,
                n: points.len(),
                rms_log_error: mse.sqrt(),
                curve,
            });
        }
    }
    out
}

/// `gpu` with the fitted curves in place of any it had.
pub fn with_curves(gpu: &GpuSystem, fits: &[ClassFit]) -> GpuSystem {
    let mut curves = GemmCurves::default();
    for f in fits {
        let slot = match f.curve_name {
            "fp32" => &mut curves.fp32,
            "bf16" => &mut curves.bf16,
            "fp8" => &mut curves.fp8,
            "fp4" => &mut curves.fp4,
            "fp8_block" => &mut curves.fp8_block,
            "int4_weight_only" => &mut curves.int4_weight_only,
            "int8_weight_only" => &mut curves.int8_weight_only,
            _ => &mut curves.int8,
        };
        *slot = Some(f.curve);
    }
    let mut g = gpu.clone();
    g.gemm_curves = Some(curves);
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_relative_eq!(quantile(&v, 0.5), 2.0);
        assert_relative_eq!(quantile(&v, 0.9), 3.6);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn splits_interleave_outside_the_model_block() {
        let rows = [1, 9, 2, 3, 9, 4];
        let s = splits(&rows, |&r| r == 9);
        use Split::*;
        assert_eq!(s, vec![Train, Model, HeldOut, Train, Model, HeldOut]);
    }

    #[test]
    fn summaries_count_signed_and_absolute_errors() {
        let mk = |p: f64| Sample {
            op: KernelOp::Gemm,
            format: "bfloat16",
            split: Split::HeldOut,
            predicted_s: p,
            measured_s: 1.0,
        };
        let s = summarise("x", &[mk(0.5), mk(1.1), mk(1.2)], &[Split::HeldOut]);
        // Every format together, then the one format.
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].format.as_str(), s[1].format.as_str()),
            ("all", "bfloat16")
        );
        assert_eq!(s[0].n, 3);
        assert_relative_eq!(s[0].median_abs_rel_error, 0.2, max_relative = 1e-12);
        assert_relative_eq!(s[0].median_rel_error, 0.1, max_relative = 1e-12);
    }
}
