//! `infersim profiles`: list the shipped hardware and model profiles with their key figures,
//! show one profile as written with the figures derived from it, or check profiles and print a
//! line per profile checked (table, CSV or JSON).

use clap::{Args, Subcommand};
use serde_json::json;

use super::args::Common;
use super::text::{opt, pretty};
use crate::error::{Error, Result};
use crate::profile::catalog::{hardware_names, model_names, profile_text};
use crate::profile::{load_hardware, load_model, HardwareKind, Override};
use crate::report::{num, Format, Table};

#[derive(Debug, Args)]
pub(super) struct ProfilesArgs {
    #[command(subcommand)]
    action: ProfilesAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum ProfilesAction {
    /// List the shipped profiles with their key figures.
    List,
    /// Print one profile as written, with the figures derived from it.
    Show {
        /// A shipped name or a TOML file (hardware or model).
        name: String,
    },
    /// Validate profiles: the shipped ones, or the given files.
    Check {
        /// Files to check [default: every shipped profile].
        files: Vec<String>,
    },
}

pub(super) fn run(a: &ProfilesArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    match &a.action {
        ProfilesAction::List => list(a.common.format, &overrides),
        ProfilesAction::Show { name } => show(a.common.format, &overrides, name),
        ProfilesAction::Check { files } => check(a.common.format, &overrides, files),
    }
}

fn list(format: Format, overrides: &[Override]) -> Result<String> {
    let (hw, json_hw) = hardware_list(overrides)?;
    let (md, json_md) = model_list(overrides)?;
    Ok(match format {
        Format::Json => pretty(&json!({"hardware": json_hw, "models": json_md})),
        Format::Csv => format!("{}\n{}", hw.csv(), md.csv()),
        Format::Table => format!("{}\n{}", hw.render(), md.render()),
    })
}

/// The shipped hardware profiles: a table row and a JSON object each.
fn hardware_list(overrides: &[Override]) -> Result<(Table, Vec<serde_json::Value>)> {
    let mut hw = Table::new([
        "hardware",
        "kind",
        "devices",
        "memory_gb/device",
        "memory_tb/s/device",
        "peak_16bit_pflop/s/device",
        "busy_w/device",
        "usd/device-hour",
        "description",
    ]);
    let mut json_hw = Vec::new();
    for name in hardware_names() {
        let h = load_hardware(name, overrides)?;
        let (kind, devices, mem, bw, flops) = match h.kind() {
            Some(HardwareKind::Gpu(g)) => (
                "gpu (HBM)",
                g.devices,
                g.hbm_capacity_bytes,
                g.hbm_bandwidth_bytes_per_s,
                g.peak_flops_per_s.bf16,
            ),
            Some(HardwareKind::Wafer(w)) => (
                "wafer (SRAM)",
                w.wafers,
                w.sram_capacity_bytes,
                w.sram_bandwidth_bytes_per_s,
                w.peak_flops_per_s,
            ),
            None => continue,
        };
        hw.row([
            h.name.clone(),
            kind.to_string(),
            devices.to_string(),
            num(mem / 1e9, 4),
            num(bw / 1e12, 4),
            num(flops / 1e15, 4),
            opt(h.power.as_ref().map(|p| p.busy_w_per_device), 1.0, 4),
            opt(h.price.as_ref().map(|p| p.usd_per_device_hour), 1.0, 4),
            h.description.clone(),
        ]);
        json_hw.push(json!({"name": h.name, "description": h.description,
            "power": h.power, "price": h.price}));
    }
    Ok((hw, json_hw))
}

/// The shipped model profiles: a table row and a JSON object each.
fn model_list(overrides: &[Override]) -> Result<(Table, Vec<serde_json::Value>)> {
    let mut md = Table::new([
        "model",
        "kind",
        "params_total_b",
        "params_active_b",
        "weights_gb",
        "kv_kb/token",
        "context_tokens",
        "description",
    ]);
    let mut json_md = Vec::new();
    for name in model_names() {
        let m = load_model(name, overrides)?;
        let d = m.dims();
        md.row([
            m.name.clone(),
            format!(
                "{}{}",
                if m.moe.is_some() { "moe" } else { "dense" },
                if m.hypothesis { " (hypothesis)" } else { "" }
            ),
            num(d.total_params / 1e9, 4),
            num(d.active_params / 1e9, 4),
            num(m.weight_bytes() / 1e9, 4),
            num(m.kv_bytes_per_token() / 1e3, 4),
            m.architecture.context_window_tokens.to_string(),
            m.description.clone(),
        ]);
        json_md.push(json!({"name": m.name, "description": m.description, "hypothesis": m.hypothesis,
            "total_params": d.total_params, "active_params": d.active_params, "weight_bytes": m.weight_bytes()}));
    }
    Ok((md, json_md))
}

fn show(format: Format, overrides: &[Override], name: &str) -> Result<String> {
    let is_hw = hardware_names().contains(&name)
        || (!model_names().contains(&name) && is_hardware_file(name));
    if is_hw {
        let h = load_hardware(name, overrides)?;
        let (_, text) = profile_text("hardware", name)?;
        return Ok(match format {
            Format::Json => pretty(&json!(h)),
            _ => text,
        });
    }
    let m = load_model(name, overrides).map_err(|e| match e {
        Error::UnknownProfile { .. } => Error::UnknownProfile {
            kind: "hardware or model",
            name: name.to_string(),
            available: hardware_names()
                .into_iter()
                .chain(model_names())
                .collect::<Vec<_>>()
                .join(", "),
        },
        other => other,
    })?;
    let (_, text) = profile_text("model", name)?;
    let d = m.dims();
    Ok(match format {
        Format::Json => pretty(&json!({"profile": m, "derived": d, "weight_bytes": m.weight_bytes(), "kv_bytes_per_token": m.kv_bytes_per_token()})),
        _ => format!(
            "{text}\n# derived: {:.4e} parameters ({:.4e} active), weights {:.2} GB, KV cache {:.1} KB/token\n",
            d.total_params, d.active_params, m.weight_bytes() / 1e9, m.kv_bytes_per_token() / 1e3
        ),
    })
}

fn check(format: Format, overrides: &[Override], files: &[String]) -> Result<String> {
    let targets: Vec<(String, bool)> = if files.is_empty() {
        hardware_names()
            .into_iter()
            .map(|n| (n.to_string(), true))
            .chain(model_names().into_iter().map(|n| (n.to_string(), false)))
            .collect()
    } else {
        files
            .iter()
            .map(|f| (f.clone(), is_hardware_file(f)))
            .collect()
    };
    let mut t = Table::new(["profile", "kind", "result"]);
    let mut failures = Vec::new();
    for (name, hw) in targets {
        let r = if hw {
            load_hardware(&name, overrides).map(|_| ())
        } else {
            load_model(&name, overrides).map(|_| ())
        };
        let kind = if hw { "hardware" } else { "model" };
        match r {
            Ok(()) => t.row([name, kind.to_string(), "ok".into()]),
            Err(e) => {
                t.row([name, kind.to_string(), "INVALID".into()]);
                failures.push(e);
            }
        }
    }
    if let Some(first) = failures.into_iter().next() {
        // The first error carries file, field and expectation; exit 2.
        return Err(first);
    }
    Ok(match format {
        Format::Json => pretty(&json!({"ok": true, "checked": t.rows.len()})),
        Format::Csv => t.csv(),
        Format::Table => t.render(),
    })
}

/// A file is a hardware profile if it has a top-level machine section.
fn is_hardware_file(path: &str) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("gpu") || t.contains_key("wafer"))
}
