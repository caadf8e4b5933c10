//! The kernel check: the GPU cost model's price of single kernels (GEMMs, prefill and decode
//! attention, collectives; [`crate::cost::kernel`]) against NVIDIA's measured latencies of the
//! same shapes (`reference/kernels/`, read by [`table`]), per GPU and operator kind: how many
//! shapes, the median and 90th percentile of |predicted / measured - 1|, and the signed median.
//!
//! Shapes are split two ways so that a fitted model can be judged on what it did not see:
//! interleaved (the tables' rows in file order, every other row held out) and one whole model
//! (every shape of Llama 3.1 70B at tensor parallelism 4, which the extraction keeps in full).
//! Collectives have no model block. Ignored: the MoE table (grouped GEMMs are not priced as such
//! by the cost model), all-gather and reduce-scatter (the cost model has no such operators).

pub mod table;

use serde::Serialize;

use crate::cost::kernel::{AttentionShape, KernelPricer};
use crate::profile::GpuSystem;
use table::KernelTables;

/// GEMM (n, k) of Llama 3.1 70B at tensor parallelism 4 (QKV, output, gate or up, down), the
/// block `tools/kernels/extract.py` keeps whole.
pub const MODEL_GEMMS: [(u64, u64); 4] = [(2560, 8192), (8192, 2048), (7168, 8192), (8192, 7168)];
/// Attention (heads, KV heads, head dim) of the same model at tensor parallelism 4.
pub const MODEL_ATTENTION: (u64, u64, u64) = (16, 2, 128);

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
    /// NCCL all-reduce.
    AllReduceNccl,
    /// TensorRT-LLM's own all-reduce kernel.
    AllReduceCustom,
    /// NCCL all-to-all.
    AllToAllNccl,
}

impl KernelOp {
    /// Every kind, in report order.
    pub const ALL: [KernelOp; 6] = [
        KernelOp::Gemm,
        KernelOp::PrefillAttention,
        KernelOp::DecodeAttention,
        KernelOp::AllReduceNccl,
        KernelOp::AllReduceCustom,
        KernelOp::AllToAllNccl,
    ];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelOp::Gemm => "gemm",
            KernelOp::PrefillAttention => "prefill_attention",
            KernelOp::DecodeAttention => "decode_attention",
            KernelOp::AllReduceNccl => "all_reduce_nccl",
            KernelOp::AllReduceCustom => "all_reduce_custom",
            KernelOp::AllToAllNccl => "all_to_all_nccl",
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
fn interleaved(i: usize) -> Split {
    if i.is_multiple_of(2) {
        Split::Train
    } else {
        Split::HeldOut
    }
}

/// Assign splits to rows in file order: the model block, then every other remaining row.
fn splits<T>(rows: &[T], in_model: impl Fn(&T) -> bool) -> Vec<Split> {
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

fn attention_shape(r: &table::AttentionRow) -> AttentionShape {
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

fn is_model_attention(r: &table::AttentionRow) -> bool {
    (r.heads, r.kv_heads, r.head_dim) == MODEL_ATTENTION
}

/// Every shape of `tables` priced by `pricer`.
pub fn samples(pricer: &KernelPricer, tables: &KernelTables) -> Vec<Sample> {
    let mut out = Vec::new();
    let g = &tables.gemm;
    for (r, split) in g
        .iter()
        .zip(splits(g, |r| MODEL_GEMMS.contains(&(r.n, r.k))))
    {
        out.push(Sample {
            op: KernelOp::Gemm,
            split,
            predicted_s: pricer.gemm_s(r.m, r.n, r.k, r.weights, r.activations),
            measured_s: r.latency_s,
        });
    }
    let p = &tables.prefill;
    for (r, split) in p.iter().zip(splits(p, is_model_attention)) {
        out.push(Sample {
            op: KernelOp::PrefillAttention,
            split,
            predicted_s: pricer.prefill_attention_s(&attention_shape(r), r.tokens),
            measured_s: r.latency_s,
        });
    }
    let d = &tables.decode;
    for (r, split) in d.iter().zip(splits(d, is_model_attention)) {
        out.push(Sample {
            op: KernelOp::DecodeAttention,
            split,
            predicted_s: pricer.decode_attention_s(&attention_shape(r), r.tokens),
            measured_s: r.latency_s,
        });
    }
    let c = &tables.comm;
    let kind = |r: &table::CommRow| match (r.library.starts_with("nccl"), r.op.as_str()) {
        (true, "all_reduce") => Some(KernelOp::AllReduceNccl),
        (false, "all_reduce") => Some(KernelOp::AllReduceCustom),
        (true, "alltoall") => Some(KernelOp::AllToAllNccl),
        _ => None,
    };
    let checked: Vec<_> = c.iter().filter_map(|r| kind(r).map(|k| (k, r))).collect();
    for (i, (op, r)) in checked.into_iter().enumerate() {
        let predicted_s = match op {
            KernelOp::AllToAllNccl => pricer.all_to_all_s(r.gpus, r.bytes),
            _ => pricer.all_reduce_s(r.gpus, r.bytes),
        };
        out.push(Sample {
            op,
            split: interleaved(i),
            predicted_s,
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

/// Statistics of the samples of one hardware profile, per operator kind and split (`splits`),
/// in report order; kinds or splits without samples are left out.
pub fn summarise(hardware: &str, samples: &[Sample], splits: &[Split]) -> Vec<Summary> {
    let mut out = Vec::new();
    for op in KernelOp::ALL {
        for &split in splits {
            let mut signed: Vec<f64> = samples
                .iter()
                .filter(|s| s.op == op && s.split == split)
                .map(Sample::rel_error)
                .collect();
            if signed.is_empty() {
                continue;
            }
            let mut abs: Vec<f64> = signed.iter().map(|e| e.abs()).collect();
            signed.sort_by(f64::total_cmp);
            abs.sort_by(f64::total_cmp);
            out.push(Summary {
                hardware: hardware.to_string(),
                op,
                split,
                n: abs.len(),
                median_abs_rel_error: quantile(&abs, 0.5),
                p90_abs_rel_error: quantile(&abs, 0.9),
                median_rel_error: quantile(&signed, 0.5),
            });
        }
    }
    out
}

/// The check of one GPU system against its tables.
pub fn check(hardware: &str, gpu: &GpuSystem, tables: &KernelTables) -> Vec<Summary> {
    let s = samples(&KernelPricer::new(gpu), tables);
    summarise(hardware, &s, &[Split::HeldOut, Split::Model])
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
            split: Split::HeldOut,
            predicted_s: p,
            measured_s: 1.0,
        };
        let s = summarise("x", &[mk(0.5), mk(1.1), mk(1.2)], &[Split::HeldOut]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].n, 3);
        assert_relative_eq!(s[0].median_abs_rel_error, 0.2, max_relative = 1e-12);
        assert_relative_eq!(s[0].median_rel_error, 0.1, max_relative = 1e-12);
    }
}
