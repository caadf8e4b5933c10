//! Merging shard outputs: any set of inputs (the fuzz input split into files at NUL bytes)
//! either merges or fails with an error (never a panic or an abort), and what merges is whole
//! lines.
#![no_main]

use infersim::study::sweep::merge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inputs: Vec<(String, String)> = text
        .split('\0')
        .enumerate()
        .map(|(i, t)| (format!("shard{i}.csv"), t.to_string()))
        .collect();
    if let Ok(out) = merge(&inputs) {
        assert!(out.is_empty() || out.ends_with('\n'));
    }
});
