//! Properties over every input surface: profiles, `--set`, traces, workload settings, sweep
//! specs, merge inputs and output paths. Whatever the input, the result is a value or an error
//! that names what it concerns; never a panic, never a value with non-finite times.

use std::path::Path;

use infersim::cost::Batch;
use infersim::placement::ParallelRequest;
use infersim::profile::catalog::hardware_from_str;
use infersim::profile::{load_hardware, load_model, Override};
use infersim::scenario::{LengthText, WorkloadSpec};
use infersim::study::sweep::{merge, Sweep};
use infersim::system::System;
use infersim::workload::parse_trace;
use proptest::prelude::*;

use super::infersim;

fn shipped(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Numbers a user might type, from the plausible to the absurd.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0.0f64..1e13).prop_map(|x| format!("{x:e}")),
        any::<f64>().prop_map(|x| format!("{x:e}")),
        Just("1e-300".to_string()),
        Just("1e308".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        any::<u64>().prop_map(|x| x.to_string()),
        any::<i64>().prop_map(|x| x.to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
    ]
}

const HW_FIELDS: &[&str] = &[
    "gpu.devices",
    "gpu.hbm_capacity_bytes",
    "gpu.hbm_bandwidth_bytes_per_s",
    "gpu.peak_flops_per_s.bf16",
    "gpu.interconnect.bandwidth_bytes_per_s",
    "gpu.interconnect.latency_s",
    "gpu.efficiency.compute",
    "gpu.efficiency.overlap",
    "gpu.overheads.kernel_s",
    "gpu.overheads.reserved_bytes",
    "power.busy_w_per_device",
    "power.idle_w_per_device",
    "price.usd_per_device_hour",
];

const MODEL_FIELDS: &[&str] = &[
    "architecture.layers",
    "architecture.hidden_size",
    "architecture.vocab_size",
    "architecture.context_window_tokens",
    "architecture.intermediate_size",
    "attention.heads",
    "attention.kv_heads",
    "attention.head_dim",
    "precision.weights",
];

fn step_times_are_finite(sys: &System) {
    let window = sys.cost_model().window();
    for b in [
        Batch::decode(8, 1000, window),
        Batch::prefill(1, 512, window),
    ] {
        let t = sys.step(&b).total_s();
        assert!(t.is_finite() && t >= 0.0, "step time {t}");
    }
}

proptest! {
    #![proptest_config(super::cases(64))]

    /// A profile with one value replaced loads and gives finite step times, or is refused
    /// naming the file and the field.
    #[test]
    fn profiles_with_any_value_load_or_name_the_field(
        field in 0..HW_FIELDS.len(),
        value in number(),
    ) {
        let path = HW_FIELDS[field];
        let set = format!("hardware.{path}={value}");
        let text = shipped("hardware/h100-sxm.toml");
        let Ok(o) = Override::parse(&set) else { return Ok(()) };
        match hardware_from_str("h.toml".into(), &text, &[o]) {
            Ok(hw) => {
                let model = load_model("llama-3.2-1b", &[]).unwrap();
                if let Ok(sys) = System::new(hw, model, ParallelRequest::default()) {
                    step_times_are_finite(&sys);
                }
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(m.contains("h.toml"), "{m}");
                let leaf = path.rsplit('.').next().unwrap();
                prop_assert!(m.contains(leaf), "{set}: {m}");
            }
        }
    }

    /// Any `--set` text parses and applies, or is refused naming the override.
    #[test]
    fn any_set_applies_or_is_refused_by_name(
        target in prop_oneof![Just("hardware."), Just("model."), Just(""), Just("workload.")],
        field in prop_oneof![
            (0..HW_FIELDS.len()).prop_map(|i| HW_FIELDS[i].to_string()),
            (0..MODEL_FIELDS.len()).prop_map(|i| MODEL_FIELDS[i].to_string()),
            "[a-z_.]{0,20}",
        ],
        eq in prop_oneof![Just("="), Just(""), Just("==")],
        value in prop_oneof![number(), "[ -~]{0,12}"],
    ) {
        let set = format!("{target}{field}{eq}{value}");
        let applied = Override::parse(&set).and_then(|o| {
            let o = [o];
            load_hardware("h100-sxm", &o).and_then(|_| load_model("llama-3.2-1b", &o))
        });
        if let Err(e) = applied {
            let m = e.to_string();
            prop_assert!(
                m.contains("--set") || m.contains(field.as_str()) || m.contains("invalid profile"),
                "{set}: {m}"
            );
        }
    }

    /// Any trace text parses, or is refused at a line of the file.
    #[test]
    fn traces_parse_or_name_their_line(
        rows in prop::collection::vec(
            (number(), number(), number(), prop_oneof![Just(","), Just(";"), Just(",,")]),
            0..6,
        ),
        header in any::<bool>(),
    ) {
        let mut text = String::new();
        if header {
            text.push_str("arrived_at,num_prefill_tokens,num_decode_tokens\n");
        }
        for (a, p, o, sep) in &rows {
            text.push_str(&format!("{a}{sep}{p}{sep}{o}\n"));
        }
        match parse_trace("t.csv", &text) {
            Ok(parsed) => {
                for r in parsed {
                    prop_assert!(r.arrival_s.is_finite() && r.arrival_s >= 0.0);
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("t.csv"), "{e}"),
        }
    }

    /// Any workload settings build and draw their requests, or are refused naming the field.
    #[test]
    fn workload_settings_draw_or_name_the_field(
        rate in prop_oneof![Just(None), (-1e3f64..1e12).prop_map(Some), Just(Some(1e-300))],
        concurrency in prop_oneof![Just(None), (0u32..100).prop_map(Some), Just(Some(u32::MAX))],
        requests in prop_oneof![Just(None), (0usize..50).prop_map(Some), Just(Some(usize::MAX))],
        burstiness in prop_oneof![0.0f64..10.0, Just(1e300), Just(f64::NAN)],
        gamma_arrivals in any::<bool>(),
        prompt in prop_oneof![
            "[0-9]{1,12}",
            Just("uniform:1:4294967295".to_string()),
            Just("lognormal:1e300:1e300".to_string()),
            "[a-z:0-9.]{0,16}",
        ],
    ) {
        let w = WorkloadSpec {
            rate_per_s: rate,
            concurrency,
            requests,
            burstiness,
            arrival: if gamma_arrivals {
                infersim::scenario::ArrivalKind::Gamma
            } else {
                infersim::scenario::ArrivalKind::Poisson
            },
            prompt_tokens: LengthText::Text(prompt),
            output_tokens: LengthText::Text("16".into()),
            ..WorkloadSpec::default()
        };
        match w.build() {
            Ok((workload, _)) => {
                match workload.generate(1, 131_072) {
                    Ok((reqs, _)) => prop_assert_eq!(reqs.len(), workload.requests),
                    Err(e) => prop_assert!(e.to_string().starts_with("invalid "), "{e}"),
                }
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(m.starts_with("invalid "), "{m}");
            }
        }
    }

    /// Any sweep spec assembled from plausible and broken pieces parses and passes its
    /// pre-run check, or is refused naming the spec file or the field.
    #[test]
    fn sweep_specs_check_or_name_the_problem(
        model in prop_oneof![Just("llama-3.2-1b"), Just("nope")],
        key in prop_oneof![Just("concurrency"), Just("concurency"), Just("requests")],
        value in number(),
        path in prop_oneof![
            Just("workload.requests"),
            Just("serve.max_batch"),
            Just("hardware.gpu.devices"),
            Just("hardware.gpu.hbm_bandwidth_bytes_per_s"),
            Just("serve.gamma"),
            Just("nowhere.x"),
        ],
        values in prop::collection::vec(number(), 1..4),
    ) {
        let text = format!(
            "[base]\nhardware = \"h100-sxm\"\nmodel = \"{model}\"\n[base.workload]\nrate_per_s = 1.0\n{key} = {value}\n[[axis]]\npath = \"{path}\"\nvalues = [{}]\n",
            values.join(", ")
        );
        let checked = Sweep::parse("s.toml", &text, std::path::PathBuf::new())
            .and_then(|s| s.check_before_run(&s.shard(None)).map(|()| s));
        match checked {
            Ok(s) => prop_assert!(!s.points.is_empty()),
            Err(e) => {
                let m = e.to_string();
                prop_assert!(m.contains("s.toml") || m.contains("invalid "), "{m}");
            }
        }
    }
}

/// Two shards of a small sweep, as `sweep --shard K/2 --out` writes them (built once).
fn shard_pair() -> &'static (String, String, String) {
    static PAIR: std::sync::OnceLock<(String, String, String)> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        let d = super::scratch("inputs-merge");
        let spec = d.join("s.toml");
        std::fs::write(
            &spec,
            "[base]\nhardware = \"h100-sxm\"\nmodel = \"llama-3.2-1b\"\n[base.workload]\nconcurrency = 2\nrequests = 4\nprompt_tokens = 32\noutput_tokens = 4\n[[axis]]\npath = \"serve.max_batch\"\nvalues = [1, 0, 2, 3, 0]\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = infersim(args);
            String::from_utf8(out.stdout).unwrap()
        };
        let s = spec.to_str().unwrap();
        let whole = run(&["sweep", s, "--quiet", "--format", "csv"]);
        let k0 = run(&["sweep", s, "--quiet", "--format", "csv", "--shard", "0/2"]);
        let k1 = run(&["sweep", s, "--quiet", "--format", "csv", "--shard", "1/2"]);
        (whole, k0, k1)
    })
}

proptest! {
    #![proptest_config(super::cases(64))]

    /// A shard cut anywhere, or with a byte changed, never merges into a plausible file: the
    /// merge is refused naming the damaged shard, or (a change inside a cell's text) gives rows
    /// with the same points.
    #[test]
    fn damaged_shards_are_refused_by_name(
        which in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        truncate in any::<bool>(),
    ) {
        let (whole, k0, k1) = shard_pair();
        prop_assert_eq!(
            merge(&[("a".into(), k0.clone()), ("b".into(), k1.clone())]).unwrap(),
            whole.clone()
        );
        let victim = if which { k0 } else { k1 };
        let damaged = if truncate {
            victim[..victim.floor_char_boundary(cut.index(victim.len()))].to_string()
        } else {
            let mut bytes = victim.clone().into_bytes();
            let i = flip.index(bytes.len());
            bytes[i] = byte;
            match String::from_utf8(bytes) { Ok(t) => t, Err(_) => return Ok(()) }
        };
        let (a, b) = if which { (damaged.clone(), k1.clone()) } else { (k0.clone(), damaged.clone()) };
        match merge(&[("a".into(), a), ("b".into(), b)]) {
            Err(e) => {
                let m = e.to_string();
                prop_assert!(m.starts_with("a:") || m.starts_with("b:") || m.contains("merge"), "{m}");
            }
            Ok(out) => {
                prop_assert!(!truncate || damaged == *victim, "a cut shard merged");
                let points = |t: &str| t.lines().filter(|l| l.as_bytes().first().is_some_and(u8::is_ascii_digit)).count();
                prop_assert_eq!(points(&out), points(whole));
            }
        }
    }
}

/// A path naming a folder by a trailing `/.` or `/` is refused before the run (exit 2), not
/// found unwritable after it.
#[test]
fn folder_paths_are_refused_up_front() {
    let d = super::scratch("inputs-folder-paths");
    for tail in ["missing/.", "missing/", "."] {
        let path = format!("{}/{tail}", d.display());
        let out = infersim(&[
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.2-1b",
            "--rate",
            "5",
            "--requests",
            "4",
            "--requests-out",
            &path,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {err}");
        assert!(err.contains("--requests-out"), "{err}");
    }
}

proptest! {
    #![proptest_config(super::cases(12))]

    /// Any output path is written whole, or refused before the run naming the flag; no
    /// temporary file is ever left behind.
    #[test]
    fn output_paths_are_written_or_refused(
        sub in prop_oneof![Just(""), Just("missing/"), Just("a/../"), Just("./")],
        name in "[a-zA-Z0-9 _-]{0,10}",
        ext in prop_oneof![Just(""), Just(".csv"), Just(".svg"), Just(".")],
        flag in prop_oneof![Just("--requests-out"), Just("--plot-out"), Just("--trace-out")],
    ) {
        let d = super::scratch("inputs-paths");
        std::fs::create_dir_all(d.join("a")).unwrap();
        let path = d.join(format!("{sub}{name}{ext}"));
        let out = infersim(&[
            "simulate", "--hardware", "h100-sxm", "--model", "llama-3.2-1b", "--rate", "5",
            "--requests", "4", flag, path.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => prop_assert!(path.is_file(), "{path:?}"),
            Some(2) => prop_assert!(err.contains(flag), "{err}"),
            c => prop_assert!(false, "exit {c:?}: {err}"),
        }
        let left = std::fs::read_dir(&d).unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        prop_assert_eq!(left, 0);
    }
}
