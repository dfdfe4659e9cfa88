//! Environments (ABI 4): the world a lifetime learns in, supplied by a
//! plugin. An offering made with [`Offering::environment`](crate::Offering::environment)
//! is created by [`Plugin::environment`](crate::Plugin::environment) from
//! the scenario's environment table, describes its task once
//! ([`Environment::describe`]), and fills host-owned buffers with examples
//! ([`Environment::fill`]): the held-out set and each probe set once per
//! run, training data once per lifetime.
//!
//! Every fill gets a 64-bit seed from the host (for training data: drawn
//! from the organism's own random stream) and must draw from nothing else,
//! [`Rng`] for instance: the same scenario and seed then give the same
//! run whatever the thread count, after a resume, and in or out of
//! process. Fills may run on several threads at once.

use crate::Error;

/// What a model must learn from an environment, with its sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Real inputs to real targets, scored by mean squared error.
    Regression {
        /// Features per example.
        inputs: usize,
        /// Targets per example.
        outputs: usize,
    },
    /// Real inputs to one of `classes` labels, scored by cross-entropy.
    Classification {
        /// Features per example.
        inputs: usize,
        /// Number of classes.
        classes: usize,
    },
    /// Real-valued sequences with a label at each step (or
    /// [`IGNORE`] where no loss scores it).
    Sequences {
        /// Features per step.
        inputs: usize,
        /// Number of classes.
        classes: usize,
        /// Steps per sequence.
        steps: usize,
    },
    /// Token windows: predict each next token.
    NextToken {
        /// Vocabulary size.
        vocab: usize,
        /// Tokens of context a model reads (a window holds `context + 1`).
        context: usize,
    },
}

/// The label of a sequence step that no loss scores.
pub const IGNORE: u32 = u32::MAX;

/// A probe set: examples of the task's kind (classification or sequences)
/// that every lifetime is also scored on at each point of its learning
/// curve, recorded under `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Its name in records, `[a-z0-9_]+`.
    pub name: String,
    /// How many examples it holds.
    pub examples: usize,
    /// The labels a prediction is restricted to (`None`: every label).
    pub choices: Option<Vec<u32>>,
}

/// What an environment instance declares once, right after it is created.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// The task.
    pub task: Task,
    /// Examples (windows for tokens) in the held-out set.
    pub heldout: usize,
    /// Probe sets, filled with [`Part::Probe`] in this order.
    pub probes: Vec<Probe>,
    /// The input direction the task depends on, `inputs` values (what a
    /// low-rank initial matrix can be aligned with), if it has one.
    pub direction: Option<Vec<f32>>,
}

impl Description {
    /// A task with a held-out set of `heldout` examples, no probe sets and
    /// no task direction.
    pub fn new(task: Task, heldout: usize) -> Description {
        Description {
            task,
            heldout,
            probes: Vec::new(),
            direction: None,
        }
    }
}

/// Which examples a fill asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// One lifetime's training data.
    Train,
    /// The held-out set (once per run).
    Heldout,
    /// Probe set `i` of [`Description::probes`] (once per run).
    Probe(usize),
}

/// An environment instance: describes its task and fills examples.
pub trait Environment: Send + Sync {
    /// The task, held-out size, probe sets and direction; called once.
    fn describe(&self) -> Description;
    /// Writes every example of `out` (`out.len()` of them) for `part`,
    /// drawn from `seed` and nothing else.
    fn fill(&self, part: Part, seed: u64, out: &mut Examples<'_>) -> Result<(), Error>;
}

/// The host's buffers for one fill: `len()` examples of the task's kind,
/// row-major, prefilled so that anything left unwritten is caught. Buffers
/// the task does not use are empty.
#[derive(Debug)]
pub struct Examples<'a> {
    n: usize,
    steps: usize,
    /// Inputs: `len() x inputs`, or `len() x steps x inputs` for sequences.
    pub x: &'a mut [f32],
    /// Regression targets: `len() x outputs`.
    pub y: &'a mut [f32],
    /// Labels: one per example, or `len() x steps` for sequences.
    pub labels: &'a mut [u32],
    /// Token windows: `len() x (context + 1)`.
    pub tokens: &'a mut [u32],
}

impl<'a> Examples<'a> {
    /// Wraps buffers for `n` examples of `steps` steps (tokens per window
    /// for token tasks; 0 for single examples). For tests of an
    /// [`Environment`] outside a host, see [`Owned`].
    pub fn new(
        n: usize,
        steps: usize,
        x: &'a mut [f32],
        y: &'a mut [f32],
        labels: &'a mut [u32],
        tokens: &'a mut [u32],
    ) -> Examples<'a> {
        Examples {
            n,
            steps,
            x,
            y,
            labels,
            tokens,
        }
    }

    /// Examples (windows) to write.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Steps per sequence, or tokens per window; 0 for single examples.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Example `i`'s inputs (all its steps for sequences).
    pub fn x_of(&mut self, i: usize) -> &mut [f32] {
        let width = self.x.len() / self.n.max(1);
        &mut self.x[i * width..(i + 1) * width]
    }

    /// Example `i`'s labels (one, or one per step for sequences).
    pub fn labels_of(&mut self, i: usize) -> &mut [u32] {
        let width = self.labels.len() / self.n.max(1);
        &mut self.labels[i * width..(i + 1) * width]
    }

    /// Example `i`'s targets.
    pub fn y_of(&mut self, i: usize) -> &mut [f32] {
        let width = self.y.len() / self.n.max(1);
        &mut self.y[i * width..(i + 1) * width]
    }

    /// Window `i`'s tokens.
    pub fn tokens_of(&mut self, i: usize) -> &mut [u32] {
        let width = self.tokens.len() / self.n.max(1);
        &mut self.tokens[i * width..(i + 1) * width]
    }
}

/// Buffers of one fill, owned: for tests of an [`Environment`] without a
/// host. Prefilled as the host prefills them (NaN, and `u32::MAX - 1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Owned {
    /// Examples.
    pub n: usize,
    /// Steps (tokens per window for tokens, 0 for single examples).
    pub steps: usize,
    /// Inputs.
    pub x: Vec<f32>,
    /// Targets.
    pub y: Vec<f32>,
    /// Labels.
    pub labels: Vec<u32>,
    /// Tokens.
    pub tokens: Vec<u32>,
}

/// What the host prefills labels and tokens with: out of range for every
/// task, and not [`IGNORE`].
pub const UNSET: u32 = u32::MAX - 1;

impl Owned {
    /// Buffers for `n` examples of `task`.
    pub fn new(task: &Task, n: usize) -> Owned {
        let (steps, x, y, labels, tokens) = match *task {
            Task::Regression { inputs, outputs } => (0, n * inputs, n * outputs, 0, 0),
            Task::Classification { inputs, .. } => (0, n * inputs, 0, n, 0),
            Task::Sequences { inputs, steps, .. } => (steps, n * steps * inputs, 0, n * steps, 0),
            Task::NextToken { context, .. } => (context + 1, 0, 0, 0, n * (context + 1)),
        };
        Owned {
            n,
            steps,
            x: vec![f32::NAN; x],
            y: vec![f32::NAN; y],
            labels: vec![UNSET; labels],
            tokens: vec![UNSET; tokens],
        }
    }

    /// The buffers as a fill sees them.
    pub fn examples(&mut self) -> Examples<'_> {
        Examples::new(
            self.n,
            self.steps,
            &mut self.x,
            &mut self.y,
            &mut self.labels,
            &mut self.tokens,
        )
    }
}

/// A small, fast, seedable random stream (xoshiro256++ seeded through
/// SplitMix64) for environments, so that a plugin needs no dependency to
/// draw from the host's seed alone.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_depends_on_its_seed_only() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let c = Rng::new(8).next_u64();
        assert_eq!(a, b);
        assert_ne!(a[0], c);
        let mut r = Rng::new(1);
        let n = 20_000;
        let draws: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!((0..1000).all(|_| r.below(3) < 3));
    }

    #[test]
    fn owned_buffers_have_the_task_shape_and_are_prefilled() {
        let mut o = Owned::new(
            &Task::Sequences {
                inputs: 3,
                classes: 2,
                steps: 5,
            },
            4,
        );
        assert_eq!((o.x.len(), o.labels.len(), o.steps), (60, 20, 5));
        assert!(o.x.iter().all(|v| v.is_nan()) && o.labels.iter().all(|&l| l == UNSET));
        let mut e = o.examples();
        e.x_of(1)[0] = 1.0;
        e.labels_of(3)[4] = 0;
        assert_eq!((o.x[15], o.labels[19]), (1.0, 0));
        let t = Owned::new(
            &Task::NextToken {
                vocab: 9,
                context: 3,
            },
            2,
        );
        assert_eq!((t.tokens.len(), t.steps), (8, 4));
    }
}
