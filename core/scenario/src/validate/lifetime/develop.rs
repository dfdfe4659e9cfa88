//! The development rules of `[lifetime]`: every rule names a weight matrix
//! that exists, with a rank, alignment and sign fraction it can have; the
//! learning genes.

use std::sync::Arc;

use lineage_develop::InitLaw;
use lineage_evo::GenomeSpec;
use lineage_learn::spec::{ModelSpec, ParamInfo};

use crate::lifetime::{LearningGenes, MatrixRule, RankScale};
use crate::raw::lifetime::{RawAlign, RawDevelop, RawRule};

use super::Check;
use super::*;

/// The shipped cell-type table's name in `cell_types`.
pub(in crate::validate) const V1_BILLEH2020: &str = "v1-billeh2020";
/// Mouse V1 (the Allen Institute's model, Billeh et al. 2020), with its
/// provenance in its comments.
const V1_BILLEH2020_TABLE: &str = include_str!("../../../../../scenarios/data/v1-billeh2020.toml");

/// A cell-type table file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCellTypes {
    #[allow(dead_code)]
    source: Option<String>,
    classes: Vec<String>,
    excitatory: Vec<bool>,
    cells: Vec<f64>,
    probability: Vec<Vec<f64>>,
    strength: Vec<Vec<f64>>,
}

fn parse_cell_types(text: &str) -> Result<lineage_develop::CellTypes, String> {
    let raw: RawCellTypes = toml::from_str(text).map_err(|e| e.to_string())?;
    lineage_develop::CellTypes::new(
        raw.classes,
        raw.excitatory,
        raw.cells,
        raw.probability,
        raw.strength,
    )
}

impl<E> Check<'_, E> {
    pub(super) fn rules(
        &self,
        raw: &RawDevelop,
        params: &[ParamInfo],
        task: &TaskAlign<'_>,
    ) -> Result<Vec<Option<MatrixRule>>, E> {
        let all = RawRule {
            init: raw.init.clone(),
            gain: raw.gain,
            density: raw.density,
            rank: raw.rank,
            connectome: raw.connectome,
            scale: raw.scale,
            align: raw.align.clone(),
            alignment: raw.alignment,
            rank_scale: raw.rank_scale.clone(),
            dale: None,
            cell_types: None,
            cell_scale: None,
        };
        let base = self.rule("develop", &all, None, None, task)?;
        let mut rules: Vec<Option<MatrixRule>> = params
            .iter()
            .map(|p| p.role.maskable().then(|| base.clone()))
            .collect();
        for (i, m) in raw.matrix.iter().enumerate() {
            let field = format!("develop.matrix[{i}]");
            let Some(k) = params.iter().position(|p| p.name == m.name) else {
                let names: Vec<&str> = params
                    .iter()
                    .filter(|p| p.role.maskable())
                    .map(|p| p.name.as_str())
                    .collect();
                return self.err(
                    &format!("{field}.name"),
                    format!(
                        "the model has no weight matrix `{}` (its matrices: {})",
                        m.name,
                        names.join(", ")
                    ),
                );
            };
            if !params[k].role.maskable() {
                return self.err(
                    &format!("{field}.name"),
                    format!("`{}` is a bias or gain, not a weight matrix", m.name),
                );
            }
            let own = RawRule {
                init: m.init.clone(),
                gain: m.gain,
                density: m.density,
                rank: m.rank,
                connectome: m.connectome,
                scale: m.scale,
                align: m.align.clone(),
                alignment: m.alignment,
                rank_scale: m.rank_scale.clone(),
                dale: m.dale,
                cell_types: m.cell_types.clone(),
                cell_scale: m.cell_scale.clone(),
            };
            rules[k] = Some(self.rule(&field, &own, Some(base.clone()), Some(&params[k]), task)?);
        }
        // The base rule's rank and direction must fit every matrix they
        // apply to.
        for (p, rule) in params.iter().zip(&rules) {
            let Some(rule) = rule else { continue };
            if let Some(r) = base.rank
                && rule.rank == Some(r)
            {
                self.rank_fits("develop.rank", r, p)?;
            }
            if let (Some(a), Some(b)) = (&base.align, &rule.align)
                && Arc::ptr_eq(a, b)
            {
                self.align_fits("develop.align", a, p)?;
            }
            if rule.rank.is_some() && rule.rank_scale == RankScale::Radius {
                self.square_for_radius("develop.rank_scale", p)?;
            }
        }
        Ok(rules)
    }

    pub(super) fn rule(
        &self,
        field: &str,
        raw: &RawRule,
        base: Option<MatrixRule>,
        param: Option<&ParamInfo>,
        task: &TaskAlign<'_>,
    ) -> Result<MatrixRule, E> {
        let base = base.unwrap_or(MatrixRule {
            init: InitLaw::Gaussian,
            gain: 1.0,
            density: None,
            rank: None,
            connectome: false,
            scale: None,
            align: None,
            alignment: 1.0,
            rank_scale: RankScale::Norm,
            dale: None,
            cell_types: None,
        });
        let init = match raw.init.as_deref() {
            None => base.init,
            Some("gaussian") => InitLaw::Gaussian,
            Some("uniform") => InitLaw::Uniform,
            Some("kaiming") => InitLaw::Kaiming,
            Some(other) => {
                return self.err(
                    &format!("{field}.init"),
                    format!(
                        "unknown init law `{other}` (expected one of: gaussian, uniform, kaiming)"
                    ),
                );
            }
        };
        let gain = raw.gain.unwrap_or(base.gain);
        if !(gain >= 0.0 && gain.is_finite()) {
            return self.err(
                &format!("{field}.gain"),
                format!("expected a finite gain >= 0, found {gain}"),
            );
        }
        let density = raw.density.or(base.density);
        if let Some(d) = raw.density
            && !(d > 0.0 && d <= 1.0)
        {
            return self.err(
                &format!("{field}.density"),
                format!("expected a density in (0, 1], found {d}"),
            );
        }
        let rank = raw.rank.or(base.rank);
        if let Some(r) = raw.rank {
            match param {
                Some(p) => self.rank_fits(&format!("{field}.rank"), r, p)?,
                None if r == 0 => {
                    return self.err(
                        &format!("{field}.rank"),
                        "expected a rank of at least 1, found 0",
                    );
                }
                None => {}
            }
        }
        let scale = raw.scale.or(base.scale);
        if let Some(s) = raw.scale
            && !(s > 0.0 && s.is_finite())
        {
            return self.err(
                &format!("{field}.scale"),
                format!("expected a positive scale, found {s}"),
            );
        }
        let resolved: Option<Vec<f32>> = match &raw.align {
            None => None,
            Some(RawAlign::Direction(a)) => Some(a.clone()),
            Some(RawAlign::Named(name)) if name == "task" => match task.direction {
                Some(d) => Some(d.to_vec()),
                None => {
                    return self.err(
                        &format!("{field}.align"),
                        format!(
                            "`align = \"task\"` needs an environment with a task direction (linear_teacher, or a plugin's that declares one), but `{}` has none",
                            task.environment
                        ),
                    );
                }
            },
            Some(RawAlign::Named(other)) => {
                return self.err(
                    &format!("{field}.align"),
                    format!(
                        "expected a direction (a list of numbers) or \"task\", found \"{other}\""
                    ),
                );
            }
        };
        let align: Option<Arc<[f32]>> = match &resolved {
            Some(a) => {
                if let Some(p) = param {
                    self.align_fits(&format!("{field}.align"), a, p)?;
                }
                if rank.is_none() {
                    return self.err(
                        &format!("{field}.align"),
                        "`align` sets the leading direction of a low-rank matrix: give `rank` too",
                    );
                }
                Some(a.as_slice().into())
            }
            None => base.align.clone(),
        };
        let alignment = raw.alignment.unwrap_or(base.alignment);
        if let Some(c) = raw.alignment {
            if !(0.0..=1.0).contains(&c) {
                return self.err(
                    &format!("{field}.alignment"),
                    format!("expected an alignment (a cosine) in [0, 1], found {c}"),
                );
            }
            if align.is_none() {
                return self.err(
                    &format!("{field}.alignment"),
                    "`alignment` is the cosine between a matrix's leading direction and its `align` direction: give `align` too",
                );
            }
        }
        let rank_scale = match raw.rank_scale.as_deref() {
            None => base.rank_scale,
            Some("norm") => RankScale::Norm,
            Some("radius") => RankScale::Radius,
            Some(other) => {
                return self.err(
                    &format!("{field}.rank_scale"),
                    format!("expected \"norm\" or \"radius\", found \"{other}\""),
                );
            }
        };
        if raw.rank_scale.is_some() {
            if rank.is_none() {
                return self.err(
                    &format!("{field}.rank_scale"),
                    "`rank_scale` says what a rank-truncated matrix keeps of the draw: give `rank` too",
                );
            }
            if let Some(p) = param
                && rank_scale == RankScale::Radius
            {
                self.square_for_radius(&format!("{field}.rank_scale"), p)?;
            }
        }
        let connectome = raw.connectome.unwrap_or(base.connectome);
        if connectome && (density.is_some() || rank.is_some()) {
            return self.err(
                &format!("{field}.connectome"),
                "a connectome matrix takes its mask and signs from the genome: it cannot also have `density` or `rank`",
            );
        }
        if let Some(f) = raw.dale {
            self.dale_fits(&format!("{field}.dale"), f, param)?;
            let clash = [
                (rank.is_some(), "rank"),
                (density.is_some(), "density"),
                (connectome, "connectome"),
            ];
            if let Some((_, key)) = clash.iter().find(|(set, _)| *set) {
                return self.err(
                    &format!("{field}.dale"),
                    format!(
                        "`dale` cannot be combined with `{key}`: Dale's law sets every weight's sign from its column, and keeps a full-rank, dense draw"
                    ),
                );
            }
        }
        let cell_types = self.cell_types_rule(
            field,
            raw,
            param,
            &[
                (rank.is_some(), "rank"),
                (density.is_some(), "density"),
                (connectome, "connectome"),
                (align.is_some(), "align"),
                (raw.dale.is_some(), "dale"),
            ],
        )?;
        Ok(MatrixRule {
            init,
            gain,
            density,
            rank,
            connectome,
            scale,
            align,
            alignment,
            rank_scale,
            dale: raw.dale,
            cell_types,
        })
    }

    /// `cell_types` (a table: the shipped `v1-billeh2020`, or a TOML file)
    /// and `cell_scale` (`norm` or `radius`) of a square matrix that no
    /// other structure is asked of (`clash`).
    fn cell_types_rule(
        &self,
        field: &str,
        raw: &RawRule,
        param: Option<&ParamInfo>,
        clash: &[(bool, &str)],
    ) -> Result<Option<(Arc<lineage_develop::CellTypes>, RankScale)>, E> {
        let Some(name) = &raw.cell_types else {
            if raw.cell_scale.is_some() {
                return self.err(
                    &format!("{field}.cell_scale"),
                    "`cell_scale` says what a matrix sampled from `cell_types` keeps of the draw: give `cell_types` too",
                );
            }
            return Ok(None);
        };
        let here = format!("{field}.cell_types");
        if let Some((_, key)) = clash.iter().find(|(set, _)| *set) {
            return self.err(
                &here,
                format!(
                    "`cell_types` cannot be combined with `{key}`: the matrix is sampled from the table, with its own sparsity, signs and rank"
                ),
            );
        }
        let scale = match raw.cell_scale.as_deref() {
            None | Some("norm") => RankScale::Norm,
            Some("radius") => RankScale::Radius,
            Some(other) => {
                return self.err(
                    &format!("{field}.cell_scale"),
                    format!("expected \"norm\" or \"radius\", found \"{other}\""),
                );
            }
        };
        if let Some(p) = param {
            let (rows, cols) = (p.shape[0], p.shape.get(1).copied().unwrap_or(1));
            if rows != cols || p.shape.len() != 2 {
                return self.err(
                    &here,
                    format!(
                        "a cell-type table connects units to units: it needs a square (recurrent) matrix, but `{}` is {rows}x{cols}",
                        p.name
                    ),
                );
            }
        }
        let (text, file) = if name == V1_BILLEH2020 {
            (
                V1_BILLEH2020_TABLE.to_owned(),
                format!("{V1_BILLEH2020} (shipped)"),
            )
        } else {
            let path = self.data_path(&format!("lifetime.{here}"), name);
            match std::fs::read_to_string(&path) {
                Ok(t) => (t, path.display().to_string()),
                Err(e) => {
                    return self.err(
                        &here,
                        format!(
                            "cannot read the cell-type table `{}`: {e} (a TOML file, or \"{V1_BILLEH2020}\" for the shipped one)",
                            path.display()
                        ),
                    );
                }
            }
        };
        match parse_cell_types(&text) {
            Ok(t) => Ok(Some((Arc::new(t), scale))),
            Err(message) => self.err(&here, format!("the cell-type table {file}: {message}")),
        }
    }

    /// `rank_scale = "radius"` needs eigenvalues: a square matrix.
    fn square_for_radius(&self, field: &str, p: &ParamInfo) -> Result<(), E> {
        let (rows, cols) = (p.shape[0], p.shape.get(1).copied().unwrap_or(1));
        if rows == cols {
            return Ok(());
        }
        self.err(
            field,
            format!(
                "`rank_scale = \"radius\"` matches a spectral radius, which only a square matrix has; `{}` is {rows}x{cols}",
                p.name
            ),
        )
    }

    /// A Dale fraction must split a square matrix's units into both kinds.
    pub(super) fn dale_fits(
        &self,
        field: &str,
        fraction: f64,
        p: Option<&ParamInfo>,
    ) -> Result<(), E> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return self.err(
                field,
                format!("expected a fraction of excitatory units in (0, 1), found {fraction}"),
            );
        }
        let Some(p) = p else { return Ok(()) };
        let (rows, cols) = (p.shape[0], p.shape.get(1).copied().unwrap_or(1));
        if rows != cols {
            return self.err(
                field,
                format!(
                    "Dale's law gives each unit one sign for its outgoing weights: it needs a square (recurrent) matrix, but `{}` is {rows}x{cols}",
                    p.name
                ),
            );
        }
        if lineage_develop::column_signs(cols, fraction).is_err() {
            return self.err(
                field,
                format!(
                    "an excitatory fraction of {fraction} leaves `{}`'s {cols} units without excitatory or without inhibitory units",
                    p.name
                ),
            );
        }
        Ok(())
    }

    pub(super) fn align_fits(&self, field: &str, align: &[f32], p: &ParamInfo) -> Result<(), E> {
        let cols = p.shape.get(1).copied().unwrap_or(1);
        if align.len() != cols
            || align.iter().all(|&x| x == 0.0)
            || !align.iter().all(|x| x.is_finite())
        {
            return Err((self.at)(
                &format!("lifetime.{field}"),
                format!(
                    "`{}` reads {cols} inputs: its alignment direction needs {cols} finite values, not all zero (found {})",
                    p.name,
                    align.len()
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn rank_fits(&self, field: &str, rank: usize, p: &ParamInfo) -> Result<(), E> {
        let max = p.shape.iter().copied().min().unwrap_or(0);
        if rank == 0 || rank > max {
            return Err((self.at)(
                &format!("lifetime.{field}"),
                format!(
                    "rank {rank} does not fit `{}`, a {}x{} matrix (rank 1 to {max})",
                    p.name, p.shape[0], p.shape[1]
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn genes(
        &self,
        genome: &GenomeSpec,
        model: &ModelSpec,
        rules: &[Option<MatrixRule>],
    ) -> Result<LearningGenes, E> {
        let find = |name: &str| genome.genes.iter().position(|g| g.name == name);
        let weights = genome
            .genes
            .iter()
            .position(|g| g.name == "weights0" || g.name == "weights");
        if let Some(first) = weights {
            let count = genome.genes[first..]
                .iter()
                .take_while(|g| g.name.starts_with("weights"))
                .count();
            let needed = model.parameter_count();
            if count != needed {
                return Err((self.at)(
                    "genome.genes",
                    format!(
                        "a `weights` gene must have one value per parameter: the model has {needed}, the gene has {count}"
                    ),
                ));
            }
        }
        let params = model.params();
        let mut matrix_gain = Vec::new();
        for (i, g) in genome.genes.iter().enumerate() {
            let Some(name) = g.name.strip_prefix("gain.") else {
                continue;
            };
            match params.iter().position(|p| p.name == name) {
                Some(k) if rules[k].is_some() => matrix_gain.push((k, i)),
                _ => {
                    let matrices: Vec<&str> = params
                        .iter()
                        .zip(rules)
                        .filter(|(_, r)| r.is_some())
                        .map(|(p, _)| p.name.as_str())
                        .collect();
                    return Err((self.at)(
                        &format!("genome.genes[{i}].name"),
                        format!(
                            "a `gain.NAME` gene scales the init gain of the weight matrix NAME, and the model has no weight matrix `{name}` (its matrices: {})",
                            matrices.join(", ")
                        ),
                    ));
                }
            }
        }
        let genes = LearningGenes {
            lr: find("lr"),
            matrix_gain,
            momentum: find("momentum"),
            weight_decay: find("weight_decay"),
            steps: find("steps"),
            gain: find("gain"),
            rank: find("rank"),
            density: find("density"),
            alignment: find("alignment"),
            weights,
        };
        if let Some(i) = genes.lr
            && genome.genes[i].min <= 0.0
        {
            return Err((self.at)(
                "genome.genes",
                "the `lr` gene must stay positive (min > 0)".into(),
            ));
        }
        if let Some(i) = genes.rank {
            // The gene sets the rank of every matrix whose rule has one.
            let g = &genome.genes[i];
            let ranked: Vec<&ParamInfo> = params
                .iter()
                .zip(rules)
                .filter(|(_, r)| r.as_ref().is_some_and(|r| r.rank.is_some()))
                .map(|(p, _)| p)
                .collect();
            let max = ranked
                .iter()
                .map(|p| p.shape.iter().copied().min().unwrap_or(0))
                .min()
                .unwrap_or(0);
            if ranked.is_empty() {
                return Err((self.at)(
                    &format!("genome.genes[{i}].name"),
                    "a `rank` gene sets the rank of the matrices whose develop rule has a `rank`, and no rule has one".into(),
                ));
            }
            if g.min < 1.0 || g.max.round() as usize > max {
                return Err((self.at)(
                    "genome.genes",
                    format!(
                        "the `rank` gene ranges over [{}, {}] but ranks must lie in 1..={max} for every matrix with a rank rule",
                        g.min, g.max
                    ),
                ));
            }
        }
        Ok(genes)
    }
}
