//! A chunk's data on the device: its distinct batches uploaded once, and
//! where each organism's train and held-out examples are.

use candle_core::{Device, Tensor};
use lineage_env::Batch;

use super::net::Net;
use super::unsupported;
use crate::data::Examples;
use crate::spec::{Loss, ModelSpec};
use crate::{Job, LearnError};

/// Where an organism's examples are.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// Rows `offset..offset + count` of the chunk's [`Store`].
    Rows { offset: u32, count: usize },
    /// Window positions of a token batch ([`Examples::Positions`]).
    Tokens {
        tokens: &'a [u32],
        per: usize,
        context: usize,
        len: usize,
        count: usize,
    },
}

impl Source<'_> {
    pub(super) fn count(self) -> usize {
        match self {
            Source::Rows { count, .. } | Source::Tokens { count, .. } => count,
        }
    }
}

/// The rows of a chunk's distinct row batches on the device, then one
/// row of zeros that padding reads.
pub(super) struct Store {
    /// `[rows + 1, inputs]`.
    pub(super) x: Tensor,
    /// Labels `[rows + 1]` (u32) or target values `[rows + 1, outputs]`.
    pub(super) target: Tensor,
    /// The zero row.
    pub(super) pad: u32,
}

/// Uploads the distinct batches `jobs` learn from and are scored on, and
/// says where each job's train and held-out examples are.
#[allow(clippy::type_complexity)]
pub(super) fn upload<'a>(
    net: &Net,
    jobs: &[Job<'a>],
    device: &Device,
) -> Result<(Option<Store>, Vec<Source<'a>>, Vec<Source<'a>>), LearnError> {
    let model = ModelSpec::Mlp(net.spec.clone());
    let (inputs, outputs) = (net.spec.widths[0], *net.spec.widths.last().unwrap_or(&0));
    let mut seen: Vec<(&'a Batch, Source<'a>)> = Vec::new();
    let (mut x, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0u32;
    let mut source = |batch: &'a Batch| -> Result<Source<'a>, LearnError> {
        if let Some(&(_, s)) = seen.iter().find(|(b, _)| std::ptr::eq(*b, batch)) {
            return Ok(s);
        }
        let count = batch.len();
        let s = match (batch, net.loss, net.spec.embedding) {
            (
                Batch::Labeled {
                    x: bx,
                    labels: bl,
                    n,
                },
                Loss::CrossEntropy,
                None,
            ) if bx.len() == n * inputs
                && bl.len() == *n
                && bl.iter().all(|&l| (l as usize) < outputs) =>
            {
                x.extend_from_slice(bx);
                labels.extend_from_slice(bl);
                Source::Rows {
                    offset: rows,
                    count,
                }
            }
            (Batch::Dense { x: bx, y, n }, Loss::MeanSquared, None)
                if bx.len() == n * inputs && y.len() == n * outputs =>
            {
                x.extend_from_slice(bx);
                values.extend_from_slice(y);
                Source::Rows {
                    offset: rows,
                    count,
                }
            }
            (Batch::Tokens { tokens, .. }, Loss::CrossEntropy, Some(e)) => {
                if tokens.iter().any(|&t| t as usize >= e.vocab) {
                    return Err(unsupported("tokens beyond the vocabulary"));
                }
                match Examples::of(batch, &model) {
                    Some(Examples::Positions {
                        count,
                        per,
                        context,
                        len,
                    }) => Source::Tokens {
                        tokens,
                        per,
                        context,
                        len,
                        count,
                    },
                    _ => Source::Tokens {
                        tokens,
                        per: 1,
                        context: e.context,
                        len: 0,
                        count: 0,
                    },
                }
            }
            _ => return Err(unsupported("this model on this data")),
        };
        if let Source::Rows { count, .. } = s {
            rows += count as u32;
        }
        seen.push((batch, s));
        Ok(s)
    };
    let mut train = Vec::with_capacity(jobs.len());
    let mut heldout = Vec::with_capacity(jobs.len());
    for job in jobs {
        train.push(source(job.train)?);
        heldout.push(source(job.heldout)?);
    }
    if net.spec.embedding.is_some() {
        return Ok((None, train, heldout));
    }
    let pad = rows;
    let rows = rows as usize + 1;
    x.resize(rows * inputs, 0.0);
    let target = match net.loss {
        Loss::CrossEntropy => {
            labels.resize(rows, 0);
            Tensor::from_vec(labels, rows, device)?
        }
        Loss::MeanSquared => {
            values.resize(rows * outputs, 0.0);
            Tensor::from_vec(values, (rows, outputs), device)?
        }
    };
    let store = Store {
        x: Tensor::from_vec(x, (rows, inputs), device)?,
        target,
        pad,
    };
    Ok((Some(store), train, heldout))
}
