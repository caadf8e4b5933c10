//! Invariants over random workloads and profiles: conservation, causality, determinism, and
//! monotone cost models (more resources never slower, longer contexts never faster).

use infersim::cost::{expected_tokens_per_step, Batch, ConstantCost, CostModel};
use infersim::engine::{
    run, Disaggregation, EngineConfig, KvTier, Loop, PreemptionMode, Priority, Routing,
    ServingPolicy, SpecConfig,
};
use infersim::placement::ParallelRequest;
use infersim::profile::{load_hardware, load_model, Override};
use infersim::system::System;
use infersim::workload::{PromptPrefix, RequestSpec};
use proptest::prelude::*;

fn workload() -> impl Strategy<Value = Vec<RequestSpec>> {
    prop::collection::vec((0.0f64..2.0, 1u32..3000, 1u32..200), 1..40).prop_map(|mut v| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.into_iter()
            .map(|(t, p, o)| RequestSpec::new(t, p, o))
            .collect()
    })
}

proptest! {
    #![proptest_config(super::cases(96))]

    #[test]
    fn every_request_completes_once_with_causal_times(
        specs in workload(),
        max_batch in 1u32..64,
        budget in 1u32..4096,
        instances in 1u32..4,
        spare_blocks in 0u64..400,
        per_token_us in 0.0f64..50.0,
        speculative in prop::option::of((1u32..6, 0.0f64..=1.0)),
        (routing, prefill_first, preemption, caching, split) in (0usize..4, any::<bool>(), 0usize..3, any::<bool>(), any::<bool>()),
        (prefixes, tier_tokens, sessions) in (
            prop::option::of((1u32..4, 1u32..2000)),
            prop::option::of(0u64..8000),
            prop::option::of(1usize..6),
        ),
        chunked in any::<bool>(),
    ) {
        let mut specs = specs;
        if let Some((groups, tokens)) = prefixes {
            for (i, s) in specs.iter_mut().enumerate() {
                s.prefix = Some(PromptPrefix { group: i as u32 % groups, tokens: tokens.min(s.prompt_tokens) });
            }
        }
        let m = sessions.map_or(0, |m| m.min(specs.len()));
        super::as_sessions(&mut specs, m);
        let policy = ServingPolicy {
            routing: [Routing::RoundRobin, Routing::LeastOutstanding, Routing::LeastKv, Routing::PrefixAffinity][routing],
            priority: if prefill_first { Priority::Prefill } else { Priority::Decode },
            preemption: [PreemptionMode::Recompute, PreemptionMode::Swap, PreemptionMode::Never][preemption],
            swap_s_per_token: 1e-6,
            prefix_caching: caching,
            chunked_prefill: chunked,
            disaggregation: (split && instances > 1).then_some(Disaggregation {
                prefill_instances: 1,
                transfer_s_per_token: 1e-6,
                transfer_latency_s: 1e-4,
            }),
            kv_tiers: [tier_tokens.map(|capacity_tokens| KvTier { capacity_tokens, s_per_token: 1e-6 }), None],
            turn_gap_s: 0.0,
        };
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
            policy,
        };
        let out = run(&specs, &cost as &dyn CostModel, cfg, Loop::Open).unwrap();
        prop_assert_eq!(out.requests.len(), specs.len());
        for i in (m..specs.len()).filter(|_| m > 0) {
            let (q, p) = (&out.requests[i], &out.requests[i - m]);
            let think = specs[i].session.unwrap().think_s;
            prop_assert!(q.arrival_s >= p.completion_s + think - 1e-9);
            prop_assert!(q.arrival_s >= specs[i].arrival_s - 1e-9);
        }
        for (r, s) in out.requests.iter().zip(&specs) {
            prop_assert!(r.arrival_s <= r.first_token_s + 1e-9);
            prop_assert!(r.first_token_s <= r.completion_s);
            prop_assert!(r.completion_s.is_finite());
            prop_assert_eq!(r.output_tokens, s.output_tokens);
        }
        // Reserving each request's whole KV at admission leaves nothing to preempt (decode
        // instances of a split take transferred sequences without that check).
        if policy.preemption == PreemptionMode::Never && policy.disaggregation.is_none() {
            prop_assert!(out.requests.iter().all(|r| r.preemptions == 0));
        }
        // One gap per output token after the first.
        let gaps: u64 = specs.iter().map(|s| u64::from(s.output_tokens - 1)).sum();
        prop_assert_eq!(out.itl_s.count(), gaps);
        prop_assert!(gaps == 0 || out.itl_s.min() > 0.0);
        // Without preemption, speculation or cached prefixes every prompt and output token is
        // computed once.
        if speculative.is_none()
            && out.requests.iter().all(|r| r.preemptions == 0 && r.cached_prompt_tokens == 0)
        {
            let tokens: u64 = specs.iter().map(|s| u64::from(s.prompt_tokens + s.output_tokens - 1)).sum();
            prop_assert_eq!(out.batch_tokens_sum, tokens);
        }
        let again = run(&specs, &cost as &dyn CostModel, cfg, Loop::Open).unwrap();
        prop_assert_eq!(out.requests, again.requests);
        prop_assert_eq!(out.itl_s.count(), again.itl_s.count());
        prop_assert_eq!(out.itl_s.mean().to_bits(), again.itl_s.mean().to_bits());
        prop_assert_eq!(out.itl_s.quantiles([0.5, 0.99]), again.itl_s.quantiles([0.5, 0.99]));
    }
}

/// A shipped machine and model with `sets` applied, placed with `parallel`.
fn placed(hw: &str, model: &str, sets: &[String], parallel: ParallelRequest) -> System {
    let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    System::new(
        load_hardware(hw, &o).unwrap(),
        load_model(model, &o).unwrap(),
        parallel,
    )
    .unwrap()
}

fn batch(prefill: bool, n: u32, tokens: u64, window: Option<u64>) -> Batch {
    if prefill {
        Batch::prefill(n, tokens.max(1), window)
    } else {
        Batch::decode(n, tokens, window)
    }
}

proptest! {
    #![proptest_config(super::cases(64))]

    /// More HBM bandwidth, more FLOP/s or more interconnect bandwidth never makes a GPU step
    /// slower; a longer context never makes a decode step faster.
    #[test]
    fn gpu_steps_are_monotone_in_resources_and_context(
        pick in 0usize..7,
        bw in 1.0f64..4.0,
        flops in 1.0f64..4.0,
        link in 1.0f64..4.0,
        n in 1u32..257,
        ctx in 0u64..30_000,
        more_ctx in 0u64..30_000,
        prefill in any::<bool>(),
    ) {
        // The last case is DeepSeek-V3 with attention data parallelism over 8 GPUs.
        let (hw, model, request) = [
            ("h100-sxm", "llama-3.1-8b", ParallelRequest::default()),
            ("h200-hgx", "llama-3.1-70b", ParallelRequest::default()),
            ("b200-hgx", "gpt-oss-120b", ParallelRequest::default()),
            ("gb200-nvl72", "deepseek-v3", ParallelRequest::default()),
            ("b200-hgx", "qwen2.5-32b", ParallelRequest::default()),
            ("h100-sxm", "gpt-oss-20b", ParallelRequest::default()),
            ("gb200-nvl72", "deepseek-v3", ParallelRequest { tp: Some(8), attention_dp: true, ..ParallelRequest::default() }),
        ][pick];
        let base = placed(hw, model, &[], request);
        let p = &base.placement;
        let fixed = ParallelRequest { tp: Some(p.tp), pp: Some(p.pp), replicas: Some(p.replicas), attention_dp: p.attention_dp, max_context: None, objective: None };
        let g = base.hardware.gpu().unwrap();
        let sets = vec![
            format!("hardware.gpu.hbm_bandwidth_bytes_per_s={}", g.hbm_bandwidth_bytes_per_s * bw),
            format!("hardware.gpu.interconnect.bandwidth_bytes_per_s={}", g.interconnect.bandwidth_bytes_per_s * link),
        ];
        let mut flop_sets = sets.clone();
        // Scale every precision class the profile lists, so no class falls back to a slower one.
        let f = &g.peak_flops_per_s;
        for (c, x) in [("bf16", Some(f.bf16)), ("fp8", f.fp8), ("fp4", f.fp4), ("fp32", f.fp32)] {
            if let Some(x) = x {
                flop_sets.push(format!("hardware.gpu.peak_flops_per_s.{c}={}", x * flops));
            }
        }
        let faster_mem = placed(hw, model, &sets, fixed);
        let faster_all = placed(hw, model, &flop_sets, fixed);
        let w = base.cost_model().window();
        let b = batch(prefill, n, ctx, w);
        let t = base.step(&b).total_s();
        prop_assert!(faster_mem.step(&b).total_s() <= t * (1.0 + 1e-12));
        prop_assert!(faster_all.step(&b).total_s() <= faster_mem.step(&b).total_s() * (1.0 + 1e-12));
        let longer = Batch::decode(n, ctx + more_ctx, w);
        prop_assert!(base.step(&longer).total_s() >= base.step(&Batch::decode(n, ctx, w)).total_s() * (1.0 - 1e-12));
    }

    /// On a fixed wafer pipeline, more SRAM, SRAM bandwidth, arithmetic per cycle, clock or
    /// fabric bandwidth never makes a step slower; a longer context never makes a decode step
    /// faster.
    #[test]
    fn wafer_steps_are_monotone_in_resources_and_context(
        pick in 0usize..3,
        sram in 1.0f64..2.0,
        bw in 1.0f64..4.0,
        flops in 1.0f64..4.0,
        fabric in 1.0f64..4.0,
        clock in 1.0f64..2.0,
        n in 1u32..33,
        ctx in 0u64..8_000,
        more_ctx in 0u64..8_000,
        prefill in any::<bool>(),
    ) {
        let (model, wafers) = [("llama-3.1-8b", 1), ("llama-3.1-70b", 4), ("gpt-oss-120b", 2)][pick];
        let base_sets = vec![format!("hardware.wafer.wafers={wafers}")];
        let base = placed("wse-3", model, &base_sets, ParallelRequest::default());
        let fixed = ParallelRequest { tp: None, pp: Some(base.placement.pp), replicas: Some(1), attention_dp: false, max_context: None, objective: None };
        let wf = base.hardware.wafer().unwrap();
        let mut sets = base_sets.clone();
        sets.extend([
            format!("hardware.wafer.sram_capacity_bytes={}", wf.sram_capacity_bytes * sram),
            format!("hardware.wafer.sram_bandwidth_bytes_per_s={}", wf.sram_bandwidth_bytes_per_s * bw),
            format!("hardware.wafer.dense_flops_per_core_per_cycle={}", wf.dense_flops_per_core_per_cycle * flops),
            format!("hardware.wafer.clock_hz={}", wf.clock_hz * clock),
            format!("hardware.wafer.fabric_bandwidth_bytes_per_s={}", wf.fabric_bandwidth_bytes_per_s * fabric),
        ]);
        let more = placed("wse-3", model, &sets, fixed);
        let w = base.cost_model().window();
        let b = batch(prefill, n, ctx, w);
        prop_assert!(more.step(&b).total_s() <= base.step(&b).total_s() * (1.0 + 1e-12));
        let longer = Batch::decode(n, ctx + more_ctx, w);
        prop_assert!(base.step(&longer).total_s() >= base.step(&Batch::decode(n, ctx, w)).total_s() * (1.0 - 1e-12));
    }
}

proptest! {
    #![proptest_config(super::cases(48))]

    /// The wafer's default layout maximises per-user speed over the layouts that hold the model,
    /// so more SRAM (which only adds layouts and KV room) never makes the same deployment slower.
    #[test]
    fn more_sram_never_slows_the_default_wafer_layout(
        pick in 0usize..4,
        wafers in 1u32..17,
        sram in 1.0f64..4.0,
        ctx in 16u64..16_000,
    ) {
        let model = ["llama-3.1-8b", "llama-3.1-70b", "gpt-oss-120b", "qwen2.5-32b"][pick];
        let at = |factor: f64| {
            let o: Vec<Override> = [
                format!("hardware.wafer.wafers={wafers}"),
                format!("hardware.wafer.sram_capacity_bytes={}", 44e9 * factor),
            ]
            .iter()
            .map(|s| Override::parse(s).unwrap())
            .collect();
            System::new(
                load_hardware("wse-3", &o).unwrap(),
                load_model(model, &o).unwrap(),
                ParallelRequest { max_context: Some(ctx + 1), ..ParallelRequest::default() },
            )
            .ok()
        };
        let Some(base) = at(1.0) else { return Ok(()) };
        let more = at(sram).expect("what fits in less SRAM fits in more");
        prop_assert!(
            more.single_stream_tokens_per_s(ctx) >= base.single_stream_tokens_per_s(ctx) * (1.0 - 1e-9),
            "{model} on {wafers} wafers: {} pp={} against {} pp={}",
            more.single_stream_tokens_per_s(ctx), more.placement.pp,
            base.single_stream_tokens_per_s(ctx), base.placement.pp
        );
    }
}
