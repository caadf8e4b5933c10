//! Answers a new user can trust: a model runs where a shorter context fits, every adjustment
//! is reported, overload is found wherever it happens in a run, the SLO search converges, and
//! `step` and `compare` apply the same fit and override rules as `simulate`.

use super::{infersim, json};

/// The kinds of a JSON `warnings` list, with their counts.
fn warning_kinds(v: &serde_json::Value) -> Vec<(String, u64)> {
    v["warnings"]
        .as_array()
        .expect("a warnings list")
        .iter()
        .map(|w| {
            assert!(!w["message"].as_str().unwrap().is_empty());
            (
                w["kind"].as_str().unwrap().to_string(),
                w["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn short_run(hardware: &str, model: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "simulate",
        "--hardware",
        hardware,
        "--model",
        model,
        "--requests",
        "40",
        "--concurrency",
        "4",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    json(&args)
}

#[test]
fn a_model_whose_window_does_not_fit_runs_at_the_context_that_does_and_says_so() {
    // Qwen2.5 32B in 16 bits leaves room for ~25k tokens of KV cache on one 80 GB H100, not for
    // its 131,072-token window: served with a lower limit, as vLLM's --max-model-len does.
    let v = short_run(
        "h100-sxm",
        "qwen2.5-32b",
        &["--prompt-tokens", "128", "--output-tokens", "128"],
    );
    let limit = v["max_context_tokens"].as_u64().unwrap();
    assert!(limit > 256 && limit < 131_072, "{limit}");
    assert_eq!(warning_kinds(&v), vec![("context_limited".to_string(), 1)]);

    // An explicit limit is taken as asked, and nothing is reported as adjusted.
    let v = short_run(
        "h100-sxm",
        "qwen2.5-32b",
        &[
            "--prompt-tokens",
            "128",
            "--output-tokens",
            "128",
            "--max-context",
            "8192",
        ],
    );
    assert_eq!(v["max_context_tokens"], 8192);
    assert!(warning_kinds(&v).is_empty());

    // A limit larger than what fits is refused, naming the flag.
    let out = infersim(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "qwen2.5-32b",
        "--max-context",
        "131072",
        "--concurrency",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-context"));
}

#[test]
fn sliding_window_layers_hold_only_their_window_of_kv_cache() {
    // gpt-oss-120b keeps 128 tokens of KV cache on half its layers: one full 131,072-token
    // sequence fits beside its weights on one H100, and twice as many tokens fit as with every
    // layer attending to the whole sequence.
    let v = short_run(
        "h100-sxm",
        "gpt-oss-120b",
        &["--prompt-tokens", "128", "--output-tokens", "128"],
    );
    assert_eq!(v["max_context_tokens"], 131_072);
    assert!(warning_kinds(&v).is_empty());
    let room = |extra: &[&str]| {
        let mut args = vec![
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "gpt-oss-120b",
            "--context",
            "16000",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        json(&args)["placement"]["kv_capacity_tokens_per_replica"]
            .as_u64()
            .unwrap()
    };
    let windowed = room(&[]) as f64;
    let full = room(&[
        "--set",
        "model.attention.sliding_window_tokens=131072",
        "--max-context",
        "32768",
    ]) as f64;
    assert!(windowed / full > 1.9, "{windowed} vs {full}");
}

#[test]
fn lengths_that_cannot_fit_are_refused_and_drawn_ones_cut_and_counted() {
    // Fixed lengths over the window: refused, not cut.
    let out = infersim(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--prompt-tokens",
        "131000",
        "--output-tokens",
        "256",
        "--concurrency",
        "1",
        "--requests",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("131000") && err.contains("131072"), "{err}");

    // Drawn lengths near the window: cut to fit, and every cut counted.
    let v = short_run(
        "h100-sxm",
        "llama-3.1-8b",
        &[
            "--prompt-tokens",
            "lognormal:100000:0.5",
            "--output-tokens",
            "lognormal:2000:0.5",
        ],
    );
    let kinds = warning_kinds(&v);
    let count = |k: &str| kinds.iter().find(|(n, _)| n == k).map_or(0, |(_, c)| *c);
    assert!(count("prompt_tokens_capped") > 0, "{kinds:?}");
    assert!(count("output_tokens_capped") >= count("prompt_tokens_capped"));
    assert!(count("output_tokens_capped") <= 40);
}

#[test]
fn overload_is_found_wherever_it_happens_in_a_run() {
    // Five requests/s, a 250-second peak at 40 (about twice what one H100 serves of the
    // conversation trace's lengths), then five again for 450 s: the queue grows through the
    // peak and drains before the last arrival. The backlog at the end says nothing; the
    // backlog over the run says saturated, and when.
    let v = json(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--rate-schedule",
        "0:5,300:40,550:5",
        "--requests",
        "13750",
        "--lengths-from",
        "traces/splitwise_conv.csv",
        "--format",
        "json",
    ]);
    let s = &v["saturation"];
    assert_eq!(s["saturated"], true, "{s}");
    let from = s["overloaded_from_s"].as_f64().unwrap();
    let to = s["overloaded_to_s"].as_f64().unwrap();
    assert!(
        200.0 < from && from < 350.0 && 500.0 < to && to < 650.0,
        "{from} {to}"
    );
    assert!(s["backlog_at_last_arrival"].as_u64().unwrap() < 10);
}

#[test]
fn trace_rows_cut_to_the_window_are_counted() {
    // The conversation trace's long rows are cut to Llama 2 7B's 4,096-token window.
    let v = json(&[
        "simulate",
        "--hardware",
        "a100-sxm",
        "--model",
        "llama-2-7b",
        "--trace",
        "traces/splitwise_conv.csv",
        "--format",
        "json",
    ]);
    assert_eq!(v["max_context_tokens"], 4096);
    assert!(warning_kinds(&v)
        .iter()
        .any(|(k, c)| k == "trace_prompt_tokens_capped" && *c > 0));
}

#[test]
fn the_slo_search_does_not_depend_on_the_requests_asked() {
    let rate = |n: &str| {
        json(&[
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--lengths-from",
            "traces/splitwise_conv.csv",
            "--slo-ttft-s",
            "2",
            "--slo-tpot-s",
            "0.05",
            "--find-max-rate",
            "--requests",
            n,
            "--format",
            "json",
        ])["max_rate_per_s"]
            .as_f64()
            .unwrap()
    };
    let (few, many) = (rate("500"), rate("8000"));
    assert!((few / many - 1.0).abs() < 0.03, "{few} vs {many}");
}

#[test]
fn step_refuses_a_batch_whose_kv_cache_does_not_fit_unless_it_may_spill() {
    let base = [
        "step",
        "--hardware",
        "wse-3",
        "--model",
        "llama-3.1-70b",
        "--set",
        "hardware.wafer.wafers=4",
        "--batch",
        "64",
        "--context",
        "8000",
    ];
    let out = infersim(&base);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--batch") && err.contains("--kv-spill"),
        "{err}"
    );

    let mut spill = base.to_vec();
    spill.extend(["--kv-spill", "--format", "json"]);
    let v = json(&spill);
    let spilled = v["kv_spilled_tokens"].as_u64().unwrap();
    assert!(spilled > 0);
    assert_eq!(v["kv_fits"], false);
    assert_eq!(warning_kinds(&v), vec![("kv_spilled".to_string(), spilled)]);

    // GPUs have nowhere to spill: refused with or without the flag.
    let out = infersim(&[
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--batch",
        "4000",
        "--context",
        "8000",
        "--kv-spill",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compare_applies_a_set_to_the_machines_that_have_the_field() {
    let statuses = |set: &str| {
        json(&[
            "compare",
            "--requests-per-user",
            "1",
            "--set",
            set,
            "--format",
            "json",
        ])["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["hardware"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    // A wafer field leaves the GPU rows alone; a row it makes unservable says why in one line.
    for (hardware, status) in statuses("hardware.wafer.wafers=1") {
        assert!(!status.contains('\n'), "{status}");
        if hardware == "gb200-nvl72" {
            assert_eq!(status, "ok");
        }
    }
    // A GPU field leaves the wafer rows alone.
    for (hardware, status) in statuses("hardware.gpu.hbm_bandwidth_bytes_per_s=16e12") {
        if hardware == "wse-3" {
            assert_eq!(status, "ok");
        }
    }
    // A field no machine has is an error naming it.
    let out = infersim(&["compare", "--set", "hardware.gpu.hbm_bandwith=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hbm_bandwith"));
}
