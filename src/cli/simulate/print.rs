//! `infersim simulate`'s outputs: the key-value head and latency table, the one-row CSV and the
//! JSON document of a run, with the text of its serving policy, energy and cost.

use clap::ValueEnum;
use serde_json::json;

use super::{Report, SimulateArgs};
use crate::cli::text::{count, device_noun, devices_text, placement_text, pretty};
use crate::energy::EnergyCost;
use crate::metrics::{ClientModel, Dist, Summary};
use crate::report::{key_values, num, tidy, Table};
use crate::study::slo::{Slo, SloReport};
use crate::system::ServeSettings;

pub(super) fn json(a: &SimulateArgs, r: &Report) -> String {
    let (sys, settings, mode, s) = (&r.run.system, r.run.settings, &r.run.mode, &r.run.summary);
    let (slo, slo_report, max_rate, energy) = (r.slo, r.slo_report, r.max_rate, r.energy);
    let v = json!({
        "hardware": sys.hardware.name, "model": sys.model.name,
        "placement": sys.placement, "settings": settings, "seed": a.seed,
        "max_context_tokens": sys.context_limit().0, "warnings": r.run.warnings,
        "loop": mode,
        "requests": s.requests, "duration_s": s.duration_s,
        "output_tokens": s.output_tokens,
        "throughput_output_tokens_per_s": s.throughput_output_tokens_per_s,
        "throughput_input_tokens_per_s": s.throughput_input_tokens_per_s,
        "throughput_requests_per_s": s.throughput_requests_per_s,
        "ttft_s": dist_json(&s.ttft_s), "tpot_s": dist_json(&s.tpot_s),
        "itl_s": dist_json(&s.itl_s), "e2e_s": dist_json(&s.e2e_s),
        "tokens_per_s_per_user": dist_json(&s.tokens_per_s_per_user),
        "utilisation": s.utilisation, "mean_batch_sequences": s.mean_batch_sequences,
        "mean_batch_tokens": s.mean_batch_tokens, "kv_peak_fraction": s.kv_peak_fraction,
        "preemptions": s.preemptions, "steps": s.steps, "saturation": s.saturation,
        "prefix_cache_hit_fraction": s.prefix_cache_hit_fraction,
        "swapped_tokens": s.swapped_tokens, "kv_transfers": s.kv_transfers,
        "kv_transfer_mean_s": s.kv_transfer_mean_s, "kv_tiers": s.kv_tiers,
        "slo": slo, "slo_report": slo_report, "max_rate_per_s": max_rate,
        "energy_j_per_output_token": energy.j_per_output_token(),
        "cost_usd_per_million_output_tokens": energy.usd_per_million_output_tokens(),
        "energy": energy,
    });
    let mut v = v;
    if let (Some(c), Some(o)) = (&r.client, v.as_object_mut()) {
        o.insert(
            "client".into(),
            json!({
                "frontend": c.model,
                "ttft_s": dist_json(&c.ttft_s), "itl_s": dist_json(&c.itl_s),
                "e2e_s": dist_json(&c.e2e_s),
            }),
        );
    }
    pretty(&v)
}

pub(super) fn csv(r: &Report) -> String {
    let (sys, s) = (&r.run.system, &r.run.summary);
    let (slo_report, max_rate, energy) = (r.slo_report, r.max_rate, r.energy);
    let mut headers = vec![
        "hardware".to_string(),
        "model".into(),
        "requests".into(),
        "duration_s".into(),
        "throughput_output_tokens_per_s".into(),
        "throughput_input_tokens_per_s".into(),
        "utilisation".into(),
        "saturated".into(),
        "prefix_cache_hit_fraction".into(),
        "goodput_requests_per_s".into(),
        "max_rate_per_s".into(),
        "devices".into(),
        "mean_power_w".into(),
        "energy_j_per_output_token".into(),
        "cost_usd_per_million_output_tokens".into(),
    ];
    let mut row = vec![
        sys.hardware.name.clone(),
        sys.model.name.clone(),
        s.requests.to_string(),
        tidy(s.duration_s).to_string(),
        tidy(s.throughput_output_tokens_per_s).to_string(),
        tidy(s.throughput_input_tokens_per_s).to_string(),
        tidy(s.utilisation).to_string(),
        s.saturation.saturated.to_string(),
        tidy(s.prefix_cache_hit_fraction).to_string(),
        slo_report.map_or(String::new(), |r| {
            tidy(r.goodput_requests_per_s).to_string()
        }),
        max_rate.map_or(String::new(), |r| tidy(r).to_string()),
        energy.usage.devices.to_string(),
        opt_cell(energy.mean_power_w()),
        opt_cell(energy.j_per_output_token()),
        opt_cell(energy.usd_per_million_output_tokens()),
    ];
    let mut dists = vec![
        ("ttft_s", s.ttft_s),
        ("tpot_s", s.tpot_s),
        ("itl_s", s.itl_s),
        ("e2e_s", s.e2e_s),
        ("tokens_per_s_per_user", s.tokens_per_s_per_user),
    ];
    if let Some(c) = &r.client {
        dists.extend([
            ("client_ttft_s", c.ttft_s),
            ("client_itl_s", c.itl_s),
            ("client_e2e_s", c.e2e_s),
        ]);
    }
    for (name, d) in dists {
        for (stat, v) in [
            ("mean", d.mean),
            ("p50", d.p50),
            ("p90", d.p90),
            ("p99", d.p99),
        ] {
            headers.push(format!("{name}_{stat}"));
            row.push(tidy(v).to_string());
        }
    }
    let mut t = Table::new(headers);
    t.row(row);
    t.csv()
}

pub(super) fn table(r: &Report) -> String {
    let mut lines = head_lines(r);
    if let (Some(slo), Some(rep)) = (&r.slo, &r.slo_report) {
        lines.extend(slo_lines(slo, rep, r.max_rate));
    }
    let head = key_values(&lines);
    let mut t = Table::new(["metric", "unit", "mean", "p50", "p90", "p99"]);
    let mut rows = summary_rows(&r.run.summary);
    if let Some(c) = &r.client {
        rows.extend([
            ("client ttft", "ms", c.ttft_s, 1e3),
            ("client itl", "ms", c.itl_s, 1e3),
            ("client e2e", "s", c.e2e_s, 1.0),
        ]);
    }
    for (name, unit, d, scale) in rows {
        t.row([
            name.to_string(),
            unit.to_string(),
            num(d.mean * scale, 4),
            num(d.p50 * scale, 4),
            num(d.p90 * scale, 4),
            num(d.p99 * scale, 4),
        ]);
    }
    format!("{head}\n{}", t.render())
}

/// The head of the table output, from the machine to the cost.
fn head_lines(r: &Report) -> Vec<(&'static str, String)> {
    let (sys, settings, s) = (&r.run.system, r.run.settings, &r.run.summary);
    let sat = match (s.saturation.saturated, s.saturation.overloaded_from_s, s.saturation.overloaded_to_s) {
        (true, Some(from), Some(to)) => format!(
            "YES: the queue grew from {} s to {} s of the run ({} requests still waiting at the last arrival; late TTFT {}x early)",
            num(from, 4),
            num(to, 4),
            s.saturation.backlog_at_last_arrival,
            num(s.saturation.ttft_growth, 3)
        ),
        (true, _, _) => format!(
            "YES: arrivals outpace service ({} requests still waiting at the last arrival; late TTFT {}x early)",
            s.saturation.backlog_at_last_arrival,
            num(s.saturation.ttft_growth, 3)
        ),
        (false, _, _) => "no".into(),
    };
    vec![
        ("hardware", sys.hardware.name.clone()),
        ("model", sys.model.name.clone()),
        ("placement", placement_text(&sys.placement)),
        ("context", context_text(sys)),
        (
            "requests",
            format!("{} over {} s simulated", s.requests, num(s.duration_s, 4)),
        ),
        (
            "throughput",
            format!(
                "{} output tokens/s, {} input tokens/s, {} requests/s",
                num(s.throughput_output_tokens_per_s, 4),
                num(s.throughput_input_tokens_per_s, 4),
                num(s.throughput_requests_per_s, 4)
            ),
        ),
        (
            "utilisation",
            format!(
                "{}% busy; mean batch {} sequences / {} tokens; KV peak {}%; {}",
                num(100.0 * s.utilisation, 3),
                num(s.mean_batch_sequences, 3),
                num(s.mean_batch_tokens, 4),
                num(100.0 * s.kv_peak_fraction, 3),
                count(s.preemptions, "preemption")
            ),
        ),
        ("serving", policy_text(&settings)),
        (
            "kv cache",
            format!(
                "{}% of prompt tokens from the prefix cache; {} tokens swapped; {} transfers to decode replicas{}",
                num(100.0 * s.prefix_cache_hit_fraction, 3),
                s.swapped_tokens,
                s.kv_transfers,
                if s.kv_transfers > 0 {
                    format!(" (mean {} ms)", num(1e3 * s.kv_transfer_mean_s, 3))
                } else {
                    String::new()
                }
            ),
        ),
    ]
    .into_iter()
    .chain(s.kv_tiers.iter().map(|t| {
        let per_token =
            sys.model.kv_bytes_per_token() * sys.model.kv_share(sys.placement.max_context_tokens);
        let gb = |tokens: u64| num(tokens as f64 * per_token / 1e9, 4);
        (
            "kv offload",
            format!(
                "{} of {} tokens ({} GB), {} s waiting on loads; {} tokens ({} GB) moved down, {} for room",
                count(t.hits, "reload"),
                t.tokens_out,
                gb(t.tokens_out),
                num(t.load_s, 4),
                t.tokens_in,
                gb(t.tokens_in),
                count(t.evictions, "eviction")
            ),
        )
    }))
    .chain([
        ("saturated", sat),
        ("energy", energy_text(&r.energy)),
        ("cost", cost_text(&r.energy)),
    ])
    .chain(r.client.map(|c| ("client view", client_text(&c.model))))
    .chain(r.run.warnings.iter().map(|w| {
        (
            "warning",
            format!("{} ({} x {})", w.message, w.count, w.kind),
        )
    }))
    .collect()
}

/// What the client-side rows add to the server-side ones.
fn client_text(m: &ClientModel) -> String {
    let scale = &m.scale;
    let what_if = if scale.roundtrip != 1.0 || scale.token != 1.0 {
        format!(
            " (what-if: x{} per request, x{} per token)",
            num(scale.roundtrip, 3),
            num(scale.token, 3)
        )
    } else {
        String::new()
    };
    format!(
        "rows \"client ...\" are measured at the client, the others from arrival at the engine: + {} ms network round trip, + {} ms per request (connection and API), + {} ms per streamed token{what_if}",
        num(1e3 * m.network_rtt_s, 4),
        num(1e3 * m.roundtrip_overhead_s, 4),
        num(1e3 * m.token_overhead_s, 4)
    )
}

/// The most tokens one sequence may hold, and why.
fn context_text(sys: &crate::system::System) -> String {
    let (limit, by) = sys.context_limit();
    let window = sys.model.architecture.context_window_tokens;
    if sys.placement.context_capped {
        format!("{limit} tokens per sequence: the {window}-token window does not fit one sequence beside the weights")
    } else if limit < window {
        format!("{limit} tokens per sequence ({by}; the window is {window})")
    } else {
        format!("{limit} tokens per sequence ({by})")
    }
}

/// The SLO, the goodput against it and, under --find-max-rate, the rate found.
fn slo_lines(slo: &Slo, r: &SloReport, max_rate: Option<f64>) -> Vec<(&'static str, String)> {
    let limits = [
        slo.ttft_s
            .map(|v| format!("TTFT <= {} ms", num(1e3 * v, 4))),
        slo.tpot_s
            .map(|v| format!("TPOT <= {} ms", num(1e3 * v, 4))),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let pct = pct_text(slo.percentile);
    let mut lines = vec![
        ("slo", format!("{limits} at p{pct}")),
        (
            "goodput",
            format!(
                "{} requests/s meet every limit ({}% of requests); p{pct} TTFT {} ms, TPOT {} ms: {}",
                num(r.goodput_requests_per_s, 4),
                num(100.0 * r.met_fraction, 3),
                num(1e3 * r.ttft_at_percentile_s, 4),
                num(1e3 * r.tpot_at_percentile_s, 4),
                if r.met { "met" } else { "missed" }
            ),
        ),
    ];
    if let Some(rate) = max_rate {
        lines.push((
            "max rate",
            format!(
                "{} requests/s (Poisson) is the highest rate meeting the SLO; the run below is at that rate",
                num(rate, 4)
            ),
        ));
    }
    lines
}

fn dist_json(d: &Dist) -> serde_json::Value {
    json!({"mean": d.mean, "p50": d.p50, "p90": d.p90, "p99": d.p99})
}

fn summary_rows(s: &Summary) -> Vec<(&'static str, &'static str, Dist, f64)> {
    vec![
        ("ttft", "ms", s.ttft_s, 1e3),
        ("tpot", "ms", s.tpot_s, 1e3),
        ("itl", "ms", s.itl_s, 1e3),
        ("e2e", "s", s.e2e_s, 1.0),
        ("per-user speed", "tokens/s", s.tokens_per_s_per_user, 1.0),
    ]
}

fn policy_text(s: &ServeSettings) -> String {
    let mut t = format!(
        "routing {}, {} first, preemption by {}, prefix caching {}",
        value_name(s.routing),
        value_name(s.priority),
        value_name(s.preemption),
        if s.prefix_caching { "on" } else { "off" }
    );
    if !s.chunked_prefill {
        t.push_str(", whole prompts (no chunked prefill)");
    }
    if s.kv_offload {
        t.push_str(", KV offload on");
    }
    match s.disaggregate {
        Some(d) => t.push_str(&format!(", disaggregated {d}")),
        None => t.push_str(", colocated"),
    }
    t
}

/// A percentile for labels: `99`, `99.9`.
fn pct_text(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

/// A CSV cell: the number, or empty when it is not available.
fn opt_cell(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map_or(String::new(), |v| tidy(v).to_string())
}

/// The energy line of a run: J per output token and what it rests on, or why it is missing.
fn energy_text(e: &EnergyCost) -> String {
    let d = device_noun(e.device);
    match &e.energy {
        Some(x) => format!(
            "{} J per output token; mean {} kW over {} {}% busy ({} W busy, {} W idle per {d}, {} boundary)",
            num(x.energy_j_per_output_token, 4),
            num(x.mean_power_w / 1e3, 4),
            devices_text(e.usage.devices, e.device),
            num(100.0 * e.usage.utilisation, 3),
            num(x.busy_w_per_device, 4),
            num(x.idle_w_per_device, 4),
            x.boundary.name()
        ),
        None => "not available: the hardware profile has no [power] table".into(),
    }
}

/// The cost line of a run: dollars per million output tokens and the price, or why it is missing.
fn cost_text(e: &EnergyCost) -> String {
    let d = device_noun(e.device);
    match &e.cost {
        Some(c) => format!(
            "${} per million output tokens; {} x ${} per {d}-hour ({} basis)",
            num(c.cost_usd_per_million_output_tokens, 4),
            devices_text(e.usage.devices, e.device),
            num(c.usd_per_device_hour, 4),
            c.basis.name()
        ),
        None => "not available: the hardware profile has no [price] table".into(),
    }
}
