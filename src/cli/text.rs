//! Text shared by several commands: pretty JSON, the placement line, device nouns and counts,
//! optional numbers for tables.

use crate::placement::{Objective, Placement, WeightHome};
pub(super) use crate::report::count;
use crate::report::num;

/// Progress goes to stderr only when it is a terminal and not `quiet`.
fn progress_shown(quiet: bool) -> bool {
    use std::io::IsTerminal;
    !quiet && std::io::stderr().is_terminal()
}

/// A bar over `n` units of work, shown on stderr only when it is a terminal and not `quiet`.
pub(super) fn progress_bar(quiet: bool, n: usize, unit: &str) -> indicatif::ProgressBar {
    if !progress_shown(quiet) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(n as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit}, eta {{eta}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    }
}

/// A counter for work of unknown length (a fit runs until it converges), shown on stderr only
/// when it is a terminal and not `quiet`: elapsed time, a spinner, units done.
pub(super) fn progress_spinner(quiet: bool, unit: &str) -> indicatif::ProgressBar {
    if !progress_shown(quiet) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} {{spinner}} {{pos}} {unit} {{msg}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    }
}

/// A counter for a run of unknown length that appears on stderr (a terminal, not `quiet`) only
/// once the run has taken a second, so that short runs print nothing extra.
pub(super) struct LateProgress {
    bar: indicatif::ProgressBar,
    shown: bool,
    start: std::time::Instant,
    visible: std::cell::Cell<bool>,
}

impl LateProgress {
    pub(super) fn new(quiet: bool, unit: &str) -> LateProgress {
        let bar = indicatif::ProgressBar::hidden();
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} {{spinner}} {{human_pos}} {unit}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        LateProgress {
            bar,
            shown: progress_shown(quiet),
            start: std::time::Instant::now(),
            visible: std::cell::Cell::new(false),
        }
    }

    /// One more unit done.
    pub(super) fn inc(&self) {
        self.bar.inc(1);
        if self.shown && !self.visible.get() && self.start.elapsed().as_secs_f64() >= 1.0 {
            self.visible.set(true);
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.bar
                .enable_steady_tick(std::time::Duration::from_millis(200));
        }
    }

    /// Clear the counter.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A JSON document as indented text, its floats through [`crate::report::tidy`].
pub(super) fn pretty(v: &serde_json::Value) -> String {
    let mut v = v.clone();
    crate::report::tidy_json(&mut v);
    let mut s =
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

pub(super) fn placement_text(p: &Placement) -> String {
    let d = device_noun(p.device);
    let home = match p.weights_in {
        WeightHome::Hbm => "HBM",
        WeightHome::Sram => "SRAM",
        WeightHome::ExternalMemory => "external memory (streamed every iteration)",
    };
    let spill = if p.kv_spill_tokens_per_replica > 0 {
        format!(
            " (external memory could take {} more with --kv-spill)",
            p.kv_spill_tokens_per_replica
        )
    } else {
        String::new()
    };
    let adp = if p.attention_dp {
        " (attention data-parallel, experts spread)"
    } else {
        ""
    };
    let why = match p.objective {
        Some(Objective::PerUserSpeed) => {
            "; layout for per-user speed (--objective throughput: the most replicas)"
        }
        Some(Objective::Throughput) => {
            "; layout for throughput, the fewest devices per replica (--objective per-user-speed: the fastest single sequence)"
        }
        None => "",
    };
    format!(
        "tp={}{adp} pp={}, {} of {} on {}; weights in {home}, {:.2} GB/{d}; KV room {:.2} GB/{d} = {} tokens/replica{spill}{why}",
        p.tp,
        p.pp,
        count(u64::from(p.replicas), "replica"),
        devices_text(p.devices_per_replica, p.device),
        devices_text(p.devices_in_system, p.device),
        p.weight_bytes_per_device / 1e9,
        p.kv_capacity_bytes_per_device / 1e9,
        p.kv_capacity_tokens_per_replica
    )
}

/// `GPU` or `wafer`, for text.
pub(super) fn device_noun(device: &str) -> &'static str {
    if device == "wafer" {
        "wafer"
    } else {
        "GPU"
    }
}

/// `1 GPU`, `72 GPUs`, `4 wafers`.
pub(super) fn devices_text(n: u32, device: &str) -> String {
    count(u64::from(n), device_noun(device))
}

/// A table cell: the number scaled, or `-` when it is not available.
pub(super) fn opt(x: Option<f64>, scale: f64, sig: usize) -> String {
    x.map_or("-".into(), |v| num(v * scale, sig))
}
