//! Validation's contract on small reference files (the full set runs in `.ci/run` as
//! `validate --strict`, not here): the JSON shape, verdicts, the known-miss ledger and the
//! accepted-results ratchet, and the fits calibration records.

use std::path::Path;

use super::{infersim, json, ok, scratch};

/// The shipped classes, so that test files judge as the shipped set does.
fn classes() -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/published.toml"),
    )
    .unwrap();
    let start = text.find("[class.").unwrap();
    let end = text[start..].find("[[row]]").unwrap() + start;
    text[start..end].to_string()
}

/// A single-stream row of Llama 3.1 8B on one H100 at `context` tokens, published at
/// `published` tokens/s.
fn row(id: &str, context: u32, published: f64) -> String {
    format!(
        "[[row]]\nid = \"{id}\"\nfamily = \"NVIDIA Hopper\"\nhardware = \"h100-sxm\"\n\
         model = \"llama-3.1-8b\"\nmetric = \"tokens_per_s_per_user\"\n\
         scenario = {{ kind = \"single_stream\", context_tokens = {context} }}\n\
         published = {published}\nunit = \"tokens/s\"\ndate = \"2025\"\nsource = \"test\"\n\n"
    )
}

/// Write a reference file of `rows` in `dir`; the predicted speed of the first test row is
/// about 200 tokens/s (8B in 16-bit on 3.35 TB/s).
fn reference(dir: &Path, rows: &[String]) -> String {
    let p = dir.join("published.toml");
    std::fs::write(&p, classes() + &rows.concat()).unwrap();
    p.display().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn validate_json_has_the_documented_shape() {
    let d = scratch("validate-json");
    let r = reference(&d, &[row("near", 1024, 190.0), row("far", 1024, 1000.0)]);
    let v = json(&["validate", "--reference", &r, "--format", "json"]);
    let rows = v["rows"].as_array().unwrap();
    for k in [
        "id",
        "hardware",
        "model",
        "metric",
        "predicted",
        "published",
        "rel_error",
        "fitted",
        "status",
        "tolerance_class",
        "verdict",
        "known_miss",
        "ci95",
    ] {
        assert!(rows[0].get(k).is_some(), "{k}");
    }
    assert_eq!(rows[0]["verdict"], "pass");
    assert_eq!(rows[0]["tolerance_class"], "single_stream_speed");
    assert_eq!(rows[1]["verdict"], "miss");
    assert!(
        rows[0]["ci95"].is_null(),
        "a priced step has no sampling error"
    );
    for k in [
        "n",
        "median_abs_rel_error",
        "max_abs_rel_error",
        "median_abs_rel_error_unfitted",
        "median_abs_loo_rel_error",
        "misses",
        "unlisted_misses",
    ] {
        assert!(v["summary"].get(k).is_some(), "{k}");
    }
    assert_eq!(v["summary"]["misses"], 1);
}

#[test]
fn strict_holds_the_ledger_and_the_accepted_errors() {
    let d = scratch("validate-strict");
    let r = reference(&d, &[row("near", 1024, 190.0), row("far", 1024, 1000.0)]);
    let results = d.join("results.toml").display().to_string();
    let empty = write(&d, "empty.toml", "");
    let ledger = write(
        &d,
        "misses.toml",
        "[[miss]]\nid = \"far\"\nerror = -0.8\ncause = \"the test's published figure is out of reach\"\n",
    );
    // Accept this run's errors; the ledger lists the miss: strict passes.
    ok(&[
        "validate",
        "--reference",
        &r,
        "--fits",
        &empty,
        "--write-results",
        &results,
        "--quiet",
    ]);
    let strict = |ledger: &str, results: &str, reference: &str| {
        infersim(&[
            "validate",
            "--reference",
            reference,
            "--fits",
            &empty,
            "--ledger",
            ledger,
            "--results",
            results,
            "--strict",
        ])
    };
    let out = strict(&ledger, &results, &r);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the ledger the miss is unlisted: exit 1, the report still printed.
    let out = strict(&empty, &results, &r);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("far misses its tolerance"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISS"));
    // A published figure that moves the error by more than 2 points.
    let moved = reference(&d, &[row("near", 1024, 180.0), row("far", 1024, 1000.0)]);
    let out = strict(&ledger, &results, &moved);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("near's error moved"));
    // A listed row that passes must leave the ledger.
    let listed = write(
        &d,
        "listed.toml",
        "[[miss]]\nid = \"far\"\ncause = \"c\"\n[[miss]]\nid = \"near\"\ncause = \"c\"\n",
    );
    let out = strict(&listed, &results, &r);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("near now passes"));
}

#[test]
fn a_row_that_cannot_be_simulated_is_a_miss_with_its_reason() {
    let d = scratch("validate-failed");
    let bad = row("huge", 1024, 100.0).replace("llama-3.1-8b", "llama-3.1-405b");
    let r = reference(&d, &[row("near", 1024, 190.0), bad]);
    let v = json(&["validate", "--reference", &r, "--format", "json"]);
    let huge = &v["rows"][1];
    assert_eq!(huge["verdict"], "miss");
    assert!(huge["status"].as_str().unwrap().contains("does not fit"));
    assert_eq!(v["summary"]["n"], 2);
    // It counts as an infinite error: the median of two rows is infinite (null in JSON).
    assert!(v["summary"]["median_abs_rel_error"].is_null());
}

#[test]
fn calibrate_records_its_fit_with_held_out_errors_and_validate_reads_it() {
    let d = scratch("validate-fits");
    let rows = [
        row("a", 1024, 200.0),
        row("b", 8192, 190.0),
        row("c", 32768, 160.0),
    ];
    let r = reference(&d, &rows);
    let fits = d.join("fits.toml").display().to_string();
    let c = json(&[
        "calibrate",
        "--hardware",
        "h100-sxm",
        "--param",
        "hardware.gpu.efficiency.memory=0.5:1",
        "--reference",
        &r,
        "--record",
        &fits,
        "--format",
        "json",
    ]);
    assert_eq!(c["cross_validation"], "leave-one-out");
    let text = std::fs::read_to_string(&fits).unwrap();
    assert!(text.contains("held_out_error"), "{text}");
    let v = json(&[
        "validate",
        "--reference",
        &r,
        "--fits",
        &fits,
        "--format",
        "json",
    ]);
    for row in v["rows"].as_array().unwrap() {
        assert_eq!(row["fitted"], true);
        assert!(row["loo_rel_error"].is_number(), "{row}");
    }
    assert!(v["summary"]["median_abs_loo_rel_error"].is_number());
    assert_eq!(v["summary"]["n_unfitted"], 0);
}
