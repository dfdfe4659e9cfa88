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
//! biases and positions are fused loops. Every option of the spec that
//! removes a piece (embedding, positions, MLP, output projection, LayerNorm)
//! skips its step and its gradient; the ReLU layers before the readout
//! (`head`) are one `gemm` each, like the readout.
//!
//! The model and its arithmetic are those of
//! [`crate::models::Transformer`] (candle autograd) up to floating-point
//! summation order; a test holds the two lifetimes to 1e-5.

use lineage_env::{Batch, IGNORE};

use crate::fast::rnn::{column_sums, cross_entropy};
use crate::fast::{EVAL_SEQUENCES, FastModel, steps_of};
use crate::fast::{View, activate, activate_backward, matmul, wide};
use crate::spec::{Activation, ModelSpec, SequenceInput, TransformerSpec};
use crate::{Job, LifetimeSpec, Outcome};

mod ops;

use ops::{
    Norm, NormCache, add_rows, attend, attend_backward, fill_rows, norm_backward, normalize, normed,
};

/// One block's parameter positions.
struct BlockLayout {
    ln1: Option<Norm>,
    qkv: usize,
    /// `attn.out`, unless the heads' values join the stream as they are.
    out: Option<usize>,
    ln2: Option<Norm>,
    /// The MLP's, unless the block is attention only.
    mlp: Option<MlpLayout>,
}

/// A block MLP's parameter positions.
struct MlpLayout {
    fc: usize,
    fc_bias: usize,
    proj: usize,
    proj_bias: usize,
}

/// Parameter positions (see `ModelSpec::params`), found by name.
struct Layout {
    /// `tok` (`[vocab, d]`) or `w_in` (`[d, dim]`); none without an
    /// input embedding.
    embed: Option<usize>,
    b_in: Option<usize>,
    pos: Option<usize>,
    blocks: Vec<BlockLayout>,
    ln_f: Option<Norm>,
    /// Each ReLU layer's weight and bias before the readout.
    head_layers: Vec<(usize, usize)>,
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
        let norm = |on: bool, prefix: &str| {
            on.then(|| Norm {
                weight: at(&format!("{prefix}.weight")),
                bias: at(&format!("{prefix}.bias")),
            })
        };
        let tokens = matches!(spec.input, SequenceInput::Tokens { .. });
        let mlp = spec.d_ff > 0;
        Layout {
            embed: spec.embed.then(|| at(if tokens { "tok" } else { "w_in" })),
            b_in: (spec.embed && !tokens).then(|| at("b_in")),
            pos: spec.positions.then(|| at("pos")),
            blocks: (0..spec.layers)
                .map(|l| {
                    let n = |s: &str| format!("layers.{l}.{s}");
                    BlockLayout {
                        ln1: norm(spec.layer_norm, &n("ln1")),
                        qkv: at(&n("attn.qkv")),
                        out: spec.attn_out.then(|| at(&n("attn.out"))),
                        ln2: norm(spec.layer_norm && mlp, &n("ln2")),
                        mlp: mlp.then(|| MlpLayout {
                            fc: at(&n("mlp.fc")),
                            fc_bias: at(&n("mlp.fc_bias")),
                            proj: at(&n("mlp.proj")),
                            proj_bias: at(&n("mlp.proj_bias")),
                        }),
                    }
                })
                .collect(),
            ln_f: norm(spec.layer_norm, "ln_f"),
            head_layers: (0..spec.head.len())
                .map(|i| {
                    (
                        at(&format!("head_layers.{i}.weight")),
                        at(&format!("head_layers.{i}.bias")),
                    )
                })
                .collect(),
            head: at("head"),
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
    /// The MLP's pre-activations and activations, `[R, d_ff]` each
    /// (empty in an attention-only block).
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
    /// The ReLU layers' pre-activations and activations before the
    /// readout, `[S, head[i]]` each (room for `R` rows).
    hz: Vec<Vec<f32>>,
    hg: Vec<Vec<f32>>,
    /// With ReLU layers before the readout, which run on the scored rows
    /// alone: those rows (`labels` not `IGNORE`), their final stream
    /// (then its gradient), `[S, d]`, and their outputs (then their
    /// gradient), `[S, outputs]`; the ReLU layers' buffers hold `S` rows.
    scored: Vec<usize>,
    hin: Vec<f32>,
    hout: Vec<f32>,
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
    /// Gradients of the ReLU layers' activations, in turn, `[S, max
    /// head]` each.
    dh: [Vec<f32>; 2],
    /// One attention row's gradient, `[T]`.
    dp: Vec<f32>,
}

impl Workspace {
    fn new(spec: &TransformerSpec, rows: usize, steps: usize) -> Workspace {
        let r = rows * steps;
        let (d, f, o) = (spec.d_model, spec.d_ff, spec.outputs);
        let ln = spec.layer_norm;
        let dense = matches!(spec.input, SequenceInput::Dense { .. });
        let widest = spec.head.iter().copied().max().unwrap_or(0);
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
                    ln2: NormCache::new(ln && f > 0, r, d),
                    z: vec![0.0; r * f],
                    g: vec![0.0; r * f],
                })
                .collect(),
            last: vec![0.0; r * d],
            ln_f: NormCache::new(ln, r, d),
            hz: spec.head.iter().map(|&w| vec![0.0; r * w]).collect(),
            hg: spec.head.iter().map(|&w| vec![0.0; r * w]).collect(),
            scored: Vec::with_capacity(if spec.head.is_empty() { 0 } else { r }),
            hin: vec![0.0; if spec.head.is_empty() { 0 } else { r * d }],
            hout: vec![0.0; if spec.head.is_empty() { 0 } else { r * o }],
            out: vec![0.0; r * o],
            dx: vec![0.0; r * d],
            dn: vec![0.0; r * d],
            dy: if spec.attn_out {
                vec![0.0; r * d]
            } else {
                Vec::new()
            },
            dqkv: vec![0.0; r * 3 * d],
            dz: vec![0.0; r * f],
            dh: [vec![0.0; r * widest], vec![0.0; r * widest]],
            dp: vec![0.0; steps],
        }
    }
}

struct Transformer<'a> {
    spec: &'a TransformerSpec,
    layout: Layout,
}

impl Transformer<'_> {
    /// The factor on attention scores.
    fn scale(&self) -> f32 {
        let s = self.spec;
        if s.attn_scale {
            1.0 / ((s.d_model / s.heads) as f32).sqrt()
        } else {
            1.0
        }
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
        let scale = self.scale();
        let Workspace {
            input,
            tokens,
            labels,
            blocks,
            last,
            ln_f,
            hz,
            hg,
            scored,
            hin,
            hout,
            out,
            ..
        } = ws;

        // The stream: embedding (or the inputs themselves) plus position.
        let x0 = match blocks.first_mut() {
            Some(block) => &mut block.x[..r * d],
            None => &mut last[..r * d],
        };
        match (s.input, l.embed) {
            (SequenceInput::Tokens { .. }, Some(embed)) => {
                let table = &params[embed];
                for (row, &tok) in x0.chunks_exact_mut(d).zip(&tokens[..r]) {
                    let tok = tok as usize;
                    row.copy_from_slice(&table[tok * d..(tok + 1) * d]);
                }
            }
            (SequenceInput::Dense { dim }, Some(embed)) => {
                matmul(
                    x0,
                    View::rows(&input[..r * dim], r, dim),
                    View::transposed(&params[embed], d, dim),
                    false,
                );
                if let Some(bias) = l.b_in {
                    add_rows(x0, &params[bias]);
                }
            }
            (SequenceInput::Dense { .. }, None) => x0.copy_from_slice(&input[..r * d]),
            (SequenceInput::Tokens { .. }, None) => {
                unreachable!("a transformer without an embedding reads real inputs (checked)")
            }
        }
        if let Some(pos) = l.pos {
            let pos = &params[pos][..t * d];
            for seq in x0.chunks_exact_mut(t * d) {
                seq.iter_mut().zip(pos).for_each(|(x, &p)| *x += p);
            }
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
            attend(&c.qkv, &mut c.p, &mut c.y, b, t, s.heads, d, scale);
            c.mid[..r * d].copy_from_slice(&c.x[..r * d]);
            match bl.out {
                Some(w_out) => matmul(
                    &mut c.mid[..r * d],
                    View::rows(&c.y[..r * d], r, d),
                    View::transposed(&params[w_out], d, d),
                    true,
                ),
                None => c.mid[..r * d]
                    .iter_mut()
                    .zip(&c.y[..r * d])
                    .for_each(|(m, &y)| *m += y),
            }
            next.copy_from_slice(&c.mid[..r * d]);
            let Some(m) = &bl.mlp else { continue };
            // MLP: next = mid + act(ln2(mid) W_fc^T + b_fc) W_proj^T + b_proj.
            let mn = normalize(bl.ln2, params, &c.mid[..r * d], &mut c.ln2, d);
            let z = &mut c.z[..r * f];
            fill_rows(z, &params[m.fc_bias]);
            matmul(
                z,
                View::rows(mn, r, d),
                View::transposed(&params[m.fc], f, d),
                true,
            );
            activate(s.activation, z, &mut c.g[..r * f]);
            add_rows(next, &params[m.proj_bias]);
            matmul(
                next,
                View::rows(&c.g[..r * f], r, f),
                View::transposed(&params[m.proj], d, f),
                true,
            );
        }

        let fin = normalize(l.ln_f, params, &last[..r * d], ln_f, d);
        if l.head_layers.is_empty() {
            matmul(
                &mut out[..r * o],
                View::rows(fin, r, d),
                View::transposed(&params[l.head], o, d),
                false,
            );
            return;
        }
        // The ReLU layers and the readout, on the scored rows alone: the
        // loss reads no other output, and each layer costs as much per row
        // as a block's projections (17 times the work on Reddy's sequences,
        // scored on the query alone).
        scored.clear();
        scored.extend((0..r).filter(|&i| labels[i] != IGNORE));
        let m = scored.len();
        out[..r * o].fill(0.0);
        if m == 0 {
            return;
        }
        for (row, &i) in hin.chunks_exact_mut(d).zip(scored.iter()) {
            row.copy_from_slice(&fin[i * d..(i + 1) * d]);
        }
        let mut width = d;
        for (k, &(w, bias)) in l.head_layers.iter().enumerate() {
            let wk = s.head[k];
            let (before, rest) = hg.split_at_mut(k);
            let from: &[f32] = match before.last() {
                Some(g) => &g[..m * width],
                None => &hin[..m * d],
            };
            let z = &mut hz[k][..m * wk];
            fill_rows(z, &params[bias]);
            matmul(
                z,
                View::rows(from, m, width),
                View::transposed(&params[w], wk, width),
                true,
            );
            activate(Activation::Relu, z, &mut rest[0][..m * wk]);
            width = wk;
        }
        let top = hg.last().map_or(&[][..], |g| &g[..m * width]);
        matmul(
            &mut hout[..m * o],
            View::rows(top, m, width),
            View::transposed(&params[l.head], o, width),
            false,
        );
        for (row, &i) in hout.chunks_exact(o).zip(scored.iter()) {
            out[i * o..(i + 1) * o].copy_from_slice(row);
        }
    }

    #[inline(always)]
    fn back(&self, ws: &mut Workspace, params: &[Vec<f32>], grads: &mut [Vec<f32>], b: usize) {
        let s = self.spec;
        let (d, f, o) = (s.d_model, s.d_ff, s.outputs);
        let t = ws.steps;
        let r = b * t;
        let l = &self.layout;
        let scale = self.scale();
        let Workspace {
            input,
            tokens,
            blocks,
            last,
            ln_f,
            hz,
            hg,
            scored,
            hin,
            hout,
            out,
            dx,
            dn,
            dy,
            dqkv,
            dz,
            dh,
            dp,
            ..
        } = ws;
        let (dx, dn) = (&mut dx[..r * d], &mut dn[..r * d]);
        let (dqkv, dz) = (&mut dqkv[..r * 3 * d], &mut dz[..r * f]);
        let dout = &out[..r * o];

        // Readout, the ReLU layers before it (on the scored rows, as
        // forward), and the final LayerNorm.
        let fin = normed(l.ln_f, &last[..r * d], ln_f, d);
        let m = scored.len();
        if l.head_layers.is_empty() {
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
        } else if m == 0 {
            // Nothing scored: no gradient reaches the readout or the stream.
            grads[l.head].fill(0.0);
            for &(w, bias) in &l.head_layers {
                grads[w].fill(0.0);
                grads[bias].fill(0.0);
            }
            dn.fill(0.0);
        } else {
            let width = s.readout_width();
            for (row, &i) in hout.chunks_exact_mut(o).zip(scored.iter()) {
                row.copy_from_slice(&dout[i * o..(i + 1) * o]);
            }
            let dtop = &hout[..m * o];
            let top = hg.last().map_or(&[][..], |g| &g[..m * width]);
            matmul(
                &mut grads[l.head],
                View::transposed(dtop, m, o),
                View::rows(top, m, width),
                false,
            );
            let [cur, spare] = dh;
            let (mut cur, mut spare) = (&mut cur[..], &mut spare[..]);
            matmul(
                &mut cur[..m * width],
                View::rows(dtop, m, o),
                View::rows(&params[l.head], o, width),
                false,
            );
            for (k, &(w, bias)) in l.head_layers.iter().enumerate().rev() {
                let wk = s.head[k];
                let from_width = if k == 0 { d } else { s.head[k - 1] };
                let g = &mut cur[..m * wk];
                activate_backward(Activation::Relu, &hz[k][..m * wk], &hg[k][..m * wk], g);
                let from: &[f32] = if k == 0 {
                    &hin[..m * d]
                } else {
                    &hg[k - 1][..m * from_width]
                };
                matmul(
                    &mut grads[w],
                    View::transposed(g, m, wk),
                    View::rows(from, m, from_width),
                    false,
                );
                column_sums(g, wk, &mut grads[bias]);
                let to: &mut [f32] = if k == 0 {
                    &mut hin[..m * d]
                } else {
                    &mut spare[..m * from_width]
                };
                matmul(
                    to,
                    View::rows(g, m, wk),
                    View::rows(&params[w], wk, from_width),
                    false,
                );
                std::mem::swap(&mut cur, &mut spare);
            }
            dn.fill(0.0);
            for (row, &i) in hin.chunks_exact(d).zip(scored.iter()) {
                dn[i * d..(i + 1) * d].copy_from_slice(row);
            }
        }
        dx.fill(0.0);
        norm_backward(l.ln_f, params, grads, ln_f, dn, dx, d);

        for (c, bl) in blocks.iter().zip(&l.blocks).rev() {
            // dx is the gradient of the block's output. MLP first.
            if let Some(m) = &bl.mlp {
                matmul(
                    &mut grads[m.proj],
                    View::transposed(dx, r, d),
                    View::rows(&c.g[..r * f], r, f),
                    false,
                );
                column_sums(dx, d, &mut grads[m.proj_bias]);
                matmul(
                    dz,
                    View::rows(dx, r, d),
                    View::rows(&params[m.proj], d, f),
                    false,
                );
                activate_backward(s.activation, &c.z[..r * f], &c.g[..r * f], dz);
                let mn = normed(bl.ln2, &c.mid[..r * d], &c.ln2, d);
                matmul(
                    &mut grads[m.fc],
                    View::transposed(dz, r, f),
                    View::rows(mn, r, d),
                    false,
                );
                column_sums(dz, f, &mut grads[m.fc_bias]);
                matmul(
                    dn,
                    View::rows(dz, r, f),
                    View::rows(&params[m.fc], f, d),
                    false,
                );
                norm_backward(bl.ln2, params, grads, &c.ln2, dn, dx, d);
            }
            // dx is now the gradient of `mid`: attention.
            let dy: &[f32] = match bl.out {
                Some(w_out) => {
                    matmul(
                        &mut grads[w_out],
                        View::transposed(dx, r, d),
                        View::rows(&c.y[..r * d], r, d),
                        false,
                    );
                    let dy = &mut dy[..r * d];
                    matmul(
                        dy,
                        View::rows(dx, r, d),
                        View::rows(&params[w_out], d, d),
                        false,
                    );
                    dy
                }
                None => dx,
            };
            attend_backward(&c.qkv, &c.p, dy, dqkv, dp, b, t, s.heads, d, scale);
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
        if let Some(pos) = l.pos {
            let gp = &mut grads[pos];
            gp.fill(0.0);
            for seq in dx.chunks_exact(t * d) {
                gp[..t * d].iter_mut().zip(seq).for_each(|(g, &v)| *g += v);
            }
        }
        let Some(embed) = l.embed else { return };
        match s.input {
            SequenceInput::Tokens { .. } => {
                let gt = &mut grads[embed];
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
                    &mut grads[embed],
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

impl FastModel for Transformer<'_> {
    type Workspace = Workspace;

    /// Loads sequences `ids` of `batch`, example-major.
    fn load(&self, ws: &mut Workspace, _params: &[Vec<f32>], batch: &Batch, ids: &[u32]) {
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

    /// The backward pass after [`Transformer::forward`] with `grad`: writes
    /// every parameter's gradient into `grads` (overwriting).
    fn backward(&self, ws: &mut Workspace, params: &[Vec<f32>], grads: &mut [Vec<f32>], b: usize) {
        wide(|| self.back(ws, params, grads, b));
    }

    fn loaded(ws: &Workspace) -> (usize, usize, &[u32]) {
        (ws.rows, ws.steps, &ws.labels)
    }
}

/// Runs one organism's lifetime on the fast transformer path.
pub(crate) fn train(spec: &TransformerSpec, life: &LifetimeSpec, job: Job) -> Outcome {
    let ws = Workspace::new(spec, life.batch.max(EVAL_SEQUENCES), steps_of(job.train));
    let model = Transformer {
        spec,
        layout: Layout::of(spec),
    };
    crate::fast::live(model, &ModelSpec::Transformer(spec.clone()), ws, life, job)
}

#[cfg(test)]
mod tests;
