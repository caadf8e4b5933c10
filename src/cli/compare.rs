//! `infersim compare`: the flagship comparison (GPU rack vs wafer) and public models under one
//! closed-loop load. Prints a row per model and machine (per-user speed against the published
//! one, latencies, throughput, energy and cost), the Spark-over-full speed ratio, what the energy
//! and cost figures rest on, and the wafer reference rows (table, CSV of the rows, or JSON);
//! optionally a chart of the rows.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::Common;
use super::files::{check_output_path, write_file};
use super::text::{count, device_noun, devices_text, opt, pretty};
use crate::energy::EnergyCost;
use crate::error::Result;
use crate::limits::{check_count, MAX_REQUESTS, MAX_USERS};
use crate::metrics::FrontendScale;
use crate::report::plot;
use crate::report::{num, Format, Table};
use crate::study::compare::{self, CompareLoad, CompareRow, Curve};
use crate::study::validate::{ReferenceRow, RowResult};

#[derive(Debug, Args)]
pub(super) struct CompareArgs {
    /// Users per replica, each keeping one request in flight.
    #[arg(long, default_value_t = CompareLoad::default().users_per_replica)]
    users_per_replica: u32,
    /// Requests each user sends.
    #[arg(long, default_value_t = CompareLoad::default().requests_per_user)]
    requests_per_user: u32,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Draw every row as system throughput against per-user speed (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot_out: Option<PathBuf>,
    /// Also run every row at each --interactivity-users level and draw its interactivity curve:
    /// output tokens/s per GPU or wafer against per-user speed (SVG; the JSON output gains the
    /// curves).
    #[arg(long, value_name = "FILE.svg")]
    interactivity_out: Option<PathBuf>,
    /// Users per replica of the interactivity curves, comma-separated.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', default_values_t = compare::INTERACTIVITY_USERS)]
    interactivity_users: Vec<u32>,
    /// What-if on each hardware profile's [frontend] (the network and API stack in front of the
    /// deployment): factors on the per-roundtrip overhead and on the per-token overhead, e.g.
    /// roundtrip=0.2,token=0.7; moves only the client-side TTFT.
    #[arg(long, value_name = "roundtrip=F,token=F")]
    frontend_scale: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub(super) fn run(a: &CompareArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let load = CompareLoad {
        users_per_replica: a.users_per_replica,
        requests_per_user: a.requests_per_user,
        ..CompareLoad::default()
    };
    check_count(
        "--users-per-replica",
        load.users_per_replica.into(),
        MAX_USERS,
    )?;
    check_count(
        "--requests-per-user",
        load.requests_per_user.into(),
        MAX_REQUESTS,
    )?;
    check_count(
        "--users-per-replica x --requests-per-user",
        u64::from(load.users_per_replica) * u64::from(load.requests_per_user),
        MAX_REQUESTS,
    )?;
    if let Some(path) = &a.plot_out {
        check_output_path("--plot-out", path)?;
    }
    if let Some(path) = &a.interactivity_out {
        check_output_path("--interactivity-out", path)?;
        for &u in &a.interactivity_users {
            check_count("--interactivity-users", u.into(), MAX_USERS)?;
        }
    }
    let scale = a
        .frontend_scale
        .as_deref()
        .map(|t| FrontendScale::parse("--frontend-scale", t))
        .transpose()?;
    let rows = compare::run(&load, &overrides, a.seed, scale)?;
    if scale.is_some() && rows.iter().all(|r| r.client_ttft_s.is_none()) {
        return Err(crate::error::Error::arg(
            "--frontend-scale",
            "expected hardware profiles with a [frontend] table to scale; no row of the comparison has one",
        ));
    }
    if let Some(path) = &a.plot_out {
        let users = count(u64::from(load.users_per_replica), "user");
        write_file(
            path,
            &plot::compare_chart(&rows, &run_text(&load, a.seed, &users))?,
        )?;
    }
    let curves = match &a.interactivity_out {
        Some(path) => {
            let curves = compare::interactivity(&load, &overrides, a.seed, &a.interactivity_users)?;
            let users = a
                .interactivity_users
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let run = run_text(&load, a.seed, &format!("{users} users"));
            write_file(path, &plot::interactivity_chart(&curves, &run)?)?;
            Some(curves)
        }
        None => None,
    };
    let flagship = rows
        .iter()
        .find(|r| r.model == "gpt-5.3-codex")
        .and_then(|r| r.tokens_per_s_per_user);
    let spark = rows
        .iter()
        .find(|r| r.model == "gpt-5.3-codex-spark")
        .and_then(|r| r.tokens_per_s_per_user);
    let ratio = flagship.zip(spark).map(|(f, s)| s / f);
    let references = compare::wafer_references(&overrides)?;
    match a.common.format {
        Format::Json => Ok(json_output(
            a,
            &load,
            &rows,
            ratio,
            &references,
            curves.as_deref(),
        )),
        Format::Csv => Ok(csv_table(&rows).csv()),
        Format::Table => Ok(text_output(&load, &rows, ratio, &references)),
    }
}

fn json_output(
    a: &CompareArgs,
    load: &CompareLoad,
    rows: &[CompareRow],
    ratio: Option<f64>,
    references: &[(RowResult, ReferenceRow)],
    curves: Option<&[Curve]>,
) -> String {
    let mut v = json!({
        "load": load, "seed": a.seed,
        "rows": rows.iter().map(|r| json!({
            "hardware": r.hardware, "model": r.model, "status": r.status,
            "placement": r.placement,
            "tokens_per_s_per_user": r.tokens_per_s_per_user, "ttft_s": r.ttft_s,
            "client_ttft_s": r.client_ttft_s,
            "itl_p50_s": r.itl_p50_s, "itl_p99_s": r.itl_p99_s,
            "throughput_output_tokens_per_s": r.throughput_output_tokens_per_s,
            "published_tokens_per_s_per_user": r.published_tokens_per_s_per_user,
            "published_source": r.published_source,
            "energy_j_per_output_token": r.energy.and_then(|e| e.j_per_output_token()),
            "cost_usd_per_million_output_tokens": r.energy.and_then(|e| e.usd_per_million_output_tokens()),
            "energy": r.energy, "warnings": r.warnings,
        })).collect::<Vec<_>>(),
        "speed_ratio_spark_over_full": ratio,
        "published_speed_ratio": 15.0,
        "wafer_reference_rows": references.iter().map(|(r, _)| r).collect::<Vec<_>>(),
    });
    if let (Some(c), Some(o)) = (curves, v.as_object_mut()) {
        o.insert("interactivity".into(), json!(c));
    }
    pretty(&v)
}

/// What a compare chart shows: the closed-loop load at `users` per replica, and the seed.
fn run_text(load: &CompareLoad, seed: u64, users: &str) -> String {
    format!(
        "closed loop, {users} per replica x {} each; prompts lognormal(median {} tokens), outputs lognormal(median {} tokens), sigma {}; seed {seed}",
        count(u64::from(load.requests_per_user), "request"),
        load.prompt_median_tokens,
        load.output_median_tokens,
        load.sigma
    )
}

/// One row per model and machine: the CSV output, and the first table of the text.
fn rows_table(rows: &[CompareRow]) -> Table {
    let mut t = Table::new([
        "hardware",
        "model",
        "per_user_tok/s",
        "published_tok/s",
        "ttft_p50_ms",
        "itl_p50_ms",
        "itl_p99_ms",
        "throughput_tok/s",
        "J/token",
        "$/M_tokens",
        "placement",
        "status",
    ]);
    for r in rows {
        t.row([
            r.hardware.clone(),
            r.model.clone(),
            opt(r.tokens_per_s_per_user, 1.0, 4),
            opt(r.published_tokens_per_s_per_user, 1.0, 4),
            opt(r.ttft_s, 1e3, 4),
            opt(r.itl_p50_s, 1e3, 4),
            opt(r.itl_p99_s, 1e3, 4),
            opt(r.throughput_output_tokens_per_s, 1.0, 4),
            opt(r.energy.and_then(|e| e.j_per_output_token()), 1.0, 4),
            opt(
                r.energy.and_then(|e| e.usd_per_million_output_tokens()),
                1.0,
                4,
            ),
            r.placement.clone(),
            r.status.clone(),
        ]);
    }
    t
}

/// The CSV of the rows: the text table's columns and the client-side median TTFT.
fn csv_table(rows: &[CompareRow]) -> Table {
    let mut t = rows_table(rows);
    t.headers.push("client_ttft_p50_ms".into());
    for (cells, r) in t.rows.iter_mut().zip(rows) {
        cells.push(opt(r.client_ttft_s, 1e3, 4));
    }
    t
}

/// The client-side median TTFT of each row that has a [frontend], beside the server-side one.
fn client_text(rows: &[CompareRow]) -> String {
    let seen: Vec<_> = rows
        .iter()
        .filter_map(|r| Some((r, r.client_ttft_s?, r.ttft_s?)))
        .collect();
    if seen.is_empty() {
        return String::new();
    }
    let mut out = String::from("Time to first token seen by the client (median; the hardware profile's [frontend]: network round trip, connection and API time per request, time per streamed token), against the server-side one from arrival at the engine:\n");
    for (r, client, server) in seen {
        out.push_str(&format!(
            "  {} on {}: {} ms at the client, {} ms at the server ({}x)\n",
            r.model,
            r.hardware,
            num(1e3 * client, 4),
            num(1e3 * server, 4),
            num(client / server, 3)
        ));
    }
    out + "\n"
}

/// A line per row and kind of adjustment made to run it (none when nothing was adjusted).
fn warnings_text(rows: &[CompareRow]) -> String {
    rows.iter()
        .flat_map(|r| {
            r.warnings.iter().map(move |w| {
                format!(
                    "warning: {} on {}: {} ({} x {})\n",
                    r.model, r.hardware, w.message, w.count, w.kind
                )
            })
        })
        .collect()
}

/// The wafer reference rows, predicted against their published figures.
fn references_table(references: &[(RowResult, ReferenceRow)]) -> Table {
    let mut refs = Table::new([
        "model",
        "row",
        "predicted_tok/s",
        "published_tok/s",
        "error_%",
        "role",
        "source",
    ]);
    for (r, row) in references {
        refs.row([
            r.model.clone(),
            r.id.clone(),
            num(r.predicted, 4),
            num(r.published, 4),
            num(100.0 * r.rel_error, 3),
            if r.fitted { "fitted" } else { "prediction" }.to_string(),
            if r.status == "ok" {
                row.source.clone()
            } else {
                r.status.clone()
            },
        ]);
    }
    refs
}

fn text_output(
    load: &CompareLoad,
    rows: &[CompareRow],
    ratio: Option<f64>,
    references: &[(RowResult, ReferenceRow)],
) -> String {
    let ratio_text = match ratio {
        Some(x) => format!("Spark on the wafer is {}x faster per user than the full model on the rack (published: \"15x\")", num(x, 3)),
        None => "speed ratio Spark / full: not available until both rows are simulated (published: \"15x\")".into(),
    };
    format!(
        "Flagship comparison: closed loop, {} per replica x {} each; prompts lognormal(median {} tokens), outputs lognormal(median {} tokens), sigma {}.\nPer-user speed and latencies are medians over requests; published figures are per-user decode speeds.\n\n{}\n{ratio_text}\n\n{}{}\nSources of published figures:\n{}\nWafer reference rows: one sequence decoding after 1024 tokens on wse-3, 16-bit unless the model profile says otherwise; the fitted rows set the profile's two free parameters, the others are predictions.\n\n{}",
        count(u64::from(load.users_per_replica), "user"), count(u64::from(load.requests_per_user), "request"), load.prompt_median_tokens, load.output_median_tokens, load.sigma,
        rows_table(rows).render() + &warnings_text(rows),
        client_text(rows),
        energy_assumptions(rows),
        rows.iter().filter(|r| !r.published_source.is_empty()).map(|r| format!("  {} on {}: {}\n", r.model, r.hardware, r.published_source)).collect::<String>(),
        references_table(references).render()
    )
}

/// What the compare table's J/token and $/M_tokens rest on: per-device power and price of each
/// machine with their boundary and basis, the devices each row counts, and what is left out.
fn energy_assumptions(rows: &[CompareRow]) -> String {
    let mut out = String::from(
        "Energy and cost (J/token and $/M_tokens are per output token): mean power n x (u x busy + (1 - u) x idle) and n x price per device-hour, over the run, divided by its output tokens; n = devices counted, u = utilisation.\nPer device, from the hardware profiles (change with --set hardware.power.* and hardware.price.*):\n",
    );
    let mut machines: Vec<(&str, EnergyCost)> = Vec::new();
    for r in rows {
        if let Some(e) = r.energy {
            if !machines.iter().any(|(h, _)| *h == r.hardware) {
                machines.push((&r.hardware, e));
            }
        }
    }
    for (h, e) in &machines {
        out.push_str(&machine_text(h, e));
    }
    out.push_str("Devices counted (replicas x devices per replica) and utilisation:\n");
    for r in rows {
        if let Some(e) = r.energy {
            out.push_str(&format!(
                "  {} on {}: {} ({}), {}% busy\n",
                r.model,
                r.hardware,
                devices_text(e.usage.devices, e.device),
                r.placement,
                num(100.0 * e.usage.utilisation, 3)
            ));
        }
    }
    out.push_str(&mismatch_text(&machines));
    out.push_str("Left out: facility overhead (PUE), networking and storage outside each system; busy power is a rating, an upper bound on the draw.\n");
    out
}

/// One machine's power and price per device, with their boundary and basis.
fn machine_text(h: &str, e: &EnergyCost) -> String {
    let d = device_noun(e.device);
    let power = match &e.energy {
        Some(p) => format!(
            "{} W busy, {} W idle per {d} ({})",
            num(p.busy_w_per_device, 4),
            num(p.idle_w_per_device, 4),
            p.boundary.describe()
        ),
        None => "no [power] table: energy not available".into(),
    };
    let price = match &e.cost {
        Some(c) => format!(
            "${} per {d}-hour ({})",
            num(c.usd_per_device_hour, 4),
            c.basis.describe()
        ),
        None => "no [price] table: cost not available".into(),
    };
    format!("  {h}: {power};\n  {:w$}  {price}\n", "", w = h.len())
}

/// A note for each of price basis and power boundary that differs between the machines.
fn mismatch_text(machines: &[(&str, EnergyCost)]) -> String {
    let mut out = String::new();
    let differ = |names: Vec<(&str, &'static str)>| -> Option<String> {
        let first = names.first()?.1;
        names.iter().any(|(_, n)| *n != first).then(|| {
            names
                .iter()
                .map(|(h, n)| format!("{n} on {h}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let bases = machines
        .iter()
        .filter_map(|(h, e)| e.cost.map(|c| (*h, c.basis.name())))
        .collect();
    if let Some(list) = differ(bases) {
        out.push_str(&format!("Not like with like: the price bases differ ({list}); $/M_tokens across them sets a provider's list price against an owner's cost.\n"));
    }
    let boundaries = machines
        .iter()
        .filter_map(|(h, e)| e.energy.map(|p| (*h, p.boundary.name())))
        .collect();
    if let Some(list) = differ(boundaries) {
        out.push_str(&format!("Not like with like: the power boundaries differ ({list}); J/token across them counts different equipment.\n"));
    }
    out
}
