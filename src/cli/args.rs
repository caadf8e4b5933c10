//! Argument groups shared by several commands: `--format` and `--set` (every command but
//! `merge`), the system to serve (`step` and `simulate`), and the reference rows read by
//! `validate` and `calibrate`.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::placement::{Objective, ParallelRequest};
use crate::profile::{load_hardware, load_model, Override};
use crate::report::Format;
use crate::study::validate;
use crate::system::{Speculation, System};

#[derive(Debug, Args)]
pub(super) struct Common {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub(super) format: Format,
    /// Override a profile field, e.g. hardware.gpu.devices=8 or model.precision.weights=fp8
    /// (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE", global = true)]
    pub(super) set: Vec<String>,
}

impl Common {
    pub(super) fn overrides(&self) -> Result<Vec<Override>> {
        self.set.iter().map(|s| Override::parse(s)).collect()
    }
}

#[derive(Debug, Args)]
pub(super) struct SystemArgs {
    /// Hardware profile: a shipped name (e.g. h100-sxm) or a path to a TOML file.
    #[arg(long, value_name = "NAME|FILE")]
    pub(super) hardware: String,
    /// Model profile: a shipped name (e.g. llama-3.1-8b) or a path to a TOML file.
    #[arg(long, value_name = "NAME|FILE")]
    pub(super) model: String,
    /// Tensor-parallel degree per replica [default: the fewest GPUs that hold the model].
    #[arg(long)]
    pub(super) tp: Option<u32>,
    /// Pipeline-parallel stages per replica [default: the fewest GPUs that hold the model].
    #[arg(long)]
    pub(super) pp: Option<u32>,
    /// Replicas in the system [default: as many as fit].
    #[arg(long)]
    pub(super) replicas: Option<u32>,
    /// Most tokens (prompt plus output) one sequence may hold, as vLLM's --max-model-len
    /// [default: the model's context window, or the most that fits when the window does not].
    #[arg(long, value_name = "TOKENS")]
    pub(super) max_context: Option<u64>,
    /// What the layout maximises when --tp (GPUs) or --pp (wafers) is not given: per-user-speed
    /// (the fastest single sequence among the layouts that hold the model) or throughput (the
    /// fewest devices per replica, the most replicas) [default: per-user-speed on wafers,
    /// throughput on GPUs].
    #[arg(long, value_enum)]
    pub(super) objective: Option<Objective>,
    /// Attention data parallelism over the --tp GPUs, experts spread over them (wide expert
    /// parallelism; MoE models on GPUs): each GPU runs attention for its own sequences and keeps
    /// their KV cache, replacing the all-reduces with an all-to-all per MoE layer.
    #[arg(long)]
    pub(super) attention_dp: bool,
    /// Speculative decoding: draft model (shipped name or TOML file), run on the same devices.
    #[arg(long, value_name = "NAME|FILE", requires = "alpha")]
    pub(super) draft: Option<String>,
    /// Speculative decoding: draft tokens proposed per verification step.
    #[arg(long, default_value_t = 4, requires = "draft")]
    pub(super) gamma: u32,
    /// Speculative decoding: probability that the target accepts one draft token, in [0, 1].
    #[arg(long, requires = "draft", allow_negative_numbers = true)]
    pub(super) alpha: Option<f64>,
}

impl SystemArgs {
    pub(super) fn build(&self, overrides: &[Override]) -> Result<System> {
        let hw = load_hardware(&self.hardware, overrides)?;
        let model = load_model(&self.model, overrides)?;
        // `--set model.*` applies to the target only.
        let speculation = match (&self.draft, self.alpha) {
            (Some(d), Some(alpha)) => Some(Speculation::load(d, self.gamma, alpha)?),
            _ => None,
        };
        System::with_speculation(
            hw,
            model,
            speculation,
            ParallelRequest {
                tp: self.tp,
                pp: self.pp,
                replicas: self.replicas,
                attention_dp: self.attention_dp,
                max_context: self.max_context,
                objective: self.objective,
            },
        )
    }
}

/// The rows of `--reference FILE`, or the shipped reference/published.toml without it.
pub(super) fn reference_set(path: &Option<PathBuf>) -> Result<validate::ReferenceSet> {
    match path {
        None => validate::parse("reference/published.toml", validate::SHIPPED),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })?;
            validate::parse(&p.display().to_string(), &text)
        }
    }
}
