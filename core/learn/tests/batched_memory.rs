//! The batched path's memory estimate against what a chunk really holds:
//! for each family, one chunk trained on candle's CPU backend under a
//! counting allocator, whose peak of live bytes must stay below the
//! planner's estimate (`batched::organism_bytes` summed over the chunk)
//! and within 4 times of it (an estimate many times too large would cut
//! populations into needlessly small chunks).
//!
//! One test in this binary, so that nothing else allocates while it
//! measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::Device;
use lineage_learn::batched::{self, Rows};
use lineage_learn::{Hyper, Job, LifetimeSpec, Loss, Method, OptimizerSpec, Schedule, bench};
use rand::SeedableRng;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn the_estimate_bounds_a_chunks_peak_memory_in_every_family() {
    let (population, batch, steps) = (4usize, 32usize, 3u32);
    for model in [
        "mlp:64-128-10",
        "rnn:3-64-3:t16",
        "gru:3-64-3:t16",
        "lstm:3-64-3:t16",
        "transformer:16-32-8:l2:h4:ff64:t16",
    ] {
        let work = bench::parse_model(model).unwrap();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let train: Vec<_> = (0..population)
            .map(|_| work.data(batch * 4, &mut rng))
            .collect();
        let heldout = work.data(batch, &mut rng);
        let births: Vec<_> = (0..population).map(|_| work.init(&mut rng)).collect();
        let params = work.model.params().len();
        let jobs: Vec<Job> = births
            .into_iter()
            .zip(&train)
            .map(|(params_of, train)| Job {
                params: params_of,
                masks: vec![None; params],
                signs: vec![None; params],
                hyper: Hyper {
                    lr: 1e-3,
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
            .collect();
        let life = LifetimeSpec {
            batch,
            eval_every: 0,
            curve_heldout: batch,
            optimizer: OptimizerSpec {
                method: Method::Adam,
                beta2: 0.999,
                eps: 1e-8,
                clip: None,
                schedule: Schedule::Constant,
            },
        };
        let rows = Rows {
            batch,
            steps: batched::steps_of(&work.task),
        };
        let data = |b: &lineage_env::Batch| batched::values_on_device(b);
        let estimate: usize = jobs
            .iter()
            .map(|j| batched::organism_bytes(&work.model, rows, data(j.train) + data(j.heldout)))
            .sum();
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let loss = Loss::of(&work.task);
        let outcomes = batched::train(
            &work.model,
            loss,
            &life,
            &Device::Cpu,
            jobs,
            batched::DEFAULT_BUDGET,
        )
        .unwrap();
        let peak = PEAK.load(Ordering::Relaxed) - before;
        drop(outcomes);
        eprintln!(
            "{model}: peak {peak} bytes, estimate {estimate} ({:.2}x)",
            estimate as f64 / peak as f64
        );
        assert!(
            peak <= estimate,
            "{model}: peak {peak} bytes above the estimate {estimate}"
        );
        assert!(
            estimate <= 4 * peak,
            "{model}: the estimate {estimate} is more than 4x the peak {peak}"
        );
    }
}
