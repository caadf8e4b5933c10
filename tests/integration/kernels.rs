//! `infersim kernels` on the shipped kernel tables: every indexed GPU and operator kind is
//! reported in the documented JSON shape, and a malformed table fails with its file and line;
//! the step breakdown names the curve or term behind each operator.

use super::{infersim, json, scratch};

#[test]
fn kernels_json_reports_every_gpu_and_operator_kind() {
    let v = json(&["kernels", "--format", "json"]);
    let rows = v["rows"].as_array().unwrap();
    for hw in [
        "gb200-nvl72",
        "b200-hgx",
        "h200-hgx",
        "h100-sxm",
        "a100-sxm",
    ] {
        for op in [
            "gemm",
            "prefill_attention",
            "decode_attention",
            "mla_prefill_attention",
            "mla_decode_attention",
            "all_reduce_nccl",
        ] {
            let r = rows
                .iter()
                .find(|r| r["hardware"] == hw && r["op"] == op && r["split"] == "held_out")
                .unwrap_or_else(|| panic!("no held_out {op} row for {hw}"));
            assert!(r["n"].as_u64().unwrap() > 10, "{r}");
            let med = r["median_abs_rel_error"].as_f64().unwrap();
            let p90 = r["p90_abs_rel_error"].as_f64().unwrap();
            assert!(med >= 0.0 && p90 >= med, "{r}");
            assert!(r["median_rel_error"].is_number());
        }
    }
    // The whole-model block exists for GEMMs and attention.
    assert!(rows
        .iter()
        .any(|r| r["op"] == "gemm" && r["split"] == "model"));
}

#[test]
fn kernels_names_the_bad_line_of_a_table() {
    let dir = scratch("kernels-bad");
    let gpu = dir.join("x");
    std::fs::create_dir_all(&gpu).unwrap();
    std::fs::write(dir.join("index.csv"), "hardware,tables\nh100-sxm,x\n").unwrap();
    std::fs::write(
        gpu.join("gemm.csv"),
        "dtype,m,n,k,latency_ms\nbfloat16,1,64,64,0.01\nbfloat16,1,64,64,fast\n",
    )
    .unwrap();
    let out = infersim(&["kernels", "--tables", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "gemm.csv:3: field \"latency_ms\": expected a latency in milliseconds, found \"fast\""
        ),
        "{err}"
    );
    let out = infersim(&["kernels", "--hardware", "wse-3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no kernel tables for \"wse-3\""));
}

#[test]
fn fitted_curves_beat_the_scalars_on_held_out_shapes() {
    let gemm = |v: &serde_json::Value, split: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["op"] == "gemm" && r["format"] == "bfloat16" && r["split"] == split)
            .unwrap()["median_abs_rel_error"]
            .as_f64()
            .unwrap()
    };
    let args = ["kernels", "--hardware", "h100-sxm", "--format", "json"];
    let scalar = json(&[&args[..], &["--scalar"]].concat());
    let fitted = json(&[&args[..], &["--fit"]].concat());
    for split in ["held_out", "model"] {
        assert!(
            gemm(&fitted, split) < 0.15 && gemm(&fitted, split) < gemm(&scalar, split),
            "{split}: fitted {} scalar {}",
            gemm(&fitted, split),
            gemm(&scalar, split)
        );
    }
    // Attention and collective curves fitted on the same training half.
    let op = |v: &serde_json::Value, op: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["op"] == op && r["split"] == "held_out")
            .unwrap()["median_abs_rel_error"]
            .as_f64()
            .unwrap()
    };
    for kind in [
        "prefill_attention",
        "decode_attention",
        "all_reduce_nccl",
        "all_to_all_nccl",
    ] {
        let (f, s) = (op(&fitted, kind), op(&scalar, kind));
        assert!(f < 0.3 && f < s, "{kind}: fitted {f} scalar {s}");
    }
    for kind in ["mla_prefill_attention", "mla_decode_attention"] {
        let (f, s) = (op(&fitted, kind), op(&scalar, kind));
        assert!(f < 0.15 && f < s, "{kind}: fitted {f} scalar {s}");
    }
    let k = &fitted["fits"][0]["kernel_curves"];
    // GQA prefill and decode (four kernel families), then MLA prefill and decode, each per
    // KV-cache precision.
    let attention = k["attention"].as_array().unwrap();
    assert_eq!(attention.len(), 14);
    assert_eq!(attention[5]["op"], "prefill_attention");
    assert_eq!(attention[5]["kv_cache"], "fp8");
    assert!(attention[5]["curve"]["score_dims"].as_f64().unwrap() > 0.0);
    let families: Vec<&str> = attention[6..10]
        .iter()
        .map(|a| a["family"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(families, ["", "mha", "ungrouped", "small_heads"]);
    for a in &attention[6..10] {
        assert_eq!(a["op"], "decode_attention");
        assert!(a["curve"]["block_s"].as_f64().is_some());
        assert!(a["curve"].get("half_sequences").is_none());
    }
    assert_eq!(attention[13]["kv_cache"], "fp8");
    assert!(attention[13]["curve"]["half_sequences"].as_f64().unwrap() > 0.0);
    assert_eq!(k["collectives"].as_array().unwrap().len(), 3);
    let curves = &fitted["fits"][0]["curves"];
    assert_eq!(curves[0]["curve_name"], "bf16");
    assert!(curves[0]["n"].as_u64().unwrap() > 100);
    assert!(curves[0]["curve"]["floor_s"].as_f64().unwrap() > 0.0);
    // A100: the weight-only and SmoothQuant formats get curves of their own.
    let a100 = json(&[
        "kernels",
        "--hardware",
        "a100-sxm",
        "--format",
        "json",
        "--fit",
    ]);
    let names: Vec<&str> = a100["fits"][0]["curves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["curve_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bf16", "int4_weight_only", "int8_weight_only", "int8"]
    );
}

/// The step breakdown names what priced each operator: the fitted curves where the profile has
/// them and they apply, the scalar roofline where none does (A100's MoE experts).
#[test]
fn step_breakdown_names_the_curve_or_term_behind_each_operator() {
    let priced = |args: &[&str]| -> std::collections::HashMap<String, String> {
        let mut all = vec!["step", "--format", "json"];
        all.extend_from_slice(args);
        super::json(&all)["breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let s = |k: &str| o[k].as_str().unwrap().to_string();
                (s("op"), s("priced_by"))
            })
            .collect()
    };
    let dense = priced(&[
        "--hardware",
        "h100-hgx",
        "--model",
        "llama-3.1-70b",
        "--tp",
        "4",
    ]);
    assert_eq!(dense["mlp"], "GEMM curve");
    assert_eq!(dense["attention"], "attention curves");
    assert_eq!(dense["tensor_parallel_comm"], "all-reduce curves");
    let mla = priced(&[
        "--hardware",
        "gb200-nvl72",
        "--model",
        "deepseek-v3",
        "--tp",
        "8",
    ]);
    assert_eq!(mla["attention"], "MLA attention curves");
    assert_eq!(mla["experts"], "MoE curve (routed experts)");
    // A100's tables hold no checked MoE rows: no MoE curve, the scalars price the experts.
    let a100 = priced(&["--hardware", "a100-sxm", "--model", "gpt-oss-20b"]);
    assert_eq!(a100["experts"], "roofline (scalar efficiencies)");
    let wafer = priced(&["--hardware", "wse-3", "--model", "llama-3.1-8b"]);
    assert_eq!(wafer["fabric"], "fabric hops");
}
