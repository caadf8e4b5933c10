//! Shipped profiles people reach for: int4 weights on a shipped model, and one iteration on each
//! of the 8-GPU HGX H100 and AMD Instinct profiles.

use super::json;

/// Qwen2.5 32B with AWQ/GPTQ-style int4 weights fits one H100 80 GB, and its weight bytes are the
/// hand count. Parameters (models/qwen2.5-32b.toml; biases and norms are not modelled):
/// attention per layer 2 x 5120 x 5120 (Q, O) + 2 x 5120 x 1024 (K, V) = 62,914,560; gated MLP
/// per layer 3 x 5120 x 27,648 = 424,673,280; 64 layers: 31,205,621,760; embedding and untied
/// head 2 x 152,064 x 5120 = 1,557,135,360; total 32,762,757,120. Int4 with one 16-bit scale and
/// one 4-bit zero point per 128 weights: 4.15625 bits = 133/256 bytes a weight, so
/// 32,762,757,120 x 133 / 256 = 17,021,276,160 bytes, all on the one GPU.
#[test]
fn qwen_32b_int4_weights_on_one_h100_match_the_hand_count() {
    let v = json(&[
        "step",
        "--hardware",
        "h100-sxm",
        "--model",
        "qwen2.5-32b",
        "--set",
        "model.precision.weights=int4",
        "--format",
        "json",
    ]);
    let p = &v["placement"];
    assert_eq!(p["tp"], 1, "{p}");
    assert_eq!(p["pp"], 1, "{p}");
    assert_eq!(p["devices_per_replica"], 1, "{p}");
    let weights = p["weight_bytes_per_device"].as_f64().unwrap();
    assert!(
        (weights - 17_021_276_160.0).abs() <= 1.0,
        "int4 weight bytes per GPU: {weights}"
    );
    // The rest of the 80 GB, less the 8 GB reserve, holds KV cache.
    assert!(
        p["kv_capacity_bytes_per_device"].as_f64().unwrap() > 50e9,
        "{p}"
    );
    assert!(v["tokens_per_s_total"].as_f64().unwrap() > 0.0);
}

#[test]
fn every_new_hardware_profile_runs_a_step() {
    for hardware in ["h100-hgx", "mi300x", "mi355x"] {
        let v = json(&[
            "step",
            "--hardware",
            hardware,
            "--model",
            "llama-3.1-70b",
            "--batch",
            "8",
            "--format",
            "json",
        ]);
        assert_eq!(v["hardware"], hardware);
        assert_eq!(v["placement"]["devices_in_system"], 8, "{hardware}");
        for k in ["step_s", "tokens_per_s_per_user", "tokens_per_s_total"] {
            let x = v[k].as_f64().unwrap_or(f64::NAN);
            assert!(x > 0.0 && x.is_finite(), "{hardware} {k}: {x}");
        }
        assert_eq!(v["kv_fits"], true, "{hardware}");
    }
}
