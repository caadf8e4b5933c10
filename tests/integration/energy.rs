//! Energy and cost per output token on the command line: compare shows both machines with the
//! assumptions, simulate and sweep carry the fields, bad power figures are rejected, and a
//! profile without `[power]` / `[price]` reports them as not available.

use std::path::{Path, PathBuf};

use super::{infersim, json, ok};

fn dir(test: &str) -> PathBuf {
    super::scratch(&format!("energy-{test}"))
}

fn shipped(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The shipped H100 profile without its `[power]` and `[price]` tables (they end the file).
fn h100_without_power_and_price() -> String {
    let text = shipped("hardware/h100-sxm.toml");
    let bare = text.split("\n[power]").next().unwrap().to_string();
    assert!(!bare.contains("[price]") && !bare.contains("busy_w_per_device"));
    bare
}

fn write(d: &Path, name: &str, text: &str) -> String {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

const SMALL_RUN: &[&str] = &[
    "--model",
    "llama-3.2-1b",
    "--concurrency",
    "4",
    "--requests",
    "16",
    "--prompt-tokens",
    "128",
    "--output-tokens",
    "16",
];

fn simulate(hardware: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["simulate", "--hardware", hardware];
    args.extend_from_slice(SMALL_RUN);
    args.extend_from_slice(extra);
    infersim(&args)
}

#[test]
fn compare_prints_energy_and_cost_for_both_machines_with_the_assumptions() {
    let text = ok(&["compare", "--requests-per-user", "1"]);
    for needle in [
        "J/token",
        "$/M_tokens",
        "W busy",
        "W idle per GPU",
        "W idle per wafer",
        "per GPU-hour",
        "per wafer-hour",
        "system boundary",
        "rental",
        "ownership",
        "Devices counted",
        "gpt-5.3-codex on gb200-nvl72: 72 GPUs",
        "gpt-5.3-codex-spark on wse-3: 4 wafers",
        "the price bases differ",
        "PUE",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    // Every row of both machines has a positive J/token and $/M_tokens.
    let csv = ok(&["compare", "--requests-per-user", "1", "--format", "csv"]);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (j, usd, hw) = (col("J/token"), col("$/M_tokens"), col("hardware"));
    let mut machines = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        for c in [j, usd] {
            let v: f64 = cells[c]
                .parse()
                .unwrap_or_else(|_| panic!("{line}: {} is not a number", header[c]));
            assert!(v > 0.0 && v.is_finite(), "{line}");
        }
        machines.push(cells[hw].to_string());
    }
    for m in ["gb200-nvl72", "wse-3"] {
        assert!(machines.iter().any(|x| x == m), "no {m} row in {csv}");
    }
    let v = json(&["compare", "--requests-per-user", "1", "--format", "json"]);
    for r in v["rows"].as_array().unwrap() {
        assert!(
            r["energy_j_per_output_token"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        assert!(
            r["cost_usd_per_million_output_tokens"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        assert!(
            r["energy"]["usage"]["devices"].as_u64().unwrap() >= 1,
            "{r}"
        );
        assert_eq!(r["energy"]["energy"]["boundary"], "system", "{r}");
    }
}

#[test]
fn simulate_reports_energy_and_cost_and_set_changes_the_price() {
    let text = String::from_utf8(simulate("h100-sxm", &[]).stdout).unwrap();
    assert!(
        text.contains("J per output token") && text.contains("per million output tokens"),
        "{text}"
    );
    let mut args = vec!["simulate", "--hardware", "h100-sxm", "--format", "json"];
    args.extend_from_slice(SMALL_RUN);
    let base = json(&args);
    args.extend_from_slice(&["--set", "hardware.price.usd_per_device_hour=12.31"]);
    let dearer = json(&args);
    let cost = |v: &serde_json::Value| v["cost_usd_per_million_output_tokens"].as_f64().unwrap();
    let energy = |v: &serde_json::Value| v["energy_j_per_output_token"].as_f64().unwrap();
    assert!((cost(&dearer) / cost(&base) - 2.0).abs() < 1e-9);
    assert_eq!(energy(&dearer), energy(&base));
    assert_eq!(dearer["energy"]["cost"]["usd_per_device_hour"], 12.31);
    assert_eq!(base["output_tokens"], 16 * 16);
}

#[test]
fn a_profile_without_power_or_price_reports_them_not_available() {
    let d = dir("bare");
    let hw = write(&d, "bare-h100.toml", &h100_without_power_and_price());
    let out = simulate(&hw, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{text}"))
            .to_string()
    };
    assert!(
        line("energy").contains("not available") && line("energy").contains("[power]"),
        "{text}"
    );
    assert!(
        line("cost").contains("not available") && line("cost").contains("[price]"),
        "{text}"
    );
    let v =
        serde_json::from_slice::<serde_json::Value>(&simulate(&hw, &["--format", "json"]).stdout)
            .unwrap();
    assert!(v["energy_j_per_output_token"].is_null(), "{v}");
    assert!(v["cost_usd_per_million_output_tokens"].is_null(), "{v}");
    assert!(v["energy"]["energy"].is_null() && v["energy"]["cost"].is_null());
    // CSV: empty cells, never a number.
    let csv = String::from_utf8(simulate(&hw, &["--format", "csv"]).stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    for c in [
        "mean_power_w",
        "energy_j_per_output_token",
        "cost_usd_per_million_output_tokens",
    ] {
        let i = header.iter().position(|h| *h == c).unwrap();
        assert_eq!(row[i], "", "{c}");
    }
}

#[test]
fn sweep_rows_carry_energy_and_cost_columns() {
    let d = dir("sweep");
    write(&d, "bare-h100.toml", &h100_without_power_and_price());
    let spec = write(
        &d,
        "s.toml",
        r#"
[base]
hardware = "h100-sxm"
model = "llama-3.2-1b"
[base.workload]
requests = 16
prompt_tokens = 128
output_tokens = 16
[[axis]]
path = "workload.concurrency"
values = [1, 8]
"#,
    );
    let csv = ok(&["sweep", &spec, "--format", "csv", "--quiet"]);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |c: &str| {
        header
            .iter()
            .position(|h| *h == c)
            .unwrap_or_else(|| panic!("{c} missing from {header:?}"))
    };
    let j = col("energy_j_per_output_token");
    let usd = col("cost_usd_per_million_output_tokens");
    let (w, n) = (col("mean_power_w"), col("devices"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            [j, usd, w, n]
                .iter()
                .map(|&i| c[i].parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][3], 1.0);
    // Eight users share each iteration's power: less energy and cost per token than one.
    assert!(
        rows[1][0] < rows[0][0] && rows[1][1] < rows[0][1],
        "{rows:?}"
    );

    let jsonl = ok(&["sweep", &spec, "--format", "json", "--quiet"]);
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["energy_j_per_output_token"].as_f64().unwrap() > 0.0,
            "{v}"
        );
    }

    let bare = spec.replace("s.toml", "bare.toml");
    std::fs::write(
        &bare,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("\"h100-sxm\"", "\"bare-h100.toml\""),
    )
    .unwrap();
    let csv = ok(&["sweep", &bare, "--format", "csv", "--quiet"]);
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert!(row.contains(&"ok"), "{csv}");
    assert_eq!((row[j], row[usd], row[w]), ("", "", ""), "{csv}");
    let jsonl = ok(&["sweep", &bare, "--format", "json", "--quiet"]);
    let v: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(v["energy_j_per_output_token"].is_null(), "{v}");
}
