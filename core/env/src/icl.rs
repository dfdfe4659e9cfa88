//! In-context learning worlds (Chan et al. 2022 with Reddy's synthetic
//! classes, 2024; `../shared/design/science.md`, section 3).
//!
//! `classes` class means `mu_k ~ N(0, I / D)` and `labels` label vectors
//! `N(0, I / D)` come from the environment's seed. An exemplar of class k is
//! `(mu_k + eps eta) / sqrt(1 + eps^2)`, `eta ~ N(0, I / D)`. Class k has
//! label `k mod labels`; with `labels_per_class = m` it has m labels,
//! `(k + j labels / m) mod labels` for j < m, and each sequence draws one
//! of them per class (Chan et al.'s polysemous classes); with `dynamic`
//! labels each sequence maps its classes to labels afresh. A sequence is `pairs`
//! (item, label) pairs and a query item, `2 pairs + 1` tokens of
//! `[position ; content]`; the label to predict is the query's, every other
//! step is `IGNORE`.
//!
//! - **Bursty** sequences (a fraction `p_bursty`): the context holds
//!   `pairs / burstiness` distinct classes, each `burstiness` times, one of
//!   them the query's, shuffled. The others are i.i.d.: every context item
//!   and the query drawn independently.
//! - **Zipf**: classes are drawn with `p(k) ∝ (k + 1)^-zipf` (0: uniform),
//!   in bursty and i.i.d. sequences alike, as in Chan et al. (Reddy's
//!   generator draws a bursty sequence's classes uniformly and applies the
//!   exponent to the i.i.d. ones only).
//! - **Novel classes** (a fraction `p_novel` of sequences): the sequence's
//!   classes are drawn uniformly from `novel_classes` classes whose means
//!   are drawn for that sequence alone (only the ones it uses), class j
//!   labelled `j mod labels`; the bursty/i.i.d. split applies to them too.
//! - **Positions**: a one-hot of the token's index (`onehot`, `2 pairs + 1`
//!   wide), or Reddy's: the same one-hot placed at a random offset, per
//!   sequence, inside `2 max_pairs + 1` slots (`random_offset`).
//!
//! A lifetime trains on `budget` fresh sequences; the held-out set is
//! `heldout` sequences from the seed, of the same distribution.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{Batch, EnvError, Environment, IGNORE, Lifetime, Task, invalid};

/// Mixed into the seed for the probe sets' stream.
const PROBE_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// The most classes, labels, content dimensions or context pairs.
pub const MAX_ICL_SIZE: usize = 1 << 20;

/// The steepest Zipf law a world takes: at 4 the top class has 92% of the
/// draws (1 / zeta(4)).
pub const MAX_ZIPF: f64 = 4.0;

/// How a token's position is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    /// A one-hot of the token's index, `2 pairs + 1` wide.
    OneHot,
    /// The one-hot at a random offset inside `2 max_pairs + 1` slots
    /// (Reddy's encoding).
    RandomOffset {
        /// Slots for up to this many pairs.
        max_pairs: usize,
    },
}

/// The parameters of an [`Icl`] world.
#[derive(Clone, Debug, PartialEq)]
pub struct IclParams {
    /// Trained classes K.
    pub classes: usize,
    /// Content dimensions D.
    pub dim: usize,
    /// Within-class variation.
    pub eps: f32,
    /// Labels L.
    pub labels: usize,
    /// Context pairs N.
    pub pairs: usize,
    /// Copies of the query's class in a bursty context (divides `pairs`).
    pub burstiness: usize,
    /// Fraction of bursty sequences.
    pub p_bursty: f64,
    /// Zipf exponent over the trained classes.
    pub zipf: f64,
    /// Fraction of sequences built from freshly drawn classes.
    pub p_novel: f64,
    /// Classes a novel sequence draws from.
    pub novel_classes: usize,
    /// Labels each class carries, one drawn per sequence (1: a class
    /// has one label).
    pub labels_per_class: usize,
    /// Labels re-drawn per sequence.
    pub dynamic: bool,
    /// Position encoding.
    pub positions: Positions,
    /// Held-out sequences.
    pub heldout: usize,
    /// Sequences of each probe set scored along every lifetime
    /// ([`Environment::probe_sets`]; 0: none).
    pub probe_sequences: usize,
    /// Seed of the classes, labels, held-out set and probe sets.
    pub seed: u64,
}

impl Default for IclParams {
    /// The small-scale recipe of science.md.
    fn default() -> IclParams {
        IclParams {
            classes: 512,
            dim: 32,
            eps: 0.1,
            labels: 32,
            pairs: 8,
            burstiness: 4,
            p_bursty: 0.9,
            zipf: 0.0,
            p_novel: 0.0,
            novel_classes: 128,
            labels_per_class: 1,
            dynamic: false,
            positions: Positions::OneHot,
            heldout: 1000,
            probe_sequences: 500,
            seed: 0,
        }
    }
}

/// An in-context learning world; see the module docs.
#[derive(Clone, Debug)]
pub struct Icl {
    p: IclParams,
    /// Class means `[classes, dim]`.
    means: Vec<f32>,
    /// Label vectors `[labels, dim]`.
    label_vectors: Vec<f32>,
    /// Cumulative class probabilities (the Zipf law), ending at 1.
    cumulative: Vec<f64>,
    heldout: Arc<Batch>,
    probe_sets: Vec<crate::ProbeSet>,
}

/// What one drawn sequence holds, for tests and probes.
#[derive(Clone, Debug, PartialEq)]
pub struct IclSequence {
    /// The context's classes, in order (novel classes numbered from 0
    /// within the sequence's pool).
    pub context: Vec<usize>,
    /// The query's class.
    pub query: usize,
    /// The label of each context item, then the query's.
    pub labels: Vec<u32>,
    /// Whether the context is bursty.
    pub bursty: bool,
    /// Whether the classes are novel.
    pub novel: bool,
}

/// The probe sets that tell in-context from in-weights learning
/// (science.md, section 3), each a distribution of sequences with the
/// world's tokens; the label to predict is the query's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IclProbe {
    /// `icl_novel`: two freshly drawn classes, `pairs / 2` shots each,
    /// labelled 0 and 1 in an order drawn per sequence; the query is one
    /// of them. Scored over the two labels (chance 1/2) and over all.
    Novel,
    /// `icl_flip`: a bursty context of trained classes with every label
    /// shifted by one (class k labelled `(k + 1) mod labels`): in-weights
    /// knowledge predicts the old label, the context the new one.
    Flip,
    /// `iwl`: a trained class (drawn from the Zipf law) whose exemplars
    /// are absent from the context: only the weights know its label. With
    /// `labels_per_class = m` the answer is the label drawn for the
    /// sequence, one of m the weights cannot tell apart: at most 1/m.
    Iwl,
    /// `iwl_common`: as `iwl`, the query drawn uniformly from the 10% most
    /// frequent classes (the first by rank; without a Zipf law every class
    /// is as frequent, and this is `iwl` on those classes).
    IwlCommon,
    /// `iwl_rare`: as `iwl`, the query from the 50% least frequent classes.
    IwlRare,
}

impl IclProbe {
    /// Every probe, in order.
    pub const ALL: [IclProbe; 5] = [
        IclProbe::Novel,
        IclProbe::Flip,
        IclProbe::Iwl,
        IclProbe::IwlCommon,
        IclProbe::IwlRare,
    ];

    /// Its name in records.
    pub fn name(self) -> &'static str {
        match self {
            IclProbe::Novel => "icl_novel",
            IclProbe::Flip => "icl_flip",
            IclProbe::Iwl => "iwl",
            IclProbe::IwlCommon => "iwl_common",
            IclProbe::IwlRare => "iwl_rare",
        }
    }

    /// The labels a prediction is restricted to, where the probe restricts
    /// them (`icl_novel`: 0 and 1).
    pub fn choices(self) -> Option<&'static [u32]> {
        match self {
            IclProbe::Novel => Some(&[0, 1]),
            _ => None,
        }
    }
}

fn gaussian(rng: &mut (impl Rng + ?Sized), n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| scale * rng.sample::<f32, _>(StandardNormal))
        .collect()
}

fn probability(name: &str, p: f64) -> Result<(), EnvError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(invalid(
            "icl",
            format!("`{name}` is a probability in [0, 1], found {p}"),
        ))
    }
}

impl Icl {
    /// Builds the world: checks `p`, draws the classes and labels and the
    /// held-out set from `p.seed`.
    pub fn new(p: IclParams) -> Result<Icl, EnvError> {
        for (name, v) in [
            ("classes", p.classes),
            ("dim", p.dim),
            ("labels", p.labels),
            ("pairs", p.pairs),
            ("burstiness", p.burstiness),
            ("novel_classes", p.novel_classes),
        ] {
            if !(1..=MAX_ICL_SIZE).contains(&v) {
                return Err(invalid(
                    "icl",
                    format!("`{name}` must be 1 to {MAX_ICL_SIZE}, found {v}"),
                ));
            }
        }
        probability("p_bursty", p.p_bursty)?;
        probability("p_novel", p.p_novel)?;
        if !(p.eps.is_finite() && p.eps >= 0.0) {
            return Err(invalid(
                "icl",
                format!("`eps` must be finite and >= 0, found {}", p.eps),
            ));
        }
        if !(p.zipf.is_finite() && (0.0..=MAX_ZIPF).contains(&p.zipf)) {
            return Err(invalid(
                "icl",
                format!(
                    "`zipf` must be 0 to {MAX_ZIPF}, found {} (a steeper law gives its top class \
                     over 92% of draws, and bursty contexts, which need distinct classes, are \
                     drawn ever more slowly)",
                    p.zipf
                ),
            ));
        }
        if p.labels < 2 {
            return Err(invalid(
                "icl",
                format!("`labels` must be at least 2, found {}", p.labels),
            ));
        }
        if !p.dynamic && !p.classes.is_multiple_of(p.labels) {
            return Err(invalid(
                "icl",
                format!(
                    "`classes` ({}) must be a multiple of `labels` ({}): class k has label k mod labels, and every label needs as many classes (or set `dynamic = true`)",
                    p.classes, p.labels
                ),
            ));
        }
        if p.labels_per_class == 0
            || p.labels_per_class > p.labels
            || !p.labels.is_multiple_of(p.labels_per_class)
        {
            return Err(invalid(
                "icl",
                format!(
                    "`labels_per_class` ({}) must divide `labels` ({}): class k's labels are k + j labels / labels_per_class, mod labels",
                    p.labels_per_class, p.labels
                ),
            ));
        }
        if p.dynamic && p.labels_per_class > 1 {
            return Err(invalid(
                "icl",
                "`dynamic` labels and `labels_per_class` above 1 are two different manipulations; set one of them",
            ));
        }
        if !p.pairs.is_multiple_of(p.burstiness) {
            return Err(invalid(
                "icl",
                format!(
                    "`burstiness` ({}) must divide `pairs` ({}): a bursty context holds pairs / burstiness classes, burstiness times each",
                    p.burstiness, p.pairs
                ),
            ));
        }
        let distinct = p.pairs / p.burstiness;
        if p.p_bursty > 0.0 && distinct > p.classes {
            return Err(invalid(
                "icl",
                format!(
                    "a bursty context needs {distinct} distinct classes (pairs / burstiness), but `classes` is {}",
                    p.classes
                ),
            ));
        }
        if p.p_bursty > 0.0 && p.p_novel > 0.0 && distinct > p.novel_classes {
            return Err(invalid(
                "icl",
                format!(
                    "a bursty novel context needs {distinct} distinct classes, but `novel_classes` is {}",
                    p.novel_classes
                ),
            ));
        }
        if let Positions::RandomOffset { max_pairs } = p.positions
            && max_pairs < p.pairs
        {
            return Err(invalid(
                "icl",
                format!(
                    "`max_pairs` ({max_pairs}) must be at least `pairs` ({}): the positions must have room for the sequence",
                    p.pairs
                ),
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
        let scale = 1.0 / (p.dim as f32).sqrt();
        let means = gaussian(&mut rng, p.classes * p.dim, scale);
        let label_vectors = gaussian(&mut rng, p.labels * p.dim, scale);
        let weights: Vec<f64> = (0..p.classes)
            .map(|k| ((k + 1) as f64).powf(-p.zipf))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        let mut world = Icl {
            p,
            means,
            label_vectors,
            cumulative,
            heldout: Arc::new(Batch::Sequences {
                n: 0,
                steps: 0,
                x: Vec::new(),
                labels: Vec::new(),
            }),
            probe_sets: Vec::new(),
        };
        let heldout = world.p.heldout;
        world.heldout = Arc::new(world.sequences(&mut rng, heldout).0);
        // The probe sets from a stream of their own, so that their size
        // does not change the held-out set (nor the reverse).
        let mut probe_rng = Xoshiro256PlusPlus::seed_from_u64(world.p.seed ^ PROBE_STREAM);
        let n = world.p.probe_sequences;
        if n > 0 {
            for probe in IclProbe::ALL {
                let splits = matches!(probe, IclProbe::IwlCommon | IclProbe::IwlRare);
                if splits && world.p.zipf == 0.0 {
                    // Without a Zipf law every class is as common.
                    continue;
                }
                if let Some((data, _)) = world.probe(probe, &mut probe_rng, n) {
                    world.probe_sets.push(crate::ProbeSet {
                        name: probe.name().into(),
                        data: Arc::new(data),
                        choices: probe.choices().map(<[u32]>::to_vec),
                    });
                }
            }
        }
        Ok(world)
    }

    /// The parameters.
    pub fn params(&self) -> &IclParams {
        &self.p
    }

    /// Steps per sequence: `2 pairs + 1`.
    pub fn steps(&self) -> usize {
        2 * self.p.pairs + 1
    }

    /// Width of the position part of a token.
    pub fn position_width(&self) -> usize {
        match self.p.positions {
            Positions::OneHot => self.steps(),
            Positions::RandomOffset { max_pairs } => 2 * max_pairs + 1,
        }
    }

    /// Width of a token: position and content.
    pub fn token_width(&self) -> usize {
        self.position_width() + self.p.dim
    }

    /// Class `k`'s probability under the Zipf law.
    pub fn class_probability(&self, k: usize) -> f64 {
        self.cumulative[k] - if k == 0 { 0.0 } else { self.cumulative[k - 1] }
    }

    /// A trained class drawn from the Zipf law.
    fn trained_class(&self, rng: &mut dyn RngCore) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.p.classes - 1)
    }

    /// `n` sequences and what was drawn for each.
    pub fn sequences(&self, rng: &mut dyn RngCore, n: usize) -> (Batch, Vec<IclSequence>) {
        let drawn: Vec<IclSequence> = (0..n).map(|_| self.draw(rng)).collect();
        (self.render(rng, &drawn), drawn)
    }

    /// The tokens of `drawn`: exemplars (with their noise), novel classes'
    /// means and random position offsets drawn from `rng`, sequence by
    /// sequence.
    fn render(&self, rng: &mut dyn RngCore, drawn: &[IclSequence]) -> Batch {
        let (steps, width, dim) = (self.steps(), self.token_width(), self.p.dim);
        let n = drawn.len();
        let mut x = vec![0.0f32; n * steps * width];
        let mut labels = vec![IGNORE; n * steps];
        let noise_scale = self.p.eps / (dim as f32).sqrt();
        let norm = 1.0 / (1.0 + self.p.eps * self.p.eps).sqrt();
        for (i, s) in drawn.iter().enumerate() {
            // Novel classes' means, drawn for this sequence only.
            let mut fresh: Vec<(usize, Vec<f32>)> = Vec::new();
            if s.novel {
                for &c in s.context.iter().chain(std::iter::once(&s.query)) {
                    if !fresh.iter().any(|(k, _)| *k == c) {
                        fresh.push((c, gaussian(rng, dim, 1.0 / (dim as f32).sqrt())));
                    }
                }
            }
            let offset = match self.p.positions {
                Positions::OneHot => 0,
                Positions::RandomOffset { .. } => {
                    rng.random_range(0..=self.position_width() - steps)
                }
            };
            let seq = &mut x[i * steps * width..(i + 1) * steps * width];
            for t in 0..steps {
                let token = &mut seq[t * width..(t + 1) * width];
                token[offset + t] = 1.0;
                let content = &mut token[self.position_width()..];
                if t % 2 == 1 {
                    // A label token: the label of the item before it.
                    let l = s.labels[t / 2] as usize;
                    content.copy_from_slice(&self.label_vectors[l * dim..(l + 1) * dim]);
                    continue;
                }
                let class = if t == steps - 1 {
                    s.query
                } else {
                    s.context[t / 2]
                };
                let mean: &[f32] = if s.novel {
                    &fresh
                        .iter()
                        .find(|(k, _)| *k == class)
                        .expect("drawn above")
                        .1
                } else {
                    &self.means[class * dim..(class + 1) * dim]
                };
                for (c, &m) in content.iter_mut().zip(mean) {
                    let eta: f32 = rng.sample(StandardNormal);
                    *c = (m + noise_scale * eta) * norm;
                }
            }
            labels[i * steps + steps - 1] = s.labels[self.p.pairs];
        }
        Batch::Sequences {
            n,
            steps,
            x,
            labels,
        }
    }

    /// `n` sequences of probe set `probe` (see [`IclProbe`]), drawn from
    /// `rng`, and what was drawn; `None` for a probe the world cannot pose
    /// (a two-way context with an odd number of pairs).
    pub fn probe(
        &self,
        probe: IclProbe,
        rng: &mut dyn RngCore,
        n: usize,
    ) -> Option<(Batch, Vec<IclSequence>)> {
        let p = &self.p;
        let mut drawn = Vec::with_capacity(n);
        for _ in 0..n {
            let s = match probe {
                IclProbe::Novel => {
                    if !p.pairs.is_multiple_of(2) {
                        return None;
                    }
                    // Two fresh classes, pairs / 2 shots each, labelled 0
                    // and 1 in an order drawn per sequence.
                    let mut context: Vec<usize> = [0, 1]
                        .iter()
                        .flat_map(|&c| std::iter::repeat_n(c, p.pairs / 2))
                        .collect();
                    context.shuffle(rng);
                    let query = rng.random_range(0..2usize);
                    let swap = rng.random::<bool>() as usize;
                    let label = |c: usize| (c ^ swap) as u32;
                    let mut labels: Vec<u32> = context.iter().map(|&c| label(c)).collect();
                    labels.push(label(query));
                    IclSequence {
                        context,
                        query,
                        labels,
                        bursty: true,
                        novel: true,
                    }
                }
                IclProbe::Flip => {
                    // A bursty context of trained classes whose labels are
                    // all shifted by one: only the context tells the
                    // query's shifted label.
                    let mut s = self.draw_bursty(rng);
                    for l in &mut s.labels {
                        *l = (*l + 1) % p.labels as u32;
                    }
                    s
                }
                IclProbe::Iwl | IclProbe::IwlCommon | IclProbe::IwlRare => {
                    let query = match probe {
                        IclProbe::Iwl => self.trained_class(rng),
                        IclProbe::IwlCommon => rng.random_range(0..p.classes.div_ceil(10)),
                        _ => rng.random_range(p.classes / 2..p.classes),
                    };
                    // No exemplar of the query's class in the context.
                    let context: Vec<usize> = (0..p.pairs)
                        .map(|_| {
                            loop {
                                let c = self.trained_class(rng);
                                if c != query || p.classes == 1 {
                                    break c;
                                }
                            }
                        })
                        .collect();
                    IclSequence {
                        labels: self.labels_of(rng, &context, query),
                        context,
                        query,
                        bursty: false,
                        novel: false,
                    }
                }
            };
            drawn.push(s);
        }
        Some((self.render(rng, &drawn), drawn))
    }

    /// A bursty sequence of trained classes (labels `k mod labels`).
    fn draw_bursty(&self, rng: &mut dyn RngCore) -> IclSequence {
        let p = &self.p;
        let distinct = (p.pairs / p.burstiness).min(p.classes);
        let query = self.trained_class(rng);
        let mut chosen = vec![query];
        while chosen.len() < distinct {
            let c = self.trained_class(rng);
            if !chosen.contains(&c) {
                chosen.push(c);
            }
        }
        let mut context: Vec<usize> = chosen
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, p.pairs / distinct))
            .collect();
        context.shuffle(rng);
        let labels = self.labels_of(rng, &context, query);
        IclSequence {
            context,
            query,
            labels,
            bursty: true,
            novel: false,
        }
    }

    /// The labels of a sequence's context items, then its query's: class
    /// k's label `k mod labels`, or with `labels_per_class = m` one of its
    /// m labels drawn for this sequence (the same for every exemplar of the
    /// class in it). One label a class draws nothing from `rng`.
    fn labels_of(&self, rng: &mut dyn RngCore, context: &[usize], query: usize) -> Vec<u32> {
        let p = &self.p;
        let m = p.labels_per_class;
        let all = context.iter().chain(std::iter::once(&query));
        if m == 1 {
            return all.map(|&c| (c % p.labels) as u32).collect();
        }
        let stride = p.labels / m;
        let mut drawn: Vec<(usize, u32)> = Vec::new();
        all.map(|&c| {
            let sense = match drawn.iter().find(|(d, _)| *d == c) {
                Some(&(_, j)) => j,
                None => {
                    let j = rng.random_range(0..m as u32);
                    drawn.push((c, j));
                    j
                }
            };
            ((c + sense as usize * stride) % p.labels) as u32
        })
        .collect()
    }

    /// One sequence's classes and labels.
    fn draw(&self, rng: &mut dyn RngCore) -> IclSequence {
        let p = &self.p;
        let novel = p.p_novel > 0.0 && rng.random::<f64>() < p.p_novel;
        let bursty = p.p_bursty > 0.0 && rng.random::<f64>() < p.p_bursty;
        let class = |rng: &mut dyn RngCore| {
            if novel {
                rng.random_range(0..p.novel_classes)
            } else {
                self.trained_class(rng)
            }
        };
        let (context, query) = if bursty {
            let distinct = p.pairs / p.burstiness;
            let query = class(rng);
            let mut chosen = vec![query];
            while chosen.len() < distinct {
                let c = class(rng);
                if !chosen.contains(&c) {
                    chosen.push(c);
                }
            }
            let mut context: Vec<usize> = chosen
                .iter()
                .flat_map(|&c| std::iter::repeat_n(c, p.burstiness))
                .collect();
            context.shuffle(rng);
            (context, query)
        } else {
            let context = (0..p.pairs).map(|_| class(rng)).collect();
            (context, class(rng))
        };
        let labels = if p.dynamic {
            // Each distinct class of the sequence gets a label of its own,
            // as far as there are labels, in order of appearance.
            let mut order: Vec<u32> = (0..p.labels as u32).collect();
            order.shuffle(rng);
            let mut seen: Vec<usize> = Vec::new();
            context
                .iter()
                .chain(std::iter::once(&query))
                .map(|&c| {
                    let at = seen.iter().position(|&s| s == c).unwrap_or_else(|| {
                        seen.push(c);
                        seen.len() - 1
                    });
                    order[at % p.labels]
                })
                .collect()
        } else {
            self.labels_of(rng, &context, query)
        };
        IclSequence {
            context,
            query,
            labels,
            bursty,
            novel,
        }
    }
}

impl Environment for Icl {
    fn name(&self) -> &str {
        "icl"
    }

    fn task(&self) -> Task {
        Task::SequenceClassification {
            inputs: self.token_width(),
            classes: self.p.labels,
            steps: self.steps(),
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        Ok(Lifetime {
            train: self.sequences(rng, budget).0,
            heldout: self.heldout.clone(),
        })
    }

    fn probe_sets(&self) -> Vec<crate::ProbeSet> {
        self.probe_sets.clone()
    }

    fn fresh_heldout(&self, rng: &mut dyn RngCore) -> Option<Batch> {
        Some(self.sequences(rng, self.p.heldout).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    fn world(p: IclParams) -> Icl {
        Icl::new(p).unwrap()
    }

    #[test]
    fn tokens_are_position_then_content_and_only_the_query_is_scored() {
        let w = world(IclParams {
            classes: 64,
            labels: 8,
            heldout: 5,
            ..IclParams::default()
        });
        assert_eq!(
            w.task(),
            Task::SequenceClassification {
                inputs: 17 + 32,
                classes: 8,
                steps: 17
            }
        );
        let (batch, drawn) = w.sequences(&mut stream(1, 0, 0, Purpose::Learn), 50);
        let Batch::Sequences {
            x, labels, steps, ..
        } = &batch
        else {
            panic!("sequences")
        };
        let width = w.token_width();
        for (i, s) in drawn.iter().enumerate() {
            for t in 0..*steps {
                let token = &x[(i * steps + t) * width..(i * steps + t + 1) * width];
                let pos = &token[..17];
                assert_eq!(pos.iter().sum::<f32>(), 1.0);
                assert_eq!(pos[t], 1.0, "one-hot position");
                let label = labels[i * steps + t];
                if t == steps - 1 {
                    assert_eq!(label, s.labels[8]);
                    assert_eq!(label, (s.query % 8) as u32, "class k has label k mod L");
                } else {
                    assert_eq!(label, IGNORE);
                }
                if t % 2 == 1 {
                    // A label token carries its label's vector.
                    let l = s.labels[t / 2] as usize;
                    assert_eq!(&token[17..], &w.label_vectors[l * 32..(l + 1) * 32]);
                }
            }
        }
    }

    /// A Zipf law steeper than `MAX_ZIPF` is refused: bursty contexts need
    /// distinct classes, and under `zipf = 1e308` (found by the scenario
    /// fuzzer) drawing them never ended.
    #[test]
    fn a_degenerate_zipf_law_is_refused() {
        for zipf in [MAX_ZIPF + 0.5, 1e308] {
            let e = Icl::new(IclParams {
                zipf,
                ..IclParams::default()
            })
            .unwrap_err();
            assert!(e.to_string().contains("`zipf` must be 0 to 4"), "{e}");
        }
    }

    #[test]
    fn bursty_contexts_repeat_the_query_class_and_iid_ones_follow_zipf() {
        let w = world(IclParams {
            classes: 100,
            labels: 10,
            p_bursty: 0.5,
            zipf: 1.0,
            heldout: 1,
            ..IclParams::default()
        });
        let n = 20_000;
        let (_, drawn) = w.sequences(&mut stream(2, 0, 0, Purpose::Learn), n);
        let bursty = drawn.iter().filter(|s| s.bursty).count() as f64 / n as f64;
        assert!((bursty - 0.5).abs() < 0.02, "bursty fraction {bursty}");
        for s in drawn.iter().filter(|s| s.bursty) {
            let copies = s.context.iter().filter(|&&c| c == s.query).count();
            assert_eq!(copies, 4, "{s:?}");
            let mut distinct = s.context.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 2);
        }
        // The i.i.d. queries follow p(k) ∝ 1 / (k + 1): class 0 about
        // 19.3%, class 1 about 9.6% (binomial SD about 0.4%).
        let iid: Vec<usize> = drawn
            .iter()
            .filter(|s| !s.bursty)
            .map(|s| s.query)
            .collect();
        for k in [0, 1, 9] {
            let f = iid.iter().filter(|&&q| q == k).count() as f64 / iid.len() as f64;
            let expected = w.class_probability(k);
            assert!((f - expected).abs() < 0.015, "class {k}: {f} vs {expected}");
        }
        let h: f64 = (1..=100).map(|k| 1.0 / k as f64).sum();
        assert!((w.class_probability(0) - 1.0 / h).abs() < 1e-12);
    }

    #[test]
    fn novel_and_dynamic_sequences_and_random_offsets() {
        let w = world(IclParams {
            classes: 64,
            labels: 8,
            p_novel: 1.0,
            dynamic: true,
            positions: Positions::RandomOffset { max_pairs: 32 },
            heldout: 1,
            ..IclParams::default()
        });
        assert_eq!(w.token_width(), 65 + 32);
        let (batch, drawn) = w.sequences(&mut stream(3, 0, 0, Purpose::Learn), 200);
        let Batch::Sequences { x, steps, .. } = &batch else {
            panic!("sequences")
        };
        let mut offsets = std::collections::HashSet::new();
        for (i, s) in drawn.iter().enumerate() {
            assert!(s.novel);
            // Dynamic labels: a class keeps one label within a sequence,
            // and distinct classes get distinct labels while there are
            // labels enough.
            let all: Vec<usize> = s.context.iter().copied().chain([s.query]).collect();
            let mut distinct = all.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for (a, &ca) in all.iter().enumerate() {
                for (b, &cb) in all.iter().enumerate() {
                    if ca == cb {
                        assert_eq!(s.labels[a], s.labels[b], "{s:?}");
                    } else if distinct.len() <= 8 {
                        assert_ne!(s.labels[a], s.labels[b], "{s:?}");
                    }
                }
            }
            let first = &x[i * steps * 97..i * steps * 97 + 65];
            let offset = first.iter().position(|&v| v == 1.0).unwrap();
            assert!(offset + steps <= 65);
            offsets.insert(offset);
        }
        assert!(offsets.len() > 10, "random offsets: {offsets:?}");
    }

    #[test]
    fn labels_per_class_draws_one_of_each_classs_labels_per_sequence() {
        let w = world(IclParams {
            classes: 64,
            labels: 8,
            labels_per_class: 4,
            heldout: 1,
            ..IclParams::default()
        });
        let (_, drawn) = w.sequences(&mut stream(5, 0, 0, Purpose::Learn), 400);
        // Class k's labels are k + 2j mod 8 (8 labels / 4 per class).
        let mut senses = std::collections::HashMap::<usize, Vec<u32>>::new();
        for s in &drawn {
            let all: Vec<usize> = s.context.iter().copied().chain([s.query]).collect();
            for (a, &c) in all.iter().enumerate() {
                let l = s.labels[a] as usize;
                assert_eq!(l % 2, c % 2, "class {c} got label {l}: {s:?}");
                for (b, &d) in all.iter().enumerate() {
                    if c == d {
                        assert_eq!(s.labels[a], s.labels[b], "one label a class a sequence");
                    }
                }
                senses.entry(c).or_default().push(l as u32);
            }
        }
        let class0 = &senses[&0];
        for l in [0, 2, 4, 6] {
            let f = class0.iter().filter(|&&x| x == l).count() as f64 / class0.len() as f64;
            assert!((f - 0.25).abs() < 0.12, "class 0, label {l}: {f}");
        }
        // The flip probe shifts the drawn label by one.
        let (_, flipped) = w
            .probe(IclProbe::Flip, &mut stream(6, 0, 0, Purpose::Learn), 50)
            .unwrap();
        for s in &flipped {
            assert_eq!(s.labels[s.labels.len() - 1] as usize % 2, (s.query + 1) % 2);
        }
        for (m, ok) in [(3, false), (0, false), (16, false), (8, true)] {
            let r = Icl::new(IclParams {
                classes: 64,
                labels: 8,
                labels_per_class: m,
                heldout: 1,
                ..IclParams::default()
            });
            assert_eq!(r.is_ok(), ok, "labels_per_class = {m}");
            if let Err(e) = r {
                assert!(e.to_string().contains("`labels_per_class`"), "{e}");
            }
        }
        let both = Icl::new(IclParams {
            labels_per_class: 2,
            dynamic: true,
            heldout: 1,
            ..IclParams::default()
        });
        assert!(both.unwrap_err().to_string().contains("`dynamic`"));
    }

    #[test]
    fn probe_sets_follow_their_definitions() {
        let w = world(IclParams {
            classes: 200,
            labels: 20,
            zipf: 1.0,
            heldout: 1,
            ..IclParams::default()
        });
        let n = 400;
        let rng = &mut stream(4, 0, 0, Purpose::Learn);
        let (batch, novel) = w.probe(IclProbe::Novel, rng, n).unwrap();
        let Batch::Sequences { labels, steps, .. } = &batch else {
            panic!("sequences")
        };
        let mut zero_first = 0;
        for (i, s) in novel.iter().enumerate() {
            assert!(s.novel);
            for c in [0, 1] {
                assert_eq!(s.context.iter().filter(|&&k| k == c).count(), 4);
            }
            let label_of = |c: usize| s.labels[s.context.iter().position(|&k| k == c).unwrap()];
            assert_ne!(label_of(0), label_of(1));
            assert!(s.labels.iter().all(|&l| l < 2));
            assert_eq!(s.labels[8], label_of(s.query));
            assert_eq!(labels[i * steps + steps - 1], s.labels[8]);
            zero_first += usize::from(label_of(0) == 0);
        }
        assert!(
            (150..250).contains(&zero_first),
            "label order {zero_first} of {n}"
        );
        assert_eq!(IclProbe::Novel.choices(), Some(&[0, 1][..]));

        let (_, flip) = w.probe(IclProbe::Flip, rng, n).unwrap();
        for s in &flip {
            assert!(s.bursty && !s.novel);
            assert_eq!(s.context.iter().filter(|&&k| k == s.query).count(), 4);
            for (c, &l) in s.context.iter().chain([&s.query]).zip(&s.labels) {
                assert_eq!(l as usize, (c + 1) % 20, "{s:?}");
            }
        }

        let (_, iwl) = w.probe(IclProbe::Iwl, rng, n).unwrap();
        for s in &iwl {
            assert!(!s.context.contains(&s.query), "{s:?}");
            assert_eq!(s.labels[8] as usize, s.query % 20);
        }
        let (_, common) = w.probe(IclProbe::IwlCommon, rng, n).unwrap();
        assert!(
            common
                .iter()
                .all(|s| s.query < 20 && !s.context.contains(&s.query))
        );
        let (_, rare) = w.probe(IclProbe::IwlRare, rng, n).unwrap();
        assert!(
            rare.iter()
                .all(|s| s.query >= 100 && !s.context.contains(&s.query))
        );

        // An odd number of pairs has no two-way few-shot context.
        let uniform = world(IclParams {
            classes: 64,
            labels: 8,
            heldout: 1,
            ..IclParams::default()
        });
        let odd = world(IclParams {
            classes: 64,
            labels: 8,
            pairs: 7,
            burstiness: 7,
            heldout: 1,
            ..IclParams::default()
        });
        assert!(odd.probe(IclProbe::Novel, rng, 4).is_none());
        assert!(odd.probe(IclProbe::Iwl, rng, 4).is_some());
        // The same stream gives the same probe set.
        let a = uniform.probe(IclProbe::Novel, &mut stream(9, 0, 0, Purpose::Learn), 8);
        let b = uniform.probe(IclProbe::Novel, &mut stream(9, 0, 0, Purpose::Learn), 8);
        assert_eq!(a.unwrap().0, b.unwrap().0);
    }

    #[test]
    fn bad_parameters_say_what_is_wrong() {
        for (p, needle) in [
            (
                IclParams {
                    classes: 100,
                    labels: 32,
                    ..IclParams::default()
                },
                "multiple of `labels`",
            ),
            (
                IclParams {
                    p_bursty: 1.5,
                    ..IclParams::default()
                },
                "p_bursty",
            ),
            (
                IclParams {
                    p_novel: -0.1,
                    ..IclParams::default()
                },
                "p_novel",
            ),
            (
                IclParams {
                    burstiness: 3,
                    ..IclParams::default()
                },
                "must divide `pairs`",
            ),
            (
                IclParams {
                    positions: Positions::RandomOffset { max_pairs: 4 },
                    ..IclParams::default()
                },
                "max_pairs",
            ),
        ] {
            let err = Icl::new(p).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
