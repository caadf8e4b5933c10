//! Text shared by several commands: pretty JSON, the placement line, device nouns and counts,
//! optional numbers for tables.

use crate::placement::{Objective, Placement, WeightHome};
use crate::report::num;

/// A bar over `n` units of work, shown on stderr only when it is a terminal and not `quiet`.
pub(super) fn progress_bar(quiet: bool, n: usize, unit: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
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

pub(super) fn pretty(v: &serde_json::Value) -> String {
    let mut s =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

pub(super) fn placement_text(p: &Placement) -> String {
    let d = p.device;
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
        "tp={}{adp} pp={}, {} replica(s) of {} {d}(s) on {} {d}(s); weights in {home}, {:.2} GB/{d}; KV room {:.2} GB/{d} = {} tokens/replica{spill}{why}",
        p.tp,
        p.pp,
        p.replicas,
        p.devices_per_replica,
        p.devices_in_system,
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
    let d = device_noun(device);
    if n == 1 {
        format!("1 {d}")
    } else {
        format!("{n} {d}s")
    }
}

/// A table cell: the number scaled, or `-` when it is not available.
pub(super) fn opt(x: Option<f64>, scale: f64, sig: usize) -> String {
    x.map_or("-".into(), |v| num(v * scale, sig))
}
