//! Sweep axes: each axis's values (listed, or a linear or log range), how axes combine into
//! points (product or zip), and each point's seed.

use serde::Deserialize;

use crate::error::{Error, Result};

/// How axes combine into points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Every combination; the first axis varies slowest.
    #[default]
    Product,
    /// The i-th value of every axis together; axes must have equal lengths.
    Zip,
}

/// Spacing of a range axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Equal steps.
    #[default]
    Linear,
    /// Equal ratios.
    Log,
}

/// One axis: a path and its values, listed or as a range.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisSpec {
    /// Dotted path: `hardware.*`, `model.*`, `workload.*` or `serve.*`.
    pub path: String,
    /// Listed values.
    pub values: Option<Vec<toml::Value>>,
    /// Range start (inclusive).
    pub from: Option<toml::Value>,
    /// Range end (inclusive).
    pub to: Option<toml::Value>,
    /// Range points (at least 2).
    pub steps: Option<u32>,
    /// Range spacing.
    #[serde(default)]
    pub scale: Scale,
}

/// One axis with its values expanded.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Dotted path.
    pub path: String,
    /// Values in order.
    pub values: Vec<toml::Value>,
}

/// One point of a sweep: its index in the full sweep and a value per axis.
#[derive(Debug, Clone)]
pub struct Point {
    /// Index in the full (unsharded) sweep.
    pub index: usize,
    /// One value per axis, in axis order.
    pub values: Vec<toml::Value>,
}

/// Text of a TOML value as it appears in outputs: numbers without quotes, strings bare.
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Short text of a value for tables and legends: large or tiny floats in exponent form.
pub fn value_short(v: &toml::Value) -> String {
    match v {
        toml::Value::Float(f) if *f != 0.0 && (f.abs() >= 1e5 || f.abs() < 1e-3) => {
            format!("{f:e}")
        }
        other => value_text(other),
    }
}

/// One axis's values from its spec (axis `i` of `file`, for messages).
pub(super) fn expand_axis(file: &str, i: usize, a: &AxisSpec) -> Result<Axis> {
    let field = |name: &str| format!("{file}: axis {} ({}) {name}", i + 1, a.path);
    let values = match (&a.values, &a.from, &a.to, a.steps) {
        (Some(v), None, None, None) => {
            if v.is_empty() {
                return Err(Error::arg(field("values"), "expected at least one value"));
            }
            v.clone()
        }
        (None, Some(from), Some(to), Some(steps)) => {
            let num = |name: &str, v: &toml::Value| -> Result<f64> {
                match v {
                    toml::Value::Integer(i) => Ok(*i as f64),
                    toml::Value::Float(f) if f.is_finite() => Ok(*f),
                    other => Err(Error::arg(
                        field(name),
                        format!("expected a finite number, found {other}"),
                    )),
                }
            };
            let (lo, hi) = (num("from", from)?, num("to", to)?);
            if !(2..=MAX_POINTS as u32).contains(&steps) {
                return Err(Error::arg(
                    field("steps"),
                    format!("expected 2 to {MAX_POINTS} points in a range, found {steps}"),
                ));
            }
            if a.scale == Scale::Log && !(lo > 0.0 && hi > 0.0) {
                return Err(Error::arg(
                    field("scale"),
                    format!("a log range needs from and to > 0, found {lo} and {hi}"),
                ));
            }
            let integers = from.is_integer() && to.is_integer();
            let mut out: Vec<toml::Value> = Vec::with_capacity(steps as usize);
            for k in 0..steps {
                let f = f64::from(k) / f64::from(steps - 1);
                let x = match a.scale {
                    Scale::Linear => lo + (hi - lo) * f,
                    Scale::Log => (lo.ln() + (hi.ln() - lo.ln()) * f).exp(),
                };
                let v = if integers {
                    toml::Value::Integer(x.round() as i64)
                } else {
                    // Ten significant digits: 16 rather than 15.999999999999998 from exp(ln).
                    toml::Value::Float(format!("{x:.9e}").parse().unwrap_or(x))
                };
                // Rounding a range to integers can repeat a value (always next to its twin, the range
                // being monotone); keep it once.
                if out.last() != Some(&v) {
                    out.push(v);
                }
            }
            out
        }
        _ => {
            return Err(Error::arg(
                field("values"),
                "give either values = [...] or from, to and steps (with an optional scale)",
            ))
        }
    };
    Ok(Axis {
        path: a.path.trim().to_string(),
        values,
    })
}

/// Most points a sweep may have (a guard against a typo such as `steps = 1e9`).
pub const MAX_POINTS: usize = 1_000_000;

/// Every point of `axes` combined by `combine`, in order (the first axis varies slowest); an
/// error if they make more than [`MAX_POINTS`] or zipped axes differ in length.
pub(super) fn points(file: &str, combine: Combine, axes: &[Axis]) -> Result<Vec<Point>> {
    let total = match combine {
        Combine::Product => axes
            .iter()
            .try_fold(1usize, |n, a| n.checked_mul(a.values.len())),
        Combine::Zip => Some(axes.first().map_or(1, |a| a.values.len())),
    };
    if total.is_none_or(|n| n > MAX_POINTS) {
        return Err(Error::arg(
            format!("{file}: axes"),
            format!("the axes make more than {MAX_POINTS} points; split the sweep"),
        ));
    }
    let points = match combine {
        Combine::Product => {
            let mut points = vec![Vec::new()];
            for a in axes {
                points = points
                    .into_iter()
                    .flat_map(|p: Vec<toml::Value>| {
                        a.values.iter().map(move |v| {
                            let mut q = p.clone();
                            q.push(v.clone());
                            q
                        })
                    })
                    .collect();
            }
            points
        }
        Combine::Zip => {
            let n = axes.first().map_or(1, |a| a.values.len());
            if let Some(a) = axes.iter().find(|a| a.values.len() != n) {
                return Err(Error::arg(
                    format!("{file}: combine = \"zip\""),
                    format!(
                        "axes must have equal lengths; {} has {} values, {} has {n}",
                        a.path,
                        a.values.len(),
                        axes[0].path
                    ),
                ));
            }
            (0..n)
                .map(|i| axes.iter().map(|a| a.values[i].clone()).collect())
                .collect()
        }
    };
    Ok(points
        .into_iter()
        .enumerate()
        .map(|(index, values)| Point { index, values })
        .collect())
}

/// Derive a point's seed from the base seed and its axis values (SplitMix64 over FNV-1a).
pub fn point_seed(base: u64, axes: &[Axis], values: &[toml::Value]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (a, v) in axes.iter().zip(values) {
        for b in a
            .path
            .bytes()
            .chain(std::iter::once(b'='))
            .chain(value_text(v).bytes())
            .chain(std::iter::once(0))
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut z = base ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
