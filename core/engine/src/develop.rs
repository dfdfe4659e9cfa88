//! Development: from a genome (and, under Lamarckian or pruning
//! inheritance, a parent's learned weights) to birth weights and masks.
//!
//! Pure functions of their inputs and the organism's development stream,
//! so a run develops the same organisms whatever the thread count.
//!
//! Dale's-law matrices keep their column signs whatever the route to
//! birth: [`signs`] gives the constraints (recomputed from the rules, never
//! stored), a fresh draw is made to obey them, and inherited weights are
//! projected onto them (Lamarckian noise) or reset along them (pruning).

use lineage_develop::{InitLaw, Matrix};
use lineage_learn::Hyper;
use lineage_learn::spec::{ParamInfo, Role};
use lineage_scenario::{Inheritance, LifetimeConfig, MatrixRule, RankScale};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Birth weights and masks, in parameter order.
pub type Birth = (Vec<Vec<f32>>, Vec<Option<Vec<f32>>>);

/// The value of real gene `i` of `genome`.
fn gene(genome: &lineage_evo::Genome, i: Option<usize>) -> Option<f64> {
    i.map(|i| genome.reals()[i])
}

/// The organism's learning hyper-parameters: the scenario's, overridden by
/// learning genes.
pub fn hyper(cfg: &LifetimeConfig, genome: &lineage_evo::Genome) -> Hyper {
    let g = &cfg.genes;
    let h = cfg.hyper;
    Hyper {
        lr: gene(genome, g.lr).map_or(h.lr, |v| v as f32),
        momentum: gene(genome, g.momentum).map_or(h.momentum, |v| v as f32),
        weight_decay: gene(genome, g.weight_decay).map_or(h.weight_decay, |v| v as f32),
        steps: gene(genome, g.steps).map_or(h.steps, |v| v.round().max(0.0) as u32),
    }
}

/// The sign constraints of every parameter ([`MatrixRule::signs`]), in
/// parameter order: what `lineage_learn::Job::signs` takes.
pub fn signs(cfg: &LifetimeConfig) -> Vec<Option<Vec<f32>>> {
    cfg.model
        .params()
        .iter()
        .zip(&cfg.rules)
        .map(|(p, rule)| {
            let (rows, cols) = shape2(p);
            rule.as_ref()?.signs(rows, cols)
        })
        .collect()
}

/// Standard deviation of a rule's init law for a matrix with `fan_in`.
fn init_std(rule: &MatrixRule, gain: f32, fan_in: usize) -> f32 {
    let k = if rule.init == InitLaw::Kaiming {
        2.0f32
    } else {
        1.0
    };
    gain * (k / fan_in.max(1) as f32).sqrt()
}

fn shape2(p: &ParamInfo) -> (usize, usize) {
    (p.shape[0], p.shape.get(1).copied().unwrap_or(1))
}

/// A parameter that no rule develops: zero biases, unit gains.
fn fixed(p: &ParamInfo) -> Vec<f32> {
    vec![if p.role == Role::Gain { 1.0 } else { 0.0 }; p.len()]
}

/// Develops an organism. `inherited` holds the first parent's learned
/// weights and masks where the inheritance mode passes them on.
pub fn develop(
    cfg: &LifetimeConfig,
    genome: &lineage_evo::Genome,
    inherited: Option<(&[Vec<f32>], &[Option<Vec<f32>>])>,
    rng: &mut impl Rng,
) -> Result<Birth, String> {
    let params = cfg.model.params();
    if let Some(first) = cfg.genes.weights {
        let reals = &genome.reals()[first..];
        let mut at = 0;
        let birth = params
            .iter()
            .map(|p| {
                let v: Vec<f32> = reals[at..at + p.len()].iter().map(|&x| x as f32).collect();
                at += p.len();
                v
            })
            .collect();
        return Ok((birth, vec![None; params.len()]));
    }
    match (cfg.inheritance, inherited) {
        (Inheritance::Lamarckian { noise }, Some((learned, masks))) => {
            let (mut birth, masks) = lamarckian(learned, masks, noise, rng);
            for (w, s) in birth.iter_mut().zip(signs(cfg)) {
                if let Some(s) = s {
                    lineage_learn::optim::project_signs(w, &s);
                }
            }
            Ok((birth, masks))
        }
        (Inheritance::Prune { fraction, reset }, Some((learned, masks))) => {
            Ok(prune(cfg, &params, learned, masks, fraction, reset, genome))
        }
        _ => fresh(cfg, &params, genome, rng),
    }
}

/// Weights developed from the genome alone.
fn fresh(
    cfg: &LifetimeConfig,
    params: &[ParamInfo],
    genome: &lineage_evo::Genome,
    rng: &mut impl Rng,
) -> Result<Birth, String> {
    let g = &cfg.genes;
    let gains = |i| g.gain_of(i, |k| genome.reals()[k]);
    let rank_gene = gene(genome, g.rank).map(|v| v.round().max(1.0) as usize);
    let density_gene = gene(genome, g.density).map(|v| v.clamp(0.0, 1.0));
    let alignment_gene = gene(genome, g.alignment).map(|v| v.clamp(0.0, 1.0));
    let mut birth = Vec::with_capacity(params.len());
    let mut masks = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let Some(rule) = &cfg.rules[i] else {
            birth.push(fixed(p));
            masks.push(None);
            continue;
        };
        let (rows, cols) = shape2(p);
        let gain = rule.gain * gains(i);
        if let Some(bits) = cfg.connectome.iter().find(|c| c.param == i) {
            let scale = rule.scale.unwrap_or_else(|| init_std(rule, gain, cols));
            let b = genome.bits();
            let mut w = vec![0.0; p.len()];
            let mut mask = vec![0.0; p.len()];
            for k in 0..p.len() {
                if b.get(bits.mask + k) {
                    mask[k] = 1.0;
                    w[k] = if b.get(bits.signs + k) { scale } else { -scale };
                }
            }
            birth.push(w);
            masks.push(Some(mask));
            continue;
        }
        let mut m = lineage_develop::draw(rule.init, gain, rows, cols, rng);
        if let Some((types, scale)) = &rule.cell_types {
            // Sampled from the table, at the draw's norm or spectral
            // radius: conditions that differ in the matrix's structure
            // share the draw, and so its scale.
            let cells = types.sample(rows, rng);
            m = match scale {
                RankScale::Norm => lineage_develop::match_norm(&cells, &m),
                RankScale::Radius => lineage_develop::match_radius(&cells, &m),
            }
            .map_err(|e| format!("`{}`: {e}", p.name))?;
        }
        if let Some(r) = rank_gene.filter(|_| rule.rank.is_some()).or(rule.rank) {
            let r = r.min(rows.min(cols));
            let low = match &rule.align {
                Some(d) => lineage_develop::truncate_rank_aligned(
                    &m,
                    r,
                    d,
                    alignment_gene.unwrap_or(rule.alignment),
                ),
                None => lineage_develop::truncate_rank(&m, r),
            };
            m = match (low, rule.rank_scale) {
                (Ok(low), RankScale::Radius) => lineage_develop::match_radius(&low, &m),
                (low, _) => low,
            }
            .map_err(|e| format!("`{}`: {e}", p.name))?;
        }
        if let Some(f) = rule.dale {
            m = lineage_develop::dale(&m, f)
                .map_err(|e| format!("`{}`: {e}", p.name))?
                .0;
        }
        let mask = match density_gene
            .filter(|_| rule.density.is_some())
            .or(rule.density)
        {
            Some(d) if d < 1.0 => {
                let bits = lineage_develop::random_mask(rows, cols, d, rng);
                lineage_develop::apply_mask(&mut m, &bits)
                    .map_err(|e| format!("`{}`: {e}", p.name))?;
                Some(
                    (0..p.len())
                        .map(|k| f32::from(u8::from(bits.get(k))))
                        .collect(),
                )
            }
            _ => None,
        };
        let Matrix { data, .. } = m;
        birth.push(data);
        masks.push(mask);
    }
    Ok((birth, masks))
}

/// The parent's learned weights plus Gaussian noise on unmasked weights.
fn lamarckian(
    learned: &[Vec<f32>],
    masks: &[Option<Vec<f32>>],
    noise: f32,
    rng: &mut impl Rng,
) -> Birth {
    let normal = Normal::new(0.0f32, noise)
        .unwrap_or_else(|_| Normal::new(0.0, 0.0).expect("zero noise is valid"));
    let birth = learned
        .iter()
        .zip(masks)
        .map(|(w, mask)| {
            if noise == 0.0 {
                return w.clone();
            }
            w.iter()
                .enumerate()
                .map(|(k, &x)| {
                    let e = normal.sample(rng);
                    match mask {
                        Some(m) if m[k] == 0.0 => 0.0,
                        _ => x + e,
                    }
                })
                .collect()
        })
        .collect();
    (birth, masks.to_vec())
}

/// The Model Connectomes step: in every maskable matrix, remove `fraction`
/// of the surviving weights with the smallest learned magnitude (ties
/// broken by position), reset the survivors to `sign x scale`, and keep
/// the rest (biases, gains) at their birth values.
fn prune(
    cfg: &LifetimeConfig,
    params: &[ParamInfo],
    learned: &[Vec<f32>],
    masks: &[Option<Vec<f32>>],
    fraction: f64,
    reset: Option<f32>,
    genome: &lineage_evo::Genome,
) -> Birth {
    let mut birth = Vec::with_capacity(params.len());
    let mut out_masks = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let Some(rule) = &cfg.rules[i] else {
            birth.push(fixed(p));
            out_masks.push(None);
            continue;
        };
        let w = &learned[i];
        let mut mask = masks[i].clone().unwrap_or_else(|| vec![1.0; w.len()]);
        let mut alive: Vec<usize> = (0..w.len()).filter(|&k| mask[k] != 0.0).collect();
        let remove = (fraction * alive.len() as f64).round() as usize;
        if remove > 0 {
            alive.select_nth_unstable_by(remove - 1, |&a, &b| {
                w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b))
            });
            for &k in &alive[..remove] {
                mask[k] = 0.0;
            }
        }
        let (rows, cols) = shape2(p);
        let gain = rule.gain * cfg.genes.gain_of(i, |k| genome.reals()[k]);
        let scale = reset.unwrap_or_else(|| init_std(rule, gain, cols));
        // A Dale matrix's survivors take their column's sign (a learned
        // weight may sit at zero, its sign's bound).
        let signs = rule.signs(rows, cols);
        birth.push(
            w.iter()
                .zip(&mask)
                .enumerate()
                .map(|(k, (&x, &m))| {
                    let negative = match &signs {
                        Some(s) => s[k] < 0.0,
                        None => x < 0.0,
                    };
                    if m == 0.0 {
                        0.0
                    } else if negative {
                        -scale
                    } else {
                        scale
                    }
                })
                .collect(),
        );
        out_masks.push(Some(mask));
    }
    (birth, out_masks)
}
