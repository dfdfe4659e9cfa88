//! `[genome]`: bits, their density and the real genes.

use lineage_evo::{GeneSpec, GenomeSpec};

use super::{Checked, Ctx};
use crate::raw::RawScenario;

/// Sizes past these are almost surely typos, and would exhaust memory
/// before the first generation ends.
pub(super) const MAX_BITS: usize = 1 << 31;

pub(super) const MAX_GENES: usize = 1 << 24;

pub(super) fn genome(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<GenomeSpec> {
    let g = &raw.genome;
    if !(0.0..=1.0).contains(&g.bit_density) {
        return Err(ctx.at(
            "genome.bit_density",
            format!("expected a probability in [0, 1], found {}", g.bit_density),
        ));
    }
    let mut genes = Vec::new();
    for (i, gene) in g.genes.iter().enumerate() {
        let at = |field: &str| format!("genome.genes[{i}].{field}");
        if gene.name.trim().is_empty() {
            return Err(ctx.at(&at("name"), "expected a gene name, found an empty string"));
        }
        if gene.count == 0 {
            return Err(ctx.at(&at("count"), "expected a count of at least 1, found 0"));
        }
        if !gene.min.is_finite() || !gene.max.is_finite() || gene.min > gene.max {
            return Err(ctx.at(
                &at("max"),
                format!(
                    "expected finite bounds with min <= max, found min = {}, max = {}",
                    gene.min, gene.max
                ),
            ));
        }
        if gene.log && gene.min <= 0.0 {
            return Err(ctx.at(
                &at("min"),
                format!("a log-scale gene needs min > 0, found {}", gene.min),
            ));
        }
        if genes.len() + gene.count > MAX_GENES {
            return Err(ctx.at(
                &at("count"),
                format!(
                    "expected at most {MAX_GENES} genes in all, found {} more",
                    gene.count
                ),
            ));
        }
        for k in 0..gene.count {
            let name = if gene.count == 1 {
                gene.name.clone()
            } else {
                format!("{}{k}", gene.name)
            };
            genes.push(GeneSpec {
                name,
                min: gene.min,
                max: gene.max,
                log: gene.log,
            });
        }
    }
    if g.bits > MAX_BITS {
        return Err(ctx.at(
            "genome.bits",
            format!("expected at most {MAX_BITS} bits, found {}", g.bits),
        ));
    }
    if genes.len() > MAX_GENES {
        return Err(ctx.at(
            "genome.genes",
            format!(
                "expected at most {MAX_GENES} genes in all, found {}",
                genes.len()
            ),
        ));
    }
    if g.bits == 0 && genes.is_empty() {
        return Err(ctx.at(
            "genome",
            "expected a genome with bits > 0 or at least one gene, found neither",
        ));
    }
    Ok(GenomeSpec {
        bits: g.bits,
        bit_density: g.bit_density,
        genes,
    })
}
