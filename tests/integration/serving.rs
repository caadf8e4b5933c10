//! Serving realism, each feature against its expected direction on a small scenario: prefix
//! caching, disaggregation, routing, priority, swap preemption and SLO goodput.

use infersim::engine::{PreemptionMode, Priority, Routing};
use infersim::metrics::Summary;
use infersim::profile::Override;
use infersim::scenario::{LengthText, Run, Scenario, ServeSpec, WorkloadSpec};

use super::{infersim, json};

fn scenario(hw: &str, model: &str, serve: ServeSpec, workload: WorkloadSpec) -> Scenario {
    Scenario {
        hardware: hw.into(),
        model: model.into(),
        overrides: Vec::new(),
        serve,
        workload,
        record_timeline: false,
        keep_records: false,
    }
}

fn open(rate: f64, requests: usize, prompt: &str, output: &str) -> WorkloadSpec {
    WorkloadSpec {
        rate_per_s: Some(rate),
        requests: Some(requests),
        prompt_tokens: LengthText::Text(prompt.into()),
        output_tokens: LengthText::Text(output.into()),
        ..WorkloadSpec::default()
    }
}

fn run(s: &Scenario) -> Run {
    s.run().unwrap_or_else(|e| panic!("{e}"))
}

fn summary(s: &Scenario) -> Summary {
    run(s).summary
}

/// Assert `a < b`, showing both.
fn less(a: f64, b: f64) {
    assert!(a < b, "expected {a} < {b}");
}

/// Llama 3.1 8B served on `hw`.
fn llama8b(hw: &str, serve: ServeSpec, workload: WorkloadSpec) -> Summary {
    summary(&scenario(hw, "llama-3.1-8b", serve, workload))
}

#[test]
fn prefix_caching_lowers_ttft_for_shared_prefixes() {
    let shared = WorkloadSpec {
        prefix_groups: Some(8),
        prefix_tokens: Some(5000),
        ..open(4.0, 300, "6000", "100")
    };
    let on = ServeSpec::default();
    let off = ServeSpec {
        prefix_caching: false,
        ..ServeSpec::default()
    };
    let a = llama8b("h100-sxm", on.clone(), shared.clone());
    let b = llama8b("h100-sxm", off.clone(), shared);
    assert!(
        a.prefix_cache_hit_fraction > 0.6,
        "{}",
        a.prefix_cache_hit_fraction
    );
    assert_eq!(b.prefix_cache_hit_fraction, 0.0);
    less(a.ttft_s.mean, 0.5 * b.ttft_s.mean);
    // Without shared prefixes the switch changes nothing.
    let plain = open(4.0, 100, "6000", "100");
    let c = llama8b("h100-sxm", on, plain.clone());
    let d = llama8b("h100-sxm", off, plain);
    // (Debug text: NaN fields compare unequal to themselves.)
    assert_eq!(format!("{c:?}"), format!("{d:?}"));
}

#[test]
fn disaggregation_removes_prefill_interference_from_itl_p99() {
    let w = open(12.0, 300, "8000", "300");
    let colocated = ServeSpec {
        tp: Some(1),
        ..ServeSpec::default()
    };
    let split = ServeSpec {
        disaggregate: Some("3p5d".into()),
        ..colocated.clone()
    };
    let a = llama8b("h200-hgx", colocated, w.clone());
    let b = llama8b("h200-hgx", split, w);
    assert_eq!(b.kv_transfers, 300);
    assert_eq!(a.kv_transfers, 0);
    // 8000 tokens x 128 KiB of KV over NVLink: milliseconds, not nothing.
    assert!(
        b.kv_transfer_mean_s > 1e-3 && b.kv_transfer_mean_s < 1e-2,
        "{}",
        b.kv_transfer_mean_s
    );
    less(b.itl_s.p99, 0.5 * a.itl_s.p99);
}

#[test]
fn load_aware_routing_shortens_the_ttft_tail() {
    let w = open(30.0, 1000, "lognormal:2000:1.2", "lognormal:300:1.2");
    let with = |routing| ServeSpec {
        tp: Some(1),
        routing,
        ..ServeSpec::default()
    };
    let rr = llama8b("h200-hgx", with(Routing::RoundRobin), w.clone());
    for routing in [Routing::LeastOutstanding, Routing::LeastKv] {
        let s = llama8b("h200-hgx", with(routing), w.clone());
        less(s.ttft_s.p99, rr.ttft_s.p99);
    }
}

#[test]
fn prefix_affinity_raises_the_cache_hit_rate() {
    let w = WorkloadSpec {
        prefix_groups: Some(32),
        prefix_tokens: Some(3000),
        ..open(10.0, 600, "4000", "100")
    };
    let with = |routing| ServeSpec {
        tp: Some(1),
        routing,
        ..ServeSpec::default()
    };
    let rr = llama8b("h200-hgx", with(Routing::RoundRobin), w.clone());
    let aff = llama8b("h200-hgx", with(Routing::PrefixAffinity), w);
    less(
        rr.prefix_cache_hit_fraction + 0.1,
        aff.prefix_cache_hit_fraction,
    );
}

#[test]
fn prefill_priority_trades_itl_for_ttft() {
    let w = open(6.0, 300, "3000", "200");
    let with = |priority| ServeSpec {
        priority,
        ..ServeSpec::default()
    };
    let d = llama8b("h100-sxm", with(Priority::Decode), w.clone());
    let p = llama8b("h100-sxm", with(Priority::Prefill), w);
    less(p.ttft_s.mean, d.ttft_s.mean);
    less(d.itl_s.p99, p.itl_s.p99);
}

#[test]
fn swapping_beats_recomputing_over_a_fast_host_link_only() {
    let w = WorkloadSpec {
        rate_per_s: None,
        concurrency: Some(200),
        ..open(1.0, 300, "4000", "lognormal:800:0.8")
    };
    let with = |preemption| ServeSpec {
        preemption,
        ..ServeSpec::default()
    };
    let recompute = llama8b("h100-sxm", with(PreemptionMode::Recompute), w.clone());
    assert!(
        recompute.preemptions > 0,
        "the scenario must be under KV pressure"
    );
    let swap = llama8b("h100-sxm", with(PreemptionMode::Swap), w.clone());
    assert!(swap.swapped_tokens > 0);
    // PCIe Gen5 moves a token's KV in ~2 us; recomputing it costs more.
    less(swap.e2e_s.mean, recompute.e2e_s.mean);
    // Over a 1 GB/s link the same swaps cost more than recomputation.
    let mut slow = scenario("h100-sxm", "llama-3.1-8b", with(PreemptionMode::Swap), w);
    slow.overrides = vec![Override::parse("hardware.gpu.host_bandwidth_bytes_per_s=1e9").unwrap()];
    let slow = summary(&slow);
    less(recompute.e2e_s.mean, slow.e2e_s.mean);
}

fn max_rate(tpot_limit: &str) -> serde_json::Value {
    json(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--requests",
        "200",
        "--prompt-tokens",
        "1000",
        "--output-tokens",
        "200",
        "--slo-ttft-s",
        "1",
        "--slo-tpot-s",
        tpot_limit,
        "--slo-percentile",
        "90",
        "--find-max-rate",
        "--format",
        "json",
    ])
}

#[test]
fn find_max_rate_meets_the_slo_and_tighter_limits_lower_it() {
    let loose = max_rate("0.05");
    let tight = max_rate("0.015");
    let rate = |v: &serde_json::Value| v["max_rate_per_s"].as_f64().unwrap();
    for v in [&loose, &tight] {
        let r = &v["slo_report"];
        assert_eq!(r["met"], true, "{v}");
        assert!(
            r["tpot_at_percentile_s"].as_f64().unwrap() <= v["slo"]["tpot_s"].as_f64().unwrap()
        );
        // Every request of the steady window met the limits at the rate found, or most did.
        let met = r["met_fraction"].as_f64().unwrap();
        assert!(met > 0.0 && met <= 1.0, "{v}");
    }
    less(rate(&tight), rate(&loose));
}

#[test]
fn goodput_falls_as_limits_tighten() {
    let goodput = |ttft: &str| {
        let v = json(&[
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--rate",
            "8",
            "--requests",
            "300",
            "--slo-ttft-s",
            ttft,
            "--slo-tpot-s",
            "0.05",
            "--format",
            "json",
        ]);
        v["slo_report"]["goodput_requests_per_s"].as_f64().unwrap()
    };
    let (loose, tight) = (goodput("10"), goodput("0.05"));
    less(tight, loose);
}

#[test]
fn serving_flags_reach_the_table() {
    let out = infersim(&[
        "simulate",
        "--hardware",
        "h200-hgx",
        "--model",
        "llama-3.1-8b",
        "--tp",
        "1",
        "--rate",
        "4",
        "--requests",
        "50",
        "--disaggregate",
        "2p6d",
        "--routing",
        "least-kv",
        "--prefix-groups",
        "4",
        "--prefix-tokens",
        "512",
        "--slo-ttft-s",
        "0.5",
        "--slo-tpot-s",
        "0.05",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "routing least-kv",
        "disaggregated 2p6d",
        "50 transfers to decode replicas",
        "goodput",
        "p99 TTFT",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn agentic_example_sweep_reports_goodput_and_caching_raises_it() {
    let csv = super::scratch("serving-agentic").join("agentic.csv");
    let out = infersim(&[
        "sweep",
        "examples/agentic-coding.toml",
        "--quiet",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (caching, routing, goodput, hits) = (
        col("serve.prefix_caching"),
        col("serve.routing"),
        col("goodput_requests_per_s"),
        col("prefix_cache_hit_fraction"),
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 6);
    let value = |on: &str, r: &str, c: usize| -> f64 {
        rows.iter()
            .find(|x| x[caching] == on && x[routing] == r)
            .unwrap()[c]
            .parse()
            .unwrap()
    };
    for r in ["round_robin", "least_outstanding", "prefix_affinity"] {
        assert_eq!(value("false", r, hits), 0.0);
        // Round robin spreads each prefix group over every replica and saturates, preempting
        // hundreds of sequences whose cached prefixes are recomputed: it caches the least.
        let least = if r == "round_robin" { 0.0 } else { 0.3 };
        assert!(value("true", r, hits) > least, "{r}");
        assert!(
            value("true", r, goodput) > value("false", r, goodput),
            "{r}"
        );
    }
}

#[test]
fn disaggregation_works_on_wafers_too() {
    let w = open(20.0, 300, "4000", "300");
    let mut colocated = scenario("wse-3", "llama-3.1-8b", ServeSpec::default(), w.clone());
    colocated.overrides = vec![Override::parse("hardware.wafer.wafers=2").unwrap()];
    let mut split = colocated.clone();
    split.serve.disaggregate = Some("1p1d".into());
    let (a, b) = (summary(&colocated), summary(&split));
    assert_eq!(b.kv_transfers, 300);
    // Split, no decode gap waits for a prefill chunk streaming through the same pipeline.
    less(b.itl_s.mean, a.itl_s.mean);
}

#[test]
fn sweeps_search_the_max_rate_per_point() {
    let dir = super::scratch("serving-max-rate");
    let spec = dir.join("max-rate.toml");
    std::fs::write(
        &spec,
        "[base]\nhardware = \"h100-sxm\"\nmodel = \"llama-3.1-8b\"\n\
         [base.workload]\nrate_per_s = 1.0\nrequests = 300\n\
         [base.slo]\nttft_s = 2.0\ntpot_s = 0.05\nfind_max_rate = true\n\
         [[axis]]\npath = \"hardware.gpu.hbm_bandwidth_bytes_per_s\"\nvalues = [2.0e12, 4.8e12]\n",
    )
    .unwrap();
    let rows = dir.join("rows.jsonl");
    super::ok(&[
        "sweep",
        spec.to_str().unwrap(),
        "--quiet",
        "--out",
        rows.to_str().unwrap(),
    ]);
    let rates: Vec<f64> = std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["slo_met"], true, "{v}");
            v["max_rate_per_s"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(rates.len(), 2);
    // More HBM bandwidth: faster decode, a higher rate within the same TPOT limit.
    assert!(rates[1] > rates[0], "{rates:?}");
}
