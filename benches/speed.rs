//! Speed of the cost model (iterations priced per second) and of the engine (requests simulated
//! per second) on the shipped profiles.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use infersim::cost::Batch;
use infersim::engine::Loop;
use infersim::placement::ParallelRequest;
use infersim::profile::{load_hardware, load_model};
use infersim::system::{ServeSettings, System};
use infersim::workload::{Arrivals, LengthDist, Workload};

fn system(hw: &str, model: &str) -> System {
    System::new(
        load_hardware(hw, &[]).unwrap(),
        load_model(model, &[]).unwrap(),
        ParallelRequest::default(),
    )
    .unwrap()
}

fn cost_decode_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("cost_decode_step");
    g.throughput(Throughput::Elements(1));
    for (hw, model) in [("h100-sxm", "llama-3.1-8b"), ("gb200-nvl72", "deepseek-v3")] {
        let sys = system(hw, model);
        let batch = Batch::decode(64, 4096, sys.batch().window);
        g.bench_function(BenchmarkId::from_parameter(model), |b| {
            b.iter(|| black_box(sys.step(black_box(&batch)).total_s()))
        });
    }
    g.finish();
}

fn engine_requests(c: &mut Criterion) {
    let sys = system("a100-sxm", "llama-2-7b");
    let mut g = c.benchmark_group("engine_poisson_a100_llama2_7b");
    g.sample_size(10);
    for n in [1_000usize, 10_000] {
        let w = Workload {
            requests: n,
            arrivals: Arrivals::Poisson { rate_per_s: 4.0 },
            prompt: LengthDist::LogNormal {
                median: 1000.0,
                sigma: 0.8,
            },
            output: LengthDist::LogNormal {
                median: 200.0,
                sigma: 0.8,
            },
        };
        let reqs = w.generate(0, 4096).unwrap();
        let settings = ServeSettings {
            max_batch: 128,
            max_batched_tokens: 512,
            block_tokens: 16,
            kv_spill: false,
        };
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(sys.simulate(&reqs, &settings, Loop::Open).unwrap().1.steps))
        });
    }
    g.finish();
}

criterion_group!(benches, cost_decode_step, engine_requests);
criterion_main!(benches);
