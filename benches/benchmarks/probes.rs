//! The host's gradient services for a recurrent network, as the rich/lazy
//! suite uses them: the Jacobian of every output at every step of 32
//! trials (768 rows at T = 8 and 3 outputs) with respect to `w_rec` of a
//! ReLU RNN without biases (3 inputs, 3 outputs), at N = 64 and N = 300.
//!
//! - `bptt_gradients/N`: the per-example gradients by the fast path's
//!   batched back-propagation through time (`jacobian::output_gradients`);
//! - `candle_loop/64`: the same gradients the way the probe computed them
//!   before (one candle forward and backward pass per example, only
//!   `w_rec` tracked), the reference the batched path replaced;
//! - `kernel/N`: the whole kernel service (`jacobian::gradient_kernel`): the
//!   gradients and their Gram matrix (768 x 768, on and above the
//!   diagonal only).

use std::hint::black_box;
use std::time::Duration;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use criterion::{Criterion, criterion_group};
use lineage_learn::jacobian::{gradient_kernel, output_gradients};
use lineage_learn::measure::ProbeInput;
use lineage_learn::models::{Input, Network};
use lineage_learn::spec::{RnnSpec, SequenceInput};
use lineage_learn::{Activation, ModelSpec};
use rand::{Rng, SeedableRng};

const STEPS: usize = 8;
const TRIALS: usize = 32;
const OUTPUTS: usize = 3;

fn spec(n: usize) -> ModelSpec {
    ModelSpec::Rnn(RnnSpec {
        input: SequenceInput::Dense { dim: 3 },
        hidden: n,
        outputs: OUTPUTS,
        alpha: 1.0,
        activation: Activation::Relu,
        bias: false,
    })
}

/// Weights at the rich/lazy study's scales, deterministic.
fn weights(n: usize) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut draw = |len: usize, scale: f32| -> Vec<f32> {
        (0..len)
            .map(|_| scale * (2.0 * rng.random::<f32>() - 1.0))
            .collect()
    };
    let rec = 1.25 * 3f32.sqrt() / (n as f32).sqrt();
    vec![
        draw(n * 3, 1.0 / 3f32.sqrt()),
        draw(n * n, rec),
        draw(OUTPUTS * n, 1.0 / (n as f32).sqrt()),
    ]
}

/// The 768 Jacobian rows: each trial once per (step, output), with a
/// one-hot cotangent.
fn rows() -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let trials: Vec<f32> = (0..TRIALS * STEPS * 3)
        .map(|_| rng.random::<f32>())
        .collect();
    let per = STEPS * 3;
    let mut x = Vec::new();
    let mut c = Vec::new();
    for i in 0..TRIALS {
        for t in 0..STEPS {
            for k in 0..OUTPUTS {
                x.extend_from_slice(&trials[i * per..(i + 1) * per]);
                let mut one = vec![0.0f32; STEPS * OUTPUTS];
                one[t * OUTPUTS + k] = 1.0;
                c.extend(one);
            }
        }
    }
    (x, c)
}

/// The per-example candle loop the batched path replaced.
fn candle_loop(spec: &ModelSpec, params: &[Vec<f32>], x: &[f32], c: &[f32]) -> Vec<f32> {
    let cpu = Device::Cpu;
    let layout = spec.params();
    let rec = Var::from_slice(&params[1], (layout[1].shape[0], layout[1].shape[1]), &cpu).unwrap();
    let tensors = layout
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (info, p))| {
            let t = if i == 1 {
                rec.as_tensor().clone()
            } else {
                Tensor::from_slice(p, info.shape.as_slice(), &cpu).unwrap()
            };
            (info.name.clone(), t)
        })
        .collect();
    let net = Network::new(spec, VarBuilder::from_tensors(tensors, DType::F32, &cpu)).unwrap();
    let n = x.len() / (STEPS * 3);
    let mut out = Vec::new();
    for e in 0..n {
        let xe = Tensor::from_slice(&x[e * STEPS * 3..(e + 1) * STEPS * 3], (1, STEPS, 3), &cpu)
            .unwrap();
        let y = net.forward(&Input::Sequence(xe)).unwrap();
        let ce = Tensor::from_slice(
            &c[e * STEPS * OUTPUTS..(e + 1) * STEPS * OUTPUTS],
            y.shape(),
            &cpu,
        )
        .unwrap();
        let g = (y * ce).unwrap().sum_all().unwrap().backward().unwrap();
        out.extend(
            g.get(&rec)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
    }
    out
}

fn bench(c: &mut Criterion) {
    let (x, cot) = rows();
    let n_rows = x.len() / (STEPS * 3);
    let input = ProbeInput::Real {
        x: &x,
        n: n_rows,
        len: STEPS * 3,
    };
    let mut group = c.benchmark_group("tangent_kernel");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for n in [64, 300] {
        let spec = spec(n);
        let params = weights(n);
        group.bench_function(format!("bptt_gradients/{n}"), |b| {
            b.iter(|| {
                black_box(output_gradients(&spec, &params, &input, Some(&cot), "w_rec").unwrap())
            })
        });
        group.bench_function(format!("kernel/{n}"), |b| {
            b.iter(|| {
                black_box(gradient_kernel(&spec, &params, &input, Some(&cot), "w_rec").unwrap())
            })
        });
        if n == 64 {
            // The reference agrees with the batched path before it is timed.
            let fast = output_gradients(&spec, &params, &input, Some(&cot), "w_rec").unwrap();
            let slow = candle_loop(&spec, &params, &x, &cot);
            for (a, b) in fast.values.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
            group.bench_function(format!("candle_loop/{n}"), |b| {
                b.iter(|| black_box(candle_loop(&spec, &params, &x, &cot)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
