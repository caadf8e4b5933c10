//! Integration tests: the CLI contract, bad-input handling and engine invariants.

mod cli;
mod energy;
mod errors;
mod outputs;
mod properties;
mod serving;
mod validate;

use std::process::{Command, Output};

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
