//! Embeds the shipped profiles (`hardware/*.toml`, `models/*.toml`) into the binary so that
//! `infersim` finds them from any working directory.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

fn list(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join(dir);
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(&root) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                let stem = p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                out.push((stem, p.display().to_string()));
            }
        }
    }
    out.sort();
    out
}

fn main() {
    let mut code = String::new();
    for (konst, dir) in [("HARDWARE", "hardware"), ("MODELS", "models")] {
        writeln!(code, "/// Shipped `{dir}/` profiles: (name, TOML text).").unwrap();
        writeln!(code, "pub const {konst}: &[(&str, &str)] = &[").unwrap();
        for (name, path) in list(dir) {
            writeln!(code, "    ({name:?}, include_str!({path:?})),").unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("shipped.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}
