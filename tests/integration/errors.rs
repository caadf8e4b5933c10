//! Bad input gets a clear message naming the file and field, exit code 2, and never a panic.

use std::path::PathBuf;

use super::infersim;

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infersim-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn shipped(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Run, expect exit code 2 and every `needle` in stderr.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = infersim(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} exit {:?}: {err}",
        out.status.code()
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected {n:?} in: {err}");
    }
}

fn step_with_hardware(text: &str, name: &str, needles: &[&str]) {
    let p = temp_file(name, text);
    fails_with(
        &[
            "step",
            "--hardware",
            p.to_str().unwrap(),
            "--model",
            "llama-3.1-8b",
        ],
        &[&[name][..], needles].concat(),
    );
}

fn step_with_model(text: &str, name: &str, needles: &[&str]) {
    let p = temp_file(name, text);
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            p.to_str().unwrap(),
        ],
        &[&[name][..], needles].concat(),
    );
}

#[test]
fn malformed_toml_names_the_line() {
    step_with_hardware(
        "name = \"x\"\n[gpu\ndevices = 1\n",
        "syntax.toml",
        &["line 2"],
    );
}

#[test]
fn unknown_field_is_rejected() {
    let text = shipped("hardware/h100-sxm.toml")
        .replace("devices = 1", "devices = 1\nhbm_bandwith = 3e12");
    step_with_hardware(&text, "typo.toml", &["unknown field", "hbm_bandwith"]);
}

#[test]
fn bad_mla_attention_curves_are_rejected() {
    let text = shipped("hardware/h100-sxm.toml");
    let decode = "[gpu.attention_curves.mla_decode]\n";
    assert!(text.contains(decode));
    step_with_hardware(
        &text.replace(decode, &format!("{decode}half_sequence = 2.0\n")),
        "mla-typo.toml",
        &["unknown field", "half_sequence"],
    );
    // The first half_sequences after the MLA decode header (the GQA decode curve has one too).
    let (before, after) = text.split_at(text.find(decode).unwrap());
    let h = after
        .lines()
        .find(|l| l.starts_with("half_sequences = "))
        .unwrap();
    step_with_hardware(
        &format!("{before}{}", after.replacen(h, "half_sequences = -1.0", 1)),
        "mla-negative.toml",
        &["gpu.attention_curves.mla_decode.half_sequences", ">= 0"],
    );
}

#[test]
fn bad_collective_curves_are_rejected() {
    let text = shipped("hardware/h100-sxm.toml");
    let a2a = "[gpu.collective_curves.all_to_all]\n";
    assert!(text.contains(a2a));
    step_with_hardware(
        &text.replace(a2a, &format!("{a2a}half_peer = 0.5\n")),
        "collective-typo.toml",
        &["unknown field", "half_peer"],
    );
    // The first pipeline_s after the all-to-all header.
    let (before, after) = text.split_at(text.find(a2a).unwrap());
    let p = after
        .lines()
        .find(|l| l.starts_with("pipeline_s = "))
        .unwrap();
    step_with_hardware(
        &format!("{before}{}", after.replacen(p, "pipeline_s = -1e-6", 1)),
        "collective-negative.toml",
        &["gpu.collective_curves.all_to_all.pipeline_s", ">= 0"],
    );
}

#[test]
fn negative_bandwidth_is_rejected() {
    let text = shipped("hardware/h100-sxm.toml").replace(
        "hbm_bandwidth_bytes_per_s = 3.35e12",
        "hbm_bandwidth_bytes_per_s = -3.35e12",
    );
    step_with_hardware(
        &text,
        "negative.toml",
        &["gpu.hbm_bandwidth_bytes_per_s", "> 0"],
    );
}

#[test]
fn bad_power_and_price_are_rejected() {
    let text = shipped("hardware/h100-sxm.toml");
    let edit = |from: &str, to: &str| {
        assert!(text.contains(from), "{from} not in the profile");
        text.replace(from, to)
    };
    step_with_hardware(
        &edit("busy_w_per_device = 1275.0", "busy_w_per_device = -1275.0"),
        "negative-power.toml",
        &[
            "invalid profile",
            "power.busy_w_per_device",
            "expected a finite number > 0 (from 1e0 to 1e6, a physical range), found -1275",
        ],
    );
    step_with_hardware(
        &edit("idle_w_per_device = 318.75", "idle_w_per_device = 2000.0"),
        "idle-above-busy.toml",
        &["power.idle_w_per_device", "at most power.busy_w_per_device"],
    );
    step_with_hardware(
        &edit(
            "usd_per_device_hour = 6.155",
            "usd_per_device_hour = -6.155",
        ),
        "negative-price.toml",
        &["price.usd_per_device_hour", "> 0"],
    );
    step_with_hardware(
        &edit("busy_w_per_device = 1275.0", "busy_watts = 1275.0"),
        "power-typo.toml",
        &["unknown field", "busy_watts"],
    );
    step_with_hardware(
        &edit("basis = \"rental\"", "basis = \"leased\""),
        "price-basis.toml",
        &["leased", "rental", "ownership"],
    );
    fails_with(
        &[
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.2-1b",
            "--concurrency",
            "1",
            "--set",
            "hardware.power.busy_w_per_device=-5",
        ],
        &["hardware/h100-sxm.toml", "power.busy_w_per_device", "> 0"],
    );
}

#[test]
fn wrong_type_is_rejected() {
    let text = shipped("hardware/h100-sxm.toml").replace("devices = 1", "devices = \"one\"");
    step_with_hardware(&text, "type.toml", &["devices"]);
}

#[test]
fn missing_field_is_rejected() {
    let shipped = shipped("hardware/h100-sxm.toml");
    let kept: Vec<&str> = shipped
        .lines()
        .filter(|l| !l.starts_with("hbm_capacity_bytes ="))
        .collect();
    assert_eq!(kept.len() + 1, shipped.lines().count(), "one line removed");
    let text = kept.join("\n");
    step_with_hardware(&text, "missing.toml", &["hbm_capacity_bytes"]);
}

#[test]
fn efficiency_above_one_is_rejected() {
    let text = shipped("hardware/h100-sxm.toml");
    let text = text.replacen("\ncompute = ", "\ncompute = 1.5 # was ", 1);
    step_with_hardware(&text, "eff.toml", &["gpu.efficiency.compute", "(0, 1]"]);
}

#[test]
fn per_precision_efficiency_above_one_is_rejected() {
    let text = shipped("hardware/h100-sxm.toml").replacen("{ fp8 = 0.709 }", "{ fp8 = 1.2 }", 1);
    step_with_hardware(
        &text,
        "eff-fp8.toml",
        &["gpu.efficiency.compute_by_precision.fp8", "(0, 1]"],
    );
}

#[test]
fn overlap_outside_the_unit_interval_is_rejected() {
    let text =
        shipped("hardware/h100-sxm.toml").replacen("\noverlap = ", "\noverlap = -0.5 # was ", 1);
    step_with_hardware(&text, "overlap.toml", &["gpu.efficiency.overlap", "[0, 1]"]);
}

#[test]
fn heads_not_divisible_by_kv_heads_is_rejected() {
    let text = shipped("models/llama-3.1-8b.toml").replace("kv_heads = 8", "kv_heads = 7");
    step_with_model(&text, "heads.toml", &["attention.kv_heads", "divisible"]);
}

#[test]
fn more_active_experts_than_experts_is_rejected() {
    let text =
        shipped("models/gpt-oss-20b.toml").replace("active_experts = 4", "active_experts = 40");
    step_with_model(&text, "experts.toml", &["moe.active_experts", "at most"]);
}

#[test]
fn model_too_big_says_how_much_is_missing() {
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-405b",
        ],
        &["does not fit", "short by", "GB"],
    );
}

#[test]
fn unknown_profile_lists_the_shipped_ones() {
    fails_with(
        &["step", "--hardware", "h101", "--model", "llama-3.1-8b"],
        &["unknown hardware profile \"h101\"", "h100-sxm"],
    );
}

#[test]
fn missing_file_is_reported() {
    fails_with(
        &[
            "step",
            "--hardware",
            "no/such/file.toml",
            "--model",
            "llama-3.1-8b",
        ],
        &["cannot read", "no/such/file.toml"],
    );
}

#[test]
fn bad_set_overrides_are_rejected() {
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--set",
            "hardware.gpu.hbm_bandwith_bytes_per_s=1",
        ],
        &["unknown field", "hbm_bandwith_bytes_per_s"],
    );
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--set",
            "gpu.devices=2",
        ],
        &["--set gpu.devices=2", "hardware. or model."],
    );
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--set",
            "hardware.gpu.devices",
        ],
        &["PATH=VALUE"],
    );
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--set",
            "hardware.gpu.hbm_bandwidth_bytes_per_s=0",
        ],
        &["gpu.hbm_bandwidth_bytes_per_s"],
    );
}

#[test]
fn context_beyond_the_window_is_rejected() {
    fails_with(
        &[
            "step",
            "--hardware",
            "a100-sxm",
            "--model",
            "llama-2-7b",
            "--context",
            "5000",
        ],
        &["--context", "context window of 4096"],
    );
}

#[test]
fn malformed_traces_name_the_line() {
    let h = "arrived_at,num_prefill_tokens,num_decode_tokens\n";
    for (name, text, needle) in [
        (
            "order.csv",
            format!("{h}1.0,10,5\n0.5,10,5\n"),
            ":3: arrived_at: rows must be in time order",
        ),
        (
            "nonnum.csv",
            format!("{h}0.0,ten,5\n"),
            ":2: num_prefill_tokens",
        ),
        ("negative.csv", format!("{h}-1.0,10,5\n"), ":2: arrived_at"),
        (
            "zero.csv",
            format!("{h}0.0,10,0\n"),
            ":2: num_decode_tokens: expected at least 1",
        ),
        (
            "fields.csv",
            format!("{h}0.0,10\n"),
            ":2: expected 3 fields",
        ),
        (
            "header.csv",
            "time,prompt,output\n0,1,1\n".to_string(),
            "missing column \"arrived_at\"",
        ),
        ("empty.csv", h.to_string(), "no data rows"),
    ] {
        let p = temp_file(name, &text);
        let trace = p.to_str().unwrap();
        let args = [
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.2-1b",
            "--trace",
            trace,
        ];
        fails_with(&args, &[name, needle]);
    }
}

#[test]
fn bad_workload_flags_are_rejected() {
    let base = [
        "simulate",
        "--hardware",
        "h100-sxm",
        "--model",
        "llama-3.2-1b",
    ];
    fails_with(&base, &["--rate", "--concurrency", "--trace"]);
    fails_with(&[&base[..], &["--rate", "-3"]].concat(), &["--rate", "> 0"]);
    fails_with(
        &[&base[..], &["--rate", "3", "--prompt-tokens", "zipf:2"]].concat(),
        &["--prompt-tokens"],
    );
    fails_with(
        &[&base[..], &["--rate", "3", "--requests", "0"]].concat(),
        &["--requests"],
    );
    fails_with(
        &[&base[..], &["--rate", "3", "--tp", "3"]].concat(),
        &["--tp"],
    );
}

#[test]
fn wafer_profile_values_are_checked() {
    let text = shipped("hardware/wse-3.toml")
        .replace("sram_capacity_bytes = 44e9", "sram_capacity_bytes = -44e9");
    let p = temp_file("wafer.toml", &text);
    fails_with(
        &[
            "step",
            "--hardware",
            p.to_str().unwrap(),
            "--model",
            "llama-3.1-8b",
        ],
        &["wafer.toml", "wafer.sram_capacity_bytes"],
    );
    // The wafer's machine section only: its [power] and [price] tables end the file.
    let both = format!(
        "{}\n{}",
        shipped("hardware/h100-sxm.toml"),
        shipped("hardware/wse-3.toml")
            .split("\n[power]")
            .next()
            .unwrap()
            .replace("name = \"wse-3\"", "")
            .replace("description = ", "# ")
    );
    let p = temp_file("both.toml", &both);
    fails_with(
        &[
            "step",
            "--hardware",
            p.to_str().unwrap(),
            "--model",
            "llama-3.1-8b",
        ],
        &["both [gpu] and [wafer]"],
    );
}

#[test]
fn bad_speculation_is_rejected() {
    let base = ["step", "--hardware", "h100-sxm", "--model", "llama-3.1-8b"];
    fails_with(
        &[&base[..], &["--draft", "llama-3.2-1b", "--alpha", "1.5"]].concat(),
        &["--alpha", "[0, 1]"],
    );
    fails_with(
        &[
            &base[..],
            &["--draft", "llama-3.2-1b", "--alpha", "0.5", "--gamma", "0"],
        ]
        .concat(),
        &["--gamma"],
    );
    fails_with(
        &[&base[..], &["--draft", "llama-3.2-1b"]].concat(),
        &["--alpha"],
    );
    fails_with(
        &[&base[..], &["--draft", "nope", "--alpha", "0.5"]].concat(),
        &["unknown model profile \"nope\""],
    );
}

#[test]
fn attention_data_parallelism_on_a_dense_model_or_a_wafer_is_refused() {
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--attention-dp",
        ],
        &["--attention-dp", "dense"],
    );
    fails_with(
        &[
            "step",
            "--hardware",
            "wse-3",
            "--model",
            "gpt-oss-120b",
            "--set",
            "hardware.wafer.wafers=8",
            "--attention-dp",
        ],
        &["--attention-dp", "GPU"],
    );
}

#[test]
fn wafer_tensor_parallelism_is_refused() {
    fails_with(
        &[
            "step",
            "--hardware",
            "wse-3",
            "--model",
            "llama-3.1-8b",
            "--tp",
            "2",
        ],
        &["--tp", "wafers are not tensor-parallel"],
    );
}

#[test]
fn a_draft_must_share_the_vocabulary_and_scaled_fields_must_be_numbers() {
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--draft",
            "gpt-oss-20b",
            "--alpha",
            "0.5",
        ],
        &["--draft", "vocabulary"],
    );
    fails_with(
        &[
            "infer",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--tokens-per-s",
            "100",
            "--scale",
            "attention.kind",
        ],
        &["--scale", "whole-number"],
    );
    fails_with(
        &[
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.2-1b",
            "--rate",
            "1e-300",
            "--requests",
            "3",
        ],
        &["horizon"],
    );
    fails_with(
        &[
            "step",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--context",
            "18446744073709551615",
        ],
        &["--context"],
    );
}

#[test]
fn bad_serving_settings_are_rejected() {
    let sim = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "simulate",
            "--hardware",
            "h200-hgx",
            "--model",
            "llama-3.1-8b",
            "--tp",
            "1",
            "--rate",
            "1",
            "--requests",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |extra: &[&str], needles: &[&str]| {
        let args = sim(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, needles);
    };
    check(
        &["--disaggregate", "0p8d"],
        &["disaggregate", "expected XpYd", "0p8d"],
    );
    check(&["--disaggregate", "two-and-six"], &["expected XpYd"]);
    check(
        &["--disaggregate", "2p2d", "--replicas", "8"],
        &["2p2d needs 4 replicas but the placement has 8"],
    );
    check(&["--disaggregate", "6p6d"], &["6p6d"]);
    check(&["--routing", "fastest"], &["fastest", "round-robin"]);
    check(
        &["--prefix-groups", "0", "--prefix-tokens", "100"],
        &["at least 1 group"],
    );
    check(
        &["--slo-ttft-s", "-1"],
        &["--slo-ttft-s", "expected a limit in seconds > 0"],
    );
    check(
        &["--slo-ttft-s", "1", "--slo-percentile", "0"],
        &["--slo-percentile", "(0, 100]"],
    );
    check(&["--find-max-rate"], &["--slo-ttft-s"]);
    let spec = temp_file(
        "bad-slo.toml",
        "[base]\nhardware = \"h100-sxm\"\nmodel = \"llama-3.1-8b\"\n[base.workload]\nrate_per_s = 1.0\n[base.slo]\nttft_s = 0.0\n",
    );
    fails_with(
        &["sweep", spec.to_str().unwrap()],
        &[
            "bad-slo.toml",
            "[base.slo]",
            "expected a limit in seconds > 0",
        ],
    );
    // Swap needs the host link, named by field.
    let text = shipped("hardware/h100-sxm.toml");
    let line = text
        .lines()
        .find(|l| l.starts_with("host_bandwidth_bytes_per_s"))
        .expect("h100 has a host link")
        .to_string();
    let p = temp_file("no-host-link.toml", &text.replace(&line, ""));
    fails_with(
        &[
            "simulate",
            "--hardware",
            p.to_str().unwrap(),
            "--model",
            "llama-3.1-8b",
            "--rate",
            "1",
            "--requests",
            "5",
            "--preemption",
            "swap",
        ],
        &["preemption = swap", "gpu.host_bandwidth_bytes_per_s"],
    );
    let p = temp_file(
        "negative-host-link.toml",
        &text.replace(&line, "host_bandwidth_bytes_per_s = -64e9"),
    );
    step_with_hardware(
        &std::fs::read_to_string(&p).unwrap(),
        "negative-host-link.toml",
        &["gpu.host_bandwidth_bytes_per_s"],
    );
}

#[test]
fn reference_rows_with_bad_length_datasets_are_rejected() {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/published.toml"),
    )
    .unwrap();
    let start = shipped.find("[class.").unwrap();
    let classes = &shipped[start..start + shipped[start..].find("[[row]]").unwrap()];
    let row = |lengths: &str, prompt: u32| {
        classes.to_string()
            + &format!(
                "[[row]]\nid = \"r\"\nfamily = \"f\"\nhardware = \"b200-hgx\"\nmodel = \"llama-2-70b\"\n\
             metric = \"throughput_output_tokens_per_s\"\n\
             scenario = {{ kind = \"offline\", prompt_tokens = {prompt}, output_tokens = 294, \
             requests = 100, lengths = \"{lengths}\" }}\n\
             published = 1.0\nunit = \"tokens/s\"\n\
             date = \"d\"\nsource = \"s\"\n"
            )
    };
    // The stated mean prompt must agree with the dataset's (222.3 tokens).
    let p = temp_file("ref-mean.toml", &row("mlperf-llama2-70b", 300));
    fails_with(
        &["validate", "--reference", p.to_str().unwrap()],
        &[
            "ref-mean.toml",
            "row r",
            "prompt_tokens = 300",
            "222.3",
            "within 5%",
        ],
    );
    let p = temp_file("ref-name.toml", &row("no-such-set", 222));
    fails_with(
        &["validate", "--reference", p.to_str().unwrap()],
        &["ref-name.toml", "no-such-set", "mlperf-llama2-70b"],
    );
    let csv = temp_file("bad-lengths.csv", "prompt_tokens,output_tokens\n222,x\n");
    let p = temp_file("ref-file.toml", &row(csv.to_str().unwrap(), 222));
    fails_with(
        &["validate", "--reference", p.to_str().unwrap()],
        &["bad-lengths.csv:2", "output_tokens", "whole number"],
    );
}

#[test]
fn bad_sessions_and_offload_are_refused_with_the_field() {
    let sim = |extra: &[&str]| {
        let mut a = vec![
            "simulate",
            "--hardware",
            "a100-sxm",
            "--model",
            "llama-3.1-8b",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let bad = temp_file(
        "bad-session.jsonl",
        "{\"turns\": [{\"input_tokens\": 5}]}\n",
    );
    let bad = bad.to_str().unwrap();
    for (extra, needles) in [
        (
            &["--session-file", bad][..],
            &["bad-session.jsonl:1", "output_tokens"][..],
        ),
        (&["--session-file", "missing.jsonl"], &["missing.jsonl"]),
        (&["--sessions", "3"], &["sessions start at rate_per_s"]),
        (
            &["--sessions", "3", "--rate", "1", "--think-s", "-1"],
            &["--think-s"],
        ),
        (
            &["--sessions", "3", "--rate", "1", "--session-turns", "0"],
            &["--session-turns"],
        ),
        (
            &["--sessions", "3", "--rate", "1", "--kv-offload"],
            &["gpu.host_memory_bytes"],
        ),
        (
            &["--sessions", "3", "--concurrency", "2"],
            &["--concurrency"],
        ),
    ] {
        let args = sim(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, needles);
    }
}
