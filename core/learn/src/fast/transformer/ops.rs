//! The per-row operations of the fast transformer: LayerNorm and causal
//! attention, forward and backward, as fused loops over `[B * T, d]` rows,
//! and row-wise bias fills.

/// LayerNorm's epsilon, as on the candle path.
const LN_EPS: f32 = 1e-5;

/// A LayerNorm's gain and bias (parameter positions).
#[derive(Clone, Copy)]
pub(super) struct Norm {
    pub(super) weight: usize,
    pub(super) bias: usize,
}

/// A LayerNorm's saved forward values (empty without LayerNorm).
pub(super) struct NormCache {
    /// The normalised input `[R, d]`.
    pub(super) xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per row.
    pub(super) rstd: Vec<f32>,
    /// Its output `xhat * weight + bias`, `[R, d]`.
    pub(super) out: Vec<f32>,
}

impl NormCache {
    pub(super) fn new(on: bool, rows: usize, d: usize) -> NormCache {
        let n = if on { rows } else { 0 };
        NormCache {
            xhat: vec![0.0; n * d],
            rstd: vec![0.0; n],
            out: vec![0.0; n * d],
        }
    }
}

/// `x` through the LayerNorm `norm` (saving what its backward needs in
/// `cache`), or `x` itself without one.
#[inline(always)]
pub(super) fn normalize<'a>(
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
pub(super) fn normed<'a>(
    norm: Option<Norm>,
    x: &'a [f32],
    cache: &'a NormCache,
    d: usize,
) -> &'a [f32] {
    match norm {
        Some(_) => &cache.out[..x.len() / d * d],
        None => x,
    }
}

/// Adds the gradient reaching the input of LayerNorm `norm` from `dn`
/// (the gradient of its output) to `dx`, and writes its gain's and bias's
/// gradients; without LayerNorm, adds `dn` to `dx`.
#[inline(always)]
pub(super) fn norm_backward(
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

/// Causal multi-head attention over `qkv` (`[B * T, 3d]`, rows `b * T + t`),
/// scores `scale q . k`: the probabilities into `p` (`[B, heads, T, T]`)
/// and the heads' outputs, concatenated, into `y` (`[B * T, d]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn attend(
    qkv: &[f32],
    p: &mut [f32],
    y: &mut [f32],
    b: usize,
    t: usize,
    heads: usize,
    d: usize,
    scale: f32,
) {
    let hd = d / heads;
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
pub(super) fn attend_backward(
    qkv: &[f32],
    p: &[f32],
    dy: &[f32],
    dqkv: &mut [f32],
    dp: &mut [f32],
    b: usize,
    t: usize,
    heads: usize,
    d: usize,
    scale: f32,
) {
    let hd = d / heads;
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
pub(super) fn fill_rows(rows: &mut [f32], v: &[f32]) {
    rows.chunks_exact_mut(v.len())
        .for_each(|row| row.copy_from_slice(v));
}

/// Adds `v` to every `width`-wide row of `rows`.
pub(super) fn add_rows(rows: &mut [f32], v: &[f32]) {
    for row in rows.chunks_exact_mut(v.len()) {
        row.iter_mut().zip(v).for_each(|(x, &b)| *x += b);
    }
}
