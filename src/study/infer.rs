//! The inverse problem: which model sizes are consistent with a published speed?
//!
//! A template profile (what is known of the model: dense or MoE, attention, precision, context) is
//! scaled along chosen fields (widths, or the layer count) by a factor `s`; the factor whose
//! predicted per-user speed equals the published one is found by bisection (speed falls as the
//! model grows). Whole-number fields are rounded, so speed is a step function of `s`: the answer
//! is the largest size at least as fast as the target, whose next step up is slower. The
//! simulator's own error on the hardware family, the spread of `ln(predicted / published)` over
//! the reference rows not fitted to (a normal fit, statrs), turns into a range: the true model is
//! the one whose prediction would be the published speed times that error.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::{Error, Result};
use crate::placement::ParallelRequest;
use crate::profile::{HardwareProfile, ModelProfile};
use crate::study::compare::CompareLoad;
use crate::system::System;

/// Under what conditions the published speed was measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// One sequence decoding after `context` cached tokens.
    SingleStream {
        /// Cached tokens.
        context: u64,
    },
    /// The `compare` load: a closed loop of users per replica (median per-user speed).
    CompareLoad,
}

/// The template scaled by `s` along `paths` (integer fields, rounded, at least 1).
pub fn scaled(template: &ModelProfile, paths: &[String], s: f64) -> Result<ModelProfile> {
    let mut v = toml::Value::try_from(template).map_err(|e| Error::arg("infer", e.to_string()))?;
    for p in paths {
        let mut cur = &mut v;
        for k in p.split('.') {
            cur = cur.get_mut(k).ok_or_else(|| {
                Error::arg(
                    "--scale",
                    format!("{p} is not a field of {}", template.name),
                )
            })?;
        }
        let x = cur
            .as_integer()
            .ok_or_else(|| Error::arg("--scale", format!("{p} is not a whole-number field")))?;
        *cur = toml::Value::Integer(((x as f64 * s).round() as i64).max(1));
    }
    let m: ModelProfile = v
        .try_into()
        .map_err(|e: toml::de::Error| Error::arg("infer", e.to_string()))?;
    let problems = m.validate();
    if !problems.is_empty() {
        return Err(Error::Invalid {
            file: format!("{} scaled by {s:.3}", template.name),
            problems,
        });
    }
    Ok(m)
}

/// The values of `paths` in `model` (whole-number fields, as [`scaled`] requires).
fn field_values(model: &ModelProfile, paths: &[String]) -> Result<Vec<(String, i64)>> {
    let v = toml::Value::try_from(model).map_err(|e| Error::arg("infer", e.to_string()))?;
    paths
        .iter()
        .map(|p| {
            p.split('.')
                .try_fold(&v, |cur, k| cur.get(k))
                .and_then(toml::Value::as_integer)
                .map(|x| (p.clone(), x))
                .ok_or_else(|| Error::arg("--scale", format!("{p} is not a whole-number field")))
        })
        .collect()
}

/// Predicted per-user speed of `model` on `hw`, or None if it does not fit.
pub fn speed(hw: &HardwareProfile, model: &ModelProfile, cond: Condition) -> Option<f64> {
    let sys = System::new(hw.clone(), model.clone(), ParallelRequest::default()).ok()?;
    match cond {
        Condition::SingleStream { context } => {
            let mut b = sys.batch();
            b.push_sequence(1, context, true, true);
            Some(1.0 / sys.step(&b).total_s())
        }
        Condition::CompareLoad => CompareLoad::default()
            .run(&sys, 0)
            .ok()
            .map(|(s, _)| s.tokens_per_s_per_user.p50),
    }
}

/// One solution: the scale factor and the model it describes.
#[derive(Debug, Clone, Serialize)]
pub struct Solution {
    /// Target per-user speed the model was solved for, tokens/s.
    pub target_tokens_per_s: f64,
    /// Scale factor on the template's scaled fields.
    pub scale: f64,
    /// The scaled fields' values at that factor (rounded), e.g. `("architecture.layers", 96)`.
    pub fields: Vec<(String, i64)>,
    /// Total parameters.
    pub total_params: f64,
    /// Parameters active per token.
    pub active_params: f64,
    /// Weight bytes at the profile's precision.
    pub weight_bytes: f64,
    /// Devices (GPUs or wafers) one replica needs.
    pub devices_per_replica: u32,
}

/// The answer: central estimate and a range from the simulator's error spread.
#[derive(Debug, Clone, Serialize)]
pub struct Inference {
    /// Published speed.
    pub published_tokens_per_s: f64,
    /// Solution taking the published speed at face value (absent when out of reach).
    pub uncorrected: Option<Solution>,
    /// Why a solution is out of reach, if one is.
    pub note: Option<String>,
    /// Estimate taking the simulator's mean error into account (absent when out of reach).
    pub central: Option<Solution>,
    /// 10th-90th percentile range (the slower-predicting end gives the larger model).
    pub low: Option<Solution>,
    /// See `low`.
    pub high: Option<Solution>,
    /// Mean and standard deviation of ln(predicted / published) used, if any.
    pub error_model: Option<(f64, f64)>,
}

fn solve(
    hw: &HardwareProfile,
    t: &ModelProfile,
    paths: &[String],
    cond: Condition,
    target: f64,
    progress: &dyn Fn(),
) -> Result<Solution> {
    let at = |s: f64| -> Result<Option<f64>> {
        progress();
        Ok(speed(hw, &scaled(t, paths, s)?, cond))
    };
    let (mut lo, mut hi) = (1.0 / 64.0, 64.0);
    match at(lo)? {
        Some(v) if v >= target => {}
        _ => {
            return Err(Error::arg(
                "infer",
                format!("even the template scaled by {lo} is slower than {target:.1} tokens/s (or does not fit)"),
            ))
        }
    }
    for _ in 0..60 {
        let mid = (lo * hi).sqrt();
        match at(mid)? {
            Some(v) if v >= target => lo = mid,
            _ => hi = mid,
        }
        if hi / lo < 1.0005 {
            break;
        }
    }
    let m = scaled(t, paths, lo)?;
    // A solution is bracketed: `lo` at least as fast as the target and `hi` slower, by no more
    // than one step of the scaled fields can explain (2%, or the square of the largest ratio of a
    // rounded field's values across the bracket, e.g. 45/44 layers). A bisection that ended where
    // the model stops fitting, or starts streaming its weights (a wafer's speed collapses by
    // orders of magnitude there), found a boundary instead.
    let reached = speed(hw, &m, cond).unwrap_or(0.0);
    let field_step = field_values(&m, paths)?
        .iter()
        .zip(field_values(&scaled(t, paths, hi)?, paths)?)
        .map(|((_, a), (_, b))| b as f64 / (*a).max(1) as f64)
        .fold(1.0, f64::max);
    match at(hi)? {
        Some(v) if v < target && reached / v <= field_step.powi(2).max(1.02) => {}
        _ => {
            return Err(Error::arg(
                "infer",
                format!(
                    "no model of this family runs at {target:.1} tokens/s here: the largest that fits (scale {lo:.3}, {:.3e} parameters) still runs at {reached:.1}",
                    m.dims().total_params
                ),
            ))
        }
    }
    let sys = System::new(hw.clone(), m.clone(), ParallelRequest::default())?;
    let d = m.dims();
    Ok(Solution {
        target_tokens_per_s: target,
        scale: lo,
        fields: field_values(&m, paths)?,
        total_params: d.total_params,
        active_params: d.active_params,
        weight_bytes: m.weight_bytes(),
        devices_per_replica: sys.placement.devices_per_replica,
    })
}

/// Solve for the template scale matching `published`, with a range from `errors`
/// (`ln(predicted / published)` of reference rows on this hardware family; two or more needed).
pub fn infer(
    hw: &HardwareProfile,
    template: &ModelProfile,
    paths: &[String],
    cond: Condition,
    published: f64,
    errors: &[f64],
) -> Result<Inference> {
    infer_with_progress(hw, template, paths, cond, published, errors, &|| {})
}

/// [`infer`], calling `progress` once per model size tried (about 20 per case solved).
pub fn infer_with_progress(
    hw: &HardwareProfile,
    template: &ModelProfile,
    paths: &[String],
    cond: Condition,
    published: f64,
    errors: &[f64],
    progress: &dyn Fn(),
) -> Result<Inference> {
    // Published per-user speeds run from about 1 to a few thousand tokens/s.
    if !(published.is_finite() && published > 0.0 && published <= 1e9) {
        return Err(Error::arg(
            "--tokens-per-s",
            format!("expected a speed > 0 and at most 1e9 tokens/s, found {published:e}"),
        ));
    }
    if let Condition::SingleStream { context } = cond {
        let window = template.architecture.context_window_tokens;
        if context >= window {
            return Err(Error::arg(
                "--context",
                format!(
                    "expected fewer than {window} tokens ({}'s context window), found {context}",
                    template.name
                ),
            ));
        }
    }
    // Check the fields up front: a bad --scale is bad input, not an unreachable speed.
    scaled(template, paths, 1.0)?;
    let error_model = if errors.len() >= 2 {
        let n = errors.len() as f64;
        let mean = errors.iter().sum::<f64>() / n;
        let sd = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        Some((mean, sd.max(1e-9)))
    } else {
        None
    };
    // The model predicts published * exp(e) for the true architecture.
    let target = |q: f64| match error_model {
        Some((m, s)) => published * Normal::new(m, s).map_or(m.exp(), |n| n.inverse_cdf(q).exp()),
        None => published,
    };
    let (uncorrected, note) = match solve(hw, template, paths, cond, published, progress) {
        Ok(s) => (Some(s), None),
        Err(e) => (
            None,
            Some(
                e.to_string()
                    .trim_start_matches("invalid infer: ")
                    .to_string(),
            ),
        ),
    };
    let central = match error_model {
        Some((m, _)) => solve(hw, template, paths, cond, published * m.exp(), progress).ok(),
        None => uncorrected.clone(),
    };
    let (low, high) = match error_model {
        Some(_) => (
            solve(hw, template, paths, cond, target(0.9), progress).ok(),
            solve(hw, template, paths, cond, target(0.1), progress).ok(),
        ),
        None => (None, None),
    };
    Ok(Inference {
        published_tokens_per_s: published,
        uncorrected,
        note,
        central,
        low,
        high,
        error_model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{load_hardware, load_model, Override};

    #[test]
    fn recovers_a_known_size_from_its_speed() {
        let o = vec![Override::parse("hardware.wafer.wafers=64").unwrap()];
        let hw = load_hardware("wse-3", &o).unwrap();
        let template = load_model("gpt-oss-120b", &[]).unwrap();
        let paths = vec!["moe.expert_intermediate_size".to_string()];
        let cond = Condition::SingleStream { context: 1024 };
        // "Truth": the template 1.5 times wider; its speed is the "published" figure.
        let truth = scaled(&template, &paths, 1.5).unwrap();
        let published = speed(&hw, &truth, cond).unwrap();
        let inf = infer(&hw, &template, &paths, cond, published, &[]).unwrap();
        approx::assert_relative_eq!(
            inf.uncorrected.as_ref().unwrap().active_params,
            truth.dims().active_params,
            max_relative = 2e-3
        );
        approx::assert_relative_eq!(
            inf.uncorrected.as_ref().unwrap().total_params,
            truth.dims().total_params,
            max_relative = 2e-3
        );
    }

    #[test]
    fn recovers_a_known_depth_to_the_layer() {
        let o = vec![Override::parse("hardware.wafer.wafers=64").unwrap()];
        let hw = load_hardware("wse-3", &o).unwrap();
        let template = load_model("gpt-oss-120b", &[]).unwrap();
        let paths = vec!["architecture.layers".to_string()];
        let cond = Condition::SingleStream { context: 1024 };
        // "Truth": 60 layers where the template has 36; rounding makes speed a step function of
        // the scale, and the answer must land on the step, not 2% away from it.
        let truth = scaled(&template, &paths, 60.0 / 36.0).unwrap();
        assert_eq!(truth.architecture.layers, 60);
        let published = speed(&hw, &truth, cond).unwrap();
        let inf = infer(&hw, &template, &paths, cond, published, &[]).unwrap();
        let s = inf.uncorrected.unwrap();
        assert_eq!(s.fields, vec![("architecture.layers".to_string(), 60)]);
        approx::assert_relative_eq!(
            s.total_params,
            truth.dims().total_params,
            max_relative = 1e-9
        );
    }

    #[test]
    fn error_spread_gives_a_range_around_the_estimate() {
        let hw = load_hardware("h100-sxm", &[]).unwrap();
        let template = load_model("llama-3.1-8b", &[]).unwrap();
        let paths = vec!["architecture.intermediate_size".to_string()];
        let cond = Condition::SingleStream { context: 1024 };
        let inf = infer(&hw, &template, &paths, cond, 150.0, &[-0.1, 0.1, 0.0, 0.05]).unwrap();
        let (lo, hi) = (inf.low.unwrap(), inf.high.unwrap());
        let c = inf.central.unwrap();
        assert!(lo.active_params < c.active_params && c.active_params < hi.active_params);
    }
}
