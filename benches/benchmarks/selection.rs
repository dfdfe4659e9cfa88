//! Ordering a pool and drawing parents.

use criterion::{BenchmarkId, Criterion, criterion_group};
use lineage_evo::rng::{self, Purpose};
use lineage_evo::selection::{Method, Plan, Preference};
use lineage_evo::{Direction, Objective};
use rand::Rng;

fn preference(c: &mut Criterion) {
    let mut group = c.benchmark_group("selection");
    let one = [Objective {
        name: "f".into(),
        direction: Direction::Maximize,
    }];
    let two = [
        Objective {
            name: "f1".into(),
            direction: Direction::Minimize,
        },
        Objective {
            name: "f2".into(),
            direction: Direction::Minimize,
        },
    ];
    for n in [1_000usize, 100_000] {
        let mut rng = rng::stream(1, 0, 0, Purpose::Population);
        let ids: Vec<u64> = (0..n as u64).collect();
        let single: Vec<f64> = (0..n).map(|_| rng.random_range(0..1024) as f64).collect();
        group.bench_with_input(BenchmarkId::new("preference_1_objective", n), &n, |b, _| {
            b.iter(|| Preference::new(&single, &one, &ids))
        });
        if n <= 10_000 {
            let double: Vec<f64> = (0..2 * n).map(|_| rng.random::<f64>()).collect();
            group.bench_with_input(
                BenchmarkId::new("preference_2_objectives", n),
                &n,
                |b, _| b.iter(|| Preference::new(&double, &two, &ids)),
            );
        }
        let pref = Preference::new(&single, &one, &ids);
        let plan = Plan::new(Method::Tournament { size: 2 }, 0, &pref, n);
        group.bench_with_input(BenchmarkId::new("tournament_2_picks", n), &n, |b, _| {
            b.iter(|| {
                let mut s = rng::stream(2, 0, 0, Purpose::Reproduce);
                (0..n).map(|_| plan.pick(&mut s)).sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, preference);
