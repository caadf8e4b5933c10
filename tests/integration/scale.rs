//! What lets a run scale changes nothing it reports. Iteration skipping: over random workloads
//! on real cost models (compute and memory partly overlapping, sliding windows, speculative
//! decoding, KV cache spilling to a wafer's external memory, prompts chunked or whole), a run
//! equals the same run stepped one iteration at a time. Streamed aggregates: on real runs, sketched percentiles are within
//! 1% of exact ones and saturation reads as from every record; a lazily drawn workload is
//! served as its list.

use infersim::engine::{
    run, run_stepwise, KvTier, Loop, Outcome, PreemptionMode, RequestRecord, Routing,
};
use infersim::metrics::{overload, tpot_of, ttft_of, Dist, OVERLOAD_SPANS};
use infersim::placement::ParallelRequest;
use infersim::profile::{load_hardware, load_model, Override};
use infersim::system::{ServeSettings, Speculation, System};
use infersim::workload::{Arrivals, LengthDist, Workload};
use infersim::workload::{PromptPrefix, RequestSpec};
use proptest::prelude::*;

/// Machine, model, overrides and whether KV may spill, for each case.
const SYSTEMS: [(&str, &str, &[&str], bool); 4] = [
    ("a100-sxm", "llama-2-7b", &[], false),
    (
        "h100-sxm",
        "llama-3.1-8b",
        &[
            "model.attention.sliding_window_tokens=96",
            "model.attention.sliding_window_layer_fraction=0.5",
        ],
        false,
    ),
    (
        "wse-3",
        "llama-3.1-8b",
        &["hardware.wafer.sram_capacity_bytes=20.8e9"],
        true,
    ),
    ("h100-sxm", "llama-3.2-1b", &[], false),
];

fn system(pick: usize, overlap: f64, speculative: Option<(u32, f64)>) -> (System, bool) {
    let (hw, model, sets, spill) = SYSTEMS[pick];
    let mut o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    if hw != "wse-3" {
        o.push(Override::parse(&format!("hardware.gpu.efficiency.overlap={overlap}")).unwrap());
    }
    // The draft shares the Llama 3 tokenizer: speculation on the GPU Llama 3 cases only.
    let spec = speculative
        .filter(|_| hw != "wse-3" && model.starts_with("llama-3"))
        .map(|(gamma, alpha)| Speculation::load("llama-3.2-1b", gamma, alpha).unwrap());
    let sys = System::with_speculation(
        load_hardware(hw, &o).unwrap(),
        load_model(model, &o).unwrap(),
        spec,
        ParallelRequest::default(),
    )
    .unwrap();
    (sys, spill)
}

fn same(a: &Outcome, b: &Outcome) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.requests, &b.requests);
    // Gaps: the same values, added in another order (the mean's sum rounds differently).
    prop_assert_eq!(a.itl_s.count(), b.itl_s.count());
    let q = [0.0, 0.5, 0.9, 0.99, 1.0];
    prop_assert_eq!(a.itl_s.quantiles(q), b.itl_s.quantiles(q));
    let (ma, mb) = (a.itl_s.mean(), b.itl_s.mean());
    prop_assert!((ma - mb).abs() <= 1e-12 * mb.abs() || (ma.is_nan() && mb.is_nan()));
    prop_assert_eq!(a.steps, b.steps);
    prop_assert_eq!(a.batch_sequences_sum, b.batch_sequences_sum);
    prop_assert_eq!(a.batch_tokens_sum, b.batch_tokens_sum);
    prop_assert_eq!(&a.busy_s, &b.busy_s);
    prop_assert_eq!(a.kv_peak_fraction, b.kv_peak_fraction);
    prop_assert_eq!(a.end_s, b.end_s);
    prop_assert_eq!(a.swapped_tokens, b.swapped_tokens);
    prop_assert_eq!(a.prefix_evictions, b.prefix_evictions);
    prop_assert_eq!(&a.kv_tiers, &b.kv_tiers);
    Ok(())
}

proptest! {
    #![proptest_config(super::cases(40))]

    #[test]
    fn skipping_iterations_equals_stepping_them(
        pick in 0usize..4,
        overlap in 0.01f64..0.99,
        speculative in prop::option::of((1u32..5, 0.1f64..0.95)),
        lengths in prop::collection::vec((0.0f64..3.0, 1u32..3000, 1u32..400), 1..60),
        (instances, max_batch, budget) in (1u32..4, 1u32..48, 64u32..4096),
        (routing, preemption, closed, prefixes) in (0usize..4, 0usize..3, any::<bool>(), 0usize..3),
        tier_tokens in prop::option::of(0u64..20_000),
        chunked_prefill in any::<bool>(),
    ) {
        let (sys, spill) = system(pick, overlap, speculative);
        let mut specs: Vec<RequestSpec> = {
            let mut v = lengths;
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.into_iter().map(|(t, p, o)| RequestSpec::new(t, p, o)).collect()
        };
        // Shared prefixes (1) or sessions of several turns (2).
        if prefixes == 1 {
            for (i, s) in specs.iter_mut().enumerate() {
                s.prefix = Some(PromptPrefix { group: i as u32 % 3, tokens: 700.min(s.prompt_tokens) });
            }
        }
        if prefixes == 2 {
            let m = 3.min(specs.len());
            super::as_sessions(&mut specs, m);
        }
        let settings = ServeSettings {
            max_batch,
            max_batched_tokens: budget,
            kv_spill: spill,
            routing: [Routing::RoundRobin, Routing::LeastOutstanding, Routing::LeastKv, Routing::PrefixAffinity][routing],
            preemption: [PreemptionMode::Recompute, PreemptionMode::Swap, PreemptionMode::Never][preemption],
            chunked_prefill,
            ..ServeSettings::default()
        };
        let mut cfg = sys.engine_config(&settings).unwrap();
        cfg.instances = instances;
        // A small cache, so that blocks run out and sequences are preempted now and then.
        cfg.kv_tokens_per_instance = cfg.kv_tokens_per_instance.min(12_000);
        cfg.policy.kv_tiers[0] = tier_tokens.map(|capacity_tokens| KvTier { capacity_tokens, s_per_token: 1e-6 });
        let mode = if closed { Loop::Closed { concurrency: max_batch.min(8) } } else { Loop::Open };
        let skipped = run(&specs, sys.cost_model(), cfg, mode);
        let stepped = run_stepwise(&specs, sys.cost_model(), cfg, mode);
        match (skipped, stepped) {
            (Ok(a), Ok(b)) => {
                prop_assert!(a.skipped_steps <= a.steps);
                prop_assert_eq!(b.skipped_steps, 0);
                same(&a, &b)?
            }
            (a, b) => prop_assert_eq!(a.err().map(|e| e.to_string()), b.err().map(|e| e.to_string())),
        }
    }
}

/// The backlog read as before streaming, from every record: at each of 21 evenly spaced
/// instants from the first arrival to the last, arrivals up to it less first tokens up to it.
fn backlog_of_records(r: &[RequestRecord]) -> Vec<(f64, usize)> {
    let first = r.iter().map(|x| x.arrival_s).fold(f64::INFINITY, f64::min);
    let last = r
        .iter()
        .map(|x| x.arrival_s)
        .fold(f64::NEG_INFINITY, f64::max);
    if last <= first {
        return Vec::new();
    }
    let mut arrivals: Vec<f64> = r.iter().map(|x| x.arrival_s).collect();
    let mut firsts: Vec<f64> = r.iter().map(|x| x.first_token_s).collect();
    arrivals.sort_by(f64::total_cmp);
    firsts.sort_by(f64::total_cmp);
    (0..=OVERLOAD_SPANS)
        .map(|j| {
            let t = first + (last - first) * j as f64 / OVERLOAD_SPANS as f64;
            let arrived = arrivals.partition_point(|&a| a <= t);
            let served = firsts.partition_point(|&f| f <= t);
            (t, arrived.saturating_sub(served))
        })
        .collect()
}

/// Latency distributions aggregated as requests complete (sketches) are within 1% of the exact
/// percentiles of every record, with exact means; the saturation verdict read from streamed
/// counts is the one read from every record; a workload drawn lazily is served as its list.
#[test]
fn streamed_metrics_match_the_records_they_replace() {
    let (sys, _) = system(0, 0.0, None);
    let lengths = |n, rate| Workload {
        requests: n,
        arrivals: Arrivals::Gamma {
            rate_per_s: rate,
            cv: 2.0,
        },
        prompt: LengthDist::LogNormal {
            median: 800.0,
            sigma: 0.8,
        },
        output: LengthDist::LogNormal {
            median: 200.0,
            sigma: 0.8,
        },
        prefixes: None,
        sessions: None,
    };
    // Below capacity, well above it (the queue grows), and a closed loop.
    let mut overloaded = 0;
    for (w, mode) in [
        (lengths(3_000, 3.0), Loop::Open),
        (lengths(2_000, 30.0), Loop::Open),
        (lengths(2_000, 1.0), Loop::Closed { concurrency: 32 }),
    ] {
        let requests = w.generate(7, 4096).unwrap().0;
        let (out, s) = sys
            .simulate(&requests, &ServeSettings::default(), mode)
            .unwrap();
        let lazy = w.clone().drawn(7, 4096).unwrap();
        let (lazy_out, lazy_s) = sys
            .simulate(&lazy, &ServeSettings::default(), mode)
            .unwrap();
        assert_eq!(lazy_out.requests, out.requests);
        assert_eq!(format!("{lazy_s:?}"), format!("{s:?}"));
        let r = &out.requests;
        let e2e = |r: &RequestRecord| r.completion_s - r.arrival_s;
        let tpots: Vec<f64> = r
            .iter()
            .filter(|r| r.output_tokens > 1)
            .map(tpot_of)
            .collect();
        let speeds = tpots
            .iter()
            .filter(|t| **t > 0.0)
            .map(|t| 1.0 / t)
            .collect();
        let exact = [
            ("ttft", Dist::of(r.iter().map(ttft_of).collect()), s.ttft_s),
            ("e2e", Dist::of(r.iter().map(e2e).collect()), s.e2e_s),
            ("tpot", Dist::of(tpots), s.tpot_s),
            ("speed", Dist::of(speeds), s.tokens_per_s_per_user),
        ];
        for (name, exact, sketched) in exact {
            assert!(
                (exact.mean - sketched.mean).abs() <= 1e-9 * exact.mean,
                "{name} mean"
            );
            for (a, b) in [
                (exact.p50, sketched.p50),
                (exact.p90, sketched.p90),
                (exact.p99, sketched.p99),
            ] {
                assert!((a - b).abs() <= 0.01 * a, "{name}: exact {a}, sketched {b}");
            }
        }
        let last = r.last().unwrap().arrival_s;
        let backlog = r
            .iter()
            .filter(|x| x.arrival_s <= last && x.first_token_s > last)
            .count();
        assert_eq!(s.saturation.backlog_at_last_arrival, backlog);
        if mode == Loop::Open {
            let expected = overload(&backlog_of_records(r), r.len());
            let found = s
                .saturation
                .overloaded_from_s
                .zip(s.saturation.overloaded_to_s);
            assert_eq!(found, expected);
            overloaded += usize::from(found.is_some());
        }
    }
    assert_eq!(overloaded, 1, "the run above capacity is found overloaded");
}
