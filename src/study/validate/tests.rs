//! Validation tests: classes, judging, the ledger's ratchet, and the shipped records.

use super::*;
use crate::error::Error;

fn row(id: &str) -> RowResult {
    RowResult {
        id: id.to_string(),
        family: "f".into(),
        hardware: "h".into(),
        model: "m".into(),
        metric: Metric::ThroughputOutputTokensPerS,
        predicted: 100.0,
        ci95: None,
        published: 100.0,
        rel_error: 0.0,
        tolerance: 0.1,
        tolerance_class: "load_throughput".into(),
        fitted: false,
        loo_rel_error: None,
        verdict: Verdict::Pass,
        known_miss: false,
        cause: None,
        status: "ok".into(),
    }
}

fn point(value: f64) -> Result<Prediction> {
    Ok(Prediction {
        value,
        half_width: None,
    })
}

#[test]
fn a_point_passes_inside_its_tolerance_only() {
    assert_eq!(judge(&point(109.0), 100.0, 0.1), Verdict::Pass);
    assert_eq!(judge(&point(91.0), 100.0, 0.1), Verdict::Pass);
    assert_eq!(judge(&point(111.0), 100.0, 0.1), Verdict::Miss);
    assert_eq!(judge(&point(f64::NAN), 100.0, 0.1), Verdict::Miss);
    let failed: Result<Prediction> = Err(Error::arg("x", "y"));
    assert_eq!(judge(&failed, 100.0, 0.1), Verdict::Miss);
}

#[test]
fn an_interval_passes_when_it_reaches_inside_and_is_narrow() {
    let with = |value, h| {
        Ok(Prediction {
            value,
            half_width: Some(h),
        })
    };
    // 112 +- 2.5: [109.5, 114.5] reaches inside +-10%.
    assert_eq!(judge(&with(112.0, 2.5), 100.0, 0.1), Verdict::Pass);
    // 113 +- 2.5: wholly outside.
    assert_eq!(judge(&with(113.0, 2.5), 100.0, 0.1), Verdict::Miss);
    // A half-width over a quarter of the tolerance cannot tell.
    assert_eq!(judge(&with(100.0, 2.6), 100.0, 0.1), Verdict::Miss);
}

#[test]
fn classes_follow_what_is_measured() {
    let set = ReferenceSet::shipped().unwrap();
    let by = |id: &str| class_of(set.rows.iter().find(|r| r.id == id).unwrap());
    assert_eq!(by("cerebras-llama3.1-405b"), "single_stream_speed");
    assert_eq!(
        by("mlperf5.0-nvl72-llama3.1-405b-offline"),
        "load_throughput"
    );
    assert_eq!(
        by("mlperf5.0-nvl72-llama3.1-405b-server-tpot"),
        "load_mean_tpot"
    );
    assert_eq!(
        by("mlperf5.0-nvl72-llama3.1-405b-server-ttft"),
        "load_mean_ttft"
    );
    for c in set.classes.values() {
        assert!(c.width <= MAX_CLASS_WIDTH && !c.reason.is_empty());
    }
}

const ONE_ROW: &str = r#"
[class.single_stream_speed]
width = 0.15
measures = "m"
reason = "r"
[class.load_throughput]
width = 0.10
measures = "m"
reason = "r"
[class.load_mean_tpot]
width = 0.15
measures = "m"
reason = "r"
[class.load_mean_ttft]
width = 0.25
measures = "m"
reason = "r"
[class.client_ttft]
width = 0.15
measures = "m"
reason = "r"

[[row]]
id = "a"
family = "f"
hardware = "h100-sxm"
model = "llama-3.1-8b"
metric = "tokens_per_s_per_user"
scenario = { kind = "single_stream", context_tokens = 1024 }
published = 100.0
unit = "tokens/s"
date = "2025"
source = "s"
"#;

#[test]
fn classes_are_checked_when_parsed() {
    let set = parse("t", ONE_ROW).unwrap();
    assert_eq!(set.tolerance(&set.rows[0]), 0.15);
    let wide = ONE_ROW.replace("width = 0.25", "width = 0.3");
    assert!(parse("t", &wide)
        .unwrap_err()
        .to_string()
        .contains("class.load_mean_ttft.width"));
    let missing = ONE_ROW.replace("[class.load_mean_ttft]", "[class.other]");
    assert!(parse("t", &missing)
        .unwrap_err()
        .to_string()
        .contains("missing tolerance class"));
    let stated = ONE_ROW.replace(
        "published = 100.0",
        "published = 100.0\nuncertainty = { width = 0.3, quote = \"~100\" }",
    );
    let set = parse("t", &stated).unwrap();
    assert_eq!(set.tolerance(&set.rows[0]), 0.3);
    let unquoted = stated.replace("\"~100\"", "\"\"");
    assert!(parse("t", &unquoted).is_err());
}

#[test]
fn the_ratchet_catches_unlisted_misses_listed_passes_and_moves() {
    let mut miss = row("miss");
    miss.verdict = Verdict::Miss;
    miss.rel_error = -0.5;
    let pass = row("pass");
    let ledger = Ledger {
        misses: vec![KnownMiss {
            id: "miss".into(),
            error: Some(-0.5),
            cause: "c".into(),
        }],
    };
    let accepted = Accepted {
        errors: [("miss".to_string(), -0.5), ("pass".to_string(), 0.0)]
            .into_iter()
            .collect(),
    };
    let mut known = miss.clone();
    known.known_miss = true;
    assert!(strict_problems(&[known.clone(), pass.clone()], &ledger, &accepted).is_empty());
    // Not listed.
    let p = strict_problems(&[miss, pass.clone()], &ledger, &accepted);
    assert!(p[0].contains("not in the known-miss ledger"), "{p:?}");
    // Listed but passing.
    let mut listed_pass = pass.clone();
    listed_pass.known_miss = true;
    let p = strict_problems(&[known.clone(), listed_pass], &ledger, &accepted);
    assert!(p[0].contains("now passes"), "{p:?}");
    // Moved by more than 2 points, either way; 2 points is allowed.
    let mut moved = pass.clone();
    moved.rel_error = 0.021;
    let p = strict_problems(&[known.clone(), moved.clone()], &ledger, &accepted);
    assert!(p[0].contains("moved"), "{p:?}");
    moved.rel_error = 0.019;
    assert!(strict_problems(&[known.clone(), moved], &ledger, &accepted).is_empty());
    // Unknown ids in the files, and a row with no accepted error.
    let p = strict_problems(&[known], &ledger, &accepted);
    assert!(
        p.iter().any(|m| m.contains("accepted results list pass")),
        "{p:?}"
    );
    let p = strict_problems(&[row("new")], &Ledger::default(), &Accepted::default());
    assert!(p[0].contains("no accepted error"), "{p:?}");
}

#[test]
fn accepted_results_round_trip_including_failures() {
    let mut failed = row("b.x");
    failed.rel_error = f64::NAN;
    let text = write_results(&[row("a"), failed.clone()]);
    let a = Accepted::parse("t", &text).unwrap();
    assert_eq!(a.errors["a"], 0.0);
    assert!(a.errors["b.x"].is_nan());
    assert!(strict_problems(&[row("a"), failed], &Ledger::default(), &a).is_empty());
}

#[test]
fn failed_rows_count_as_infinite_errors_in_every_median() {
    let mut failed = row("f");
    failed.rel_error = f64::NAN;
    failed.verdict = Verdict::Miss;
    let mut fitted = row("g");
    fitted.fitted = true;
    fitted.rel_error = 0.05;
    fitted.loo_rel_error = Some(-0.2);
    let s = summarise(&[row("a"), failed, fitted]);
    assert_eq!(s.n, 3);
    assert_eq!(s.median_abs_rel_error, 0.05);
    assert_eq!(s.n_unfitted, 2);
    assert!(s.median_abs_rel_error_unfitted.is_infinite());
    assert_eq!(s.median_abs_loo_rel_error, 0.2);
    assert_eq!((s.misses, s.unlisted_misses), (1, 1));
}

#[test]
fn shipped_records_agree_with_the_reference_set_and_the_profiles() {
    let set = ReferenceSet::shipped().unwrap();
    let fits = Fits::shipped().unwrap();
    let ledger = Ledger::shipped().unwrap();
    let accepted = Accepted::shipped().unwrap();
    let ids: Vec<&str> = set.rows.iter().map(|r| r.id.as_str()).collect();
    for fit in &fits.fits {
        assert!(
            fit.rows.iter().all(|r| ids.contains(&r.as_str())),
            "{fit:?}"
        );
        // The recorded values are the profile's: a stale record fails here.
        let (_, text) = crate::profile::catalog::profile_text("hardware", &fit.hardware).unwrap();
        let table: toml::Table = text.parse().unwrap();
        for (path, value) in fit.params.iter().zip(&fit.values) {
            let mut v = &toml::Value::Table(table.clone());
            for k in path.split('.').skip(1) {
                v = &v[k];
            }
            let x = v.as_float().or(v.as_integer().map(|i| i as f64)).unwrap();
            assert!(
                (x - value).abs() <= 1e-9 * value.abs(),
                "{path}: {x} vs {value}"
            );
        }
        if !fit.exactly_determined() {
            assert_eq!(fit.held_out_error.len(), fit.rows.len(), "{fit:?}");
        }
    }
    for m in &ledger.misses {
        assert!(ids.contains(&m.id.as_str()), "{}", m.id);
    }
    assert_eq!(accepted.errors.len(), ids.len());
}

#[test]
fn a_row_in_two_fits_is_refused() {
    let text = r#"
[[fit]]
hardware = "a"
params = ["hardware.x"]
values = [1.0]
rows = ["r"]
method = "m"
[[fit]]
hardware = "b"
params = ["hardware.y"]
values = [1.0]
rows = ["r"]
method = "m"
"#;
    assert!(Fits::parse("t", text)
        .unwrap_err()
        .to_string()
        .contains("two fits"));
}

#[test]
fn a_speculative_speedup_is_the_speed_with_drafts_over_the_speed_without() {
    let predict_one = |metric: &str, drafted: bool| {
        let mut text = ONE_ROW.replace("tokens_per_s_per_user", metric);
        if drafted {
            text.push_str("speculative = { draft = \"llama-3.2-1b\", gamma = 4, alpha = 0.8 }\n");
        }
        let set = parse("t", &text).unwrap();
        assert_eq!(class_of(&set.rows[0]), "single_stream_speed");
        predict_rows(&set.rows, &[]).remove(0)
    };
    let plain = predict_one("tokens_per_s_per_user", false).unwrap().value;
    let drafted = predict_one("tokens_per_s_per_user", true).unwrap().value;
    let speedup = predict_one("speculative_speedup", true).unwrap().value;
    assert!(
        (speedup - drafted / plain).abs() <= 1e-9 * speedup,
        "{speedup} against {drafted} / {plain}"
    );
    let refused = predict_one("speculative_speedup", false).unwrap_err();
    assert!(refused
        .to_string()
        .contains("needs its speculative decoding"));
}
