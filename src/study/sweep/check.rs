//! Checks run before a sweep's first point: what every point shares (the base's `sets` and
//! profiles, the files its workload reads, the base sections no axis touches) and each point's
//! scenario. An error here would fail every point, so it fails the sweep at once (exit code 2)
//! instead of filling the output with the same error.

use super::axis::Point;
use super::spec::Sweep;
use crate::error::{Error, Result};
use crate::lengths::LengthSet;
use crate::profile::{load_hardware, load_model, Override};
use crate::workload::read_trace;

impl Sweep {
    /// Check the base scenario and the scenario of each of `points` before any runs.
    pub fn check_before_run(&self, points: &[&Point]) -> Result<()> {
        let spec_wide = |e: Error| {
            Error::arg(
                format!("{} [base]", self.file),
                format!("every point would fail: {e}"),
            )
        };
        let base = &self.spec.base;
        let overrides = base
            .sets
            .iter()
            .map(|s| Override::parse(s))
            .collect::<Result<Vec<_>>>()
            .map_err(spec_wide)?;
        load_hardware(&self.profile_spec(&base.hardware), &overrides).map_err(spec_wide)?;
        load_model(&self.profile_spec(&base.model), &overrides).map_err(spec_wide)?;
        // Each point's scenario (its typed sections); every one failing is a spec-wide error.
        let mut first = None;
        let mut error = None;
        for p in points {
            match self.scenario(p) {
                Ok((s, _)) => {
                    first.get_or_insert(s);
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        let Some(scenario) = first else {
            return error.map_or(Ok(()), |e| Err(spec_wide(e)));
        };
        let swept = |section: &str| {
            self.axes
                .iter()
                .any(|a| a.path.split('.').next() == Some(section))
        };
        let swept_field = |path: &str| self.axes.iter().any(|a| a.path == path);
        let w = &scenario.workload;
        if !swept("workload") {
            w.build().map_err(spec_wide)?;
        } else {
            for (field, file) in [("trace", &w.trace), ("lengths_from", &w.lengths_from)] {
                if let (false, Some(f)) = (swept_field(&format!("workload.{field}")), file) {
                    read_trace(f).map_err(spec_wide)?;
                }
            }
            if let (false, Some(s)) = (swept_field("workload.sample_lengths"), &w.sample_lengths) {
                LengthSet::load(s).map_err(spec_wide)?;
            }
        }
        let serve = &scenario.serve;
        if !swept("serve") {
            serve.settings().map_err(spec_wide)?;
        }
        if let (false, Some(d)) = (swept_field("serve.draft"), &serve.draft) {
            load_model(d, &[]).map_err(spec_wide)?;
        }
        Ok(())
    }
}
