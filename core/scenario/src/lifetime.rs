//! The checked `[lifetime]` table: what each organism learns during its
//! life, from what data, with which model, optimiser, development rules and
//! inheritance mode.
//!
//! The raw structures live in `raw::lifetime` and the checks that build
//! these types in `validate::lifetime`.

use std::sync::Arc;

use lineage_develop::InitLaw;
use lineage_env::{Environment, Task};
use lineage_learn::spec::ModelSpec;
use lineage_learn::{DeviceChoice, Hyper, LifetimeSpec};

/// Structural mutation of connectome genomes, applied to every newborn and
/// every connectome matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rewire {
    /// Edges moved to new positions (density kept).
    pub edges: usize,
    /// Edges whose sign flips.
    pub flips: usize,
    /// Standard deviation of the log-normal factor on each matrix's edge
    /// count (0: density unchanged).
    pub density_sigma: f64,
}

/// A built environment, compared by the configuration it came from.
#[derive(Clone)]
pub struct EnvHandle {
    /// The environment.
    pub env: Arc<dyn Environment>,
    /// What built it (for equality and display).
    pub description: String,
}

impl std::fmt::Debug for EnvHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl PartialEq for EnvHandle {
    fn eq(&self, other: &Self) -> bool {
        self.description == other.description
    }
}

/// How a child's birth weights relate to its parents'.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Inheritance {
    /// The genome only; weights develop afresh (the Baldwin effect).
    Darwinian,
    /// The first parent's learned weights, plus Gaussian noise of this
    /// standard deviation on every unmasked weight.
    Lamarckian {
        /// Noise standard deviation.
        noise: f32,
    },
    /// The first parent's learned weights pruned by magnitude: in every
    /// maskable matrix, `fraction` of the surviving weights with the
    /// smallest magnitude are removed, and the survivors reset to
    /// `sign x reset` (`None`: the matrix's init standard deviation).
    Prune {
        /// Fraction of surviving weights removed per generation.
        fraction: f64,
        /// Reset magnitude.
        reset: Option<f32>,
    },
}

/// How one weight matrix develops from the genome.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixRule {
    /// Init law.
    pub init: InitLaw,
    /// Gain of the law (times the `gain` gene, where declared).
    pub gain: f32,
    /// Density of a random mask (`density` gene overrides).
    pub density: Option<f64>,
    /// Rank of the initial matrix (`rank` gene overrides).
    pub rank: Option<usize>,
    /// Mask and signs come from the genome's bits.
    pub connectome: bool,
    /// Magnitude of connectome weights (`None`: the init standard deviation).
    pub scale: Option<f32>,
    /// Direction the rank-`rank` matrix's leading right singular vector is
    /// set to (one value per input).
    pub align: Option<Arc<[f32]>>,
    /// Cosine between that leading vector and `align` (1: fully aligned;
    /// the `alignment` gene overrides), see
    /// [`lineage_develop::truncate_rank_aligned`].
    pub alignment: f64,
    /// How a rank-truncated matrix is rescaled: to the draw's Frobenius
    /// norm, or to its spectral radius (the control for the dynamical
    /// regime, which truncation at matched norm moves).
    pub rank_scale: RankScale,
    /// Dale's law on a square (recurrent) matrix: the fraction of
    /// excitatory units. Units `0..round(dale x N)` are excitatory, the
    /// rest inhibitory; column `j` (unit `j`'s outgoing weights) carries
    /// unit `j`'s sign at birth ([`lineage_develop::dale`]) and through
    /// learning (weights that cross zero are set to zero after every
    /// step). Never with `rank`, `density` or `connectome`.
    pub dale: Option<f64>,
    /// A square (recurrent) matrix sampled from a table of cell classes
    /// ([`lineage_develop::CellTypes`]) instead of the draw, rescaled to the
    /// draw's Frobenius norm or spectral radius (`cell_scale`). Never with
    /// `rank`, `density`, `connectome`, `align` or `dale`.
    pub cell_types: Option<(Arc<lineage_develop::CellTypes>, RankScale)>,
}

/// What a rank-truncated matrix keeps of the full draw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RankScale {
    /// Its Frobenius norm ([`lineage_develop::truncate_rank`]).
    #[default]
    Norm,
    /// Its spectral radius ([`lineage_develop::match_radius`]; square
    /// matrices only).
    Radius,
}

impl MatrixRule {
    /// The per-weight sign constraints of a `rows x cols` matrix under this
    /// rule (`None` without `dale`), as `lineage_learn::Job::signs` takes
    /// them.
    pub fn signs(&self, rows: usize, cols: usize) -> Option<Vec<f32>> {
        let columns = lineage_develop::column_signs(cols, self.dale?)
            .expect("validation checked the Dale fraction against the matrix");
        Some((0..rows * cols).map(|k| columns[k % cols]).collect())
    }
}

/// Where a connectome matrix's bits sit in the genome: `len` mask bits from
/// `mask`, then `len` sign bits from `signs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectomeBits {
    /// Parameter index (in [`ModelSpec::params`] order).
    pub param: usize,
    /// First mask bit.
    pub mask: usize,
    /// First sign bit.
    pub signs: usize,
    /// Weights in the matrix.
    pub len: usize,
}

/// Genome genes with a meaning for learning or development, by index into
/// the genome's real genes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearningGenes {
    /// `lr`: learning rate.
    pub lr: Option<usize>,
    /// `momentum`: SGD momentum or Adam's beta1.
    pub momentum: Option<usize>,
    /// `weight_decay`.
    pub weight_decay: Option<usize>,
    /// `steps`: lifetime steps (rounded).
    pub steps: Option<usize>,
    /// `gain`: multiplies every matrix's init gain.
    pub gain: Option<usize>,
    /// `gain.NAME`: multiplies the init gain of the matrix `NAME` alone, as
    /// `(parameter index, gene index)` pairs.
    pub matrix_gain: Vec<(usize, usize)>,
    /// `rank`: initial rank of every matrix with a rank rule (rounded).
    pub rank: Option<usize>,
    /// `density`: density of every matrix with a density rule.
    pub density: Option<usize>,
    /// `alignment`: alignment of every matrix with an `align` rule
    /// (clamped to [0, 1]).
    pub alignment: Option<usize>,
    /// `weights`: the birth weights themselves, one gene per parameter.
    pub weights: Option<usize>,
}

impl LearningGenes {
    /// The gain genes' factor for parameter `param`: the `gain` gene times
    /// any `gain.NAME` gene of that parameter, read by `gene`.
    pub fn gain_of(&self, param: usize, gene: impl Fn(usize) -> f64) -> f32 {
        let global = self.gain.map_or(1.0, &gene);
        let own: f64 = self
            .matrix_gain
            .iter()
            .filter(|(p, _)| *p == param)
            .map(|(_, g)| gene(*g))
            .product();
        (global * own) as f32
    }

    /// Gene names with a meaning for learning.
    pub const NAMES: &[&str] = &[
        "lr",
        "momentum",
        "weight_decay",
        "steps",
        "gain",
        "rank",
        "density",
        "alignment",
        "weights",
    ];
}

/// A validated `[lifetime]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LifetimeConfig {
    /// Where lifetimes' data come from.
    pub environment: EnvHandle,
    /// What the model must learn.
    pub task: Task,
    /// The model.
    pub model: ModelSpec,
    /// Examples (token environments: tokens) of training data per lifetime.
    pub budget: usize,
    /// Minibatch size, curve cadence and optimiser.
    pub life: LifetimeSpec,
    /// Learning hyper-parameters where no gene sets them.
    pub hyper: Hyper,
    /// Genes with a meaning for learning.
    pub genes: LearningGenes,
    /// One development rule per parameter ([`ModelSpec::params`] order;
    /// `None` for biases and gains).
    pub rules: Vec<Option<MatrixRule>>,
    /// Connectome matrices' bits in the genome.
    pub connectome: Vec<ConnectomeBits>,
    /// Inheritance mode.
    pub inheritance: Inheritance,
    /// Where the candle paths (autograd, batched) run.
    pub device: DeviceChoice,
    /// The training path `lifetime.path` asks for (`None`: the one the
    /// device takes, [`lineage_learn::path_for`]).
    pub path: Option<lineage_learn::Path>,
    /// Connectome mutation.
    pub rewire: Rewire,
}
