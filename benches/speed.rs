//! Speed of the cost model (iterations priced per second), of the engine on the reference
//! workload (requests and token-steps simulated per second), of a cluster (64 GB200 NVL72
//! racks), and of a parallel sweep. Engine runs are served as `infersim simulate` serves them:
//! the workload drawn as the run reaches it, metrics aggregated as requests complete, no
//! per-request records kept.
//!
//! Reference workload: Llama 2 7B on one A100, tensor parallel 1, at most 128 sequences and
//! 512-token chunks, Poisson arrivals at 4 requests/s, lengths in order from the conversation
//! trace (cycling), seed 0.
//!
//! Cluster workload: Llama 3.1 70B on 64 GB200 NVL72 racks (4,608 GPUs, 1,152 replicas of
//! tensor parallel 4), default serving settings, 1,000,000 requests with lengths in order from
//! the conversation trace, Poisson arrivals at [`CLUSTER_RATE_PER_S`] (about 80% of the
//! cluster's capacity, see docs/sweeps-and-scale-out.md), seed 0.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use infersim::cost::Batch;
use infersim::engine::{Loop, Observe};
use infersim::metrics::Summary;
use infersim::placement::ParallelRequest;
use infersim::profile::{load_hardware, load_model};
use infersim::study::sweep::{self, RowFormat, RunOptions, Sweep};
use infersim::system::{ServeSettings, System};
use infersim::workload::{read_trace, Arrivals, Drawn, LengthDist, RequestSource, Workload};
use rayon::prelude::*;

fn system(hw: &str, model: &str) -> System {
    System::new(
        load_hardware(hw, &[]).unwrap(),
        load_model(model, &[]).unwrap(),
        ParallelRequest::default(),
    )
    .unwrap()
}

fn settings() -> ServeSettings {
    ServeSettings {
        max_batch: 128,
        max_batched_tokens: 512,
        ..ServeSettings::default()
    }
}

/// Arrival rate of the cluster workload, requests/s.
const CLUSTER_RATE_PER_S: f64 = 15_000.0;

/// Serve `reqs` as `infersim simulate` does: no records, no timeline.
fn serve(sys: &System, reqs: &Drawn, s: &ServeSettings) -> Summary {
    sys.simulate_observed(reqs, s, Loop::Open, Observe::default())
        .unwrap()
        .1
}

fn reference_requests(n: usize, rate_per_s: f64) -> Drawn {
    trace_requests(n, rate_per_s, 4096)
}

/// `n` requests at `rate_per_s` with conversation-trace lengths cut to `context` tokens.
fn trace_requests(n: usize, rate_per_s: f64, context: u64) -> Drawn {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/traces/splitwise_conv.csv");
    let rows = read_trace(std::path::Path::new(path)).unwrap();
    Workload {
        requests: n,
        arrivals: Arrivals::Poisson { rate_per_s },
        prompt: LengthDist::Trace(rows.iter().map(|r| r.prompt_tokens).collect()),
        output: LengthDist::Trace(rows.iter().map(|r| r.output_tokens).collect()),
        prefixes: None,
        sessions: None,
    }
    .drawn(0, context)
    .unwrap()
}

fn cost_decode_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("cost_decode_step");
    g.throughput(Throughput::Elements(1));
    for (hw, model) in [
        ("h100-sxm", "llama-3.1-8b"),
        ("gb200-nvl72", "deepseek-v3"),
        ("wse-3", "llama-3.1-8b"),
    ] {
        let sys = system(hw, model);
        let batch = Batch::decode(64, 4096, sys.batch().window);
        g.bench_function(BenchmarkId::new(hw, model), |b| {
            b.iter(|| black_box(sys.step(black_box(&batch)).total_s()))
        });
    }
    g.finish();
}

fn engine_reference(c: &mut Criterion) {
    let sys = system("a100-sxm", "llama-2-7b");
    let mut g = c.benchmark_group("engine_reference_requests");
    g.sample_size(10);
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let reqs = reference_requests(n, 4.0);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(serve(&sys, &reqs, &settings()).steps))
        });
    }
    g.finish();
    // The same runs counted in token-steps: every token computed by some iteration.
    let mut g = c.benchmark_group("engine_reference_token_steps");
    g.sample_size(10);
    let reqs = reference_requests(10_000, 4.0);
    let tokens: u64 = reqs
        .specs()
        .map(|r| u64::from(r.prompt_tokens + r.output_tokens))
        .sum();
    g.throughput(Throughput::Elements(tokens));
    g.bench_function("10000", |b| {
        b.iter(|| black_box(serve(&sys, &reqs, &settings()).steps))
    });
    g.finish();
}

fn engine_cluster(c: &mut Criterion) {
    let hw = load_hardware(
        "gb200-nvl72",
        &[infersim::profile::Override::parse("hardware.gpu.devices=4608").unwrap()],
    )
    .unwrap();
    let parallel = ParallelRequest {
        tp: Some(4),
        ..ParallelRequest::default()
    };
    let sys = System::new(hw, load_model("llama-3.1-70b", &[]).unwrap(), parallel).unwrap();
    let n = 1_000_000;
    let reqs = trace_requests(n, CLUSTER_RATE_PER_S, sys.context_limit().0);
    let mut g = c.benchmark_group("engine_cluster_requests");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("64xgb200-nvl72/llama-3.1-70b/1000000", |b| {
        b.iter(|| black_box(serve(&sys, &reqs, &ServeSettings::default()).steps))
    });
    g.finish();
}

fn sweep_load(c: &mut Criterion) {
    // 16 load points of 2,000 requests each, run in parallel over the machine's cores.
    let sys = system("a100-sxm", "llama-2-7b");
    let points: Vec<Drawn> = (1..=16)
        .map(|i| reference_requests(2_000, 0.5 * f64::from(i)))
        .collect();
    let mut g = c.benchmark_group("sweep_load_points");
    g.sample_size(10);
    g.throughput(Throughput::Elements(points.len() as u64));
    g.bench_function("16x2000_parallel", |b| {
        b.iter(|| {
            let out: Vec<u64> = points
                .par_iter()
                .map(|reqs| serve(&sys, reqs, &settings()).steps)
                .collect();
            black_box(out)
        })
    });
    g.finish();
}

/// 240 points (Llama 2 7B on one A100, 200 requests each, 24 rates x 10 bandwidths) through
/// `infersim::study::sweep::run`, on 1 and 2 threads; the output is byte-identical either way (tested
/// in tests/integration/outputs.rs).
const SWEEP_240: &str = r#"
[base]
hardware = "a100-sxm"
model = "llama-2-7b"
[base.workload]
rate_per_s = 1.0
requests = 200
prompt_tokens = "lognormal:600:0.8"
output_tokens = "lognormal:200:0.7"
[[axis]]
path = "workload.rate_per_s"
from = 0.5
to = 16.0
steps = 24
scale = "log"
[[axis]]
path = "hardware.gpu.hbm_bandwidth_bytes_per_s"
from = 1e12
to = 4e12
steps = 10
"#;

fn sweep_jobs(c: &mut Criterion) {
    let sweep = Sweep::parse("bench.toml", SWEEP_240, std::path::PathBuf::new()).unwrap();
    let mut g = c.benchmark_group("sweep_240_points");
    g.sample_size(10);
    g.throughput(Throughput::Elements(sweep.points.len() as u64));
    for jobs in [1, 2] {
        g.bench_function(BenchmarkId::new("jobs", jobs), |b| {
            b.iter(|| {
                let mut out = Vec::new();
                let opts = RunOptions {
                    jobs,
                    shard: None,
                    format: RowFormat::Csv,
                };
                let rows = sweep::run(&sweep, opts, &mut out, &|| {}).unwrap();
                black_box((rows.len(), out.len()))
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    cost_decode_step,
    engine_reference,
    engine_cluster,
    sweep_load,
    sweep_jobs
);
criterion_main!(benches);
