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
    // Fifteen other requests of 370,000 prompt and 20,000 output tokens arrive together
    // meanwhile on the same replica (8 GB200 GPUs: 5.7 M tokens of KV room) and outgrow it,
    // pushing A's idle context out of HBM: without offload A's second turn recomputes its
    // whole prompt, with it the context comes back over NVLink-C2C.
    let context = 390_000;
    let mut lines = vec![session(0.0, &[(context, 1, 0.0), (1000, 1, 10_000.0)])];
    lines.extend((1..=15).map(|_| session(1.0, &[(370_000, 20_000, 0.0)])));
    let crowded = sessions_file("offload-crowded.jsonl", &lines);
    let alone = sessions_file("offload-alone.jsonl", &lines[..1]);
    // Requests: first turns by start (A = 0, the others 1..=15), then A's second turn (16).
    let second = 16;
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
    // 225 GB/s share of NVLink-C2C. A token's KV: 8 KV heads x 64 x (K, V) in 16 bits on 72
    // layers, split over 8 GPUs; half the layers keep only a 128-token window, counted (as the
    // KV pool counts them) at a sequence of the 400,000-token limit.
    let per_gpu = 8.0 * 64.0 * 2.0 * 2.0 * 72.0 / 8.0;
    let share = (36.0 + 36.0 * 128.0 / 400_000.0) / 72.0;
    approx::assert_relative_eq!(
        on.system.kv_bytes_per_cached_token_per_device(),
        per_gpu * share,
        max_relative = 1e-12
    );
    let load_s = 390_000.0 * per_gpu * share / 225e9;
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

#[test]
fn a_turn_reaches_the_engine_its_think_time_and_the_stack_after_the_last_token_and_reuses_the_context(
) {
    // Two sessions of three turns on one replica; the second starts while the first thinks.
    let file = sessions_file(
        "turns.jsonl",
        &[
            session(0.0, &[(5000, 40, 0.0), (700, 30, 2.5), (900, 20, 1.0)]),
            session(0.5, &[(3000, 10, 0.0), (100, 10, 4.0)]),
        ],
    );
    let r = run(&file, false, true);
    let q = &r.outcome.requests;
    // Order: first turns (0, 1), then session 0's later turns (2, 3), then session 1's (4).
    assert_eq!(
        q.iter().map(|x| x.prompt_tokens).collect::<Vec<_>>(),
        [5000, 3000, 5740, 6670, 3110]
    );
    // Between a turn's last token and the next turn's arrival at the engine: the think time,
    // and the profile's network and API stack both ways (GB200 NVL72's [frontend]: a 50 ms
    // round trip, 100 ms of connection round trips and 50 ms of API time, 0.357 ms per token).
    let f = r.system.hardware.frontend.as_ref().unwrap();
    let stack = f.network_rtt_s * 3.0 + f.request_overhead_s + f.token_overhead_s;
    approx::assert_abs_diff_eq!(stack, 0.200357, epsilon = 1e-9);
    for (turn, previous, think) in [(2, 0, 2.5), (3, 2, 1.0), (4, 1, 4.0)] {
        approx::assert_abs_diff_eq!(
            q[turn].arrival_s,
            q[previous].completion_s + think + stack,
            epsilon = 1e-8
        );
        // The previous context's whole 16-token blocks come from the cache: its prompt and
        // outputs but the last output token, whose KV was never computed.
        let context = q[previous].prompt_tokens + q[previous].output_tokens - 1;
        assert_eq!(
            q[turn].cached_prompt_tokens,
            context / 16 * 16,
            "turn {turn}"
        );
    }
    assert_eq!(q[0].cached_prompt_tokens + q[1].cached_prompt_tokens, 0);
}

#[test]
fn generated_sessions_grow_to_the_context_limit_and_say_so() {
    let s = Scenario {
        hardware: "gb200-nvl72".into(),
        model: "gpt-5.3-codex".into(),
        overrides: Vec::new(),
        serve: ServeSpec {
            routing: Routing::PrefixAffinity,
            kv_offload: true,
            ..ServeSpec::default()
        },
        workload: WorkloadSpec {
            rate_per_s: Some(0.05),
            sessions: Some(4),
            prompt_tokens: infersim::scenario::LengthText::Tokens(60_000),
            output_tokens: infersim::scenario::LengthText::Tokens(500),
            session_turns: infersim::scenario::LengthText::Tokens(80),
            turn_input_tokens: infersim::scenario::LengthText::Tokens(6_000),
            ..WorkloadSpec::default()
        },
        record_timeline: false,
        keep_records: true,
    };
    let r = s.run().unwrap();
    // 60,000 + 6,500 per turn: the 54th turn would pass 400,000 tokens.
    let longest = r
        .outcome
        .requests
        .iter()
        .map(|q| q.prompt_tokens)
        .max()
        .unwrap();
    assert!(longest > 390_000 && longest <= 400_000, "{longest}");
    assert_eq!(r.summary.requests, 4 * 53);
    let w = r
        .warnings
        .iter()
        .find(|w| w.kind == "session_turns_dropped")
        .unwrap();
    assert_eq!(w.count, 4 * (80 - 53));
}
