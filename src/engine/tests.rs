//! Engine tests: hand-computed runs under a constant cost model.

use super::*;
use crate::workload::RequestSpec;

mod basics {
    use super::*;
    use crate::cost::ConstantCost;
    use approx::assert_relative_eq;

    const TEN_MS: ConstantCost = ConstantCost {
        per_step_s: 0.010,
        per_token_s: 0.0,
    };

    fn cfg(max_batch: u32, budget: u32, kv_tokens: u64) -> EngineConfig {
        EngineConfig {
            instances: 1,
            kv_tokens_per_instance: kv_tokens,
            max_batch,
            max_batched_tokens: budget,
            block_tokens: 16,
            speculative: None,
            policy: ServingPolicy::default(),
        }
    }

    fn req(arrival_s: f64, prompt: u32, output: u32) -> RequestSpec {
        RequestSpec::new(arrival_s, prompt, output)
    }

    #[test]
    fn lone_request_by_hand() {
        // Prefill in one 10 ms step yields token 1; four decode steps yield tokens 2-5.
        let out = run(
            &[req(0.0, 100, 5)],
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        let r = out.requests[0];
        assert_relative_eq!(r.first_token_s, 0.010, max_relative = 1e-9);
        assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
        assert_eq!(out.itl_s.count(), 4);
        assert!((out.itl_s.min() - 0.010).abs() < 1e-9 && (out.itl_s.max() - 0.010).abs() < 1e-9);
        assert_eq!(out.steps, 5);
        // Decode steps 2 to 4 run at once; the last one stays an ordinary iteration.
        assert_eq!(out.skipped_steps, 3);
        let stepped = run_stepwise(
            &[req(0.0, 100, 5)],
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        assert_eq!(stepped.skipped_steps, 0);
        assert_eq!(stepped.requests, out.requests);
    }

    #[test]
    fn batch_limit_queues_the_second_request() {
        let out = run(
            &[req(0.0, 100, 5), req(0.0, 100, 5)],
            &TEN_MS,
            cfg(1, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        assert_relative_eq!(out.requests[1].first_token_s, 0.060, max_relative = 1e-9);
        assert_relative_eq!(out.requests[1].completion_s, 0.100, max_relative = 1e-9);
    }

    #[test]
    fn batched_requests_share_steps() {
        let out = run(
            &[req(0.0, 100, 5), req(0.0, 100, 5)],
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        for r in &out.requests {
            assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
        }
        assert_eq!(out.steps, 5);
        assert_eq!(out.batch_sequences_sum, 10);
    }

    #[test]
    fn chunked_prefill_spreads_a_long_prompt() {
        // 5000 tokens at 2048 per step: chunks of 2048, 2048, 904; the first token ends step 3.
        let out = run(
            &[req(0.0, 5000, 2)],
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Open,
        )
        .unwrap();
        assert_relative_eq!(out.requests[0].first_token_s, 0.030, max_relative = 1e-9);
        assert_eq!(out.batch_tokens_sum, 5000 + 1);
    }

    #[test]
    fn without_chunking_a_prompt_waits_for_room_and_holds_the_queue() {
        // 10 ms a step plus 0.1 ms a token; budget 100; prompts 60, 50 and 30 arrive together.
        // Whole prompts: step 1 computes request 0's 60 (16 ms); request 1's 50 does not fit
        // the 40 left, and request 2's 30, which would, waits behind it. Step 2: one decode
        // token + 50 + 30 = 81 (18.1 ms). Chunked: step 1 computes 60 + 40 of request 1
        // (20 ms), step 2 one decode token + 10 + 30 = 41 (14.1 ms).
        let cost = ConstantCost {
            per_step_s: 0.010,
            per_token_s: 0.0001,
        };
        let specs = [req(0.0, 60, 5), req(0.0, 50, 5), req(0.0, 30, 5)];
        let mut whole_cfg = cfg(8, 100, 10_000);
        whole_cfg.policy.chunked_prefill = false;
        let firsts = |c| -> Vec<f64> {
            let out = run(&specs, &cost, c, Loop::Open).unwrap();
            out.requests.iter().map(|r| r.first_token_s).collect()
        };
        let pairs = [
            (firsts(whole_cfg), [0.016, 0.0341, 0.0341]),
            (firsts(cfg(8, 100, 10_000)), [0.020, 0.0341, 0.0341]),
        ];
        for (got, want) in pairs {
            for (g, w) in got.iter().zip(want) {
                // Event times are whole nanoseconds.
                assert_relative_eq!(*g, w, max_relative = 1e-6);
            }
        }
    }

    #[test]
    fn without_chunking_a_prompt_longer_than_the_budget_is_still_split() {
        let mut c = cfg(8, 2048, 10_000);
        c.policy.chunked_prefill = false;
        let out = run(&[req(0.0, 5000, 2)], &TEN_MS, c, Loop::Open).unwrap();
        assert_relative_eq!(out.requests[0].first_token_s, 0.030, max_relative = 1e-9);
    }

    #[test]
    fn kv_pressure_preempts_and_everything_still_completes() {
        // 4 requests needing up to 10 blocks each share 24 blocks of KV cache.
        let specs: Vec<_> = (0..4).map(|i| req(0.0, 60 + i, 100)).collect();
        let out = run(&specs, &TEN_MS, cfg(8, 2048, 24 * 16), Loop::Open).unwrap();
        assert!(out.requests.iter().map(|r| r.preemptions).sum::<u32>() > 0);
        for r in &out.requests {
            assert!(r.completion_s.is_finite() && r.first_token_s <= r.completion_s);
        }
        assert_eq!(out.itl_s.count(), 4 * 99);
    }

    #[test]
    fn request_larger_than_the_cache_is_refused_up_front() {
        let e = run(
            &[req(0.0, 1000, 100)],
            &TEN_MS,
            cfg(8, 2048, 512),
            Loop::Open,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("needs 1099 tokens of KV cache"),
            "{e}"
        );
    }

    #[test]
    fn closed_loop_issues_the_next_request_on_completion() {
        let specs = vec![req(0.0, 100, 5); 4];
        let out = run(
            &specs,
            &TEN_MS,
            cfg(8, 2048, 10_000),
            Loop::Closed { concurrency: 2 },
        )
        .unwrap();
        assert_relative_eq!(out.requests[2].arrival_s, 0.050, max_relative = 1e-9);
        assert_relative_eq!(out.requests[3].completion_s, 0.100, max_relative = 1e-9);
    }

    #[test]
    fn requests_are_routed_round_robin() {
        let specs = vec![req(0.0, 10, 2); 6];
        let mut c = cfg(8, 2048, 10_000);
        c.instances = 3;
        let out = run(&specs, &TEN_MS, c, Loop::Open).unwrap();
        let inst: Vec<u32> = out.requests.iter().map(|r| r.instance).collect();
        assert_eq!(inst, vec![0, 1, 2, 0, 1, 2]);
    }
}

mod speculative {
    use super::*;
    use crate::cost::ConstantCost;
    use approx::assert_relative_eq;

    /// One request under speculative decoding at 10 ms per iteration; returns its record and
    /// the inter-token gaps.
    fn serve(
        gamma: u32,
        expected_tokens: f64,
        prompt: u32,
        output: u32,
    ) -> (RequestRecord, crate::sketch::Sketch) {
        let cfg = EngineConfig {
            instances: 1,
            kv_tokens_per_instance: 10_000,
            max_batch: 8,
            max_batched_tokens: 2048,
            block_tokens: 16,
            speculative: Some(SpecConfig {
                gamma,
                expected_tokens,
            }),
            policy: ServingPolicy::default(),
        };
        let cost = ConstantCost {
            per_step_s: 0.010,
            per_token_s: 0.0,
        };
        let spec = RequestSpec::new(0.0, prompt, output);
        let out = run(&[spec], &cost, cfg, Loop::Open).unwrap();
        (out.requests[0], out.itl_s)
    }

    #[test]
    fn verification_steps_yield_the_expected_tokens() {
        // gamma 1 with every draft accepted: 2 tokens per verification step. Prefill yields token
        // 1 at 10 ms; the other 8 come 2 per step, done at 50 ms; gaps spread to 5 ms each.
        let (r, itl) = serve(1, 2.0, 100, 9);
        assert_relative_eq!(r.first_token_s, 0.010, max_relative = 1e-9);
        assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
        assert_eq!(itl.count(), 8);
        assert!((itl.min() - 0.005).abs() < 1e-9 && (itl.max() - 0.005).abs() < 1e-9);
    }

    #[test]
    fn fractional_expectations_are_paid_out_exactly_on_average() {
        // E = 1.75: prefill yields token 1, then 4 verification steps pay out exactly 7 more.
        let (r, _) = serve(2, 1.75, 10, 8);
        assert_relative_eq!(r.completion_s, 0.050, max_relative = 1e-9);
    }
}

mod policies {
    use super::*;
    use crate::cost::ConstantCost;
    use crate::workload::PromptPrefix;
    use approx::assert_relative_eq;

    /// 10 ms per iteration plus 0.1 ms per computed token.
    const COST: ConstantCost = ConstantCost {
        per_step_s: 0.010,
        per_token_s: 0.000_1,
    };

    fn cfg(instances: u32, kv_tokens: u64, policy: ServingPolicy) -> EngineConfig {
        EngineConfig {
            instances,
            kv_tokens_per_instance: kv_tokens,
            max_batch: 8,
            max_batched_tokens: 2048,
            block_tokens: 16,
            speculative: None,
            policy,
        }
    }

    fn with_prefix(mut r: RequestSpec, group: u32, tokens: u32) -> RequestSpec {
        r.prefix = Some(PromptPrefix { group, tokens });
        r
    }

    #[test]
    fn a_cached_prefix_skips_its_prefill() {
        // Both prompts are 100 tokens, the first 70 shared: 64 of them (4 whole blocks) cached.
        let specs = [
            with_prefix(RequestSpec::new(0.0, 100, 2), 7, 70),
            with_prefix(RequestSpec::new(1.0, 100, 2), 7, 70),
        ];
        let out = run(
            &specs,
            &COST,
            cfg(1, 10_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        let (a, b) = (out.requests[0], out.requests[1]);
        assert_eq!((a.cached_prompt_tokens, b.cached_prompt_tokens), (0, 64));
        // Prefill of 100 tokens: 10 + 10 ms; of the 36 left: 10 + 3.6 ms.
        assert_relative_eq!(a.first_token_s, 0.020, max_relative = 1e-6);
        assert_relative_eq!(b.first_token_s - b.arrival_s, 0.0136, max_relative = 1e-6);
        let off = ServingPolicy {
            prefix_caching: false,
            ..ServingPolicy::default()
        };
        let out = run(&specs, &COST, cfg(1, 10_000, off), Loop::Open).unwrap();
        assert_eq!(out.requests[1].cached_prompt_tokens, 0);
        assert_relative_eq!(out.requests[1].first_token_s, 1.020, max_relative = 1e-6);
    }

    #[test]
    fn unused_prefixes_are_evicted_for_room() {
        // 12 blocks: each request needs 7 (100 + 9 tokens) and leaves 4 cached; the third
        // group's request only fits once the first group's entry is evicted.
        let specs: Vec<_> = (0..3)
            .map(|g| with_prefix(RequestSpec::new(f64::from(g), 100, 10), g, 64))
            .collect();
        let out = run(
            &specs,
            &COST,
            cfg(1, 12 * 16, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        assert!(out.prefix_evictions >= 1, "{}", out.prefix_evictions);
        assert!(out.requests.iter().all(|r| r.completion_s.is_finite()));
    }

    #[test]
    fn disaggregated_prefill_hands_over_to_a_decode_instance() {
        let policy = ServingPolicy {
            disaggregation: Some(Disaggregation {
                prefill_instances: 1,
                transfer_s_per_token: 1e-5,
                transfer_latency_s: 0.001,
            }),
            ..ServingPolicy::default()
        };
        let out = run(
            &[RequestSpec::new(0.0, 100, 3)],
            &COST,
            cfg(2, 10_000, policy),
            Loop::Open,
        )
        .unwrap();
        let r = out.requests[0];
        // Prefill on instance 0: 10 + 10 ms. Transfer: 1 ms + 100 x 10 us = 2 ms. Two decode
        // steps on instance 1 of 10.1 ms each.
        assert_relative_eq!(r.first_token_s, 0.020, max_relative = 1e-6);
        assert_relative_eq!(
            r.completion_s,
            0.020 + 0.002 + 2.0 * 0.0101,
            max_relative = 1e-6
        );
        assert_eq!(r.instance, 1);
        assert_eq!(out.kv_transfers, 1);
        assert!(out.busy_s[0] > 0.0 && out.busy_s[1] > 0.0);
    }

    /// Four requests of 60-63 prompt and 100 output tokens at once, on one instance with room
    /// for 24 blocks of 16 tokens: all four prompts fit, only two whole requests do.
    fn kv_pressure() -> Vec<RequestSpec> {
        (0..4).map(|i| RequestSpec::new(0.0, 60 + i, 100)).collect()
    }

    fn under_kv_pressure(policy: ServingPolicy) -> Outcome {
        run(&kv_pressure(), &COST, cfg(1, 24 * 16, policy), Loop::Open).unwrap()
    }

    #[test]
    fn swapping_moves_kv_instead_of_recomputing_it() {
        let recompute = under_kv_pressure(ServingPolicy::default());
        let swap = |s_per_token: f64| {
            under_kv_pressure(ServingPolicy {
                preemption: PreemptionMode::Swap,
                swap_s_per_token: s_per_token,
                ..ServingPolicy::default()
            })
        };
        let fast = swap(1e-7);
        assert!(fast.swapped_tokens > 0);
        assert_eq!(recompute.swapped_tokens, 0);
        // Swapped sequences resume where they were: fewer tokens computed.
        assert!(fast.batch_tokens_sum < recompute.batch_tokens_sum);
        // A slower host link makes the same swaps cost more.
        let slow = swap(1e-3);
        assert_eq!(slow.swapped_tokens, fast.swapped_tokens);
        assert!(slow.end_s > fast.end_s);
    }

    #[test]
    fn reserving_whole_requests_admits_fewer_and_never_preempts() {
        // Each request needs 11 blocks to finish, so two fit whole at a time.
        let recompute = under_kv_pressure(ServingPolicy::default());
        let never = under_kv_pressure(ServingPolicy {
            preemption: PreemptionMode::Never,
            ..ServingPolicy::default()
        });
        assert!(recompute.requests.iter().any(|r| r.preemptions > 0));
        assert!(never.requests.iter().all(|r| r.preemptions == 0));
        // Two at a time: the last two wait for the first two to finish.
        let (a, c) = (never.requests[0], never.requests[2]);
        assert!(c.first_token_s >= a.completion_s, "{c:?} {a:?}");
        // Every token computed once.
        let tokens: u64 = kv_pressure()
            .iter()
            .map(|s| u64::from(s.prompt_tokens + s.output_tokens - 1))
            .sum();
        assert_eq!(never.batch_tokens_sum, tokens);
    }

    #[test]
    fn prefill_priority_trades_inter_token_gaps_for_first_tokens() {
        // A long decode is running when short prompts arrive one by one.
        let mut specs = vec![RequestSpec::new(0.0, 100, 200)];
        specs.extend((0..20).map(|i| RequestSpec::new(0.1 + 0.05 * f64::from(i), 1500, 2)));
        let decode = run(
            &specs,
            &COST,
            cfg(1, 100_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        let p = ServingPolicy {
            priority: Priority::Prefill,
            ..ServingPolicy::default()
        };
        let prefill = run(&specs, &COST, cfg(1, 100_000, p), Loop::Open).unwrap();
        let max_gap = |o: &Outcome| o.itl_s.max();
        let ttft = |o: &Outcome| {
            o.requests[1..]
                .iter()
                .map(|r| r.first_token_s - r.arrival_s)
                .sum::<f64>()
        };
        assert!(ttft(&prefill) < ttft(&decode));
        assert!(max_gap(&prefill) > max_gap(&decode));
    }

    #[test]
    fn least_outstanding_routing_avoids_the_busy_instance() {
        // Request 0 is long; round-robin sends request 2 to its instance anyway.
        let specs = [
            RequestSpec::new(0.0, 10, 500),
            RequestSpec::new(0.0, 10, 2),
            RequestSpec::new(0.5, 10, 2),
        ];
        let rr = run(
            &specs,
            &COST,
            cfg(2, 10_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        assert_eq!(rr.requests[2].instance, 0);
        for routing in [Routing::LeastOutstanding, Routing::LeastKv] {
            let p = ServingPolicy {
                routing,
                ..ServingPolicy::default()
            };
            let out = run(&specs, &COST, cfg(2, 10_000, p), Loop::Open).unwrap();
            assert_eq!(out.requests[2].instance, 1, "{routing:?}");
        }
    }

    #[test]
    fn prefix_affinity_keeps_a_group_on_one_instance() {
        let specs: Vec<_> = (0..12)
            .map(|i| with_prefix(RequestSpec::new(f64::from(i), 200, 2), i % 3, 160))
            .collect();
        let p = ServingPolicy {
            routing: Routing::PrefixAffinity,
            ..ServingPolicy::default()
        };
        let out = run(&specs, &COST, cfg(4, 10_000, p), Loop::Open).unwrap();
        for g in 0..3 {
            let homes: Vec<u32> = out
                .requests
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % 3 == g)
                .map(|(_, r)| r.instance)
                .collect();
            assert!(homes.windows(2).all(|w| w[0] == w[1]), "{homes:?}");
        }
        let cached = |o: &Outcome| {
            o.requests
                .iter()
                .map(|r| r.cached_prompt_tokens)
                .sum::<u32>()
        };
        let rr = run(
            &specs,
            &COST,
            cfg(4, 10_000, ServingPolicy::default()),
            Loop::Open,
        )
        .unwrap();
        // Affinity: every request after its group's first hits (9 x 160); round-robin spreads
        // each group over the instances and misses more.
        assert_eq!(cached(&out), 9 * 160);
        assert!(cached(&rr) < cached(&out));
    }
}
