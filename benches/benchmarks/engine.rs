//! One generation of a large population through the whole engine.

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lineage_engine::{Run, RunOptions};

/// Steps a run of `benches/onemax-100k.toml` (100,000 organisms, 1,024
/// bits, tournament k = 2, bit-flip mutation) one generation per
/// iteration, with the thread count from `LINEAGE_BENCH_THREADS` (default
/// 2, the CI machine's cores).
fn one_generation(c: &mut Criterion) {
    let threads = std::env::var("LINEAGE_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/onemax-100k.toml");
    let overrides = lineage_scenario::Overrides {
        seed: None,
        generations: Some(1_000_000),
        ..Default::default()
    };
    let scenario = lineage_scenario::load(&path, &overrides).expect("the bench scenario is valid");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let options = RunOptions {
        out: Some(tmp.path().join("run")),
        threads,
    };
    let mut run = Run::start(scenario, &options).expect("the run starts");
    let mut group = c.benchmark_group("engine");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
    group.bench_function(
        format!("onemax_100k_x_1024_generation_{threads}_threads"),
        |b| b.iter(|| run.step().expect("a generation runs")),
    );
    group.finish();
}

criterion_group!(benches, one_generation);
