//! `infersim infer`: infer the size of an undisclosed model from a published speed. Prints the
//! fields scaled, the error model of the simulator on that hardware, and the scaled model at the
//! published speed, bias-corrected and at the 10% and 90% ends of the error range (table, CSV
//! or JSON).

use clap::{Args, ValueEnum};
use serde_json::json;

use super::args::Common;
use super::text::{pretty, progress_spinner};
use crate::error::Result;
use crate::profile::{load_hardware, load_model, HardwareProfile, ModelProfile};
use crate::report::{num, Format, Table};
use crate::study::infer;
use crate::study::validate;

#[derive(Debug, Args)]
pub(super) struct InferArgs {
    /// Hardware profile the speed was published on.
    #[arg(long)]
    hardware: String,
    /// Template: a model profile with what is known (dense or MoE, attention, precision, context).
    #[arg(long, value_name = "NAME|FILE")]
    model: String,
    /// Published per-user speed, tokens/s.
    #[arg(long = "tokens-per-s", value_name = "TOK_PER_S")]
    tokens_per_s: f64,
    /// Whole-number fields of the template to scale together (rounded to the nearest whole
    /// number, at least 1), e.g. architecture.layers or moe.expert_intermediate_size [default:
    /// architecture.layers on a wafer, whose per-token time is set mostly by layer count;
    /// moe.expert_intermediate_size for MoE models on GPUs, architecture.intermediate_size for
    /// dense ones].
    #[arg(long = "scale", value_name = "FIELD")]
    scale: Vec<String>,
    /// How the speed was measured: one stream after --context tokens, or the `compare` load.
    #[arg(long, value_enum, default_value_t = InferCondition::SingleStream)]
    condition: InferCondition,
    /// Single stream: cached tokens when the speed is measured.
    #[arg(long, default_value_t = 1024)]
    context: u64,
    /// No progress counter (it is shown only when stderr is a terminal).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InferCondition {
    /// One sequence decoding alone.
    SingleStream,
    /// The closed-loop load of `infersim compare`.
    CompareLoad,
}

pub(super) fn run(a: &InferArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let hw = load_hardware(&a.hardware, &overrides)?;
    let template = load_model(&a.model, &overrides)?;
    let paths = scaled_fields(a, &hw, &template);
    let cond = match a.condition {
        InferCondition::SingleStream => infer::Condition::SingleStream { context: a.context },
        InferCondition::CompareLoad => infer::Condition::CompareLoad,
    };
    let bar = progress_spinner(a.quiet, "steps");
    bar.set_message(format!("(reference rows on {}, then model sizes)", hw.name));
    let errors = reference_errors(&hw, &|| bar.inc(1))?;
    let inf = infer::infer_with_progress(
        &hw,
        &template,
        &paths,
        cond,
        a.tokens_per_s,
        &errors,
        &|| bar.inc(1),
    );
    bar.finish_and_clear();
    let inf = inf?;
    match a.common.format {
        Format::Json => Ok(pretty(
            &json!({"scaled_fields": paths, "condition": cond, "reference_rows_used": errors.len(), "inference": inf}),
        )),
        Format::Csv => Ok(solutions_table(&inf).csv()),
        Format::Table => {
            let err = match inf.error_model {
                Some((m, sd)) => format!(
                    "error model: ln(predicted/published) ~ Normal({}, {}) from {} reference rows on {}",
                    num(m, 3), num(sd, 3), errors.len(), hw.name
                ),
                None => format!("no error range: fewer than 2 unfitted reference rows on {}", hw.name),
            };
            Ok(format!(
                "{} scaled along {} to {} tokens/s per user on {}:\n{err}\n\n{}{}",
                template.name,
                paths.join(", "),
                num(a.tokens_per_s, 4),
                hw.name,
                solutions_table(&inf).render(),
                inf.note
                    .as_ref()
                    .map_or(String::new(), |n| format!("\n{n}\n"))
            ))
        }
    }
}

/// The --scale fields without their `model.` prefix, or the default: the layer count on a wafer
/// (a token's time there is a per-layer sync plus each core's reads, nearly independent of
/// width: docs/calibration-and-inference.md), else the expert or FFN width, which sets the bytes
/// a GPU streams per token.
fn scaled_fields(a: &InferArgs, hw: &HardwareProfile, template: &ModelProfile) -> Vec<String> {
    if a.scale.is_empty() {
        vec![if hw.wafer.is_some() {
            "architecture.layers".to_string()
        } else if template.moe.is_some() {
            "moe.expert_intermediate_size".to_string()
        } else {
            "architecture.intermediate_size".to_string()
        }]
    } else {
        a.scale
            .iter()
            .map(|p| p.trim_start_matches("model.").to_string())
            .collect()
    }
}

/// The simulator's error on this hardware: ln(predicted / published) of the reference rows on
/// it that nothing was fitted to.
fn reference_errors(hw: &HardwareProfile, progress: &(dyn Fn() + Sync)) -> Result<Vec<f64>> {
    let fits = validate::Fits::shipped()?;
    let set = validate::ReferenceSet::shipped()?
        .filtered(|r| r.hardware == hw.name && !fits.fitted(&r.id));
    Ok(
        validate::run_with_progress(&set, &[], &validate::Ledger::default(), &fits, progress)
            .iter()
            .map(|r| (r.predicted / r.published).ln())
            .filter(|e| e.is_finite())
            .collect(),
    )
}

/// A row per case solved, and a placeholder row for the cases out of reach.
fn solutions_table(inf: &infer::Inference) -> Table {
    let mut t = Table::new([
        "case",
        "target_tok/s",
        "scale",
        "scaled_to",
        "total_params_b",
        "active_params_b",
        "weights_gb",
        "devices/replica",
    ]);
    let mut add = |name: &str, s: &infer::Solution| {
        t.row([
            name.to_string(),
            num(s.target_tokens_per_s, 4),
            num(s.scale, 4),
            s.fields
                .iter()
                .map(|(p, v)| format!("{}={v}", p.rsplit('.').next().unwrap_or(p)))
                .collect::<Vec<_>>()
                .join(" "),
            num(s.total_params / 1e9, 4),
            num(s.active_params / 1e9, 4),
            num(s.weight_bytes / 1e9, 4),
            s.devices_per_replica.to_string(),
        ]);
    };
    if let Some(l) = &inf.low {
        add("low (10%)", l);
    }
    if let Some(u) = &inf.uncorrected {
        add("as published", u);
    }
    if let Some(c) = &inf.central {
        add("bias-corrected", c);
    }
    if let Some(h) = &inf.high {
        add("high (90%)", h);
    }
    for (case, missing) in [
        ("as published", inf.uncorrected.is_none()),
        ("bias-corrected", inf.central.is_none()),
    ] {
        if missing {
            t.row([case, "out of reach", "-", "-", "-", "-", "-", "-"]);
        }
    }
    t
}
