//! `infersim kernels`: the GPU cost model's price of single kernels against NVIDIA's measured
//! latencies (`reference/kernels/`), per hardware profile, operator kind and split: shapes,
//! median and 90th-percentile |relative error|, signed median (table, CSV or JSON). `--fit`
//! first fits GEMM curves, attention curves (prefill, decode; MLA prefill and decode per KV-cache
//! precision, priced with DeepSeek-V3's dimensions) and collective curves (NCCL and
//! the engine's own all-reduce, NCCL all-to-all) to the training half of each GPU's tables and
//! prints them as profile TOML; `--scalar` ignores the profiles' curves.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::Common;
use super::text::pretty;
use crate::cost::kernel::{KernelPricer, MlaDims};
use crate::error::{Error, Result};
use crate::profile::{load_hardware, load_model};
use crate::report::{num, Format, Table};
use crate::study::kernels::curves::{self, KernelFits};
use crate::study::kernels::{self, table, ClassFit, Summary};

#[derive(Debug, Args)]
pub(super) struct KernelsArgs {
    /// Hardware profiles to check (repeatable) [default: every profile in the tables' index.csv].
    #[arg(long, value_name = "NAME")]
    hardware: Vec<String>,
    /// Directory of the kernel tables and their index.csv.
    #[arg(long, value_name = "DIR", default_value = "reference/kernels")]
    tables: PathBuf,
    /// Fit GEMM curves (per tensor-core class), attention curves and collective curves to the
    /// training half of each GPU's tables,
    /// check with them, and print them as profile TOML.
    #[arg(long, conflicts_with = "scalar")]
    fit: bool,
    /// Price every kernel with the scalar efficiencies, ignoring the profiles' curves.
    #[arg(long)]
    scalar: bool,
    #[command(flatten)]
    common: Common,
}

/// The curves `--fit` made for one profile: its name, the tables fitted and the fits.
type Fitted = (String, PathBuf, Vec<ClassFit>, KernelFits);

/// Every summary row of the check, profiles in index order, and the fits made with `--fit`.
fn summaries(a: &KernelsArgs) -> Result<(Vec<Summary>, Vec<Fitted>)> {
    let overrides = a.common.overrides()?;
    let index = table::index(&a.tables)?;
    for h in &a.hardware {
        if !index.iter().any(|(name, _)| name == h) {
            let known: Vec<&str> = index.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::arg(
                "--hardware",
                format!(
                    "no kernel tables for \"{h}\"; available: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let mla_model = load_model(kernels::MLA_MODEL, &[])?;
    let mla = MlaDims::of(&mla_model).ok_or_else(|| {
        Error::arg(
            "--tables",
            format!("{} is not an MLA model", kernels::MLA_MODEL),
        )
    })?;
    let mut out = Vec::new();
    let mut fits = Vec::new();
    for (name, dir) in &index {
        if !a.hardware.is_empty() && !a.hardware.contains(name) {
            continue;
        }
        let hw = load_hardware(name, &overrides)?;
        let gpu = hw.gpu().ok_or_else(|| {
            Error::arg(
                "--hardware",
                format!("{name} is not a GPU system; kernel tables are GPU measurements"),
            )
        })?;
        let tables = table::load(dir)?;
        let pricer = if a.fit {
            let f = kernels::fit_curves(gpu, &tables);
            let k = curves::fit_kernel_curves(gpu, &tables, mla);
            let fitted = curves::with_kernel_curves(&kernels::with_curves(gpu, &f), &k);
            fits.push((name.clone(), dir.clone(), f, k));
            KernelPricer::new(&fitted)
        } else if a.scalar {
            KernelPricer::scalar(gpu)
        } else {
            KernelPricer::new(gpu)
        };
        out.extend(kernels::check(name, &pricer, &tables, mla));
    }
    Ok((out, fits))
}

/// The fitted curves of one profile as TOML to paste into it, with their provenance.
fn curves_toml(hardware: &str, dir: &std::path::Path, fits: &[ClassFit], k: &KernelFits) -> String {
    let mut s = format!("# {hardware}\n");
    let file = dir.join("gemm.csv");
    for f in fits {
        let c = &f.curve;
        s += &format!(
            "[gpu.gemm_curves.{}]\n# Fit: `infersim kernels --fit` on {}, format {}, its {} \
             training rows (every other row outside the Llama 3.1 70B block); rms log error {}.\n\
             floor_s = {:.4e}\ncompute_efficiency = {:.4}\nhalf_rows = {:.4}\n\
             half_columns = {:.4}\nmemory_efficiency = {:.4}\nhalf_depth = {:.4}\n\
             depth_latency_s = {:.4e}\n",
            f.curve_name,
            file.display(),
            f.format,
            f.n,
            num(f.rms_log_error, 3),
            c.floor_s,
            c.compute_efficiency,
            c.half_rows,
            c.half_columns,
            c.memory_efficiency,
            c.half_depth,
            c.depth_latency_s,
        );
    }
    let source = |f: &str| format!("`infersim kernels --fit` on {}", dir.join(f).display());
    for f in &k.attention {
        let suffix = if f.kv_cache == "fp8" { "_fp8_kv" } else { "" };
        let (name, file) = match f.op {
            kernels::KernelOp::PrefillAttention => ("prefill", "context_attention.csv"),
            kernels::KernelOp::MlaPrefillAttention => ("mla_prefill", "context_mla.csv"),
            kernels::KernelOp::MlaDecodeAttention => ("mla_decode", "generation_mla.csv"),
            _ => match f.family {
                "mha" => ("decode_mha", "generation_attention.csv"),
                "ungrouped" => ("decode_ungrouped", "generation_attention.csv"),
                "small_heads" => ("decode_small_heads", "generation_attention.csv"),
                _ => ("decode", "generation_attention.csv"),
            },
        };
        let rows = match f.op {
            kernels::KernelOp::PrefillAttention => format!(
                "every other row outside the Llama 3.1 70B block, those with kv_cache_dtype {}",
                f.kv_cache
            ),
            kernels::KernelOp::DecodeAttention => format!(
                "every other row outside the Llama 3.1 70B block, those with kv_cache_dtype {} and \
                 {} per KV head; robust loss",
                f.kv_cache,
                match f.family {
                    "mha" => "one query head",
                    "ungrouped" => "more than 32 query heads",
                    "small_heads" => "2 to 32 query heads of at most 64 dims",
                    _ => "2 to 32 query heads of more than 64 dims",
                }
            ),
            _ => format!(
                "every other row, those with kv_cache_dtype {}: DeepSeek-V3's kernel in all",
                f.kv_cache
            ),
        };
        let c = &f.curve;
        s += &format!(
            "[gpu.attention_curves.{name}{suffix}]\n# Fit: {}, its {} training rows ({rows}); rms log \
             error {}.\nfloor_s = {:.4e}\n\
             compute_efficiency = {:.4}\nmemory_efficiency = {:.4}\npad_tokens = {:.2}\n\
             head_s = {:.4e}\n{}",
            source(file),
            f.n,
            num(f.rms_log_error, 3),
            c.floor_s,
            c.compute_efficiency,
            c.memory_efficiency,
            c.pad_tokens,
            c.head_s,
            c.half_sequences
                .map_or(String::new(), |h| format!("half_sequences = {h:.2}\n"))
                + &c.score_dims
                    .map_or(String::new(), |d| format!("score_dims = {d:.1}\n"))
                + &c.window_pad_tokens
                    .map_or(String::new(), |t| format!("window_pad_tokens = {t:.1}\n"))
                + &c.half_blocks
                    .map_or(String::new(), |h| format!("half_blocks = {h:.2}\n"))
                + &c.block_s
                    .map_or(String::new(), |t| format!("block_s = {t:.4e}\n")),
        );
    }
    for f in &k.collectives {
        let (name, rows) = match f.op {
            kernels::KernelOp::AllReduceNccl => ("all_reduce", "NCCL all_reduce"),
            kernels::KernelOp::AllReduceCustom => ("all_reduce_custom", "trtllm-custom all_reduce"),
            _ => ("all_to_all", "NCCL alltoall"),
        };
        let c = &f.curve;
        s += &format!(
            "[gpu.collective_curves.{name}]\n# Fit: {}, {rows}, its {} training rows (every other \
             row); rms log error {}.\nlatency_s = {:.4e}\nstep_latency_s = {:.4e}\n\
             bandwidth_efficiency = {:.4}\n{}{}",
            source("comm.csv"),
            f.n,
            num(f.rms_log_error, 3),
            c.latency_s,
            c.step_latency_s,
            c.bandwidth_efficiency,
            c.half_peers
                .map_or(String::new(), |h| format!("half_peers = {h:.4}\n")),
            c.pipeline_s
                .map_or(String::new(), |p| format!("pipeline_s = {p:.4e}\n")),
        );
    }
    for f in &k.moe {
        let c = &f.curve;
        s += &format!(
            "[gpu.moe_curves.{}]\n# Fit: {}, format {}, its {} training rows (every other row \
             outside the DeepSeek-V3 block); rms log error {}.\nfloor_s = {:.4e}\n\
             row_s = {:.4e}\ncompute_efficiency = {:.4}\npad_rows = {:.2}\n\
             memory_efficiency = {:.4}\n",
            f.slot(),
            source("moe.csv"),
            f.format,
            f.n,
            num(f.rms_log_error, 3),
            c.floor_s,
            c.row_s,
            c.compute_efficiency,
            c.pad_rows,
            c.memory_efficiency,
        );
    }
    s
}

fn render(rows: &[Summary]) -> Table {
    let mut t = Table::new([
        "hardware",
        "op",
        "format",
        "shapes",
        "n",
        "median_|err|_%",
        "p90_|err|_%",
        "median_err_%",
    ]);
    for r in rows {
        t.row([
            r.hardware.clone(),
            r.op.name().to_string(),
            if r.format.is_empty() {
                "-".to_string()
            } else {
                r.format.clone()
            },
            r.split.name().to_string(),
            r.n.to_string(),
            num(100.0 * r.median_abs_rel_error, 3),
            num(100.0 * r.p90_abs_rel_error, 3),
            num(100.0 * r.median_rel_error, 3),
        ]);
    }
    t
}

pub(super) fn run(a: &KernelsArgs) -> Result<String> {
    let (rows, fits) = summaries(a)?;
    let gemms = if a.fit {
        "GEMMs, attention, collectives and MoE experts priced by curves fitted here on the \
         training half (GEMM 7 coefficients a class; per KV-cache precision, GQA prefill 7 (6 \
         without sliding-window rows), GQA decode 7 a kernel family, MLA prefill 5 and decode 6; \
         collectives 5 a kind; MoE 5 a format)"
    } else if a.scalar {
        "every kernel priced by the scalar efficiencies"
    } else {
        "kernels priced by the profiles' curves where they have them"
    };
    match a.common.format {
        Format::Json => {
            let fits: Vec<_> = fits
                .iter()
                .map(|(h, dir, f, k)| {
                    json!({"hardware": h, "tables": dir, "curves": f, "kernel_curves": k})
                })
                .collect();
            Ok(pretty(&json!({ "rows": rows, "fits": fits })))
        }
        Format::Csv => Ok(render(&rows).csv()),
        Format::Table => {
            let toml: String = fits
                .iter()
                .map(|(h, dir, f, k)| curves_toml(h, dir, f, k) + "\n")
                .collect();
            Ok(format!(
                "{toml}Kernel latencies predicted by the GPU cost model against NVIDIA's \
                 measurements ({}); {gemms}. Error = predicted / measured - 1. Shapes: held_out = \
                 every other row of each table (the half no fit uses), model = every shape of \
                 Llama 3.1 70B at tensor parallelism 4 (MoE: every row of DeepSeek-V3's layer; \
                 MLA attention: DeepSeek-V3's kernel in every row, no model block).\n\n{}",
                a.tables.display(),
                render(&rows).render()
            ))
        }
    }
}
