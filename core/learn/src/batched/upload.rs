//! A chunk's data on the device: its distinct batches of rows (MLPs) and
//! of real sequences (recurrent nets) uploaded once, and where each
//! organism's train and held-out examples are. Token batches stay on the
//! host, which sends each step's ids.

use candle_core::{Device, Tensor};
use lineage_env::{Batch, IGNORE};

use super::mlp::Mlp;
use super::net::{Body, Net};
use super::unsupported;
use crate::data::Examples;
use crate::spec::{Loss, SequenceInput};
use crate::{Job, LearnError};

/// Where an organism's examples are.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// Rows `offset..offset + count` of the chunk's store `store`: an
    /// MLP's rows, or a recurrent net's sequences of `steps` steps (whose
    /// labels, `IGNORE` where a step is not scored, are `labels`).
    Rows {
        store: usize,
        offset: u32,
        count: usize,
        steps: usize,
        labels: Option<&'a [u32]>,
    },
    /// Window positions of a token batch, for an MLP language model
    /// ([`Examples::Positions`]).
    Tokens {
        tokens: &'a [u32],
        per: usize,
        context: usize,
        len: usize,
        count: usize,
    },
    /// Token windows of `len` tokens, for a recurrent net: it reads all
    /// but the last and predicts each next one.
    Windows {
        tokens: &'a [u32],
        len: usize,
        count: usize,
    },
}

impl Source<'_> {
    pub(super) fn count(self) -> usize {
        match self {
            Source::Rows { count, .. }
            | Source::Tokens { count, .. }
            | Source::Windows { count, .. } => count,
        }
    }

    /// Steps per example (1 for an MLP's).
    pub(super) fn steps(self) -> usize {
        match self {
            Source::Rows { steps, .. } => steps,
            Source::Tokens { .. } => 1,
            Source::Windows { len, .. } => len - 1,
        }
    }
}

/// The rows of a chunk's distinct row batches (or of its sequence
/// batches of one length) on the device, then one row of zeros that
/// padding reads.
pub(super) struct Store {
    /// `[rows + 1, steps · inputs]`.
    pub(super) x: Tensor,
    /// Labels `[rows + 1]` (u32) or target values `[rows + 1, outputs]`;
    /// for sequences labels `[rows + 1, steps]`, 0 where not scored.
    pub(super) target: Tensor,
    /// Sequences: u8 `[rows + 1, steps]`, 1 where a step is scored.
    pub(super) scored: Option<Tensor>,
    /// The zero row (for sequences: no step scored).
    pub(super) pad: u32,
}

/// What [`upload`] returns: the stores, and where each job's train and
/// held-out examples are.
pub(super) type Uploaded<'a> = (Vec<Store>, Vec<Source<'a>>, Vec<Source<'a>>);

/// Uploads the distinct batches `jobs` learn from and are scored on, and
/// says where each job's train and held-out examples are.
pub(super) fn upload<'a>(
    net: &Net,
    jobs: &[Job<'a>],
    device: &Device,
) -> Result<Uploaded<'a>, LearnError> {
    match &net.body {
        Body::Mlp(mlp) => upload_rows(net, mlp, jobs, device),
        Body::Recurrent(_) | Body::Transformer(_) => match net.body.sequences() {
            Some((input, outputs)) => upload_sequences(input, outputs, jobs, device),
            None => Err(unsupported("this model on sequences")),
        },
    }
}

fn upload_rows<'a>(
    net: &Net,
    mlp: &Mlp,
    jobs: &[Job<'a>],
    device: &Device,
) -> Result<Uploaded<'a>, LearnError> {
    let spec = mlp.spec;
    let (inputs, outputs) = (spec.widths[0], *spec.widths.last().unwrap_or(&0));
    let mut seen: Vec<(&'a Batch, Source<'a>)> = Vec::new();
    let (mut x, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0u32;
    let mut source = |batch: &'a Batch| -> Result<Source<'a>, LearnError> {
        if let Some(&(_, s)) = seen.iter().find(|(b, _)| std::ptr::eq(*b, batch)) {
            return Ok(s);
        }
        let count = batch.len();
        let at = Source::Rows {
            store: 0,
            offset: rows,
            count,
            steps: 1,
            labels: None,
        };
        let s = match (batch, net.loss, spec.embedding) {
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
                at
            }
            (Batch::Dense { x: bx, y, n }, Loss::MeanSquared, None)
                if bx.len() == n * inputs && y.len() == n * outputs =>
            {
                x.extend_from_slice(bx);
                values.extend_from_slice(y);
                at
            }
            (Batch::Tokens { tokens, .. }, Loss::CrossEntropy, Some(e)) => {
                if tokens.iter().any(|&t| t as usize >= e.vocab) {
                    return Err(unsupported("tokens beyond the vocabulary"));
                }
                match Examples::of(batch, net.model) {
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
    if spec.embedding.is_some() {
        return Ok((Vec::new(), train, heldout));
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
        scored: None,
        pad,
    };
    Ok((vec![store], train, heldout))
}

/// The sequences of one length, on their way to a [`Store`].
struct Sequences {
    steps: usize,
    x: Vec<f32>,
    labels: Vec<u32>,
    scored: Vec<u8>,
    rows: u32,
}

fn upload_sequences<'a>(
    input: SequenceInput,
    outputs: usize,
    jobs: &[Job<'a>],
    device: &Device,
) -> Result<Uploaded<'a>, LearnError> {
    let mut seen: Vec<(&'a Batch, Source<'a>)> = Vec::new();
    let mut stores: Vec<Sequences> = Vec::new();
    let mut source = |batch: &'a Batch| -> Result<Source<'a>, LearnError> {
        if let Some(&(_, s)) = seen.iter().find(|(b, _)| std::ptr::eq(*b, batch)) {
            return Ok(s);
        }
        let s = match (batch, input) {
            (
                Batch::Sequences {
                    n,
                    steps,
                    x,
                    labels,
                },
                SequenceInput::Dense { dim },
            ) if *steps > 0 && x.len() == n * steps * dim && labels.len() == n * steps => {
                if labels.iter().any(|&l| l != IGNORE && l as usize >= outputs) {
                    return Err(unsupported("labels beyond the outputs"));
                }
                let k = match stores.iter().position(|s| s.steps == *steps) {
                    Some(k) => k,
                    None => {
                        stores.push(Sequences {
                            steps: *steps,
                            x: Vec::new(),
                            labels: Vec::new(),
                            scored: Vec::new(),
                            rows: 0,
                        });
                        stores.len() - 1
                    }
                };
                let store = &mut stores[k];
                let offset = store.rows;
                store.x.extend_from_slice(x);
                store
                    .labels
                    .extend(labels.iter().map(|&l| if l == IGNORE { 0 } else { l }));
                store
                    .scored
                    .extend(labels.iter().map(|&l| u8::from(l != IGNORE)));
                store.rows += *n as u32;
                Source::Rows {
                    store: k,
                    offset,
                    count: *n,
                    steps: *steps,
                    labels: Some(labels),
                }
            }
            (Batch::Tokens { n, len, tokens }, SequenceInput::Tokens { vocab })
                if *len >= 2 && tokens.len() == n * len =>
            {
                if tokens.iter().any(|&t| t as usize >= vocab) {
                    return Err(unsupported("tokens beyond the vocabulary"));
                }
                // Every token but a window's first is a label.
                let labelled = tokens
                    .chunks_exact(*len)
                    .flat_map(|w| &w[1..])
                    .any(|&t| t as usize >= outputs);
                if labelled {
                    return Err(unsupported("tokens beyond the outputs"));
                }
                Source::Windows {
                    tokens,
                    len: *len,
                    count: *n,
                }
            }
            _ => return Err(unsupported("this model on this data")),
        };
        seen.push((batch, s));
        Ok(s)
    };
    let mut train = Vec::with_capacity(jobs.len());
    let mut heldout = Vec::with_capacity(jobs.len());
    for job in jobs {
        train.push(source(job.train)?);
        heldout.push(source(job.heldout)?);
    }
    let width = input.width();
    let stores = stores
        .into_iter()
        .map(|mut s| {
            let pad = s.rows;
            let rows = s.rows as usize + 1;
            s.x.resize(rows * s.steps * width, 0.0);
            s.labels.resize(rows * s.steps, 0);
            s.scored.resize(rows * s.steps, 0);
            Ok(Store {
                x: Tensor::from_vec(s.x, (rows, s.steps * width), device)?,
                target: Tensor::from_vec(s.labels, (rows, s.steps), device)?,
                scored: Some(Tensor::from_vec(s.scored, (rows, s.steps), device)?),
                pad,
            })
        })
        .collect::<candle_core::Result<Vec<Store>>>()?;
    Ok((stores, train, heldout))
}
