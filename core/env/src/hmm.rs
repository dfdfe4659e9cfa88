//! A hidden-Markov "language": next-token prediction on token sequences
//! whose generating process, and so the best possible prediction, is known.
//!
//! [`HiddenMarkov`] is the ground truth: a sparse Markov chain over hidden
//! states, each state emitting tokens from its own Zipfian distribution
//! over a few tokens. The scaled forward algorithm ([`HiddenMarkov::filter`])
//! gives the true surprisal of every token and the posterior over the
//! hidden state; [`HiddenMarkov::entropy_rate`] estimates the entropy rate,
//! the cross-entropy floor no model can beat. [`Hmm`] is the environment:
//! a training stream and a held-out set sampled from the chain, both built
//! once from the parameters' seed.
//!
//! Everything is a pure function of [`HmmParams`]: a plugin that rebuilds
//! `HiddenMarkov::new` from the same parameters has the same chain as the
//! environment that made the data.
//!
//! # How the chain is built
//! - **Transitions.** The states are put in a random cyclic order; every
//!   state's successors are its next state in that order plus distinct
//!   random others (itself included), `successors` of them in all (a count
//!   drawn uniformly from the range per state). The cycle makes the chain
//!   irreducible. If the chain is nevertheless periodic (its period is
//!   computed from breadth-first levels: the gcd of `level(u) + 1 -
//!   level(v)` over edges `u -> v`), one random state's last non-cycle
//!   successor becomes a self-loop, which makes it aperiodic; so the
//!   stationary distribution is unique and every state has positive
//!   stationary probability. The probabilities over a state's successors
//!   are Dirichlet(`concentration`), drawn as normalised Gamma variates,
//!   each at least the smallest positive `f64` (a listed successor is
//!   always possible).
//! - **Emissions.** Every state emits `emissions` distinct random tokens (a
//!   count drawn uniformly from the range per state), the `r`-th of them
//!   (1-based, in random order) with probability proportional to
//!   `r^-zipf`.
//! - **Stationary distribution.** Solved exactly (Gaussian elimination on
//!   `pi (T - I) = 0, sum(pi) = 1`).
//!
//! # Random streams
//! One seed, four independent streams (xoshiro256++ seeded from `seed` and
//! jumped 0, 1, 2, 3 times: 2^128 draws apart): the structure, the training
//! stream, the held-out windows and the entropy-rate sample. So the
//! held-out set does not depend on the corpus length, and the structure
//! does not depend on either.

use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};

use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, Gamma};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{Batch, EnvError, Environment, Lifetime, Task, invalid};

/// The environment's name in scenarios and messages.
const NAME: &str = "hmm";

/// Most hidden states (the transition matrix is dense, `states^2`).
pub const MAX_STATES: usize = 1024;
/// Largest vocabulary (the emission matrix is dense, `states x tokens`).
pub const MAX_TOKENS: usize = 4096;

/// Tokens the entropy-rate estimate averages over, after the burn-in.
const ENTROPY_TOKENS: usize = 200_000;
/// Tokens of the entropy-rate sample whose surprisal is not counted: the
/// filter's start from the stationary distribution is forgotten by then.
const ENTROPY_BURN_IN: usize = 1_000;
/// Tokens per block of the batch-means standard error.
const ENTROPY_BLOCK: usize = 2_000;

/// The streams of one seed.
const STRUCTURE_STREAM: u32 = 0;
const CORPUS_STREAM: u32 = 1;
const HELDOUT_STREAM: u32 = 2;
const ENTROPY_STREAM: u32 = 3;

/// Parameters of a hidden-Markov language and of the environment built on
/// it. `HiddenMarkov::new` reads the chain's parameters (`tokens`, `states`,
/// `successors`, `concentration`, `emissions`, `zipf`, `seed`); `Hmm::new`
/// also `context`, `corpus` and `heldout`.
#[derive(Clone, Debug, PartialEq)]
pub struct HmmParams {
    /// Vocabulary size (2 to [`MAX_TOKENS`]).
    pub tokens: usize,
    /// Hidden states (2 to [`MAX_STATES`]).
    pub states: usize,
    /// Allowed next states per state, drawn uniformly from this range per
    /// state (2 <= min <= max <= states).
    pub successors: RangeInclusive<usize>,
    /// Dirichlet concentration of each state's transition probabilities
    /// (> 0; small values make a few successors dominate).
    pub concentration: f64,
    /// Distinct tokens each state emits, drawn uniformly from this range
    /// per state (1 <= min <= max <= tokens).
    pub emissions: RangeInclusive<usize>,
    /// Exponent of the Zipfian emission probabilities (>= 0; 0 is uniform).
    pub zipf: f64,
    /// Tokens a model reads: windows are `context + 1` tokens long.
    pub context: usize,
    /// Tokens in the training stream (> context).
    pub corpus: usize,
    /// Held-out windows (>= 1).
    pub heldout: usize,
    /// Seed of everything the environment builds.
    pub seed: u64,
}

impl Default for HmmParams {
    /// The Model Connectomes recipe: 64 tokens, 32 states with 3-4
    /// successors, Dirichlet(0.5), Zipf(1) over 8-12 tokens, a context of
    /// 8, 1M training tokens, 1000 held-out windows, seed 0.
    fn default() -> Self {
        HmmParams {
            tokens: 64,
            states: 32,
            successors: 3..=4,
            concentration: 0.5,
            emissions: 8..=12,
            zipf: 1.0,
            context: 8,
            corpus: 1_000_000,
            heldout: 1000,
            seed: 0,
        }
    }
}

impl HmmParams {
    /// Checks the chain's parameters; the message names the field.
    fn check_chain(&self) -> Result<(), EnvError> {
        let fail = |message: String| Err(invalid(NAME, message));
        if !(2..=MAX_TOKENS).contains(&self.tokens) {
            return fail(format!(
                "`tokens` must be between 2 and {MAX_TOKENS}, found {}",
                self.tokens
            ));
        }
        if !(2..=MAX_STATES).contains(&self.states) {
            return fail(format!(
                "`states` must be between 2 and {MAX_STATES}, found {}",
                self.states
            ));
        }
        let (lo, hi) = (*self.successors.start(), *self.successors.end());
        if lo < 2 || lo > hi || hi > self.states {
            return fail(format!(
                "`successors` must be a count (or a range [min, max]) with 2 <= min <= max <= states ({}), found [{lo}, {hi}]",
                self.states
            ));
        }
        if !(self.concentration > 0.0 && self.concentration.is_finite()) {
            return fail(format!(
                "`concentration` must be a finite number > 0, found {}",
                self.concentration
            ));
        }
        let (lo, hi) = (*self.emissions.start(), *self.emissions.end());
        if lo < 1 || lo > hi || hi > self.tokens {
            return fail(format!(
                "`emissions` must be a count (or a range [min, max]) with 1 <= min <= max <= tokens ({}), found [{lo}, {hi}]",
                self.tokens
            ));
        }
        if !(self.zipf >= 0.0 && self.zipf.is_finite()) {
            return fail(format!(
                "`zipf` must be a finite number >= 0, found {}",
                self.zipf
            ));
        }
        Ok(())
    }

    /// Checks the environment's own parameters.
    fn check_environment(&self) -> Result<(), EnvError> {
        let fail = |message: String| Err(invalid(NAME, message));
        if self.context == 0 {
            return fail("`context` must be at least 1, found 0".into());
        }
        if self.corpus <= self.context {
            return fail(format!(
                "`corpus` must hold more tokens than `context` ({}), found {}",
                self.context, self.corpus
            ));
        }
        if self.heldout == 0 {
            return fail("`heldout` must be at least 1 window, found 0".into());
        }
        Ok(())
    }
}

/// The entropy rate of a chain's token process, as estimated by
/// [`HiddenMarkov::entropy_rate_estimate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntropyRate {
    /// The estimate, nats per token.
    pub nats: f64,
    /// Its standard error (batch means over blocks of consecutive tokens).
    pub standard_error: f64,
    /// Tokens averaged over.
    pub tokens: usize,
}

/// What the forward algorithm says about a window of tokens read from the
/// chain's stationary distribution at its start.
#[derive(Clone, Debug, PartialEq)]
pub struct Filtered {
    /// Hidden states (the width of a posterior row).
    pub states: usize,
    /// `-ln p(tokens[t] | tokens[..t])` for every position `t`, in nats;
    /// `+inf` for a token the chain cannot emit there (or one outside the
    /// vocabulary).
    pub surprisal: Vec<f64>,
    /// `[len, states]`, row-major: row `t` is the posterior over the state
    /// that emitted `tokens[t]`, given `tokens[..=t]`. After an impossible
    /// token, the row is the predictive state distribution (nothing to
    /// condition on).
    pub posterior: Vec<f64>,
}

impl Filtered {
    /// The posterior after observing `tokens[..=t]`.
    pub fn posterior_at(&self, t: usize) -> &[f64] {
        &self.posterior[t * self.states..(t + 1) * self.states]
    }

    /// True when every token of the window is possible under the chain.
    pub fn is_possible(&self) -> bool {
        self.surprisal.iter().all(|s| s.is_finite())
    }
}

/// A hidden-Markov language: the ground truth of the [`Hmm`] environment.
#[derive(Clone, Debug)]
pub struct HiddenMarkov {
    tokens: usize,
    states: usize,
    seed: u64,
    /// `[states, states]`, row-major: `transition[i * states + j] = p(j | i)`.
    transition: Vec<f64>,
    /// `[states, tokens]`, row-major: `emission[j * tokens + x] = p(x | j)`.
    emission: Vec<f64>,
    stationary: Vec<f64>,
    /// Per state, its successors with their probabilities.
    next: Vec<Vec<(u32, f64)>>,
    /// Per state, the tokens it emits with their probabilities.
    emits: Vec<Vec<(u32, f64)>>,
    entropy: OnceLock<EntropyRate>,
}

impl HiddenMarkov {
    /// Builds the chain from the structure stream of `params.seed` (see the
    /// module docs); `context`, `corpus` and `heldout` are not read.
    pub fn new(params: &HmmParams) -> Result<HiddenMarkov, EnvError> {
        params.check_chain()?;
        let (s, v) = (params.states, params.tokens);
        let mut rng = substream(params.seed, STRUCTURE_STREAM);
        let mut order: Vec<usize> = (0..s).collect();
        shuffle(&mut rng, &mut order);
        let mut on_cycle = vec![0usize; s];
        for k in 0..s {
            on_cycle[order[k]] = order[(k + 1) % s];
        }
        let mut successors: Vec<Vec<usize>> = (0..s)
            .map(|i| {
                let m = rng.random_range(params.successors.clone());
                let mut list = vec![on_cycle[i]];
                while list.len() < m {
                    let j = rng.random_range(0..s);
                    if !list.contains(&j) {
                        list.push(j);
                    }
                }
                list
            })
            .collect();
        if period(&successors) != 1 {
            // No state has a self-loop (one would make the period 1), and
            // every state has a non-cycle successor (at least 2 in all).
            let i = rng.random_range(0..s);
            *successors[i].last_mut().expect("at least two successors") = i;
        }
        let gamma = Gamma::new(params.concentration, 1.0).expect("checked concentration");
        let next: Vec<Vec<(u32, f64)>> = successors
            .iter()
            .map(|list| {
                let w: Vec<f64> = list
                    .iter()
                    .map(|_| gamma.sample(&mut rng).max(f64::MIN_POSITIVE))
                    .collect();
                let total: f64 = w.iter().sum();
                list.iter()
                    .zip(&w)
                    .map(|(&j, &w)| (j as u32, w / total))
                    .collect()
            })
            .collect();
        let mut vocab: Vec<usize> = (0..v).collect();
        let emits: Vec<Vec<(u32, f64)>> = (0..s)
            .map(|_| {
                let e = rng.random_range(params.emissions.clone());
                // A partial Fisher-Yates shuffle: the first `e` are a random
                // subset in random order.
                for k in 0..e {
                    let pick = rng.random_range(k..v);
                    vocab.swap(k, pick);
                }
                let w: Vec<f64> = (1..=e).map(|r| (r as f64).powf(-params.zipf)).collect();
                let total: f64 = w.iter().sum();
                vocab[..e]
                    .iter()
                    .zip(&w)
                    .map(|(&x, &w)| (x as u32, w / total))
                    .collect()
            })
            .collect();
        let mut transition = vec![0.0; s * s];
        for (i, row) in next.iter().enumerate() {
            for &(j, p) in row {
                transition[i * s + j as usize] = p;
            }
        }
        let mut emission = vec![0.0; s * v];
        for (j, row) in emits.iter().enumerate() {
            for &(x, p) in row {
                emission[j * v + x as usize] = p;
            }
        }
        let stationary = stationary(&transition, s);
        Ok(HiddenMarkov {
            tokens: v,
            states: s,
            seed: params.seed,
            transition,
            emission,
            stationary,
            next,
            emits,
            entropy: OnceLock::new(),
        })
    }

    /// Vocabulary size.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Hidden states.
    pub fn states(&self) -> usize {
        self.states
    }

    /// The transition matrix, `[states, states]` row-major: entry
    /// `i * states + j` is the probability that state `j` follows state `i`.
    pub fn transition(&self) -> &[f64] {
        &self.transition
    }

    /// The emission matrix, `[states, tokens]` row-major: entry
    /// `j * tokens + x` is the probability that state `j` emits token `x`.
    pub fn emission(&self) -> &[f64] {
        &self.emission
    }

    /// The stationary distribution over states.
    pub fn stationary(&self) -> &[f64] {
        &self.stationary
    }

    /// The states that may follow state `state`, in the order they were
    /// drawn (the first is its successor on the cycle).
    pub fn successors(&self, state: usize) -> impl Iterator<Item = usize> + '_ {
        self.next[state].iter().map(|&(j, _)| j as usize)
    }

    /// The distribution of the next state given a distribution `states`
    /// over the current one (`states x transition`).
    pub fn next_states(&self, states: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.states];
        self.advance(states, &mut out);
        out
    }

    /// The distribution of the token emitted from a distribution `states`
    /// over the emitting state (`states x emission`).
    pub fn token_distribution(&self, states: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.tokens];
        for (row, &p) in self.emits.iter().zip(states) {
            if p == 0.0 {
                continue;
            }
            for &(x, q) in row {
                out[x as usize] += p * q;
            }
        }
        out
    }

    /// The token marginal of the stationary chain (unigram frequencies).
    pub fn unigram(&self) -> Vec<f64> {
        self.token_distribution(&self.stationary)
    }

    /// `len` tokens sampled from the chain, started from its stationary
    /// distribution.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, len: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(len);
        self.sample_into(rng, len, &mut out);
        out
    }

    fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, len: usize, out: &mut Vec<u32>) {
        if len == 0 {
            return;
        }
        let mut state = categorical(rng, self.stationary.iter().copied().enumerate());
        for t in 0..len {
            if t > 0 {
                state = categorical(rng, self.next[state].iter().map(|&(j, p)| (j as usize, p)));
            }
            out.push(
                categorical(rng, self.emits[state].iter().map(|&(x, p)| (x as usize, p))) as u32,
            );
        }
    }

    /// The scaled forward algorithm on `tokens`, read from the stationary
    /// distribution at its start: the true surprisal of every token given
    /// the ones before it in the window, and the state posterior after each.
    pub fn filter(&self, tokens: &[u32]) -> Filtered {
        let mut forward = Forward::new(self);
        let mut surprisal = Vec::with_capacity(tokens.len());
        let mut posterior = Vec::with_capacity(tokens.len() * self.states);
        for &x in tokens {
            surprisal.push(forward.observe(x));
            posterior.extend_from_slice(&forward.posterior);
        }
        Filtered {
            states: self.states,
            surprisal,
            posterior,
        }
    }

    /// The entropy rate of the token process, nats per token: the value of
    /// [`HiddenMarkov::entropy_rate_estimate`].
    pub fn entropy_rate(&self) -> f64 {
        self.entropy_rate_estimate().nats
    }

    /// An estimate of the entropy rate `lim H(x_t | x_<t)` of the token
    /// process. An HMM's entropy rate has no closed form; this is the mean
    /// true surprisal `-ln p(x_t | x_<t)` (the forward algorithm over the
    /// whole past) over 200,000 tokens of one long sample from the chain's
    /// own entropy stream, after a burn-in of 1,000 tokens whose surprisal
    /// is not counted (conditioning on a short past overestimates it). The
    /// standard error is by batch means over blocks of 2,000 consecutive
    /// tokens, which accounts for the correlation between neighbouring
    /// tokens. Computed on first use, then kept.
    pub fn entropy_rate_estimate(&self) -> EntropyRate {
        *self.entropy.get_or_init(|| {
            let mut rng = substream(self.seed, ENTROPY_STREAM);
            let sample = self.sample(&mut rng, ENTROPY_BURN_IN + ENTROPY_TOKENS);
            let mut forward = Forward::new(self);
            let surprisal: Vec<f64> = sample.iter().map(|&x| forward.observe(x)).collect();
            batch_means(&surprisal[ENTROPY_BURN_IN..], ENTROPY_BLOCK)
        })
    }

    /// `out = states x transition`.
    fn advance(&self, states: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        for (row, &a) in self.next.iter().zip(states) {
            if a == 0.0 {
                continue;
            }
            for &(j, p) in row {
                out[j as usize] += a * p;
            }
        }
    }
}

/// The forward recursion, one token at a time, normalised at every step
/// (so nothing underflows however long the sequence).
struct Forward<'a> {
    hmm: &'a HiddenMarkov,
    /// The distribution of the next emitting state given what was read.
    predictive: Vec<f64>,
    /// The posterior over the last emitting state.
    posterior: Vec<f64>,
}

impl<'a> Forward<'a> {
    fn new(hmm: &'a HiddenMarkov) -> Forward<'a> {
        Forward {
            hmm,
            predictive: hmm.stationary.clone(),
            posterior: vec![0.0; hmm.states],
        }
    }

    /// Reads token `x`: its surprisal, then the posterior and the next
    /// predictive distribution are updated.
    fn observe(&mut self, x: u32) -> f64 {
        let hmm = self.hmm;
        let x = x as usize;
        let p: f64 = if x < hmm.tokens {
            self.predictive
                .iter()
                .enumerate()
                .map(|(j, &a)| a * hmm.emission[j * hmm.tokens + x])
                .sum()
        } else {
            0.0
        };
        let surprisal = if p > 0.0 {
            for (j, post) in self.posterior.iter_mut().enumerate() {
                *post = self.predictive[j] * hmm.emission[j * hmm.tokens + x] / p;
            }
            -p.ln()
        } else {
            self.posterior.copy_from_slice(&self.predictive);
            f64::INFINITY
        };
        hmm.advance(&self.posterior, &mut self.predictive);
        surprisal
    }
}

/// Next-token prediction on a hidden-Markov language. The training stream
/// is `corpus` tokens of one sample from the chain; a lifetime's training
/// set is windows of `context + 1` tokens starting anywhere in it, as many
/// as its token budget covers (`context` predictions per window), as for
/// [`crate::Text`]. The held-out set is `heldout` independent windows, each
/// sampled from the chain started from its stationary distribution.
#[derive(Clone, Debug)]
pub struct Hmm {
    model: Arc<HiddenMarkov>,
    context: usize,
    corpus: Arc<[u32]>,
    heldout: Arc<Batch>,
}

impl Hmm {
    /// Builds the chain, the training stream and the held-out windows from
    /// `params` (see the module docs for the streams).
    pub fn new(params: &HmmParams) -> Result<Hmm, EnvError> {
        params.check_environment()?;
        let model = HiddenMarkov::new(params)?;
        let corpus = model.sample(&mut substream(params.seed, CORPUS_STREAM), params.corpus);
        let window = params.context + 1;
        let mut rng = substream(params.seed, HELDOUT_STREAM);
        let mut held = Vec::with_capacity(params.heldout * window);
        for _ in 0..params.heldout {
            model.sample_into(&mut rng, window, &mut held);
        }
        Ok(Hmm {
            model: Arc::new(model),
            context: params.context,
            corpus: corpus.into(),
            heldout: Arc::new(Batch::Tokens {
                n: params.heldout,
                len: window,
                tokens: held,
            }),
        })
    }

    /// The ground truth.
    pub fn model(&self) -> &Arc<HiddenMarkov> {
        &self.model
    }

    /// The training stream.
    pub fn corpus(&self) -> &[u32] {
        &self.corpus
    }

    /// The held-out windows (`Batch::Tokens`).
    pub fn heldout(&self) -> &Arc<Batch> {
        &self.heldout
    }
}

impl Environment for Hmm {
    fn name(&self) -> &str {
        NAME
    }

    fn task(&self) -> Task {
        Task::NextToken {
            vocab: self.model.tokens,
            context: self.context,
        }
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        let window = self.context + 1;
        let n = crate::windows(budget, self.context);
        let mut tokens = Vec::with_capacity(n * window);
        for _ in 0..n {
            let start = rng.random_range(0..=self.corpus.len() - window);
            tokens.extend_from_slice(&self.corpus[start..start + window]);
        }
        Ok(Lifetime {
            train: Batch::Tokens {
                n,
                len: window,
                tokens,
            },
            heldout: self.heldout.clone(),
        })
    }
}

/// Stream `k` of `seed`: xoshiro256++ from `seed`, jumped `k` times.
fn substream(seed: u64, k: u32) -> Xoshiro256PlusPlus {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..k {
        rng.jump();
    }
    rng
}

/// Fisher-Yates.
fn shuffle<R: Rng + ?Sized>(rng: &mut R, xs: &mut [usize]) {
    for k in (1..xs.len()).rev() {
        let j = rng.random_range(0..=k);
        xs.swap(k, j);
    }
}

/// One draw from `(value, probability)` pairs whose probabilities sum to
/// about 1 (rounding falls to the last positive one).
fn categorical<R: Rng + ?Sized>(rng: &mut R, weights: impl Iterator<Item = (usize, f64)>) -> usize {
    let mut u: f64 = rng.random();
    let mut last = 0;
    for (value, p) in weights {
        if p > 0.0 {
            last = value;
            if u < p {
                return value;
            }
            u -= p;
        }
    }
    last
}

/// The period of the chain whose successor lists are `next`, assumed
/// irreducible: the gcd over edges `u -> v` of `level(u) + 1 - level(v)`,
/// levels by breadth-first search from state 0.
fn period(next: &[Vec<usize>]) -> usize {
    let mut level = vec![usize::MAX; next.len()];
    level[0] = 0;
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(u) = queue.pop_front() {
        for &v in &next[u] {
            if level[v] == usize::MAX {
                level[v] = level[u] + 1;
                queue.push_back(v);
            }
        }
    }
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut g = 0;
    for (u, list) in next.iter().enumerate() {
        for &v in list {
            g = gcd(g, (level[u] + 1).abs_diff(level[v]));
        }
    }
    g
}

/// The stationary distribution of the `s x s` row-stochastic `transition`
/// (irreducible): `pi (T - I) = 0` with one equation replaced by
/// `sum(pi) = 1`, by Gaussian elimination with partial pivoting.
fn stationary(transition: &[f64], s: usize) -> Vec<f64> {
    // Row r of the system: sum_i pi_i (T[i, r] - [i == r]) = 0.
    let mut a = vec![0.0; s * (s + 1)];
    let w = s + 1;
    for r in 0..s {
        for i in 0..s {
            a[r * w + i] = transition[i * s + r] - if i == r { 1.0 } else { 0.0 };
        }
    }
    for i in 0..s {
        a[(s - 1) * w + i] = 1.0;
    }
    a[(s - 1) * w + s] = 1.0;
    for col in 0..s {
        let pivot = (col..s)
            .max_by(|&x, &y| a[x * w + col].abs().total_cmp(&a[y * w + col].abs()))
            .expect("rows left");
        if pivot != col {
            for k in 0..w {
                a.swap(col * w + k, pivot * w + k);
            }
        }
        let d = a[col * w + col];
        for r in 0..s {
            if r == col {
                continue;
            }
            let f = a[r * w + col] / d;
            if f != 0.0 {
                for k in col..w {
                    a[r * w + k] -= f * a[col * w + k];
                }
            }
        }
    }
    let mut pi: Vec<f64> = (0..s)
        .map(|r| (a[r * w + s] / a[r * w + r]).max(0.0))
        .collect();
    let total: f64 = pi.iter().sum();
    pi.iter_mut().for_each(|p| *p /= total);
    pi
}

/// Mean of `xs` with its batch-means standard error (blocks of `block`
/// consecutive values; a last partial block is left out of the error).
fn batch_means(xs: &[f64], block: usize) -> EntropyRate {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let blocks: Vec<f64> = xs
        .chunks_exact(block)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let b = blocks.len() as f64;
    let standard_error = if blocks.len() > 1 {
        let m = blocks.iter().sum::<f64>() / b;
        let var = blocks.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (b - 1.0);
        (var / b).sqrt()
    } else {
        f64::NAN
    };
    EntropyRate {
        nats: mean,
        standard_error,
        tokens: xs.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_evo::rng::{Purpose, stream};

    fn small() -> HmmParams {
        HmmParams {
            corpus: 20_000,
            heldout: 50,
            ..HmmParams::default()
        }
    }

    fn tiny() -> HmmParams {
        HmmParams {
            tokens: 4,
            states: 3,
            successors: 2..=3,
            emissions: 2..=3,
            context: 3,
            corpus: 100,
            heldout: 10,
            seed: 5,
            ..HmmParams::default()
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn everything_is_a_function_of_the_seed() {
        let a = Hmm::new(&small()).unwrap();
        let b = Hmm::new(&small()).unwrap();
        assert_eq!(a.model().transition(), b.model().transition());
        assert_eq!(a.model().emission(), b.model().emission());
        assert_eq!(a.corpus(), b.corpus());
        assert_eq!(a.heldout(), b.heldout());
        let c = Hmm::new(&HmmParams { seed: 1, ..small() }).unwrap();
        assert_ne!(a.model().transition(), c.model().transition());
        assert_ne!(a.corpus(), c.corpus());
        // The held-out set depends on the chain, not on the corpus length.
        let d = Hmm::new(&HmmParams {
            corpus: 5_000,
            ..small()
        })
        .unwrap();
        assert_eq!(a.heldout(), d.heldout());
        assert_eq!(&a.corpus()[..5_000], d.corpus());
    }

    #[test]
    fn matrices_are_stochastic_and_shaped_as_asked() {
        let p = HmmParams::default();
        let h = HiddenMarkov::new(&p).unwrap();
        let (s, v) = (h.states(), h.tokens());
        for i in 0..s {
            let row = &h.transition()[i * s..(i + 1) * s];
            assert!(close(row.iter().sum(), 1.0, 1e-12));
            let k = row.iter().filter(|&&x| x > 0.0).count();
            assert!((3..=4).contains(&k), "state {i} has {k} successors");
            assert_eq!(h.successors(i).count(), k);
            let row = &h.emission()[i * v..(i + 1) * v];
            assert!(close(row.iter().sum(), 1.0, 1e-12));
            let e = row.iter().filter(|&&x| x > 0.0).count();
            assert!((8..=12).contains(&e), "state {i} emits {e} tokens");
        }
        assert_eq!(
            period(
                &(0..s)
                    .map(|i| h.successors(i).collect())
                    .collect::<Vec<_>>()
            ),
            1
        );
    }

    #[test]
    fn periodic_chains_are_repaired() {
        // Two states, two successors each: both states, so a self-loop.
        // A 2-cycle with no other edge would have period 2.
        assert_eq!(period(&[vec![1], vec![0]]), 2);
        assert_eq!(period(&[vec![1], vec![2], vec![0, 1]]), 1);
        for seed in 0..20 {
            let h = HiddenMarkov::new(&HmmParams {
                states: 4,
                successors: 2..=2,
                seed,
                ..HmmParams::default()
            })
            .unwrap();
            let next: Vec<Vec<usize>> = (0..4).map(|i| h.successors(i).collect()).collect();
            assert_eq!(period(&next), 1, "seed {seed}: {next:?}");
            assert!(h.stationary().iter().all(|&p| p > 0.0));
        }
    }

    #[test]
    fn the_stationary_distribution_is_stationary() {
        for seed in 0..5 {
            let h = HiddenMarkov::new(&HmmParams {
                seed,
                ..HmmParams::default()
            })
            .unwrap();
            let pi = h.stationary();
            assert!(close(pi.iter().sum(), 1.0, 1e-12));
            assert!(pi.iter().all(|&p| p > 0.0));
            for (a, b) in h.next_states(pi).iter().zip(pi) {
                assert!(close(*a, *b, 1e-12), "{a} vs {b}");
            }
        }
    }

    /// `p(tokens)` and `p(tokens, s_last = j)` by summing over every path.
    fn brute_force(h: &HiddenMarkov, tokens: &[u32]) -> (f64, Vec<f64>) {
        let (s, v) = (h.states(), h.tokens());
        let mut joint = vec![0.0; s];
        let paths = s.pow(tokens.len() as u32);
        for code in 0..paths {
            let path: Vec<usize> = (0..tokens.len())
                .map(|t| code / s.pow(t as u32) % s)
                .collect();
            let mut p = h.stationary()[path[0]];
            for (t, &x) in tokens.iter().enumerate() {
                if t > 0 {
                    p *= h.transition()[path[t - 1] * s + path[t]];
                }
                p *= h.emission()[path[t] * v + x as usize];
            }
            joint[path[tokens.len() - 1]] += p;
        }
        (joint.iter().sum(), joint)
    }

    #[test]
    fn the_filter_agrees_with_summing_over_paths() {
        let h = HiddenMarkov::new(&tiny()).unwrap();
        let mut rng = stream(1, 0, 0, Purpose::Learn);
        for _ in 0..20 {
            let w = h.sample(&mut rng, 4);
            let f = h.filter(&w);
            for t in 0..w.len() {
                let (now, joint) = brute_force(&h, &w[..=t]);
                let before = if t == 0 {
                    1.0
                } else {
                    brute_force(&h, &w[..t]).0
                };
                let truth = -(now / before).ln();
                assert!(
                    close(f.surprisal[t], truth, 1e-10),
                    "{} vs {truth}",
                    f.surprisal[t]
                );
                for (a, b) in f.posterior_at(t).iter().zip(&joint) {
                    assert!(close(*a, b / now, 1e-10));
                }
                assert!(close(f.posterior_at(t).iter().sum(), 1.0, 1e-12));
            }
        }
        // A token the chain cannot emit at all is infinitely surprising.
        let f = h.filter(&[0, 7]);
        assert!(!f.is_possible() && f.surprisal[1].is_infinite());
    }

    #[test]
    fn posteriors_of_long_windows_stay_normalised() {
        let env = Hmm::new(&small()).unwrap();
        let f = env.model().filter(&env.corpus()[..5_000]);
        assert!(f.is_possible());
        for t in 0..5_000 {
            assert!(close(f.posterior_at(t).iter().sum(), 1.0, 1e-9));
        }
    }

    #[test]
    fn the_stream_has_the_stationary_token_frequencies() {
        let env = Hmm::new(&HmmParams {
            corpus: 100_000,
            ..small()
        })
        .unwrap();
        let mut counts = vec![0.0; env.model().tokens()];
        for &x in env.corpus() {
            counts[x as usize] += 1.0;
        }
        let n = env.corpus().len() as f64;
        let tv: f64 = counts
            .iter()
            .zip(env.model().unigram())
            .map(|(c, q)| (c / n - q).abs())
            .sum::<f64>()
            / 2.0;
        assert!(tv < 0.03, "total variation {tv}");
    }

    #[test]
    fn the_stream_is_as_surprising_as_the_entropy_rate_and_less_than_unigrams() {
        let env = Hmm::new(&HmmParams {
            corpus: 60_000,
            ..small()
        })
        .unwrap();
        let h = env.model();
        let rate = h.entropy_rate_estimate();
        assert_eq!(rate.tokens, ENTROPY_TOKENS);
        assert!(
            rate.standard_error > 0.0 && rate.standard_error < 0.02,
            "{rate:?}"
        );
        let f = h.filter(env.corpus());
        let stream = batch_means(&f.surprisal[ENTROPY_BURN_IN..], ENTROPY_BLOCK);
        let se = (rate.standard_error.powi(2) + stream.standard_error.powi(2)).sqrt();
        assert!(
            (stream.nats - rate.nats).abs() < 5.0 * se,
            "stream {stream:?} vs rate {rate:?}"
        );
        // Ground truth is informative: the oracle beats unigram frequencies.
        let unigram: f64 = h
            .unigram()
            .iter()
            .filter(|&&q| q > 0.0)
            .map(|q| -q * q.ln())
            .sum();
        assert!(
            rate.nats < unigram - 0.3,
            "rate {} vs unigram {unigram}",
            rate.nats
        );
        let Batch::Tokens { len, tokens, .. } = &**env.heldout() else {
            panic!("tokens")
        };
        let (mut total, mut count) = (0.0, 0);
        for w in tokens.chunks_exact(*len) {
            let f = h.filter(w);
            assert!(f.is_possible());
            total += f.surprisal[1..].iter().sum::<f64>();
            count += len - 1;
        }
        assert!(total / (count as f64) < unigram - 0.2);
    }

    #[test]
    fn lifetimes_are_windows_of_the_stream() {
        let env = Hmm::new(&small()).unwrap();
        assert_eq!(
            env.task(),
            Task::NextToken {
                vocab: 64,
                context: 8
            }
        );
        let life = env
            .lifetime(&mut stream(3, 0, 1, Purpose::Learn), 40)
            .unwrap();
        let Batch::Tokens { n, len, tokens } = &life.train else {
            panic!("tokens")
        };
        assert_eq!((*n, *len), (5, 9));
        for w in tokens.chunks_exact(9) {
            assert!(env.corpus().windows(9).any(|c| c == w));
        }
        assert!(Arc::ptr_eq(&life.heldout, env.heldout()));
        assert_eq!(life.heldout.len(), 50);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let cases = [
            (
                HmmParams {
                    tokens: 1,
                    ..small()
                },
                "`tokens`",
            ),
            (
                HmmParams {
                    states: 1,
                    ..small()
                },
                "`states`",
            ),
            (
                HmmParams {
                    successors: 1..=3,
                    ..small()
                },
                "`successors`",
            ),
            (
                HmmParams {
                    successors: 3..=40,
                    ..small()
                },
                "`successors`",
            ),
            (
                HmmParams {
                    concentration: 0.0,
                    ..small()
                },
                "`concentration`",
            ),
            (
                HmmParams {
                    emissions: 8..=65,
                    ..small()
                },
                "`emissions`",
            ),
            (
                HmmParams {
                    zipf: f64::NAN,
                    ..small()
                },
                "`zipf`",
            ),
            (
                HmmParams {
                    context: 0,
                    ..small()
                },
                "`context`",
            ),
            (
                HmmParams {
                    corpus: 8,
                    ..small()
                },
                "`corpus`",
            ),
            (
                HmmParams {
                    heldout: 0,
                    ..small()
                },
                "`heldout`",
            ),
        ];
        for (params, field) in cases {
            let e = Hmm::new(&params).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}
