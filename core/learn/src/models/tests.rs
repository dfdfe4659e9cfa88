//! Helpers the model files' tests share, and the tests of other parts
//! that build models: deterministic random weights and a
//! finite-difference gradient check.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::spec::Role;

/// Deterministic random weights for `model`, in [`ModelSpec::params`]
/// order: matrices uniform with variance `1 / fan_in`, embeddings
/// uniform in [-1, 1], biases in [-0.1, 0.1] and gains in [0.9, 1.1]
/// (not zero and one, so a gradient check sees every term).
pub(crate) fn birth_weights(model: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    model
        .params()
        .iter()
        .map(|p| {
            let (centre, half) = match p.role {
                Role::Matrix { fan_in } => (0.0, (3.0 / fan_in as f32).sqrt()),
                Role::Embedding => (0.0, 1.0),
                Role::Bias => (0.0, 0.1),
                Role::Gain => (1.0, 0.1),
            };
            (0..p.len())
                .map(|_| centre + half * (2.0 * rng.random::<f32>() - 1.0))
                .collect()
        })
        .collect()
}

/// A CPU `VarMap` holding [`birth_weights`] under the layout's names.
pub(crate) fn random_varmap(model: &ModelSpec, seed: u64, dtype: DType) -> VarMap {
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().unwrap();
        for (info, values) in model.params().iter().zip(birth_weights(model, seed)) {
            let t = Tensor::from_vec(values, info.shape.as_slice(), &Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .unwrap();
            data.insert(info.name.clone(), Var::from_tensor(&t).unwrap());
        }
    }
    varmap
}

/// The values of variable `name`, flattened.
pub(crate) fn values(varmap: &VarMap, name: &str) -> Vec<f64> {
    let var = variable(varmap, name);
    let t = var.as_tensor().flatten_all().unwrap();
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn variable(varmap: &VarMap, name: &str) -> Var {
    let data = varmap.data().lock().unwrap();
    data.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no variable {name}"))
}

/// Checks autograd against central finite differences on three entries
/// of each named (f64) variable, for the loss `sum(c * forward())` with
/// fixed random `c`.
pub(crate) fn assert_gradients_match(
    varmap: &VarMap,
    forward: impl Fn() -> candle_core::Result<Tensor>,
    names: &[&str],
) {
    let y = forward().unwrap();
    assert_eq!(y.dtype(), DType::F64, "the check's tolerance is for f64");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(99);
    let c: Vec<f64> = (0..y.elem_count())
        .map(|_| rng.random::<f64>() - 0.5)
        .collect();
    let c = Tensor::from_vec(c, y.shape(), y.device()).unwrap();
    let loss = |y: Tensor| (y * &c).and_then(|l| l.sum_all()).unwrap();
    let grads = loss(y).backward().unwrap();
    let eps = 1e-5;
    for &name in names {
        let var = variable(varmap, name);
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reaches {name}"));
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(g.iter().any(|&v| v != 0.0), "{name}'s gradient is zero");
        let base = values(varmap, name);
        let last = base.len() - 1;
        let mut at = vec![0, last / 2, last];
        at.dedup();
        for i in at {
            let value_at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap())
                    .unwrap();
                loss(forward().unwrap()).to_scalar::<f64>().unwrap()
            };
            let fd = (value_at(eps) - value_at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap())
                .unwrap();
            assert!(
                (fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()),
                "{name}[{i}]: autograd {} but finite differences {fd}",
                g[i]
            );
        }
    }
}
