//! Finding and loading profiles: shipped ones by name (embedded at build time) or any file by
//! path, with `--set path.to.field=value` overrides applied before typing and validation.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::hardware::HardwareProfile;
use super::model::ModelProfile;
use crate::error::{Error, Problem, Result};

mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped.rs"));
}

/// Names of the shipped hardware profiles.
pub fn hardware_names() -> Vec<&'static str> {
    shipped::HARDWARE.iter().map(|(n, _)| *n).collect()
}

/// Names of the shipped model profiles.
pub fn model_names() -> Vec<&'static str> {
    shipped::MODELS.iter().map(|(n, _)| *n).collect()
}

/// Which profile an override targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `hardware.<field path>`.
    Hardware,
    /// `model.<field path>`.
    Model,
}

/// One `--set target.path.to.field=value` override.
#[derive(Debug, Clone)]
pub struct Override {
    /// The text as given on the command line.
    pub spec: String,
    /// Which profile it changes.
    pub target: Target,
    /// Field path inside that profile.
    pub path: Vec<String>,
    /// The new value, parsed as a TOML literal (bare words become strings).
    pub value: toml::Value,
}

impl Override {
    /// Parse `hardware.gpu.hbm_bandwidth_bytes_per_s=4e12` and the like.
    pub fn parse(spec: &str) -> Result<Override> {
        let err = |message: &str| Error::Override {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        let (lhs, rhs) = spec.split_once('=').ok_or_else(|| {
            err("expected PATH=VALUE, e.g. hardware.gpu.hbm_bandwidth_bytes_per_s=4e12")
        })?;
        let mut parts: Vec<String> = lhs
            .trim()
            .split('.')
            .map(|s| s.trim().to_string())
            .collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("the path has an empty segment"));
        }
        let target = match parts[0].as_str() {
            "hardware" => Target::Hardware,
            "model" => Target::Model,
            other => {
                return Err(err(&format!(
                    "unknown profile \"{other}\"; a path starts with hardware. or model."
                )))
            }
        };
        parts.remove(0);
        if parts.is_empty() {
            return Err(err("the path names a profile but no field"));
        }
        let rhs = rhs.trim();
        let value = match format!("v = {rhs}").parse::<toml::Table>() {
            Ok(mut t) => t
                .remove("v")
                .unwrap_or(toml::Value::String(rhs.to_string())),
            Err(_) => toml::Value::String(rhs.to_string()),
        };
        Ok(Override {
            spec: spec.to_string(),
            target,
            path: parts,
            value,
        })
    }

    /// Whether this override is meant for `hw`: a `hardware.gpu.*` field only for GPU systems,
    /// a `hardware.wafer.*` field only for wafer clusters, anything else (model fields, power,
    /// price, top-level fields) for every machine.
    pub fn applies_to(&self, hw: &crate::profile::HardwareProfile) -> bool {
        match (self.target, self.path.first().map(String::as_str)) {
            (Target::Hardware, Some("gpu")) if self.path.len() > 1 => hw.gpu.is_some(),
            (Target::Hardware, Some("wafer")) if self.path.len() > 1 => hw.wafer.is_some(),
            _ => true,
        }
    }

    fn apply(&self, root: &mut toml::Table) -> Result<()> {
        let mut table = root;
        let (last, parents) = self.path.split_last().expect("parse() rejects empty paths");
        for (i, key) in parents.iter().enumerate() {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| Error::Override {
                spec: self.spec.clone(),
                message: format!("{} is a value, not a section", self.path[..=i].join(".")),
            })?;
        }
        if matches!(table.get(last), Some(toml::Value::Table(_))) {
            return Err(Error::Override {
                spec: self.spec.clone(),
                message: format!(
                    "{} is a section; name one of its fields",
                    self.path.join(".")
                ),
            });
        }
        table.insert(last.clone(), self.value.clone());
        Ok(())
    }
}

/// Whether a profile name is a file path (ends in `.toml` or has a path separator) rather than
/// a shipped name.
pub fn is_path(spec: &str) -> bool {
    spec.ends_with(".toml") || spec.contains('/') || spec.contains('\\')
}

/// Text of a profile with the label used in error messages.
fn source_text(
    kind: &'static str,
    spec: &str,
    shipped: &[(&str, &str)],
) -> Result<(String, String)> {
    let as_path = Path::new(spec);
    if is_path(spec) {
        let text = std::fs::read_to_string(as_path).map_err(|source| Error::Io {
            path: spec.to_string(),
            source,
        })?;
        return Ok((spec.to_string(), text));
    }
    match shipped.iter().find(|(n, _)| *n == spec) {
        Some((n, text)) => Ok((format!("{kind}/{n}.toml"), (*text).to_string())),
        None => Err(Error::UnknownProfile {
            kind,
            name: spec.to_string(),
            available: shipped
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn parse_typed<T: DeserializeOwned>(label: &str, text: &str, overrides: &[&Override]) -> Result<T> {
    if overrides.is_empty() {
        return toml::from_str(text).map_err(|e| Error::Parse {
            file: label.to_string(),
            message: e.to_string().trim_end().to_string(),
        });
    }
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Parse {
        file: label.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    for o in overrides {
        o.apply(&mut table)?;
    }
    let specs: Vec<&str> = overrides.iter().map(|o| o.spec.as_str()).collect();
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Error::Parse {
            file: format!("{label} with --set {}", specs.join(", ")),
            message: e.to_string().trim_end().to_string(),
        })
}

fn checked<T>(label: String, value: T, problems: Vec<Problem>) -> Result<T> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(Error::Invalid {
            file: label,
            problems,
        })
    }
}

fn for_target(overrides: &[Override], target: Target) -> Vec<&Override> {
    overrides.iter().filter(|o| o.target == target).collect()
}

/// Load a hardware profile by shipped name or file path, apply `hardware.*` overrides, validate.
pub fn load_hardware(spec: &str, overrides: &[Override]) -> Result<HardwareProfile> {
    let (label, text) = source_text("hardware", spec, shipped::HARDWARE)?;
    hardware_from_str(label, &text, overrides)
}

/// Parse a hardware profile from TOML text (`label` names it in errors), apply `hardware.*`
/// overrides, validate.
pub fn hardware_from_str(
    label: String,
    text: &str,
    overrides: &[Override],
) -> Result<HardwareProfile> {
    let hw: HardwareProfile = parse_typed(&label, text, &for_target(overrides, Target::Hardware))?;
    let problems = hw.validate();
    checked(label, hw, problems)
}

/// Load a model profile by shipped name or file path, apply `model.*` overrides, validate.
pub fn load_model(spec: &str, overrides: &[Override]) -> Result<ModelProfile> {
    let (label, text) = source_text("model", spec, shipped::MODELS)?;
    model_from_str(label, &text, overrides)
}

/// Parse a model profile from TOML text (`label` names it in errors), apply `model.*`
/// overrides, validate.
pub fn model_from_str(label: String, text: &str, overrides: &[Override]) -> Result<ModelProfile> {
    let m: ModelProfile = parse_typed(&label, text, &for_target(overrides, Target::Model))?;
    let problems = m.validate();
    checked(label, m, problems)
}

/// The TOML text of a shipped profile or file, as written.
pub fn profile_text(kind: &'static str, spec: &str) -> Result<(String, String)> {
    let shipped = if kind == "hardware" {
        shipped::HARDWARE
    } else {
        shipped::MODELS
    };
    source_text(kind, spec, shipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_loads_and_validates() {
        for name in hardware_names() {
            let hw = load_hardware(name, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(hw.name, name, "name field must equal the file stem");
        }
        for name in model_names() {
            let m = load_model(name, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(m.name, name, "name field must equal the file stem");
        }
    }

    /// The architecture fields reproduce the published parameter counts: a check on every field
    /// that feeds the cost model. 3% covers what the model ignores (biases, norms, MTP modules).
    #[test]
    fn shipped_architectures_match_published_parameter_counts() {
        let mut misses = Vec::new();
        for name in model_names() {
            let m = load_model(name, &[]).unwrap();
            let Some(p) = &m.published else { continue };
            let d = m.dims();
            let active = if p.active_counts_embedding == Some(false) {
                d.active_params - d.embedding_params
            } else {
                d.active_params
            };
            for (what, got, want) in [
                ("total", d.total_params, p.total_params),
                ("active", active, p.active_params),
            ] {
                let err = (got - want).abs() / want;
                if err > 0.03 {
                    misses.push(format!(
                        "{name} {what}: derived {got:.4e}, published {want:.4e} ({:.1}%)",
                        err * 100.0
                    ));
                }
            }
        }
        assert!(misses.is_empty(), "{}", misses.join("\n"));
    }

    #[test]
    fn override_values_parse_as_toml_literals() {
        let o = Override::parse("hardware.gpu.devices=8").unwrap();
        assert_eq!(o.target, Target::Hardware);
        assert_eq!(o.path, vec!["gpu", "devices"]);
        assert_eq!(o.value, toml::Value::Integer(8));
        let o = Override::parse("model.precision.weights=fp8").unwrap();
        assert_eq!(o.value, toml::Value::String("fp8".into()));
        assert!(Override::parse("gpu.devices=8").is_err());
        assert!(Override::parse("hardware.gpu.devices").is_err());
    }
}
