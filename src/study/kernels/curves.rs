//! Fitting attention and collective curves ([`AttentionCurve`], [`CollectiveCurve`]) to the
//! training half of a GPU's kernel tables (and, through [`super::moe`], MoE curves), by the same Levenberg-Marquardt on log error as the
//! GEMM curves ([`super::fit`]), from fixed starting points (the best kept). Floors, latencies
//! and pads are searched as logarithms, efficiencies as logits.

use serde::Serialize;

use super::fit::{levenberg_marquardt, logistic, logit};
use super::moe::{fit_moe_curves, with_moe_curves, MoeFit};
use super::table::{AttentionRow, CommRow, KernelTables, MlaRow};
use super::{
    attention_shape, comm_kind, interleaved, is_model_attention, mla_shape, splits, KernelOp, Split,
};
use crate::cost::kernel::{prefill_math, AttentionKernel, KernelPricer, MlaDims};
use crate::profile::kernel_curves::{all_reduce_wire_bytes, all_to_all_wire_bytes, DecodeFamily};
use crate::profile::{
    AttentionCurve, AttentionCurves, CollectiveCurve, CollectiveCurves, GpuSystem, Precision,
};

/// A curve fitted to one table's training rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurveFit<C> {
    /// Operator kind fitted (`prefill_attention`, `decode_attention`, `all_reduce_nccl`, ...).
    pub op: KernelOp,
    /// Attention: the KV-cache precision of the rows fitted (`bfloat16`: 16-bit caches, `fp8`);
    /// empty for other kinds.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub kv_cache: &'static str,
    /// GQA decode: the kernel family of the rows fitted (`mha`, `ungrouped`, `small_heads`;
    /// empty: grouped, or not a decode curve), [`DecodeFamily`].
    #[serde(skip_serializing_if = "str::is_empty")]
    pub family: &'static str,
    /// Training rows used.
    pub n: usize,
    /// Root mean squared log error on them.
    pub rms_log_error: f64,
    /// The fitted curve.
    pub curve: C,
}

/// Attention and collective curves fitted for one GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KernelFits {
    /// Prefill and decode attention, GQA / MHA and MLA.
    pub attention: Vec<CurveFit<AttentionCurve>>,
    /// NCCL all-reduce, the engine's own all-reduce, NCCL all-to-all.
    pub collectives: Vec<CurveFit<CollectiveCurve>>,
    /// MoE layers' routed experts, one per format ([`super::moe`]).
    pub moe: Vec<MoeFit>,
}

/// The coefficients an attention curve is fitted with beyond the first five, in the order
/// their search coordinates follow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extras {
    /// `half_sequences` (decode curves).
    half_sequences: bool,
    /// `score_dims` (GQA prefill curves).
    score_dims: bool,
    /// `window_pad_tokens` (GQA prefill curves of tables with sliding-window rows).
    window_pad_tokens: bool,
    /// `half_blocks` and `block_s` (GQA decode curves).
    blocks: bool,
}

impl Extras {
    const NONE: Extras = Extras {
        half_sequences: false,
        score_dims: false,
        window_pad_tokens: false,
        blocks: false,
    };
    const DECODE: Extras = Extras {
        half_sequences: true,
        ..Extras::NONE
    };
    const GQA_DECODE: Extras = Extras {
        blocks: true,
        ..Extras::NONE
    };

    /// The GQA prefill extras: `score_dims`, and `window_pad_tokens` when `windowed`.
    fn prefill(windowed: bool) -> Extras {
        Extras {
            score_dims: true,
            window_pad_tokens: windowed,
            ..Extras::NONE
        }
    }

    /// Each extra in coordinate order with its three starting values.
    fn starts(self) -> Vec<[f64; 3]> {
        [
            (self.half_sequences, [3.0, 30.0, 1.0]),
            (self.score_dims, [32.0, 128.0, 8.0]),
            (self.window_pad_tokens, [64.0, 512.0, 16.0]),
            (self.blocks, [30.0, 300.0, 3.0]),
            (self.blocks, [1e-8, 1e-7, 1e-9]),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, s)| s)
        .collect()
    }
}

/// The curve of search coordinates `x`: five, then the `extras` in order.
fn attention_curve_of(x: &[f64], extras: Extras) -> AttentionCurve {
    let mut rest = x[5..].iter().map(|v| v.exp());
    let mut take = |on: bool| if on { rest.next() } else { None };
    AttentionCurve {
        floor_s: x[0].exp(),
        compute_efficiency: logistic(x[1]),
        memory_efficiency: logistic(x[2]),
        pad_tokens: x[3].exp(),
        head_s: x[4].exp(),
        half_sequences: take(extras.half_sequences),
        score_dims: take(extras.score_dims),
        window_pad_tokens: take(extras.window_pad_tokens),
        half_blocks: take(extras.blocks),
        block_s: take(extras.blocks),
    }
}

/// The collective curve of search coordinates `x`, with `half_peers` and `pipeline_s`.
fn collective_curve_of(x: &[f64; 5]) -> CollectiveCurve {
    CollectiveCurve {
        latency_s: x[0].exp(),
        step_latency_s: x[1].exp(),
        bandwidth_efficiency: logistic(x[2]),
        half_peers: Some(x[3].exp()),
        pipeline_s: Some(x[4].exp()),
    }
}

/// Best of the fits from `starts` (natural coordinates mapped by `to_x`) of `res`.
fn best<const N: usize>(
    starts: &[[f64; N]],
    to_x: impl Fn(&[f64; N]) -> [f64; N],
    res: impl Fn(&[f64; N]) -> Vec<f64> + Copy,
) -> ([f64; N], f64) {
    starts
        .iter()
        .map(|s| levenberg_marquardt(to_x(s), res))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("starting points are given")
}

/// One attention row as the fit sees it: its work, raw peak, and measured latency.
type AttentionPoint = (AttentionKernel, f64, f64);

/// Scale of the robust loss GQA decode curves are fitted with, in log error: a residual `r`
/// counts as `c sqrt(ln(1 + (r / c)^2))` (Cauchy), like squared error below 10% and ever less
/// beyond. A decode table mixes kernel variants the engine switches between by shape (tile
/// sizes, tensor-core or CUDA-core math) that no smooth curve follows; squared error lets the
/// few rows of a variant far from the rest pull the curve off the many, where the check
/// measures the median.
pub const ROBUST_SCALE: f64 = 0.1;

fn robust(r: f64) -> f64 {
    let c = ROBUST_SCALE;
    r.signum() * c * (1.0 + (r / c).powi(2)).ln().sqrt()
}

/// An attention curve fitted to `pts`: five coefficients and the `extras` (`N` in all).
fn fit_attention<const N: usize>(
    op: KernelOp,
    pts: &[AttentionPoint],
    hbm: f64,
    extras: Extras,
) -> Option<CurveFit<AttentionCurve>> {
    if pts.len() < 8 {
        return None;
    }
    let log_errors = |x: &[f64; N]| -> Vec<f64> {
        let c = attention_curve_of(x, extras);
        pts.iter()
            .map(|(k, peak, t)| {
                (c.time_s(&k.work, k.flops_per_pair, k.kv_bytes_per_token, *peak, hbm) / t).ln()
            })
            .collect()
    };
    // GQA decode curves (those with block terms) by the robust loss, the others by squares.
    let res = |x: &[f64; N]| -> Vec<f64> {
        let r = log_errors(x);
        if extras.blocks {
            r.into_iter().map(robust).collect()
        } else {
            r
        }
    };
    let starts5 = [
        [5e-6, 0.5, 0.7, 64.0, 1e-9],
        [10e-6, 0.3, 0.5, 512.0, 1e-8],
        [3e-6, 0.7, 0.8, 8.0, 1e-10],
    ];
    let extra = extras.starts();
    let mut starts: Vec<[f64; N]> = (0..3)
        .map(|j| {
            std::array::from_fn(|i| {
                if i < 5 {
                    starts5[j][i]
                } else {
                    extra[i - 5][j]
                }
            })
        })
        .collect();
    if extras.blocks && N == 7 {
        // A GQA decode start with the compute side far from binding (decode kernels reach a
        // few per cent of the tensor-core peak) and a few thread blocks to half rate.
        starts.push(std::array::from_fn(|i| {
            [8e-6, 0.05, 0.8, 30.0, 3e-9, 3.0, 1e-8][i]
        }));
    }
    let to_x = |s: &[f64; N]| {
        std::array::from_fn(|i| match i {
            1 | 2 => logit(s[i]),
            _ => s[i].ln(),
        })
    };
    let (x, _) = best(&starts, to_x, res);
    let loss: f64 = log_errors(&x).iter().map(|r| r * r).sum();
    Some(CurveFit {
        op,
        kv_cache: "",
        family: "",
        n: pts.len(),
        rms_log_error: (loss / pts.len() as f64).sqrt(),
        curve: attention_curve_of(&x, extras),
    })
}

/// A collective curve with all five coefficients fitted to `rows` on links of `link` B/s, the
/// wire bytes counted by `wire`.
fn fit_collective(
    op: KernelOp,
    rows: &[&CommRow],
    link: f64,
    wire: fn(u32, f64) -> f64,
) -> Option<CurveFit<CollectiveCurve>> {
    if rows.len() < 8 {
        return None;
    }
    let res = |x: &[f64; 5]| -> Vec<f64> {
        let c = collective_curve_of(x);
        rows.iter()
            .map(|r| (c.time_s(r.gpus, wire(r.gpus, r.bytes), link) / r.latency_s).ln())
            .collect()
    };
    // (latency_s, step_latency_s, bandwidth_efficiency, half_peers, pipeline_s); the last start
    // near no peer term, where a curve without one lies.
    let starts = [
        [5e-6, 1e-6, 0.7, 0.5, 1e-6],
        [2e-6, 1e-7, 0.8, 0.1, 1e-5],
        [10e-6, 1e-6, 0.5, 1.0, 1e-7],
        [2e-6, 0.5e-6, 0.6, 1e-3, 2e-6],
    ];
    let to_x = |s: &[f64; 5]| [s[0].ln(), s[1].ln(), logit(s[2]), s[3].ln(), s[4].ln()];
    let (x, loss) = best(&starts, to_x, res);
    Some(CurveFit {
        op,
        kv_cache: "",
        n: rows.len(),
        family: "",
        rms_log_error: (loss / rows.len() as f64).sqrt(),
        curve: collective_curve_of(&x),
    })
}

/// The training rows of an attention table with an FP8 (or narrower) KV cache (`fp8_kv`) or a
/// wider one as fit points, each at the peak of the math `math(kv_cache, activations)`.
fn attention_points(
    pricer: &KernelPricer,
    rows: &[AttentionRow],
    fp8_kv: bool,
    math: fn(Precision, Precision) -> Precision,
    kernel: impl Fn(&AttentionRow) -> AttentionKernel,
    keep: impl Fn(&AttentionRow) -> bool,
) -> Vec<AttentionPoint> {
    rows.iter()
        .zip(splits(rows, is_model_attention))
        .filter(|(r, s)| *s == Split::Train && (r.kv_cache.bytes() <= 1.0) == fp8_kv && keep(r))
        .map(|(r, _)| {
            let acts = math(r.kv_cache, r.activations);
            let peak = pricer.attention_peak_flops_per_s(r.kv_cache, acts);
            (kernel(r), peak, r.latency_s)
        })
        .collect()
}

/// The training rows (every other row) of an MLA table with a KV cache of `kv_cache` as fit
/// points, priced at the MLA peak.
fn mla_points(
    pricer: &KernelPricer,
    rows: &[MlaRow],
    kv_cache: Precision,
    kernel: impl Fn(&MlaRow) -> AttentionKernel,
) -> Vec<AttentionPoint> {
    rows.iter()
        .enumerate()
        .filter(|(i, r)| interleaved(*i) == Split::Train && r.kv_cache == kv_cache)
        .map(|(_, r)| {
            (
                kernel(r),
                pricer.mla_peak_flops_per_s(kv_cache),
                r.latency_s,
            )
        })
        .collect()
}

/// The KV-cache precisions MLA curves are fitted for, with their published names.
pub const MLA_KV_CACHES: [(Precision, &str); 2] =
    [(Precision::Bf16, "bfloat16"), (Precision::Fp8, "fp8")];

/// MLA prefill and decode curves fitted per KV-cache precision.
fn fit_mla(
    pricer: &KernelPricer,
    tables: &KernelTables,
    mla: MlaDims,
    hbm: f64,
) -> Vec<CurveFit<AttentionCurve>> {
    let mut out = Vec::new();
    for (kv, name) in MLA_KV_CACHES {
        let prefill = mla_points(pricer, &tables.mla_prefill, kv, |r| {
            mla_shape(r, mla).prefill_unabsorbed(r.tokens)
        });
        let decode = mla_points(pricer, &tables.mla_decode, kv, |r| {
            mla_shape(r, mla).decode(r.tokens)
        });
        // Decode with `half_sequences` (six coefficients), prefill without (five).
        let fits = [
            fit_attention::<5>(KernelOp::MlaPrefillAttention, &prefill, hbm, Extras::NONE),
            fit_attention::<6>(KernelOp::MlaDecodeAttention, &decode, hbm, Extras::DECODE),
        ];
        out.extend(fits.into_iter().flatten().map(|f| CurveFit {
            kv_cache: name,
            ..f
        }));
    }
    out
}

/// Attention and collective curves of `gpu` fitted to the training half of `tables`, MLA
/// attention with the constants `mla`.
pub fn fit_kernel_curves(gpu: &GpuSystem, tables: &KernelTables, mla: MlaDims) -> KernelFits {
    let pricer = KernelPricer::new(gpu);
    let hbm = gpu.hbm_bandwidth_bytes_per_s;
    let mut attention = Vec::new();
    for (fp8_kv, name) in [(false, "bfloat16"), (true, "fp8")] {
        // Prefill at the peak its curve prices it at (an FP8 cache's math, `prefill_math`).
        let prefill = attention_points(
            &pricer,
            &tables.prefill,
            fp8_kv,
            prefill_math,
            |r| attention_shape(r).prefill(r.tokens),
            |_| true,
        );
        // Prefill with `score_dims`, and `window_pad_tokens` where rows have a sliding window
        // (seven coefficients).
        let prefill_fit = if prefill.iter().any(|(k, _, _)| k.work.window_queries > 0.0) {
            fit_attention::<7>(
                KernelOp::PrefillAttention,
                &prefill,
                hbm,
                Extras::prefill(true),
            )
        } else {
            fit_attention::<6>(
                KernelOp::PrefillAttention,
                &prefill,
                hbm,
                Extras::prefill(false),
            )
        };
        attention.extend(prefill_fit.map(|f| CurveFit {
            kv_cache: name,
            ..f
        }));
        // Decode per kernel family ([`DecodeFamily`]), with the KV cache read and the thread
        // blocks counted as the kernel reads and splits it (`decode_read`), with `half_blocks`
        // and `block_s` (seven coefficients).
        let sms = gpu.streaming_multiprocessors;
        for (family, label) in [
            (DecodeFamily::Grouped, ""),
            (DecodeFamily::Mha, "mha"),
            (DecodeFamily::Ungrouped, "ungrouped"),
            (DecodeFamily::SmallHeads, "small_heads"),
        ] {
            let decode = attention_points(
                &pricer,
                &tables.decode,
                fp8_kv,
                |_, a| a,
                |r| attention_shape(r).decode_read(r.tokens, sms),
                |r| DecodeFamily::of(r.heads as f64 / r.kv_heads as f64, r.head_dim) == family,
            );
            let fit =
                fit_attention::<7>(KernelOp::DecodeAttention, &decode, hbm, Extras::GQA_DECODE);
            attention.extend(fit.map(|f| CurveFit {
                kv_cache: name,
                family: label,
                ..f
            }));
        }
    }
    attention.extend(fit_mla(&pricer, tables, mla, hbm));
    let checked: Vec<(KernelOp, &CommRow)> = tables
        .comm
        .iter()
        .filter_map(|r| comm_kind(r).map(|k| (k, r)))
        .collect();
    let link = gpu.interconnect.bandwidth_bytes_per_s;
    let collectives = [
        (
            KernelOp::AllReduceNccl,
            all_reduce_wire_bytes as fn(u32, f64) -> f64,
        ),
        (KernelOp::AllReduceCustom, all_reduce_wire_bytes),
        (KernelOp::AllToAllNccl, all_to_all_wire_bytes),
    ]
    .into_iter()
    .filter_map(|(op, wire)| {
        let train: Vec<&CommRow> = checked
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| *k == op && interleaved(*i) == Split::Train)
            .map(|(_, (_, r))| *r)
            .collect();
        fit_collective(op, &train, link, wire)
    })
    .collect();
    KernelFits {
        attention,
        collectives,
        moe: fit_moe_curves(gpu, tables),
    }
}

/// `gpu` with the fitted attention, collective and MoE curves in place of any it had.
pub fn with_kernel_curves(gpu: &GpuSystem, fits: &KernelFits) -> GpuSystem {
    let mut a = AttentionCurves::default();
    for f in &fits.attention {
        let fp8 = f.kv_cache == "fp8";
        let slot = match f.op {
            KernelOp::PrefillAttention if fp8 => &mut a.prefill_fp8_kv,
            KernelOp::PrefillAttention => &mut a.prefill,
            KernelOp::DecodeAttention => match (f.family, fp8) {
                ("mha", true) => &mut a.decode_mha_fp8_kv,
                ("mha", false) => &mut a.decode_mha,
                ("ungrouped", true) => &mut a.decode_ungrouped_fp8_kv,
                ("ungrouped", false) => &mut a.decode_ungrouped,
                ("small_heads", true) => &mut a.decode_small_heads_fp8_kv,
                ("small_heads", false) => &mut a.decode_small_heads,
                (_, true) => &mut a.decode_fp8_kv,
                _ => &mut a.decode,
            },
            KernelOp::MlaPrefillAttention if fp8 => &mut a.mla_prefill_fp8_kv,
            KernelOp::MlaPrefillAttention => &mut a.mla_prefill,
            KernelOp::MlaDecodeAttention if fp8 => &mut a.mla_decode_fp8_kv,
            KernelOp::MlaDecodeAttention => &mut a.mla_decode,
            _ => &mut a.decode,
        };
        *slot = Some(f.curve);
    }
    let mut c = CollectiveCurves::default();
    for f in &fits.collectives {
        match f.op {
            KernelOp::AllReduceNccl => c.all_reduce = Some(f.curve),
            KernelOp::AllReduceCustom => c.all_reduce_custom = Some(f.curve),
            _ => c.all_to_all = Some(f.curve),
        }
    }
    let mut g = with_moe_curves(gpu, &fits.moe);
    g.attention_curves = Some(a);
    g.collective_curves = Some(c);
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::kernel::AttentionShape;
    use approx::assert_relative_eq;

    #[test]
    fn a_prefill_fit_recovers_the_score_and_window_terms_a_synthetic_table_was_made_with() {
        let truth = AttentionCurve {
            floor_s: 12e-6,
            compute_efficiency: 0.6,
            memory_efficiency: 0.9,
            pad_tokens: 300.0,
            head_s: 1e-8,
            half_sequences: None,
            score_dims: Some(100.0),
            window_pad_tokens: Some(400.0),
            half_blocks: None,
            block_s: None,
        };
        let (peak, hbm) = (1e15, 3e12);
        // Prompts of 1 to 16k tokens, head dims 64 to 256 (the softmax weighs most on small
        // heads), full attention and a 128-token window.
        let pts: Vec<AttentionPoint> = [64u64, 128, 256]
            .iter()
            .flat_map(|&head_dim| {
                [None, Some(128)].into_iter().flat_map(move |window| {
                    [1u64, 4, 32].into_iter().flat_map(move |batch| {
                        (0..15).map(move |p| {
                            let shape = AttentionShape {
                                batch,
                                heads: 16,
                                kv_heads: 4,
                                head_dim,
                                window,
                                activations: Precision::Bf16,
                                kv_cache: Precision::Bf16,
                            };
                            let k = shape.prefill(1 << p);
                            let t = truth.time_s(
                                &k.work,
                                k.flops_per_pair,
                                k.kv_bytes_per_token,
                                peak,
                                hbm,
                            );
                            (k, peak, t)
                        })
                    })
                })
            })
            .collect();
        let f = fit_attention::<7>(KernelOp::PrefillAttention, &pts, hbm, Extras::prefill(true))
            .unwrap();
        assert!(f.rms_log_error < 1e-4, "{}", f.rms_log_error);
        assert!(f.curve.half_sequences.is_none());
        assert_relative_eq!(f.curve.score_dims.unwrap(), 100.0, max_relative = 1e-2);
        assert_relative_eq!(
            f.curve.window_pad_tokens.unwrap(),
            400.0,
            max_relative = 1e-2
        );
        assert_relative_eq!(f.curve.compute_efficiency, 0.6, max_relative = 1e-2);
        assert_relative_eq!(f.curve.floor_s, 12e-6, max_relative = 1e-2);
    }

    #[test]
    fn a_collective_fit_recovers_the_curve_a_synthetic_table_was_made_with() {
        let truth = CollectiveCurve {
            latency_s: 8e-6,
            step_latency_s: 1.5e-6,
            bandwidth_efficiency: 0.7,
            half_peers: Some(0.5),
            pipeline_s: Some(3e-6),
        };
        let link = 450e9;
        let rows: Vec<CommRow> = [2u32, 4, 8]
            .iter()
            .flat_map(|&g| {
                (8..30).map(move |p| {
                    let bytes = f64::from(1u32 << p);
                    CommRow {
                        library: "nccl".into(),
                        op: "all_reduce".into(),
                        gpus: g,
                        bytes,
                        latency_s: truth.time_s(g, all_reduce_wire_bytes(g, bytes), link),
                    }
                })
            })
            .collect();
        let refs: Vec<&CommRow> = rows.iter().collect();
        let f =
            fit_collective(KernelOp::AllReduceNccl, &refs, link, all_reduce_wire_bytes).unwrap();
        assert!(f.rms_log_error < 1e-5, "{}", f.rms_log_error);
        let (got, want) = (f.curve, truth);
        assert_relative_eq!(got.latency_s, want.latency_s, max_relative = 1e-3);
        assert_relative_eq!(got.step_latency_s, want.step_latency_s, max_relative = 1e-3);
        assert_relative_eq!(
            got.bandwidth_efficiency,
            want.bandwidth_efficiency,
            max_relative = 1e-3
        );
        assert_relative_eq!(got.half_peers.unwrap(), 0.5, max_relative = 1e-3);
        assert_relative_eq!(got.pipeline_s.unwrap(), 3e-6, max_relative = 1e-3);
    }
}
