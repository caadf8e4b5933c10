//! The latency the client sees: client-side figures beside the server-side ones, and the
//! frontend what-if, checked against the formulas of `src/metrics/client.rs` worked by hand from
//! the profile's own `[frontend]` numbers.

use super::{infersim, json, ok};
use infersim::profile::load_hardware;

/// The Spark as `compare` sets it up, at one user per replica: the median TTFT at the client and
/// at the server, under `extra` flags.
fn spark_ttft(extra: &[&str]) -> (f64, f64) {
    let mut args = vec!["compare", "--users-per-replica", "1", "--format", "json"];
    args.extend_from_slice(extra);
    let v = json(&args);
    let row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "gpt-5.3-codex-spark")
        .expect("a Spark row")
        .clone();
    (
        row["client_ttft_s"].as_f64().expect("a client TTFT"),
        row["ttft_s"].as_f64().unwrap(),
    )
}

#[test]
fn spark_frontend_what_if_moves_client_ttft_as_the_formulas_say() {
    let f = load_hardware("wse-3", &[]).unwrap().frontend.unwrap();
    let (before, server) = spark_ttft(&[]);
    let (after, server_after) = spark_ttft(&["--frontend-scale", "roundtrip=0.2,token=0.7"]);
    // The what-if changes nothing on the server.
    assert_eq!(server, server_after);
    // client TTFT = rtt + P + server TTFT + t; the what-if scales P by 0.2 and t by 0.7.
    let p = if f.persistent_connection {
        0.0
    } else {
        f64::from(f.connection_round_trips) * f.network_rtt_s
    } + f.request_overhead_s;
    let base = f.network_rtt_s + p + server + f.token_overhead_s;
    let scaled = f.network_rtt_s + 0.2 * p + server + 0.7 * f.token_overhead_s;
    let predicted = scaled / base - 1.0;
    let change = after / before - 1.0;
    assert!(change < 0.0, "{change}");
    // Medians are sketched within 0.5% each (crate::sketch::RELATIVE_ERROR): 1% on the ratio.
    assert!(
        (change - predicted).abs() < 0.01 * (1.0 + predicted),
        "TTFT change {change}, the formulas give {predicted}"
    );
    assert!(((before - base) / base).abs() < 0.01, "{before} vs {base}");
}

#[test]
fn simulate_reports_both_views_in_every_format() {
    let f = load_hardware("wse-3", &[]).unwrap().frontend.unwrap();
    // One request alone: the means are exact.
    let args = [
        "simulate",
        "--hardware",
        "wse-3",
        "--model",
        "llama-3.1-8b",
        "--concurrency",
        "1",
        "--requests",
        "1",
        "--prompt-tokens",
        "1000",
        "--output-tokens",
        "100",
    ];
    let mut with_json = args.to_vec();
    with_json.extend(["--format", "json"]);
    let v = json(&with_json);
    let server = v["ttft_s"]["mean"].as_f64().unwrap();
    let client = v["client"]["ttft_s"]["mean"].as_f64().unwrap();
    let expected = f.network_rtt_s * (1.0 + f64::from(f.connection_round_trips))
        + f.request_overhead_s
        + server
        + f.token_overhead_s;
    approx::assert_relative_eq!(client, expected, max_relative = 1e-9);
    assert!(v["client"]["e2e_s"]["mean"].as_f64().unwrap() > v["e2e_s"]["mean"].as_f64().unwrap());

    let text = ok(&args);
    assert!(
        text.contains("client view") && text.contains("client ttft"),
        "{text}"
    );
    let mut with_csv = args.to_vec();
    with_csv.extend(["--format", "csv"]);
    let csv = ok(&with_csv);
    assert!(
        csv.lines().next().unwrap().contains("client_ttft_s_mean"),
        "{csv}"
    );

    // Per-request records gain the client columns, each row's TTFT the one above.
    let path = std::env::temp_dir().join(format!("infersim-client-{}.csv", std::process::id()));
    let mut with_records = args.to_vec();
    with_records.extend(["--requests-out", path.to_str().unwrap()]);
    ok(&with_records);
    let records = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let mut lines = records.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == "client_ttft_s")
        .expect("client columns");
    approx::assert_relative_eq!(
        row[at].parse::<f64>().unwrap(),
        expected,
        max_relative = 1e-9
    );

    // Persistent: no connection round trips, through --set.
    let mut persistent = with_json.clone();
    persistent.extend(["--set", "hardware.frontend.persistent_connection=true"]);
    let v = json(&persistent);
    let c = v["client"]["ttft_s"]["mean"].as_f64().unwrap();
    approx::assert_relative_eq!(
        c,
        expected - f64::from(f.connection_round_trips) * f.network_rtt_s,
        max_relative = 1e-9
    );

    // Without a [frontend], no client view.
    let v = json(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--concurrency",
        "1",
        "--requests",
        "1",
        "--format",
        "json",
    ]);
    assert!(v.get("client").is_none());
}

#[test]
fn bad_frontend_scales_are_rejected_with_exit_2() {
    for (hardware, scale, says) in [
        ("wse-3", "roundtrip=-1", "roundtrip"),
        ("wse-3", "latency=0.5", "unknown key"),
        ("wse-3", "roundtrip", "KEY=FACTOR"),
        ("h100-sxm", "roundtrip=0.2", "[frontend]"),
    ] {
        let out = infersim(&[
            "simulate",
            "--hardware",
            hardware,
            "--model",
            "llama-3.1-8b",
            "--concurrency",
            "1",
            "--requests",
            "1",
            "--frontend-scale",
            scale,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{scale}: {err}");
        assert!(
            err.contains("--frontend-scale") && err.contains(says),
            "{scale}: {err}"
        );
    }
}
