//! Reading the kernel tables of `reference/kernels/` (written by `tools/kernels/extract.py`):
//! plain CSV with a header row, latencies in milliseconds. Every malformed header, row or value
//! is an error naming the file, the line and the field; nothing here panics on input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::cost::kernel::MoeShape;
use crate::error::{Error, Result};
use crate::profile::Precision;

/// One measured GEMM: `m` tokens through an `n x k` weight.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmRow {
    /// Format as published (`bfloat16`, `fp8`, `fp8_block`, `nvfp4`, `int4_wo`, ...).
    pub format: &'static str,
    /// Weight and activation precisions of that format.
    pub weights: Precision,
    /// Activation precision.
    pub activations: Precision,
    /// Rows (tokens).
    pub m: u64,
    /// Output features.
    pub n: u64,
    /// Input features.
    pub k: u64,
    /// Measured latency, s.
    pub latency_s: f64,
}

/// One measured attention kernel (prefill or decode) over a batch of equal sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    /// Precision of the attention math (bf16 for every decode row).
    pub activations: Precision,
    /// Precision of the KV cache.
    pub kv_cache: Precision,
    /// Sequences.
    pub batch: u64,
    /// Query heads.
    pub heads: u64,
    /// Key-value heads.
    pub kv_heads: u64,
    /// Elements per head.
    pub head_dim: u64,
    /// Sliding window, tokens (`None` for full attention, published as 0).
    pub window: Option<u64>,
    /// Prefill: prompt tokens per sequence. Decode: tokens already cached per sequence.
    pub tokens: u64,
    /// Measured latency, s.
    pub latency_s: f64,
}

/// One measured MLA attention kernel (DeepSeek-V3's; prefill or decode) over a batch of equal
/// sequences, full attention.
#[derive(Debug, Clone, PartialEq)]
pub struct MlaRow {
    /// Precision of the attention math.
    pub activations: Precision,
    /// Precision of the KV cache (the latent).
    pub kv_cache: Precision,
    /// Sequences.
    pub batch: u64,
    /// Query heads on the GPU.
    pub heads: u64,
    /// Prefill: prompt tokens per sequence. Decode: tokens already cached per sequence.
    pub tokens: u64,
    /// Measured latency, s.
    pub latency_s: f64,
}

/// One measured MoE layer's routed experts (TensorRT-LLM's fused MoE: tokens permuted to their
/// experts, the gated MLP's two grouped GEMMs, the results combined), tokens spread evenly.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeRow {
    /// Format as published (`bfloat16`, `fp8`, `fp8_block`, `nvfp4`).
    pub format: &'static str,
    /// The layer measured, as the cost model prices it.
    pub shape: MoeShape,
    /// Measured latency, s.
    pub latency_s: f64,
}

/// The MoE kernels checked: the gated, general-purpose path of each format (CUTLASS grouped
/// GEMMs; DeepGEMM for FP8 scaled per block). Left out: the low-latency NVFP4 path, non-gated
/// MLPs and the MXFP4 formats, and every row whose tokens are not spread evenly.
pub const MOE_SOURCES: [&str; 2] = ["moe_torch_flow_cutlass", "deepgemm"];

/// One measured collective.
#[derive(Debug, Clone, PartialEq)]
pub struct CommRow {
    /// `nccl-VERSION` or `trtllm-custom-VERSION`.
    pub library: String,
    /// `all_reduce`, `all_gather`, `reduce_scatter` or `alltoall`.
    pub op: String,
    /// GPUs taking part.
    pub gpus: u32,
    /// Message per GPU, bytes.
    pub bytes: f64,
    /// Measured latency, s.
    pub latency_s: f64,
}

/// The tables of one GPU and framework version.
#[derive(Debug, Clone, Default)]
pub struct KernelTables {
    /// The directory read.
    pub dir: PathBuf,
    /// `gemm.csv`.
    pub gemm: Vec<GemmRow>,
    /// `context_attention.csv` (prefill).
    pub prefill: Vec<AttentionRow>,
    /// `generation_attention.csv` (decode).
    pub decode: Vec<AttentionRow>,
    /// `comm.csv`.
    pub comm: Vec<CommRow>,
    /// `moe.csv`, the rows of [`MOE_SOURCES`] with evenly spread tokens.
    pub moe: Vec<MoeRow>,
    /// `context_mla.csv` (MLA prefill).
    pub mla_prefill: Vec<MlaRow>,
    /// `generation_mla.csv` (MLA decode).
    pub mla_decode: Vec<MlaRow>,
}

/// A CSV file's rows, each with its 1-based line number, and its header's columns.
struct Csv {
    file: String,
    columns: HashMap<String, usize>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Csv {
    fn parse(file: &str, text: &str) -> Result<Csv> {
        let err = |line, message: String| Error::Table {
            file: file.to_string(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let (_, header) = lines
            .next()
            .ok_or_else(|| err(1, "empty file: expected a header row".into()))?;
        let names: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
        let mut columns = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            if columns.insert(n.clone(), i).is_some() {
                return Err(err(1, format!("column \"{n}\" appears twice")));
            }
        }
        let mut rows = Vec::new();
        for (line, l) in lines {
            if l.trim().is_empty() {
                continue;
            }
            let cells: Vec<String> = l.split(',').map(|c| c.trim().to_string()).collect();
            if cells.len() != names.len() {
                return Err(err(
                    line,
                    format!(
                        "{} fields where the header has {}",
                        cells.len(),
                        names.len()
                    ),
                ));
            }
            rows.push((line, cells));
        }
        Ok(Csv {
            file: file.to_string(),
            columns,
            rows,
        })
    }

    fn read(path: &Path) -> Result<Csv> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Csv::parse(&path.display().to_string(), &text)
    }

    /// The index of column `name`, or an error naming the file's header.
    fn column(&self, name: &str) -> Result<usize> {
        self.columns.get(name).copied().ok_or_else(|| Error::Table {
            file: self.file.clone(),
            line: 1,
            message: format!("no column \"{name}\" in the header"),
        })
    }

    /// For each row, a reader of its fields by name.
    fn map<T>(&self, mut f: impl FnMut(&Row) -> Result<T>) -> Result<Vec<T>> {
        self.rows
            .iter()
            .map(|(line, cells)| {
                f(&Row {
                    csv: self,
                    line: *line,
                    cells,
                })
            })
            .collect()
    }
}

struct Row<'a> {
    csv: &'a Csv,
    line: usize,
    cells: &'a [String],
}

impl Row<'_> {
    fn err(&self, message: String) -> Error {
        Error::Table {
            file: self.csv.file.clone(),
            line: self.line,
            message,
        }
    }

    fn text(&self, name: &str) -> Result<&str> {
        let i = self.csv.column(name)?;
        Ok(&self.cells[i])
    }

    fn parse<T: FromStr>(&self, name: &str, what: &str) -> Result<T> {
        let v = self.text(name)?;
        v.parse()
            .map_err(|_| self.err(format!("field \"{name}\": expected {what}, found \"{v}\"")))
    }

    /// A positive integer.
    fn count(&self, name: &str) -> Result<u64> {
        let v: u64 = self.parse(name, "a positive integer")?;
        if v == 0 {
            return Err(self.err(format!(
                "field \"{name}\": expected a positive integer, found 0"
            )));
        }
        Ok(v)
    }

    /// `latency_ms`, positive and finite, in seconds.
    fn latency_s(&self) -> Result<f64> {
        let ms: f64 = self.parse("latency_ms", "a latency in milliseconds")?;
        if !(ms.is_finite() && ms > 0.0) {
            return Err(self.err(format!(
                "field \"latency_ms\": expected a positive latency, found {ms}"
            )));
        }
        Ok(ms * 1e-3)
    }

    fn window(&self) -> Result<Option<u64>> {
        let w: u64 = self.parse("window_tokens", "a token count (0: full attention)")?;
        Ok((w > 0).then_some(w))
    }

    fn precision(&self, name: &str) -> Result<Precision> {
        let v = self.text(name)?;
        match v {
            "bfloat16" | "bf16" => Ok(Precision::Bf16),
            "half" | "float16" | "fp16" => Ok(Precision::Fp16),
            "fp8" => Ok(Precision::Fp8),
            "int8" => Ok(Precision::Int8),
            _ => Err(self.err(format!(
                "field \"{name}\": unknown precision \"{v}\"; expected bfloat16, half, fp8 or int8"
            ))),
        }
    }
}

/// The published GEMM formats: name, weight and activation precisions.
pub const GEMM_FORMATS: [(&str, Precision, Precision); 8] = [
    ("bfloat16", Precision::Bf16, Precision::Bf16),
    ("float16", Precision::Fp16, Precision::Fp16),
    // FP8 scaled per tensor.
    ("fp8", Precision::Fp8, Precision::Fp8),
    // FP8 scaled per block (1x128 activations, 128x128 weights; DeepSeek-V3's recipe).
    ("fp8_block", Precision::Fp8, Precision::Fp8),
    ("nvfp4", Precision::Nvfp4, Precision::Nvfp4),
    // Weight-only quantisation: 4- or 8-bit integer weights, 16-bit activations.
    ("int4_wo", Precision::Int4, Precision::Bf16),
    ("int8_wo", Precision::Int8, Precision::Bf16),
    // SmoothQuant: 8-bit integer weights and activations.
    ("sq", Precision::Int8, Precision::Int8),
];

/// The GEMM rows of `gemm.csv` text.
pub fn parse_gemm(file: &str, text: &str) -> Result<Vec<GemmRow>> {
    Csv::parse(file, text)?.map(|r| {
        let dtype = r.text("dtype")?;
        let &(format, weights, activations) =
            GEMM_FORMATS.iter().find(|f| f.0 == dtype).ok_or_else(|| {
                r.err(format!(
                "field \"dtype\": unknown GEMM format \"{dtype}\"; expected bfloat16, float16, \
                 fp8, fp8_block, nvfp4, int4_wo, int8_wo or sq"
            ))
            })?;
        Ok(GemmRow {
            format,
            weights,
            activations,
            m: r.count("m")?,
            n: r.count("n")?,
            k: r.count("k")?,
            latency_s: r.latency_s()?,
        })
    })
}

fn attention(csv: &Csv, tokens: &str, decode: bool) -> Result<Vec<AttentionRow>> {
    csv.map(|r| {
        Ok(AttentionRow {
            activations: if decode {
                Precision::Bf16
            } else {
                r.precision("dtype")?
            },
            kv_cache: r.precision("kv_cache_dtype")?,
            batch: r.count("batch")?,
            heads: r.count("heads")?,
            kv_heads: r.count("kv_heads")?,
            head_dim: r.count("head_dim")?,
            window: r.window()?,
            tokens: r.count(tokens)?,
            latency_s: r.latency_s()?,
        })
    })
}

fn mla(csv: &Csv, tokens: &str) -> Result<Vec<MlaRow>> {
    csv.map(|r| {
        Ok(MlaRow {
            activations: r.precision("dtype")?,
            kv_cache: r.precision("kv_cache_dtype")?,
            batch: r.count("batch")?,
            heads: r.count("heads")?,
            tokens: r.count(tokens)?,
            latency_s: r.latency_s()?,
        })
    })
}

fn comm(csv: &Csv) -> Result<Vec<CommRow>> {
    csv.map(|r| {
        let elements: u64 = r.count("message_elements")?;
        let gpus: u32 = r.parse("gpus", "a GPU count")?;
        if gpus < 2 {
            return Err(r.err(format!("field \"gpus\": expected 2 or more, found {gpus}")));
        }
        Ok(CommRow {
            library: r.text("library")?.to_string(),
            op: r.text("op")?.to_string(),
            gpus,
            bytes: elements as f64 * r.precision("dtype")?.bytes(),
            latency_s: r.latency_s()?,
        })
    })
}

/// The checked rows of `moe.csv` (see [`MOE_SOURCES`]).
fn moe(csv: &Csv) -> Result<Vec<MoeRow>> {
    let rows = csv.map(|r| {
        let source = r.text("kernel_source")?;
        let balanced = r.text("distribution")? == "balanced";
        if !(balanced && MOE_SOURCES.contains(&source)) {
            return Ok(None);
        }
        let dtype = r.text("dtype")?;
        let Some(&(format, weights, activations)) = GEMM_FORMATS.iter().find(|f| f.0 == dtype)
        else {
            return Err(r.err(format!(
                "field \"dtype\": unknown MoE format \"{dtype}\"; expected bfloat16, fp8, fp8_block or nvfp4"
            )));
        };
        Ok(Some(MoeRow {
            format,
            shape: MoeShape {
                tokens: r.count("tokens")?,
                hidden: r.count("hidden")?,
                inter: r.count("inter")?,
                topk: r.count("topk")?,
                experts: r.count("experts")?,
                tp: r.count("tp")?,
                ep: r.count("ep")?,
                weights,
                activations,
                block_fp8: format == super::BLOCK_FP8,
            },
            latency_s: r.latency_s()?,
        }))
    })?;
    Ok(rows.into_iter().flatten().collect())
}

/// Read the tables in `dir` (`gemm.csv`, `context_attention.csv`, `generation_attention.csv`,
/// `comm.csv`, `moe.csv`, `context_mla.csv`, `generation_mla.csv`).
pub fn load(dir: &Path) -> Result<KernelTables> {
    let path = |f: &str| dir.join(f);
    let gemm_path = path("gemm.csv");
    let gemm_text = std::fs::read_to_string(&gemm_path).map_err(|source| Error::Io {
        path: gemm_path.display().to_string(),
        source,
    })?;
    Ok(KernelTables {
        dir: dir.to_path_buf(),
        gemm: parse_gemm(&gemm_path.display().to_string(), &gemm_text)?,
        prefill: attention(
            &Csv::read(&path("context_attention.csv"))?,
            "prompt_tokens",
            false,
        )?,
        // The extraction's kv_tokens (NVIDIA's isl + step) is taken as the tokens cached before
        // the step; whether it counts the step's own token too moves a row by one token.
        decode: attention(
            &Csv::read(&path("generation_attention.csv"))?,
            "kv_tokens",
            true,
        )?,
        comm: comm(&Csv::read(&path("comm.csv"))?)?,
        moe: moe(&Csv::read(&path("moe.csv"))?)?,
        mla_prefill: mla(&Csv::read(&path("context_mla.csv"))?, "prompt_tokens")?,
        // kv_tokens as in generation_attention.csv.
        mla_decode: mla(&Csv::read(&path("generation_mla.csv"))?, "kv_tokens")?,
    })
}

/// `index.csv` under `root`: (hardware profile, directory of its tables).
pub fn index(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    Csv::read(&root.join("index.csv"))?.map(|r| {
        Ok((
            r.text("hardware")?.to_string(),
            root.join(r.text("tables")?),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gemm_table_reads_into_seconds() {
        let rows = parse_gemm(
            "g.csv",
            "dtype,m,n,k,latency_ms\nbfloat16,1,4096,4096,0.02\nnvfp4,8,64,64,1e-3\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].weights, Precision::Nvfp4);
        assert!((rows[0].latency_s - 2e-5).abs() < 1e-18);
    }

    #[test]
    fn moe_rows_keep_the_checked_paths_and_name_bad_formats() {
        let head =
            "kernel_source,dtype,tokens,hidden,inter,topk,experts,tp,ep,distribution,latency_ms\n";
        let text = format!(
            "{head}deepgemm,fp8_block,8,4096,1024,2,8,1,1,balanced,0.1\n\
             moe_torch_flow_min_latency,nvfp4,8,4096,1024,2,8,1,1,balanced,0.1\n\
             moe_torch_flow_cutlass,bfloat16,8,4096,1024,2,8,1,1,power_law_1.01,0.1\n\
             moe_torch_flow_cutlass,nvfp4,16,4096,1024,2,8,2,4,balanced,0.2\n"
        );
        let rows = moe(&Csv::parse("m.csv", &text).unwrap()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].format, rows[1].shape.tp, rows[1].shape.ep),
            ("nvfp4", 2, 4)
        );
        approx::assert_relative_eq!(rows[1].latency_s, 2e-4);
        let bad = format!("{head}deepgemm,fp3,8,4096,1024,2,8,1,1,balanced,0.1\n");
        let e = moe(&Csv::parse("m.csv", &bad).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.csv:2:") && e.contains("fp3"), "{e}");
    }

    #[test]
    fn malformed_rows_name_file_line_and_field() {
        let bad = |text: &str| parse_gemm("g.csv", text).unwrap_err().to_string();
        let head = "dtype,m,n,k,latency_ms\nbfloat16,1,64,64,0.01\n";
        assert_eq!(
            bad(&format!("{head}bfloat16,x,64,64,0.01\n")),
            "g.csv:3: field \"m\": expected a positive integer, found \"x\""
        );
        assert_eq!(
            bad(&format!("{head}bfloat16,1,64,64,-2\n")),
            "g.csv:3: field \"latency_ms\": expected a positive latency, found -2"
        );
        assert_eq!(
            bad(&format!("{head}bfloat16,1,64\n")),
            "g.csv:3: 3 fields where the header has 5"
        );
        assert!(bad(&format!("{head}fp3,1,64,64,0.01\n"))
            .starts_with("g.csv:3: field \"dtype\": unknown GEMM format \"fp3\""));
        assert_eq!(
            bad("dtype,m,n,latency_ms\nbfloat16,1,64,0.01\n"),
            "g.csv:1: no column \"k\" in the header"
        );
        assert_eq!(bad(""), "g.csv:1: empty file: expected a header row");
    }
}
