//! Hardware and model profile parsing, validation, placement and one step of the cost model:
//! any input either fails with an error or gives finite, non-negative step times.
#![no_main]

use infersim::cost::Batch;
use infersim::placement::ParallelRequest;
use infersim::profile::catalog::{hardware_from_str, model_from_str};
use infersim::profile::{load_hardware, load_model, Override};
use infersim::system::System;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line may be a --set override applied to the profile.
    let overrides: Vec<Override> = text
        .lines()
        .next()
        .and_then(|l| Override::parse(l).ok())
        .into_iter()
        .collect();
    let check = |sys: System| {
        for b in [
            Batch::decode(1, 1000, sys.cost_model().window()),
            Batch::decode(64, 100, sys.cost_model().window()),
            Batch::prefill(1, 2048, sys.cost_model().window()),
        ] {
            let t = sys.step(&b).total_s();
            assert!(t.is_finite() && t >= 0.0, "step time {t}");
        }
    };
    if let Ok(hw) = hardware_from_str("fuzz.toml".into(), text, &overrides) {
        let model = load_model("llama-3.2-1b", &[]).unwrap();
        if let Ok(sys) = System::new(hw, model, ParallelRequest::default()) {
            check(sys);
        }
    }
    if let Ok(model) = model_from_str("fuzz.toml".into(), text, &overrides) {
        let hw = load_hardware("gb200-nvl72", &[]).unwrap();
        if let Ok(sys) = System::new(hw.clone(), model.clone(), ParallelRequest::default()) {
            check(sys);
        }
        // Attention data parallelism over 8 GPUs (refused for dense models, never a panic).
        let adp = ParallelRequest {
            tp: Some(8),
            attention_dp: true,
            ..ParallelRequest::default()
        };
        if let Ok(sys) = System::new(hw, model, adp) {
            check(sys);
        }
    }
});
