//! Iteration skipping changes nothing: over random workloads on real cost models (compute and
//! memory partly overlapping, sliding windows, speculative decoding, KV cache spilling to a
//! wafer's external memory), a run equals the same run stepped one iteration at a time.

use infersim::engine::{run, run_stepwise, Loop, Outcome, PreemptionMode, Routing};
use infersim::placement::ParallelRequest;
use infersim::profile::{load_hardware, load_model, Override};
use infersim::system::{ServeSettings, Speculation, System};
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

/// What a run produced, in a form two runs can be compared by (gaps sorted: skipping records
/// a skipped stretch's gaps in another order).
fn essentials(mut o: Outcome) -> Outcome {
    o.itl_s.sort_by(f32::total_cmp);
    o
}

fn same(a: &Outcome, b: &Outcome) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.requests, &b.requests);
    prop_assert_eq!(&a.itl_s, &b.itl_s);
    prop_assert_eq!(a.steps, b.steps);
    prop_assert_eq!(a.batch_sequences_sum, b.batch_sequences_sum);
    prop_assert_eq!(a.batch_tokens_sum, b.batch_tokens_sum);
    prop_assert_eq!(&a.busy_s, &b.busy_s);
    prop_assert_eq!(a.kv_peak_fraction, b.kv_peak_fraction);
    prop_assert_eq!(a.end_s, b.end_s);
    prop_assert_eq!(a.swapped_tokens, b.swapped_tokens);
    prop_assert_eq!(a.prefix_evictions, b.prefix_evictions);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn skipping_iterations_equals_stepping_them(
        pick in 0usize..4,
        overlap in 0.01f64..0.99,
        speculative in prop::option::of((1u32..5, 0.1f64..0.95)),
        lengths in prop::collection::vec((0.0f64..3.0, 1u32..3000, 1u32..400), 1..60),
        (instances, max_batch, budget) in (1u32..4, 1u32..48, 64u32..4096),
        (routing, preemption, closed, prefixes) in (0usize..3, 0usize..3, any::<bool>(), any::<bool>()),
    ) {
        let (sys, spill) = system(pick, overlap, speculative);
        let mut specs: Vec<RequestSpec> = {
            let mut v = lengths;
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.into_iter().map(|(t, p, o)| RequestSpec::new(t, p, o)).collect()
        };
        if prefixes {
            for (i, s) in specs.iter_mut().enumerate() {
                s.prefix = Some(PromptPrefix { group: i as u32 % 3, tokens: 700.min(s.prompt_tokens) });
            }
        }
        let settings = ServeSettings {
            max_batch,
            max_batched_tokens: budget,
            kv_spill: spill,
            routing: [Routing::RoundRobin, Routing::LeastOutstanding, Routing::LeastKv][routing],
            preemption: [PreemptionMode::Recompute, PreemptionMode::Swap, PreemptionMode::Never][preemption],
            ..ServeSettings::default()
        };
        let mut cfg = sys.engine_config(&settings).unwrap();
        cfg.instances = instances;
        // A small cache, so that blocks run out and sequences are preempted now and then.
        cfg.kv_tokens_per_instance = cfg.kv_tokens_per_instance.min(12_000);
        let mode = if closed { Loop::Closed { concurrency: max_batch.min(8) } } else { Loop::Open };
        let skipped = run(&specs, sys.cost_model(), cfg, mode);
        let stepped = run_stepwise(&specs, sys.cost_model(), cfg, mode);
        match (skipped, stepped) {
            (Ok(a), Ok(b)) => {
                prop_assert!(a.skipped_steps <= a.steps);
                prop_assert_eq!(b.skipped_steps, 0);
                same(&essentials(a), &essentials(b))?
            }
            (a, b) => prop_assert_eq!(a.err().map(|e| e.to_string()), b.err().map(|e| e.to_string())),
        }
    }
}
