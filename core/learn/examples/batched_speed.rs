//! Organism-steps per second of the fast path and the batched path on the
//! CPU, for 64 MLPs 64-128-10 learning 100 steps of minibatches of 64
//! (SGD with momentum, then Adam), on 1 and 2 threads; the best of three
//! runs each.
//!
//! `cargo run -p lineage-learn --example batched_speed` (the dev profile
//! optimises this crate and its dependencies). candle's CPU kernels run on
//! their own threads, as many as `RAYON_NUM_THREADS` says (default: every
//! core).

use std::time::Instant;

use candle_core::Device;
use lineage_learn::bench::parse_model;
use lineage_learn::{Hyper, Job, LifetimeSpec, Method, OptimizerSpec, Path, Schedule};
use rand::SeedableRng;

fn main() {
    let work = parse_model("mlp:64-128-10").expect("a valid model string");
    let (batch, population, steps) = (64usize, 64usize, 100u32);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
    let data: Vec<_> = (0..population)
        .map(|_| work.data(batch * 4, &mut rng))
        .collect();
    let heldout = work.data(batch, &mut rng);
    let births: Vec<Vec<Vec<f32>>> = (0..population).map(|_| work.init(&mut rng)).collect();
    for method in [Method::Sgd, Method::Adam] {
        let life = LifetimeSpec {
            batch,
            eval_every: 0,
            curve_heldout: batch,
            optimizer: OptimizerSpec {
                method,
                clip: None,
                schedule: Schedule::Constant,
                ..OptimizerSpec::default()
            },
        };
        let jobs = || -> Vec<Job<'_>> {
            births
                .iter()
                .zip(&data)
                .map(|(birth, train)| Job {
                    params: birth.clone(),
                    masks: vec![None; birth.len()],
                    signs: vec![None; birth.len()],
                    hyper: Hyper {
                        lr: 0.01,
                        momentum: 0.9,
                        weight_decay: 0.0,
                        steps,
                    },
                    train,
                    heldout: &heldout,
                    probes: &[],
                    indices: (0..steps as usize * batch)
                        .map(|i| (i % (batch * 4)) as u32)
                        .collect(),
                })
                .collect()
        };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            for path in [Path::Fast, Path::Batched] {
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let start = Instant::now();
                    lineage_learn::train_population(
                        &work.model,
                        &work.task,
                        &life,
                        &Device::Cpu,
                        Some(path),
                        jobs(),
                        &pool,
                    )
                    .expect("the lifetimes run");
                    best = best.min(start.elapsed().as_secs_f64());
                }
                let rate = population as f64 * f64::from(steps) / best;
                println!("{method:?}, {threads} thread(s), {path:?}: {rate:.0} organism-steps/s");
            }
        }
    }
}
