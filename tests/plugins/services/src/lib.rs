//! `services`: a plugin that exercises every host service through the C ABI
//! and checks their answers against each other, for the tests. Its suite
//! `consistency` expects an MLP with one hidden layer (`layers.0`, `layers.1`)
//! on classification data and a real gene named `lr`, and writes:
//!
//! - `readout_error`: max |outputs - (hidden.0 W1^T + b1)| over the held-out
//!   examples, with the outputs, the hidden layer and the weights each
//!   fetched from the host;
//! - `gradient_error`: max |d(sum_k c_k out_k)/dW1 - c (x) hidden.0| over
//!   the examples, for a cotangent `c` that weighs output k by k + 1 (the
//!   last layer is linear, so the gradient is that outer product);
//! - `kernel_error`: max |K - G G^T| / max |G G^T| for the kernel `K` the
//!   host computes from those gradients and their Gram matrix computed
//!   here;
//! - `learned_change`: the Frobenius norm of learned minus birth `layers.0.weight`;
//! - `lr`: the gene `lr`, found by name;
//! - `birth_loss`: the first point of the learning curve.
//!
//! Its suite `undeclared` does not declare that it reads weights, asks for
//! them anyway and writes `refused` = 1 when the host refuses with a
//! message that says why.

use lineage_plugin::{
    Batch, Config, Data, Error, Evaluate, Input, Metric, Offering, Plugin, Scores, Stage,
};

/// Examples of the held-out set used (enough to be meaningful, few enough
/// to be quick).
const EXAMPLES: usize = 16;

struct Consistency;

fn organism(batch: &Batch<'_>, i: usize) -> Result<[f64; 6], Error> {
    let Data::Labeled { x, .. } = batch.heldout(i)? else {
        return Err(Error::new("services expects classification data"));
    };
    let width = x.shape()[1];
    let n = EXAMPLES.min(x.shape()[0]);
    let input = Input::Real {
        x: &x.data[..n * width],
        n,
    };
    let out = batch.outputs(i, Stage::Learned, input)?;
    let hidden = batch.hidden(i, Stage::Learned, "hidden.0", input)?;
    let w1 = batch.weights(i, "layers.1.weight", Stage::Learned)?;
    let b1 = batch.weights(i, "layers.1.bias", Stage::Learned)?;
    let (classes, h) = (w1.shape()[0], w1.shape()[1]);
    if out.shape() != [n, classes] || hidden.shape() != [n, h] {
        return Err(Error::new(format!(
            "shapes: outputs {:?}, hidden {:?}, W1 {:?}",
            out.shape(),
            hidden.shape(),
            w1.shape()
        )));
    }
    let mut readout_error = 0f64;
    for e in 0..n {
        for k in 0..classes {
            let mut z = f64::from(b1.data[k]);
            for j in 0..h {
                z += f64::from(w1.data[k * h + j]) * f64::from(hidden.data[e * h + j]);
            }
            readout_error = readout_error.max((z - f64::from(out.data[e * classes + k])).abs());
        }
    }
    let cotangent: Vec<f32> = (0..n * classes).map(|i| (i % classes + 1) as f32).collect();
    let grads = batch.gradients(
        i,
        Stage::Learned,
        "layers.1.weight",
        input,
        Some(&cotangent),
    )?;
    if grads.shape() != [n, classes, h] {
        return Err(Error::new(format!("gradient shape {:?}", grads.shape())));
    }
    let mut gradient_error = 0f64;
    for e in 0..n {
        for k in 0..classes {
            for j in 0..h {
                let expected = (k + 1) as f64 * f64::from(hidden.data[e * h + j]);
                let got = f64::from(grads.data[(e * classes + k) * h + j]);
                gradient_error = gradient_error.max((got - expected).abs());
            }
        }
    }
    let kernel = batch.kernel(
        i,
        Stage::Learned,
        "layers.1.weight",
        input,
        Some(&cotangent),
    )?;
    if kernel.shape() != [n, n] {
        return Err(Error::new(format!("kernel shape {:?}", kernel.shape())));
    }
    let per = classes * h;
    let (mut kernel_error, mut largest) = (0f64, 0f64);
    for a in 0..n {
        for b in 0..n {
            let gram: f64 = (0..per)
                .map(|p| f64::from(grads.data[a * per + p]) * f64::from(grads.data[b * per + p]))
                .sum();
            kernel_error = kernel_error.max((f64::from(kernel.data[a * n + b]) - gram).abs());
            largest = largest.max(gram.abs());
        }
    }
    let kernel_error = kernel_error / largest.max(f64::MIN_POSITIVE);
    let birth = batch.weights(i, "layers.0.weight", Stage::Birth)?;
    let learned = batch.weights(i, "layers.0.weight", Stage::Learned)?;
    let learned_change = birth
        .data
        .iter()
        .zip(learned.data)
        .map(|(a, b)| f64::from(b - a).powi(2))
        .sum::<f64>()
        .sqrt();
    let lr = batch.gene("lr")?;
    let lr = batch.genome(i)?.genes[lr.start];
    let curve = batch.curve(i)?;
    let birth_loss = f64::from(curve.points.first().ok_or("no curve")?.heldout);
    Ok([
        readout_error,
        gradient_error,
        kernel_error,
        learned_change,
        lr,
        birth_loss,
    ])
}

impl Evaluate for Consistency {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        for i in 0..batch.len() {
            scores.row_mut(i).copy_from_slice(&organism(batch, i)?);
        }
        // Bad requests are errors, not crashes.
        let bad = batch
            .weights(0, "no.such.weight", Stage::Birth)
            .unwrap_err();
        if !bad.0.contains("no weight `no.such.weight`") {
            return Err(Error::new(format!("unexpected message: {bad}")));
        }
        let outside = batch.genome(batch.len()).unwrap_err();
        if !outside.0.contains("out of range") {
            return Err(Error::new(format!("unexpected message: {outside}")));
        }
        Ok(())
    }
}

struct Undeclared;

impl Evaluate for Undeclared {
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
        for i in 0..batch.len() {
            let refused = match batch.weights(i, "layers.0.weight", Stage::Learned) {
                Ok(_) => false,
                Err(e) if e.0.contains("does not declare it") => true,
                Err(e) => return Err(Error::new(format!("unexpected message: {e}"))),
            };
            scores.row_mut(i)[0] = f64::from(u8::from(refused));
        }
        Ok(())
    }
}

struct Services;

impl Plugin for Services {
    const NAME: &'static str = "services";
    const VERSION: &'static str = "0.0.1";

    fn offerings() -> Vec<Offering> {
        vec![
            Offering::suite(
                "consistency",
                "host services checked against each other",
                vec![
                    Metric::minimize("readout_error"),
                    Metric::minimize("gradient_error"),
                    Metric::minimize("kernel_error"),
                    Metric::maximize("learned_change"),
                    Metric::maximize("lr"),
                    Metric::minimize("birth_loss"),
                ],
            )
            .reading_weights(),
            Offering::suite(
                "undeclared",
                "asks for weights without declaring it",
                vec![Metric::maximize("refused")],
            ),
        ]
    }

    fn create(offering: &str, config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        config.expect_keys(&[])?;
        Ok(match offering {
            "undeclared" => Box::new(Undeclared),
            _ => Box::new(Consistency),
        })
    }
}

lineage_plugin::export_plugin!(Services);
