//! Sweep tests: expansion, suggestions, failing points, seeds and shards.

use std::path::PathBuf;

use super::*;
use crate::error::Result;

const SPEC: &str = r#"
[base]
hardware = "h100-sxm"
model = "llama-3.2-1b"
[base.workload]
concurrency = 4
requests = 20
prompt_tokens = 128
output_tokens = 16

[[axis]]
path = "hardware.gpu.hbm_bandwidth_bytes_per_s"
from = 1e12
to = 4e12
steps = 4

[[axis]]
path = "workload.concurrency"
values = [1, 8]
"#;

fn sweep(text: &str) -> Result<Sweep> {
    Sweep::parse("spec.toml", text, PathBuf::new())
}

#[test]
fn product_and_zip_expand_in_order() {
    let s = sweep(SPEC).unwrap();
    assert_eq!(s.points.len(), 8);
    assert_eq!(value_text(&s.points[1].values[1]), "8");
    assert_eq!(value_text(&s.points[2].values[0]), "2000000000000");
    let zipped = SPEC
        .replace("steps = 4", "steps = 2")
        .replace("[base]", "combine = \"zip\"\n[base]");
    assert_eq!(sweep(&zipped).unwrap().points.len(), 2);
    let bad_zip = SPEC.replace("[base]", "combine = \"zip\"\n[base]");
    assert!(sweep(&bad_zip)
        .unwrap_err()
        .to_string()
        .contains("equal lengths"));
}

#[test]
fn log_ranges_of_integers_round_and_dedupe() {
    let t = SPEC.replace(
        "values = [1, 8]",
        "from = 1\nto = 4\nsteps = 5\nscale = \"log\"",
    );
    let s = sweep(&t).unwrap();
    let v: Vec<String> = s.axes[1].values.iter().map(value_text).collect();
    assert_eq!(v, ["1", "2", "3", "4"]);
}

#[test]
fn misspelt_paths_get_a_suggestion() {
    for (wrong, right) in [
        ("workload.concurency", "workload.concurrency"),
        (
            "hardware.gpu.hbm_bandwith_bytes_per_s",
            "hardware.gpu.hbm_bandwidth_bytes_per_s",
        ),
        ("serve.max_bach", "serve.max_batch"),
    ] {
        let t = SPEC.replace(
            "path = \"workload.concurrency\"",
            &format!("path = \"{wrong}\""),
        );
        let e = sweep(&t).unwrap_err().to_string();
        assert!(e.contains(&format!("did you mean {right}?")), "{e}");
    }
    let e = sweep(&SPEC.replace("workload.concurrency", "load.concurrency"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("hardware., model., workload. or serve."), "{e}");
}

#[test]
fn failing_points_record_their_error_and_the_rest_run() {
    let t = SPEC.replace("values = [1, 8]", "values = [1, 0]");
    let s = sweep(&t).unwrap();
    let mut out = Vec::new();
    let rows = run(
        &s,
        RunOptions {
            jobs: 2,
            shard: None,
            format: RowFormat::Csv,
        },
        &mut out,
        &|| {},
    )
    .unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows[0].outcome.is_ok());
    assert!(rows[1]
        .outcome
        .as_ref()
        .unwrap_err()
        .contains("concurrency"));
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 9);
    assert!(text.lines().nth(2).unwrap().contains(",error,"));
}

#[test]
fn seeds_depend_on_the_point_only() {
    let s = sweep(SPEC).unwrap();
    let a = point_seed(0, &s.axes, &s.points[3].values);
    assert_eq!(a, point_seed(0, &s.axes, &s.points[3].values));
    assert_ne!(a, point_seed(0, &s.axes, &s.points[2].values));
    assert_ne!(a, point_seed(1, &s.axes, &s.points[3].values));
}

#[test]
fn shards_partition_the_points() {
    let s = sweep(SPEC).unwrap();
    let mut all: Vec<usize> = (0..3)
        .flat_map(|k| s.shard(Some(Shard { index: k, count: 3 })))
        .map(|p| p.index)
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..8).collect::<Vec<_>>());
    assert!(Shard::parse("3/3").is_err());
    assert!(Shard::parse("1/0").is_err());
    assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
}

#[test]
fn did_you_mean_keeps_to_near_misses() {
    assert_eq!(
        did_you_mean("concurency", ["concurrency", "rate_per_s"]),
        Some("concurrency")
    );
    assert_eq!(did_you_mean("xyz", ["concurrency", "rate_per_s"]), None);
}

/// A writer whose every write fails, as on a full disk.
struct Full;

impl std::io::Write for Full {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_sweep_stops_at_its_first_write_error() {
    let s = sweep(SPEC).unwrap();
    let ran = std::sync::atomic::AtomicUsize::new(0);
    let e = run(
        &s,
        RunOptions {
            jobs: 1,
            shard: None,
            format: RowFormat::JsonLines,
        },
        &mut Full,
        &|| {
            ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    assert_eq!(e.exit_code(), 1);
    assert_eq!(ran.into_inner(), 1, "no point runs after the failed write");
}
