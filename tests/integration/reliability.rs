//! The contract under extreme input and failing outputs: sizes past their bounds are named
//! errors before anything is allocated, a failed write is exit code 1 and never a half-written
//! file, sweeps fail early on spec-wide errors, and merge refuses what is not one whole sweep.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{infersim, ok};

fn dir(test: &str) -> PathBuf {
    super::scratch(&format!("reliability-{test}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn file(d: &Path, name: &str, text: &str) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Run, expect `code` and every needle in stderr, no panic, no Rust struct dumped.
fn exits(args: &[&str], code: i32, needles: &[&str]) -> String {
    let out = infersim(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(
        !err.contains("Some(") && !err.contains(" {"),
        "{args:?} dumps a struct: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected {n:?} in {err}");
    }
    err
}

const SIM: &[&str] = &[
    "simulate",
    "--hardware",
    "h100-sxm",
    "--model",
    "llama-3.2-1b",
];

fn sim(extra: &[&str]) -> Vec<String> {
    SIM.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn huge_sizes_are_errors_before_allocating() {
    let huge = "4294967295";
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            sim(&["--rate", "5", "--requests", "1000000000000"]),
            "--requests",
        ),
        (
            sim(&["--concurrency", huge, "--requests", "10"]),
            "--concurrency",
        ),
        (sim(&["--rate", "5", "--replicas", huge]), "--replicas"),
        (sim(&["--rate", "5", "--tp", huge]), "--tp"),
        (
            sim(&["--rate", "5", "--disaggregate", "4000000000p1d"]),
            "--disaggregate",
        ),
        (
            sim(&["--rate", "5", "--set", "hardware.gpu.devices=4000000000"]),
            "gpu.devices",
        ),
        (sim(&["--rate", "5", "--max-batch", "0"]), "--max-batch"),
        (
            sim(&["--rate", "5", "--max-batched-tokens", "0"]),
            "--max-batched-tokens",
        ),
        (
            sim(&["--rate", "5", "--block-tokens", huge]),
            "--block-tokens",
        ),
        (
            sim(&[
                "--rate",
                "5",
                "--draft",
                "llama-3.2-1b",
                "--alpha",
                "0.5",
                "--gamma",
                huge,
            ]),
            "--gamma",
        ),
        (
            ["compare", "--users-per-replica", huge]
                .map(String::from)
                .to_vec(),
            "--users-per-replica",
        ),
        (
            [
                "compare",
                "--requests-per-user",
                "100000",
                "--users-per-replica",
                "100000",
            ]
            .map(String::from)
            .to_vec(),
            "--requests-per-user",
        ),
        (
            [
                "step",
                "--hardware",
                "h100-sxm",
                "--model",
                "llama-3.2-1b",
                "--batch",
                huge,
            ]
            .map(String::from)
            .to_vec(),
            "--batch",
        ),
        (
            ["step", "--hardware", "wse-3", "--model", "llama-3.2-1b"]
                .into_iter()
                .chain(["--set", "hardware.wafer.wafers=4000000000"])
                .map(String::from)
                .collect(),
            "wafer.wafers",
        ),
    ];
    for (args, needle) in &cases {
        exits(&refs(args), 2, &[needle]);
    }
    // A gamma near u32::MAX once wrapped to a negative or null speed.
    exits(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--draft",
            "llama-3.2-1b",
            "--alpha",
            "0.8",
            "--gamma",
            huge,
        ],
        2,
        &["--gamma", "at most 1024"],
    );
    // The largest gamma allowed gives a finite positive speed and counts its KV cache.
    let v = super::json(&[
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--draft",
        "llama-3.2-1b",
        "--alpha",
        "0.8",
        "--gamma",
        "1024",
        "--context",
        "130000",
        "--format",
        "json",
    ]);
    let speed = v["tokens_per_s_per_user"].as_f64().unwrap();
    assert!(speed.is_finite() && speed > 0.0, "{v}");
    exits(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--draft",
            "llama-3.2-1b",
            "--alpha",
            "0.8",
            "--gamma",
            "1024",
            "--context",
            "130100",
        ],
        2,
        &["--context", "exceed"],
    );
}

#[test]
fn the_promised_sizes_stay_possible() {
    // 10^5 devices (one replica each) serve a few requests at once.
    let out = ok(&refs(&sim(&[
        "--rate",
        "5",
        "--requests",
        "20",
        "--set",
        "hardware.gpu.devices=100000",
        "--format",
        "json",
    ])));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["placement"]["replicas"], 100000, "{}", v["placement"]);
}

#[test]
fn a_sweep_point_past_a_bound_is_its_row_error() {
    let d = dir("point-bound");
    let spec = file(
        &d,
        "s.toml",
        r#"
[base]
hardware = "h100-sxm"
model = "llama-3.2-1b"
[base.workload]
concurrency = 2
prompt_tokens = 64
output_tokens = 8
[[axis]]
path = "workload.requests"
values = [4, 1000000000000, 8]
"#,
    );
    let out = ok(&[
        "sweep",
        s(&spec),
        "--quiet",
        "--format",
        "csv",
        "--jobs",
        "2",
    ]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0].contains(",ok,") && rows[2].contains(",ok,"),
        "{out}"
    );
    assert!(rows[1].contains(",error,") && rows[1].contains("at most 100000000"));
    exits(&["sweep", s(&spec), "--jobs", "1000000000"], 2, &["--jobs"]);
}

/// A file opened for writing on the device that is always full.
fn dev_full() -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .ok()
}

#[test]
fn standard_output_errors_exit_1_but_a_closed_pipe_is_quiet() {
    let Some(full) = dev_full() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args(["profiles", "list"])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write standard output"), "{err}");
    // A reader that has gone away: no error, no panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args(["profiles", "list", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn output_files_fail_with_exit_1_and_are_never_half_written() {
    let d = dir("files");
    if dev_full().is_some() {
        for flag in ["--requests-out", "--trace-out", "--plot-out"] {
            let args = sim(&["--rate", "5", "--requests", "10", flag, "/dev/full"]);
            exits(&refs(&args), 1, &["cannot write /dev/full", "No space"]);
        }
        let shard = d.join("shard.csv");
        let spec = file(&d, "s.toml", SMALL_SPEC);
        ok(&[
            "sweep",
            s(&spec),
            "--quiet",
            "--shard",
            "0/1",
            "--out",
            s(&shard),
        ]);
        exits(
            &["merge", s(&shard), "--out", "/dev/full"],
            1,
            &["cannot write /dev/full"],
        );
    }
    // Paths are checked before the run: a missing folder is bad input, found at once.
    for flag in ["--requests-out", "--trace-out", "--plot-out"] {
        let missing = d.join("no-such-folder/x");
        let args = sim(&["--rate", "5", "--requests", "10", flag, s(&missing)]);
        exits(&refs(&args), 2, &[flag, "no folder"]);
    }
    // A successful write replaces the file whole and leaves no temporary file.
    let out = file(&d, "requests.csv", "old contents\n");
    ok(&refs(&sim(&[
        "--rate",
        "5",
        "--requests",
        "10",
        "--requests-out",
        s(&out),
    ])));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("request,") && text.lines().count() == 11,
        "{text}"
    );
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

/// Three quick points, one of which fails with a two-line error (an invalid profile).
const SMALL_SPEC: &str = r#"
[base]
hardware = "h100-sxm"
model = "llama-3.2-1b"
[base.workload]
concurrency = 2
requests = 4
prompt_tokens = 64
output_tokens = 8
[[axis]]
path = "hardware.gpu.hbm_bandwidth_bytes_per_s"
values = [3e12, 2e12, -1.0, 1e12]
"#;

#[test]
fn sweeps_fail_early_on_spec_wide_errors_and_when_every_point_fails() {
    let d = dir("spec-wide");
    let cases = [
        (
            SMALL_SPEC.replace(
                "[base.workload]",
                "sets = [\"hardware.gpu.hbm=1\"]\n[base.workload]",
            ),
            "hbm",
        ),
        (SMALL_SPEC.replace("llama-3.2-1b", "llama-0"), "llama-0"),
        (
            SMALL_SPEC.replace("concurrency = 2", "concurency = 2"),
            "concurency",
        ),
        (
            SMALL_SPEC.replace("concurrency = 2", "trace = \"missing.csv\""),
            "missing.csv",
        ),
        (
            SMALL_SPEC.replace("requests = 4", "requests = 1000000000000"),
            "--requests",
        ),
        (
            SMALL_SPEC.replace("[[axis]]", "[base.serve]\nmax_batch = 0\n[[axis]]"),
            "max_batch",
        ),
    ];
    for (text, needle) in &cases {
        let spec = file(&d, "s.toml", text);
        let out = d.join("rows.csv");
        exits(
            &["sweep", s(&spec), "--quiet", "--out", s(&out)],
            2,
            &["every point would fail", needle],
        );
        assert!(
            !out.exists(),
            "{needle}: nothing is written before the check"
        );
    }
    let spec = file(&d, "s.toml", SMALL_SPEC);
    exits(
        &["sweep", s(&spec), "--out", s(&d.join("none/rows.csv"))],
        2,
        &["--out", "no folder"],
    );
    exits(
        &["sweep", s(&spec), "--plot-out", s(&d)],
        2,
        &["--plot-out", "folder"],
    );
    // Every point failing: exit 1 with the table still printed.
    let all_fail = SMALL_SPEC.replace("llama-3.2-1b", "llama-3.1-405b");
    let spec = file(&d, "all.toml", &all_fail);
    let out = infersim(&["sweep", s(&spec), "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("every one of its 4 points failed"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 failed"));
}

#[test]
fn a_sweep_stops_at_its_first_write_error() {
    if dev_full().is_none() {
        return;
    }
    // Which points were skipped is checked in the library's sweep tests.
    let d = dir("sweep-write");
    let spec = file(&d, "s.toml", SMALL_SPEC);
    exits(
        &["sweep", s(&spec), "--quiet", "--out", "/dev/full"],
        1,
        &["cannot write /dev/full"],
    );
    assert!(
        std::fs::metadata("/dev/full").is_ok_and(|m| !m.is_file()),
        "still a device"
    );
}

/// Shards `0/n` and `1/n` of `spec` in `ext`, with extra arguments.
fn shards(d: &Path, spec: &Path, n: usize, ext: &str, extra: &[&str]) -> Vec<PathBuf> {
    (0..2)
        .map(|k| {
            let p = d.join(format!("shard{k}-{n}{}.{ext}", extra.join("")));
            let shard = format!("{k}/{n}");
            let mut args = vec![
                "sweep",
                s(spec),
                "--quiet",
                "--shard",
                &shard,
                "--out",
                s(&p),
            ];
            args.extend(extra);
            ok(&args);
            p
        })
        .collect()
}

#[test]
fn merge_accepts_whole_sweeps_only() {
    let d = dir("merge");
    let spec = file(&d, "s.toml", SMALL_SPEC);
    let whole = d.join("whole.csv");
    ok(&["sweep", s(&spec), "--quiet", "--out", s(&whole)]);
    let whole = std::fs::read_to_string(&whole).unwrap();
    assert!(
        whole.contains("\"") && whole.contains(":\n  - "),
        "an error cell spans lines"
    );
    let csv = shards(&d, &spec, 2, "csv", &[]);
    let merged = ok(&["merge", s(&csv[1]), s(&csv[0])]);
    assert_eq!(
        merged, whole,
        "multi-line error cells merge back byte for byte"
    );
    let jsonl = shards(&d, &spec, 2, "jsonl", &[]);
    let other = shards(
        &d,
        &spec,
        2,
        "csv",
        &["--set", "model.precision.weights=fp8"],
    );
    let three = shards(&d, &spec, 3, "csv", &[]);
    let text = std::fs::read_to_string(&csv[0]).unwrap();
    let cut_row = file(&d, "cut-row.csv", &text[..text.len() - 5]);
    let cut_at_row = file(&d, "cut.csv", &text[..text.rfind("\n2,").unwrap() + 1]);
    let text1 = std::fs::read_to_string(&csv[1]).unwrap();
    let mut lines: Vec<&str> = text1.split_inclusive('\n').collect();
    let last = lines.pop().unwrap().replacen(",ok,", ",ok,,", 1);
    let wide = file(&d, "wide.csv", &(lines.concat() + &last));
    let cases: Vec<(Vec<&Path>, &str)> = vec![
        (vec![&csv[0], &jsonl[1]], "format"),
        (vec![&csv[0], &other[1]], "spec"),
        (vec![&csv[0]], "shard 1/2 is missing"),
        (vec![&csv[0], &csv[0]], "overlapping shards"),
        (vec![&csv[0], &three[1]], "shard count"),
        (vec![&cut_row, &csv[1]], "cut-row.csv:"),
        (vec![&cut_at_row, &csv[1]], "truncated"),
        (vec![&csv[0], &wide], "wide.csv:"),
    ];
    for (inputs, needle) in cases {
        let args: Vec<&str> = ["merge"]
            .into_iter()
            .chain(inputs.iter().map(|p| s(p)))
            .collect();
        exits(&args, 2, &[needle]);
    }
}

#[test]
fn absurd_but_finite_values_are_out_of_their_physical_range() {
    let range = "a physical range";
    let cases = [
        (
            "h100-sxm",
            "hardware.gpu.hbm_bandwidth_bytes_per_s=1e-300",
            ["1e3 to 1e18", range],
        ),
        (
            "h100-sxm",
            "hardware.gpu.interconnect.latency_s=1e300",
            ["latency_s", range],
        ),
        (
            "h100-sxm",
            "hardware.gpu.peak_flops_per_s.bf16=1e300",
            ["1e6 to 1e19", range],
        ),
        (
            "h100-sxm",
            "hardware.power.busy_w_per_device=1e308",
            ["1e0 to 1e6", range],
        ),
        (
            "h100-sxm",
            "hardware.price.usd_per_device_hour=1e-300",
            ["usd_per", range],
        ),
        (
            "wse-3",
            "hardware.wafer.fabric_bandwidth_bytes_per_s=1e300",
            ["wafer.fabric", range],
        ),
        (
            "wse-3",
            "hardware.wafer.cores=100000000000",
            ["wafer.cores", "at most"],
        ),
        (
            "h100-sxm",
            "model.architecture.hidden_size=1000000000000",
            ["hidden_size", "at most"],
        ),
        (
            "h100-sxm",
            "model.attention.heads=1000000000000",
            ["attention.heads", "at most"],
        ),
        (
            "h100-sxm",
            "model.architecture.context_window_tokens=100000000000",
            ["context_window", "at most"],
        ),
    ];
    for (hw, set, needles) in cases {
        let args = [
            "step",
            "--hardware",
            hw,
            "--model",
            "llama-3.2-1b",
            "--set",
            set,
        ];
        exits(&args, 2, &needles);
    }
    // Once a panic in the gamma sampler.
    for cv in ["1e300", "1e-300"] {
        let args = sim(&["--rate", "1", "--arrival", "gamma", "--burstiness", cv]);
        exits(&refs(&args), 2, &["--burstiness", "0.001 to 1000"]);
    }
}

#[test]
fn infer_refuses_what_it_would_call_out_of_reach() {
    let base = ["infer", "--hardware", "h100-sxm", "--model", "llama-3.1-8b"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    exits(
        &with(&["--tokens-per-s", "1e300"]),
        2,
        &["--tokens-per-s", "at most 1e9"],
    );
    exits(
        &with(&["--tokens-per-s", "100", "--context", "18446744073709551615"]),
        2,
        &["--context", "context window"],
    );
}
