//! A scenario: everything one `simulate` run needs (machine, model, parallelism, serving
//! settings, workload), as typed values that come either from command-line flags or from a
//! TOML table (a sweep's `[base]` with its axis values applied). Both paths build the same
//! [`Scenario`] and run it the same way.

mod serve;
mod workload;

pub use serve::{ServeSpec, SERVE_FIELDS};
pub use workload::{ArrivalKind, LengthText, WorkloadSpec, DEFAULT_REQUESTS, WORKLOAD_FIELDS};

use crate::engine::{Loop, Observe, OnComplete, Outcome, RequestRecord};
use crate::error::Result;
use crate::metrics::Summary;
use crate::profile::Override;
use crate::system::{ServeSettings, System};
use crate::warning::Warnings;
use crate::workload::{Drawn, RequestSource, RequestSpec};

/// One simulate run, fully described.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Hardware profile: shipped name or TOML file.
    pub hardware: String,
    /// Model profile: shipped name or TOML file.
    pub model: String,
    /// Profile overrides (`hardware.*`, `model.*`).
    pub overrides: Vec<Override>,
    /// Parallelism and serving settings.
    pub serve: ServeSpec,
    /// The workload.
    pub workload: WorkloadSpec,
    /// Keep every iteration in the outcome's timeline (for `--trace-out`).
    pub record_timeline: bool,
    /// Keep every request's record in the outcome (for outputs that read them all: charts,
    /// traces, SLO verdicts); without them a run's memory does not grow with its requests.
    pub keep_records: bool,
}

/// What one scenario produced.
#[derive(Debug)]
pub struct Run {
    /// The placed system.
    pub system: System,
    /// Engine settings used.
    pub settings: ServeSettings,
    /// Open or closed loop.
    pub mode: Loop,
    /// Per-request records and raw samples.
    pub outcome: Outcome,
    /// Aggregates.
    pub summary: Summary,
    /// Every adjustment made to what was asked (lengths cut, context limited).
    pub warnings: Warnings,
}

impl Scenario {
    /// Place, draw the workload, serve it, aggregate.
    pub fn run(&self) -> Result<Run> {
        let system = self
            .serve
            .system(&self.hardware, &self.model, &self.overrides)?;
        self.run_on(system)
    }

    /// As [`Scenario::run`] on an already placed system, the workload drawn as the run reaches
    /// it.
    pub fn run_on(&self, system: System) -> Result<Run> {
        let (requests, mode, warnings) = self.drawn(&system)?;
        self.serve_on(system, &requests, mode, warnings, None)
    }

    /// As [`Scenario::run`], handing each request's index and record to `on_complete` as it
    /// completes (for records streamed to a file).
    pub fn run_streamed(&self, on_complete: &mut dyn FnMut(u32, &RequestRecord)) -> Result<Run> {
        let system = self
            .serve
            .system(&self.hardware, &self.model, &self.overrides)?;
        let (requests, mode, warnings) = self.drawn(&system)?;
        self.serve_on(system, &requests, mode, warnings, Some(on_complete))
    }

    /// The workload's requests as drawn for `system` (its context limit caps drawn lengths, and
    /// the warnings count every cut), and how they enter.
    pub fn requests(&self, system: &System) -> Result<(Vec<RequestSpec>, Loop, Warnings)> {
        let (workload, mode) = self.workload.build()?;
        let mut warnings = system.warnings();
        let (requests, drawn) = workload.generate(self.workload.seed, system.context_limit().0)?;
        warnings.extend(&drawn);
        Ok((requests, mode, warnings))
    }

    /// As [`Scenario::requests`], drawn on demand instead of held (the warnings from one pass
    /// of drawing).
    pub fn drawn(&self, system: &System) -> Result<(Drawn, Loop, Warnings)> {
        let (workload, mode) = self.workload.build()?;
        let mut warnings = system.warnings();
        let requests = workload.drawn(self.workload.seed, system.context_limit().0)?;
        warnings.extend(&requests.warnings());
        Ok((requests, mode, warnings))
    }

    /// Serve `requests` on `system` and aggregate; `warnings` are the adjustments made so far;
    /// `on_complete`, if any, sees each request's record as it completes.
    pub fn serve_on<R: RequestSource + ?Sized>(
        &self,
        system: System,
        requests: &R,
        mode: Loop,
        warnings: Warnings,
        on_complete: Option<OnComplete<'_>>,
    ) -> Result<Run> {
        let settings = self.serve.settings()?;
        let observe = Observe {
            timeline: self.record_timeline,
            records: self.keep_records,
            on_complete,
        };
        let (outcome, summary) = system.simulate_observed(requests, &settings, mode, observe)?;
        Ok(Run {
            system,
            settings,
            mode,
            outcome,
            summary,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_names_are_accepted(fields: &[&str], parse: impl Fn(toml::Table) -> bool) {
        for f in fields {
            let value = match *f {
                "arrival" => toml::Value::String("gamma".into()),
                "routing" => toml::Value::String("least_kv".into()),
                "priority" => toml::Value::String("prefill".into()),
                "preemption" => toml::Value::String("swap".into()),
                "disaggregate" => toml::Value::String("1p1d".into()),
                "objective" => toml::Value::String("throughput".into()),
                "prompt_tokens" | "output_tokens" | "trace" | "lengths_from" | "sample_lengths"
                | "draft" | "rate_schedule" | "session_turns" | "turn_input_tokens"
                | "session_file" => toml::Value::String("x".into()),
                "kv_spill" | "kv_offload" | "prefix_caching" | "chunked_prefill"
                | "attention_dp" => toml::Value::Boolean(true),
                "rate_per_s" | "burstiness" | "alpha" | "think_s" => toml::Value::Float(0.5),
                _ => toml::Value::Integer(1),
            };
            let mut t = toml::Table::new();
            t.insert((*f).to_string(), value);
            assert!(parse(t), "{f} is listed but not a field");
        }
    }

    #[test]
    fn listed_field_names_match_the_structs() {
        field_names_are_accepted(WORKLOAD_FIELDS, |t| {
            toml::Value::Table(t).try_into::<WorkloadSpec>().is_ok()
        });
        field_names_are_accepted(SERVE_FIELDS, |t| {
            toml::Value::Table(t).try_into::<ServeSpec>().is_ok()
        });
        let mut t = toml::Table::new();
        t.insert("rate".into(), toml::Value::Float(1.0));
        assert!(toml::Value::Table(t).try_into::<WorkloadSpec>().is_err());
    }

    #[test]
    fn workload_needs_exactly_one_load_kind() {
        let mut w = WorkloadSpec::default();
        assert!(w.build().is_err());
        w.rate_per_s = Some(1.0);
        assert_eq!(w.build().unwrap().1, Loop::Open);
        w.concurrency = Some(4);
        assert!(w.build().is_err());
        w.rate_per_s = None;
        assert_eq!(w.build().unwrap().1, Loop::Closed { concurrency: 4 });
    }
}
