//! The command-line contract other tools rely on: JSON keys, formats, determinism.

use super::{infersim, json};

fn assert_dist(v: &serde_json::Value, key: &str) {
    for stat in ["mean", "p50", "p90", "p99"] {
        assert!(v[key][stat].is_number(), "{key}.{stat} missing in {v}");
    }
}

#[test]
fn step_json_has_the_documented_keys() {
    let v = json(&[
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--batch",
        "1",
        "--context",
        "1024",
        "--format",
        "json",
    ]);
    for k in ["step_s", "tokens_per_s_per_user", "tokens_per_s_total"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert_eq!(v["bound"], "memory");
    assert!(v["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["op"] == "mlp"));
    assert!(v["tokens_per_s_per_user"].as_f64().unwrap() < 209.0);
}

#[test]
fn prefill_step_is_compute_bound() {
    let v = json(&[
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--phase",
        "prefill",
        "--prompt",
        "8192",
        "--format",
        "json",
    ]);
    assert_eq!(v["bound"], "compute");
}

#[test]
fn simulate_json_has_the_documented_keys() {
    let v = json(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--rate",
        "2",
        "--requests",
        "50",
        "--format",
        "json",
    ]);
    assert_eq!(v["requests"], 50);
    assert!(v["duration_s"].as_f64().unwrap() > 0.0);
    assert!(v["throughput_output_tokens_per_s"].as_f64().unwrap() > 0.0);
    for k in ["ttft_s", "tpot_s", "itl_s", "e2e_s"] {
        assert_dist(&v, k);
    }
}

#[test]
fn simulate_replays_a_trace() {
    let v = json(&[
        "simulate",
        "--hardware",
        "a100-sxm",
        "--model",
        "llama-2-7b",
        "--trace",
        "traces/splitwise_conv.csv",
        "--requests",
        "300",
        "--format",
        "json",
    ]);
    assert_eq!(v["requests"], 300);
}

#[test]
fn simulate_samples_lengths_from_a_shipped_dataset() {
    // OpenOrca as MLPerf's Llama 2 70B uses it: mean prompt 222.3 and mean output 218.9 tokens
    // (reference/lengths/README.md); 2,000 draws land within a few percent of both.
    let v = json(&[
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--concurrency",
        "64",
        "--requests",
        "2000",
        "--sample-lengths",
        "mlperf-llama2-70b",
        "--format",
        "json",
    ]);
    let output = v["output_tokens"].as_f64().unwrap() / 2000.0;
    let d = v["duration_s"].as_f64().unwrap();
    let prompt = v["throughput_input_tokens_per_s"].as_f64().unwrap() * d / 2000.0;
    assert!((output / 218.9 - 1.0).abs() < 0.05, "mean output {output}");
    assert!((prompt / 222.3 - 1.0).abs() < 0.05, "mean prompt {prompt}");
}

#[test]
fn attention_data_parallelism_pools_kv_room_and_trades_all_reduces_for_all_to_alls() {
    let step = |adp: bool| {
        let mut args = vec![
            "step",
            "--hardware",
            "gb200-nvl72",
            "--model",
            "deepseek-v3",
            "--tp",
            "8",
            // The most sequences of 4,001 tokens whose replicated MLA cache fits tensor
            // parallelism's room (~297), so that both layouts price the same batch.
            "--batch",
            "256",
            "--context",
            "4000",
            "--format",
            "json",
        ];
        if adp {
            args.push("--attention-dp");
        }
        json(&args)
    };
    let op = |v: &serde_json::Value, name: &str| {
        v["breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["op"] == name)
            .map_or(0.0, |o| o["time_s"].as_f64().unwrap())
    };
    let (tp, dp) = (step(false), step(true));
    assert_eq!(dp["placement"]["attention_dp"], true);
    assert_eq!(tp["placement"]["attention_dp"], false);
    let room = |v: &serde_json::Value| {
        v["placement"]["kv_capacity_tokens_per_replica"]
            .as_f64()
            .unwrap()
    };
    assert!(room(&dp) > 4.0 * room(&tp));
    assert!(op(&dp, "expert_parallel_comm") > 0.0 && op(&dp, "tensor_parallel_comm") == 0.0);
    assert!(op(&tp, "tensor_parallel_comm") > 0.0 && op(&tp, "expert_parallel_comm") == 0.0);
    // Each GPU reads its own sequences' MLA cache, not the whole batch's.
    assert!(op(&dp, "attention") < op(&tp, "attention"));
}

#[test]
fn same_seed_same_output_different_seed_different_output() {
    let args = |seed: &'static str| {
        [
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.2-1b",
            "--rate",
            "20",
            "--requests",
            "200",
            "--prompt-tokens",
            "lognormal:500:1",
            "--output-tokens",
            "uniform:10:300",
            "--seed",
            seed,
            "--format",
            "json",
        ]
    };
    let a = infersim(&args("5"));
    let b = infersim(&args("5"));
    let c = infersim(&args("6"));
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
}

#[test]
fn set_overrides_change_the_prediction() {
    let base = json(&[
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--format",
        "json",
    ]);
    let faster = json(&[
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--format",
        "json",
        "--set",
        "hardware.gpu.hbm_bandwidth_bytes_per_s=6.7e12",
    ]);
    assert!(faster["step_s"].as_f64().unwrap() < base["step_s"].as_f64().unwrap());
}

#[test]
fn compare_prints_the_flagship_rows() {
    let out = infersim(&["compare"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for s in [
        "gpt-5.3-codex",
        "gb200-nvl72",
        "gpt-5.3-codex-spark",
        "per_user_tok/s",
    ] {
        assert!(text.contains(s), "{s} missing from:\n{text}");
    }
    let v = json(&["compare", "--format", "json"]);
    let rows = v["rows"].as_array().unwrap();
    let full = rows.iter().find(|r| r["model"] == "gpt-5.3-codex").unwrap();
    assert!(full["tokens_per_s_per_user"].as_f64().unwrap() > 0.0);
    assert_eq!(full["published_tokens_per_s_per_user"], 65.0);
    for r in rows {
        for k in [
            "hardware",
            "model",
            "tokens_per_s_per_user",
            "ttft_s",
            "published_tokens_per_s_per_user",
        ] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
    }
}

#[test]
fn every_command_speaks_csv() {
    for args in [
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.2-1b",
            "--format",
            "csv",
        ][..],
        &[
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.2-1b",
            "--rate",
            "5",
            "--requests",
            "20",
            "--format",
            "csv",
        ],
        &["profiles", "list", "--format", "csv"],
        &["profiles", "check", "--format", "csv"],
    ] {
        let out = infersim(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let header = text.lines().next().unwrap();
        assert!(
            header.contains(',') && !header.contains("  "),
            "{args:?}: {header}"
        );
    }
}

#[test]
fn profiles_list_show_and_check() {
    let list = String::from_utf8(infersim(&["profiles", "list"]).stdout).unwrap();
    assert!(list.contains("gb200-nvl72") && list.contains("deepseek-v3"));
    let show = infersim(&["profiles", "show", "llama-3.1-70b"]);
    assert!(String::from_utf8(show.stdout)
        .unwrap()
        .contains("derived: 7.05"));
    assert!(infersim(&["profiles", "check"]).status.success());
    assert!(infersim(&[
        "profiles",
        "check",
        "hardware/h100-sxm.toml",
        "models/llama-2-7b.toml"
    ])
    .status
    .success());
}

#[test]
fn help_describes_every_command() {
    let out = String::from_utf8(infersim(&["--help"]).stdout).unwrap();
    for c in ["step", "simulate", "compare", "profiles"] {
        assert!(out.contains(c));
    }
    let sim = String::from_utf8(infersim(&["simulate", "--help"]).stdout).unwrap();
    assert!(sim.contains("--trace") && sim.contains("--set") && sim.contains("--format"));
}

#[test]
fn wafer_profiles_speak_the_same_json() {
    let v = json(&[
        "step",
        "--hardware",
        "wse-3",
        "--model",
        "llama-3.1-8b",
        "--format",
        "json",
    ]);
    for k in ["step_s", "tokens_per_s_per_user", "tokens_per_s_total"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert_eq!(v["placement"]["device"], "wafer");
    assert_eq!(v["placement"]["weights_in"], "sram");
    let v = json(&[
        "simulate",
        "--hardware",
        "wse-3",
        "--model",
        "llama-3.1-8b",
        "--rate",
        "20",
        "--requests",
        "100",
        "--format",
        "json",
    ]);
    for k in ["ttft_s", "tpot_s", "itl_s", "e2e_s"] {
        assert_dist(&v, k);
    }
}

#[test]
fn launch_rows_fit_their_generation_and_the_rewrite_is_several_times_faster() {
    let speed = |model: &str, wafers: &str, generation: &str| {
        let set = format!("hardware.wafer.wafers={wafers}");
        let gen = format!("hardware.wafer.software_generation={generation}");
        let v = json(&[
            "step",
            "--hardware",
            "wse-3",
            "--model",
            model,
            "--set",
            &set,
            "--set",
            &gen,
            "--pp",
            wafers,
            "--context",
            "1024",
            "--format",
            "json",
        ]);
        v["tokens_per_s_per_user"].as_f64().unwrap()
    };
    for (model, wafers, published) in [("llama-3.1-8b", "1", 1800.0), ("llama-3.1-70b", "4", 450.0)]
    {
        let launch = speed(model, wafers, "2024-08");
        // Fitted rows: within the single-stream class width (15%) of the launch figures.
        assert!(
            (launch / published - 1.0).abs() < 0.15,
            "{model}: {launch} vs {published}"
        );
        // The rewrite of 2024-10 was "3x faster" on the same systems (Cerebras, 2024-10-24).
        let rewrite = speed(model, wafers, "2024-10");
        assert!(rewrite > 3.0 * launch, "{model}: {rewrite} vs {launch}");
    }
}

#[test]
fn flagship_compare_reports_the_ratio_the_model_implies() {
    let v = json(&["compare", "--format", "json"]);
    let rows = v["rows"].as_array().unwrap();
    let speed = |model: &str, hw: &str| {
        rows.iter()
            .find(|r| r["model"] == model && r["hardware"] == hw)
            .and_then(|r| r["tokens_per_s_per_user"].as_f64())
            .unwrap_or_else(|| panic!("{model} on {hw} has no speed: {v}"))
    };
    let full = speed("gpt-5.3-codex", "gb200-nvl72");
    let spark = speed("gpt-5.3-codex-spark", "wse-3");
    assert!(
        spark > full,
        "Spark {spark} tok/s should beat the full model's {full}"
    );
    let ratio = v["speed_ratio_spark_over_full"].as_f64().unwrap();
    assert!((ratio - spark / full).abs() < 1e-9 * ratio);
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
    }
}

#[test]
fn speculative_decoding_changes_decode_speed_by_its_expected_tokens() {
    let base = [
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.1-8b",
        "--format",
        "json",
    ];
    let plain = json(&base);
    let spec = json(
        &[
            &base[..],
            &["--draft", "llama-3.2-1b", "--gamma", "4", "--alpha", "0.8"],
        ]
        .concat(),
    );
    let (p, s) = (
        plain["step_s"].as_f64().unwrap(),
        spec["step_s"].as_f64().unwrap(),
    );
    // A verification step costs more than a plain step but yields (1 - 0.8^5) / 0.2 tokens.
    assert!(s > p);
    let expected = (1.0 - 0.8f64.powi(5)) / 0.2;
    let per_user = spec["tokens_per_s_per_user"].as_f64().unwrap();
    assert!((per_user - expected / s).abs() < 1e-9 * per_user);
    assert!(spec["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["op"] == "draft_model" && o["time_s"].as_f64().unwrap() > 0.0));
}

#[test]
fn reference_workload_is_identical_run_to_run() {
    // The 100,000-request reference workload of docs/sweeps-and-scale-out.md (Speed).
    let args = [
        "simulate",
        "--hardware",
        "a100-sxm",
        "--model",
        "llama-2-7b",
        "--rate",
        "4",
        "--requests",
        "100000",
        "--lengths-from",
        "traces/splitwise_conv.csv",
        "--max-batch",
        "128",
        "--chunk",
        "512",
        "--format",
        "json",
    ];
    let (a, b) = (infersim(&args), infersim(&args));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["requests"], 100_000);
}

#[test]
fn calibrate_and_infer_run_end_to_end() {
    let v = json(&[
        "calibrate",
        "--hardware",
        "wse-3",
        "--format",
        "json",
        "--param",
        "hardware.wafer.software.2024-08.sram_read_fraction=0.01:1",
        "--param",
        "hardware.wafer.software.2024-10.layer_sync_s=1e-8:1e-4",
        "--rows",
        "cerebras-llama3.1-8b-1xcs3,cerebras-llama3.1-70b-4xcs3,cerebras-llama3.1-70b-2024-10",
    ]);
    assert_eq!(v["values"].as_array().unwrap().len(), 2);
    assert!(v["rows"][0]["loo_rel_error"].is_number());
    let v = json(&[
        "infer",
        "--hardware",
        "wse-3",
        "--model",
        "gpt-5.3-codex-spark",
        "--tokens-per-s",
        "1000",
        "--set",
        "hardware.wafer.wafers=64",
        "--format",
        "json",
    ]);
    let inference = &v["inference"];
    assert!(inference["low"]["active_params"].as_f64().unwrap() > 1e9);
    // Either a size is inferred or the note says why none is.
    assert!(
        inference["uncorrected"]["active_params"].as_f64().is_some()
            || inference["note"]
                .as_str()
                .unwrap()
                .contains("no model of this family"),
        "{inference}"
    );
}

#[test]
fn the_wafer_layout_maximises_per_user_speed_unless_asked_for_throughput() {
    let step = |extra: &[&str]| {
        let mut args = vec![
            "step",
            "--hardware",
            "wse-3",
            "--model",
            "llama-3.1-70b",
            "--set",
            "hardware.wafer.wafers=4",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        json(&args)
    };
    let speed = |v: &serde_json::Value| v["tokens_per_s_per_user"].as_f64().unwrap();
    let base = step(&[]);
    assert_eq!(base["placement"]["objective"], "per-user-speed");
    // Twice the SRAM holds the 70B on two wafers; the default layout still takes all four.
    let double = ["--set", "hardware.wafer.sram_capacity_bytes=88e9"];
    let more = step(&double);
    assert_eq!(more["placement"]["pp"], 4);
    assert!(speed(&more) >= speed(&base) * (1.0 - 1e-9));
    // For throughput: the fewest wafers per replica, two replicas, each slower.
    let mut thr = double.to_vec();
    thr.extend(["--objective", "throughput"]);
    let thr = step(&thr);
    assert_eq!(thr["placement"]["objective"], "throughput");
    assert_eq!(
        (
            thr["placement"]["pp"].as_u64(),
            thr["placement"]["replicas"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert!(speed(&thr) < speed(&more));
    // A pipeline given with --pp is taken as asked, with no objective.
    let fixed = step(&["--pp", "4"]);
    assert!(fixed["placement"]["objective"].is_null());
}
