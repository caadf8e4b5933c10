//! The documentation cannot drift: every command shown with its output in README.md and docs/
//! (a `console` block: `$ infersim ...`, then what it prints, `...` where lines are elided) is
//! run and its output compared; every chart in docs/ is redrawn by the command that made it and
//! compared byte for byte. `TRYCMD=overwrite cargo test --release docs` rewrites the printed
//! outputs; the charts' commands are listed in [`PICTURES`].

use std::path::Path;

#[test]
fn documented_commands_print_what_the_docs_show() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = trycmd::TestCases::new();
    cases.register_bin("infersim", Path::new(env!("CARGO_BIN_EXE_infersim")));
    cases.case(root.join("README.md"));
    if root.join("docs").is_dir() {
        cases.case(root.join("docs/*.md"));
    }
    cases.run();
}

/// The charts in docs/ and the commands that draw them, run from the repository root (`{out}`
/// stands for the file written).
pub const PICTURES: &[(&str, &[&str])] = &[
    (
        "docs/interactivity.svg",
        &[
            "compare",
            "--interactivity-users",
            "1,4,16,64,256",
            "--requests-per-user",
            "2",
            "--interactivity-out",
            "{out}",
        ],
    ),
    ("docs/compare.svg", &["compare", "--plot-out", "{out}"]),
    (
        "docs/pareto.svg",
        &[
            "sweep",
            "examples/load-knee.toml",
            "--quiet",
            "--pareto-out",
            "{out}",
        ],
    ),
    (
        "docs/knee.svg",
        &[
            "sweep",
            "examples/load-knee.toml",
            "--quiet",
            "--plot-out",
            "{out}",
        ],
    ),
    (
        "docs/latency.svg",
        &[
            "simulate",
            "--hardware",
            "h100-sxm",
            "--model",
            "llama-3.1-8b",
            "--rate",
            "8",
            "--requests",
            "300",
            "--prompt-tokens",
            "lognormal:800:0.8",
            "--output-tokens",
            "lognormal:200:0.7",
            "--plot-out",
            "{out}",
        ],
    ),
];

#[test]
fn charts_in_the_docs_are_what_their_commands_draw() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let overwrite = std::env::var("TRYCMD").is_ok_and(|v| v == "overwrite");
    let d = super::scratch("docs-pictures");
    for (file, args) in PICTURES {
        let out = d.join(Path::new(file).file_name().unwrap());
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == "{out}" {
                    out.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        super::ok(&args);
        let drawn = std::fs::read(&out).unwrap();
        let shipped = root.join(file);
        if overwrite {
            std::fs::write(&shipped, &drawn).unwrap();
            continue;
        }
        let command = args.join(" ").replace(out.to_str().unwrap(), file);
        assert!(
            std::fs::read(&shipped).is_ok_and(|s| s == drawn),
            "{file} is not what `infersim {command}` draws; regenerate with \
             TRYCMD=overwrite cargo test --release docs"
        );
    }
}
