//! `[mutation]`: bit and gene rates and the Gaussian step, with defaults
//! from the genome's size.

use lineage_evo::GenomeSpec;
use lineage_evo::operators::Mutation;

use super::{Checked, Ctx};
use crate::raw::RawScenario;

pub(super) fn mutation(ctx: &Ctx<'_>, raw: &RawScenario, genome: &GenomeSpec) -> Checked<Mutation> {
    let m = &raw.mutation;
    let bit_rate = m.bit_rate.unwrap_or(if genome.bits > 0 {
        1.0 / genome.bits as f64
    } else {
        0.0
    });
    let gene_rate = m.gene_rate.unwrap_or(if genome.genes.is_empty() {
        0.0
    } else {
        1.0 / genome.genes.len() as f64
    });
    let sigma = m.sigma.unwrap_or(0.1);
    for (field, rate) in [("bit_rate", bit_rate), ("gene_rate", gene_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ctx.at(
                &format!("mutation.{field}"),
                format!("expected a probability in [0, 1], found {rate}"),
            ));
        }
    }
    if !(sigma >= 0.0 && sigma.is_finite()) {
        return Err(ctx.at(
            "mutation.sigma",
            format!("expected a finite sigma >= 0, found {sigma}"),
        ));
    }
    Ok(Mutation {
        bit_rate,
        sigma,
        gene_rate,
    })
}
