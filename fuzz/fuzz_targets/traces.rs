//! Request-trace parsing, then serving the parsed requests: any input either fails with an
//! error or completes every request with causal times.
#![no_main]

use infersim::cost::{ConstantCost, CostModel};
use infersim::engine::{ServingPolicy, run, EngineConfig, Loop};
use infersim::workload::parse_trace;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut rows) = parse_trace("fuzz.csv", text) else {
        return;
    };
    rows.truncate(64);
    let cost = ConstantCost {
        per_step_s: 0.01,
        per_token_s: 1e-6,
    };
    let cfg = EngineConfig {
        instances: 2,
        kv_tokens_per_instance: 1 << 20,
        max_batch: 16,
        max_batched_tokens: 2048,
        block_tokens: 16,
        speculative: None,
        policy: ServingPolicy::default(),
    };
    if let Ok(out) = run(&rows, &cost as &dyn CostModel, cfg, Loop::Open) {
        assert_eq!(out.requests.len(), rows.len());
        for r in &out.requests {
            assert!(r.arrival_s <= r.first_token_s + 1e-9 && r.first_token_s <= r.completion_s);
        }
    }
});
