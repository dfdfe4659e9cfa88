//! Connectome mutation: structural changes to one weight matrix's mask and
//! signs, stored as two runs of `len` bits in a genome (mask bit 1: the
//! edge exists; sign bit 1: it is excitatory, positive).
//!
//! - [`rewire`] moves `k` existing edges to `k` absent positions (new sign
//!   drawn at random), keeping the density;
//! - [`flip_signs`] flips the sign of `k` existing edges;
//! - [`change_density`] adds or removes edges at random positions to reach
//!   a new edge count.

use lineage_evo::BitString;
use rand::Rng;
use rand::seq::index::sample;

/// Where a matrix's bits sit in a bit string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First mask bit.
    pub mask: usize,
    /// First sign bit.
    pub signs: usize,
    /// Weights in the matrix.
    pub len: usize,
}

fn positions(bits: &BitString, r: Region, alive: bool) -> Vec<usize> {
    (0..r.len)
        .filter(|&k| bits.get(r.mask + k) == alive)
        .collect()
}

/// Moves `k` edges (fewer where the matrix has fewer edges or holes).
pub fn rewire(bits: &mut BitString, r: Region, k: usize, rng: &mut impl Rng) {
    let on = positions(bits, r, true);
    let off = positions(bits, r, false);
    let k = k.min(on.len()).min(off.len());
    if k == 0 {
        return;
    }
    let from = sample(rng, on.len(), k);
    let to = sample(rng, off.len(), k);
    for (a, b) in from.iter().zip(to.iter()) {
        bits.set(r.mask + on[a], false);
        bits.set(r.mask + off[b], true);
        bits.set(r.signs + off[b], rng.random_bool(0.5));
    }
}

/// Flips the sign of `k` edges (fewer where the matrix has fewer).
pub fn flip_signs(bits: &mut BitString, r: Region, k: usize, rng: &mut impl Rng) {
    let on = positions(bits, r, true);
    let k = k.min(on.len());
    for i in sample(rng, on.len(), k).iter() {
        bits.flip(r.signs + on[i]);
    }
}

/// Adds or removes edges at random so that the matrix has `target` edges
/// (clamped to its size); new edges get random signs.
pub fn change_density(bits: &mut BitString, r: Region, target: usize, rng: &mut impl Rng) {
    let target = target.min(r.len);
    let on = positions(bits, r, true);
    if target < on.len() {
        for i in sample(rng, on.len(), on.len() - target).iter() {
            bits.set(r.mask + on[i], false);
        }
    } else if target > on.len() {
        let off = positions(bits, r, false);
        for i in sample(rng, off.len(), target - on.len()).iter() {
            bits.set(r.mask + off[i], true);
            bits.set(r.signs + off[i], rng.random_bool(0.5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn genome(rng: &mut impl Rng) -> (BitString, Region) {
        let r = Region {
            mask: 0,
            signs: 100,
            len: 100,
        };
        let mut bits = BitString::zeros(200);
        for k in 0..100 {
            bits.set(k, rng.random_bool(0.3));
            bits.set(100 + k, rng.random_bool(0.5));
        }
        (bits, r)
    }

    fn edges(bits: &BitString, r: Region) -> usize {
        positions(bits, r, true).len()
    }

    #[test]
    fn rewiring_moves_edges_and_keeps_density() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
        let (mut bits, r) = genome(&mut rng);
        let before = positions(&bits, r, true);
        rewire(&mut bits, r, 5, &mut rng);
        let after = positions(&bits, r, true);
        assert_eq!(before.len(), after.len());
        let moved = before.iter().filter(|k| !after.contains(k)).count();
        assert_eq!(moved, 5);
    }

    #[test]
    fn sign_flips_touch_only_existing_edges() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
        let (mut bits, r) = genome(&mut rng);
        let old = bits.clone();
        flip_signs(&mut bits, r, 7, &mut rng);
        let changed: Vec<usize> = (0..100)
            .filter(|&k| bits.get(100 + k) != old.get(100 + k))
            .collect();
        assert_eq!(changed.len(), 7);
        assert!(
            changed.iter().all(|&k| bits.get(k)),
            "flipped signs belong to edges"
        );
        assert_eq!(edges(&bits, r), edges(&old, r));
    }

    #[test]
    fn density_changes_reach_the_target() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let (mut bits, r) = genome(&mut rng);
        change_density(&mut bits, r, 50, &mut rng);
        assert_eq!(edges(&bits, r), 50);
        change_density(&mut bits, r, 10, &mut rng);
        assert_eq!(edges(&bits, r), 10);
        change_density(&mut bits, r, 1000, &mut rng);
        assert_eq!(edges(&bits, r), 100);
    }
}
