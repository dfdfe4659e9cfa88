//! Variation operators on single genomes, and opening random streams.

use criterion::{Criterion, criterion_group};
use lineage_evo::operators::{Crossover, Mutation, crossover, mutate};
use lineage_evo::rng::{self, Purpose};
use lineage_evo::{Genome, GenomeSpec};
use rand::Rng;

fn operators(c: &mut Criterion) {
    let mut group = c.benchmark_group("operators");
    let spec = GenomeSpec::bits(1024);
    let mut rng = rng::stream(1, 0, 0, Purpose::Init);
    let a = Genome::random(&spec, &mut rng);
    let b = Genome::random(&spec, &mut rng);
    let m = Mutation {
        bit_rate: 1.0 / 1024.0,
        sigma: 0.0,
        gene_rate: 0.0,
    };
    group.bench_function("open_stream_and_draw", |bench| {
        let mut id = 0u64;
        bench.iter(|| {
            id += 1;
            rng::stream(1, 2, id, Purpose::Reproduce).random::<u64>()
        })
    });
    group.bench_function("bit_flip_1024_at_1_over_l", |bench| {
        let mut g = a.clone();
        bench.iter(|| mutate(&mut g, &spec, &m, &mut rng))
    });
    for kind in [Crossover::Uniform, Crossover::OnePoint] {
        group.bench_function(format!("crossover_{kind:?}_1024"), |bench| {
            bench.iter(|| crossover(&a, &b, kind, &mut rng))
        });
    }
    group.finish();
}

criterion_group!(benches, operators);
