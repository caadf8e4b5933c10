//! Agentic sessions: turns sent on their predecessors' completion, each reusing the session's
//! kept context, and KV offload to the tier below HBM checked against bandwidth arithmetic.

use infersim::engine::Routing;
use infersim::scenario::{Run, Scenario, ServeSpec, WorkloadSpec};

/// A sessions file in the test's scratch folder.
fn sessions_file(name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// A session of `turns` (input tokens, output tokens, think s) starting at `start_s`.
fn session(start_s: f64, turns: &[(u32, u32, f64)]) -> String {
    let turns: Vec<String> = turns
        .iter()
        .map(|(i, o, t)| {
            format!("{{\"input_tokens\": {i}, \"output_tokens\": {o}, \"think_s\": {t}}}")
        })
        .collect();
    format!(
        "{{\"start_s\": {start_s}, \"turns\": [{}]}}",
        turns.join(", ")
    )
}

fn run(file: &std::path::Path, offload: bool, prefix_caching: bool) -> Run {
    Scenario {
        hardware: "gb200-nvl72".into(),
        model: "gpt-5.3-codex".into(),
        overrides: Vec::new(),
        serve: ServeSpec {
            tp: Some(8),
            replicas: Some(1),
            kv_offload: offload,
            prefix_caching,
            routing: Routing::PrefixAffinity,
            ..ServeSpec::default()
        },
        workload: WorkloadSpec {
            session_file: Some(file.to_path_buf()),
            ..WorkloadSpec::default()
        },
        record_timeline: false,
        keep_records: true,
    }
    .run()
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn grace_memory_offload_saves_the_recompute_at_the_link_s_bandwidth() {
    // Session A: a 390,000-token context, then, 10,000 s later, a turn adding 1,000 tokens.
    // Twelve other requests of 370,000 prompt and 20,000 output tokens arrive together
    // meanwhile on the same replica (8 GB200 GPUs: 4.4 M tokens of KV room) and outgrow it,
    // pushing A's idle context out of HBM: without offload A's second turn recomputes its
    // whole prompt, with it the context comes back over NVLink-C2C.
    let context = 390_000;
    let mut lines = vec![session(0.0, &[(context, 1, 0.0), (1000, 1, 10_000.0)])];
    lines.extend((1..=12).map(|_| session(1.0, &[(370_000, 20_000, 0.0)])));
    let crowded = sessions_file("offload-crowded.jsonl", &lines);
    let alone = sessions_file("offload-alone.jsonl", &lines[..1]);
    // Requests: first turns by start (A = 0, the others 1..=12), then A's second turn (13).
    let second = 13;
    let on = run(&crowded, true, true);
    let off = run(&crowded, false, true);
    let ttft = |r: &Run, i: usize| {
        let q = &r.outcome.requests[i];
        q.first_token_s - q.arrival_s
    };
    // The turn is alone on the replica when it arrives (every other turn has long finished).
    assert!(on.outcome.requests[..second]
        .iter()
        .all(|q| q.completion_s < on.outcome.requests[second].arrival_s));

    // With the context kept in HBM (A alone), and with nothing cached (prefix caching off).
    let kept = ttft(&run(&alone, false, true), 1);
    let recomputed = ttft(&run(&alone, false, false), 1);

    // Bandwidth arithmetic: the context's whole 16-token blocks (390,000 tokens, its last
    // output token's KV never computed) at the per-GPU KV bytes per token over each GPU's
    // 225 GB/s share of NVLink-C2C.
    let bytes_per_token = on.system.placement.kv_bytes_per_token_per_device;
    let load_s = 390_000.0 * bytes_per_token / 225e9;
    assert!(load_s > 0.01 && load_s < 0.1, "{load_s}");
    approx::assert_abs_diff_eq!(ttft(&on, second), kept + load_s, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(ttft(&off, second), recomputed, epsilon = 1e-6);
    assert!(
        recomputed > 20.0 * (kept + load_s),
        "{recomputed} vs {kept}"
    );
    let tier = &on.summary.kv_tiers[0];
    assert_eq!(tier.hits, 1);
    assert_eq!(tier.tokens_out, 390_000);
    assert!(off.summary.kv_tiers.is_empty());

    // Throughput: the run ends when A's second turn does, earlier by the time saved, and
    // the replica was busy for less by the recompute it skipped (the load overlaps nothing
    // but does not occupy the GPUs).
    let saved = ttft(&off, second) - ttft(&on, second);
    approx::assert_abs_diff_eq!(off.outcome.end_s - on.outcome.end_s, saved, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(
        off.outcome.busy_s[0] - on.outcome.busy_s[0],
        recomputed - kept,
        epsilon = 1e-6
    );
    let out_tokens = |r: &Run| r.summary.throughput_output_tokens_per_s * r.summary.duration_s;
    assert!(on.summary.throughput_output_tokens_per_s > off.summary.throughput_output_tokens_per_s);
    approx::assert_relative_eq!(out_tokens(&on), out_tokens(&off), max_relative = 1e-9);
}
