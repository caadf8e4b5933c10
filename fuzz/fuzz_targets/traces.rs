//! Request-trace parsing, then serving the parsed requests under a serving policy picked from
//! the input (routing, priority, preemption, prefix caching, disaggregation, KV room): any input
//! either fails with an error or completes every request with causal times.
#![no_main]

use infersim::cost::{ConstantCost, CostModel};
use infersim::engine::{
    run, Disaggregation, EngineConfig, Loop, PreemptionMode, Priority, Routing, ServingPolicy,
};
use infersim::workload::{parse_trace, PromptPrefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut rows) = parse_trace("fuzz.csv", text) else {
        return;
    };
    // Keep each run short: a million-token output is a valid trace row but a million
    // iterations, which would stall the fuzzer rather than test anything new.
    rows.truncate(64);
    for r in &mut rows {
        r.output_tokens = r.output_tokens.min(4096);
    }
    // Policy bits from the input's checksum, so the fuzzer explores them along with the text.
    let h = data
        .iter()
        .fold(0u32, |a, &b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    if h & 1 == 1 {
        for (i, r) in rows.iter_mut().enumerate() {
            r.prefix = Some(PromptPrefix {
                group: i as u32 % 3,
                tokens: r.prompt_tokens / 2,
            });
        }
    }
    let policy = ServingPolicy {
        routing: [
            Routing::RoundRobin,
            Routing::LeastOutstanding,
            Routing::LeastKv,
            Routing::PrefixAffinity,
        ][(h >> 1) as usize % 4],
        priority: if h & 8 == 0 { Priority::Decode } else { Priority::Prefill },
        preemption: if h & 16 == 0 {
            PreemptionMode::Recompute
        } else {
            PreemptionMode::Swap
        },
        swap_s_per_token: 1e-6,
        prefix_caching: h & 32 == 0,
        disaggregation: (h & 64 != 0).then_some(Disaggregation {
            prefill_instances: 1,
            transfer_s_per_token: 1e-6,
            transfer_latency_s: 1e-4,
        }),
    };
    let cost = ConstantCost {
        per_step_s: 0.01,
        per_token_s: 1e-6,
    };
    let cfg = EngineConfig {
        instances: 2,
        kv_tokens_per_instance: if h & 128 == 0 { 1 << 20 } else { 1 << 14 },
        max_batch: 16,
        max_batched_tokens: 2048,
        block_tokens: 16,
        speculative: None,
        policy,
    };
    if let Ok(out) = run(&rows, &cost as &dyn CostModel, cfg, Loop::Open) {
        assert_eq!(out.requests.len(), rows.len());
        for r in &out.requests {
            assert!(r.arrival_s <= r.first_token_s + 1e-9 && r.first_token_s <= r.completion_s);
        }
    }
});
