//! Sweep-spec parsing and expansion, and the scenario of the first point: any input either fails
//! with an error or gives points whose scenarios build.
#![no_main]

use infersim::study::sweep::Sweep;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sweep) = Sweep::parse("fuzz.toml", text, std::path::PathBuf::new()) {
        if let Some(p) = sweep.points.first() {
            let _ = sweep.scenario(p);
        }
    }
});
