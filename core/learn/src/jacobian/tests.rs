//! Tests of `jacobian`: per-example gradients against finite differences
//! and against one backward pass per example, and the tangent kernel.

use super::*;
use crate::measure::outputs;
use crate::measure::tests::*;
use crate::spec::{Activation, RnnSpec, SequenceInput};

/// Per-example gradients of `sum_k c[i, k] out[i, k]` for `weight`
/// against central differences of [`outputs`], at every `stride`-th
/// entry.
fn check_against_differences(spec: &ModelSpec, weight: &str, stride: usize) {
    let params = weights(spec, 5);
    let input = examples(spec);
    let y = outputs(spec, &params, &input.view()).unwrap();
    let c = uniform(y.values.len(), 6);
    let g = output_gradients(spec, &params, &input.view(), Some(&c), weight).unwrap();
    let which = spec.params().iter().position(|p| p.name == weight).unwrap();
    let len = params[which].len();
    let mut shape = vec![3];
    shape.extend(&spec.params()[which].shape);
    assert_eq!(g.shape, shape);
    assert!(
        g.values.iter().any(|&v| v.abs() > 1e-3),
        "{weight}: {:?}",
        g.values
    );
    let per = y.values.len() / 3;
    let eps = 1e-2f32;
    for j in (0..len).step_by(stride) {
        let at = |value: f32| {
            let mut p = params.clone();
            p[which][j] = value;
            outputs(spec, &p, &input.view()).unwrap().values
        };
        let (hi, lo) = (params[which][j] + eps, params[which][j] - eps);
        let (up, down) = (at(hi), at(lo));
        for i in 0..3 {
            let delta: f64 = (i * per..(i + 1) * per)
                .map(|k| f64::from(c[k]) * f64::from(up[k] - down[k]))
                .sum();
            let fd = delta / f64::from(hi - lo);
            let got = f64::from(g.values[i * len + j]);
            assert!(
                (fd - got).abs() <= 2e-3 + 1e-2 * got.abs(),
                "{weight}[{j}], example {i}: autograd {got}, differences {fd}"
            );
        }
    }
}

#[test]
fn mlp_gradients_match_finite_differences() {
    check_against_differences(&mlp(), "layers.0.weight", 1);
}

#[test]
fn rnn_gradients_match_finite_differences() {
    check_against_differences(&rnn(), "w_rec", 1);
}

#[test]
fn lstm_gradients_match_finite_differences() {
    for weight in ["w_ih", "w_hh", "b_ih", "b_hh"] {
        check_against_differences(&lstm(), weight, 1);
    }
}

#[test]
fn transformer_gradients_match_finite_differences() {
    check_against_differences(&transformer(), "layers.0.attn.qkv", 5);
}

/// The batched MLP path gives what the per-example loop gives, for every
/// layer's weight and bias, with and without a cotangent.
#[test]
fn batched_mlp_gradients_equal_the_loop() {
    for spec in [mlp(), mlp_lm()] {
        let params = weights(&spec, 10);
        let input = examples(&spec);
        let reads = Probe::of(&spec).unwrap();
        let y = outputs(&spec, &params, &input.view()).unwrap();
        let c = uniform(y.values.len(), 13);
        for (target, info) in spec.params().iter().enumerate() {
            if info.name == "embed" {
                continue;
            }
            for cot in [None, Some(c.as_slice())] {
                let batched =
                    output_gradients(&spec, &params, &input.view(), cot, &info.name).unwrap();
                let looped =
                    looped_gradients(&spec, &params, &reads, &input.view(), cot, target).unwrap();
                assert_eq!(batched.values.len(), looped.len(), "{}", info.name);
                for (b, l) in batched.values.iter().zip(&looped) {
                    assert!(
                        (b - l).abs() <= 1e-6 * (1.0 + l.abs()),
                        "{}: {b} vs {l}",
                        info.name
                    );
                }
            }
        }
    }
}

/// The RNN's batched back-propagation through time gives what one
/// candle backward pass per example gives, for every parameter, with
/// and without a cotangent, for token and real inputs, with and without
/// biases and leak, and over more examples than one chunk holds.
#[test]
fn batched_rnn_gradients_equal_the_loop() {
    let relu_dense = ModelSpec::Rnn(RnnSpec {
        input: SequenceInput::Dense { dim: 3 },
        hidden: 5,
        outputs: 3,
        alpha: 1.0,
        activation: Activation::Relu,
        bias: false,
    });
    let n = crate::fast::rnn::GRADIENT_ROWS + 7;
    let long = Owned::Real(uniform(n * 4 * 3, 21), n, 4 * 3);
    for (spec, input) in [
        (rnn(), examples(&rnn())),
        (relu_dense.clone(), examples(&relu_dense)),
        (relu_dense.clone(), long),
    ] {
        let params = weights(&spec, 17);
        let reads = Probe::of(&spec).unwrap();
        let y = outputs(&spec, &params, &input.view()).unwrap();
        let c = uniform(y.values.len(), 19);
        for (target, info) in spec.params().iter().enumerate() {
            for cot in [None, Some(c.as_slice())] {
                let batched =
                    output_gradients(&spec, &params, &input.view(), cot, &info.name).unwrap();
                let looped =
                    looped_gradients(&spec, &params, &reads, &input.view(), cot, target).unwrap();
                let mut shape = vec![input.view().n()];
                shape.extend(&info.shape);
                assert_eq!(batched.shape, shape, "{}", info.name);
                assert_eq!(batched.values.len(), looped.len(), "{}", info.name);
                for (b, l) in batched.values.iter().zip(&looped) {
                    assert!(
                        (b - l).abs() <= 1e-5 * (1.0 + l.abs()),
                        "{}: {b} vs {l}",
                        info.name
                    );
                }
            }
        }
    }
}

/// The blocked Gram product equals the plain one, across block edges,
/// and is exactly symmetric.
#[test]
fn blocked_gram_equals_the_full_product() {
    for n in [1, GRAM_BLOCK - 1, GRAM_BLOCK, 2 * GRAM_BLOCK + 5] {
        let len = 9;
        let g = uniform(n * len, n as u64);
        let mut k = vec![1.0f32; n * n];
        gram_add(&mut k, &g, n, len);
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..len)
                    .map(|p| f64::from(g[i * len + p]) * f64::from(g[j * len + p]))
                    .sum();
                let got = f64::from(k[i * n + j]) - 1.0;
                assert!(
                    (got - dot).abs() < 1e-5,
                    "n {n}, ({i}, {j}): {got} vs {dot}"
                );
                assert_eq!(k[i * n + j], k[j * n + i]);
            }
        }
    }
}

/// The kernel is the Gram matrix of the per-example gradients, for one
/// weight and for every parameter together.
#[test]
fn kernel_is_the_gram_matrix_of_the_gradients() {
    for spec in [mlp(), rnn(), gru(), lstm()] {
        let params = weights(&spec, 23);
        let input = examples(&spec);
        let n = input.view().n();
        let y = outputs(&spec, &params, &input.view()).unwrap();
        let c = uniform(y.values.len(), 29);
        let mut all = vec![0.0f64; n * n];
        for info in spec.params() {
            let g = output_gradients(&spec, &params, &input.view(), Some(&c), &info.name)
                .unwrap()
                .values;
            let len = g.len() / n;
            let gram: Vec<f64> = (0..n * n)
                .map(|ij| {
                    let (i, j) = (ij / n, ij % n);
                    (0..len)
                        .map(|p| f64::from(g[i * len + p]) * f64::from(g[j * len + p]))
                        .sum()
                })
                .collect();
            let k = gradient_kernel(&spec, &params, &input.view(), Some(&c), &info.name).unwrap();
            assert_eq!(k.shape, [n, n]);
            for (a, b) in k.values.iter().zip(&gram) {
                assert!(
                    (f64::from(*a) - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{a} vs {b}"
                );
            }
            all.iter_mut().zip(&gram).for_each(|(a, g)| *a += g);
        }
        let k = gradient_kernel(&spec, &params, &input.view(), Some(&c), "*").unwrap();
        for (a, b) in k.values.iter().zip(&all) {
            assert!(
                (f64::from(*a) - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{a} vs {b}"
            );
        }
    }
    let err = gradient_kernel(
        &rnn(),
        &weights(&rnn(), 1),
        &examples(&rnn()).view(),
        None,
        "w",
    )
    .unwrap_err();
    assert!(matches!(err, ProbeError::UnknownWeight { .. }), "{err}");
}

/// With all-ones cotangents, the per-example gradients add up to the
/// gradient of the summed outputs of the whole batch.
#[test]
fn per_example_gradients_sum_to_the_batch_gradient() {
    for (spec, weight) in [
        (mlp_lm(), "embed"),
        (gru(), "w_hh"),
        (lstm(), "w_hh"),
        (lstm(), "b_ih"),
        (transformer(), "pos"),
        (rnn(), "b_out"),
    ] {
        let params = weights(&spec, 7);
        let input = examples(&spec);
        let g = output_gradients(&spec, &params, &input.view(), None, weight).unwrap();
        let (net, vars) = direct(&spec, &params);
        let which = spec.params().iter().position(|p| p.name == weight).unwrap();
        let y = net.forward(&direct_input(&spec, &input)).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let want: Vec<f32> = grads
            .get(&vars[which])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let len = want.len();
        for (j, w) in want.iter().enumerate() {
            let sum: f32 = (0..3).map(|i| g.values[i * len + j]).sum();
            assert!(
                (sum - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{weight}[{j}]: {sum} vs {w}"
            );
        }
    }
}
