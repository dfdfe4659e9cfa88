//! Each organism's own examples, gathered into one `[P, ...]` input and
//! target: rows and sequences from the chunk's stores on the device by
//! their row indices, token contexts and windows sent from the host.

use candle_core::Tensor;

use super::chunk::Chunk;
use super::net::{Body, Input, Target};
use super::unsupported;
use super::upload::Source;
use crate::LearnError;
use crate::spec::{Loss, SequenceInput};
use lineage_env::IGNORE;

impl Chunk<'_, '_> {
    /// Input and target of `rows` examples for each organism of
    /// `members`, stacked in that order: organism `o`'s row `r` is example
    /// `pick(o, r)` of `sources[o]`, or padding. Every member's source
    /// has the same steps per example (a chunk's train sets do, and the
    /// held-out passes are grouped by them).
    pub(super) fn gather(
        &self,
        sources: &[Source],
        members: &[usize],
        rows: usize,
        pick: impl Fn(usize, usize) -> Option<u32>,
    ) -> Result<(Input, Target), LearnError> {
        let steps = members.first().map_or(1, |&o| sources[o].steps());
        if members.iter().any(|&o| sources[o].steps() != steps) {
            return Err(unsupported("sequences of different lengths in one pass"));
        }
        match (&self.net.body, members.first().map(|&o| sources[o])) {
            (Body::Mlp(mlp), Some(Source::Tokens { .. })) => {
                let embed = mlp
                    .spec
                    .embedding
                    .ok_or_else(|| unsupported("an MLP without data"))?;
                self.contexts(sources, members, rows, embed.vocab, embed.context, pick)
            }
            (Body::Mlp(mlp), _) => {
                let store = self
                    .stores
                    .first()
                    .ok_or_else(|| unsupported("an MLP without data"))?;
                let ids = self.row_ids(sources, members, rows, store.pad, 0, &pick)?;
                let p = members.len();
                let outputs = *mlp.spec.widths.last().unwrap_or(&0);
                let x = store
                    .x
                    .index_select(&ids, 0)?
                    .reshape((p, rows, mlp.spec.widths[0]))?;
                let target = store.target.index_select(&ids, 0)?;
                let target = match self.net.loss {
                    Loss::CrossEntropy => target.reshape((p, rows, 1))?,
                    Loss::MeanSquared => target.reshape((p, rows, outputs))?,
                };
                let target = Target {
                    values: target,
                    scored: None,
                };
                Ok((Input::Rows(x), target))
            }
            (_, Some(Source::Rows { store: k, .. })) => {
                let Some((input, _)) = self.net.body.sequences() else {
                    return Err(unsupported("this model on sequences"));
                };
                let store = self
                    .stores
                    .get(k)
                    .ok_or_else(|| unsupported("a sequence outside the chunk's data"))?;
                let ids = self.row_ids(sources, members, rows, store.pad, k, &pick)?;
                let p = members.len();
                let dim = input.width();
                // Time-major, so that each step's inputs are one slice.
                let x = store
                    .x
                    .index_select(&ids, 0)?
                    .reshape((p, rows, steps, dim))?
                    .permute((2, 0, 1, 3))?
                    .contiguous()?;
                let values = store
                    .target
                    .index_select(&ids, 0)?
                    .reshape((p, rows * steps, 1))?;
                let mask = match &store.scored {
                    Some(scored) => scored
                        .index_select(&ids, 0)?
                        .reshape((p, rows * steps, 1))?,
                    None => return Err(unsupported("sequences without their labels")),
                };
                // The scored positions of each organism, counted on the
                // host from the same labels.
                let counts = members
                    .iter()
                    .map(|&o| match sources[o] {
                        Source::Rows {
                            labels: Some(labels),
                            ..
                        } => (0..rows)
                            .filter_map(|r| pick(o, r))
                            .map(|e| {
                                let e = e as usize;
                                labels[e * steps..(e + 1) * steps]
                                    .iter()
                                    .filter(|&&l| l != IGNORE)
                                    .count()
                            })
                            .sum(),
                        _ => 0,
                    })
                    .collect();
                let target = Target {
                    values,
                    scored: Some((mask, counts)),
                };
                Ok((Input::Sequences(x), target))
            }
            (_, _) => match self.net.body.sequences() {
                Some((SequenceInput::Tokens { vocab }, _)) => {
                    self.windows(sources, members, rows, vocab, steps, pick)
                }
                Some((SequenceInput::Dense { .. }, _)) => {
                    Err(unsupported("real sequences as tokens"))
                }
                None => Err(unsupported("this model on token windows")),
            },
        }
    }

    /// The store rows `members` read, `[P · rows]` (u32): organism `o`'s
    /// row `r` is its example `pick(o, r)`, or the store's zero row.
    fn row_ids(
        &self,
        sources: &[Source],
        members: &[usize],
        rows: usize,
        pad: u32,
        store: usize,
        pick: &impl Fn(usize, usize) -> Option<u32>,
    ) -> Result<Tensor, LearnError> {
        let mut ids = Vec::with_capacity(members.len() * rows);
        for &o in members {
            for r in 0..rows {
                ids.push(match (sources[o], pick(o, r)) {
                    (
                        Source::Rows {
                            offset, store: s, ..
                        },
                        Some(e),
                    ) if s == store => offset + e,
                    (Source::Rows { store: s, .. }, _) if s != store => {
                        return Err(unsupported("sequences of one pass in two stores"));
                    }
                    _ => pad,
                });
            }
        }
        Ok(Tensor::from_vec(ids, members.len() * rows, self.device)?)
    }

    /// An MLP language model's contexts: each organism's token ids
    /// offset into its own table of the `[P · vocab, dim]` stack, and the
    /// next tokens as labels.
    fn contexts(
        &self,
        sources: &[Source],
        members: &[usize],
        rows: usize,
        vocab: usize,
        context: usize,
        pick: impl Fn(usize, usize) -> Option<u32>,
    ) -> Result<(Input, Target), LearnError> {
        let p = members.len();
        let mut ctx = Vec::with_capacity(p * rows * context);
        let mut labels = Vec::with_capacity(p * rows);
        for (at, &o) in members.iter().enumerate() {
            // The row of `o`'s table in the `[p · vocab, dim]` stack.
            let base = (at * vocab) as u32;
            for r in 0..rows {
                match (sources[o], pick(o, r)) {
                    (
                        Source::Tokens {
                            tokens,
                            per,
                            context,
                            len,
                            ..
                        },
                        Some(e),
                    ) => {
                        let e = e as usize;
                        let start = (e / per) * len + e % per;
                        ctx.extend(tokens[start..start + context].iter().map(|&t| base + t));
                        labels.push(tokens[start + context]);
                    }
                    _ => {
                        ctx.extend(std::iter::repeat_n(base, context));
                        labels.push(0);
                    }
                }
            }
        }
        let ctx = Tensor::from_vec(ctx, p * rows * context, self.device)?;
        let labels = Tensor::from_vec(labels, (p, rows, 1), self.device)?;
        let target = Target {
            values: labels,
            scored: None,
        };
        Ok((Input::Tokens(ctx), target))
    }

    /// A recurrent net's token windows of `steps + 1` tokens: time-major
    /// ids offset into each organism's own table of the `[P · vocab, G]`
    /// stack, the next tokens as labels, every position scored but
    /// padding's.
    fn windows(
        &self,
        sources: &[Source],
        members: &[usize],
        rows: usize,
        vocab: usize,
        steps: usize,
        pick: impl Fn(usize, usize) -> Option<u32>,
    ) -> Result<(Input, Target), LearnError> {
        let p = members.len();
        let mut ids = vec![0u32; steps * p * rows];
        let mut labels = vec![0u32; p * rows * steps];
        let mut scored = vec![0u8; p * rows * steps];
        let mut counts = vec![0usize; p];
        for (at, &o) in members.iter().enumerate() {
            let base = (at * vocab) as u32;
            for r in 0..rows {
                let row = at * rows + r;
                let window = match (sources[o], pick(o, r)) {
                    (Source::Windows { tokens, len, .. }, Some(e)) => {
                        let e = e as usize;
                        Some(&tokens[e * len..(e + 1) * len])
                    }
                    _ => None,
                };
                for t in 0..steps {
                    ids[t * p * rows + row] = base + window.map_or(0, |w| w[t]);
                }
                if let Some(w) = window {
                    labels[row * steps..(row + 1) * steps].copy_from_slice(&w[1..]);
                    scored[row * steps..(row + 1) * steps].fill(1);
                    counts[at] += steps;
                }
            }
        }
        let ids = Tensor::from_vec(ids, (steps, p * rows), self.device)?;
        let target = Target {
            values: Tensor::from_vec(labels, (p, rows * steps, 1), self.device)?,
            scored: Some((
                Tensor::from_vec(scored, (p, rows * steps, 1), self.device)?,
                counts,
            )),
        };
        Ok((Input::Windows(ids), target))
    }
}
