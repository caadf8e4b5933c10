//! Sweeps (threads, shards, merge), and the files people look at: Perfetto traces, SVG charts,
//! per-request CSV.

use std::path::{Path, PathBuf};

use super::{infersim, ok};

fn dir(test: &str) -> PathBuf {
    super::scratch(&format!("outputs-{test}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 200 small points: 20 arrival rates x 10 bandwidths, a 1B model on one H100.
const SPEC_200: &str = r#"
[base]
hardware = "h100-sxm"
model = "llama-3.2-1b"
[base.workload]
rate_per_s = 1.0
requests = 40
prompt_tokens = "uniform:64:512"
output_tokens = "uniform:8:64"

[[axis]]
path = "workload.rate_per_s"
from = 1.0
to = 200.0
steps = 20
scale = "log"

[[axis]]
path = "hardware.gpu.hbm_bandwidth_bytes_per_s"
from = 1e12
to = 5.5e12
steps = 10
"#;

fn series_lines<'a>(
    doc: &'a roxmltree::Document<'a>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> + 'a {
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
}

fn spec(d: &Path, name: &str, text: &str) -> PathBuf {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn sweep_output_is_the_same_on_one_or_two_threads_and_sharded() {
    let d = dir("threads");
    let sp = spec(&d, "s.toml", SPEC_200);
    for ext in ["csv", "jsonl"] {
        let one = d.join(format!("one.{ext}"));
        let two = d.join(format!("two.{ext}"));
        ok(&["sweep", s(&sp), "--jobs", "1", "--quiet", "--out", s(&one)]);
        ok(&["sweep", s(&sp), "--jobs", "2", "--quiet", "--out", s(&two)]);
        let a = std::fs::read(&one).unwrap();
        assert_eq!(a, std::fs::read(&two).unwrap(), "{ext}: 1 vs 2 threads");
        let rows = String::from_utf8(a.clone()).unwrap();
        assert_eq!(
            rows.lines().count(),
            200 + usize::from(ext == "csv"),
            "{ext}: one row per point"
        );
        let data = rows.lines().skip(usize::from(ext == "csv"));
        assert!(data
            .clone()
            .all(|l| !l.contains(",error,") && !l.contains("\"status\":\"error\"")));

        let shards: Vec<PathBuf> = (0..3)
            .map(|k| {
                let p = d.join(format!("shard{k}.{ext}"));
                let shard = format!("{k}/3");
                ok(&[
                    "sweep",
                    s(&sp),
                    "--shard",
                    &shard,
                    "--quiet",
                    "--out",
                    s(&p),
                ]);
                p
            })
            .collect();
        let merged = d.join(format!("merged.{ext}"));
        // Shards given out of order on purpose.
        ok(&[
            "merge",
            s(&shards[2]),
            s(&shards[0]),
            s(&shards[1]),
            "--out",
            s(&merged),
        ]);
        assert_eq!(a, std::fs::read(&merged).unwrap(), "{ext}: shard + merge");
    }
}

#[test]
fn sweep_rows_carry_axes_units_and_errors() {
    let d = dir("rows");
    let sp = spec(
        &d,
        "s.toml",
        r#"
[base]
hardware = "h100-sxm"
model = "llama-3.2-1b"
[base.workload]
concurrency = 2
requests = 10
prompt_tokens = 100
output_tokens = 10
[[axis]]
path = "serve.max_batch"
values = [1, 0, 4]
"#,
    );
    let out = ok(&["sweep", s(&sp), "--format", "csv", "--quiet"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in [
        "point",
        "serve.max_batch",
        "status",
        "error",
        "throughput_output_tokens_per_s",
        "ttft_s_p99",
        "tokens_per_s_per_user_p50",
    ] {
        assert!(header.contains(&col), "{col} missing from {header:?}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].starts_with("0,1,") && rows[0].contains(",ok,"));
    assert!(
        rows[1].contains(",error,")
            && rows[1].contains("max_batch (--max-batch): expected at least 1"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].contains(",ok,"),
        "the sweep goes on after a failed point"
    );
}

#[test]
fn sweep_plot_has_one_series_per_value_of_the_second_axis() {
    let d = dir("plot");
    let sp = spec(&d, "s.toml", SPEC_200);
    let svg = d.join("s.svg");
    ok(&[
        "sweep",
        s(&sp),
        "--quiet",
        "--plot-out",
        s(&svg),
        "--plot-y",
        "throughput_output_tokens_per_s",
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    // Series are drawn 2 px wide, one colour each (axes and ticks are 1 px black).
    let mut colours: Vec<&str> = series_lines(&doc)
        .map(|n| n.attribute("stroke").unwrap())
        .collect();
    colours.sort_unstable();
    colours.dedup();
    assert_eq!(
        colours.len(),
        7,
        "10 series cycle through the 7-colour palette: {colours:?}"
    );
    assert_eq!(
        series_lines(&doc).count(),
        2 * 10,
        "10 series and their 10 legend keys"
    );
    let texts: String = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        texts.contains("hardware.gpu.hbm_bandwidth_bytes_per_s=1e12"),
        "{texts}"
    );
    assert!(texts.contains("throughput_output_tokens_per_s"));

    let bad = infersim(&[
        "sweep",
        s(&sp),
        "--quiet",
        "--plot-out",
        s(&svg),
        "--plot-y",
        "throughput",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Every `<text>` of an SVG, one string.
fn svg_texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

/// Tick labels read as people write numbers: no float dumps, no `log10(...)` axes.
fn assert_human_ticks(texts: &[String]) {
    for t in texts {
        assert!(!t.contains("log10("), "{t}");
        assert!(
            !t.split_whitespace()
                .any(|w| w.len() > 9 && w.parse::<f64>().is_ok()),
            "a long number: {t}"
        );
    }
}

#[test]
fn sweep_pareto_chart_joins_and_names_the_frontier() {
    let d = dir("pareto");
    let sp = spec(&d, "s.toml", SPEC_200);
    let (svg, rows) = (d.join("p.svg"), d.join("rows.csv"));
    ok(&[
        "sweep",
        s(&sp),
        "--quiet",
        "--out",
        s(&rows),
        "--pareto-out",
        s(&svg),
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let texts = svg_texts(&doc);
    assert_human_ticks(&texts);
    // The frontier from the rows themselves: a point is on it when no other point is at least as
    // fast per user and higher in throughput per GPU.
    let csv = std::fs::read_to_string(&rows).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (u, t, dev) = (
        col("tokens_per_s_per_user_p50"),
        col("throughput_output_tokens_per_s"),
        col("devices"),
    );
    let pts: Vec<(f64, f64)> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .map(|c| {
            let f = |i: usize| c[i].parse::<f64>().unwrap();
            (f(u), f(t) / f(dev))
        })
        .collect();
    let on = pts
        .iter()
        .filter(|p| !pts.iter().any(|q| q.0 >= p.0 && q.1 > p.1))
        .count();
    assert!(on >= 2, "a trade-off over 20 rates: {on}");
    let named = texts
        .iter()
        .filter(|t| t.contains("tok/s per user") && t.contains("workload.rate_per_s="))
        .count();
    assert_eq!(named, on, "one legend line per frontier point: {texts:?}");
    assert!(texts.iter().any(|t| t.contains("output tokens/s per GPU")));
    assert!(texts
        .iter()
        .any(|t| t.starts_with("llama-3.2-1b on h100-sxm")));
    // The frontier is one 2 px line; the other points are rings.
    assert_eq!(
        series_lines(&doc).count(),
        2,
        "the frontier and its legend key"
    );
    let rings = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle") && n.attribute("fill") == Some("none"))
        .count();
    assert_eq!(
        rings,
        pts.len() - on + 1,
        "other points and their legend key"
    );
}

#[test]
fn compare_draws_interactivity_curves_per_row() {
    let d = dir("interactivity");
    let svg = d.join("i.svg");
    let v = super::json(&[
        "compare",
        "--requests-per-user",
        "1",
        "--interactivity-out",
        s(&svg),
        "--interactivity-users",
        "1,8,64",
        "--format",
        "json",
    ]);
    let curves = v["interactivity"].as_array().expect("curves in the JSON");
    assert_eq!(curves.len(), 6, "every compare row");
    for c in curves {
        let pts = c["points"].as_array().unwrap();
        assert_eq!(pts.len(), 3, "{c}");
        // One user alone is the fastest per user. On GPUs more users per replica also give more
        // throughput per device; a wafer whose SRAM cannot hold their KV cache may give less.
        let f = |i: usize, k: &str| pts[i][k].as_f64().unwrap();
        for i in 1..3 {
            assert!(
                f(i, "tokens_per_s_per_user") < f(0, "tokens_per_s_per_user"),
                "{c}"
            );
        }
        if c["device"] == "gpu" {
            assert!(
                f(2, "tokens_per_s_per_device") > f(0, "tokens_per_s_per_device"),
                "{c}"
            );
        }
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(
        series_lines(&doc).count(),
        2 * 6,
        "six curves and their legend keys"
    );
    let texts = svg_texts(&doc);
    assert_human_ticks(&texts);
    for m in [
        "gpt-5.3-codex on gb200-nvl72",
        "gpt-5.3-codex-spark on wse-3",
    ] {
        assert!(texts.iter().any(|t| t.starts_with(m)), "{m} missing");
    }
    assert!(texts
        .iter()
        .any(|t| t.contains("1, 8, 64 users per replica")));
}

#[test]
fn simulate_writes_a_trace_a_plot_and_request_records() {
    let d = dir("simulate");
    let (trace, plot, reqs) = (d.join("t.json"), d.join("l.svg"), d.join("r.csv"));
    ok(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.2-1b",
        "--replicas",
        "1",
        "--rate",
        "20",
        "--requests",
        "60",
        "--prompt-tokens",
        "uniform:100:3000",
        "--output-tokens",
        "uniform:5:50",
        "--max-batched-tokens",
        "512",
        "--trace-out",
        s(&trace),
        "--plot-out",
        s(&plot),
        "--requests-out",
        s(&reqs),
    ]);

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).expect("trace is JSON");
    let ev = v["traceEvents"].as_array().expect("traceEvents array");
    let count = |ph: &str| ev.iter().filter(|e| e["ph"] == ph).count();
    assert!(count("X") > 0, "iteration slices");
    assert_eq!(count("b"), count("e"), "async begins and ends pair up");
    assert!(count("b") >= 2 * 60, "each request and its phases");
    assert!(ev
        .iter()
        .any(|e| e["ph"] == "C" && e["name"].as_str().unwrap().contains("KV cache")));
    assert!(ev
        .iter()
        .any(|e| e["ph"] == "C" && e["name"].as_str().unwrap().contains("queue depth")));
    for e in ev.iter().filter(|e| e["ph"] == "X") {
        assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() > 0.0);
    }
    assert!(ev
        .iter()
        .any(|e| e["name"] == "prefill" || e["name"] == "mixed"));
    assert!(ev.iter().any(|e| e["name"] == "decode"));

    let text = std::fs::read_to_string(&plot).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(
        series_lines(&doc).count(),
        3,
        "TTFT, TPOT and end-to-end CDFs"
    );

    let csv = std::fs::read_to_string(&reqs).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("request,instance,arrival_s,first_token_s"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|c| c.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 60);
    for r in &rows {
        assert!(
            r[2] <= r[3] && r[3] <= r[4],
            "arrival <= first token <= completion: {r:?}"
        );
    }
}

#[test]
fn compare_plot_draws_every_row() {
    let d = dir("compare");
    let svg = d.join("c.svg");
    ok(&["compare", "--requests-per-user", "1", "--plot-out", s(&svg)]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let texts: String = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for m in [
        "gpt-5.3-codex on gb200-nvl72",
        "gpt-5.3-codex-spark on wse-3",
    ] {
        assert!(texts.contains(m), "{m} missing");
    }
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count()
            >= 6 * 2
    );
}

#[test]
fn bad_sweeps_and_merges_are_rejected_with_exit_2() {
    let d = dir("bad");
    let good = spec(&d, "good.toml", SPEC_200);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            SPEC_200.replace("workload.rate_per_s", "workload.rate_per_second"),
            vec!["did you mean workload.rate_per_s?"],
        ),
        (
            SPEC_200.replace("hbm_bandwidth_bytes_per_s", "hbm_bandwith_bytes_per_s"),
            vec!["did you mean hardware.gpu.hbm_bandwidth_bytes_per_s?"],
        ),
        (
            SPEC_200.replace("steps = 20", "steps = 1"),
            vec!["steps", "expected 2 to"],
        ),
        (
            SPEC_200.replace("steps = 20", "steps = 4000000000"),
            vec!["steps", "expected 2 to"],
        ),
        (
            SPEC_200.replace("steps = 10", "steps = 999999"),
            vec!["more than 1000000 points"],
        ),
        (
            SPEC_200.replace("scale = \"log\"", "scale = \"cubic\""),
            vec!["s.toml", "scale"],
        ),
        (
            SPEC_200.replace("hardware = ", "hardwre = "),
            vec!["s.toml", "hardwre"],
        ),
        (
            SPEC_200.replace("from = 1.0", "from = -1.0"),
            vec!["log range", "> 0"],
        ),
        (
            SPEC_200.replace("path = \"workload.rate_per_s\"", "path = \"rate\""),
            vec!["hardware., model., workload. or serve."],
        ),
    ];
    for (text, needles) in cases {
        let p = spec(&d, "s.toml", &text);
        let out = infersim(&["sweep", s(&p), "--quiet"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{needles:?}: {err}");
        assert!(!err.contains("panicked"));
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in {err}");
        }
    }
    for shard in ["3/3", "x/2", "1"] {
        let out = infersim(&["sweep", s(&good), "--shard", shard]);
        assert_eq!(out.status.code(), Some(2), "--shard {shard}");
    }
    let out = infersim(&["sweep", s(&good), "--jobs", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let a = d.join("a.csv");
    ok(&[
        "sweep",
        s(&good),
        "--shard",
        "0/50",
        "--quiet",
        "--out",
        s(&a),
    ]);
    let out = infersim(&["merge", s(&a), s(&a)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("overlapping shards"), "{err}");
    let junk = spec(&d, "junk.csv", "point,x\nnot-a-number,1\n");
    let out = infersim(&["merge", s(&junk)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.csv:1: expected the shard line"));
}
