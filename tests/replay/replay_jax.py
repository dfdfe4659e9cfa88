"""Replays one exported Lineage lifetime in JAX and compares final weights.

Usage: python replay_jax.py EXPORT_DIR
Reads birth.safetensors, masks.safetensors, signs.safetensors,
lifetime.safetensors and lifetime.json written by `lineage export`, trains
the same model (an MLP, an MLP language model or a causal transformer) with
the same minibatches, optimiser and schedule in JAX (float32, CPU), and
prints one JSON line: {"max_rel_diff": ..., "max_abs_diff": ..., "params": n,
"first_loss": [jax, lineage], ...}.
Relative differences are |jax - lineage| / max(|lineage|, 1e-2 * max|w|)
per weight (the same measure as Lineage's own fast-vs-candle test).
Needs: numpy, jax (pip install "jax[cpu]" numpy).
"""
import json
import struct
import sys

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover - reported to the Rust test
    sys.stderr.write("replay_jax.py needs JAX: pip install 'jax[cpu]' numpy\n")
    sys.exit(3)

DTYPES = {"F32": np.float32, "U32": np.uint32, "I64": np.int64, "F64": np.float64, "U64": np.uint64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(body[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = arr
    return out


def gelu(x):
    return jax.nn.gelu(x, approximate=True)


ACT = {"relu": jax.nn.relu, "gelu": gelu, "tanh": jnp.tanh, "linear": lambda x: x}

# A label no loss scores (lineage_env::IGNORE, u32::MAX).
IGNORE = 0xFFFFFFFF
# LayerNorm's epsilon (biased variance), as Lineage and PyTorch.
LN_EPS = 1e-5


def transformer_spec(model, birth, names):
    """The transformer's hyper-parameters, as lifetime.json's model states
    them, checked against the birth weights' shapes and names."""
    layer_norm = "ln_f.weight" in names
    assert model["layer_norm"] == layer_norm, f"layer_norm {model['layer_norm']} but the parameters say {layer_norm}"
    d = int(model["d_model"])
    positions = "pos" in names
    assert positions == model.get("positions", True), model
    if positions:
        assert birth["pos"].shape == (model["context"], d), model
    embed = "tok" in names or "w_in" in names
    assert embed == model.get("embed", True), model
    head = [int(w) for w in model.get("head", [])]
    spec = {
        "tokens": "tok" in names,
        "embed": embed,
        "positions": positions,
        "context": int(model["context"]),
        "d": d,
        "heads": int(model["heads"]),
        "layers": int(model["layers"]),
        "layer_norm": layer_norm,
        "activation": model["activation"],
        "mlp": int(model.get("d_ff", 4 * d)) > 0,
        "attn_out": model.get("attn_out", True),
        "attn_scale": model.get("attn_scale", True),
        "head": head,
    }
    assert spec["layers"] == sum(1 for k in names if k.endswith(".attn.qkv")), model
    assert spec["mlp"] == ("layers.0.mlp.fc" in names), model
    assert spec["attn_out"] == ("layers.0.attn.out" in names), model
    assert len(head) == sum(1 for k in names if k.startswith("head_layers.") and k.endswith(".weight")), model
    assert d % spec["heads"] == 0, f"{spec['heads']} heads do not divide d_model {d}"
    return spec


def transformer_forward(spec):
    """`x = embed(input) + pos[:T]` (each term only where the model has
    it: without `embed` the inputs are the stream); pre-LayerNorm blocks
    (or none) `x += attn(ln1(x)); x += proj(act(fc(ln2(x))))` (attention
    only when `d_ff = 0`); then ReLU `head_layers` and the readout `head`
    at every position. Causal multi-head attention, scaled by
    1/sqrt(head_dim) unless `attn_scale` is off, `attn.qkv` rows =
    [q; k; v], the heads' values added through `attn.out` or, without it,
    directly."""
    heads, d = spec["heads"], spec["d"]
    hd = d // heads
    act = ACT[spec["activation"]]
    scale = 1.0 / np.sqrt(hd) if spec["attn_scale"] else 1.0

    def norm(params, prefix, x):
        if not spec["layer_norm"]:
            return x
        mean = jnp.mean(x, axis=-1, keepdims=True)
        c = x - mean
        var = jnp.mean(c * c, axis=-1, keepdims=True)
        return c / jnp.sqrt(var + LN_EPS) * params[f"{prefix}.weight"] + params[f"{prefix}.bias"]

    def forward(params, x):
        if spec["tokens"]:
            h = params["tok"][x]  # [n, T, d]
        elif spec["embed"]:
            h = x @ params["w_in"].T + params["b_in"]
        else:
            h = x
        n, t = h.shape[0], h.shape[1]
        if spec["positions"]:
            h = h + params["pos"][:t]
        causal = jnp.tril(jnp.ones((t, t), dtype=bool))
        for l in range(spec["layers"]):
            w = lambda name: params[f"layers.{l}.{name}"]
            a = norm(params, f"layers.{l}.ln1", h)
            qkv = a @ w("attn.qkv").T  # [n, T, 3d]
            q, k, v = (qkv[..., i * d : (i + 1) * d].reshape(n, t, heads, hd) for i in range(3))
            scores = jnp.einsum("nihc,njhc->nhij", q * scale, k)
            scores = jnp.where(causal, scores, -jnp.inf)
            p = jax.nn.softmax(scores, axis=-1)
            y = jnp.einsum("nhij,njhc->nihc", p, v).reshape(n, t, d)
            h = h + (y @ w("attn.out").T if spec["attn_out"] else y)
            if spec["mlp"]:
                z = norm(params, f"layers.{l}.ln2", h) @ w("mlp.fc").T + w("mlp.fc_bias")
                h = h + act(z) @ w("mlp.proj").T + w("mlp.proj_bias")
        h = norm(params, "ln_f", h)
        for i in range(len(spec["head"])):
            h = jax.nn.relu(h @ params[f"head_layers.{i}.weight"].T + params[f"head_layers.{i}.bias"])
        return h @ params["head"].T

    return forward


def main(folder):
    meta = json.load(open(f"{folder}/lifetime.json"))
    birth = read_safetensors(f"{folder}/birth.safetensors")
    final = read_safetensors(f"{folder}/final.safetensors")
    masks = read_safetensors(f"{folder}/masks.safetensors")
    signs = read_safetensors(f"{folder}/signs.safetensors")
    data = read_safetensors(f"{folder}/lifetime.safetensors")
    model = meta["model"]
    names = meta["parameters"]
    loss_kind = meta["loss"]
    kind = model["kind"]
    if kind == "mlp":
        act = ACT[model["activation"]]
        layers = len(model["widths"]) - 1
        embed = model["embedding"]

        def forward(params, x):
            if embed is not None:
                e = params["embed"][x]  # [B, context, dim]
                x = e.reshape(x.shape[0], -1)
            for i in range(layers):
                x = x @ params[f"layers.{i}.weight"].T
                if f"layers.{i}.bias" in params:
                    x = x + params[f"layers.{i}.bias"]
                if i < layers - 1:
                    x = act(x)
            return x

        def loss_fn(params, x, y):
            out = forward(params, x)
            if loss_kind == "CrossEntropy":
                logp = jax.nn.log_softmax(out, axis=-1)
                return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))
            return jnp.mean((out - y) ** 2)

        # Examples: rows of x (and labels or y), or MLP-LM positions of token windows.
        if "train.tokens" in data:
            tokens = data["train.tokens"].astype(np.int32)
            n, length = tokens.shape
            c = embed["context"]
            per = length - c
            def example(ids):
                w, p = ids // per, ids % per
                ctx = np.stack([tokens[w, p + k] for k in range(c)], axis=1)
                return ctx, tokens[w, p + c]
        else:
            xs = data["train.x"]
            ys = data["train.labels"].astype(np.int32) if "train.labels" in data else data["train.y"]
            def example(ids):
                return xs[ids], ys[ids]
    elif kind == "transformer":
        assert loss_kind == "CrossEntropy", f"a transformer is scored by cross-entropy, not {loss_kind}"
        forward = transformer_forward(transformer_spec(model, birth, names))

        def loss_fn(params, x, y):
            # Mean cross-entropy over the positions whose label is not IGNORE.
            labels, scored = y
            logp = jax.nn.log_softmax(forward(params, x), axis=-1)
            picked = jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
            return -jnp.sum(picked * scored) / jnp.sum(scored)

        def targets(labels):
            scored = labels != IGNORE
            return np.where(scored, labels, 0).astype(np.int32), scored.astype(np.float32)

        # Examples are whole sequences: a token window predicts its every
        # next token; a real sequence carries its labels (IGNORE where unscored).
        if "train.tokens" in data:
            tokens = data["train.tokens"]
            def example(ids):
                w = tokens[ids]
                return w[:, :-1].astype(np.int32), targets(w[:, 1:])
        else:
            xs, ls = data["train.x"], data["train.labels"]
            def example(ids):
                return xs[ids], targets(ls[ids])
    else:
        raise AssertionError(f"this replay covers MLPs and transformers, not {kind}")

    grad_fn = jax.jit(jax.value_and_grad(loss_fn))

    opt = meta["optimizer"]
    method, lr0, mu, wd = opt["method"], opt["lr"], opt["momentum"], opt["weight_decay"]
    b2, eps, clip, sched = opt["beta2"], opt["eps"], opt["clip"], opt["schedule"]
    steps = meta["steps"]

    def factor(s):
        kind = sched["kind"]
        if kind == "constant":
            return 1.0
        if kind == "warmup-hold-cooldown":
            up = (s + 1) / sched["warmup"] if s < sched["warmup"] else 1.0
            left = steps - s
            cd = sched["cooldown"]
            down = left / cd if cd > 0 and left <= cd else 1.0
            return min(up, down)
        w = sched["warmup"]
        return (s + 1) / w if s < w else (max(w, 1) / (s + 1)) ** 0.5

    params = {k: jnp.asarray(birth[k]) for k in names}
    mask = {k: jnp.asarray(masks[k]) for k in names if k in masks}
    sign = {k: jnp.asarray(signs[k]) for k in names if k in signs}
    m = {k: jnp.zeros_like(v) for k, v in params.items()}
    v = {k: jnp.zeros_like(p) for k, p in params.items()}
    indices = data["indices"].astype(np.int64)
    f32 = np.float32
    first_loss, clipped = None, 0
    for s in range(steps):
        x, y = example(indices[s])
        loss, g = grad_fn(params, x, y)
        if s == 0:
            first_loss = float(loss)
        g = {k: g[k] * mask[k] if k in mask else g[k] for k in names}
        if clip is not None:
            norm = float(np.sqrt(sum(float(np.sum(np.asarray(g[k], dtype=np.float64) ** 2)) for k in names)))
            scale = min(clip / (norm + 1e-6), 1.0)
            if scale < 1.0:
                clipped += 1
                g = {k: g[k] * f32(scale) for k in names}
        lr = f32(lr0 * factor(s))
        t = s + 1
        for k in names:
            p = params[k]
            if method == "sgd":
                d = g[k] + f32(wd) * p
                if mu == 0:
                    p = p - lr * d
                else:
                    m[k] = f32(mu) * m[k] + d
                    p = p - lr * m[k]
            else:
                if method == "adamw":
                    p = p - lr * f32(wd) * p
                    d = g[k]
                else:
                    d = g[k] + f32(wd) * p
                m[k] = f32(mu) * m[k] + f32(1 - mu) * d
                v[k] = f32(b2) * v[k] + f32(1 - b2) * d * d
                bc1 = f32(1 - f32(mu) ** t)
                bc2 = f32(1 - f32(b2) ** t)
                p = p - lr * (m[k] / bc1) / (jnp.sqrt(v[k] / bc2) + f32(eps))
            if k in mask:
                p = p * mask[k]
            if k in sign:
                # Dale's law: a weight against its sign constraint becomes 0.
                p = jnp.where(sign[k] * p < 0, f32(0), p)
            params[k] = p
    ours = np.concatenate([np.asarray(params[k]).ravel() for k in names])
    theirs = np.concatenate([final[k].ravel() for k in names])
    floor = 1e-2 * np.max(np.abs(theirs))
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), floor)
    print(json.dumps({
        "max_rel_diff": float(rel.max()),
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "params": int(ours.size),
        # The first minibatch's loss, here and in Lineage's learning curve.
        "first_loss": [first_loss, meta["curve"][0]["train"] if meta["curve"] else None],
        "clipped_steps": clipped,
        "jax": jax.__version__,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
