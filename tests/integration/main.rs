//! Integration tests: the CLI contract, bad-input handling and engine invariants.

mod cli;
mod client;
mod docs;
mod energy;
mod errors;
mod inputs;
mod kernels;
mod outputs;
mod profiles;
mod properties;
mod reliability;
mod scale;
mod serving;
mod sessions;
mod trust;
mod validate;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Property-test settings: `cases` cases drawn from a fixed seed, so every run (and CI) tries
/// the same inputs; a failure reproduces as is.
pub fn cases(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x1f_e5_17),
        ..proptest::test_runner::Config::default()
    }
}

/// Make `specs` (sorted by arrival) the turns of `m` sessions (none for 0): the first `m`
/// requests start them; request i >= m is a later turn of session i % m, sent 0 to 20 ms after
/// request i - m completes, its prompt starting with that one's context.
pub fn as_sessions(specs: &mut [infersim::workload::RequestSpec], m: usize) {
    use infersim::workload::{PromptPrefix, Turn};
    for i in (0..specs.len()).filter(|_| m > 0) {
        let next = (i + m < specs.len()).then_some((i + m) as u32);
        let context = if i >= m {
            specs[i - m].prompt_tokens + specs[i - m].output_tokens
        } else {
            0
        };
        let s = &mut specs[i];
        s.prefix = Some(PromptPrefix {
            group: (i % m) as u32,
            tokens: context.min(s.prompt_tokens),
        });
        s.session = Some(Turn {
            next,
            think_s: 0.01 * (i % 3) as f64,
            follows: i >= m,
        });
    }
}

/// Run the built binary with `args`.
pub fn infersim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

/// Run and parse stdout as JSON, failing with stderr on a non-zero exit.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = infersim(args);
    assert!(
        out.status.success(),
        "infersim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Run, failing with stderr on a non-zero exit; stdout as text.
pub fn ok(args: &[&str]) -> String {
    let out = infersim(args);
    assert!(
        out.status.success(),
        "infersim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh scratch folder for one test (per process, so parallel runs do not collide).
pub fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("infersim-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
