//! Regression against published figures: every row of the reference set is predicted and held
//! to its own tolerance; all rows are reported before the test fails.

use infersim::study::validate::{parse, run, summarise, SHIPPED};

#[test]
fn every_reference_row_stays_within_its_tolerance() {
    let rows = parse("reference/published.toml", SHIPPED).unwrap();
    assert!(
        rows.len() >= 15,
        "the reference set shrank to {} rows",
        rows.len()
    );
    let results = run(&rows, &[]);
    let mut report = String::new();
    let mut failures = 0;
    for r in &results {
        let ok = r.status == "ok" && r.rel_error.abs() <= r.tolerance;
        failures += usize::from(!ok);
        report.push_str(&format!(
            "{} {:<52} predicted {:>12.4} published {:>12.4} error {:>+7.1}% tolerance {:>4.0}% {}\n",
            if ok { "  " } else { "!!" },
            r.id,
            r.predicted,
            r.published,
            100.0 * r.rel_error,
            100.0 * r.tolerance,
            r.status
        ));
    }
    let s = summarise(&results);
    println!(
        "{report}median |error| {:.1}%, max {:.1}%",
        100.0 * s.median_abs_rel_error,
        100.0 * s.max_abs_rel_error
    );
    assert_eq!(failures, 0, "rows outside their tolerance:\n{report}");
    // Both machine kinds are covered.
    assert!(results.iter().any(|r| r.hardware == "wse-3"));
    assert!(results
        .iter()
        .any(|r| r.hardware.starts_with('g') || r.hardware.starts_with('h')));
}

#[test]
fn validate_json_has_the_documented_shape() {
    let v = super::json(&["validate", "--format", "json"]);
    let rows = v["rows"].as_array().unwrap();
    for k in [
        "id",
        "hardware",
        "model",
        "metric",
        "predicted",
        "published",
        "rel_error",
    ] {
        assert!(rows[0].get(k).is_some(), "{k}");
    }
    for k in ["n", "median_abs_rel_error", "max_abs_rel_error"] {
        assert!(v["summary"][k].is_number(), "{k}");
    }
}
