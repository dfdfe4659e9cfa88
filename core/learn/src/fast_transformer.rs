//! The fast path for the causal transformer: forward and hand-written
//! backward on `gemm`, in buffers allocated once per lifetime (see
//! [`crate::fast`] for why).
//!
//! The residual stream is kept example-major as rows `[B * T, d]` (row
//! `b * T + t`), so every projection (input, `attn.qkv`, `attn.out`, the
//! MLP, the readout) and every weight gradient is one `gemm` over all rows
//! of the minibatch. Attention itself is a few thousand multiply-adds per
//! sequence and head at these widths, less than the `gemm` crate's set-up,
//! so it is written as loops over the causal triangle, with the softmax
//! probabilities kept for the backward pass. LayerNorm, the activation,
//! biases and positions are fused loops.
//!
//! The model and its arithmetic are those of
//! [`crate::general::Transformer`] (candle autograd) up to floating-point
//! summation order; a test holds the two lifetimes to 1e-5.

use lineage_env::Batch;

use crate::fast::{View, activate, activate_backward, matmul, wide};
use crate::fast_rnn::{column_sums, cross_entropy};
use crate::fast_seq::{self, EVAL_ROWS, SequenceModel, steps_of};
use crate::spec::{ModelSpec, SequenceInput, TransformerSpec};
use crate::{Job, LifetimeSpec, Outcome};

/// LayerNorm's epsilon, as on the candle path.
const LN_EPS: f32 = 1e-5;

/// A LayerNorm's gain and bias (parameter positions).
#[derive(Clone, Copy)]
struct Norm {
    weight: usize,
    bias: usize,
}

/// One block's parameter positions.
struct BlockLayout {
    ln1: Option<Norm>,
    qkv: usize,
    out: usize,
    ln2: Option<Norm>,
    fc: usize,
    fc_bias: usize,
    proj: usize,
    proj_bias: usize,
}

/// Parameter positions (see `ModelSpec::params`), found by name.
struct Layout {
    /// `tok` (`[vocab, d]`) or `w_in` (`[d, dim]`).
    embed: usize,
    b_in: Option<usize>,
    pos: usize,
    blocks: Vec<BlockLayout>,
    ln_f: Option<Norm>,
    head: usize,
}

impl Layout {
    fn of(spec: &TransformerSpec) -> Layout {
        let names: Vec<String> = ModelSpec::Transformer(spec.clone())
            .params()
            .into_iter()
            .map(|p| p.name)
            .collect();
        let at = |name: &str| {
            names
                .iter()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("the transformer's layout has no `{name}`"))
        };
        let norm = |prefix: &str| {
            spec.layer_norm.then(|| Norm {
                weight: at(&format!("{prefix}.weight")),
                bias: at(&format!("{prefix}.bias")),
            })
        };
        let tokens = matches!(spec.input, SequenceInput::Tokens { .. });
        Layout {
            embed: at(if tokens { "tok" } else { "w_in" }),
            b_in: (!tokens).then(|| at("b_in")),
            pos: at("pos"),
            blocks: (0..spec.layers)
                .map(|l| {
                    let n = |s: &str| format!("layers.{l}.{s}");
                    BlockLayout {
                        ln1: norm(&n("ln1")),
                        qkv: at(&n("attn.qkv")),
                        out: at(&n("attn.out")),
                        ln2: norm(&n("ln2")),
                        fc: at(&n("mlp.fc")),
                        fc_bias: at(&n("mlp.fc_bias")),
                        proj: at(&n("mlp.proj")),
                        proj_bias: at(&n("mlp.proj_bias")),
                    }
                })
                .collect(),
            ln_f: norm("ln_f"),
            head: at("head"),
        }
    }
}

/// A LayerNorm's saved forward values (empty without LayerNorm).
struct NormCache {
    /// The normalised input `[R, d]`.
    xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per row.
    rstd: Vec<f32>,
    /// Its output `xhat * weight + bias`, `[R, d]`.
    out: Vec<f32>,
}

impl NormCache {
    fn new(on: bool, rows: usize, d: usize) -> NormCache {
        let n = if on { rows } else { 0 };
        NormCache {
            xhat: vec![0.0; n * d],
            rstd: vec![0.0; n],
            out: vec![0.0; n * d],
        }
    }
}

/// One block's forward values for `R = B * T` rows.
struct BlockCache {
    /// The block's input (the residual stream), `[R, d]`.
    x: Vec<f32>,
    ln1: NormCache,
    /// Queries, keys and values, `[R, 3d]`.
    qkv: Vec<f32>,
    /// Attention probabilities `[B, heads, T, T]` (zero above the diagonal).
    p: Vec<f32>,
    /// The heads' outputs, concatenated, `[R, d]`.
    y: Vec<f32>,
    /// The stream after attention, `[R, d]`.
    mid: Vec<f32>,
    ln2: NormCache,
    /// The MLP's pre-activations and activations, `[R, d_ff]` each.
    z: Vec<f32>,
    g: Vec<f32>,
}

/// Buffers for `rows` sequences of `steps` positions.
struct Workspace {
    rows: usize,
    steps: usize,
    /// Dense inputs `[R, dim]`.
    input: Vec<f32>,
    /// Input tokens `[R]`.
    tokens: Vec<u32>,
    /// Labels `[R]`.
    labels: Vec<u32>,
    blocks: Vec<BlockCache>,
    /// The stream after the last block, `[R, d]`.
    last: Vec<f32>,
    ln_f: NormCache,
    /// Outputs, then their gradient, `[R, outputs]`.
    out: Vec<f32>,
    /// Gradient of the residual stream, `[R, d]`.
    dx: Vec<f32>,
    /// Gradient of a LayerNorm's output (or of the stream without one), `[R, d]`.
    dn: Vec<f32>,
    /// Gradient of the heads' outputs, `[R, d]`.
    dy: Vec<f32>,
    /// Gradient of the queries, keys and values, `[R, 3d]`.
    dqkv: Vec<f32>,
    /// Gradient of the MLP's activations, then pre-activations, `[R, d_ff]`.
    dz: Vec<f32>,
    /// One attention row's gradient, `[T]`.
    dp: Vec<f32>,
}

impl Workspace {
    fn new(spec: &TransformerSpec, rows: usize, steps: usize) -> Workspace {
        let r = rows * steps;
        let (d, f, o) = (spec.d_model, spec.d_ff, spec.outputs);
        let ln = spec.layer_norm;
        let dense = matches!(spec.input, SequenceInput::Dense { .. });
        Workspace {
            rows,
            steps,
            input: if dense {
                vec![0.0; r * spec.input.width()]
            } else {
                Vec::new()
            },
            tokens: vec![0; r],
            labels: vec![0; r],
            blocks: (0..spec.layers)
                .map(|_| BlockCache {
                    x: vec![0.0; r * d],
                    ln1: NormCache::new(ln, r, d),
                    qkv: vec![0.0; r * 3 * d],
                    p: vec![0.0; rows * spec.heads * steps * steps],
                    y: vec![0.0; r * d],
                    mid: vec![0.0; r * d],
                    ln2: NormCache::new(ln, r, d),
                    z: vec![0.0; r * f],
                    g: vec![0.0; r * f],
                })
                .collect(),
            last: vec![0.0; r * d],
            ln_f: NormCache::new(ln, r, d),
            out: vec![0.0; r * o],
            dx: vec![0.0; r * d],
            dn: vec![0.0; r * d],
            dy: vec![0.0; r * d],
            dqkv: vec![0.0; r * 3 * d],
            dz: vec![0.0; r * f],
            dp: vec![0.0; steps],
        }
    }
}

struct Transformer<'a> {
    spec: &'a TransformerSpec,
    layout: Layout,
}

impl Transformer<'_> {
    /// Loads sequences `ids` of `batch`, example-major.
    fn load(&self, ws: &mut Workspace, batch: &Batch, ids: &[u32]) {
        let t_max = ws.steps;
        match batch {
            Batch::Sequences {
                x, labels, steps, ..
            } => {
                let i = self.spec.input.width();
                for (r, &id) in ids.iter().enumerate() {
                    let id = id as usize;
                    ws.input[r * t_max * i..(r + 1) * t_max * i]
                        .copy_from_slice(&x[id * steps * i..(id + 1) * steps * i]);
                    ws.labels[r * t_max..(r + 1) * t_max]
                        .copy_from_slice(&labels[id * steps..(id + 1) * steps]);
                }
            }
            Batch::Tokens { tokens, len, .. } => {
                for (r, &id) in ids.iter().enumerate() {
                    let w = &tokens[id as usize * len..(id as usize + 1) * len];
                    ws.tokens[r * t_max..(r + 1) * t_max].copy_from_slice(&w[..len - 1]);
                    ws.labels[r * t_max..(r + 1) * t_max].copy_from_slice(&w[1..]);
                }
            }
            _ => unreachable!("the transformer path trains on sequences"),
        }
    }

    /// Forward over the loaded `b` sequences; returns the mean loss and,
    /// with `grad`, leaves d(loss)/d(outputs) in `ws.out`.
    fn forward(&self, ws: &mut Workspace, params: &[Vec<f32>], b: usize, grad: bool) -> f32 {
        wide(|| self.run(ws, params, b));
        let rows = ws.steps * b;
        let o = self.spec.outputs;
        cross_entropy(&mut ws.out[..rows * o], &ws.labels[..rows], o, grad)
    }

    /// Every block's values and the outputs (`ws.out`) of the loaded `b`
    /// sequences.
    #[inline(always)]
    fn run(&self, ws: &mut Workspace, params: &[Vec<f32>], b: usize) {
        let s = self.spec;
        let (d, f, o) = (s.d_model, s.d_ff, s.outputs);
        let t = ws.steps;
        let r = b * t;
        let l = &self.layout;
        let Workspace {
            input,
            tokens,
            blocks,
            last,
            ln_f,
            out,
            ..
        } = ws;

        // The stream: embedding plus position.
        let x0 = match blocks.first_mut() {
            Some(block) => &mut block.x[..r * d],
            None => &mut last[..r * d],
        };
        match s.input {
            SequenceInput::Tokens { .. } => {
                let table = &params[l.embed];
                for (row, &tok) in x0.chunks_exact_mut(d).zip(&tokens[..r]) {
                    let tok = tok as usize;
                    row.copy_from_slice(&table[tok * d..(tok + 1) * d]);
                }
            }
            SequenceInput::Dense { dim } => {
                matmul(
                    x0,
                    View::rows(&input[..r * dim], r, dim),
                    View::transposed(&params[l.embed], d, dim),
                    false,
                );
                if let Some(bias) = l.b_in {
                    add_rows(x0, &params[bias]);
                }
            }
        }
        let pos = &params[l.pos][..t * d];
        for seq in x0.chunks_exact_mut(t * d) {
            seq.iter_mut().zip(pos).for_each(|(x, &p)| *x += p);
        }

        for k in 0..blocks.len() {
            let (done, rest) = blocks.split_at_mut(k + 1);
            let c = &mut done[k];
            let bl = &l.blocks[k];
            let next = match rest.first_mut() {
                Some(n) => &mut n.x[..r * d],
                None => &mut last[..r * d],
            };
            // Attention: qkv = ln1(x) W_qkv^T, mid = x + attn W_out^T.
            let a = normalize(bl.ln1, params, &c.x[..r * d], &mut c.ln1, d);
            matmul(
                &mut c.qkv[..r * 3 * d],
                View::rows(a, r, d),
                View::transposed(&params[bl.qkv], 3 * d, d),
                false,
            );
            attend(&c.qkv, &mut c.p, &mut c.y, b, t, s.heads, d);
            c.mid[..r * d].copy_from_slice(&c.x[..r * d]);
            matmul(
                &mut c.mid[..r * d],
                View::rows(&c.y[..r * d], r, d),
                View::transposed(&params[bl.out], d, d),
                true,
            );
            // MLP: next = mid + act(ln2(mid) W_fc^T + b_fc) W_proj^T + b_proj.
            let m = normalize(bl.ln2, params, &c.mid[..r * d], &mut c.ln2, d);
            let z = &mut c.z[..r * f];
            fill_rows(z, &params[bl.fc_bias]);
            matmul(
                z,
                View::rows(m, r, d),
                View::transposed(&params[bl.fc], f, d),
                true,
            );
            activate(s.activation, z, &mut c.g[..r * f]);
            next.copy_from_slice(&c.mid[..r * d]);
            add_rows(next, &params[bl.proj_bias]);
            matmul(
                next,
                View::rows(&c.g[..r * f], r, f),
                View::transposed(&params[bl.proj], d, f),
                true,
            );
        }

        let fin = normalize(l.ln_f, params, &last[..r * d], ln_f, d);
        matmul(
            &mut out[..r * o],
            View::rows(fin, r, d),
            View::transposed(&params[l.head], o, d),
            false,
        );
    }

    /// The backward pass after [`Transformer::forward`] with `grad`: writes
    /// every parameter's gradient into `grads` (overwriting).
    fn backward(&self, ws: &mut Workspace, params: &[Vec<f32>], grads: &mut [Vec<f32>], b: usize) {
        wide(|| self.back(ws, params, grads, b));
    }

    #[inline(always)]
    fn back(&self, ws: &mut Workspace, params: &[Vec<f32>], grads: &mut [Vec<f32>], b: usize) {
        let s = self.spec;
        let (d, f, o) = (s.d_model, s.d_ff, s.outputs);
        let t = ws.steps;
        let r = b * t;
        let l = &self.layout;
        let Workspace {
            input,
            tokens,
            blocks,
            last,
            ln_f,
            out,
            dx,
            dn,
            dy,
            dqkv,
            dz,
            dp,
            ..
        } = ws;
        let (dx, dn, dy) = (&mut dx[..r * d], &mut dn[..r * d], &mut dy[..r * d]);
        let (dqkv, dz) = (&mut dqkv[..r * 3 * d], &mut dz[..r * f]);
        let dout = &out[..r * o];

        // Readout and the final LayerNorm.
        let fin = normed(l.ln_f, &last[..r * d], ln_f, d);
        matmul(
            &mut grads[l.head],
            View::transposed(dout, r, o),
            View::rows(fin, r, d),
            false,
        );
        matmul(
            dn,
            View::rows(dout, r, o),
            View::rows(&params[l.head], o, d),
            false,
        );
        dx.fill(0.0);
        norm_backward(l.ln_f, params, grads, ln_f, dn, dx, d);

        for (c, bl) in blocks.iter().zip(&l.blocks).rev() {
            // dx is the gradient of the block's output. MLP first.
            matmul(
                &mut grads[bl.proj],
                View::transposed(dx, r, d),
                View::rows(&c.g[..r * f], r, f),
                false,
            );
            column_sums(dx, d, &mut grads[bl.proj_bias]);
            matmul(
                dz,
                View::rows(dx, r, d),
                View::rows(&params[bl.proj], d, f),
                false,
            );
            activate_backward(s.activation, &c.z[..r * f], &c.g[..r * f], dz);
            let m = normed(bl.ln2, &c.mid[..r * d], &c.ln2, d);
            matmul(
                &mut grads[bl.fc],
                View::transposed(dz, r, f),
                View::rows(m, r, d),
                false,
            );
            column_sums(dz, f, &mut grads[bl.fc_bias]);
            matmul(
                dn,
                View::rows(dz, r, f),
                View::rows(&params[bl.fc], f, d),
                false,
            );
            norm_backward(bl.ln2, params, grads, &c.ln2, dn, dx, d);
            // dx is now the gradient of `mid`: attention.
            matmul(
                &mut grads[bl.out],
                View::transposed(dx, r, d),
                View::rows(&c.y[..r * d], r, d),
                false,
            );
            matmul(
                dy,
                View::rows(dx, r, d),
                View::rows(&params[bl.out], d, d),
                false,
            );
            attend_backward(&c.qkv, &c.p, dy, dqkv, dp, b, t, s.heads, d);
            let a = normed(bl.ln1, &c.x[..r * d], &c.ln1, d);
            matmul(
                &mut grads[bl.qkv],
                View::transposed(dqkv, r, 3 * d),
                View::rows(a, r, d),
                false,
            );
            matmul(
                dn,
                View::rows(dqkv, r, 3 * d),
                View::rows(&params[bl.qkv], 3 * d, d),
                false,
            );
            norm_backward(bl.ln1, params, grads, &c.ln1, dn, dx, d);
        }

        // dx is the gradient of the embedded input plus position.
        let gp = &mut grads[l.pos];
        gp.fill(0.0);
        for seq in dx.chunks_exact(t * d) {
            gp[..t * d].iter_mut().zip(seq).for_each(|(g, &v)| *g += v);
        }
        match s.input {
            SequenceInput::Tokens { .. } => {
                let gt = &mut grads[l.embed];
                gt.fill(0.0);
                for (row, &tok) in dx.chunks_exact(d).zip(&tokens[..r]) {
                    let tok = tok as usize;
                    gt[tok * d..(tok + 1) * d]
                        .iter_mut()
                        .zip(row)
                        .for_each(|(g, &v)| *g += v);
                }
            }
            SequenceInput::Dense { dim } => {
                matmul(
                    &mut grads[l.embed],
                    View::transposed(dx, r, d),
                    View::rows(&input[..r * dim], r, dim),
                    false,
                );
                if let Some(bias) = l.b_in {
                    column_sums(dx, d, &mut grads[bias]);
                }
            }
        }
    }
}

/// `x` through the LayerNorm `norm` (saving what its backward needs in
/// `cache`), or `x` itself without one.
#[inline(always)]
fn normalize<'a>(
    norm: Option<Norm>,
    params: &[Vec<f32>],
    x: &'a [f32],
    cache: &'a mut NormCache,
    d: usize,
) -> &'a [f32] {
    let Some(n) = norm else { return x };
    let rows = x.len() / d;
    let (gain, bias) = (&params[n.weight], &params[n.bias]);
    let out = &mut cache.out[..rows * d];
    for (((x, xhat), out), rstd) in x
        .chunks_exact(d)
        .zip(cache.xhat.chunks_exact_mut(d))
        .zip(out.chunks_exact_mut(d))
        .zip(cache.rstd.iter_mut())
    {
        let mean = x.iter().sum::<f32>() / d as f32;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let std = (var + LN_EPS).sqrt();
        *rstd = 1.0 / std;
        for k in 0..d {
            xhat[k] = (x[k] - mean) / std;
            out[k] = xhat[k] * gain[k] + bias[k];
        }
    }
    out
}

/// What [`normalize`] returned, from its cache.
#[inline(always)]
fn normed<'a>(norm: Option<Norm>, x: &'a [f32], cache: &'a NormCache, d: usize) -> &'a [f32] {
    match norm {
        Some(_) => &cache.out[..x.len() / d * d],
        None => x,
    }
}

/// Adds the gradient reaching the input of LayerNorm `norm` from `dn`
/// (the gradient of its output) to `dx`, and writes its gain's and bias's
/// gradients; without LayerNorm, adds `dn` to `dx`.
#[inline(always)]
fn norm_backward(
    norm: Option<Norm>,
    params: &[Vec<f32>],
    grads: &mut [Vec<f32>],
    cache: &NormCache,
    dn: &[f32],
    dx: &mut [f32],
    d: usize,
) {
    let Some(n) = norm else {
        dx.iter_mut().zip(dn).for_each(|(x, &g)| *x += g);
        return;
    };
    let rows = dn.len() / d;
    let xhat = &cache.xhat[..rows * d];
    let Ok([gw, gb]) = grads.get_disjoint_mut([n.weight, n.bias]) else {
        unreachable!("a LayerNorm's gain and bias are two parameters")
    };
    gw.fill(0.0);
    gb.fill(0.0);
    for (g, xh) in dn.chunks_exact(d).zip(xhat.chunks_exact(d)) {
        for k in 0..d {
            gw[k] += g[k] * xh[k];
            gb[k] += g[k];
        }
    }
    let gain = &params[n.weight];
    let inv = 1.0 / d as f32;
    for (((g, xh), dx), &rstd) in dn
        .chunks_exact(d)
        .zip(xhat.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
        .zip(&cache.rstd)
    {
        let (mut mean_g, mut mean_gx) = (0.0f32, 0.0f32);
        for k in 0..d {
            let gk = g[k] * gain[k];
            mean_g += gk;
            mean_gx += gk * xh[k];
        }
        mean_g *= inv;
        mean_gx *= inv;
        for k in 0..d {
            dx[k] += rstd * (g[k] * gain[k] - mean_g - xh[k] * mean_gx);
        }
    }
}

/// Causal multi-head attention over `qkv` (`[B * T, 3d]`, rows `b * T + t`):
/// the probabilities into `p` (`[B, heads, T, T]`) and the heads' outputs,
/// concatenated, into `y` (`[B * T, d]`).
#[inline(always)]
fn attend(qkv: &[f32], p: &mut [f32], y: &mut [f32], b: usize, t: usize, heads: usize, d: usize) {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let w = 3 * d;
    for s in 0..b {
        let seq = &qkv[s * t * w..(s + 1) * t * w];
        let ys = &mut y[s * t * d..(s + 1) * t * d];
        for h in 0..heads {
            let probs = &mut p[(s * heads + h) * t * t..(s * heads + h + 1) * t * t];
            let (qo, ko, vo) = (h * hd, d + h * hd, 2 * d + h * hd);
            for i in 0..t {
                let q = &seq[i * w + qo..i * w + qo + hd];
                let row = &mut probs[i * t..(i + 1) * t];
                let mut max = f32::NEG_INFINITY;
                for j in 0..=i {
                    let k = &seq[j * w + ko..j * w + ko + hd];
                    let mut dot = 0.0f32;
                    for c in 0..hd {
                        dot += q[c] * scale * k[c];
                    }
                    row[j] = dot;
                    max = max.max(dot);
                }
                let mut sum = 0.0f32;
                for v in &mut row[..=i] {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                for v in &mut row[..=i] {
                    *v /= sum;
                }
                row[i + 1..].fill(0.0);
                let out = &mut ys[i * d + h * hd..i * d + (h + 1) * hd];
                out.fill(0.0);
                for (j, &pj) in row[..=i].iter().enumerate() {
                    let v = &seq[j * w + vo..j * w + vo + hd];
                    out.iter_mut().zip(v).for_each(|(o, &v)| *o += pj * v);
                }
            }
        }
    }
}

/// The gradient of `qkv` (into `dqkv`) from that of the heads' outputs
/// (`dy`), given [`attend`]'s probabilities.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_backward(
    qkv: &[f32],
    p: &[f32],
    dy: &[f32],
    dqkv: &mut [f32],
    dp: &mut [f32],
    b: usize,
    t: usize,
    heads: usize,
    d: usize,
) {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let w = 3 * d;
    dqkv.fill(0.0);
    for s in 0..b {
        let seq = &qkv[s * t * w..(s + 1) * t * w];
        let dseq = &mut dqkv[s * t * w..(s + 1) * t * w];
        let dys = &dy[s * t * d..(s + 1) * t * d];
        for h in 0..heads {
            let probs = &p[(s * heads + h) * t * t..(s * heads + h + 1) * t * t];
            let (qo, ko, vo) = (h * hd, d + h * hd, 2 * d + h * hd);
            for i in 0..t {
                let row = &probs[i * t..(i + 1) * t];
                let g = &dys[i * d + h * hd..i * d + (h + 1) * hd];
                // dP_ij = g . v_j; dv_j += p_ij g.
                let mut weighted = 0.0f32;
                for j in 0..=i {
                    let v = &seq[j * w + vo..j * w + vo + hd];
                    let mut dot = 0.0f32;
                    for c in 0..hd {
                        dot += g[c] * v[c];
                    }
                    dp[j] = dot;
                    weighted += row[j] * dot;
                    let dv = &mut dseq[j * w + vo..j * w + vo + hd];
                    dv.iter_mut().zip(g).for_each(|(a, &g)| *a += row[j] * g);
                }
                // dS_ij = p_ij (dP_ij - sum_k p_ik dP_ik), scaled once for q and k.
                for j in 0..=i {
                    let ds = row[j] * (dp[j] - weighted) * scale;
                    let (k, q) = (j * w + ko, i * w + qo);
                    for c in 0..hd {
                        dseq[q + c] += ds * seq[k + c];
                        dseq[k + c] += ds * seq[q + c];
                    }
                }
            }
        }
    }
}

/// Sets every `width`-wide row of `rows` to `v`.
fn fill_rows(rows: &mut [f32], v: &[f32]) {
    rows.chunks_exact_mut(v.len())
        .for_each(|row| row.copy_from_slice(v));
}

/// Adds `v` to every `width`-wide row of `rows`.
fn add_rows(rows: &mut [f32], v: &[f32]) {
    for row in rows.chunks_exact_mut(v.len()) {
        row.iter_mut().zip(v).for_each(|(x, &b)| *x += b);
    }
}

impl SequenceModel for Transformer<'_> {
    type Workspace = Workspace;

    fn rows(ws: &Workspace) -> usize {
        ws.rows
    }

    fn steps(ws: &Workspace) -> usize {
        ws.steps
    }

    fn labels(ws: &Workspace) -> &[u32] {
        &ws.labels
    }

    fn load(&self, ws: &mut Workspace, batch: &Batch, ids: &[u32]) {
        Transformer::load(self, ws, batch, ids);
    }

    fn forward(&self, ws: &mut Workspace, params: &[Vec<f32>], b: usize, grad: bool) -> f32 {
        Transformer::forward(self, ws, params, b, grad)
    }

    fn backward(&self, ws: &mut Workspace, params: &[Vec<f32>], grads: &mut [Vec<f32>], b: usize) {
        Transformer::backward(self, ws, params, grads, b);
    }
}

/// Runs one organism's lifetime on the fast transformer path.
pub(crate) fn train(spec: &TransformerSpec, life: &LifetimeSpec, job: Job) -> Outcome {
    let ws = Workspace::new(spec, life.batch.max(EVAL_ROWS), steps_of(job.train));
    let model = Transformer {
        spec,
        layout: Layout::of(spec),
    };
    fast_seq::live(model, &ModelSpec::Transformer(spec.clone()), ws, life, job)
}

#[cfg(test)]
mod tests {
    use lineage_env::{IGNORE, Task};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::Hyper;
    use crate::spec::{Activation, Role};
    use crate::{Method, OptimizerSpec, Path, Schedule, Status, train_population};

    /// Relative tolerance on SGD lifetimes (weights and held-out losses).
    const TOLERANCE: f32 = 1e-5;

    /// Relative tolerance on Adam and AdamW lifetimes: Adam divides by
    /// sqrt(v), so where a gradient is near zero, f32 summation-order
    /// differences (the gradients agree with the exact ones within 1.3e-5,
    /// `gradients_agree`) become differences of a step's size; measured up
    /// to 4e-5 after 15 steps, as on the RNN path.
    const ADAM_TOLERANCE: f32 = 5e-5;

    /// Random birth weights for `model` (gains near 1) and masks covering
    /// 30% of its matrices, the masked weights zero.
    fn birth(model: &ModelSpec, seed: u64) -> (Vec<Vec<f32>>, Vec<Option<Vec<f32>>>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let infos = model.params();
        let masks: Vec<Option<Vec<f32>>> = infos
            .iter()
            .map(|p| {
                p.role.maskable().then(|| {
                    (0..p.len())
                        .map(|_| f32::from(u8::from(rng.random_bool(0.7))))
                        .collect()
                })
            })
            .collect();
        let params = infos
            .iter()
            .zip(&masks)
            .map(|(p, m)| {
                let base = if p.role == Role::Gain { 1.0 } else { 0.0 };
                let w: Vec<f32> = (0..p.len())
                    .map(|_| base + (rng.random::<f32>() - 0.5) * 0.6)
                    .collect();
                match m {
                    Some(m) => w.iter().zip(m).map(|(a, b)| a * b).collect(),
                    None => w,
                }
            })
            .collect();
        (params, masks)
    }

    /// One lifetime of `steps` steps at batch 4 on the fast and the
    /// general path.
    #[allow(clippy::too_many_arguments)]
    fn both_paths(
        model: &ModelSpec,
        task: &Task,
        train: &Batch,
        heldout: &Batch,
        optimizer: OptimizerSpec,
        hyper: Hyper,
        params: &[Vec<f32>],
        masks: &[Option<Vec<f32>>],
    ) -> (Outcome, Outcome) {
        let life = LifetimeSpec {
            batch: 4,
            eval_every: 5,
            curve_heldout: 8,
            optimizer,
        };
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let indices = crate::data::minibatch_indices(train.len(), 4, hyper.steps, &mut rng);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let run = |path| {
            let job = Job {
                params: params.to_vec(),
                masks: masks.to_vec(),
                signs: vec![None; params.len()],
                hyper,
                train,
                heldout,
                probes: &[],
                indices: indices.clone(),
            };
            train_population(
                model,
                task,
                &life,
                &candle_core::Device::Cpu,
                Some(path),
                vec![job],
                &pool,
            )
            .unwrap()
            .remove(0)
        };
        let (fast, general) = (run(Path::Fast), run(Path::General));
        assert_eq!(
            (fast.status, general.status),
            (Status::Completed, Status::Completed)
        );
        (fast, general)
    }

    /// The largest difference between `a` and `b`, per parameter, relative
    /// to max(|b|, 1% of the largest |b|), with the parameter's name.
    fn largest_gap(model: &ModelSpec, a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, String) {
        let scale = b.iter().flatten().fold(0.0f32, |m, &x| m.max(x.abs()));
        let mut worst = (0.0f32, String::new());
        for ((a, b), info) in a.iter().zip(b).zip(model.params()) {
            let gap = a
                .iter()
                .zip(b)
                .map(|(&a, &b)| (a - b).abs() / b.abs().max(1e-2 * scale))
                .fold(0.0f32, f32::max);
            if gap > worst.0 {
                worst = (gap, info.name);
            }
        }
        worst
    }

    /// Trains one random organism on both paths for 15 steps and compares
    /// every weight and every curve point within `tolerance`; checks that
    /// masked weights stayed zero and that the weights moved.
    fn compare(
        spec: TransformerSpec,
        task: Task,
        train: &Batch,
        heldout: &Batch,
        method: Method,
        tolerance: f32,
    ) -> Outcome {
        let model = ModelSpec::Transformer(spec);
        let (params, masks) = birth(&model, 5);
        let optimizer = OptimizerSpec {
            method,
            beta2: 0.99,
            eps: 1e-8,
            clip: Some(2.0),
            schedule: Schedule::InverseSqrt { warmup: 3 },
        };
        let hyper = Hyper {
            lr: 0.02,
            momentum: 0.9,
            weight_decay: 0.01,
            steps: 15,
        };
        let (fast, general) = both_paths(
            &model, &task, train, heldout, optimizer, hyper, &params, &masks,
        );
        let (gap, name) = largest_gap(&model, &fast.params, &general.params);
        assert!(
            gap < tolerance,
            "{method:?}: `{name}` differs by {gap} (relative)"
        );
        for (w, (m, info)) in fast.params.iter().zip(masks.iter().zip(model.params())) {
            if let Some(m) = m {
                assert!(
                    w.iter().zip(m).all(|(&w, &m)| m != 0.0 || w == 0.0),
                    "a masked weight of `{}` moved",
                    info.name
                );
            }
        }
        for (f, g) in fast.curve.iter().zip(&general.curve) {
            assert!(
                (f.heldout - g.heldout).abs() < tolerance * g.heldout.abs().max(1.0),
                "{f:?} vs {g:?}"
            );
        }
        let moved = fast
            .params
            .iter()
            .flatten()
            .zip(params.iter().flatten())
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved > 1e-2, "the weights hardly moved ({moved})");
        fast
    }

    /// The gradient of one minibatch's loss by the hand-written backward
    /// pass against candle's autograd in f64 from the same weights: checks
    /// the backward pass directly, without an optimiser that amplifies
    /// rounding.
    fn gradients_agree(spec: TransformerSpec, train: &Batch) {
        let model = ModelSpec::Transformer(spec.clone());
        let (params, _) = birth(&model, 11);
        let ids: Vec<u32> = (0..8).collect();

        let fast = Transformer {
            spec: &spec,
            layout: Layout::of(&spec),
        };
        let mut ws = Workspace::new(&spec, ids.len(), steps_of(train));
        let mut by_hand: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        fast.load(&mut ws, train, &ids);
        let loss = fast.forward(&mut ws, &params, ids.len(), true);
        fast.backward(&mut ws, &params, &mut by_hand, ids.len());

        let autograd = |dtype| -> Vec<Vec<f32>> {
            let device = candle_core::Device::Cpu;
            let layout = model.params();
            let varmap = candle_nn::VarMap::new();
            let mut vars = Vec::new();
            for (info, values) in layout.iter().zip(&params) {
                let t = candle_core::Tensor::from_slice(values, info.shape.as_slice(), &device)
                    .and_then(|t| t.to_dtype(dtype))
                    .unwrap();
                let var = candle_core::Var::from_tensor(&t).unwrap();
                varmap
                    .data()
                    .lock()
                    .unwrap()
                    .insert(info.name.clone(), var.clone());
                vars.push(var);
            }
            let net = crate::general::Network::new(
                &model,
                candle_nn::VarBuilder::from_varmap(&varmap, dtype, &device),
            )
            .unwrap();
            let ex = crate::data::Examples::of(train, &model).unwrap();
            let (input, target) = crate::general::gather(train, ex, &ids, &device).unwrap();
            let out = net.forward(&input).unwrap();
            let l = crate::general::loss(crate::Loss::CrossEntropy, &out, &target).unwrap();
            let value = l
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!((value - loss).abs() < 1e-5 * loss.abs());
            let store = l.backward().unwrap();
            vars.iter()
                .map(|v| {
                    store
                        .get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .and_then(|t| t.to_dtype(candle_core::DType::F32))
                        .and_then(|t| t.to_vec1())
                        .unwrap()
                })
                .collect()
        };
        let exact = autograd(candle_core::DType::F64);
        for (g, info) in exact.iter().zip(model.params()) {
            assert!(
                g.iter().any(|&v| v != 0.0),
                "`{}` has no gradient",
                info.name
            );
        }
        // f32 rounding alone: 1.3e-5 measured here, where candle's own f32
        // gradients are 6e-6 from the exact ones; a wrong term would be 1.
        let (gap, name) = largest_gap(&model, &by_hand, &exact);
        assert!(
            gap < 3e-5,
            "the gradients of `{name}` differ from the exact ones by {gap}"
        );
    }

    /// Sequences of 6 dense 3-wide positions; the last position's label is
    /// the sign of the first position's first input (the rest ignored), so
    /// attention must reach back.
    fn recall(n: usize, rng: &mut impl Rng) -> Batch {
        let (steps, dim) = (6, 3);
        let x: Vec<f32> = (0..n * steps * dim)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        let labels = (0..n)
            .flat_map(|s| {
                let first = x[s * steps * dim];
                (0..steps).map(move |t| {
                    if t + 1 < steps {
                        IGNORE
                    } else {
                        u32::from(first > 0.0)
                    }
                })
            })
            .collect();
        Batch::Sequences {
            n,
            steps,
            x,
            labels,
        }
    }

    fn dense_spec(layer_norm: bool, activation: Activation) -> TransformerSpec {
        TransformerSpec {
            input: SequenceInput::Dense { dim: 3 },
            context: 6,
            d_model: 8,
            heads: 2,
            layers: 2,
            d_ff: 12,
            outputs: 2,
            layer_norm,
            activation,
        }
    }

    #[test]
    fn fast_transformer_matches_candle_pre_layer_norm_gelu() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(6);
        let (train, heldout) = (recall(24, &mut rng), recall(10, &mut rng));
        let task = Task::SequenceClassification {
            inputs: 3,
            classes: 2,
            steps: 6,
        };
        gradients_agree(dense_spec(true, Activation::Gelu), &train);
        for (method, tolerance) in [
            (Method::Sgd, TOLERANCE),
            (Method::Adam, ADAM_TOLERANCE),
            (Method::AdamW, ADAM_TOLERANCE),
        ] {
            compare(
                dense_spec(true, Activation::Gelu),
                task.clone(),
                &train,
                &heldout,
                method,
                tolerance,
            );
        }
    }

    #[test]
    fn fast_transformer_matches_candle_without_layer_norm_relu() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(8);
        let (train, heldout) = (recall(24, &mut rng), recall(10, &mut rng));
        let task = Task::SequenceClassification {
            inputs: 3,
            classes: 2,
            steps: 6,
        };
        gradients_agree(dense_spec(false, Activation::Relu), &train);
        compare(
            dense_spec(false, Activation::Relu),
            task.clone(),
            &train,
            &heldout,
            Method::Sgd,
            TOLERANCE,
        );
        compare(
            dense_spec(false, Activation::Relu),
            task,
            &train,
            &heldout,
            Method::AdamW,
            ADAM_TOLERANCE,
        );
    }

    #[test]
    fn fast_transformer_matches_candle_on_tokens() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let windows = |n: usize, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
            let mut tokens = Vec::new();
            for _ in 0..n {
                let s = rng.random_range(0..6u32);
                tokens.extend((0..6).map(|i| (s + i) % 6));
            }
            Batch::Tokens { n, len: 6, tokens }
        };
        let (train, heldout) = (windows(20, &mut rng), windows(8, &mut rng));
        let spec = TransformerSpec {
            input: SequenceInput::Tokens { vocab: 6 },
            context: 5,
            d_model: 8,
            heads: 4,
            layers: 1,
            d_ff: 16,
            outputs: 6,
            layer_norm: true,
            activation: Activation::Gelu,
        };
        let fast = compare(
            spec,
            Task::NextToken {
                vocab: 6,
                context: 5,
            },
            &train,
            &heldout,
            Method::Adam,
            ADAM_TOLERANCE,
        );
        assert!(
            fast.final_heldout() < 0.75 * fast.curve[0].heldout,
            "{:?}",
            fast.curve
        );
    }
}
