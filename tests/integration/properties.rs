//! Engine invariants over random workloads: conservation, causality, determinism.

use infersim::cost::{expected_tokens_per_step, ConstantCost, CostModel};
use infersim::engine::{run, EngineConfig, Loop, SpecConfig};
use infersim::workload::RequestSpec;
use proptest::prelude::*;

fn workload() -> impl Strategy<Value = Vec<RequestSpec>> {
    prop::collection::vec((0.0f64..2.0, 1u32..3000, 1u32..200), 1..40).prop_map(|mut v| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.into_iter()
            .map(|(t, p, o)| RequestSpec {
                arrival_s: t,
                prompt_tokens: p,
                output_tokens: o,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_request_completes_once_with_causal_times(
        specs in workload(),
        max_batch in 1u32..64,
        budget in 1u32..4096,
        instances in 1u32..4,
        spare_blocks in 0u64..400,
        per_token_us in 0.0f64..50.0,
        speculative in prop::option::of((1u32..6, 0.0f64..=1.0)),
    ) {
        let cost = ConstantCost { per_step_s: 0.005, per_token_s: per_token_us * 1e-6 };
        let gamma = speculative.map_or(0, |(g, _)| u64::from(g));
        let biggest = specs.iter().map(|s| u64::from(s.prompt_tokens + s.output_tokens)).max().unwrap() + gamma;
        let cfg = EngineConfig {
            instances,
            kv_tokens_per_instance: (biggest.div_ceil(16) + spare_blocks) * 16,
            max_batch,
            max_batched_tokens: budget,
            block_tokens: 16,
            speculative: speculative.map(|(gamma, alpha)| SpecConfig {
                gamma,
                expected_tokens: expected_tokens_per_step(gamma, alpha),
            }),
        };
        let out = run(&specs, &cost as &dyn CostModel, cfg, Loop::Open).unwrap();
        prop_assert_eq!(out.requests.len(), specs.len());
        for (r, s) in out.requests.iter().zip(&specs) {
            prop_assert!(r.arrival_s <= r.first_token_s + 1e-9);
            prop_assert!(r.first_token_s <= r.completion_s);
            prop_assert!(r.completion_s.is_finite());
            prop_assert_eq!(r.output_tokens, s.output_tokens);
        }
        // One gap per output token after the first.
        let gaps: u64 = specs.iter().map(|s| u64::from(s.output_tokens - 1)).sum();
        prop_assert_eq!(out.itl_s.len() as u64, gaps);
        prop_assert!(out.itl_s.iter().all(|g| *g > 0.0));
        // Without preemption or speculation every prompt and output token is computed once.
        if speculative.is_none() && out.requests.iter().all(|r| r.preemptions == 0) {
            let tokens: u64 = specs.iter().map(|s| u64::from(s.prompt_tokens + s.output_tokens - 1)).sum();
            prop_assert_eq!(out.batch_tokens_sum, tokens);
        }
        let again = run(&specs, &cost as &dyn CostModel, cfg, Loop::Open).unwrap();
        prop_assert_eq!(out.requests, again.requests);
        prop_assert_eq!(out.itl_s, again.itl_s);
    }
}
