//! Criterion benchmarks, one module per area (`cargo bench`).
//!
//! - `engine`: one whole generation (evaluate, record, select, reproduce)
//!   of 100,000 organisms with 1,024-bit genomes on OneMax.
//! - `selection`: ordering a pool and drawing parents.
//! - `operators`: mutation and crossover of single genomes.
//! - `plugins`: one plugin call for 64 organisms against the same work
//!   done directly (group `plugin_call`).
//! - `probes`: the gradient and tangent-kernel services for a recurrent
//!   network, batched BPTT against the per-example candle loop (group
//!   `tangent_kernel`).

mod benchmarks;

criterion::criterion_main!(
    benchmarks::engine::benches,
    benchmarks::selection::benches,
    benchmarks::operators::benches,
    benchmarks::plugins::benches,
    benchmarks::probes::benches
);
